//! Loom models of [`AbandonedSet`]: abandoners and reclaimers racing on the real set.

use crate::abandoned::AbandonedSet;
use ferroc_base::{
    bitmap::Bitmap,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
};
use loom::sync::Arc;
use std::vec::Vec;

fn set(s: &Shared) -> AbandonedSet<'_> {
    AbandonedSet::new(Bitmap::new(&s.words, 70), &s.count)
}

struct Shared {
    words: [AtomicU64; 2],
    count: AtomicUsize,
    /// Who owns each slab: 0 nobody, else a thread number. A model of the slab header.
    owner: [AtomicUsize; 3],
}

impl Shared {
    /// Nothing abandoned yet; slab `t` owned by `owners[t]`.
    fn new(owners: [usize; 3]) -> Arc<Self> {
        Arc::new(Shared {
            words: [AtomicU64::new(0), AtomicU64::new(0)],
            count: AtomicUsize::new(0),
            owner: owners.map(AtomicUsize::new),
        })
    }
}

/// Two owners abandon their slabs (one of them crossing into the second word) while a
/// reclaimer takes whatever it finds: every slab ends up reclaimed exactly once and the
/// reclaimer sees the owner's last write (the `Release`/`Acquire` pair).
#[test]
fn loom_abandon_reclaim() {
    ferroc_base::loom_model("abandon_reclaim", || {
        let s = Shared::new([1, 2, 0]);
        let slab_bit = [3usize, 66];
        let mut abandoners = Vec::new();
        for (t, bit) in slab_bit.into_iter().enumerate() {
            let s = s.clone();
            abandoners.push(loom::thread::spawn(move || {
                // The last write of the dying owner, then the abandon.
                s.owner[t].store(0, Ordering::Relaxed);
                set(&s).abandon(bit);
            }));
        }
        let reclaimer = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..2 {
                    if let Some(i) = set(&s).reclaim() {
                        let t = slab_bit.iter().position(|&b| b == i).unwrap();
                        assert_eq!(s.owner[t].load(Ordering::Relaxed), 0);
                        s.owner[t].store(9, Ordering::Relaxed);
                        got.push(i);
                    }
                }
                got
            })
        };
        for a in abandoners {
            a.join().unwrap();
        }
        let mut got = reclaimer.join().unwrap();
        while let Some(i) = set(&s).reclaim() {
            got.push(i);
        }
        got.sort();
        assert_eq!(got, slab_bit);
        assert_eq!(s.count.load(Ordering::Relaxed), 0);
    });
}

/// Two reclaimers race each other and an abandoner: slab 3 is abandoned before they
/// start, slab 66 (in the second word) while they run. Each slab goes to exactly one
/// thread, the one that gets slab 66 sees its owner's last write, and the count of
/// abandoned slabs is back to 0 once everything is reclaimed.
#[test]
fn loom_two_reclaimers() {
    ferroc_base::loom_model("two_reclaimers", || {
        let s = Shared::new([0, 2, 0]);
        set(&s).abandon(3);
        let abandoner = {
            let s = s.clone();
            loom::thread::spawn(move || {
                s.owner[1].store(0, Ordering::Relaxed);
                set(&s).abandon(66);
            })
        };
        let reclaimers: Vec<_> = (0..2)
            .map(|t| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let got = set(&s).reclaim();
                    if got == Some(66) {
                        assert_eq!(s.owner[1].load(Ordering::Relaxed), 0);
                        s.owner[1].store(10 + t, Ordering::Relaxed);
                    }
                    got
                })
            })
            .collect();
        abandoner.join().unwrap();
        let mut got: Vec<usize> = reclaimers
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        while let Some(i) = set(&s).reclaim() {
            got.push(i);
        }
        got.sort();
        assert_eq!(got, [3, 66], "each slab reclaimed exactly once");
        assert_eq!(s.count.load(Ordering::Relaxed), 0);
        assert!(!set(&s).reclaim_at(3) && !set(&s).reclaim_at(66));
    });
}
