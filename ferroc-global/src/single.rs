//! [`SingleGlobal`]: one context for the whole program, for bare metal and single-threaded
//! programs without thread-local storage.

use ferroc_base::BaseAlloc;
use ferroc_heap::Context;

use crate::{GlobalInstance, InstanceCore};

/// A global allocator with a single context (made by [`config!`](crate::config) with
/// `thread_exit = unsafe none`); its API is [`GlobalInstance`]. Sound only if the program
/// allocates from one thread at a time, which is what the `unsafe` in the macro promises.
pub struct SingleGlobal<B: BaseAlloc + 'static> {
    core: InstanceCore<B>,
    cx: SingleContext<B>,
}

/// The one context of a [`SingleGlobal`], shared by whichever thread is allocating.
struct SingleContext<B: BaseAlloc + 'static>(Context<'static, B>);

// SAFETY: a `SingleGlobal` is only made by the `unsafe` `SingleGlobal::new`, whose caller
// promised that the program never uses the instance from two threads at once, so the context
// is never accessed concurrently.
unsafe impl<B: BaseAlloc + 'static> Sync for SingleContext<B> {}

impl<B: BaseAlloc + 'static> SingleGlobal<B> {
    /// The global `this` (the static being defined) over `base`.
    ///
    /// # Safety
    ///
    /// The program never uses the instance from two threads at once (what `config!`'s
    /// `thread_exit = unsafe none` promises).
    pub const unsafe fn new(this: &'static Self, base: B) -> Self {
        SingleGlobal {
            core: InstanceCore::new(base, crate::Options::DEFAULT),
            cx: SingleContext(Context::new(this.core.arenas())),
        }
    }

    /// The same instance with its own `options` instead of the defaults (`config!`'s
    /// `options = ..`); the environment (feature `libc`) overrides them at the start.
    pub const fn with_options(mut self, options: crate::Options) -> Self {
        self.core.set_options(options);
        self
    }
}

impl<B: BaseAlloc + 'static> GlobalInstance for SingleGlobal<B> {
    type Base = B;

    /// The one context.
    #[inline(always)]
    fn current(&self) -> &Context<'static, B> {
        &self.cx.0
    }

    /// The one context, always there. The first call starts the instance (its options):
    /// the context's first allocation comes here, as its empty shards send it to the slow
    /// path; the small fast path (through [`current`](Self::current)) never tests it.
    #[inline(always)]
    fn owned(&self) -> Option<&Context<'static, B>> {
        if !self.option_state().is_started() {
            self.start();
        }
        Some(&self.cx.0)
    }

    #[inline]
    fn core(&self) -> &InstanceCore<B> {
        &self.core
    }

    #[cfg(feature = "stat")]
    fn stats(&self) -> ferroc_heap::Stats {
        self.cx.0.stats()
    }
}
