//! glibc's malloc introspection answered by Ferroc: `mallinfo2`, `mallinfo`, `malloc_stats`
//! and `malloc_info`, as `fe_*` functions (and under glibc's names in the override build, see
//! `override_c.rs`).
//!
//! The figures come from one [`Stats`] snapshot: the arenas' figures always (committed,
//! reserved, bytes in use, huge blocks, their peaks), the per-context counters of live bytes
//! and blocks with the `stat` feature. How glibc's fields map onto them:
//!
//! | field | with `stat` | without `stat` |
//! |---|---|---|
//! | `arena` | bytes committed for slabs: `committed + direct - hblkhd` | same |
//! | `ordblks` | slabs free but committed, waiting for the purge delay | same |
//! | `smblks`, `fsmblks` | 0 (Ferroc has no fastbins) | 0 |
//! | `hblks`, `hblkhd` | huge blocks alive, bytes of their runs | same |
//! | `usmblks` | peak of live bytes | peak of bytes in use |
//! | `uordblks` | bytes in live blocks (block sizes) | bytes in use: slabs holding blocks, huge runs |
//! | `fordblks` | committed bytes not in live blocks | committed bytes not in use |
//! | `keepcost` | bytes `malloc_trim` would give back now (the waiting slabs) | same |
//!
//! Nothing here allocates: the snapshot is plain data, the table goes to stderr through a
//! stack buffer, and the XML goes to the caller's `FILE` with `fwrite` piece by piece (stdio
//! may allocate its buffer through `malloc`, which is Ferroc, outside of any of our locks).

use core::{
    ffi::{c_int, c_void},
    fmt::{self, Write},
};

use ferroc_arena::sizes::SLAB_SHIFT;
use ferroc_global::GlobalInstance;
use ferroc_heap::{
    Kind, Stats,
    class::{CLASS_SIZES, LARGE_MAX},
};

use crate::GLOBAL;

/// glibc's `struct mallinfo2` (`<malloc.h>`), field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mallinfo2 {
    /// Bytes committed for slabs (not huge blocks).
    pub arena: usize,
    /// Free slabs still committed, waiting to be purged.
    pub ordblks: usize,
    /// 0: no fastbins.
    pub smblks: usize,
    /// Huge blocks alive.
    pub hblks: usize,
    /// Bytes of their runs.
    pub hblkhd: usize,
    /// Peak of `uordblks` (glibc leaves it 0).
    pub usmblks: usize,
    /// 0: no fastbins.
    pub fsmblks: usize,
    /// Bytes in live blocks (without `stat`: bytes of runs in use).
    pub uordblks: usize,
    /// Committed bytes not in `uordblks`.
    pub fordblks: usize,
    /// Bytes `malloc_trim` would give back now.
    pub keepcost: usize,
}

/// glibc's `struct mallinfo`: [`Mallinfo2`] with `int` fields, saturating at `INT_MAX`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mallinfo {
    /// See [`Mallinfo2::arena`].
    pub arena: c_int,
    /// See [`Mallinfo2::ordblks`].
    pub ordblks: c_int,
    /// See [`Mallinfo2::smblks`].
    pub smblks: c_int,
    /// See [`Mallinfo2::hblks`].
    pub hblks: c_int,
    /// See [`Mallinfo2::hblkhd`].
    pub hblkhd: c_int,
    /// See [`Mallinfo2::usmblks`].
    pub usmblks: c_int,
    /// See [`Mallinfo2::fsmblks`].
    pub fsmblks: c_int,
    /// See [`Mallinfo2::uordblks`].
    pub uordblks: c_int,
    /// See [`Mallinfo2::fordblks`].
    pub fordblks: c_int,
    /// See [`Mallinfo2::keepcost`].
    pub keepcost: c_int,
}

/// The instance's statistics: merged counters and the arenas' figures with `stat`, the
/// arenas' figures alone without.
fn snapshot() -> Stats {
    #[cfg(feature = "stat")]
    {
        GLOBAL.stats()
    }
    #[cfg(not(feature = "stat"))]
    {
        Stats::of_arenas(&GLOBAL.arenas().stats())
    }
}

/// Live bytes and blocks: counted with `stat`, bounded by the bytes in use without.
fn live(s: &Stats) -> (u64, u64, u64) {
    if cfg!(feature = "stat") {
        let bytes = s.live_bytes().max(0) as u64;
        let peak = (s.peak_live.max(0) as u64).max(bytes);
        (bytes, s.live_blocks().max(0) as u64, peak)
    } else {
        (s.in_use, 0, s.peak_in_use.max(s.in_use))
    }
}

fn mallinfo_of(s: &Stats) -> Mallinfo2 {
    let committed = s.total_committed();
    let (live_bytes, _, peak) = live(s);
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    Mallinfo2 {
        arena: size(committed.saturating_sub(s.huge_bytes)),
        ordblks: size(s.pending),
        smblks: 0,
        hblks: size(s.huge_blocks),
        hblkhd: size(s.huge_bytes),
        usmblks: size(peak),
        fsmblks: 0,
        uordblks: size(live_bytes),
        fordblks: size(committed.saturating_sub(live_bytes)),
        keepcost: size(s.pending << SLAB_SHIFT),
    }
}

/// `mallinfo2`: Ferroc's figures in glibc's structure (see the module docs for each field).
#[unsafe(no_mangle)]
pub extern "C" fn fe_mallinfo2() -> Mallinfo2 {
    mallinfo_of(&snapshot())
}

/// `mallinfo`: [`fe_mallinfo2`] with `int` fields, each saturating at `INT_MAX`.
#[unsafe(no_mangle)]
pub extern "C" fn fe_mallinfo() -> Mallinfo {
    let m = fe_mallinfo2();
    let int = |v: usize| c_int::try_from(v).unwrap_or(c_int::MAX);
    Mallinfo {
        arena: int(m.arena),
        ordblks: int(m.ordblks),
        smblks: int(m.smblks),
        hblks: int(m.hblks),
        hblkhd: int(m.hblkhd),
        usmblks: int(m.usmblks),
        fsmblks: int(m.fsmblks),
        uordblks: int(m.uordblks),
        fordblks: int(m.fordblks),
        keepcost: int(m.keepcost),
    }
}

/// `malloc_stats`: Ferroc's statistics table (the one `FERROC_SHOW_STATS` prints) on stderr,
/// without allocating.
#[unsafe(no_mangle)]
pub extern "C" fn fe_malloc_stats() {
    ferroc_global::print::print_stats(&snapshot());
}

/// A `fmt::Write` into a C `FILE`: each piece goes out with `fwrite` as it is formatted, so
/// no buffer of ours can overflow; a short write is remembered.
struct FileWriter {
    fp: *mut libc::FILE,
    failed: bool,
}

impl Write for FileWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.is_empty() {
            return Ok(());
        }
        // SAFETY: `fp` is an open stream (the contract of `fe_malloc_info`, which made us),
        // and `s` is `s.len()` readable bytes.
        let n = unsafe { libc::fwrite(s.as_ptr().cast::<c_void>(), 1, s.len(), self.fp) };
        if n != s.len() {
            self.failed = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// Writes the `malloc_info` document for `s`.
fn write_info(w: &mut impl Write, s: &Stats) -> fmt::Result {
    let m = mallinfo_of(s);
    let (live_bytes, live_blocks, peak_live) = live(s);
    let committed = s.total_committed();
    let reserved = s.total_reserved();
    let peak_committed = s.peak_committed.max(committed);
    let peak_reserved = s.peak_reserved.max(reserved);
    writeln!(w, "<malloc version=\"1\" allocator=\"ferroc\">")?;
    writeln!(
        w,
        "<!-- ferroc {}: <size> elements count live blocks (count) and their bytes (total): \
         one per size class with live blocks, then the huge blocks; without the stat \
         feature only the huge blocks (glibc lists free chunks there) -->",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        w,
        "<ferroc version=\"{}\" stat=\"{}\" live-bytes=\"{live_bytes}\" \
         live-blocks=\"{live_blocks}\" peak-live=\"{peak_live}\" in-use=\"{}\" \
         peak-in-use=\"{}\" committed=\"{committed}\" peak-committed=\"{peak_committed}\" \
         reserved=\"{reserved}\" peak-reserved=\"{peak_reserved}\"/>",
        env!("CARGO_PKG_VERSION"),
        if cfg!(feature = "stat") { "yes" } else { "no" },
        s.in_use,
        s.peak_in_use.max(s.in_use),
    )?;
    writeln!(w, "<heap nr=\"0\">")?;
    writeln!(w, "<sizes>")?;
    if cfg!(feature = "stat") {
        let mut from = 0;
        for (c, &to) in CLASS_SIZES.iter().enumerate() {
            let n = s.class_count(c);
            if n.blocks > 0 {
                writeln!(
                    w,
                    "<size from=\"{from}\" to=\"{to}\" total=\"{}\" count=\"{}\" \
                     class=\"{c}\" kind=\"{}\"/>",
                    n.bytes,
                    n.blocks,
                    Kind::of_class(c).name()
                )?;
            }
            from = to + 1;
        }
    }
    let (count, total) = if cfg!(feature = "stat") {
        // Counted by the contexts (usable bytes).
        let h = Kind::Huge as usize;
        let (a, f) = (s.allocated[h], s.freed[h]);
        (
            a.blocks.saturating_sub(f.blocks),
            a.bytes.saturating_sub(f.bytes),
        )
    } else {
        // Counted by the arenas (run bytes).
        (s.huge_blocks, s.huge_bytes)
    };
    writeln!(
        w,
        "<size from=\"{}\" to=\"{}\" total=\"{total}\" count=\"{count}\" class=\"huge\" \
         kind=\"huge\"/>",
        LARGE_MAX + 1,
        isize::MAX
    )?;
    writeln!(w, "</sizes>")?;
    let totals = |w: &mut dyn Write| -> fmt::Result {
        writeln!(w, "<total type=\"fast\" count=\"0\" size=\"0\"/>")?;
        writeln!(
            w,
            "<total type=\"rest\" count=\"{}\" size=\"{}\"/>",
            m.ordblks, m.fordblks
        )?;
        writeln!(w, "<system type=\"current\" size=\"{committed}\"/>")?;
        writeln!(w, "<system type=\"max\" size=\"{peak_committed}\"/>")?;
        writeln!(w, "<aspace type=\"total\" size=\"{reserved}\"/>")?;
        writeln!(w, "<aspace type=\"mprotect\" size=\"{committed}\"/>")
    };
    totals(w)?;
    writeln!(w, "</heap>")?;
    writeln!(
        w,
        "<total type=\"mmap\" count=\"{}\" size=\"{}\"/>",
        m.hblks, m.hblkhd
    )?;
    totals(w)?;
    writeln!(w, "</malloc>")
}

/// `malloc_info`: an XML document in glibc's shape (`<malloc version="1">`, one
/// `<heap nr="0">`, `<sizes>`, `<total>`, `<system>`, `<aspace>`) with Ferroc's figures, and a
/// `<ferroc>` element with the current values and peaks. `<sizes>` lists, with `stat`, one
/// `<size from=".." to=".." total=".." count=".." class=".." kind=".."/>` per size class with
/// live blocks (`from` the previous class size + 1, `to` the class size, `count` its live
/// blocks, `total` their bytes, `class` its index), then one for the huge blocks (`class` and
/// `kind` "huge"); without `stat`, the huge blocks' alone (the arenas count them). `EINVAL` for `options != 0` (as
/// glibc) or a null `fp`; -1 if the stream fails; 0 otherwise.
///
/// # Safety
///
/// `fp` is null or an open `FILE` stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int {
    if options != 0 || fp.is_null() {
        return libc::EINVAL;
    }
    let mut w = FileWriter { fp, failed: false };
    let _ = write_info(&mut w, &snapshot());
    if w.failed { -1 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `fmt::Write` into a fixed buffer, for the tests.
    struct Buf {
        bytes: [u8; 8192],
        len: usize,
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            self.bytes
                .get_mut(self.len..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    #[test]
    fn mallinfo_maps_the_figures() {
        let mut s = Stats {
            committed: 8 << 20,
            direct: 16 << 20,
            huge_blocks: 2,
            huge_bytes: 20 << 20,
            pending: 1,
            in_use: 22 << 20,
            peak_in_use: 30 << 20,
            ..Stats::default()
        };
        s.allocated[Kind::Small as usize].bytes = 1000;
        s.allocated[Kind::Small as usize].blocks = 10;
        s.peak_live = 5000;
        let m = mallinfo_of(&s);
        assert_eq!(m.arena, 4 << 20);
        assert_eq!(m.hblks, 2);
        assert_eq!(m.hblkhd, 20 << 20);
        assert_eq!(m.keepcost, 1 << SLAB_SHIFT);
        if cfg!(feature = "stat") {
            assert_eq!(m.uordblks, 1000);
            assert_eq!(m.usmblks, 5000);
        } else {
            assert_eq!(m.uordblks, 22 << 20);
            assert_eq!(m.usmblks, 30 << 20);
        }
        assert_eq!(m.fordblks, (24 << 20) - m.uordblks);
    }

    #[test]
    fn info_is_one_document() {
        let mut b = Buf {
            bytes: [0; 8192],
            len: 0,
        };
        write_info(&mut b, &Stats::default()).unwrap();
        let text = core::str::from_utf8(&b.bytes[..b.len]).unwrap();
        assert!(text.starts_with("<malloc version=\"1\" allocator=\"ferroc\">\n"));
        assert!(text.ends_with("</malloc>\n"));
        assert_eq!(text.matches("<heap nr=\"0\">").count(), 1);
    }

    /// `<sizes>`: with `stat`, a line per class with live blocks (its range from the class
    /// below, its bytes from its size), then the huge line; without, the huge line alone.
    #[test]
    fn info_lists_live_classes() {
        use ferroc_heap::class::{CLASS_COUNT, class_of};
        use std::format;
        let mut s = Stats::default();
        let (c48, top) = (class_of(48), CLASS_COUNT - 1);
        s.class_live[0] = 3;
        s.class_live[c48] = 10;
        s.class_live[top] = 1;
        s.class_live[5] = -2; // Not positive: not listed.
        s.allocated[Kind::Huge as usize] = ferroc_heap::stat::Count {
            blocks: 2,
            bytes: 5 << 20,
        };
        s.huge_blocks = 4;
        s.huge_bytes = 1 << 30;
        let mut b = Buf {
            bytes: [0; 8192],
            len: 0,
        };
        write_info(&mut b, &s).unwrap();
        let text = core::str::from_utf8(&b.bytes[..b.len]).unwrap();
        let sizes: std::vec::Vec<&str> = text.lines().filter(|l| l.starts_with("<size ")).collect();
        let huge = if cfg!(feature = "stat") {
            format!(
                "<size from=\"{}\" to=\"{}\" total=\"{}\" count=\"2\" class=\"huge\" kind=\"huge\"/>",
                LARGE_MAX + 1,
                isize::MAX,
                5 << 20
            )
        } else {
            format!(
                "<size from=\"{}\" to=\"{}\" total=\"{}\" count=\"4\" class=\"huge\" kind=\"huge\"/>",
                LARGE_MAX + 1,
                isize::MAX,
                1u64 << 30
            )
        };
        if cfg!(feature = "stat") {
            let line = |c: usize, n: u64, kind: &str| {
                let from = if c == 0 { 0 } else { CLASS_SIZES[c - 1] + 1 };
                let to = CLASS_SIZES[c];
                format!(
                    "<size from=\"{from}\" to=\"{to}\" total=\"{}\" count=\"{n}\" class=\"{c}\" \
                     kind=\"{kind}\"/>",
                    n * to as u64
                )
            };
            assert_eq!(
                sizes,
                [
                    line(0, 3, "small"),
                    line(c48, 10, "small"),
                    line(top, 1, "large"),
                    huge
                ],
                "{text}"
            );
            assert_eq!(CLASS_SIZES[top], LARGE_MAX);
        } else {
            assert_eq!(sizes, [huge], "{text}");
        }
    }
}
