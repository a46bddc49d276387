//! [`StartPhase`]: an instance starts exactly once, and nobody waits for it.
//!
//! An instance's options ([`OptionState`](crate::options::OptionState)) are put in force by
//! the first thread that allocates through it. That thread wins the `FRESH → STARTING` CAS,
//! reads the environment, stores the options and applies them, then moves to `STARTED`. A
//! thread arriving during the start does not wait (a `fork()` child could wait for ever on a
//! starter that is not there): it computes the same settings itself. Setting an instance's own
//! options is refused once the phase has left `FRESH`.
//!
//! # Invariant
//! The phase only moves forward, `FRESH → STARTING → STARTED`; exactly one thread moves it
//! out of `FRESH` (the CAS), and only that thread moves it to `STARTED`.
//!
//! # Orderings, and why each suffices
//! - [`finish`](StartPhase::finish) is a `Release` store, and every read of the phase
//!   ([`begin`](StartPhase::begin)'s CAS, [`is_started`](StartPhase::is_started),
//!   [`is_fresh`](StartPhase::is_fresh)) is `Acquire`, so whoever sees `STARTED` sees every
//!   option the starter stored before it (the options themselves are `Relaxed` atomics).
//! - The winning CAS needs no `Release`: it publishes nothing; the starter's stores come after
//!   it and are published by `finish`.
//!
//! Modelled under loom by `start_phase/loom_tests.rs`: two threads starting at once, one
//! reading the options after seeing `STARTED`.
#![cfg_attr(ferroc_loom, allow(dead_code))]

use ferroc_base::sync::atomic::{AtomicU8, Ordering};

/// The instance has not started.
const FRESH: u8 = 0;
/// A thread is starting the instance.
const STARTING: u8 = 1;
/// The instance has started: its options are in force.
const STARTED: u8 = 2;

/// What [`StartPhase::begin`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// This thread starts the instance, and calls [`StartPhase::finish`] when done.
    Mine,
    /// Another thread is starting it right now.
    Running,
    /// The instance has started.
    Done,
}

/// Where an instance is in its start (see the module docs).
pub(crate) struct StartPhase(AtomicU8);

impl StartPhase {
    ferroc_base::const_unless_loom! {
        /// Not started.
        pub(crate) fn new() -> Self {
            StartPhase(AtomicU8::new(FRESH))
        }
    }

    /// Whether the start is over.
    #[inline]
    pub(crate) fn is_started(&self) -> bool {
        self.0.load(Ordering::Acquire) == STARTED
    }

    /// Whether nobody has begun the start yet.
    #[inline]
    pub(crate) fn is_fresh(&self) -> bool {
        self.0.load(Ordering::Acquire) == FRESH
    }

    /// Begins the start if nobody has: [`Begin::Mine`] for exactly one thread.
    pub(crate) fn begin(&self) -> Begin {
        match self
            .0
            .compare_exchange(FRESH, STARTING, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => Begin::Mine,
            Err(STARTED) => Begin::Done,
            Err(_) => Begin::Running,
        }
    }

    /// Ends the start (only the thread that got [`Begin::Mine`]).
    pub(crate) fn finish(&self) {
        self.0.store(STARTED, Ordering::Release);
    }
}

#[cfg(all(test, ferroc_loom))]
mod loom_tests;
