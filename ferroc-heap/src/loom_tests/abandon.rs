//! Abandon and reclaim of a slab (`crate::abandon::give_up` and `take_over`, as
//! `Context::abandon_all` and `Context::adopt` run them) while another thread frees into it.

use super::*;

/// The slab has two live blocks in a full shard. Its owner (context 1) dies and gives it up
/// while thread F frees block 1 remotely (possibly notifying), and context 2 reclaims the slab
/// and frees block 2, locally if the reclaim came first. Context 2 then gives the slab up
/// again (releasing it if nothing is live, abandoning it otherwise), and a last context
/// reclaims whatever is left. Checks: every block is collected exactly once, the live count
/// ends at 0, the slab is released exactly once and never touched afterwards (the shared
/// code's every access to the header checks it), and the owner-only fields are only ever
/// accessed in happens-before order (loom's cell checks).
#[test]
fn loom_abandon_reclaim_with_remote_free() {
    ferroc_base::loom_model("abandon_reclaim_with_remote_free", || {
        let s = Slab::parked(1, 2);
        let (b1, b2) = (block(), block());
        let owner = {
            let s = s.clone();
            loom::thread::spawn(move || s.give_up())
        };
        let freer = spawn_free(&s, 3, b1);
        let reclaimer = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let mine = s.reclaim(2);
                // Block 2 is still live: a reclaim finds the slab live.
                assert_ne!(mine, Some(Settled::Empty));
                s.free(2, b2);
                if mine.is_some() {
                    s.give_up();
                }
            })
        };
        owner.join().unwrap();
        freer.join().unwrap();
        reclaimer.join().unwrap();
        // A last context takes over whatever is still abandoned; every block is free by now,
        // so it releases the slab.
        if let Some(kept) = s.reclaim(4) {
            assert_eq!(kept, Settled::Empty, "all blocks are free");
        }
        // SAFETY: every other thread has been joined: the cell is ours to read.
        let released = s.released.with(|r| unsafe { *r });
        // SAFETY: every other thread has been joined: the cell is ours to read.
        let used = s.used.with(|u| unsafe { *u });
        // SAFETY: every other thread has been joined: the cell is ours to read.
        let got = s.collected.with(|c| unsafe { (*c).clone() });
        assert!(released, "the slab was given back");
        assert_eq!(used, 0);
        assert_eq!(sorted(got), sorted(std::vec![b1, b2]));
    });
}
