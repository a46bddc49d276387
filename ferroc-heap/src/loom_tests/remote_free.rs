//! Remote frees racing the owner's take of the thread-free list.

use super::*;

/// Two remote freers free while the owner takes the list: every block is collected exactly
/// once, and what a freer wrote into its block before freeing it (a loom cell, so loom checks
/// the order) is visible to the owner that collects it (`Release` push, `Acquire` take).
#[test]
fn loom_remote_free_push_collect() {
    ferroc_base::loom_model("remote_free_push_collect", || {
        let s = Slab::new(1, 2);
        let addrs = [block(), block()];
        let payload = Arc::new([UnsafeCell::new(0usize), UnsafeCell::new(0usize)]);
        let freers: Vec<_> = (0..2)
            .map(|i| {
                let (s, payload) = (s.clone(), payload.clone());
                loom::thread::spawn(move || {
                    // SAFETY: the block is this thread's until it is freed.
                    payload[i].with_mut(|p| unsafe { *p = i + 1 });
                    assert!(
                        !s.free(STRANGER, addrs[i]),
                        "a NORMAL shard needs no notification"
                    );
                })
            })
            .collect();
        // The owner collects while the freers run (yielding, so that loom schedules them in
        // between), and reads each block it gets before anyone is joined.
        let mut got = Vec::new();
        while got.len() < 2 {
            let before = got.len();
            drain(s.tf.take(), &mut got);
            for &b in &got[before..] {
                let i = addrs.iter().position(|&a| a == b).unwrap();
                // SAFETY: the block was handed over by the take; loom checks the order.
                payload[i].with(|p| assert_eq!(unsafe { *p }, i + 1));
            }
            loom::thread::yield_now();
        }
        for f in freers {
            f.join().unwrap();
        }
        assert!(s.tf.take().is_null());
        assert_eq!(sorted(got), sorted(addrs.to_vec()));
    });
}
