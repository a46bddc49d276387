//! [`ThreadGlobal`]: a global allocator with one context per thread, found through a
//! const-initialised thread-local slot, and given back at thread exit.

use core::{ffi::c_void, marker::PhantomData, ptr};

use ferroc_base::BaseAlloc;
use ferroc_heap::Context;

use crate::{
    GlobalInstance, InstanceCore,
    common::IdleContext,
    pool::{Pool, Slot},
};

/// Where a thread finds its context: a thread-local pointer that reads as the instance's
/// `IdleContext` until [`set`](Self::set) stores a context of its own.
///
/// # Safety
///
/// `get` returns, for the calling thread, the last value `set` stored on it, or `idle` if
/// there was none; neither allocates, panics nor unwinds, and both work during thread-local
/// destruction.
pub unsafe trait ThreadSlot<B: BaseAlloc + 'static> {
    /// The calling thread's context pointer, or `idle`.
    fn get(idle: *const Context<'static, B>) -> *const Context<'static, B>;
    /// Stores the calling thread's context pointer.
    fn set(cx: *const Context<'static, B>, idle: *const Context<'static, B>);
}

/// A global allocator with per-thread contexts (made by [`config!`](crate::config)); its API
/// is [`GlobalInstance`].
///
/// Each thread's slot starts at the instance's `IdleContext`, which never allocated: its
/// direct table points at the empty shard, so the first allocation of a thread falls to the
/// slow path, which sees the idle context and gives the thread a context of its own from the
/// [`Pool`]. The fast paths never test whether the thread is initialised.
pub struct ThreadGlobal<B: BaseAlloc + 'static, S: ThreadSlot<B> + 'static> {
    /// The static this value is (see [`new`](Self::new)): thread contexts borrow its arenas
    /// for `'static`.
    this: &'static Self,
    core: InstanceCore<B>,
    idle: IdleContext<B>,
    pool: Pool<B>,
    slot: PhantomData<S>,
    #[cfg(feature = "libc")]
    exit: crate::exit::ExitKey,
    #[cfg(feature = "libc")]
    on_exit: unsafe extern "C" fn(*mut c_void),
    #[cfg(feature = "libc")]
    on_process_exit: extern "C" fn(),
    stats: crate::common::Retired,
}

impl<B: BaseAlloc + 'static, S: ThreadSlot<B> + 'static> ThreadGlobal<B, S> {
    /// The global `this` (the static being defined: `static G: ThreadGlobal<..> =
    /// ThreadGlobal::new(&G, ..)`) over `base`, with the instance's thread-exit and
    /// process-exit hooks.
    pub const fn new(
        this: &'static Self,
        base: B,
        on_exit: unsafe extern "C" fn(*mut c_void),
        on_process_exit: extern "C" fn(),
    ) -> Self {
        #[cfg(not(feature = "libc"))]
        let _ = (on_exit, on_process_exit);
        ThreadGlobal {
            this,
            core: InstanceCore::new(base, crate::Options::DEFAULT),
            idle: IdleContext(Context::new_read_only(this.core.arenas())),
            pool: Pool::new(),
            slot: PhantomData,
            #[cfg(feature = "libc")]
            exit: crate::exit::ExitKey::new(),
            #[cfg(feature = "libc")]
            on_exit,
            #[cfg(feature = "libc")]
            on_process_exit,
            stats: crate::common::Retired::new(),
        }
    }

    /// The same instance with its own `options` instead of the defaults (`config!`'s
    /// `options = ..`); the environment overrides them at the start.
    pub const fn with_options(mut self, options: crate::Options) -> Self {
        self.core.set_options(options);
        self
    }

    /// The idle context every thread-local slot starts at (for the slot's initialiser).
    pub const fn idle_of(this: &'static Self) -> *const Context<'static, B> {
        &this.idle.0
    }

    #[cold]
    #[inline(never)]
    fn init_thread(&'static self) -> Option<&'static Context<'static, B>> {
        // The options in force before this thread's context can make an arena.
        GlobalInstance::start(self);
        let arenas = self.arenas();
        let slot = self.pool.claim(arenas.base(), arenas)?;
        S::set(slot.context_ptr(), &self.idle.0);
        #[cfg(feature = "libc")]
        {
            // Before this thread's first block exists, so before any shard can be full.
            crate::fork::register_once();
            self.exit
                .register(crate::pool::slot_to_raw(slot), self.on_exit);
            self.stats.show_at_exit_once(self.on_process_exit);
        }
        Some(slot.context())
    }

    /// Hands a dead thread's context back (the pthread key destructor calls this).
    ///
    /// # Safety
    ///
    /// `slot` is the value this instance registered for the exiting thread.
    pub unsafe fn on_thread_exit(&'static self, slot: *mut c_void) {
        // SAFETY: `slot` is what this instance registered for the exiting thread (this fn's
        // contract): `init_thread` registers only slots of our pool, which live for `'static`.
        let slot: &'static Slot<B> = unsafe { &*slot.cast::<Slot<B>>() };
        // Later allocations of this thread (from other destructors) start over cleanly.
        S::set(&self.idle.0, &self.idle.0);
        self.stats.retire(slot.context());
        slot.release();
    }
}

impl<B: BaseAlloc + 'static, S: ThreadSlot<B> + 'static> GlobalInstance for ThreadGlobal<B, S> {
    type Base = B;

    /// The calling thread's context, or the idle one: one thread-local read.
    #[inline(always)]
    fn current(&self) -> &Context<'static, B> {
        let cx = S::get(&self.idle.0);
        // SAFETY: the slot holds what `ThreadSlot::set` last stored for this thread (its
        // contract): our idle context, or this thread's live context from our pool, which
        // stays live until the thread exits.
        unsafe { &*cx }
    }

    #[inline]
    fn owned(&self) -> Option<&Context<'static, B>> {
        let cx = self.current();
        if ptr::eq(cx, &self.idle.0) {
            self.this.init_thread()
        } else {
            Some(cx)
        }
    }

    #[inline]
    fn core(&self) -> &InstanceCore<B> {
        &self.core
    }

    #[cfg(feature = "stat")]
    fn stats(&self) -> ferroc_heap::Stats {
        let mut s = self.stats.snapshot();
        self.pool.for_each_live(|cx| s.merge(&cx.stats()));
        s.add_arenas(&self.arenas().stats());
        s
    }
}
