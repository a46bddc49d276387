//! Pieces both kinds of global share.

use ferroc_base::BaseAlloc;
use ferroc_heap::Context;

/// A context shared between threads read-only: the placeholder every thread-local slot starts
/// at (which only ever serves reads: an empty direct table, frees that take the remote path),
/// or, for a single-threaded global, the one context.
pub struct Placeholder<B: BaseAlloc + 'static>(pub Context<'static, B>);

// SAFETY: for the thread placeholder, no thread ever writes to it (allocation goes to the
// slow path, which replaces it; frees and size queries only read it). A single-threaded global
// is only sound when used from one thread at a time, which its `unsafe` opt-in promises.
unsafe impl<B: BaseAlloc + 'static> Sync for Placeholder<B> {}

/// Counters of exited threads, and the once-only `FERROC_SHOW_STATS` registration.
#[cfg(feature = "std")]
pub struct Retired {
    #[cfg(feature = "stat")]
    counts: [ferroc_base::sync::atomic::AtomicU64; 4 * ferroc_heap::stat::KINDS],
    #[cfg(all(feature = "libc", feature = "stat"))]
    show_registered: ferroc_base::sync::atomic::AtomicBool,
}

#[cfg(feature = "std")]
impl Retired {
    pub const fn new() -> Self {
        Retired {
            #[cfg(feature = "stat")]
            counts: [const { ferroc_base::sync::atomic::AtomicU64::new(0) };
                4 * ferroc_heap::stat::KINDS],
            #[cfg(all(feature = "libc", feature = "stat"))]
            show_registered: ferroc_base::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Adds an exiting thread's counts.
    #[allow(unused_variables)]
    pub fn retire<B: BaseAlloc + 'static>(&self, cx: &Context<'static, B>) {
        #[cfg(feature = "stat")]
        {
            use ferroc_base::sync::atomic::Ordering::Relaxed;
            let s = cx.stats();
            for k in 0..ferroc_heap::stat::KINDS {
                self.counts[4 * k].fetch_add(s.allocated[k].blocks, Relaxed);
                self.counts[4 * k + 1].fetch_add(s.allocated[k].bytes, Relaxed);
                self.counts[4 * k + 2].fetch_add(s.freed[k].blocks, Relaxed);
                self.counts[4 * k + 3].fetch_add(s.freed[k].bytes, Relaxed);
            }
        }
    }

    /// The exited threads' counts.
    #[cfg(feature = "stat")]
    pub fn snapshot(&self) -> ferroc_heap::Stats {
        use ferroc_base::sync::atomic::Ordering::Relaxed;
        let mut s = ferroc_heap::Stats::default();
        for k in 0..ferroc_heap::stat::KINDS {
            s.allocated[k].blocks = self.counts[4 * k].load(Relaxed);
            s.allocated[k].bytes = self.counts[4 * k + 1].load(Relaxed);
            s.freed[k].blocks = self.counts[4 * k + 2].load(Relaxed);
            s.freed[k].bytes = self.counts[4 * k + 3].load(Relaxed);
        }
        s
    }

    /// Registers `hook` with `atexit` once, if `FERROC_SHOW_STATS=1` (and `stat` is on).
    #[cfg(feature = "libc")]
    #[allow(unused_variables)]
    pub fn show_at_exit_once(&self, hook: extern "C" fn()) {
        #[cfg(feature = "stat")]
        if !self
            .show_registered
            .swap(true, ferroc_base::sync::atomic::Ordering::Relaxed)
            && crate::print::show_stats_requested()
        {
            // SAFETY: registering a plain function; failure only means no report.
            unsafe { libc::atexit(hook) };
        }
    }
}

#[cfg(feature = "std")]
impl Default for Retired {
    fn default() -> Self {
        Self::new()
    }
}
