//! Thread exit through a pthread key: the key's destructor gets the thread's slot and hands
//! its context back.
//!
//! The key is created on the first thread initialisation, once per global instance: the state
//! word goes `0 → CREATING → key + 2` with one CAS; a thread that finds `CREATING` waits with
//! a backoff (creating a key takes microseconds). If the key cannot be created, threads still
//! work, but their contexts are never handed back: each exiting thread then leaks its slot and
//! the slabs it still owns.
//!
//! A thread that allocates again from a later destructor gets a new context and registers it
//! again; glibc runs key destructors up to `PTHREAD_DESTRUCTOR_ITERATIONS` (4) rounds.

use core::ffi::c_void;

use crossbeam_utils::Backoff;
use ferroc_base::sync::atomic::{AtomicUsize, Ordering};

const UNCREATED: usize = 0;
const CREATING: usize = 1;
const FAILED: usize = 2;
const OFFSET: usize = 3;

/// A lazily created pthread key.
pub struct ExitKey(AtomicUsize);

impl ExitKey {
    /// No key yet.
    pub const fn new() -> Self {
        ExitKey(AtomicUsize::new(UNCREATED))
    }

    fn key(&self, dtor: unsafe extern "C" fn(*mut c_void)) -> Option<libc::pthread_key_t> {
        let backoff = Backoff::new();
        loop {
            match self.0.load(Ordering::Acquire) {
                UNCREATED => {
                    if self
                        .0
                        .compare_exchange(UNCREATED, CREATING, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        let mut key: libc::pthread_key_t = 0;
                        // SAFETY: `key` is a valid out-pointer; the destructor is an
                        // `extern "C"` function that never unwinds.
                        let ok = unsafe { libc::pthread_key_create(&mut key, Some(dtor)) } == 0;
                        let state = if ok { key as usize + OFFSET } else { FAILED };
                        self.0.store(state, Ordering::Release);
                    }
                }
                CREATING => backoff.snooze(),
                FAILED => return None,
                k => return Some((k - OFFSET) as libc::pthread_key_t),
            }
        }
    }

    /// Arranges for `dtor(value)` to run when the calling thread exits.
    pub fn register(&self, value: *mut c_void, dtor: unsafe extern "C" fn(*mut c_void)) {
        if let Some(key) = self.key(dtor) {
            // SAFETY: a key we created; the value is only passed back to `dtor`.
            unsafe { libc::pthread_setspecific(key, value) };
        }
    }
}

impl Default for ExitKey {
    fn default() -> Self {
        Self::new()
    }
}
