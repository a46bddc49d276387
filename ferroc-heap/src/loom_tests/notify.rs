//! The full-shard handshake: the owner parks a shard in its full list (`try_park`), a remote
//! free into it notifies (`crate::abandon::free_remote`), the owner takes the notification
//! (`take_notifications`) and un-parks the shard (`unpark`, which waits out a notifier).

use super::*;
use crate::{
    abandon::take_notifications,
    thread_free::{NORMAL, NOTIFIED, PARKED},
};

/// The owner takes the shard back from its full list as `process_notifications` does, if
/// the notification is posted: the slab's mask, then `unpark`, which must find `NOTIFIED`.
/// Returns whether it did.
fn take_back(s: &Slab) -> bool {
    if take_notifications(s) == 0 {
        return false;
    }
    assert_eq!(s.tf.unpark(), NOTIFIED);
    true
}

/// The owner parks the shard while a freer frees into it. Either the owner sees the block
/// before parking (and does not park), or the freer notifies exactly once and the owner finds
/// the notification; after the owner un-parks the shard, the block is collected. The owner
/// never observes `NOTIFYING` after it is done waiting.
#[test]
fn loom_full_shard_notification() {
    ferroc_base::loom_model("full_shard_notification", || {
        let s = Slab::new(1, 1);
        let b = block();
        let freer = spawn_free(&s, STRANGER, b);
        let mut got = Vec::new();
        let parked = s.tf.try_park();
        if !parked {
            drain(s.tf.take(), &mut got);
        }
        let notified = freer.join().unwrap();
        // Parked: the freer must have notified, and the notification must be visible.
        assert_eq!(notified, parked);
        assert_eq!(take_back(&s), parked);
        drain(s.tf.take(), &mut got);
        assert_eq!(got, [b]);
        assert_eq!(s.tf.state(), NORMAL);
    });
}

/// The whole handshake with two remote freers: the owner parks the shard (unless blocks
/// arrived first), then looks for notifications once, the way `process_notifications` does.
/// Whatever the interleaving, at most one notification is posted per full episode, a shard
/// left parked always has its notification posted (none is lost), and every block is
/// collected exactly once.
#[test]
fn loom_full_shard_two_freers() {
    ferroc_base::loom_model("full_shard_two_freers", || {
        let s = Slab::new(1, 2);
        let blocks = [block(), block()];
        let freers: Vec<_> = blocks
            .iter()
            .map(|&b| spawn_free(&s, STRANGER, b))
            .collect();
        let mut got = Vec::new();
        let mut parked = s.tf.try_park();
        if !parked || take_back(&s) {
            parked = false;
            drain(s.tf.take(), &mut got);
        }
        let posted = freers
            .into_iter()
            .map(|f| usize::from(f.join().unwrap()))
            .sum::<usize>();
        assert!(posted <= 1, "one notification per full episode");
        if parked {
            // Still parked: a freer must have told us.
            assert_eq!(
                posted, 1,
                "a remote free into a full shard was not notified"
            );
            assert!(take_back(&s));
        }
        drain(s.tf.take(), &mut got);
        assert_eq!(sorted(got), sorted(blocks.to_vec()));
        assert_eq!(s.tf.state(), NORMAL);
    });
}

/// The owner un-parks a shard (as when it processes a notification or abandons the slab)
/// while a freer is mid-notification: the owner waits until `NOTIFIED`, so the freer's write
/// to the slab header happens before the owner goes on.
#[test]
fn loom_unfull_waits_for_notifier() {
    ferroc_base::loom_model("unfull_waits_for_notifier", || {
        let s = Slab::parked(1, 1);
        let freer = spawn_free(&s, STRANGER, block());
        let left = s.tf.unpark();
        if left == NOTIFIED {
            // The freer finished: its slab write is visible.
            assert_eq!(s.notified.load(loom::sync::atomic::Ordering::Relaxed), 1);
        } else {
            assert_eq!(left, PARKED);
        }
        // The owner may have un-parked the shard before the freer's push: no notification.
        assert_eq!(freer.join().unwrap(), left == NOTIFIED);
    });
}
