//! Multi-threaded stress: 8 workers, each living 10 short lives (a thread of its own with a
//! fresh `Context`, 4,000 blocks per life), allocating blocks of mixed sizes, handing most of
//! them to other workers through channels to be freed (or reallocated, then kept) there, and
//! exiting with blocks still live in other hands, so their slabs are abandoned and reclaimed
//! while other threads free into them. Every block carries a cookie (its address, size and a
//! magic number) at both ends, checked before it is freed or reallocated. At the end every
//! slab must be back in the arenas and every base chunk released.
use core::{alloc::Layout, ptr::NonNull};
use std::sync::{
    Barrier,
    atomic::{AtomicUsize, Ordering},
    mpsc::{Receiver, Sender, channel},
};

use ferroc_arena::{Arenas, BaseAlloc};
use ferroc_base::{Mmap, testing::Failing};
use ferroc_heap::{Context, Heap};

const WORKERS: usize = 8;
const LIVES: usize = 10;
const BLOCKS_PER_LIFE: usize = 4000;
const MAGIC: u64 = 0xF3C0_0C1E_5EED_0001;

/// A block in flight: address and size.
type Block = (usize, usize);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn cookie(addr: usize, size: usize) -> u64 {
    (addr as u64).rotate_left(17) ^ (size as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ MAGIC
}

/// Where a block's cookies go: its first word (8-aligned, like every block) and its last
/// (maybe unaligned).
fn cookie_words(addr: usize, size: usize) -> (*mut u64, *mut u64) {
    (addr as *mut u64, (addr + size - 8) as *mut u64)
}

/// Writes a block's cookies: [`cookie`] in its first word, its complement in its last.
///
/// # Safety
///
/// `addr` is a live block of `size >= 8` bytes that this thread holds.
unsafe fn set_cookies(addr: usize, size: usize) {
    let (head, tail) = cookie_words(addr, size);
    let c = cookie(addr, size);
    // SAFETY: the first word of the caller's live block, 8-aligned.
    unsafe { head.write(c) };
    // SAFETY: the last word of the same block (`size >= 8`).
    unsafe { tail.write_unaligned(!c) };
}

/// The cookie in a block's first word.
///
/// # Safety
///
/// `addr` is a live block of at least 8 bytes that this thread holds.
unsafe fn head_cookie(addr: usize) -> u64 {
    // SAFETY: the first word of the caller's live block, 8-aligned.
    unsafe { (addr as *const u64).read() }
}

/// Mostly small, some medium and large, a few huge.
fn pick_size(rng: &mut Rng) -> usize {
    match rng.below(1000) {
        0..=799 => 16 + rng.below(1024),
        800..=969 => 1024 + rng.below(16 << 10),
        970..=997 => (16 << 10) + rng.below(500 << 10),
        _ => (4 << 20) + rng.below(2 << 20),
    }
}

fn allocate<B: BaseAlloc>(heap: &Heap<'_, '_, B>, rng: &mut Rng) -> Block {
    let size = pick_size(rng);
    let align = 8 << rng.below(3);
    let p = heap
        .allocate(Layout::from_size_align(size, align).unwrap())
        .expect("out of memory");
    let addr = p.as_ptr() as usize;
    assert_eq!(addr % align, 0);
    // SAFETY: the block just allocated, of `size >= 16` bytes.
    unsafe { set_cookies(addr, size) };
    (addr, size)
}

/// Checks a block's cookies, clears them (so a double free would be caught) and frees it.
fn free<B: BaseAlloc>(heap: &Heap<'_, '_, B>, (addr, size): Block) {
    let c = cookie(addr, size);
    let (head, tail) = cookie_words(addr, size);
    // SAFETY: a live block of `size` bytes handed to this thread.
    assert_eq!(unsafe { head_cookie(addr) }, c, "head cookie of {addr:#x}");
    // SAFETY: the last word of the same block (`size >= 16`).
    let tail = unsafe { tail.read_unaligned() };
    assert_eq!(tail, !c, "tail cookie of {addr:#x}");
    // SAFETY: the first word of the same block.
    unsafe { head.write(0) };
    // SAFETY: the same block, freed once.
    unsafe { heap.free(NonNull::new(addr as *mut u8).unwrap()) };
}

/// Takes what is waiting in `inbox`: a quarter of the blocks is reallocated here (from the
/// sender's slabs into this thread's, or in place) and kept, the rest is freed.
fn receive<B: BaseAlloc>(
    heap: &Heap<'_, '_, B>,
    inbox: &Receiver<Vec<Block>>,
    rng: &mut Rng,
    kept: &mut Vec<Block>,
) -> usize {
    let mut n = 0;
    for batch in inbox.try_iter() {
        n += batch.len();
        for (addr, size) in batch {
            if rng.below(4) != 0 {
                free(heap, (addr, size));
                continue;
            }
            let p = NonNull::new(addr as *mut u8).unwrap();
            let c = cookie(addr, size);
            let new = pick_size(rng).min(1 << 20);
            // SAFETY: a live block of `size` bytes handed to this thread.
            assert_eq!(unsafe { head_cookie(addr) }, c, "cookie of {addr:#x}");
            // SAFETY: the same live block, allocated with size `size` and alignment 8.
            let q = unsafe {
                heap.reallocate(
                    p,
                    Layout::from_size_align(size, 8).unwrap(),
                    Layout::from_size_align(new, 8).unwrap(),
                )
            }
            .expect("out of memory");
            let q_addr = q.as_ptr() as usize;
            // SAFETY: the live block `reallocate` returned; its first 8 bytes were kept.
            assert_eq!(unsafe { head_cookie(q_addr) }, c, "reallocate lost data");
            // SAFETY: the same block, of `new >= 16` bytes.
            unsafe { set_cookies(q_addr, new) };
            kept.push((q_addr, new));
        }
    }
    n
}

/// One life of worker `me`: a thread with its own context.
fn life<B: BaseAlloc>(
    arenas: &Arenas<B>,
    me: usize,
    seed: u64,
    inbox: &Receiver<Vec<Block>>,
    outs: &[Sender<Vec<Block>>],
    stats: &Counters,
) {
    let cx = Context::new(arenas);
    let heap = Heap::new(&cx);
    let mut rng = Rng(seed);
    let mut kept: Vec<Block> = Vec::new();
    let mut outgoing: Vec<Vec<Block>> = vec![Vec::new(); WORKERS];
    for i in 0..BLOCKS_PER_LIFE {
        let b = allocate(&heap, &mut rng);
        match rng.below(10) {
            // Freed here, later in this life.
            0..=2 => kept.push(b),
            // Freed by another worker.
            _ => {
                let to = (me + 1 + rng.below(WORKERS - 1)) % WORKERS;
                outgoing[to].push(b);
                if outgoing[to].len() >= 64 {
                    let _ = outs[to].send(std::mem::take(&mut outgoing[to]));
                }
            }
        }
        if kept.len() > 200 {
            let j = rng.below(kept.len());
            free(&heap, kept.swap_remove(j));
        }
        if i % 256 == 0 {
            let n = receive(&heap, inbox, &mut rng, &mut kept);
            stats.received.fetch_add(n, Ordering::Relaxed);
        }
    }
    let n = receive(&heap, inbox, &mut rng, &mut kept);
    stats.received.fetch_add(n, Ordering::Relaxed);
    // Exit with blocks still live: half of what is kept goes to other workers with the rest
    // of the outgoing batches, so this context's slabs are abandoned with live blocks.
    let half = kept.len() / 2;
    for b in kept.drain(half..) {
        outgoing[(me + 1) % WORKERS].push(b);
    }
    for b in kept {
        free(&heap, b);
    }
    for (to, batch) in outgoing.into_iter().enumerate() {
        if !batch.is_empty() {
            let _ = outs[to].send(batch);
        }
    }
    // The context drops, abandoning the slabs that still hold blocks in flight (the other
    // workers free or reclaim them later).
    drop(cx);
    stats
        .abandoned_seen
        .fetch_max(arenas.abandoned_count(), Ordering::Relaxed);
}

struct Counters {
    received: AtomicUsize,
    abandoned_seen: AtomicUsize,
}

#[test]
fn blocks_handed_between_threads_and_threads_exiting_with_live_blocks() {
    let failing = Failing::new(Mmap);
    let stats = Counters {
        received: AtomicUsize::new(0),
        abandoned_seen: AtomicUsize::new(0),
    };
    {
        let arenas = Arenas::new(&failing);
        let (outs, inboxes): (Vec<_>, Vec<_>) = (0..WORKERS).map(|_| channel()).unzip();
        let barrier = Barrier::new(WORKERS);
        std::thread::scope(|s| {
            for (me, inbox) in inboxes.into_iter().enumerate() {
                let (arenas, outs, barrier, stats) = (&arenas, outs.clone(), &barrier, &stats);
                s.spawn(move || {
                    let mut inbox = inbox;
                    for l in 0..LIVES {
                        let seed = 0x1234_5678 + (me * LIVES + l) as u64 * 7919;
                        // Each life is a thread of its own, which exits at its end.
                        let outs = &outs;
                        inbox = std::thread::scope(|t| {
                            t.spawn(move || {
                                life(arenas, me, seed, &inbox, outs, stats);
                                inbox
                            })
                            .join()
                            .unwrap()
                        });
                    }
                    drop(outs);
                    barrier.wait();
                    // Everyone has stopped sending: free what is left with a last context.
                    let cx = Context::new(arenas);
                    let heap = Heap::new(&cx);
                    for batch in inbox {
                        stats.received.fetch_add(batch.len(), Ordering::Relaxed);
                        for b in batch {
                            free(&heap, b);
                        }
                    }
                    heap.collect(true);
                });
            }
            drop(outs);
        });
        // Slabs abandoned with blocks that were all freed since are still waiting: a forced
        // collect reclaims and releases them.
        let cx = Context::new(&arenas);
        cx.collect(true);
        drop(cx);
        let s = arenas.stats();
        assert_eq!(
            (s.slabs_in_use, s.abandoned, s.direct_runs),
            (0, 0, 0),
            "{s:?}"
        );
    }
    assert!(
        stats.abandoned_seen.load(Ordering::Relaxed) > 0,
        "no slab was ever abandoned"
    );
    assert!(stats.received.load(Ordering::Relaxed) > WORKERS * LIVES * BLOCKS_PER_LIFE / 2);
    assert_eq!(failing.live_chunks(), 0, "base chunks leaked");
}

/// One thread allocates, eight others free (the remote-free and full-shard paths only: the
/// owner never frees anything itself). The live set is bounded by the channels, so if the owner
/// learns of every remote free into its full shards it keeps reusing them, and the slabs in use
/// stay near the live size instead of growing with the total allocated (256 MiB).
#[test]
fn producer_and_consumers_reuse_remotely_freed_memory() {
    const CONSUMERS: usize = 8;
    const BATCHES: usize = 1000;
    const BATCH: usize = 1000;
    const SIZE: usize = 256;
    let arenas = Arenas::new(Mmap);
    let peak = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let mut outs = Vec::new();
        for _ in 0..CONSUMERS {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(2);
            outs.push(tx);
            let arenas = &arenas;
            s.spawn(move || {
                let cx = Context::new(arenas);
                for batch in rx {
                    for p in batch {
                        free(&Heap::new(&cx), (p, SIZE));
                    }
                }
            });
        }
        let cx = Context::new(&arenas);
        let heap = Heap::new(&cx);
        let mut rng = Rng(99);
        for b in 0..BATCHES {
            let batch: Vec<usize> = (0..BATCH)
                .map(|_| {
                    let p = heap
                        .allocate(Layout::from_size_align(SIZE, 8).unwrap())
                        .unwrap();
                    let addr = p.as_ptr() as usize;
                    // SAFETY: the block just allocated, of `SIZE` bytes.
                    unsafe { set_cookies(addr, SIZE) };
                    addr
                })
                .collect();
            outs[(b + rng.below(CONSUMERS)) % CONSUMERS]
                .send(batch)
                .unwrap();
            peak.fetch_max(arenas.stats().slabs_in_use, Ordering::Relaxed);
        }
        drop(outs);
    });
    let peak = peak.into_inner();
    let total = BATCHES * BATCH * SIZE / ferroc_arena::sizes::SLAB_SIZE;
    // Live at once: at most 3 batches per consumer plus the one being made, 6.4 MiB.
    assert!(
        peak * ferroc_arena::sizes::SLAB_SIZE <= 32 << 20,
        "{peak} slabs in use at the peak ({total} without reuse)"
    );
    let cx = Context::new(&arenas);
    cx.collect(true);
    drop(cx);
    assert_eq!(arenas.stats().slabs_in_use, 0);
}
