//! Every size of Ferroc's geometry, in one place, checked at compile time.
//!
//! - A **slab** is `SLAB_SIZE` bytes, aligned to its size (default 4 MiB, `FERROC_SLAB_SHIFT`
//!   at build time overrides the shift, 16..=26).
//! - A **shard** unit is `SHARD_SIZE` bytes (default 64 KiB, `FERROC_SHARD_SHIFT`, 12..=20); a
//!   slab holds `SHARDS_PER_SLAB` of them, between 8 and 64 so that one `u64` can describe them.
//! - An **arena** starts at `MIN_ARENA_SLABS` slabs and each new one doubles, up to
//!   `MAX_ARENA_SLABS`; at most `MAX_ARENAS` arenas exist, and runs larger than the next arena
//!   to be made (that fit in no existing one) come straight from the base.
//!
//! The heap derives its size classes from these constants. None of them is the OS page size,
//! which is only known at run time (`BaseAlloc::page_size`).

/// Parses a decimal `u32` at compile time (for `option_env!`).
const fn parse(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0u32;
    assert!(!b.is_empty(), "empty size shift");
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "size shift must be a decimal number");
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

const fn env_or(value: Option<&str>, default: u32) -> u32 {
    match value {
        Some(s) => parse(s),
        None => default,
    }
}

/// log2 of the slab size.
pub const SLAB_SHIFT: u32 = env_or(option_env!("FERROC_SLAB_SHIFT"), 22);
/// The slab size: the unit the arenas hand out and the alignment every slab has.
pub const SLAB_SIZE: usize = 1 << SLAB_SHIFT;
/// log2 of the shard unit size.
pub const SHARD_SHIFT: u32 = env_or(option_env!("FERROC_SHARD_SHIFT"), 16);
/// The shard unit size: the granule in which a slab is cut into shards.
pub const SHARD_SIZE: usize = 1 << SHARD_SHIFT;
/// How many shard units a slab holds.
pub const SHARDS_PER_SLAB: usize = SLAB_SIZE / SHARD_SIZE;

/// Slabs in the first arena (64 MiB with the default slab size).
pub const MIN_ARENA_SLABS: usize = 16;
/// Slabs in the largest arena (4 GiB with the default slab size).
pub const MAX_ARENA_SLABS: usize = 1024;
/// How many arenas an `Arenas` can hold.
pub const MAX_ARENAS: usize = 64;

const _: () = {
    assert!(
        SLAB_SHIFT >= 16 && SLAB_SHIFT <= 26,
        "FERROC_SLAB_SHIFT must be in 16..=26"
    );
    assert!(
        SHARD_SHIFT >= 12 && SHARD_SHIFT <= 20,
        "FERROC_SHARD_SHIFT must be in 12..=20"
    );
    assert!(
        SHARDS_PER_SLAB >= 8 && SHARDS_PER_SLAB <= 64,
        "a slab must hold 8 to 64 shard units"
    );
    assert!(MIN_ARENA_SLABS.is_power_of_two() && MAX_ARENA_SLABS.is_power_of_two());
    assert!(MIN_ARENA_SLABS <= MAX_ARENA_SLABS);
};
