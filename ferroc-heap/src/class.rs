//! Size classes, derived at compile time from the geometry in `ferroc_arena::sizes`.
//!
//! - Sizes up to 16 go in 8-byte steps (8, 16), then 16-byte steps up to `LINEAR_MAX` (64; 128
//!   with `finer-grained`), so that every block of 16 bytes or more is 16-aligned.
//! - Above it, every power of two `[2^p, 2^(p+1))` is split into `PER_DOUBLING` classes (4, or
//!   8 with `finer-grained`), so a block wastes at most 1/4 (1/8) of its size to rounding —
//!   12.5–25% in the worst case, much less on average.
//! - Every class size is a multiple of 8; sizes of 16 or more are multiples of 16; power-of-two
//!   sizes are classes of their own. A block's alignment is the largest power of two dividing
//!   its size, up to the shard unit size (shard areas are aligned to it), so power-of-two sizes
//!   up to the shard size are naturally aligned.
//!
//! Kinds by block size: **small** up to `SMALL_MAX` (1 KiB; found through an O(1) direct table
//! indexed by `(size + 7) / 8`), **medium** up to an eighth of a shard unit (one-unit shards),
//! **large** up to `LARGE_MAX` (an eighth of a slab; shards spanning several units), and
//! **huge** beyond (a run of slabs of its own).

use ferroc_arena::sizes::{SHARD_SIZE, SHARDS_PER_SLAB, SLAB_SIZE};

/// log2 of the number of classes per power of two.
#[cfg(not(feature = "finer-grained"))]
const PER_DOUBLING_LOG2: u32 = 2;
#[cfg(feature = "finer-grained")]
const PER_DOUBLING_LOG2: u32 = 3;

/// Classes per power of two.
pub const PER_DOUBLING: usize = 1 << PER_DOUBLING_LOG2;
/// Largest size served in 8- and 16-byte steps.
pub const LINEAR_MAX: usize = 16 << PER_DOUBLING_LOG2;
/// Classes below the first power-of-two split: 8, 16, then 16-byte steps up to `LINEAR_MAX`.
const LINEAR_CLASSES: usize = 2 + (LINEAR_MAX - 16) / 16;
/// Largest small size (direct table).
pub const SMALL_MAX: usize = 1024;
/// Entries of the direct table: one per 8 bytes of size, 0 through `SMALL_MAX`.
pub const DIRECT_SLOTS: usize = SMALL_MAX / 8 + 1;
/// Largest medium size (single-unit shards).
pub const MEDIUM_MAX: usize = SHARD_SIZE / 8;
/// Largest size served from shards; above it blocks are huge.
pub const LARGE_MAX: usize = SLAB_SIZE / 8;

/// The class of `size` (`1 <= size <= LARGE_MAX`).
#[inline]
pub const fn class_of(size: usize) -> usize {
    if size <= 16 {
        return size.div_ceil(8) - (size != 0) as usize;
    }
    if size <= LINEAR_MAX {
        return 2 + (size - 17) / 16;
    }
    let s = size - 1;
    let p = usize::BITS - 1 - s.leading_zeros();
    let sub = (s >> (p - PER_DOUBLING_LOG2)) & (PER_DOUBLING - 1);
    LINEAR_CLASSES + (p - LINEAR_MAX.trailing_zeros()) as usize * PER_DOUBLING + sub
}

/// The block size of class `c`.
pub const fn size_of_class(c: usize) -> usize {
    if c < 2 {
        return 8 * (c + 1);
    }
    if c < LINEAR_CLASSES {
        return 16 * c;
    }
    let k = c - LINEAR_CLASSES;
    let p = LINEAR_MAX.trailing_zeros() as usize + (k >> PER_DOUBLING_LOG2);
    let q = k & (PER_DOUBLING - 1);
    (1 << p) + ((q + 1) << (p - PER_DOUBLING_LOG2 as usize))
}

/// Number of classes.
pub const CLASS_COUNT: usize = class_of(LARGE_MAX) + 1;

/// Block sizes by class.
pub static CLASS_SIZES: [usize; CLASS_COUNT] = {
    let mut t = [0; CLASS_COUNT];
    let mut c = 0;
    while c < CLASS_COUNT {
        t[c] = size_of_class(c);
        c += 1;
    }
    t
};

/// The alignment every block of class `c` has.
#[inline]
pub const fn align_of_class(c: usize) -> usize {
    let s = size_of_class(c);
    let low = 1 << s.trailing_zeros();
    if low < SHARD_SIZE { low } else { SHARD_SIZE }
}

/// Shard units a shard of class `c` spans: one for small and medium blocks; for large ones,
/// enough for eight blocks but at most eight units (512 KiB by default), and never fewer than
/// two blocks or the whole slab (unit 0 holds the slab header).
///
/// The cap is about resident memory: a large shard keeps the pages of its freed blocks while
/// any block of it lives, and a program growing buffers by `realloc` passes through the
/// classes above 64 KiB one after another, leaving a shard in each (the suite's realloc: 94 →
/// 85 MiB peak). Up to 64 KiB eight blocks stay: fewer (four) or more (sixteen) both cost the
/// suite's two-thread mstress 2-3 MiB of its ~31.
pub const fn units_of_class(c: usize) -> usize {
    let s = size_of_class(c);
    if s <= MEDIUM_MAX {
        return 1;
    }
    let many = (8 * s).div_ceil(SHARD_SIZE);
    let two = (2 * s).div_ceil(SHARD_SIZE);
    let cap = if two > 8 { two } else { 8 };
    let u = if many < cap { many } else { cap };
    if u < SHARDS_PER_SLAB - 1 {
        u
    } else {
        SHARDS_PER_SLAB - 1
    }
}

/// The smallest class at or above `class_of(size)` whose blocks are aligned to `align`, if any.
#[inline]
pub fn class_for(size: usize, align: usize) -> Option<usize> {
    if size > LARGE_MAX {
        return None;
    }
    let mut c = class_of(size);
    while c < CLASS_COUNT {
        if align_of_class(c) >= align {
            return Some(c);
        }
        c += 1;
    }
    None
}

// Compile-time validation of the table.
const _: () = {
    assert!(size_of_class(class_of(LARGE_MAX)) == LARGE_MAX);
    assert!(CLASS_COUNT < 256, "classes must fit a u8");
    let mut c = 0;
    while c < CLASS_COUNT {
        let s = size_of_class(c);
        assert!(s.is_multiple_of(8));
        assert!(
            s < 16 || s.is_multiple_of(16),
            "blocks of 16 bytes or more are 16-aligned"
        );
        assert!(class_of(s) == c, "every class size maps to its own class");
        if c > 0 {
            let prev = size_of_class(c - 1);
            assert!(prev < s);
            // Worst-case rounding waste: a request of prev + 1 bytes gets s bytes.
            assert!((s - prev - 1) * PER_DOUBLING <= prev + 1 || s <= LINEAR_MAX);
            assert!(class_of(prev + 1) == c);
        }
        if s.is_power_of_two() && s <= SHARD_SIZE {
            assert!(
                align_of_class(c) == s,
                "powers of two are naturally aligned"
            );
        }
        // A shard of this class holds at least one block even in unit 0 or with the header.
        assert!(units_of_class(c) * SHARD_SIZE >= 2 * s || s > MEDIUM_MAX);
        c += 1;
    }
    let mut p = 8;
    while p <= LARGE_MAX {
        assert!(
            size_of_class(class_of(p)) == p,
            "every power of two is a class"
        );
        p *= 2;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_fits_its_class() {
        for size in 1..=LARGE_MAX.min(1 << 20) {
            let c = class_of(size);
            assert!(CLASS_SIZES[c] >= size, "size {size}");
            assert!(c == 0 || CLASS_SIZES[c - 1] < size, "size {size} not tight");
        }
    }

    #[test]
    fn class_for_respects_alignment() {
        assert_eq!(class_for(100, 64).map(|c| CLASS_SIZES[c]), Some(128));
        assert_eq!(class_for(1, 16).map(|c| CLASS_SIZES[c]), Some(16));
        assert_eq!(class_for(24, 8).map(|c| CLASS_SIZES[c]), Some(32));
        assert_eq!(
            class_for(1, SHARD_SIZE).map(|c| CLASS_SIZES[c]),
            Some(SHARD_SIZE)
        );
        assert_eq!(class_for(1, SHARD_SIZE * 2), None);
        assert_eq!(class_for(LARGE_MAX + 1, 8), None);
    }
}
