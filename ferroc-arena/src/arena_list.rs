//! [`ArenaList`]: the fixed array of slots the arenas are published into, lock-free.
//!
//! # Invariant
//! The slots that hold an item form a prefix of the array: a slot goes from null to an item
//! once (a CAS from null) and never back while the list is shared, and a publisher tries slot
//! `k + 1` only after it saw slot `k` taken. So a reader walks the slots from the first and
//! stops at the first null one ([`ArenaList::iter`]), and every item it meets was fully
//! written before it was published.
//!
//! # Orderings
//! - [`publish`](ArenaList::publish)'s CAS is `AcqRel` on success: its `Release` half makes
//!   every write that initialised the item happen-before any reader's `Acquire` load that sees
//!   the pointer, so a reader never meets a half-made item. (Its `Acquire` half is not needed
//!   for the item but costs nothing on a path taken once per arena.)
//! - A failed CAS is `Acquire`: it reads another publisher's pointer and moves on; it does not
//!   follow it, so `Relaxed` would do as well, and `Acquire` keeps the one rule "a loaded
//!   pointer was acquired" simple.
//! - [`iter`](ArenaList::iter) loads each slot `Acquire`, pairing with the `Release` above.
//! - [`take_all`](ArenaList::take_all) runs with `&mut self`: nothing races it.
//!
//! Modelled under loom by `loom_tests/arena_list.rs`: two publishers racing for the slots
//! while a reader walks them.
#![cfg_attr(ferroc_loom, allow(dead_code))]

use core::{
    marker::PhantomData,
    ptr::{self, NonNull},
};

use ferroc_base::sync::atomic::{AtomicPtr, Ordering};

/// Up to `N` items published once each and read by any thread until the list is dropped.
/// Shared like `&T` (`Sync` only for `T: Sync`), since it hands out `&T` to any thread.
pub(crate) struct ArenaList<T, const N: usize> {
    slots: [AtomicPtr<T>; N],
    _items: PhantomData<T>,
}

impl<T, const N: usize> ArenaList<T, N> {
    /// An empty list.
    #[cfg(not(ferroc_loom))]
    pub(crate) const fn new() -> Self {
        ArenaList {
            slots: [const { AtomicPtr::new(ptr::null_mut()) }; N],
            _items: PhantomData,
        }
    }

    /// An empty list (loom's atomics have no `const` constructor).
    #[cfg(ferroc_loom)]
    pub(crate) fn new() -> Self {
        ArenaList {
            slots: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            _items: PhantomData,
        }
    }

    /// The published items, in the order they were published.
    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots
            .iter()
            .map(|slot| slot.load(Ordering::Acquire))
            .take_while(|p| !p.is_null())
            // SAFETY: a non-null slot holds an item `publish` was given, which its caller
            // promised stays valid and shared-only until `take_all` or the list's end; the
            // `Acquire` load above saw the publishing `Release`, so the item is fully written.
            .map(|p| unsafe { &*p })
    }

    /// How many items are published.
    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    /// Puts `item` in the first free slot and returns it as shared from now on, or gives it
    /// back when every slot is taken.
    ///
    /// # Safety
    ///
    /// `item` points to a fully initialised `T` that stays valid and in place, and is only
    /// accessed through shared references, until [`take_all`](Self::take_all) returns it or
    /// the list is gone.
    pub(crate) unsafe fn publish(&self, item: NonNull<T>) -> Result<&T, NonNull<T>> {
        for slot in &self.slots {
            if slot
                .compare_exchange(
                    ptr::null_mut(),
                    item.as_ptr(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                // SAFETY: the caller promised `item` is valid and shared-only for as long as
                // the list holds it, and it now does.
                return Ok(unsafe { item.as_ref() });
            }
        }
        Err(item)
    }

    /// Empties the list, returning every item published (to be released by the caller).
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = NonNull<T>> + '_ {
        self.slots
            .iter()
            .filter_map(|slot| NonNull::new(slot.swap(ptr::null_mut(), Ordering::Relaxed)))
    }
}
