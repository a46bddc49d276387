//! Loom models of [`RangeTable`], the registry of hugetlb-backed ranges of `Mmap`.

use crate::{
    range_table::{RangeTable, UNIT_SHIFT},
    sync::atomic::{AtomicBool, Ordering},
};
use loom::sync::Arc;

const UNIT: usize = 1 << UNIT_SHIFT;

/// A two-slot table and a hand-over flag, and a thread that runs `owner` on them and then
/// raises the flag with `Release` (a chunk handed over, or its addresses reused: either way an
/// ordered hand-over to whoever reads the flag with `Acquire`).
fn with_owner<T: Send + 'static>(
    owner: impl FnOnce(&RangeTable<2>) -> T + Send + 'static,
) -> (
    Arc<RangeTable<2>>,
    Arc<AtomicBool>,
    loom::thread::JoinHandle<T>,
) {
    let table = Arc::new(RangeTable::<2>::new());
    let flag = Arc::new(AtomicBool::new(false));
    let thread = {
        let (table, flag) = (table.clone(), flag.clone());
        loom::thread::spawn(move || {
            let result = owner(&table);
            flag.store(true, Ordering::Release);
            result
        })
    };
    (table, flag, thread)
}

/// A thread claims a range for its new chunk and hands the chunk over (a `Release` store, as
/// any hand-over of memory between threads is ordered); meanwhile another thread claims and
/// forgets a range of its own in the same two-slot table. The receiver's lookup inside the
/// chunk finds exactly the chunk's range; both claims find a slot; no lookup ever returns a
/// range for addresses outside every recorded range.
#[test]
fn loom_range_table_handover() {
    crate::loom_model("range_table_handover", || {
        let (table, handed, maker) = with_owner(|table| table.claim(4 * UNIT, 2 * UNIT));
        let other = {
            let table = table.clone();
            loom::thread::spawn(move || {
                let slot = table.claim(10 * UNIT, UNIT);
                assert_eq!(
                    table.overlapping(10 * UNIT, 1),
                    Some((10 * UNIT, 11 * UNIT))
                );
                table.forget(10 * UNIT);
                slot
            })
        };
        if handed.load(Ordering::Acquire) {
            assert_eq!(
                table.overlapping(5 * UNIT, UNIT),
                Some((4 * UNIT, 6 * UNIT)),
                "the holder of a chunk finds its range"
            );
        }
        let found = table.overlapping(7 * UNIT, 3 * UNIT);
        assert!(
            found.is_none(),
            "no range overlaps [7, 10) units: {found:?}"
        );
        let (a, b) = (maker.join().unwrap(), other.join().unwrap());
        // Both found a slot: two slots for two ranges, or one reused after `forget`.
        assert!(
            a.is_some() && b.is_some(),
            "a claim failed in a table with room"
        );
        assert_eq!(table.overlapping(5 * UNIT, 1), Some((4 * UNIT, 6 * UNIT)));
    });
}

/// A chunk's range is forgotten before the chunk is unmapped; its addresses are then reused by
/// a chunk of normal memory that another thread receives (the kernel orders the `munmap`
/// before the new `mmap`, modelled as a `Release`/`Acquire` hand-over), while a third thread
/// claims a slot. The receiver never sees the old range, and the freed slot can be claimed.
#[test]
fn loom_range_table_reuse() {
    crate::loom_model("range_table_reuse", || {
        let (table, reused, owner) = with_owner(|table| {
            assert!(table.claim(2 * UNIT, 2 * UNIT).is_some());
            table.forget(2 * UNIT);
        });
        let claimer = {
            let table = table.clone();
            loom::thread::spawn(move || table.claim(8 * UNIT, UNIT))
        };
        if reused.load(Ordering::Acquire) {
            assert_eq!(
                table.overlapping(2 * UNIT, 2 * UNIT),
                None,
                "a forgotten range"
            );
        }
        owner.join().unwrap();
        assert!(claimer.join().unwrap().is_some(), "a slot was free for it");
        assert_eq!(table.overlapping(2 * UNIT, 2 * UNIT), None);
        assert_eq!(table.overlapping(8 * UNIT, 1), Some((8 * UNIT, 9 * UNIT)));
    });
}
