//! Thread exit through a pthread key: the key's destructor gets the thread's slot and hands
//! its context back.
//!
//! The key is created on the first thread initialisation, once per global instance, without
//! any thread waiting for another: each thread that finds no key creates one and publishes it
//! with a CAS (`0 → key + 2`); a thread that loses the race deletes its own key and uses the
//! winner's. (A `CREATING` state that others wait out would hang a child of `fork()` whose
//! parent forked while another thread was creating the key.) If the key cannot be created,
//! threads still work, but their contexts are never handed back: each exiting thread then
//! leaks its slot and the slabs it still owns.
//!
//! A thread that allocates again from a later destructor gets a new context and registers it
//! again; glibc runs key destructors up to `PTHREAD_DESTRUCTOR_ITERATIONS` (4) rounds.

use core::ffi::c_void;

use ferroc_base::sync::atomic::{AtomicUsize, Ordering};

const UNCREATED: usize = 0;
const FAILED: usize = 1;
const OFFSET: usize = 2;

/// A lazily created pthread key.
pub struct ExitKey(AtomicUsize);

impl ExitKey {
    /// No key yet.
    pub const fn new() -> Self {
        ExitKey(AtomicUsize::new(UNCREATED))
    }

    fn key(&self, dtor: unsafe extern "C" fn(*mut c_void)) -> Option<libc::pthread_key_t> {
        let decode = |state: usize| match state {
            FAILED => None,
            k => Some((k - OFFSET) as libc::pthread_key_t),
        };
        // Acquire (here and on the CAS's failure): the key's creation happens-before its use.
        let cur = self.0.load(Ordering::Acquire);
        if cur != UNCREATED {
            return decode(cur);
        }
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor is an `extern "C"` function
        // that never unwinds.
        let ok = unsafe { libc::pthread_key_create(&mut key, Some(dtor)) } == 0;
        let mine = if ok { key as usize + OFFSET } else { FAILED };
        match self
            .0
            .compare_exchange(UNCREATED, mine, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => decode(mine),
            Err(theirs) => {
                if ok {
                    // SAFETY: our own key, never handed out.
                    unsafe { libc::pthread_key_delete(key) };
                }
                decode(theirs)
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
