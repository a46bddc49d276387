//! Pieces of the thread-local instance (feature `std`) kept apart from its logic: the idle
//! context every thread's slot starts at, and the counters of exited threads.

use ferroc_base::BaseAlloc;
use ferroc_heap::Context;

/// The read-only context a thread's slot points at before the thread has a context of its
/// own (one per [`ThreadGlobal`](crate::ThreadGlobal), shared by every thread). It never
/// allocates: its direct table points at the empty shard, so allocation through it takes the
/// slow path, which gives the thread its own context; frees through it take the remote path
/// (its id owns no slab) and size queries only read it.
pub struct IdleContext<B: BaseAlloc + 'static>(pub Context<'static, B>);

// SAFETY: no thread ever writes to an idle context: it is made by `Context::new_read_only`,
// whose allocation fast path always fails without writing, and the instance never hands it
// to the slow paths that would write (they use the thread's own context); frees and size
// queries through it only read it.
unsafe impl<B: BaseAlloc + 'static> Sync for IdleContext<B> {}

/// Counters of exited threads, and the once-only registration of the statistics report at
/// exit (`show_stats`).
pub struct Retired {
    #[cfg(feature = "stat")]
    counts: ferroc_heap::stat::StatSums,
    #[cfg(all(feature = "libc", feature = "stat"))]
    show_registered: ferroc_base::sync::atomic::AtomicBool,
}

impl Retired {
    pub const fn new() -> Self {
        Retired {
            #[cfg(feature = "stat")]
            counts: ferroc_heap::stat::StatSums::new(),
            #[cfg(all(feature = "libc", feature = "stat"))]
            show_registered: ferroc_base::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Adds an exiting thread's counts.
    #[allow(unused_variables)]
    pub fn retire<B: BaseAlloc + 'static>(&self, cx: &Context<'static, B>) {
        #[cfg(feature = "stat")]
        self.counts.add(&cx.stats());
    }

    /// The exited threads' counts.
    #[cfg(feature = "stat")]
    pub fn snapshot(&self) -> ferroc_heap::Stats {
        self.counts.snapshot()
    }

    /// Registers `hook` with `atexit` once (when `stat` is on): the hook prints the
    /// statistics if the `show_stats` option is on when the process exits, so the option
    /// may be turned on or off until then.
    #[cfg(feature = "libc")]
    #[allow(unused_variables)]
    pub fn show_at_exit_once(&self, hook: extern "C" fn()) {
        #[cfg(feature = "stat")]
        if !self
            .show_registered
            .swap(true, ferroc_base::sync::atomic::Ordering::Relaxed)
        {
            // SAFETY: registering a plain function; failure only means no report.
            unsafe { libc::atexit(hook) };
        }
    }
}

impl Default for Retired {
    fn default() -> Self {
        Self::new()
    }
}
