//! Unit tests of a whole [`Context`]: after local frees, remote frees (into full shards too),
//! collects and the adoption of a dead context's slabs, every shard keeps the documented
//! invariant (`shard.rs`) and sits in the list its state says, the direct table follows the
//! queues, and every slab unit is either free or in exactly one shard.

use core::{alloc::Layout, ptr::NonNull};

use ferroc_arena::Arenas;
use ferroc_base::{Mmap, sync::atomic::Ordering};
use std::{collections::BTreeSet, vec::Vec};

use super::Context;
use crate::{
    class::{CLASS_SIZES, SMALL_MAX},
    shard::{EMPTY, FLAG_IN_FULL_LIST, Shard},
    thread_free,
};

/// The length of a free list, checking that every block on it is a block of `shard`
/// (inside its carved area, at a block boundary) and on no other list (`seen`).
fn walk(shard: &Shard, mut p: *mut thread_free::Block, seen: &mut BTreeSet<usize>) -> u32 {
    let (area, size) = (shard.area.get() as usize, shard.block_size.get());
    let end = area + shard.capacity.get() as usize * size;
    let mut n = 0;
    while !p.is_null() {
        let a = p as usize;
        assert!(
            a >= area && a < end && (a - area).is_multiple_of(size),
            "stray block {a:#x}"
        );
        assert!(seen.insert(a), "block {a:#x} on two lists");
        n += 1;
        // SAFETY: a free block of the shard, linked through its first word.
        p = unsafe { (*p).next };
    }
    n
}

/// Checks the documented shard invariant and the queue/list states of every shard of
/// `cx`, while no other thread frees into them.
fn check(cx: &Context<'_, Mmap>) {
    let mut queued = BTreeSet::new();
    for (c, queue) in cx.queues.iter().enumerate() {
        let mut p = queue.head.get();
        // SAFETY: queued shards are live shard metadata of the context's slabs.
        while let Some(s) = unsafe { p.as_ref() } {
            assert_eq!(s.class(), c);
            assert_eq!(s.flags.load(Ordering::Relaxed), 0);
            assert_eq!(s.thread_free.state(), thread_free::NORMAL);
            queued.insert(s as *const Shard as usize);
            p = s.next.get();
        }
        if CLASS_SIZES[c] <= SMALL_MAX {
            let head = queue.head.get();
            let want = if head.is_null() { EMPTY } else { head };
            assert_eq!(
                cx.direct[CLASS_SIZES[c] / 8].get(),
                want,
                "direct table, class {c}"
            );
        }
    }
    let mut full = BTreeSet::new();
    let mut p = cx.full.head.get();
    // SAFETY: shards in the full list are live shard metadata of the context's slabs.
    while let Some(s) = unsafe { p.as_ref() } {
        assert_eq!(s.flags.load(Ordering::Relaxed), FLAG_IN_FULL_LIST);
        let st = s.thread_free.state();
        assert!(
            st == thread_free::PARKED || st == thread_free::NOTIFIED,
            "state {st}"
        );
        full.insert(s as *const Shard as usize);
        p = s.next.get();
    }
    for sl in cx.own_slabs() {
        let mut units = 0u64;
        let mut shards = 0;
        for s in sl.heads() {
            let mut seen = BTreeSet::new();
            let free = walk(s, s.free.get(), &mut seen);
            let local = walk(s, s.local_free.get(), &mut seen);
            let remote = walk(s, s.thread_free.peek(), &mut seen);
            assert!(s.capacity.get() <= s.reserved.get());
            let counted = u32::from(s.free_counted.get());
            assert!(counted <= 1);
            assert_eq!(
                s.used.get(),
                s.capacity.get() - counted * free - local,
                "used"
            );
            assert!(remote <= s.used.get());
            let addr = s as *const Shard as usize;
            assert!(queued.contains(&addr) ^ full.contains(&addr), "in one list");
            let u = sl.unit_of(s);
            units |= crate::slab::unit_mask(u, s.units.get() as usize);
            shards += 1;
        }
        assert_eq!(units & sl.free_units.get(), 0, "free units in use");
        assert_eq!(
            units | sl.free_units.get(),
            crate::slab::ALL_UNITS,
            "units lost"
        );
        assert_eq!(shards, sl.used_shards.get());
        for s in &sl.shards {
            assert_eq!(s.own_offset.get(), s.offset.get(), "owner's offset copy");
            assert_eq!(
                s.own_flags.get(),
                s.flags.load(Ordering::Relaxed),
                "flags copy"
            );
        }
    }
}

/// Frees `blocks` from a new context on another thread: the remote path, and the parked-shard
/// notifications for full shards.
///
/// # Safety
///
/// Each is a live block of a context over `arenas`, freed once.
unsafe fn free_elsewhere(arenas: &Arenas<Mmap>, blocks: impl IntoIterator<Item = usize> + Send) {
    std::thread::scope(|s| {
        s.spawn(|| {
            let other = Context::new(arenas);
            for p in blocks {
                // SAFETY: a live block of a context over `arenas`, freed once (this fn's
                // contract).
                unsafe { free(&other, p) };
            }
        });
    });
}

/// Frees the block at `p` through `cx`.
///
/// # Safety
///
/// `p` is a live block of a context over `cx`'s arenas, freed once.
unsafe fn free(cx: &Context<'_, Mmap>, p: usize) {
    // SAFETY: a live block of a context over our arenas, freed once (this fn's contract).
    unsafe { cx.free(NonNull::new(p as *mut u8).unwrap()) };
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Blocks freed by another thread come back as an uncounted `free` list: allocation pops
/// them without counting, `used` stays exact enough to release nothing live, and once
/// everything is freed locally the shards and slabs are released.
#[test]
fn uncounted_remote_lists_are_reused_and_settled() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let l = Layout::from_size_align(64, 8).unwrap();
    let first: Vec<usize> = (0..4000)
        .map(|_| cx.allocate(l).unwrap().as_ptr() as usize)
        .collect();
    // SAFETY: the blocks just allocated, each freed once.
    unsafe { free_elsewhere(&arenas, first.iter().copied()) };
    let mut second = Vec::new();
    let mut saw_uncounted = false;
    for _ in 0..4000 {
        second.push(cx.allocate(l).unwrap().as_ptr() as usize);
        // SAFETY: the direct entry points at a live shard or the empty one.
        saw_uncounted |= unsafe { !(*cx.direct[64 / 8].get()).free_counted.get() };
    }
    assert!(saw_uncounted, "a remote list was taken whole");
    check(&cx);
    let reused = second.iter().filter(|p| first.contains(p)).count();
    assert!(reused > 3000, "remotely freed blocks are reused ({reused})");
    for p in second.drain(..2000) {
        // SAFETY: a live block, taken out of `second`: freed once.
        unsafe { free(&cx, p) };
    }
    check(&cx);
    cx.collect(false);
    check(&cx);
    for p in second {
        // SAFETY: a live block, taken out of `second`: freed once.
        unsafe { free(&cx, p) };
    }
    cx.collect(true);
    assert!(!cx.owns_slabs());
    assert_eq!(arenas.stats().slabs_in_use, 0);
}

#[test]
fn shard_invariants_hold_through_local_and_remote_frees() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let mut rng = Rng(0x5EED);
    let mut live: Vec<usize> = Vec::new();
    for round in 0..6 {
        for _ in 0..4000 {
            if live.is_empty() || rng.below(3) != 0 {
                let size = [16, 48, 200, 1024, 3000, 20_000, 200_000][rng.below(7)];
                let align = 1 << rng.below(7);
                let p = cx
                    .allocate(Layout::from_size_align(size, align).unwrap())
                    .unwrap();
                live.push(p.as_ptr() as usize);
            } else {
                let p = live.swap_remove(rng.below(live.len()));
                // SAFETY: a live block, taken out of `live`: freed once.
                unsafe { free(&cx, p) };
            }
        }
        check(&cx);
        // Another thread frees a third of what is live (into full shards, too).
        let theirs: Vec<usize> = (0..live.len() / 3)
            .map(|_| live.swap_remove(rng.below(live.len())))
            .collect();
        // SAFETY: live blocks, taken out of `live`: each freed once.
        unsafe { free_elsewhere(&arenas, theirs) };
        check(&cx);
        cx.collect(round % 2 == 0);
        check(&cx);
    }
    // A context that dies with live blocks: its slabs are adopted by a forced collect.
    let orphans: Vec<usize> = std::thread::scope(|s| {
        s.spawn(|| {
            let dying = Context::new(&arenas);
            let mut rng = Rng(7);
            let mut v: Vec<usize> = (0..3000)
                .map(|_| {
                    let size = [24, 512, 5000][rng.below(3)];
                    let l = Layout::from_size_align(size, 8).unwrap();
                    dying.allocate(l).unwrap().as_ptr() as usize
                })
                .collect();
            for _ in 0..1500 {
                let p = v.swap_remove(rng.below(v.len()));
                // SAFETY: a live block of `dying`, taken out of `v`: freed once.
                unsafe { free(&dying, p) };
            }
            v
        })
        .join()
        .unwrap()
    });
    cx.collect(true);
    check(&cx);
    for p in live.into_iter().chain(orphans) {
        // SAFETY: the blocks still live (ours and the dead context's), each freed once.
        unsafe { free(&cx, p) };
    }
    check(&cx);
    cx.collect(true);
    assert!(!cx.owns_slabs());
    assert_eq!(arenas.stats().slabs_in_use, 0);
}
