//! Loom model of [`Bitmap`]: claims racing across a word boundary while bits are released.

use crate::{
    bitmap::Bitmap,
    sync::atomic::{AtomicU64, Ordering},
};
use loom::sync::Arc;
use std::prelude::rust_2024::*;

/// Two claimers race for the 16 free bits 56..72 of a two-word bitmap, so every run they
/// can get crosses or touches the word boundary at 64 and a claim may have to roll back
/// its first word, while a third thread releases bits 0..8 it owns. No bit is ever owned
/// twice, the pre-claimed bits are left alone, and at least one claim succeeds.
#[test]
fn loom_bitmap_claim_release() {
    crate::loom_model("bitmap_claim_release", || {
        let words: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        // Bits 0..56 are taken: 0..8 by the releaser, 8..56 by nobody in this model.
        words[0].store((1 << 56) - 1, Ordering::Relaxed);
        let claimer = |n: usize| {
            let words = words.clone();
            loom::thread::spawn(move || Bitmap::new(&words[..], 72).claim(n, 1, 0))
        };
        let (a, b) = (claimer(9), claimer(7));
        let releaser = {
            let words = words.clone();
            loom::thread::spawn(move || Bitmap::new(&words[..], 72).release(0, 8))
        };
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        releaser.join().unwrap();
        let bm = Bitmap::new(&words[..], 72);
        assert!(a.is_some() || b.is_some(), "both claims failed");
        let runs: Vec<(usize, usize)> = [(a, 9), (b, 7)]
            .into_iter()
            .filter_map(|(at, n)| at.map(|i| (i, n)))
            .collect();
        for &(i, n) in &runs {
            assert!(i + n <= 72, "{runs:?}");
            assert!(
                i + n <= 8 || i >= 56,
                "a claim took a bit that was never free: {runs:?}"
            );
            assert!(bm.is_set(i, n));
        }
        if let [(i, n), (j, m)] = runs[..] {
            assert!(i + n <= j || j + m <= i, "overlapping claims {runs:?}");
        }
        let claimed: usize = runs.iter().map(|r| r.1).sum();
        assert_eq!(bm.count_set(), 48 + claimed);
    });
}
