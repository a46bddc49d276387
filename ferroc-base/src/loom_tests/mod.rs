//! The loom models of the base's lock-free parts, each driving the real type under loom's
//! atomics (`--cfg ferroc_loom`):
//! - `bitmap.rs`: [`crate::bitmap::Bitmap`], claims crossing a word boundary racing a release.
//! - `range_table.rs`: `RangeTable`, `Mmap`'s registry of hugetlb-backed ranges: a lookup
//!   after a chunk's hand-over while other ranges come and go, and a reused address range.

mod bitmap;
mod range_table;
