//! Proptest of `Context::visit_blocks` and `Context::contains`: random allocations of every
//! kind (small to huge) and frees, local and from another thread, after each of which the
//! visited set is exactly the live shard blocks with their usable sizes, none twice, and
//! `contains` agrees (huge blocks belong to no context: never visited, never contained).
use core::{alloc::Layout, ptr::NonNull};
use std::{collections::BTreeMap, sync::mpsc, thread};

use ferroc_arena::{Arenas, sizes::SLAB_SIZE};
use ferroc_base::Mmap;
use ferroc_heap::{Context, Heap};
use proptest::prelude::*;

mod common;

/// Largest size served from shards (an eighth of a slab); above it blocks are huge.
const LARGE_MAX: usize = SLAB_SIZE / 8;

#[derive(Debug, Clone)]
enum Op {
    Alloc { size: usize, align_shift: u32 },
    FreeLocal { pick: usize },
    FreeRemote { pick: usize },
    Collect { force: bool },
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0..=1024usize,
        4 => 1025..=LARGE_MAX,
        1 => LARGE_MAX + 1..=3 * SLAB_SIZE,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (size(), 0..=7u32).prop_map(|(size, align_shift)| Op::Alloc { size, align_shift }),
        3 => any::<usize>().prop_map(|pick| Op::FreeLocal { pick }),
        2 => any::<usize>().prop_map(|pick| Op::FreeRemote { pick }),
        1 => any::<bool>().prop_map(|force| Op::Collect { force }),
    ]
}

/// A block's address, sendable to the freeing thread.
struct Sent(usize);

fn check(heap: &Heap<'_, '_, Mmap>, live: &BTreeMap<usize, (NonNull<u8>, bool)>) {
    let seen = common::visited::visited(|f| heap.visit_blocks(f));
    let want: BTreeMap<usize, usize> = live
        .iter()
        .filter(|(_, (_, huge))| !huge)
        // SAFETY: live blocks of the heap.
        .map(|(&a, &(p, _))| (a, unsafe { heap.usable_size(p) }))
        .collect();
    assert_eq!(seen, want);
    for (&a, &(p, huge)) in live {
        assert_eq!(heap.contains(p.as_ptr()), !huge, "contains {a:#x}");
        // SAFETY: a live block of the heap.
        let last_byte = a + unsafe { heap.usable_size(p) } - 1;
        assert_eq!(heap.contains(last_byte as *const u8), !huge);
    }
}

fn run(ops: Vec<Op>) {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    let (to_freer, inbox) = mpsc::channel::<Sent>();
    let (done, acks) = mpsc::channel::<()>();
    thread::scope(|s| {
        let arenas = &arenas;
        s.spawn(move || {
            let other = Context::new(arenas);
            for Sent(a) in inbox {
                // SAFETY: a live block of a context over the same arenas, handed over to be
                // freed once.
                unsafe { other.free(NonNull::new(a as *mut u8).unwrap()) };
                done.send(()).unwrap();
            }
        });
        let mut live: BTreeMap<usize, (NonNull<u8>, bool)> = BTreeMap::new();
        let mut freed = Vec::new();
        for op in ops {
            match op {
                Op::Alloc { size, align_shift } => {
                    let layout = Layout::from_size_align(size, 1 << align_shift).unwrap();
                    let p = heap.allocate(layout).unwrap();
                    let huge = size > LARGE_MAX;
                    live.insert(p.as_ptr() as usize, (p, huge));
                }
                Op::FreeLocal { pick } | Op::FreeRemote { pick } if !live.is_empty() => {
                    let a = *live.keys().nth(pick % live.len()).unwrap();
                    let (p, _) = live.remove(&a).unwrap();
                    if matches!(op, Op::FreeLocal { .. }) {
                        // SAFETY: a live block of the heap, freed once.
                        unsafe { heap.free(p) };
                    } else {
                        to_freer.send(Sent(a)).unwrap();
                        acks.recv().unwrap();
                    }
                    freed.push(a);
                }
                Op::Collect { force } => heap.collect(force),
                _ => {}
            }
            check(&heap, &live);
            // A freed address is contained only if a live shard block now covers it.
            for &a in &freed {
                let covered = live
                    .range(..=a)
                    .next_back()
                    .is_some_and(|(&start, &(p, huge))| {
                        // SAFETY: a live block of the heap.
                        !huge && a < start + unsafe { heap.usable_size(p) }
                    });
                assert_eq!(heap.contains(a as *const u8), covered, "freed {a:#x}");
            }
        }
        drop(to_freer);
        for (_, (p, _)) in live {
            // SAFETY: a live block of the heap, freed once.
            unsafe { heap.free(p) };
        }
    });
    check(&heap, &BTreeMap::new());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn visit_yields_the_live_set(ops in prop::collection::vec(op(), 1..200)) {
        run(ops);
    }
}
