//! The loom models of the base's lock-free parts, each driving the real type under loom's
//! atomics (`--cfg ferroc_loom`):
//! - `bitmap.rs`: [`crate::bitmap::Bitmap`], claims crossing a word boundary racing a release.

mod bitmap;
