//! [`Static`]: chunks from a fixed region, for bare metal and other places without an OS.
//!
//! The region is cut into units of `1 << unit_shift` bytes (64 KiB unless chosen). Its first
//! bytes hold two bitmaps over the units: **used** (a unit belongs to a live chunk) and
//! **dirty** (a unit was handed out before, or the region did not start zeroed). Units start at
//! the first unit-aligned address after the bitmaps. Chunks are runs of units claimed in the
//! used bitmap with a CAS (see [`Bitmap`]), so allocation and release are lock-free.
//!
//! A chunk is reported zeroed only if none of its units is dirty: memory handed out a second
//! time is never claimed to be zero. Commit and decommit do nothing (the memory is always
//! there), and decommit reports that the range is *not* zeroed.
//!
//! Nothing is computed at construction, so [`Static::new`] is `const`: the geometry is derived
//! from the region's address and length on each (slow-path) call, and a zero-filled static
//! region starts with both bitmaps clear.

use core::{alloc::Layout, cell::UnsafeCell, fmt, mem::MaybeUninit, ptr::NonNull};

use crate::{
    BaseAlloc, Chunk, align_up,
    bitmap::{Bitmap, words_for},
    sync::atomic::AtomicU64,
};

/// The unit size of a [`Static`] made by [`Static::new`]: 64 KiB.
pub const DEFAULT_UNIT_SHIFT: u32 = 16;

/// A zero-initialised buffer of `N` bytes to serve a [`Static`] from, aligned to its default
/// unit size. Put it in a `static`; it lives in `.bss` and costs no image size.
#[repr(C, align(65536))]
pub struct StaticMemory<const N: usize>(UnsafeCell<MaybeUninit<[u8; N]>>);

// SAFETY: the buffer is only reached through `Static`, which hands out disjoint chunks and keeps
// its bookkeeping in atomics.
unsafe impl<const N: usize> Sync for StaticMemory<N> {}

impl<const N: usize> StaticMemory<N> {
    /// A zero-filled buffer.
    pub const fn new() -> Self {
        StaticMemory(UnsafeCell::new(MaybeUninit::zeroed()))
    }
}

impl<const N: usize> Default for StaticMemory<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A base that serves chunks from one fixed region. Use it as `&'static Static` (or any
/// `&Static` that outlives its chunks).
pub struct Static {
    region: *mut u8,
    len: usize,
    unit_shift: u32,
}

// SAFETY: all shared state lives in the region's atomic bitmaps; the fields are immutable.
unsafe impl Sync for Static {}
// SAFETY: the fields are a pointer to the region and two numbers, never changed after
// construction; all state in the region is atomics, so any thread may own the `Static`.
unsafe impl Send for Static {}

/// Why a [`Static`] allocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticError {
    /// No free run of units is large and aligned enough.
    Exhausted,
}

impl fmt::Display for StaticError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("static region exhausted")
    }
}

/// Where things are inside the region.
struct Geometry<'a> {
    used: Bitmap<'a>,
    dirty: Bitmap<'a>,
    first_unit: usize,
}

impl Static {
    /// A base over a static buffer; `const`, so it can itself live in a `static`.
    pub const fn new<const N: usize>(memory: &'static StaticMemory<N>) -> Self {
        Static {
            region: memory.0.get().cast(),
            len: N,
            unit_shift: DEFAULT_UNIT_SHIFT,
        }
    }

    /// A base over `[ptr, ptr + len)` handed over at run time, with units of
    /// `1 << unit_shift` bytes. `zeroed` says whether the region reads zero now.
    ///
    /// # Safety
    ///
    /// The region is valid for reads and writes, unused by anything else for as long as this
    /// base or a chunk from it lives, and `ptr` is 8-byte aligned.
    pub unsafe fn from_raw(ptr: NonNull<u8>, len: usize, unit_shift: u32, zeroed: bool) -> Self {
        assert!(
            (ptr.as_ptr() as usize).is_multiple_of(8),
            "region must be 8-byte aligned"
        );
        assert!((6..=30).contains(&unit_shift), "unit size out of range");
        let this = Static {
            region: ptr.as_ptr(),
            len,
            unit_shift,
        };
        if let Some(g) = this.geometry() {
            g.used.clear(0, g.used.len());
            if zeroed {
                g.dirty.clear(0, g.dirty.len());
            } else {
                g.dirty.set(0, g.dirty.len());
            }
        }
        this
    }

    /// The unit size in bytes.
    pub fn unit_size(&self) -> usize {
        1 << self.unit_shift
    }

    /// How many units the region holds after its bookkeeping.
    pub fn unit_count(&self) -> usize {
        self.geometry().map_or(0, |g| g.used.len())
    }

    /// How many units belong to live chunks now (a relaxed snapshot): `0` once every chunk
    /// has been released.
    pub fn units_in_use(&self) -> usize {
        self.geometry().map_or(0, |g| g.used.count_set())
    }

    /// Lays the bitmaps and units out over the region, or `None` if it is too small for any.
    fn geometry(&self) -> Option<Geometry<'_>> {
        let max_units = self.len >> self.unit_shift;
        let words = words_for(max_units);
        let start = self.region as usize;
        let end = start + self.len;
        let first_unit = align_up(start + 2 * 8 * words, self.unit_size())?;
        if first_unit >= end {
            return None;
        }
        let units = (end - first_unit) >> self.unit_shift;
        debug_assert!(units <= max_units);
        let base = self.region.cast::<AtomicU64>();
        // SAFETY: the region is 8-aligned and its first `words` words are the used bitmap
        // (units start after both bitmaps), only ever accessed atomically.
        let used = unsafe { core::slice::from_raw_parts(base, words) };
        // SAFETY: the next `words` words are the dirty bitmap, inside the region too (units
        // start after it), only ever accessed atomically.
        let dirty = unsafe { core::slice::from_raw_parts(base.wrapping_add(words), words) };
        Some(Geometry {
            used: Bitmap::new(used, units),
            dirty: Bitmap::new(dirty, units),
            first_unit,
        })
    }
}

// SAFETY: chunks are runs of units claimed exclusively in the used bitmap, aligned by choosing
// the run's phase, and inside the region; a chunk is zeroed only if no unit of it was ever
// dirty (and the region started zeroed); decommit never claims zero; nothing panics on
// exhaustion.
unsafe impl<'a> BaseAlloc for &'a Static {
    type Handle = &'a Static;
    type Error = StaticError;

    fn page_size(&self) -> usize {
        self.unit_size()
    }

    fn allocate(&self, layout: Layout, _commit: bool) -> Result<Chunk<Self>, StaticError> {
        let g = self.geometry().ok_or(StaticError::Exhausted)?;
        let unit = self.unit_size();
        let count = layout.size().max(1).div_ceil(unit);
        let align = layout.align().max(unit);
        let step = align >> self.unit_shift;
        // The index of the first unit-index that lands on an `align` boundary.
        let phase = (align_up(g.first_unit, align).ok_or(StaticError::Exhausted)? - g.first_unit)
            >> self.unit_shift;
        if phase >= g.used.len() {
            return Err(StaticError::Exhausted);
        }
        let i = g
            .used
            .claim(count, step, phase % step)
            .ok_or(StaticError::Exhausted)?;
        // The run is ours now: reading and then setting its dirty bits races with nobody.
        let zeroed = g.dirty.is_clear(i, count);
        g.dirty.set(i, count);
        // SAFETY: `first_unit` is inside the region, past its start, so the address is not null.
        let ptr =
            unsafe { NonNull::new_unchecked((g.first_unit + (i << self.unit_shift)) as *mut u8) };
        let layout = Layout::from_size_align(count << self.unit_shift, align)
            .map_err(|_| StaticError::Exhausted)?;
        // SAFETY: the units are inside the region and exclusively ours; `zeroed` is honest.
        Ok(unsafe { Chunk::new(ptr, layout, zeroed, *self) })
    }

    unsafe fn deallocate(chunk: &mut Chunk<Self>) {
        let this: &Static = chunk.handle();
        if let Some(g) = this.geometry() {
            let i = (chunk.pointer().as_ptr() as usize - g.first_unit) >> this.unit_shift;
            g.used.release(i, chunk.layout().size() >> this.unit_shift);
        }
    }

    unsafe fn commit(&self, _ptr: NonNull<u8>, _len: usize) -> Result<(), StaticError> {
        Ok(())
    }

    unsafe fn decommit(&self, _ptr: NonNull<u8>, _len: usize) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{prelude::rust_2024::*, vec};

    static MEMORY: StaticMemory<{ 4 << 20 }> = StaticMemory::new();
    static BASE: Static = Static::new(&MEMORY);

    #[test]
    fn static_region_serves_aligned_chunks_and_is_honest_about_zero() {
        let base = &BASE;
        assert_eq!(base.page_size(), 1 << 16);
        // 4 MiB buffer: the first unit holds the bitmaps, 63 remain.
        assert_eq!(base.unit_count(), 63);
        let a = base
            .allocate(Layout::from_size_align(100_000, 1 << 18).unwrap(), false)
            .unwrap();
        assert_eq!(a.pointer().as_ptr() as usize % (1 << 18), 0);
        assert!(a.is_zeroed());
        // SAFETY: test-owned memory, used within its bounds while alive.
        unsafe { a.pointer().as_ptr().write_bytes(0xEE, 100_000) };
        let p = a.pointer();
        drop(a);
        let b = base
            .allocate(Layout::from_size_align(100_000, 1 << 18).unwrap(), false)
            .unwrap();
        assert_eq!(b.pointer(), p, "the same units are reused");
        assert!(!b.is_zeroed(), "reused memory must not be reported zeroed");
        let too_big = base.allocate(Layout::from_size_align(4 << 20, 8).unwrap(), false);
        assert_eq!(too_big.unwrap_err(), StaticError::Exhausted);
        // `b` holds two units; every other unit is still fresh, so zeroed.
        let mut rest = Vec::new();
        while let Ok(c) = base.allocate(Layout::from_size_align(1 << 16, 1 << 16).unwrap(), false) {
            assert!(c.is_zeroed());
            rest.push(c);
        }
        assert_eq!(rest.len(), 61);
        assert_eq!(base.units_in_use(), 63);
        drop(b);
        drop(rest);
        assert_eq!(base.units_in_use(), 0);
    }

    #[test]
    fn run_time_region_not_zeroed_is_never_reported_zeroed() {
        let mut buf = vec![0u64; (1 << 20) / 8];
        let ptr = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: test-owned memory, used within its bounds while alive.
        let base = unsafe { Static::from_raw(ptr, 1 << 20, 12, false) };
        let c = (&base)
            .allocate(Layout::from_size_align(8192, 4096).unwrap(), true)
            .unwrap();
        assert!(!c.is_zeroed());
        drop(c);
        // SAFETY: test-owned memory, used within its bounds while alive.
        let zeroed = unsafe { Static::from_raw(ptr, 1 << 20, 12, true) };
        let c = (&zeroed)
            .allocate(Layout::from_size_align(8192, 4096).unwrap(), true)
            .unwrap();
        assert!(c.is_zeroed());
    }
}
