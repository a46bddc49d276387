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
