//! The fork guard (`crate::fork`) against remote freers notifying full shards: `fork()`
//! never copies a `NOTIFYING` shard into a child.

use super::*;
use crate::thread_free::{NOTIFIED, NOTIFYING, PARKED};
use loom::sync::atomic::Ordering;

/// `ferroc_base::loom_model` with a fixed preemption bound (and its iteration report).
fn model_with_preemptions<F>(name: &str, preemptions: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(move || {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    std::println!(
        "loom model {name}: {} iterations",
        count.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// What `fork()` would copy into a child, checked: the shard is not `NOTIFYING`, and if its
/// notification is posted, so is the slab's bit (the child's owner has nothing to wait for).
fn check_forkable(s: &Slab) {
    let state = s.tf.state();
    assert_ne!(state, NOTIFYING, "fork while a notification is in flight");
    let bit = s.notified.load(Ordering::Relaxed);
    if state == NOTIFIED {
        assert_eq!(bit, 1);
    } else {
        assert_eq!((state, bit), (PARKED, 0));
    }
}

/// A remote freer notifies a full shard while another thread forks (`fork::prepare`, then
/// what the child would copy, then `fork::parent`). The freer's notification is never lost
/// (it is held back during the fork, not dropped), and the guard ends balanced.
#[test]
fn loom_fork_waits_for_notifier() {
    ferroc_base::loom_model("fork_waits_for_notifier", || {
        let s = Slab::parked(1, 1);
        let b = block();
        let freer = spawn_free(&s, STRANGER, b);
        let forker = {
            let s = s.clone();
            loom::thread::spawn(move || {
                crate::fork::prepare();
                check_forkable(&s);
                crate::fork::parent();
            })
        };
        forker.join().unwrap();
        assert!(freer.join().unwrap(), "the freer notified");
        assert_eq!(s.notified.load(Ordering::Acquire), 1);
        assert_eq!(s.tf.unpark(), NOTIFIED);
        let mut got = Vec::new();
        drain(s.tf.take(), &mut got);
        assert_eq!(got, [b]);
        assert_eq!(crate::fork::guard().in_flight(), 0);
    });
}

/// Two freers notify two full shards while a thread forks: the count of notifiers in flight
/// holds the fork back until both are done or have not begun, whatever the order of their
/// entries and exits.
///
/// Run with at most one preemption: with two preemptions loom also explores an unfair
/// schedule (one freer preempted inside its notification while the forker and the other,
/// backed-out, freer yield to each other for ever) and stops on its branch limit. One
/// preemption still covers a freer preempted anywhere in its notification with the fork and
/// the other freer running meanwhile; `loom_fork_waits_for_notifier` runs with two.
#[test]
fn loom_fork_two_notifiers() {
    model_with_preemptions("fork_two_notifiers", 1, || {
        let slabs = [Slab::parked(1, 1), Slab::parked(1, 1)];
        let freers: Vec<_> = slabs
            .iter()
            .map(|s| spawn_free(s, STRANGER, block()))
            .collect();
        crate::fork::prepare();
        for s in &slabs {
            check_forkable(s);
        }
        crate::fork::parent();
        for f in freers {
            assert!(f.join().unwrap(), "each freer notified");
        }
        for s in &slabs {
            assert_eq!(s.tf.unpark(), NOTIFIED);
        }
        assert_eq!(crate::fork::guard().in_flight(), 0);
    });
}
