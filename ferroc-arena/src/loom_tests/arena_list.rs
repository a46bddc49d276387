//! Loom models of [`ArenaList`]: publishers racing for its slots while a reader walks them.

use core::ptr::NonNull;

use crate::arena_list::ArenaList;
use loom::{cell::UnsafeCell, sync::Arc};
use std::{boxed::Box, vec::Vec};

/// A stand-in for an arena header: written before it is published, read by whoever finds it.
/// Loom reports a data race if a reader could read `value` without the write happening-before.
struct Item {
    value: UnsafeCell<usize>,
}

// SAFETY: `value` is written only by the thread that made the item, before publishing it;
// after that every thread only reads it (loom checks exactly that).
unsafe impl Sync for Item {}

/// An item handed back by a publisher that found the list full, sent back to the main thread.
struct Back(NonNull<Item>);

// SAFETY: an item handed back was never published: the publisher gives up its only pointer.
unsafe impl Send for Back {}

/// A fresh item holding `value`, written the way `make_arena` writes a header: in place, after
/// the memory exists, by the thread that will publish it.
fn item(value: usize) -> NonNull<Item> {
    let item = NonNull::from(Box::leak(Box::new(Item {
        value: UnsafeCell::new(0),
    })));
    // SAFETY: the item was just made and nothing else reaches it yet.
    unsafe { item.as_ref() }.value.with_mut(|v| {
        // SAFETY: `with_mut` gives this thread the only access to the cell.
        unsafe { *v = value }
    });
    item
}

fn read(item: &Item) -> usize {
    // SAFETY: an item is written only before it is published; everyone else only reads it.
    item.value.with(|v| unsafe { *v })
}

/// Frees an item `item` made.
fn free(item: NonNull<Item>) {
    // SAFETY: made by `Box::leak` in `item`, and no longer in any list or used by anyone.
    drop(unsafe { Box::from_raw(item.as_ptr()) });
}

/// Publishes `value` into `list` from a new thread; the thread returns the item back when the
/// list was full.
fn publisher<const N: usize>(
    list: &Arc<ArenaList<Item, N>>,
    value: usize,
) -> loom::thread::JoinHandle<Option<Back>> {
    let list = list.clone();
    loom::thread::spawn(move || {
        // SAFETY: the item is fully written, stays put until `free` after `take_all`, and is
        // only read once published.
        match unsafe { list.publish(item(value)) } {
            Ok(published) => {
                assert_eq!(read(published), value);
                None
            }
            Err(back) => Some(Back(back)),
        }
    })
}

/// Two publishers race for the two slots of a list while a reader walks it: the published
/// items always form a prefix, the reader sees only fully written items (never a value it
/// could read before the write), each item lands in its own slot, and both are published.
#[test]
fn loom_arena_list_publish() {
    ferroc_base::loom_model("arena_list_publish", || {
        let list = Arc::new(ArenaList::<Item, 2>::new());
        let (a, b) = (publisher(&list, 1), publisher(&list, 2));
        let reader = {
            let list = list.clone();
            loom::thread::spawn(move || {
                let seen: Vec<usize> = list.iter().map(read).collect();
                assert!(seen.len() <= 2);
                assert!(seen.iter().all(|v| *v == 1 || *v == 2), "{seen:?}");
                if let [x, y] = seen[..] {
                    assert_ne!(x, y);
                }
            })
        };
        assert!(a.join().unwrap().is_none() && b.join().unwrap().is_none());
        reader.join().unwrap();
        let mut list = Arc::try_unwrap(list).ok().unwrap();
        let mut values: Vec<usize> = list.iter().map(read).collect();
        values.sort();
        assert_eq!(values, [1, 2]);
        let items: Vec<_> = list.take_all().collect();
        assert_eq!(items.len(), 2);
        assert_eq!(list.len(), 0);
        items.into_iter().for_each(free);
    });
}

/// Two publishers race for the one slot of a list: exactly one item is published, the other
/// is handed back to its publisher untouched (as `publish` gives an arena's chunk back).
#[test]
fn loom_arena_list_full() {
    ferroc_base::loom_model("arena_list_full", || {
        let list = Arc::new(ArenaList::<Item, 1>::new());
        let (a, b) = (publisher(&list, 1), publisher(&list, 2));
        let back: Vec<NonNull<Item>> = [a, b]
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .map(|b| b.0)
            .collect();
        assert_eq!(back.len(), 1, "exactly one publisher finds the list full");
        let mut list = Arc::try_unwrap(list).ok().unwrap();
        assert_eq!(list.len(), 1);
        let kept = read(list.iter().next().unwrap());
        // SAFETY: handed back unpublished, so still ours alone.
        assert_ne!(read(unsafe { back[0].as_ref() }), kept);
        list.take_all().chain(back).for_each(free);
    });
}
