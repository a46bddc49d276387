//! Model test of a `Heap`: random sequences of allocate / allocate_zeroed / reallocate /
//! deallocate / free / collect, checked against a shadow model of the live blocks.
//!
//! Every live block is filled with a byte of its own; the model checks on every step that a
//! block is aligned, that `usable_size` covers the size asked for, that its usable range
//! overlaps no other live block's, that zeroed memory reads zero, and that the contents
//! survive a reallocate (up to the smaller size) and are intact when the block is freed. At
//! the end everything is freed and every slab must have gone back to the arenas.
use core::{alloc::Layout, ptr::NonNull};
use std::collections::BTreeMap;

use ferroc_arena::{Arenas, BaseAlloc, sizes::SHARD_SIZE};
use ferroc_base::{Mmap, Static};
use ferroc_heap::{Context, Heap};
use proptest::prelude::*;

const MAX_SIZE: usize = 4 << 20;
const MAX_ALIGN_SHIFT: u32 = 20;

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        size: usize,
        align: u32,
    },
    AllocZeroed {
        size: usize,
        align: u32,
    },
    Realloc {
        pick: usize,
        size: usize,
        align: u32,
    },
    Dealloc {
        pick: usize,
    },
    Free {
        pick: usize,
    },
    Collect {
        force: bool,
    },
}

/// Sizes 0..=4 MiB, most of them small.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        12 => 0..=128usize,
        8 => 0..=1024usize,
        4 => 1024..=16_384usize,
        2 => 16_384usize..=(512 << 10),
        1 => (512usize << 10)..=MAX_SIZE,
        1 => prop::sample::select(vec![0, 8, 16, 1024, 4096, 65_536, 1 << 20, MAX_SIZE]),
    ]
}

/// log2 of alignments 1..=1 MiB, most of them ordinary.
fn align() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 0..=4u32, 3 => 0..=13u32, 1 => 0..=MAX_ALIGN_SHIFT]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (size(), align()).prop_map(|(size, align)| Op::Alloc { size, align }),
        3 => (size(), align()).prop_map(|(size, align)| Op::AllocZeroed { size, align }),
        4 => (any::<usize>(), size(), align())
            .prop_map(|(pick, size, align)| Op::Realloc { pick, size, align }),
        4 => any::<usize>().prop_map(|pick| Op::Dealloc { pick }),
        3 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => any::<bool>().prop_map(|force| Op::Collect { force }),
    ]
}

struct Live {
    ptr: NonNull<u8>,
    layout: Layout,
    fill: u8,
}

/// The shadow model: live blocks in allocation order, and their usable ranges by address.
struct Model {
    live: Vec<Live>,
    ranges: BTreeMap<usize, usize>,
    next_fill: u8,
}

/// Whether the `len` bytes at `p` all equal `b` (compared a window at a time with `memcmp`, so
/// multi-MiB blocks stay cheap in debug builds).
///
/// # Safety
///
/// `[p, p + len)` is readable.
unsafe fn all_equal(p: *const u8, len: usize, b: u8) -> bool {
    let window = [b; 4096];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(window.len());
        // SAFETY: `[p + off, p + off + n)` is inside the caller's readable range.
        let got = unsafe { core::slice::from_raw_parts(p.wrapping_add(off), n) };
        if got != &window[..n] {
            return false;
        }
        off += n;
    }
    true
}

impl Model {
    fn new() -> Self {
        Model {
            live: Vec::new(),
            ranges: BTreeMap::new(),
            next_fill: 1,
        }
    }

    fn fill(&mut self) -> u8 {
        self.next_fill = self.next_fill.wrapping_add(37) | 1;
        self.next_fill
    }

    /// Checks a new block and records it, filled with a fresh byte.
    /// `fresh`: a new block (not one kept in place by `reallocate`).
    fn add<B: BaseAlloc>(
        &mut self,
        heap: &Heap<'_, '_, B>,
        ptr: NonNull<u8>,
        layout: Layout,
        fresh: bool,
    ) {
        let addr = ptr.as_ptr() as usize;
        assert_eq!(addr % layout.align(), 0, "{layout:?} at {addr:#x}");
        // SAFETY: a live block of this heap.
        let usable = unsafe { heap.usable_size(ptr) };
        assert!(usable >= layout.size(), "{layout:?}: usable {usable}");
        // Blocks of 16 bytes or more are 16-aligned; new blocks of power-of-two sizes up to the
        // shard size are naturally aligned.
        if usable >= 16 {
            assert_eq!(addr % 16, 0, "{layout:?} (block of {usable}) at {addr:#x}");
        }
        let size = layout.size();
        if fresh && size.is_power_of_two() && size <= SHARD_SIZE {
            assert_eq!(
                addr % size,
                0,
                "{layout:?} not naturally aligned at {addr:#x}"
            );
        }
        let end = addr + usable.max(1);
        if let Some((&s, &e)) = self.ranges.range(..end).next_back() {
            assert!(e <= addr, "{addr:#x}..{end:#x} overlaps {s:#x}..{e:#x}");
        }
        self.ranges.insert(addr, end);
        let fill = self.fill();
        // SAFETY: the block holds at least `layout.size()` bytes.
        unsafe { ptr.as_ptr().write_bytes(fill, layout.size()) };
        self.live.push(Live { ptr, layout, fill });
    }

    /// Removes block `i`, checking its contents first.
    fn take(&mut self, i: usize) -> Live {
        let b = self.live.swap_remove(i);
        // SAFETY: a live block of at least `b.layout.size()` bytes.
        let intact = unsafe { all_equal(b.ptr.as_ptr(), b.layout.size(), b.fill) };
        assert!(intact, "contents of {:?} changed", b.layout);
        self.ranges.remove(&(b.ptr.as_ptr() as usize));
        b
    }
}

fn layout(size: usize, align: u32) -> Layout {
    Layout::from_size_align(size, 1 << align).unwrap()
}

/// Runs `ops` on a fresh heap over `arenas`. `may_fail`: out of memory is an allowed outcome
/// (a small fixed region); otherwise every allocation must succeed.
fn run<B: BaseAlloc>(arenas: &Arenas<B>, ops: &[Op], may_fail: bool) {
    let cx = Context::new(arenas);
    let heap = Heap::new(&cx);
    let mut m = Model::new();
    for op in ops {
        match *op {
            Op::Alloc { size, align } => match heap.allocate(layout(size, align)) {
                Ok(p) => m.add(&heap, p, layout(size, align), true),
                Err(_) => assert!(may_fail, "allocate {size} align {align} failed"),
            },
            Op::AllocZeroed { size, align } => {
                match heap.allocate_zeroed(layout(size, align)) {
                    Ok(p) => {
                        // SAFETY: a live block of at least `size` bytes.
                        let zero = unsafe { all_equal(p.as_ptr(), size, 0) };
                        assert!(zero, "allocate_zeroed {size} align {align} not zeroed");
                        m.add(&heap, p, layout(size, align), true);
                    }
                    Err(_) => assert!(may_fail, "allocate_zeroed {size} failed"),
                }
            }
            Op::Realloc { pick, size, align } if !m.live.is_empty() => {
                let i = pick % m.live.len();
                let old = m.take(i);
                let new = layout(size, align);
                // SAFETY: a live block of this heap, allocated with `old.layout`.
                match unsafe { heap.reallocate(old.ptr, old.layout, new) } {
                    Ok(p) => {
                        let kept = old.layout.size().min(size);
                        // SAFETY: the new block holds at least `size >= kept` bytes.
                        let intact = unsafe { all_equal(p.as_ptr(), kept, old.fill) };
                        assert!(intact, "reallocate {:?} -> {new:?} lost data", old.layout);
                        m.add(&heap, p, new, p != old.ptr);
                    }
                    Err(_) => {
                        assert!(may_fail, "reallocate to {new:?} failed");
                        // The old block is untouched and still live.
                        m.add(&heap, old.ptr, old.layout, false);
                    }
                }
            }
            Op::Dealloc { pick } if !m.live.is_empty() => {
                let b = m.take(pick % m.live.len());
                // SAFETY: a live block of this heap, freed once.
                unsafe { heap.deallocate(b.ptr, b.layout) };
            }
            Op::Free { pick } if !m.live.is_empty() => {
                let b = m.take(pick % m.live.len());
                // SAFETY: a live block of this heap, freed once.
                unsafe { heap.free(b.ptr) };
            }
            Op::Collect { force } => heap.collect(force),
            _ => {}
        }
    }
    while !m.live.is_empty() {
        let b = m.take(m.live.len() - 1);
        // SAFETY: a live block of this heap, freed once.
        unsafe { heap.deallocate(b.ptr, b.layout) };
    }
    heap.collect(true);
    drop(cx);
    let s = arenas.stats();
    assert_eq!((s.slabs_in_use, s.direct_runs), (0, 0), "{s:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn heap_matches_model_over_mmap(ops in prop::collection::vec(op(), 1..120)) {
        let arenas = Arenas::new(Mmap);
        // Purge at once half the time, so reused slabs are sometimes fresh, sometimes dirty.
        if ops.len() % 2 == 0 {
            arenas.set_purge_delay(0);
        }
        run(&arenas, &ops, false);
    }
}

/// A fixed region for the `Static` runs: enough for the first arena (16 slabs) and a few huge
/// blocks, taken from (lazily zeroed) system memory.
const REGION: usize = 192 << 20;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn heap_matches_model_over_static(ops in prop::collection::vec(op(), 1..120)) {
        let mut region = vec![0u64; REGION / 8];
        let ptr = NonNull::new(region.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the region is ours, 8-aligned, zeroed, and outlives the base and its chunks
        // (the arenas are dropped first).
        let base = unsafe { Static::from_raw(ptr, REGION, 16, true) };
        {
            let arenas = Arenas::new(&base);
            run(&arenas, &ops, true);
        }
        // Every unit went back to the region with the arenas.
        let all = Layout::from_size_align(base.unit_count() << 16, 1).unwrap();
        let whole = (&base).allocate(all, false);
        let all_back = whole.is_ok();
        drop(whole);
        drop(region);
        prop_assert!(all_back, "units of the region were leaked");
    }
}
