//! Properties of the arenas over `Mmap` and over `Static`: random sequences of claims and
//! releases of runs of 1..=200 slabs (63, 64, 65 and 128 in every sequence), with purges, purge
//! delays and a moving clock.
//!
//! After every step: each run is slab-aligned, lies inside a chunk its arenas got from the base
//! (before the arena header, for arena runs), and overlaps no live run; a run reported zeroed
//! reads zero, including where garbage was written before it was released and claimed again;
//! the stats count exactly the live runs. After releasing everything: no slab is in use,
//! nothing is pending after a forced purge, nothing is committed, every slab of every arena can
//! be claimed again without growing, and dropping the arenas gives every chunk back.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::atomic::{AtomicUsize, Ordering},
};

use common::Probe;
use ferroc_arena::{
    Arenas, BaseAlloc, Error, SlabRun,
    sizes::{SLAB_SHIFT, SLAB_SIZE},
};
use ferroc_base::{Mmap, Static, StaticError};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};

#[derive(Debug, Clone)]
enum Op {
    /// Claim a run of this many slabs, committed or not.
    Claim { slabs: usize, commit: bool },
    /// Release the live run with this index (modulo the number of live runs).
    Release(usize),
    /// `purge(true)`.
    PurgeAll,
    /// `set_purge_delay`.
    Delay(u64),
    /// Move the clock (if the base has one) and `purge(false)`.
    Tick(u64),
}

/// Run lengths: anything in 1..=200, with the word-boundary lengths and small runs favoured.
fn run_length() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 1..=200usize,
        2 => 1..=4usize,
        1 => prop::sample::select(vec![63usize, 64, 65, 128]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (run_length(), any::<bool>()).prop_map(|(slabs, commit)| Op::Claim { slabs, commit }),
        7 => any::<usize>().prop_map(Op::Release),
        1 => Just(Op::PurgeAll),
        1 => prop::sample::select(vec![0u64, 10, u64::MAX]).prop_map(Op::Delay),
        1 => (0u64..25).prop_map(Op::Tick),
    ]
}

/// A random sequence with claims of 63, 64, 65 and 128 slabs inserted at random places.
fn sequence() -> impl Strategy<Value = Vec<Op>> {
    (
        prop::collection::vec(op(), 8..40),
        prop::collection::vec(any::<prop::sample::Index>(), 4),
        any::<[bool; 4]>(),
    )
        .prop_map(|(mut ops, at, commit)| {
            for ((slabs, at), commit) in [63, 64, 65, 128].into_iter().zip(at).zip(commit) {
                let i = at.index(ops.len() + 1);
                ops.insert(i, Op::Claim { slabs, commit });
            }
            ops
        })
}

/// What the runs met, over all cases, to show the properties were not vacuous.
#[derive(Default)]
struct Counts {
    claims: AtomicUsize,
    failed_claims: AtomicUsize,
    direct: AtomicUsize,
    zeroed: AtomicUsize,
    /// Runs reported zeroed over memory where garbage had been written (zeroed by a purge).
    zeroed_over_garbage: AtomicUsize,
    reused_not_zeroed: AtomicUsize,
}

impl Counts {
    fn add(c: &AtomicUsize) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    fn get(c: &AtomicUsize) -> usize {
        c.load(Ordering::Relaxed)
    }
}

struct Live<B: BaseAlloc> {
    run: SlabRun<B>,
    start: usize,
}

/// Where garbage is written into a run: the first and last word of a slab and one word at a
/// page-aligned place in it chosen by `seed`, in the first two and last two slabs and about
/// one slab in eight between them (each place costs two page faults; runs are up to 200
/// slabs). In the warm-up (not `full`) only the first word of each slab.
fn garbage_places(start: usize, slabs: usize, seed: usize, page: usize, full: bool) -> Vec<usize> {
    let mix = |s: usize| seed.wrapping_mul(2654435761).wrapping_add(s * 40503);
    (0..slabs)
        .filter(|&s| !full || s < 2 || s + 2 >= slabs || mix(s) % 8 == 0)
        .flat_map(|s| {
            let slab = start + (s << SLAB_SHIFT);
            let mid = (mix(s) % (SLAB_SIZE / page)) * page;
            let places = [slab, slab + SLAB_SIZE - 8, slab + mid + 8 * (s % 7)];
            places.into_iter().take(if full { 3 } else { 1 })
        })
        .collect()
}

/// The number of slabs of live arena runs and the number of live direct runs.
fn live_totals<B: BaseAlloc>(live: &[Live<B>]) -> (usize, usize) {
    let slabs = live
        .iter()
        .filter(|l| !l.run.is_direct())
        .map(|l| l.run.count())
        .sum();
    let direct = live.iter().filter(|l| l.run.is_direct()).count();
    (slabs, direct)
}

/// The state of one sequence.
struct State<'a, 'p, B: BaseAlloc, F> {
    arenas: &'a Arenas<&'p Probe<B>>,
    probe: &'p Probe<B>,
    counts: &'a Counts,
    is_exhaustion: F,
    page: usize,
    live: Vec<Live<&'p Probe<B>>>,
    /// The live runs as start -> end.
    spans: BTreeMap<usize, usize>,
    garbage: BTreeSet<usize>,
    /// Whether claims count in `counts` (not during the warm-up).
    counting: bool,
}

/// Claims a run and checks it (see the module docs); a failure must be an allowed exhaustion
/// and change nothing.
fn claim<B, F>(
    st: &mut State<'_, '_, B, F>,
    slabs: usize,
    commit: bool,
    step: usize,
) -> Result<(), TestCaseError>
where
    B: BaseAlloc,
    B::Error: std::fmt::Debug,
    F: Fn(&Error<B::Error>) -> bool,
{
    let (arenas, probe, page) = (st.arenas, st.probe, st.page);
    let quiet = Counts::default();
    let counts = if st.counting { st.counts } else { &quiet };
    Counts::add(&counts.claims);
    let before = arenas.stats();
    let run = match arenas.allocate(slabs, SLAB_SIZE, 0, commit) {
        Ok(run) => run,
        Err(e) => {
            prop_assert!((st.is_exhaustion)(&e), "step {step}: claim {slabs}: {e:?}");
            let after = arenas.stats();
            prop_assert_eq!(after.slabs_in_use, before.slabs_in_use);
            prop_assert_eq!(after.direct_runs, before.direct_runs);
            Counts::add(&counts.failed_claims);
            return Ok(());
        }
    };
    let start = run.pointer().as_ptr() as usize;
    let len = slabs << SLAB_SHIFT;
    prop_assert_eq!(run.count(), slabs);
    prop_assert_eq!(run.size(), len);
    prop_assert_eq!(start % SLAB_SIZE, 0, "run not slab-aligned");
    prop_assert!(
        probe.holds(start, len, !run.is_direct()),
        "step {step}: run {run:?} outside its arena"
    );
    // The live run starting last before our end must end before our start.
    if let Some((&s, &e)) = st.spans.range(..start + len).next_back() {
        prop_assert!(
            e <= start,
            "step {step}: {run:?} overlaps the live run at {s:#x}..{e:#x}"
        );
    }
    st.spans.insert(start, start + len);
    if run.is_direct() {
        Counts::add(&counts.direct);
    }
    if !commit {
        prop_assert!(arenas.commit(&run).is_ok());
    }
    let dirty: Vec<usize> = st.garbage.range(start..start + len).copied().collect();
    if run.is_zeroed() {
        Counts::add(&counts.zeroed);
        if !dirty.is_empty() {
            Counts::add(&counts.zeroed_over_garbage);
        }
        for &a in dirty
            .iter()
            .chain(&garbage_places(start, slabs, step, page, st.counting))
        {
            // SAFETY: inside the run, which is ours and committed.
            let v = unsafe { (a as *const u64).read() };
            prop_assert_eq!(v, 0, "step {}: zeroed run reads {:#x} at {:#x}", step, v, a);
        }
    } else if !dirty.is_empty() {
        Counts::add(&counts.reused_not_zeroed);
    }
    for a in garbage_places(start, slabs, step, page, st.counting) {
        // SAFETY: inside the run, which is ours and committed.
        unsafe { (a as *mut u64).write(0xDEAD_BEEF_F00D_CAFE ^ a as u64) };
        st.garbage.insert(a);
    }
    st.live.push(Live { run, start });
    Ok(())
}

/// Runs one sequence over `arenas`, after growing them to `warm_arenas` arenas with 1-slab
/// runs of which those picked by `keep` stay live (so the sequence meets arenas of up to 512
/// slabs, fragmented). `is_exhaustion` recognises the failures allowed (a fixed region can
/// fill up).
fn run_sequence<'p, B>(
    arenas: &Arenas<&'p Probe<B>>,
    probe: &'p Probe<B>,
    (ops, warm_arenas, keep): (Vec<Op>, usize, u64),
    counts: &Counts,
    is_exhaustion: impl Fn(&Error<B::Error>) -> bool,
) -> Result<(), TestCaseError>
where
    B: BaseAlloc,
    B::Error: std::fmt::Debug,
{
    let mut st = State {
        arenas,
        probe,
        counts,
        is_exhaustion,
        page: arenas.base().page_size(),
        live: Vec::new(),
        spans: BTreeMap::new(),
        garbage: BTreeSet::new(),
        counting: false,
    };
    while arenas.stats().arenas < warm_arenas {
        let n = st.live.len();
        claim(&mut st, 1, false, n)?;
        prop_assert_eq!(st.live.len(), n + 1, "warm-up claim failed");
    }
    let warm = std::mem::take(&mut st.live);
    for (i, l) in warm.into_iter().enumerate() {
        // Keep about one slab in eight, at places `keep` picks.
        if (keep.rotate_left(i as u32 % 64) ^ (i as u64 / 64)) & 7 == 0 {
            st.live.push(l);
        } else {
            st.spans.remove(&l.start);
            arenas.deallocate(l.run);
        }
    }
    st.counting = true;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Claim { slabs, commit } => {
                claim(&mut st, slabs, commit, step)?;
            }
            Op::Release(k) if !st.live.is_empty() => {
                let n = st.live.len();
                let l = st.live.swap_remove(k % n);
                st.spans.remove(&l.start);
                arenas.deallocate(l.run);
            }
            Op::Release(_) => {}
            Op::PurgeAll => {
                arenas.purge(true);
                prop_assert_eq!(arenas.stats().pending_purge, 0);
            }
            Op::Delay(ms) => arenas.set_purge_delay(ms),
            Op::Tick(ms) => {
                if arenas.base().now_ms().is_some() {
                    probe.advance(ms);
                }
                arenas.purge(false);
            }
        }
        let s = arenas.stats();
        let (slabs, direct) = live_totals(&st.live);
        prop_assert_eq!(s.slabs_in_use, slabs, "step {}", step);
        prop_assert_eq!(s.direct_runs, direct, "step {}", step);
        prop_assert_eq!(
            probe.live_chunks(),
            s.arenas + s.direct_runs,
            "step {}",
            step
        );
    }

    // Release everything: the arenas must be as empty as at the start.
    st.spans.clear();
    for l in st.live.drain(..) {
        arenas.deallocate(l.run);
    }
    let s = arenas.stats();
    prop_assert_eq!(s.slabs_in_use, 0);
    prop_assert_eq!((s.direct_runs, s.direct_bytes, s.abandoned), (0, 0, 0));
    prop_assert_eq!(probe.live_chunks(), s.arenas);
    arenas.purge(true);
    let s = arenas.stats();
    prop_assert_eq!(s.pending_purge, 0);
    prop_assert_eq!(
        s.committed,
        0,
        "free slabs left committed after a forced purge"
    );
    // Every slab of every arena is free: all of them can be claimed again, one by one,
    // without a new arena.
    let total = s.reserved >> SLAB_SHIFT;
    let again: Vec<_> = (0..total)
        .map(|_| arenas.allocate(1, SLAB_SIZE, 0, false))
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(format!("reclaiming a free slab: {e:?}")))?;
    prop_assert_eq!(arenas.stats().arenas, s.arenas, "a free slab was lost");
    prop_assert_eq!(arenas.stats().slabs_in_use, total);
    for r in again {
        prop_assert!(!r.is_direct());
        arenas.deallocate(r);
    }
    prop_assert_eq!(arenas.stats().slabs_in_use, 0);
    Ok(())
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Driven by hand (not the `proptest!` macro), so there is no source file to keep
        // failing cases next to; a failure prints its minimal input instead.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Cases of each property (together a few seconds on 2 cores).
const CASES: u32 = 128;

#[test]
fn claim_release_over_mmap() {
    let counts = Counts::default();
    let mut runner = TestRunner::new(config(CASES));
    runner
        .run(
            &(sequence(), 0..=5usize, any::<u64>(), any::<bool>()),
            |(ops, warm, keep, clocked)| {
                let probe = Probe::new(Mmap, clocked.then_some(1000));
                let arenas = Arenas::new(&probe);
                run_sequence(&arenas, &probe, (ops, warm, keep), &counts, |_| false)?;
                drop(arenas);
                prop_assert_eq!(probe.live_chunks(), 0, "chunks left after drop");
                Ok(())
            },
        )
        .unwrap();
    report("Mmap", &counts);
    // The properties met what they are about: runs over garbage zeroed by a purge, runs
    // reused without a purge, and direct runs.
    assert!(Counts::get(&counts.zeroed_over_garbage) > 0);
    assert!(Counts::get(&counts.reused_not_zeroed) > 0);
    assert_eq!(Counts::get(&counts.failed_claims), 0);
}

/// The Static region: 1 GiB of address space (a fresh, zeroed mapping per case, of which a
/// case touches a few MiB), cut into 64 KiB units. Arenas of 16, 32, 64 and 128 slabs
/// (960 MiB) fill most of it, so the growth path, its fallback to smaller arenas, direct runs
/// from the region, and exhaustion are all met.
const STATIC_REGION: usize = 1 << 30;

#[test]
fn claim_release_over_static() {
    let counts = Counts::default();
    let mut runner = TestRunner::new(config(CASES));
    runner
        .run(
            &(
                sequence(),
                0..=4usize,
                any::<u64>(),
                any::<bool>(),
                any::<bool>(),
            ),
            |(ops, warm, keep, clocked, manage)| {
                let region = Mmap
                    .allocate(
                        std::alloc::Layout::from_size_align(STATIC_REGION, 1 << 16).unwrap(),
                        false,
                    )
                    .unwrap();
                // SAFETY: the region is a fresh mapping of ours, zeroed, that outlives `base`
                // and every chunk from it (they are dropped at the end of this closure first).
                let base = unsafe { Static::from_raw(region.pointer(), STATIC_REGION, 16, true) };
                let probe = Probe::new(&base, clocked.then_some(1000));
                let arenas = Arenas::new(&probe);
                if manage {
                    // A chunk of the region handed over as an extra arena (not slab-aligned).
                    let chunk = (&probe)
                        .allocate(
                            std::alloc::Layout::from_size_align(40 << SLAB_SHIFT, 1 << 16).unwrap(),
                            false,
                        )
                        .unwrap();
                    arenas.manage(chunk).unwrap();
                }
                run_sequence(&arenas, &probe, (ops, warm, keep), &counts, |e| {
                    matches!(e, Error::Base(StaticError::Exhausted) | Error::Exhausted)
                })?;
                drop(arenas);
                prop_assert_eq!(probe.live_chunks(), 0, "chunks left after drop");
                prop_assert_eq!(base.units_in_use(), 0, "region units left in use");
                drop(region);
                Ok(())
            },
        )
        .unwrap();
    report("Static", &counts);
    assert!(Counts::get(&counts.zeroed) > 0);
    assert!(Counts::get(&counts.reused_not_zeroed) > 0);
    // A Static decommit never zeroes: memory with garbage is never reported zeroed again.
    assert_eq!(Counts::get(&counts.zeroed_over_garbage), 0);
    // The region does fill up at times, but most claims succeed.
    assert!(Counts::get(&counts.failed_claims) < Counts::get(&counts.claims) * 3 / 4);
}

fn report(name: &str, c: &Counts) {
    println!(
        "{name}: {CASES} cases, {} claims ({} failed on exhaustion, {} direct), {} zeroed \
         ({} over earlier garbage), {} reused not zeroed",
        Counts::get(&c.claims),
        Counts::get(&c.failed_claims),
        Counts::get(&c.direct),
        Counts::get(&c.zeroed),
        Counts::get(&c.zeroed_over_garbage),
        Counts::get(&c.reused_not_zeroed),
    );
}
