//! What `visit_blocks` reports, checked as it is collected: shared by the unit tests
//! (`src/visit/tests.rs`, which include this file) and the proptest (`tests/visit.rs`).

use core::ptr::NonNull;
use std::collections::BTreeMap;

/// Block address to usable size, from `visit` (a context's or heap's `visit_blocks`, given
/// the visitor: `visited(|f| cx.visit_blocks(f))`), after checking that the blocks come in
/// address order, none twice, and that the walk was not stopped.
pub fn visited(
    visit: impl FnOnce(&mut dyn FnMut(NonNull<u8>, usize) -> bool) -> bool,
) -> BTreeMap<usize, usize> {
    let mut seen = BTreeMap::new();
    let mut last = 0;
    assert!(visit(&mut |p, size| {
        let a = p.as_ptr() as usize;
        assert!(a > last, "blocks in address order, none twice ({a:#x})");
        last = a;
        seen.insert(a, size);
        true
    }));
    seen
}
