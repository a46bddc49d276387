//! Loom models of the heap's lock-free code, run by `cargo xtask test-loom` (compiled only
//! under `--cfg ferroc_loom`, where `ferroc_base::sync` hands out loom's atomics).
//!
//! Every model drives the real code: [`ThreadFree`]'s handshake, the fork guard, and the
//! abandon/reclaim and remote-free steps of `crate::abandon`, run on [`Slab`] below, a slab of
//! one shard whose atomics are the real types and whose owner-only fields are loom cells.
//! - `remote_free.rs`: remote frees racing the owner's take.
//! - `notify.rs`: the full-shard handshake (`try_park`, the notifying free, `unpark`).
//! - `abandon.rs`: a slab abandoned and reclaimed while another thread frees into it.
//! - `fork.rs`: the fork guard against one and two notifiers.

mod abandon;
mod fork;
mod notify;
mod remote_free;

use core::ptr::{self, NonNull};

use ferroc_arena::abandoned::AbandonedSet;
use ferroc_base::bitmap::Bitmap;
use loom::{
    cell::UnsafeCell,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize},
    },
    thread::JoinHandle,
};
use std::{boxed::Box, vec::Vec};

use crate::{
    abandon::{self as handover, OwnedShard, OwnedSlab, Settled},
    thread_free::{Block, ThreadFree},
};

/// The context id of a thread that owns no slab in the model.
const STRANGER: usize = 99;

/// A fresh free block (a leaked box), as an address a thread can carry.
fn block() -> usize {
    Box::leak(Box::new(Block {
        next: ptr::null_mut(),
    })) as *mut Block as usize
}

/// The blocks of a list taken from a thread-free word, appended to `out`.
fn drain(mut p: *mut Block, out: &mut Vec<usize>) {
    while !p.is_null() {
        out.push(p as usize);
        // SAFETY: the list was handed over by a take; its blocks are leaked boxes of the model,
        // linked through their first word.
        p = unsafe { (*p).next };
    }
}

/// `v`, sorted (to compare sets of blocks).
fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v
}

/// A slab of one shard: its real atomics (the thread-free word, the owner id, the notification
/// mask, the arenas' abandoned set of one word) and, in loom cells, the owner-only fields (the
/// live count, the collected blocks, whether the slab went back to the arenas), so that loom
/// reports any access to them that is not ordered after the previous owner's. Every access
/// the shared code makes to the slab header first checks that the slab was not released.
struct Slab {
    tf: ThreadFree,
    owner: AtomicUsize,
    notified: AtomicU64,
    abandoned_words: [AtomicU64; 1],
    abandoned_count: AtomicUsize,
    used: UnsafeCell<u32>,
    released: UnsafeCell<bool>,
    collected: UnsafeCell<Vec<usize>>,
}

impl Slab {
    /// A slab owned by `owner` whose shard has `live` live blocks, in state `NORMAL`.
    fn new(owner: usize, live: u32) -> Arc<Slab> {
        Arc::new(Slab {
            tf: ThreadFree::new(),
            owner: AtomicUsize::new(owner),
            notified: AtomicU64::new(0),
            abandoned_words: [AtomicU64::new(0)],
            abandoned_count: AtomicUsize::new(0),
            used: UnsafeCell::new(live),
            released: UnsafeCell::new(false),
            collected: UnsafeCell::new(Vec::new()),
        })
    }

    /// As [`new`](Self::new), with the shard in its owner's full list (`PARKED`).
    fn parked(owner: usize, live: u32) -> Arc<Slab> {
        let s = Slab::new(owner, live);
        assert!(s.tf.try_park(), "a new shard parks");
        s
    }

    /// The slab header is still there (loom checks this read against the release's write).
    fn check_live(&self) {
        // SAFETY: a read of the model's cell; loom checks it is ordered with the write.
        self.released
            .with(|r| assert!(!unsafe { *r }, "touched a released slab"));
    }

    /// The arenas' abandoned set, as `Arenas::abandon` and `Arenas::reclaim` use it.
    fn abandoned(&self) -> AbandonedSet<'_> {
        AbandonedSet::new(Bitmap::new(&self.abandoned_words, 1), &self.abandoned_count)
    }

    /// A free of `block` by the context `id`, as `Context::free` makes it: local if `id` owns
    /// the slab (the shard's owner-only count, modelled), else the real remote path. Returns
    /// whether it posted a notification.
    fn free(&self, id: usize, block: usize) -> bool {
        if handover::owned_by(self, id) {
            // SAFETY: the slab is ours: its owner-only cells are ours to touch (loom checks).
            self.used.with_mut(|u| unsafe { *u -= 1 });
            // SAFETY: the slab is ours (`owned_by` said so): its owner-only cells are ours to
            // touch (loom checks).
            self.collected.with_mut(|c| unsafe { (*c).push(block) });
            return false;
        }
        let block = NonNull::new(block as *mut Block).unwrap();
        // SAFETY: a live block of the shard (a leaked box), freed once by this thread.
        unsafe { handover::free_remote(self, self, block) }
    }

    /// Owner: gives the slab back to the arenas (once).
    fn release(&self) {
        self.released.with_mut(|r| {
            // SAFETY: the caller owns the slab: its owner-only cells are its to touch (loom
            // checks the hand-over).
            let r = unsafe { &mut *r };
            assert!(!*r, "released twice");
            *r = true;
        });
    }

    /// A dying owner, as `Context::abandon_all` does it for each slab.
    fn give_up(&self) {
        match handover::give_up(self) {
            Settled::Empty => self.release(),
            Settled::Live => self.abandoned().abandon(0),
        }
    }

    /// The context `id` reclaims the slab if it is abandoned, as `Context::adopt` does.
    /// `None` if it was not; `Some(Settled::Empty)` if nothing was live (it is released).
    fn reclaim(&self, id: usize) -> Option<Settled> {
        self.abandoned().reclaim()?;
        let kept = handover::take_over(self, id, |_| {});
        if kept == Settled::Empty {
            self.release();
        }
        Some(kept)
    }
}

/// A thread freeing `block` into `slab` as the context `id` (see [`Slab::free`]).
fn spawn_free(slab: &Arc<Slab>, id: usize, block: usize) -> JoinHandle<bool> {
    let s = slab.clone();
    loom::thread::spawn(move || s.free(id, block))
}

impl OwnedShard for Slab {
    fn thread_free(&self) -> &ThreadFree {
        self.check_live();
        &self.tf
    }

    fn collect_live(&self) -> u32 {
        let mut got = Vec::new();
        drain(self.tf.take(), &mut got);
        let n = got.len() as u32;
        // SAFETY: owner-only cells of the caller's slab; loom checks the hand-over.
        self.collected.with_mut(|c| unsafe { (*c).extend(got) });
        self.used.with_mut(|u| {
            // SAFETY: an owner-only cell of the caller's slab; loom checks the hand-over.
            let u = unsafe { &mut *u };
            *u -= n;
            *u
        })
    }
}

impl OwnedSlab for Slab {
    type Shard = Slab;

    fn owner(&self) -> &AtomicUsize {
        &self.owner
    }

    fn notified(&self) -> &AtomicU64 {
        self.check_live();
        &self.notified
    }

    fn unit_bit(&self, _: &Slab) -> u64 {
        1
    }

    fn shards(&self) -> impl Iterator<Item = &Slab> {
        core::iter::once(self)
    }

    fn put_shard(&self, _: &Slab) {}
}
