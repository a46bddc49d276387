//! Loom models of the pool: the slot state machine ([`SlotState`](super::SlotState)), the
//! page bitmap claims and the page publishing, driven through the real [`Pool`] and [`Slot`]
//! with a [`Probe`] for content. Under loom a page has one slot and the pool two pages, and a
//! slot's content sits in a loom cell, so loom checks every write and read of it (the claim's
//! write, a reader's read, the exit's drop, the next life's write) against the orderings.

use core::{alloc::Layout, ptr::NonNull};

use ferroc_base::{BaseAlloc, Chunk};
use loom::{sync::Arc, thread};
use std::vec::Vec;

use super::{Pool, Slot};

/// A base over std's allocator: chunks are not zeroed, so every slot of a page is written.
struct StdBase;

// SAFETY: chunks come from std's allocator with the layout asked for (aligned, unique, live
// until `deallocate`) and never claim to be zeroed; nothing panics.
unsafe impl BaseAlloc for StdBase {
    type Handle = ();
    type Error = &'static str;

    fn page_size(&self) -> usize {
        4096
    }

    fn allocate(&self, layout: Layout, _commit: bool) -> Result<Chunk<Self>, Self::Error> {
        // SAFETY: a page has a non-zero size.
        let p = NonNull::new(unsafe { std::alloc::alloc(layout) }).ok_or("out of memory")?;
        // SAFETY: `p` is a fresh allocation of `layout`, not zeroed, released by `deallocate`.
        Ok(unsafe { Chunk::new(p, layout, false, ()) })
    }

    unsafe fn deallocate(chunk: &mut Chunk<Self>) {
        // SAFETY: the chunk came from `allocate` with this layout and is released once (this
        // fn's contract).
        unsafe { std::alloc::dealloc(chunk.pointer().as_ptr(), chunk.layout()) }
    }

    unsafe fn commit(&self, _: NonNull<u8>, _: usize) -> Result<(), Self::Error> {
        Ok(())
    }

    unsafe fn decommit(&self, _: NonNull<u8>, _: usize) -> bool {
        false
    }
}

/// A slot's content in the models: a non-zero life number, zeroed when dropped (a write that
/// loom checks against every reader).
struct Probe(usize);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0 = 0;
    }
}

type ProbePool = Pool<StdBase, Probe>;

/// Claims a slot for life `life` and checks the content is there.
fn claim(pool: &ProbePool, life: usize) -> Option<&'static Slot<StdBase, Probe>> {
    let slot = pool.claim_with(&StdBase, || Probe(life))?;
    assert_eq!(slot.context().0, life);
    Some(slot)
}

/// How many live slots a statistics reader sees now; every content it sees must be whole.
fn read_all(pool: &ProbePool) -> usize {
    let mut n = 0;
    pool.for_each_live(|p| {
        assert_ne!(p.0, 0, "a reader saw a dropped content");
        n += 1;
    });
    n
}

/// An owner claims a slot and exits while a statistics reader walks the pool: the reader sees
/// the slot's content whole or not at all (never in `INIT`, never while `EXITING` drops it:
/// loom checks the reader's read against the claim's write and the exit's drop), and the exit
/// waits out a reader in `READING`.
#[test]
fn loom_exit_waits_for_reader() {
    ferroc_base::loom_model("pool_exit_waits_for_reader", || {
        let pool = Arc::new(ProbePool::new());
        let reader = {
            let pool = pool.clone();
            thread::spawn(move || read_all(&pool))
        };
        let slot = claim(&pool, 1).unwrap();
        slot.release();
        assert!(reader.join().unwrap() <= 1);
        assert_eq!(read_all(&pool), 0);
    });
}

/// Two threads claim at once, with one slot a page: both may make page 0 (one publishes, the
/// other gives its chunk back and uses the published one), both race for its slot, and the
/// loser goes on to page 1. Each gets a slot of its own, with its own content; the pool is
/// then full, and both slots can be read and released.
#[test]
fn loom_claims_race() {
    ferroc_base::loom_model("pool_claims_race", || {
        let pool = Arc::new(ProbePool::new());
        let claimers: Vec<_> = (1..=2)
            .map(|life| {
                let pool = pool.clone();
                thread::spawn(move || claim(&pool, life).unwrap() as *const _ as usize)
            })
            .collect();
        let slots: Vec<usize> = claimers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_ne!(slots[0], slots[1], "two threads got one slot");
        assert!(claim(&pool, 3).is_none(), "two pages of one slot are full");
        assert_eq!(read_all(&pool), 2);
        for (life, &slot) in (1..=2).zip(&slots) {
            // SAFETY: the address of a slot claimed above, in a page that is never freed.
            let slot: &'static Slot<StdBase, Probe> = unsafe { &*(slot as *const _) };
            assert_eq!(slot.context().0, life);
            slot.release();
        }
        assert_eq!(read_all(&pool), 0);
    });
}

/// A slot released by its owner while another thread claims: the claimer gets the released
/// slot (then the owner's whole life, its drop included, happens-before the claimer's write:
/// the page bit's `Release`/`Acquire`, checked by loom on the shared content cell) or, if it
/// came first, a slot of a new page.
#[test]
fn loom_released_slot_reused() {
    ferroc_base::loom_model("pool_released_slot_reused", || {
        let pool = Arc::new(ProbePool::new());
        let first = claim(&pool, 1).unwrap();
        let owner = thread::spawn(move || first.release());
        let claimer = {
            let pool = pool.clone();
            thread::spawn(move || claim(&pool, 2).unwrap() as *const _ as usize)
        };
        owner.join().unwrap();
        let second = claimer.join().unwrap();
        // SAFETY: the address of the slot claimed above, in a page that is never freed.
        let second: &'static Slot<StdBase, Probe> = unsafe { &*(second as *const _) };
        assert_eq!(read_all(&pool), 1);
        second.release();
        // The pool has room again for two lives at once.
        let (a, b) = (claim(&pool, 3).unwrap(), claim(&pool, 4).unwrap());
        a.release();
        b.release();
    });
}
