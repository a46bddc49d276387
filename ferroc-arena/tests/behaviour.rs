//! The arenas' documented behaviour, step by step: growth (each arena larger than the last, up
//! to the cap, and arenas of more than 64, 128 and 1000 slabs), direct runs from the base,
//! `manage`, and purging after the configured delay (checked on the decommit calls of a
//! counting base with a hand-moved clock, never on timing).

mod common;

use std::alloc::Layout;

use common::{Probe, give_back};
use ferroc_arena::{
    Arenas, BaseAlloc, Error,
    sizes::{MAX_ARENA_SLABS, MIN_ARENA_SLABS, SLAB_SHIFT, SLAB_SIZE},
};
use ferroc_base::{Mmap, Static, StaticMemory, testing::Failing};

#[test]
fn each_arena_is_larger_than_the_last_up_to_the_cap() {
    let probe = Probe::new(Mmap, None);
    let arenas = Arenas::new(&probe);
    let mut runs = Vec::new();
    let mut sizes = Vec::new();
    // One slab at a time until 8 arenas exist: each new one is made when the others are full.
    while arenas.stats().arenas < 8 {
        let before = arenas.stats().arenas;
        let r = arenas.allocate(1, SLAB_SIZE, 0, false).unwrap();
        assert!(!r.is_direct());
        if arenas.stats().arenas > before {
            // The newest chunk is the one holding the run just claimed.
            let p = r.pointer().as_ptr() as usize;
            let (_, len) = probe
                .chunks()
                .into_iter()
                .find(|&(s, l)| p >= s && p < s + l)
                .unwrap();
            assert_eq!(p % SLAB_SIZE, 0);
            sizes.push(len >> SLAB_SHIFT);
        }
        runs.push(r);
    }
    let expect: Vec<usize> = (0..8)
        .map(|i| (MIN_ARENA_SLABS << i).min(MAX_ARENA_SLABS))
        .collect();
    assert_eq!(sizes, expect);
    assert!(
        sizes
            .windows(2)
            .all(|w| w[1] > w[0] || w[1] == MAX_ARENA_SLABS)
    );
    assert_eq!(arenas.stats().slabs_in_use, runs.len());
    give_back(&arenas, runs);
}

/// The first word of slab `i` of the run at `run`: where the tests leave a mark.
fn slab_word(run: std::ptr::NonNull<u8>, i: usize) -> *mut u64 {
    run.as_ptr().wrapping_add(i << SLAB_SHIFT).cast()
}

/// Where a run lies: the start of the chunk (arena) holding it and its slab index there.
fn place<B: BaseAlloc, I>(probe: &Probe<I>, r: &ferroc_arena::SlabRun<B>) -> (usize, usize) {
    let p = r.pointer().as_ptr() as usize;
    let (start, _) = probe
        .chunks()
        .into_iter()
        .find(|&(s, l)| p >= s && p < s + l)
        .expect("run outside every chunk");
    (start, (p - start) >> SLAB_SHIFT)
}

/// Arenas of 128, 256, 512 and 1024 slabs: runs crossing 64-bit bitmap words, runs of exactly
/// 64·k slabs, and the last slab of a 1024-slab arena, at the places first fit puts them.
#[test]
fn big_arenas_serve_runs_across_bitmap_words() {
    let probe = Probe::new(Mmap, None);
    let arenas = Arenas::new(&probe);
    let claim = |n: usize| arenas.allocate(n, SLAB_SIZE, 0, false).unwrap();
    // Fill arenas 0..=2 (16 + 32 + 64 slabs) so that the next claim makes arena 3 (128).
    let mut keep: Vec<_> = [16, 32, 64].into_iter().map(claim).collect();
    assert_eq!(arenas.stats().arenas, 3);

    let a = claim(63);
    assert_eq!(arenas.stats().arenas, 4);
    let (arena3, i) = place(&probe, &a);
    assert_eq!(i, 0);
    assert_eq!(probe.chunk_at(arena3).unwrap() >> SLAB_SHIFT, 128);
    let b = claim(2);
    assert_eq!(
        place(&probe, &b),
        (arena3, 63),
        "slabs 63 and 64: two bitmap words"
    );
    let c = claim(63);
    assert_eq!(
        place(&probe, &c),
        (arena3, 65),
        "up to the arena's last slab"
    );
    arenas.deallocate(a);
    arenas.deallocate(b);
    let d = claim(65);
    assert_eq!(
        place(&probe, &d),
        (arena3, 0),
        "65 slabs from 0: crosses a word"
    );
    keep.extend([c, d]);
    assert_eq!(arenas.stats().arenas, 4, "arena 3 is full, nothing new yet");

    // Arena 4 (256 slabs): runs of exactly 128 and 64 slabs fall on word boundaries.
    let e = claim(128);
    let (arena4, i) = place(&probe, &e);
    assert_eq!((i, probe.chunk_at(arena4).unwrap() >> SLAB_SHIFT), (0, 256));
    let f = claim(64);
    assert_eq!(place(&probe, &f), (arena4, 128));
    let g = claim(1);
    assert_eq!(place(&probe, &g), (arena4, 192));
    let h = claim(63);
    assert_eq!(
        place(&probe, &h),
        (arena4, 193),
        "ends on the arena's last slab"
    );
    keep.extend([e, f, g, h]);

    // Arena 5 (512 slabs), filled; then arena 6: 1024 slabs.
    keep.push(claim(512));
    assert_eq!(arenas.stats().arenas, 6);
    let big = claim(1000);
    let (arena6, i) = place(&probe, &big);
    assert_eq!(
        (i, probe.chunk_at(arena6).unwrap() >> SLAB_SHIFT),
        (0, 1024)
    );
    let tail = claim(23);
    assert_eq!(place(&probe, &tail), (arena6, 1000));
    let last = claim(1);
    assert_eq!(
        place(&probe, &last),
        (arena6, 1023),
        "bit 63 of the 16th word"
    );
    arenas.deallocate(big);
    let runs: Vec<_> = [64, 128, 640, 168].into_iter().map(claim).collect();
    let at: Vec<_> = runs.iter().map(|r| place(&probe, r)).collect();
    assert_eq!(
        at,
        [(arena6, 0), (arena6, 64), (arena6, 192), (arena6, 832)]
    );
    assert_eq!(arenas.stats().arenas, 7);
    // Everything is full: one more slab makes arena 7, of the capped size.
    let more = claim(1);
    assert_eq!(arenas.stats().arenas, 8);
    let (arena7, _) = place(&probe, &more);
    assert_eq!(
        probe.chunk_at(arena7).unwrap() >> SLAB_SHIFT,
        MAX_ARENA_SLABS
    );

    keep.extend(runs);
    keep.extend([tail, last, more]);
    let in_use = arenas.stats().slabs_in_use;
    assert_eq!(in_use, keep.iter().map(|r| r.count()).sum::<usize>());
    give_back(&arenas, keep);
}

#[test]
fn requests_bigger_than_an_arena_go_straight_to_the_base() {
    let probe = Probe::new(Mmap, None);
    let arenas = Arenas::new(&probe);
    // Nothing yet: the next arena would be 16 slabs, so 17 are a direct run.
    let d = arenas.allocate(17, SLAB_SIZE, 0, true).unwrap();
    assert!(d.is_direct());
    assert_eq!(arenas.stats().arenas, 0);
    assert_eq!(probe.live_chunks(), 1);
    assert!(probe.holds(d.pointer().as_ptr() as usize, d.size(), false));
    assert!(d.is_zeroed());
    let s = arenas.stats();
    assert_eq!((s.direct_runs, s.direct_bytes), (1, 17 << SLAB_SHIFT));
    arenas.deallocate(d);
    assert_eq!(
        probe.live_chunks(),
        0,
        "a direct run goes back to the base at once"
    );
    assert_eq!(arenas.stats().direct_runs, 0);

    // 16 slabs fit the next arena: an arena is made.
    let a = arenas.allocate(16, SLAB_SIZE, 0, true).unwrap();
    assert!(!a.is_direct());
    assert_eq!(arenas.stats().arenas, 1);
    // A run that fits in an existing arena comes from it even when large for the next one.
    arenas.deallocate(a);
    let a = arenas.allocate(16, SLAB_SIZE, 0, true).unwrap();
    assert!(!a.is_direct());
    // Past the cap of the largest arena, always direct, and aligned as asked with an offset.
    let huge = arenas
        .allocate(MAX_ARENA_SLABS + 1, 1 << 30, SLAB_SIZE, false)
        .unwrap();
    assert!(huge.is_direct());
    assert_eq!(
        (huge.pointer().as_ptr() as usize + SLAB_SIZE) % (1 << 30),
        0
    );
    assert!(probe.holds(huge.pointer().as_ptr() as usize, huge.size(), false));
    arenas.deallocate(huge);
    arenas.deallocate(a);
    assert_eq!(probe.live_chunks(), 1, "only the arena's chunk is left");
    // Impossible requests are typed errors.
    assert!(matches!(
        arenas.allocate(usize::MAX >> SLAB_SHIFT, SLAB_SIZE, 0, false),
        Err(Error::TooLarge)
    ));
    assert!(matches!(
        arenas.allocate(0, SLAB_SIZE, 0, false),
        Err(Error::TooLarge)
    ));
    assert!(matches!(
        arenas.allocate(1, 3 << 20, 0, false),
        Err(Error::TooLarge)
    ));
    // An offset must be a slab multiple inside the run (a huge one used to overflow the
    // address arithmetic: a panic in debug builds).
    for offset in [SLAB_SIZE, SLAB_SIZE / 2, usize::MAX & !(SLAB_SIZE - 1)] {
        assert!(matches!(
            arenas.allocate(1, 1 << 30, offset, false),
            Err(Error::TooLarge)
        ));
    }
    let r = arenas.allocate(2, 1 << 30, SLAB_SIZE, false).unwrap();
    arenas.deallocate(r);
}

#[test]
fn manage_turns_a_chunk_into_an_arena() {
    let failing = Failing::new(Mmap);
    let arenas = Arenas::new(&failing);
    // A chunk that is not slab-aligned: its slabs start at the first boundary and the header
    // goes after the last one that fits.
    let page = Mmap.page_size();
    let chunk = (&failing)
        .allocate(
            Layout::from_size_align(10 * SLAB_SIZE + page, page).unwrap(),
            true,
        )
        .unwrap();
    let (lo, hi) = (
        chunk.pointer().as_ptr() as usize,
        chunk.pointer().as_ptr() as usize + chunk.layout().size(),
    );
    arenas.manage(chunk).unwrap();
    let s = arenas.stats();
    assert_eq!(s.arenas, 1);
    let slabs = s.reserved >> SLAB_SHIFT;
    assert!((9..=10).contains(&slabs), "{slabs} slabs");
    let run = arenas.allocate(slabs, SLAB_SIZE, 0, true).unwrap();
    let p = run.pointer().as_ptr() as usize;
    assert!(
        p >= lo && p + run.size() < hi,
        "the run lies in the managed chunk"
    );
    assert!(run.is_zeroed());
    assert_eq!(failing.live_chunks(), 1, "no arena of its own was made");
    arenas.deallocate(run);
    // Too small for a slab: a typed error, and the chunk is given back.
    let small = (&failing)
        .allocate(Layout::from_size_align(SLAB_SIZE, page).unwrap(), true)
        .unwrap();
    assert_eq!(arenas.manage(small).unwrap_err(), Error::ChunkTooSmall);
    assert_eq!(failing.live_chunks(), 1);
    drop(arenas);
    assert_eq!((failing.live_chunks(), failing.live_bytes()), (0, 0));
}

static STATIC_MEMORY: StaticMemory<{ 80 << 20 }> = StaticMemory::new();
static STATIC_BASE: Static = Static::new(&STATIC_MEMORY);

/// Arenas over a `static` buffer: const-constructed, the first arena fits (64 MiB of an
/// 80 MiB buffer), reuse is never reported zeroed (a Static decommit does not zero), and a
/// request the region cannot hold is a typed error.
#[test]
fn arenas_over_a_static_buffer() {
    static ARENAS: Arenas<&'static Static> = Arenas::new(&STATIC_BASE);
    ARENAS.set_purge_delay(0);
    let a = ARENAS.allocate(4, SLAB_SIZE, 0, true).unwrap();
    assert!(!a.is_direct() && a.is_zeroed());
    let p = a.pointer();
    // SAFETY: the run is ours and committed.
    unsafe { p.as_ptr().write_bytes(0x5A, 4 * SLAB_SIZE) };
    ARENAS.deallocate(a);
    let b = ARENAS.allocate(4, SLAB_SIZE, 0, true).unwrap();
    assert_eq!(b.pointer(), p);
    assert!(!b.is_zeroed(), "purged on a Static base: still not zeroed");
    // SAFETY: the run is ours and committed.
    assert_eq!(unsafe { *b.pointer().as_ptr() }, 0x5A);
    ARENAS.deallocate(b);
    assert_eq!(ARENAS.stats().arenas, 1);
    assert_eq!(ARENAS.stats().reserved, MIN_ARENA_SLABS << SLAB_SHIFT);
    // 17 slabs: direct, and the region has no 68 MiB left.
    assert_eq!(
        ARENAS.allocate(17, SLAB_SIZE, 0, true).unwrap_err(),
        Error::Base(ferroc_base::StaticError::Exhausted)
    );
    // Still usable.
    let all = ARENAS
        .allocate(MIN_ARENA_SLABS, SLAB_SIZE, 0, true)
        .unwrap();
    ARENAS.deallocate(all);
    assert_eq!(ARENAS.stats().slabs_in_use, 0);
}

#[test]
fn delay_zero_purges_at_once() {
    let f = &Failing::new(Mmap);
    // A counting base with a hand-moved clock.
    let probe = Probe::new(f, Some(1_000));
    let arenas = Arenas::new(&probe);
    arenas.set_purge_delay(0);
    let r = arenas.allocate(3, SLAB_SIZE, 0, true).unwrap();
    // SAFETY: the run is ours and committed.
    unsafe { r.pointer().as_ptr().write_bytes(1, 3 * SLAB_SIZE) };
    let p = r.pointer();
    arenas.deallocate(r);
    assert_eq!((f.decommits(), f.decommitted_bytes()), (1, 3 * SLAB_SIZE));
    let s = arenas.stats();
    assert_eq!((s.pending_purge, s.committed), (0, 0));
    let again = arenas.allocate(3, SLAB_SIZE, 0, true).unwrap();
    assert_eq!(again.pointer(), p);
    assert!(again.is_zeroed(), "decommitted by MADV_DONTNEED");
    // SAFETY: byte 77 of the second slab of a 3-slab run that is ours and committed.
    assert_eq!(unsafe { p.as_ptr().wrapping_add(SLAB_SIZE + 77).read() }, 0);
    arenas.deallocate(again);
}

#[test]
fn a_delay_purges_once_it_has_passed_and_not_before() {
    let f = &Failing::new(Mmap);
    // A counting base with a hand-moved clock.
    let probe = Probe::new(f, Some(1_000));
    let arenas = Arenas::new(&probe);
    arenas.set_purge_delay(10);
    let a = arenas.allocate(2, SLAB_SIZE, 0, true).unwrap();
    let b = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    arenas.deallocate(a);
    assert_eq!(f.decommits(), 0, "not on the free itself");
    assert_eq!(arenas.stats().pending_purge, 2);
    probe.advance(9);
    assert!(arenas.purge(false), "something is pending");
    assert_eq!(f.decommits(), 0, "9 ms: not yet");
    // Reused before the delay: no decommit/commit round trip, and not zeroed.
    let a2 = arenas.allocate(2, SLAB_SIZE, 0, true).unwrap();
    assert!(!a2.is_zeroed());
    assert_eq!(arenas.stats().pending_purge, 0);
    arenas.deallocate(a2);
    // Each slab's delay counts from its own release: 10 ms after the first free is only 1 ms
    // after the second.
    probe.advance(1);
    arenas.purge(false);
    assert_eq!(f.decommits(), 0, "released 1 ms ago");
    probe.advance(9);
    arenas.purge(false);
    // 10 ms: both free slabs, consecutive, so in one call.
    assert_eq!((f.decommits(), f.decommitted_bytes()), (1, 2 * SLAB_SIZE));
    assert_eq!(arenas.stats().pending_purge, 0);
    // A free that finds a deadline passed purges on its own, no explicit purge needed, but
    // only what is due: `b` (slab 2, freed 10 ms ago), not `c` (freed just now).
    arenas.deallocate(b);
    probe.advance(10);
    let c = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    assert_eq!(c.pointer().as_ptr() as usize % SLAB_SIZE, 0);
    assert_eq!(
        f.decommits(),
        1,
        "reused the pending slab 2: nothing to purge"
    );
    arenas.deallocate(c);
    assert_eq!(arenas.stats().pending_purge, 1);
    let d = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    let e = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    arenas.deallocate(d);
    probe.advance(10);
    // `d` is due, `e` just freed: one call, one slab; `e` waits for its own deadline.
    arenas.deallocate(e);
    assert_eq!((f.decommits(), f.decommitted_bytes()), (2, 3 * SLAB_SIZE));
    assert_eq!(arenas.stats().pending_purge, 1);
    probe.advance(9);
    arenas.purge(false);
    assert_eq!(f.decommits(), 2);
    probe.advance(1);
    arenas.purge(false);
    assert_eq!((f.decommits(), f.decommitted_bytes()), (3, 4 * SLAB_SIZE));
    assert_eq!(arenas.stats().pending_purge, 0);
    assert!(!arenas.purge(false), "nothing pending");
}

/// Free slabs still committed (pending purge) are handed out before fresh ones, and before
/// lower fresh addresses: they cost no page faults.
#[test]
fn pending_slabs_are_reused_first() {
    let f = &Failing::new(Mmap);
    let probe = Probe::new(f, Some(1_000));
    let arenas = Arenas::new(&probe);
    arenas.set_purge_delay(1_000);
    let runs: Vec<_> = (0..6)
        .map(|_| arenas.allocate(2, SLAB_SIZE, 0, true).unwrap())
        .collect();
    let addr = |r: &ferroc_arena::SlabRun<_>| r.pointer().as_ptr() as usize;
    let (p1, p4) = (addr(&runs[1]), addr(&runs[4]));
    let mut runs = runs.into_iter();
    let r0 = runs.next().unwrap();
    let r1 = runs.next().unwrap();
    let rest: Vec<_> = runs.collect();
    // Slabs 0-1 purged (fresh again), slabs 2-3 pending, then 8-9 pending too.
    arenas.deallocate(r0);
    arenas.purge(true);
    arenas.deallocate(r1);
    let mut rest = rest.into_iter();
    let (r2, r3, r4, r5) = (
        rest.next().unwrap(),
        rest.next().unwrap(),
        rest.next().unwrap(),
        rest.next().unwrap(),
    );
    arenas.deallocate(r4);
    // One slab: the lowest pending one, not the fresh slab 0.
    let one = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    assert_eq!(addr(&one), p1);
    assert!(!one.is_zeroed());
    // Two slabs: the pending pair 8-9, not the fresh 0-1 (lower, but cold).
    let two = arenas.allocate(2, SLAB_SIZE, 0, true).unwrap();
    assert_eq!(addr(&two), p4);
    // No free run of three holds a pending slab (slab 3 lies between used ones): first fit,
    // the fresh slabs 12-14, and slab 3's resident pages move into the first of them (Linux),
    // so nothing is left pending and the run is not zeroed.
    let three = arenas.allocate(3, SLAB_SIZE, 0, true).unwrap();
    assert_eq!(addr(&three), p1 + 10 * SLAB_SIZE);
    let moves = cfg!(target_os = "linux");
    assert_eq!(three.is_zeroed(), !moves);
    assert_eq!(arenas.stats().pending_purge, usize::from(!moves));
    for r in [one, two, three, r2, r3, r5] {
        arenas.deallocate(r);
    }
    assert_eq!(f.decommits(), 1, "only the forced purge");
}

/// An uncommitted claim (whose owner fills it by moving pages in) takes slabs with nothing
/// resident, keeping the pending ones for committed claims.
#[test]
fn uncommitted_claims_leave_pending_slabs_alone() {
    let probe = Probe::new(Mmap, Some(1_000));
    let arenas = Arenas::new(&probe);
    arenas.set_purge_delay(1_000);
    let runs: Vec<_> = (0..3)
        .map(|_| arenas.allocate(1, SLAB_SIZE, 0, true).unwrap())
        .collect();
    let p0 = runs[0].pointer();
    let mut runs = runs.into_iter();
    arenas.deallocate(runs.next().unwrap());
    let cold = arenas.allocate(2, SLAB_SIZE, 0, false).unwrap();
    assert_eq!(
        cold.pointer().as_ptr() as usize,
        p0.as_ptr() as usize + 3 * SLAB_SIZE,
        "past the pending slab 0"
    );
    assert_eq!(arenas.stats().pending_purge, 1);
    let warm = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    assert_eq!(warm.pointer(), p0);
    give_back(&arenas, runs.chain([cold, warm]));
}

/// A run grows in place over the free slabs after it and shrinks in place, giving its tail
/// back to be reused; a run straight from the base does neither.
#[test]
fn runs_grow_and_shrink_in_place() {
    let probe = Probe::new(Mmap, Some(0));
    let arenas = Arenas::new(&probe);
    let mut a = arenas.allocate(2, SLAB_SIZE, 0, true).unwrap();
    let p = a.pointer();
    // SAFETY: the run is ours and committed.
    unsafe { p.as_ptr().write_bytes(0x3C, 2 * SLAB_SIZE) };
    assert!(arenas.grow_in_place(&mut a, 5, true).unwrap());
    assert_eq!((a.pointer(), a.count(), a.size()), (p, 5, 5 * SLAB_SIZE));
    // SAFETY: the last byte of the run's first 2 slabs, written above.
    let last = unsafe { p.as_ptr().wrapping_add(2 * SLAB_SIZE - 1).read() };
    assert_eq!(last, 0x3C);
    // SAFETY: the last byte of the run, which now spans 5 committed slabs.
    unsafe { p.as_ptr().wrapping_add(5 * SLAB_SIZE - 1).write(1) };
    assert_eq!(arenas.stats().slabs_in_use, 5);
    // A neighbour blocks further growth.
    let b = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    assert_eq!(
        b.pointer().as_ptr() as usize,
        p.as_ptr() as usize + 5 * SLAB_SIZE
    );
    assert!(!arenas.grow_in_place(&mut a, 6, true).unwrap());
    assert_eq!(a.count(), 5);
    // Past the arena's end.
    assert!(
        !arenas
            .grow_in_place(&mut a, MIN_ARENA_SLABS + 1, true)
            .unwrap()
    );
    assert!(arenas.shrink_in_place(&mut a, 1));
    assert_eq!((a.pointer(), a.count()), (p, 1));
    assert_eq!(arenas.stats().slabs_in_use, 2);
    assert_eq!(arenas.stats().pending_purge, 4);
    assert!(!arenas.shrink_in_place(&mut a, 1), "not smaller");
    assert!(!arenas.shrink_in_place(&mut a, 0), "a run keeps a slab");
    // The tail is free again: a 4-slab run takes it (pending, so first).
    let c = arenas.allocate(4, SLAB_SIZE, 0, true).unwrap();
    assert_eq!(
        c.pointer().as_ptr() as usize,
        p.as_ptr() as usize + SLAB_SIZE
    );
    // Direct runs stay as they are.
    let mut d = arenas
        .allocate(MAX_ARENA_SLABS + 1, SLAB_SIZE, 0, false)
        .unwrap();
    assert!(d.is_direct());
    assert!(
        !arenas
            .grow_in_place(&mut d, MAX_ARENA_SLABS + 2, false)
            .unwrap()
    );
    assert!(!arenas.shrink_in_place(&mut d, 1));
    give_back(&arenas, [a, b, c, d]);
}

/// `move_into` hands a run's pages to another run without copying: the target holds the
/// bytes, the source is free, zeroed and uncommitted; a base that cannot move leaves both
/// runs as they were.
#[test]
fn runs_move_their_pages() {
    let probe = Probe::new(Mmap, Some(0));
    let arenas = Arenas::new(&probe);
    let a = arenas.allocate(2, SLAB_SIZE, 0, true).unwrap();
    let to = arenas.allocate(3, SLAB_SIZE, 0, true).unwrap();
    let (pa, pt) = (a.pointer(), to.pointer());
    for i in (0..2 * SLAB_SIZE).step_by(4096) {
        // SAFETY: inside the 2-slab run `a`, which is ours and committed.
        unsafe { pa.as_ptr().wrapping_add(i).write((i / 4096) as u8) };
    }
    // SAFETY: both runs are ours; nothing uses `a` afterwards.
    match unsafe { arenas.move_into(a, &to) } {
        Ok(()) => {
            for i in (0..2 * SLAB_SIZE).step_by(4096) {
                // SAFETY: inside the target run, which is ours and committed.
                let byte = unsafe { pt.as_ptr().wrapping_add(i).read() };
                assert_eq!(byte, (i / 4096) as u8);
            }
            assert_eq!(arenas.stats().slabs_in_use, 3);
            assert_eq!(arenas.stats().pending_purge, 0, "nothing left to purge");
            let again = arenas.allocate(2, SLAB_SIZE, 0, true).unwrap();
            assert_eq!(again.pointer(), pa);
            assert!(again.is_zeroed(), "the moved-from slabs read zero");
            // SAFETY: inside the run `again`, which is ours and committed.
            assert_eq!(unsafe { pa.as_ptr().wrapping_add(4096).read() }, 0);
            arenas.deallocate(again);
        }
        Err(a) => {
            let linux = cfg!(target_os = "linux");
            assert!(!linux, "Linux moves pages");
            arenas.deallocate(a);
        }
    }
    // A target shorter than the source is refused.
    let short = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    let long = arenas.allocate(2, SLAB_SIZE, 0, true).unwrap();
    // SAFETY: both runs are ours and unused; a refused move leaves `long` as it was.
    let long = unsafe { arenas.move_into(long, &short) }.unwrap_err();
    assert_eq!(long.count(), 2);
    give_back(&arenas, [to, short, long]);
}

#[test]
fn a_long_delay_purges_only_when_forced_and_a_shorter_one_overrides_it() {
    let f = &Failing::new(Mmap);
    // A counting base with a hand-moved clock.
    let probe = Probe::new(f, Some(1_000));
    let arenas = Arenas::new(&probe);
    arenas.set_purge_delay(u64::MAX);
    let a = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    let b = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    let c = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
    arenas.deallocate(a);
    probe.advance(1 << 40);
    arenas.purge(false);
    assert_eq!(f.decommits(), 0, "never by time");
    // A shorter delay set later applies to the next free, not stuck behind the long one.
    arenas.set_purge_delay(5);
    arenas.deallocate(b);
    probe.advance(5);
    arenas.purge(false);
    // Both pending slabs of the arena (0 and 1), in one call.
    assert_eq!((f.decommits(), f.decommitted_bytes()), (1, 2 * SLAB_SIZE));
    // Forced: at once, whatever the delay.
    arenas.set_purge_delay(u64::MAX);
    arenas.deallocate(c);
    assert_eq!(f.decommits(), 1);
    assert!(arenas.purge(true));
    assert_eq!((f.decommits(), f.decommitted_bytes()), (2, 3 * SLAB_SIZE));
    assert!(!arenas.purge(true), "nothing pending any more");
    assert_eq!(arenas.stats().committed, 0);
}

#[test]
fn without_a_clock_only_a_forced_purge_decommits() {
    let f = &Failing::new(Mmap);
    let probe = Probe::new(f, None);
    let arenas = Arenas::new(&probe);
    let r = arenas.allocate(2, SLAB_SIZE, 0, true).unwrap();
    arenas.deallocate(r);
    arenas.purge(false);
    assert_eq!(f.decommits(), 0);
    assert!(arenas.purge(true));
    assert_eq!((f.decommits(), f.decommitted_bytes()), (1, 2 * SLAB_SIZE));
}

/// 8 threads claim and release runs (some crossing bitmap words, some direct) and abandon
/// and reclaim slabs, each stamping its runs: no slab is ever owned by two threads, and
/// everything is free at the end.
#[test]
fn threads_never_share_a_slab() {
    const THREADS: usize = 8;
    let probe = Probe::new(Mmap, Some(0));
    let arenas = Arenas::new(&probe);
    arenas.set_purge_delay(0);
    std::thread::scope(|s| {
        for t in 1..=THREADS {
            let arenas = &arenas;
            s.spawn(move || {
                let mut mine = Vec::new();
                for round in 0..150usize {
                    let n = [1, 2, 63, 64, 65, 3, 17, 1][(round + t) % 8];
                    let r = arenas.allocate(n, SLAB_SIZE, 0, true).unwrap();
                    let stamp = (t << 32 | round) as u64;
                    for i in 0..n {
                        // SAFETY: slab `i` of the run, which is ours and committed.
                        unsafe { slab_word(r.pointer(), i).write(stamp) };
                    }
                    mine.push((r, stamp));
                    if round % 3 == 0 {
                        let (r, stamp) = mine.swap_remove(round % mine.len());
                        for i in 0..r.count() {
                            // SAFETY: slab `i` of the run, ours and committed, written above.
                            let v = unsafe { slab_word(r.pointer(), i).read() };
                            assert_eq!(v, stamp, "slab {i} of a run was written by another thread");
                        }
                        if r.count() == 1 && round % 2 == 0 {
                            arenas.abandon(r).unwrap();
                            // Someone's abandoned slab becomes ours (its stamp is not).
                            if let Some(back) = arenas.reclaim() {
                                arenas.deallocate(back);
                            }
                        } else {
                            arenas.deallocate(r);
                        }
                    }
                }
                for (r, stamp) in mine {
                    // SAFETY: slab 0 of the run, ours and committed, written above.
                    let v = unsafe { slab_word(r.pointer(), 0).read() };
                    assert_eq!(v, stamp);
                    arenas.deallocate(r);
                }
            });
        }
    });
    while let Some(r) = arenas.reclaim() {
        arenas.deallocate(r);
    }
    let s = arenas.stats();
    assert_eq!((s.slabs_in_use, s.abandoned, s.direct_runs), (0, 0, 0));
    assert_eq!(probe.live_chunks(), s.arenas);
}

/// The safe methods that take a run check that it is theirs: a run of other arenas, or of
/// arenas since dropped, is refused or left alone and never followed into memory.
#[test]
fn a_run_of_other_arenas_is_refused() {
    let ours = Arenas::new(Mmap);
    let mine = ours.allocate(1, SLAB_SIZE, 0, true).unwrap();
    let theirs = Arenas::new(Mmap);
    let mut foreign = theirs.allocate(2, SLAB_SIZE, 0, true).unwrap();
    let foreign_slab = theirs.allocate(1, SLAB_SIZE, 0, true).unwrap();

    assert!(matches!(ours.commit(&foreign), Err(Error::Foreign)));
    assert!(!ours.grow_in_place(&mut foreign, 3, true).unwrap());
    assert!(!ours.shrink_in_place(&mut foreign, 1));
    assert_eq!(foreign.count(), 2);
    let foreign_slab = ours.abandon(foreign_slab).unwrap_err();
    assert_eq!(ours.abandoned_count(), 0);
    // SAFETY: both runs are unused; a refused move leaves `from` as it was.
    let foreign = unsafe { ours.move_into(foreign, &mine) }.unwrap_err();
    let in_use = theirs.stats().slabs_in_use;
    ours.deallocate(foreign);
    assert_eq!(
        theirs.stats().slabs_in_use,
        in_use,
        "left to its own arenas"
    );
    assert_eq!(ours.stats().slabs_in_use, 1);
    theirs.deallocate(foreign_slab);
    assert_eq!(theirs.stats().slabs_in_use, in_use - 1);

    // A run that outlives its arenas: even where a new arena lands at the same address, the
    // run names a serial no live arena has.
    let stale = {
        let gone = Arenas::new(Mmap);
        gone.allocate(1, SLAB_SIZE, 0, true).unwrap()
    };
    let fresh = Arenas::new(Mmap);
    let live = fresh.allocate(1, SLAB_SIZE, 0, true).unwrap();
    assert!(matches!(fresh.commit(&stale), Err(Error::Foreign)));
    fresh.deallocate(stale);
    assert_eq!(fresh.stats().slabs_in_use, 1);
    fresh.deallocate(live);
    ours.deallocate(mine);
    assert_eq!(ours.stats().slabs_in_use, 0);
}
