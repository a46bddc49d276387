//! Allocator micro-benchmarks: Ferroc's explicit `Heap` and its global `Ferroc` beside the
//! system allocator and mimalloc, every case in one criterion group so the lines share a
//! chart and a run.
//!
//! Cases (each group's functions are the allocators, its parameter the size when there is one):
//! - `pair/<size>`: one allocation and its free, in one thread, at 16 B to 32 KiB;
//! - `batch_10k_mixed`: 10,000 allocations of mixed small sizes, then their 10,000 frees;
//! - `realloc_growth`: one block grown by doubling from 1 B to 1 MiB, then freed;
//! - `producer_consumer`: per block, allocated by one thread and freed by another.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p ferroc-benches --bench heap`). Times are
//! wall time, or process CPU time with `FERROC_BENCH_CLOCK=cpu` (see `clock`).

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    ptr::{self, NonNull},
    sync::atomic::{AtomicPtr, AtomicUsize, Ordering},
    thread,
    time::Duration,
};

use criterion::{BenchmarkId, Throughput, criterion_group, criterion_main};
use ferroc::{Arenas, Context, Heap, base::Mmap};

mod clock;
use clock::Clock;

type Criterion = criterion::Criterion<Clock>;
type Bencher<'a> = criterion::Bencher<'a, Clock>;

/// What a benchmark needs of an allocator. Implemented by a `Heap` (per thread) and by every
/// `GlobalAlloc` (through [`Global`]).
trait Alloc {
    /// Allocates; null on failure.
    ///
    /// # Safety
    ///
    /// `layout` has a non-zero size.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8;
    /// Frees.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this allocator (or, for a `Heap`, of the same `Arenas`)
    /// allocated with `layout`.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout);
    /// Resizes to `new_size` bytes; null on failure.
    ///
    /// # Safety
    ///
    /// As for `dealloc`, and `new_size` is not 0.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8;
}

/// A `GlobalAlloc` called directly (not installed as the process allocator).
struct Global<A: GlobalAlloc>(A);

impl<A: GlobalAlloc> Alloc for Global<A> {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `layout` has a non-zero size (this fn's contract, `GlobalAlloc::alloc`'s).
        unsafe { self.0.alloc(layout) }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: a live block of this allocator with `layout` (this fn's contract, which is
        // `GlobalAlloc::dealloc`'s).
        unsafe { self.0.dealloc(ptr, layout) }
    }

    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: a live block of this allocator with `layout`, and a valid non-zero
        // `new_size` (this fn's contract, which is `GlobalAlloc::realloc`'s).
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

impl Alloc for Heap<'_, '_, Mmap> {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocate(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a live block of this heap, and no live block is null.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        // SAFETY: a live block of this heap allocated with `layout` (this fn's contract).
        unsafe { self.deallocate(ptr, layout) }
    }

    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a valid size for `layout`'s alignment (this fn's contract).
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: the caller passes a live block of this heap, and no live block is null.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        // SAFETY: a live block of this heap allocated with `layout` (this fn's contract).
        unsafe { self.reallocate(ptr, layout, new) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}

/// The allocators of every case, by the name each line carries. A case gets a fresh way to
/// reach each one per thread: `with` calls `f` with the allocator as seen by the current thread
/// (for Ferroc's `Heap`, a context and heap of the thread's own over the shared `Arenas`).
#[derive(Clone, Copy)]
enum Which {
    /// `ferroc::Heap` over its own `Arenas<Mmap>` (the explicit-instance API).
    FerrocHeap,
    /// `ferroc::Ferroc` through `GlobalAlloc` (what `#[global_allocator]` users get).
    Ferroc,
    /// `mimalloc::MiMalloc` through `GlobalAlloc`.
    Mimalloc,
    /// `std::alloc::System` (glibc's malloc).
    System,
}

const ALLOCATORS: [Which; 4] = [
    Which::FerrocHeap,
    Which::Ferroc,
    Which::Mimalloc,
    Which::System,
];

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::FerrocHeap => "ferroc-heap",
            Which::Ferroc => "ferroc",
            Which::Mimalloc => "mimalloc",
            Which::System => "system",
        }
    }
}

/// Something to run with an allocator in the current thread (a generic closure).
trait WithAlloc {
    type Output;
    fn run<A: Alloc>(self, a: &A) -> Self::Output;
}

/// Runs `f` with the allocator `which` as the current thread sees it. `arenas` backs the
/// `Heap` line: each call makes a context of the calling thread over it.
fn with<F: WithAlloc>(which: Which, arenas: &Arenas<Mmap>, f: F) -> F::Output {
    match which {
        Which::FerrocHeap => {
            let cx = Context::new(arenas);
            let heap = Heap::new(&cx);
            f.run(&heap)
        }
        Which::Ferroc => f.run(&Global(ferroc::Ferroc)),
        Which::Mimalloc => f.run(&Global(mimalloc::MiMalloc)),
        Which::System => f.run(&Global(System)),
    }
}

/// A deterministic pseudo-random sequence (xorshift64).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `n` mixed small sizes, 8 to 1024 bytes, most of them under 128 (as in typical programs).
fn mixed_small_sizes(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = seed;
    (0..n)
        .map(|_| {
            let r = xorshift(&mut rng);
            if r.is_multiple_of(8) {
                8 + (r >> 8) as usize % 1017
            } else {
                8 + (r >> 8) as usize % 121
            }
        })
        .collect()
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).expect("a valid layout")
}

// -------------------------------------------------------------------------------------------
// pair: one allocation and its free
// -------------------------------------------------------------------------------------------

const PAIR_SIZES: [usize; 6] = [16, 64, 256, 1024, 4096, 32768];

struct Pair<'b, 'c> {
    b: &'b mut Bencher<'c>,
    layout: Layout,
}

impl WithAlloc for Pair<'_, '_> {
    type Output = ();
    fn run<A: Alloc>(self, a: &A) {
        let layout = self.layout;
        self.b.iter(|| {
            // SAFETY: a non-zero size.
            let p = unsafe { a.alloc(black_box(layout)) };
            assert!(!p.is_null());
            // SAFETY: the block just allocated with `layout`, freed once.
            unsafe { a.dealloc(black_box(p), layout) };
        });
    }
}

fn pair(c: &mut Criterion, arenas: &Arenas<Mmap>) {
    let mut group = c.benchmark_group("pair");
    group.throughput(Throughput::Elements(1));
    for size in PAIR_SIZES {
        for which in ALLOCATORS {
            group.bench_with_input(BenchmarkId::new(which.name(), size), &size, |b, &size| {
                with(
                    which,
                    arenas,
                    Pair {
                        b,
                        layout: layout(size),
                    },
                );
            });
        }
    }
    group.finish();
}

// -------------------------------------------------------------------------------------------
// batch: 10,000 allocations, then 10,000 frees
// -------------------------------------------------------------------------------------------

const BATCH: usize = 10_000;

struct Batch<'b, 'c, 's> {
    b: &'b mut Bencher<'c>,
    layouts: &'s [Layout],
}

impl WithAlloc for Batch<'_, '_, '_> {
    type Output = ();
    fn run<A: Alloc>(self, a: &A) {
        let layouts = self.layouts;
        // The pointer array comes from the process allocator, once, outside the timing.
        let mut blocks = vec![ptr::null_mut::<u8>(); layouts.len()];
        self.b.iter(|| {
            for (slot, &l) in blocks.iter_mut().zip(layouts) {
                // SAFETY: non-zero sizes.
                let p = unsafe { a.alloc(l) };
                assert!(!p.is_null());
                // Touch the block, as its user would.
                // SAFETY: the block holds at least 8 bytes.
                unsafe { p.write(1) };
                *slot = p;
            }
            black_box(&mut blocks);
            for (&p, &l) in blocks.iter().zip(layouts) {
                // SAFETY: each block is live and freed once, with its layout.
                unsafe { a.dealloc(p, l) };
            }
        });
    }
}

fn batch(c: &mut Criterion, arenas: &Arenas<Mmap>) {
    let layouts: Vec<Layout> = mixed_small_sizes(BATCH, 0x2545_f491_4f6c_dd1d)
        .into_iter()
        .map(layout)
        .collect();
    let mut group = c.benchmark_group("batch_10k_mixed");
    group.throughput(Throughput::Elements(BATCH as u64));
    for which in ALLOCATORS {
        group.bench_function(which.name(), |b| {
            with(
                which,
                arenas,
                Batch {
                    b,
                    layouts: &layouts,
                },
            );
        });
    }
    group.finish();
}

// -------------------------------------------------------------------------------------------
// realloc growth: 1 B to 1 MiB by doubling
// -------------------------------------------------------------------------------------------

const GROWTH_MAX: usize = 1 << 20;

struct Growth<'b, 'c> {
    b: &'b mut Bencher<'c>,
}

impl WithAlloc for Growth<'_, '_> {
    type Output = ();
    fn run<A: Alloc>(self, a: &A) {
        self.b.iter(|| {
            let mut l = Layout::from_size_align(1, 1).expect("a valid layout");
            // SAFETY: a non-zero size.
            let mut p = unsafe { a.alloc(l) };
            assert!(!p.is_null());
            // SAFETY: the block holds at least one byte.
            unsafe { p.write(1) };
            while l.size() < GROWTH_MAX {
                let new_size = l.size() * 2;
                // SAFETY: `p` is the live block, allocated or last resized with `l`; the new
                // size is non-zero.
                p = unsafe { a.realloc(p, l, new_size) };
                assert!(!p.is_null());
                l = Layout::from_size_align(new_size, 1).expect("a valid layout");
                // SAFETY: the block holds `new_size` bytes: write its new last byte, as a
                // growing buffer does.
                unsafe { p.wrapping_add(new_size - 1).write(1) };
            }
            // SAFETY: the live block, with its current layout, freed once.
            unsafe { a.dealloc(black_box(p), l) };
        });
    }
}

fn realloc_growth(c: &mut Criterion, arenas: &Arenas<Mmap>) {
    let mut group = c.benchmark_group("realloc_growth");
    for which in ALLOCATORS {
        group.bench_function(which.name(), |b| with(which, arenas, Growth { b }));
    }
    group.finish();
}

// -------------------------------------------------------------------------------------------
// producer/consumer: blocks allocated by one thread, freed by another
// -------------------------------------------------------------------------------------------

/// A bounded single-producer, single-consumer ring of block pointers.
struct Ring {
    slots: Box<[AtomicPtr<u8>]>,
    /// Blocks pushed so far (written by the producer).
    head: AtomicUsize,
    /// Blocks popped so far (written by the consumer).
    tail: AtomicUsize,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        Ring {
            slots: (0..capacity)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    fn push(&self, p: *mut u8) {
        let head = self.head.load(Ordering::Relaxed);
        let mut spins = 0u32;
        while head - self.tail.load(Ordering::Acquire) == self.slots.len() {
            backoff(&mut spins);
        }
        self.slots[head % self.slots.len()].store(p, Ordering::Relaxed);
        self.head.store(head + 1, Ordering::Release);
    }

    fn pop(&self) -> *mut u8 {
        let tail = self.tail.load(Ordering::Relaxed);
        let mut spins = 0u32;
        while self.head.load(Ordering::Acquire) == tail {
            backoff(&mut spins);
        }
        let p = self.slots[tail % self.slots.len()].load(Ordering::Relaxed);
        self.tail.store(tail + 1, Ordering::Release);
        p
    }
}

/// Spins a little, then yields: the machine may have fewer cores than running threads.
fn backoff(spins: &mut u32) {
    if *spins < 64 {
        std::hint::spin_loop();
        *spins += 1;
    } else {
        thread::yield_now();
    }
}

/// Sizes the producer cycles through.
const HANDOFF_SIZES: [usize; 8] = [16, 24, 32, 48, 64, 96, 128, 256];

/// One side of the hand-off of `n` blocks through `ring`.
struct Handoff<'r> {
    ring: &'r Ring,
    n: u64,
    side: Side,
}

enum Side {
    /// Allocates the blocks (sizes cycling through [`HANDOFF_SIZES`]) and pushes them.
    Produce,
    /// Pops the blocks and frees them.
    Consume,
}

impl WithAlloc for Handoff<'_> {
    type Output = ();
    fn run<A: Alloc>(self, a: &A) {
        let layout_of = |i: u64| layout(HANDOFF_SIZES[i as usize % HANDOFF_SIZES.len()]);
        match self.side {
            Side::Produce => {
                for i in 0..self.n {
                    // SAFETY: a non-zero size.
                    let p = unsafe { a.alloc(layout_of(i)) };
                    assert!(!p.is_null());
                    // SAFETY: at least 16 bytes.
                    unsafe { p.cast::<u64>().write(i) };
                    self.ring.push(p);
                }
            }
            Side::Consume => {
                for i in 0..self.n {
                    let p = self.ring.pop();
                    // SAFETY: the producer wrote the block's index there.
                    assert_eq!(unsafe { p.cast::<u64>().read() }, i);
                    // SAFETY: a live block of the producer's allocator (for the `Heap` line: a
                    // heap over the same `Arenas`), freed once with its layout.
                    unsafe { a.dealloc(p, layout_of(i)) };
                }
            }
        }
    }
}

fn producer_consumer(c: &mut Criterion, arenas: &Arenas<Mmap>) {
    let mut group = c.benchmark_group("producer_consumer");
    group.throughput(Throughput::Elements(1));
    for which in ALLOCATORS {
        group.bench_function(which.name(), |b| {
            // One block per iteration; the two threads live for one sample.
            b.iter_custom(|iters| {
                let ring = Ring::new(1024);
                let clock = Clock::from_env();
                let start = clock.now();
                let side = |side| {
                    let handoff = Handoff {
                        ring: &ring,
                        n: iters,
                        side,
                    };
                    with(which, arenas, handoff)
                };
                thread::scope(|s| {
                    s.spawn(|| side(Side::Produce));
                    s.spawn(|| side(Side::Consume));
                });
                clock.now() - start
            });
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let arenas = Arenas::new(Mmap);
    pair(c, &arenas);
    batch(c, &arenas);
    realloc_growth(c, &arenas);
    producer_consumer(c, &arenas);
}

fn config() -> Criterion {
    criterion::Criterion::default()
        .with_measurement(Clock::from_env())
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = heap;
    config = config();
    targets = benches
}
criterion_main!(heap);
