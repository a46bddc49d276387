//! [`GlobalInstance`]: the one API of a global instance, written once over the few things
//! that differ between [`ThreadGlobal`](crate::ThreadGlobal) and
//! [`SingleGlobal`](crate::SingleGlobal) (which context serves the calling thread), and
//! [`InstanceHandle`], which gives the unit types of [`config!`](crate::config) that API.
//!
//! The names are those of `ferroc_heap::Heap`: `allocate`, `allocate_zeroed`,
//! `deallocate(ptr, layout)`, `free(ptr)`, `reallocate(ptr, old, new)`, `usable_size`,
//! `collect`, `stats`, `visit_blocks`, `contains`; the options are `options`, `set_options`,
//! `option` and `set_option`.

use core::{alloc::Layout, ptr::NonNull};

use ferroc_arena::Arenas;
use ferroc_base::BaseAlloc;
use ferroc_heap::{AllocError, Context};

use crate::options::{OptionError, OptionId, OptionState, Options};

/// What every instance holds besides its contexts: the arenas and the options (with the start
/// state). An instance gives it through [`GlobalInstance::core`], and the provided
/// [`arenas`](GlobalInstance::arenas) and [`option_state`](GlobalInstance::option_state) read
/// it.
pub struct InstanceCore<B: BaseAlloc + 'static> {
    arenas: Arenas<B>,
    options: OptionState,
}

impl<B: BaseAlloc + 'static> InstanceCore<B> {
    /// Arenas over `base`, and `options` (the environment overrides them at the start).
    pub const fn new(base: B, options: Options) -> Self {
        InstanceCore {
            arenas: Arenas::new(base),
            options: OptionState::new(options),
        }
    }

    /// Puts `options` in place of the ones given to [`new`](Self::new) (`config!`'s
    /// `options = ..`), before the instance is in use.
    pub const fn set_options(&mut self, options: Options) {
        self.options = OptionState::new(options);
    }

    /// The arenas, for the instance's contexts to borrow while it is being built.
    pub const fn arenas(&self) -> &Arenas<B> {
        &self.arenas
    }
}

/// A global instance: the statics behind one allocator type, and its whole API.
///
/// An implementation says which context serves the calling thread ([`current`](Self::current),
/// [`owned`](Self::owned)) and where its [`core`](Self::core) is; every other method is provided on top of them, so the thread-local
/// instance, the single-context one, the types made by [`config!`](crate::config) and the C
/// API share one body of code and one set of names.
///
/// The fast paths ([`allocate_small`](Self::allocate_small), the small case of
/// [`allocate`](Self::allocate), [`free`](Self::free)) are `#[inline(always)]` down to the
/// context's own fast path: one read of `current`, no further branch.
pub trait GlobalInstance {
    /// The base the instance's arenas take memory from.
    type Base: BaseAlloc + 'static;

    /// The context the calling thread reads and frees through: its own, or, before it has
    /// one, a read-only context whose fast path always fails (so allocation falls to
    /// [`owned`](Self::owned)) and whose frees and size queries only read it.
    fn current(&self) -> &Context<'static, Self::Base>;

    /// The calling thread's own context, which it may allocate from; made on first use.
    /// `None` when none can be made (out of memory).
    fn owned(&self) -> Option<&Context<'static, Self::Base>>;

    /// The instance's arenas and options.
    fn core(&self) -> &InstanceCore<Self::Base>;

    /// The arenas behind the instance.
    #[inline]
    fn arenas(&self) -> &Arenas<Self::Base> {
        &self.core().arenas
    }

    /// Statistics over every context of the instance, live and gone (feature `stat`).
    #[cfg(feature = "stat")]
    fn stats(&self) -> ferroc_heap::Stats;

    /// The instance's options and start state (see [`crate::options`]).
    #[inline]
    fn option_state(&self) -> &OptionState {
        &self.core().options
    }

    /// The options in force (before the first allocation: those the start will put in
    /// force, the environment over the instance's own).
    fn options(&self) -> Options {
        self.option_state().current()
    }

    /// Gives the instance its own options (the environment still overrides them at the
    /// start); [`OptionError::Started`] after the first allocation.
    fn set_options(&self, options: Options) -> Result<(), OptionError> {
        self.option_state().set_all(&options)
    }

    /// One option's value as the C API gives it ([`Options::get`]).
    fn option(&self, id: OptionId) -> i64 {
        self.options().get(id)
    }

    /// Sets one option from a C value ([`Options::set`]): after the first allocation, the
    /// run-time ones ([`OptionId::is_runtime`]) take effect at once and the others are
    /// refused ([`OptionError::Started`]).
    fn set_option(&self, id: OptionId, value: i64) -> Result<(), OptionError> {
        self.option_state().set_one(self.arenas(), id, value)
    }

    /// Starts the instance if it has not started (reads the environment, applies the
    /// options, reserves): what the first thread initialisation calls. A slow path.
    #[doc(hidden)]
    #[cold]
    fn start(&self) {
        if !self.option_state().is_started() {
            self.option_state().start(self.arenas());
        }
    }

    /// The small fast path of the calling thread (`Context::allocate_small`): `None` when the
    /// request is not small or needs the slow path.
    #[inline(always)]
    fn allocate_small(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        self.current().allocate_small(size, align)
    }

    /// Allocates a block for `layout` (any size and power-of-two alignment).
    #[inline(always)]
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        match self.allocate_small(layout.size(), layout.align()) {
            Some(p) => Ok(p),
            None => self.allocate_slow(layout),
        }
    }

    /// The general path alone, for a caller that has just tried
    /// [`allocate_small`](Self::allocate_small) (as [`allocate`](Self::allocate) and the C
    /// API's `malloc` do): the calling thread's own context (made here on a thread's first
    /// allocation), then its general path.
    #[cold]
    #[inline(never)]
    fn allocate_slow(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.owned()
            .and_then(|cx| cx.allocate(layout))
            .ok_or(AllocError)
    }

    /// Allocates a zero-filled block.
    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.owned()
            .and_then(|cx| cx.allocate_zeroed(layout))
            .ok_or(AllocError)
    }

    /// Frees a block allocated with `layout` (the layout is not needed; see
    /// [`free`](Self::free)).
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this instance (from any thread), freed once.
    #[inline(always)]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let _ = layout;
        // SAFETY: `ptr` is a live block of this instance, freed once (this fn's contract).
        unsafe { self.free(ptr) }
    }

    /// Frees a block without its layout (what C's `free` needs), from any thread.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this instance, freed once.
    #[inline(always)]
    unsafe fn free(&self, ptr: NonNull<u8>) {
        // SAFETY: `ptr` is a live block over the same arenas (this fn's contract); a
        // read-only `current` context only reads on this path (its id owns no slab, so the
        // free goes to the slab's remote list).
        unsafe { self.current().free(ptr) }
    }

    /// Resizes a block from `old` to `new`, in place when its class allows, otherwise
    /// allocate, copy, free. On error the old block is untouched.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this instance allocated with `old` (or holding at least
    /// `old.size()` bytes).
    unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: `ptr` is a live block over the same arenas (this fn's contract); the check
        // only reads, so a read-only `current` context may answer it.
        if unsafe { self.current().fits_in_place(ptr, new) } {
            return Ok(ptr);
        }
        let cx = self.owned().ok_or(AllocError)?;
        // SAFETY: `ptr` is a live block over the same arenas holding `old.size()` bytes (this
        // fn's contract), and `cx` is the calling thread's own context.
        unsafe { cx.reallocate(ptr, old.size(), new) }.ok_or(AllocError)
    }

    /// The usable size of a live block (at least what was asked for).
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this instance.
    #[inline]
    unsafe fn usable_size(&self, ptr: NonNull<u8>) -> usize {
        // SAFETY: `ptr` is a live block over the same arenas (this fn's contract); the query
        // only reads, so a read-only `current` context may answer it.
        unsafe { self.current().usable_size(ptr) }
    }

    /// Collects the calling thread's context (remote frees, empty shards); `force` also takes
    /// over abandoned slabs and returns free memory to the base at once.
    fn collect(&self, force: bool) {
        if let Some(cx) = self.owned() {
            cx.collect(force);
        }
    }

    /// Calls `f(block, usable_size)` for every live block of the calling thread's own context
    /// (none before the thread has allocated), in address order, until `f` returns false (the
    /// result is then false). Never allocates; huge blocks belong to no context and are not
    /// visited (`ferroc_heap::Context::visit_blocks`). Blocks other threads allocated are theirs.
    fn visit_blocks(&self, f: impl FnMut(NonNull<u8>, usize) -> bool) -> bool
    where
        Self: Sized,
    {
        // The calling thread's own context, or the read-only idle one, whose empty slab list
        // the walk only reads.
        self.current().visit_blocks(f)
    }

    /// Whether `ptr` points into a live block of the calling thread's own context (not a
    /// freed block, another thread's, or a huge one). Any pointer may be asked about: it is
    /// read through only once found in one of the context's slabs
    /// (`ferroc_heap::Context::contains`).
    fn contains(&self, ptr: *const u8) -> bool {
        self.current().contains(ptr)
    }

    /// Prints the statistics to standard error without allocating (the `FERROC_SHOW_STATS`
    /// hook; features `stat` and `libc`, otherwise nothing).
    fn show_stats(&self) {
        #[cfg(all(feature = "stat", feature = "libc"))]
        crate::print::print_stats(&self.stats());
    }

    /// The process-exit hook: [`show_stats`](Self::show_stats) if the `show_stats` option is
    /// on at that moment.
    fn show_stats_at_exit(&self) {
        if self.option_state().show_stats() {
            self.show_stats();
        }
    }
}

/// A type that stands for one static instance, as the unit types [`config!`](crate::config)
/// makes do: through it, the type has the whole [`GlobalInstance`] API.
pub trait InstanceHandle {
    /// The instance's type.
    type Instance: GlobalInstance + 'static;

    /// The static instance.
    fn instance() -> &'static Self::Instance;
}

impl<H: InstanceHandle> GlobalInstance for H {
    type Base = <H::Instance as GlobalInstance>::Base;

    #[inline(always)]
    fn current(&self) -> &Context<'static, Self::Base> {
        H::instance().current()
    }

    #[inline(always)]
    fn owned(&self) -> Option<&Context<'static, Self::Base>> {
        H::instance().owned()
    }

    #[inline]
    fn core(&self) -> &InstanceCore<Self::Base> {
        H::instance().core()
    }

    #[cfg(feature = "stat")]
    fn stats(&self) -> ferroc_heap::Stats {
        H::instance().stats()
    }
}
