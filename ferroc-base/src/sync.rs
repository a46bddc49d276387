//! The atomics every lock-free structure uses, switched to `loom`'s under `--cfg ferroc_loom`
//! so the same code runs inside the model checker.

#[cfg(ferroc_loom)]
pub use loom::sync::atomic;

#[cfg(not(ferroc_loom))]
pub use core::sync::atomic;

/// Tells the processor (or, under loom, the scheduler) that this thread is spinning on a value
/// another thread is about to change.
#[inline]
pub fn spin_loop() {
    #[cfg(ferroc_loom)]
    loom::thread::yield_now();
    #[cfg(not(ferroc_loom))]
    core::hint::spin_loop();
}

/// Defines a constructor that is a `const fn`, except under loom, whose atomics have no `const`
/// constructor, where it is a plain `fn`: a lock-free type's statics stay `const`-initialised,
/// and its loom models build it at run time from the same body.
///
/// ```
/// use ferroc_base::sync::atomic::AtomicUsize;
///
/// pub struct Counter(AtomicUsize);
///
/// impl Counter {
///     ferroc_base::const_unless_loom! {
///         /// A counter at zero.
///         pub fn new() -> Self {
///             Counter(AtomicUsize::new(0))
///         }
///     }
/// }
///
/// static C: Counter = Counter::new();
/// ```
#[macro_export]
macro_rules! const_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$attr])*
        #[cfg(not(ferroc_loom))]
        $vis const fn $name($($arg: $ty),*) -> $ret $body

        $(#[$attr])*
        #[cfg(ferroc_loom)]
        $vis fn $name($($arg: $ty),*) -> $ret $body
    };
}
