//! `fork()` support (feature `libc`): ferroc-heap's fork guard, run from `pthread_atfork`
//! handlers.
//!
//! A remote free into a full shard notifies its owner in two steps (see
//! `ferroc_heap::thread_free`), and the owner waits out the step in between. A thread caught
//! there by another thread's `fork()` would not exist in the child, and the child's owner
//! would wait for ever. The handlers registered here run `ferroc_heap::fork::prepare` before
//! every `fork()` (it keeps new notifications from starting and waits until none is in
//! flight), and `parent`/`child` after it.
//!
//! The handlers are registered on the first thread initialisation of any instance, before
//! that thread's first allocation returns, so before any shard of the process can be full.
//! Registration neither allocates through Ferroc nor waits: a thread that does not yet see
//! [`REGISTERED`] registers the handlers itself, so threads racing the very first
//! initialisation may register them more than once. That is harmless: `prepare` and `parent`
//! count (each prepare is matched by one parent), and `child` just clears the guard.

use core::sync::atomic::{AtomicBool, Ordering};

/// Whether some thread's registration has completed.
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Registers the fork handlers, unless a registration has already completed.
pub fn register_once() {
    // Acquire: a registration seen done happened-before whatever this thread does next.
    if REGISTERED.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: three `extern "C"` functions that never unwind; glibc keeps its first handlers
    // in static storage. Failure (ENOMEM) only leaves fork unguarded.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    REGISTERED.store(true, Ordering::Release);
}

extern "C" fn prepare() {
    ferroc_heap::fork::prepare();
}

extern "C" fn parent() {
    ferroc_heap::fork::parent();
}

extern "C" fn child() {
    ferroc_heap::fork::child();
}
