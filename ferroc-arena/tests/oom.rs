//! Out of memory: a script of arena operations over the fault-injecting base, run once for
//! every allocate and once for every commit it makes, with exactly that call failing.
//!
//! Every failing operation returns `Error::Base(Injected)` (or succeeds anyway, when the
//! arenas fall back to a smaller arena); nothing leaks (the base's live chunks are the arenas'
//! and the live direct runs', no slab stays in use, no free slab stays committed after a
//! forced purge); and afterwards the arenas serve every kind of request again.

use std::alloc::Layout;

use ferroc_arena::{
    Arenas, BaseAlloc, Error, SlabRun,
    sizes::{SLAB_SHIFT, SLAB_SIZE},
};
use ferroc_base::{
    Mmap,
    testing::{Failing, FailingError},
};

type Base<'f> = &'f Failing<Mmap>;

struct Run<'f> {
    arenas: Arenas<Base<'f>>,
    failing: &'f Failing<Mmap>,
    live: Vec<SlabRun<Base<'f>>>,
    errors: usize,
}

impl<'f> Run<'f> {
    /// Checks an operation's outcome: success or the injected failure.
    fn check<T>(
        &mut self,
        what: &str,
        r: Result<T, Error<FailingError<ferroc_base::MmapError>>>,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                assert_eq!(
                    e,
                    Error::Base(FailingError::Injected),
                    "{what}: untyped failure"
                );
                self.errors += 1;
                None
            }
        }
    }

    fn check_books(&self, what: &str) {
        let s = self.arenas.stats();
        let slabs: usize = self
            .live
            .iter()
            .filter(|r| !r.is_direct())
            .map(|r| r.count())
            .sum();
        let direct = self.live.iter().filter(|r| r.is_direct()).count();
        assert_eq!(s.slabs_in_use, slabs, "{what}: slabs in use");
        assert_eq!(s.direct_runs, direct, "{what}: direct runs");
        assert_eq!(
            self.failing.live_chunks(),
            s.arenas + s.direct_runs,
            "{what}: chunks"
        );
    }

    fn claim(&mut self, what: &str, n: usize, align: usize, offset: usize, commit: bool) {
        let r = self.arenas.allocate(n, align, offset, commit);
        if let Some(run) = self.check(what, r) {
            assert_eq!(run.count(), n);
            assert_eq!(
                (run.pointer().as_ptr() as usize + offset) % align.max(SLAB_SIZE),
                0
            );
            self.live.push(run);
        }
        self.check_books(what);
    }

    fn release(&mut self, i: usize) {
        if i < self.live.len() {
            let run = self.live.remove(i);
            self.arenas.deallocate(run);
            self.check_books("release");
        }
    }

    /// The script: every path that calls the base.
    fn script(&mut self) {
        self.claim("first slab (grows arena 0)", 1, SLAB_SIZE, 0, true);
        // Uncommitted, then committed by its owner.
        let r = self.arenas.allocate(3, SLAB_SIZE, 0, false);
        if let Some(run) = self.check("3 uncommitted", r) {
            let c = self.arenas.commit(&run);
            self.live.push(run);
            self.check("commit of 3", c);
        }
        self.check_books("3 uncommitted");
        self.claim("fill arena 0", 12, SLAB_SIZE, 0, true);
        self.claim("grow arena 1", 2, SLAB_SIZE, 0, true);
        self.claim("20 in arena 1", 20, SLAB_SIZE, 0, true);
        self.claim("grow arena 2", 40, SLAB_SIZE, 0, true);
        self.claim("grow arena 3", 65, SLAB_SIZE, 0, true);
        self.claim("direct run", 300, SLAB_SIZE, 0, true);
        self.claim("aligned with offset", 4, 8 * SLAB_SIZE, SLAB_SIZE, true);
        let chunk = Layout::from_size_align(8 * SLAB_SIZE + 4096, SLAB_SIZE).unwrap();
        if let Some(chunk) = self.check("chunk to manage", self.failing_alloc(chunk)) {
            let r = self.arenas.manage(chunk);
            self.check("manage", r);
        }
        self.check_books("manage");
        // Purged at once, then claimed and committed again.
        self.arenas.set_purge_delay(0);
        self.release(0);
        self.release(0);
        self.claim("recommit purged slabs", 4, SLAB_SIZE, 0, true);
        self.arenas.set_purge_delay(u64::MAX);
        self.release(1);
        self.claim("reuse pending slabs", 2, SLAB_SIZE, 0, true);
        // A slab abandoned and reclaimed (no base call, but a path to keep whole).
        let r = self.arenas.allocate(1, SLAB_SIZE, 0, true);
        if let Some(run) = self.check("slab to abandon", r) {
            self.arenas.abandon(run).unwrap();
            let back = self.arenas.reclaim().unwrap();
            self.live.push(back);
        }
        self.check_books("abandon and reclaim");
        self.claim("direct run again", 200, SLAB_SIZE, 0, false);
    }

    fn failing_alloc(
        &self,
        layout: Layout,
    ) -> Result<ferroc_arena::Chunk<Base<'f>>, Error<FailingError<ferroc_base::MmapError>>> {
        self.failing.allocate(layout, true).map_err(Error::Base)
    }

    /// After the script: the arenas serve everything again, then release everything and are
    /// empty.
    fn finish(mut self) {
        self.failing.fail_allocate_at(0);
        self.failing.fail_commit_at(0);
        self.failing.fail_always(false);
        for (n, commit) in [(1, true), (64, true), (17, true), (300, false), (100, true)] {
            let run = self
                .arenas
                .allocate(n, SLAB_SIZE, 0, commit)
                .unwrap_or_else(|e| panic!("arenas unusable after a failure: {n} slabs: {e:?}"));
            self.live.push(run);
        }
        self.check_books("after recovery");
        for run in self.live.drain(..) {
            self.arenas.deallocate(run);
        }
        let s = self.arenas.stats();
        assert_eq!((s.slabs_in_use, s.direct_runs, s.direct_bytes), (0, 0, 0));
        self.arenas.purge(true);
        let s = self.arenas.stats();
        assert_eq!(s.pending_purge, 0);
        assert_eq!(s.committed, 0, "free slabs left committed and not pending");
        assert_eq!(self.failing.live_chunks(), s.arenas);
        let total = s.reserved >> SLAB_SHIFT;
        let all: Vec<_> = (0..total)
            .map(|_| self.arenas.allocate(1, SLAB_SIZE, 0, false).unwrap())
            .collect();
        assert_eq!(self.arenas.stats().arenas, s.arenas, "a free slab was lost");
        for r in all {
            self.arenas.deallocate(r);
        }
        drop(self.arenas);
        assert_eq!(self.failing.live_chunks(), 0);
        assert_eq!(self.failing.live_bytes(), 0);
    }
}

/// Runs the script with `arm` setting up the failure; returns (errors, allocations, commits).
fn run_with(arm: impl FnOnce(&Failing<Mmap>)) -> (usize, usize, usize) {
    let failing = Failing::new(Mmap);
    arm(&failing);
    let mut run = Run {
        arenas: Arenas::new(&failing),
        failing: &failing,
        live: Vec::new(),
        errors: 0,
    };
    run.script();
    let counts = (run.errors, failing.allocations(), failing.commits());
    run.finish();
    counts
}

#[test]
fn every_failing_allocate_and_commit_is_an_error_that_leaks_nothing() {
    let (errors, allocations, commits) = run_with(|_| {});
    assert_eq!(errors, 0);
    assert!(
        allocations >= 7 && commits >= 100,
        "{allocations} {commits}"
    );
    let mut failed_allocs = 0;
    for n in 1..=allocations {
        let (errors, ..) = run_with(|f| f.fail_allocate_at(n));
        failed_allocs += usize::from(errors > 0);
    }
    let mut failed_commits = 0;
    for n in 1..=commits {
        let (errors, ..) = run_with(|f| f.fail_commit_at(n));
        // A commit failure has no fallback: it always surfaces.
        assert_eq!(errors, 1, "commit {n}");
        failed_commits += 1;
    }
    // Only a failed arena allocation can be absorbed (by a smaller arena).
    assert!(
        failed_allocs >= allocations / 2,
        "{failed_allocs} of {allocations}"
    );
    println!(
        "out of memory: {allocations} allocate failures ({failed_allocs} surfaced), \
         {commits} commit failures ({failed_commits} surfaced)"
    );
    // And with everything failing, every operation fails cleanly.
    let (errors, ..) = run_with(|f| f.fail_always(true));
    assert!(errors > 5);
}

/// All arena slots taken: managing or growing one more is `Error::Exhausted`, and the chunk
/// that could not be published goes back to the base.
#[test]
fn no_arena_slot_left_is_a_typed_error() {
    let failing = Failing::new(Mmap);
    let arenas = Arenas::new(&failing);
    let layout = Layout::from_size_align(2 * SLAB_SIZE, SLAB_SIZE).unwrap();
    let mut slots = 0;
    loop {
        let chunk = (&failing).allocate(layout, true).unwrap();
        match arenas.manage(chunk) {
            Ok(()) => slots += 1,
            Err(e) => {
                assert_eq!(e, Error::Exhausted);
                break;
            }
        }
    }
    assert_eq!(slots, ferroc_arena::sizes::MAX_ARENAS);
    assert_eq!(
        failing.live_chunks(),
        slots,
        "the refused chunk was given back"
    );
    // Every managed arena holds one slab; with them all taken, a new one cannot be made.
    let runs: Vec<_> = (0..slots)
        .map(|_| arenas.allocate(1, SLAB_SIZE, 0, true).unwrap())
        .collect();
    assert_eq!(
        arenas.allocate(1, SLAB_SIZE, 0, true).unwrap_err(),
        Error::Exhausted
    );
    // A run bigger than the next arena would be still goes to the base.
    let direct = arenas.allocate(1025, SLAB_SIZE, 0, false).unwrap();
    assert!(direct.is_direct());
    arenas.deallocate(direct);
    for r in runs {
        arenas.deallocate(r);
    }
    assert!(arenas.allocate(1, SLAB_SIZE, 0, true).is_ok());
}
