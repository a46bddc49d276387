//! Printing statistics without allocating: a fixed buffer on the stack, `write(2)` to stderr.

use core::fmt::{self, Write};

use ferroc_heap::{Kind, Stats, class::CLASS_SIZES};

/// A `fmt::Write` into a stack buffer; output past its end is dropped.
pub struct StackWriter<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackWriter<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        StackWriter {
            buf: [0; N],
            len: 0,
        }
    }

    /// What was written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Writes the buffer to file descriptor `fd` and empties it.
    pub fn flush_to(&mut self, fd: i32) {
        let mut done = 0;
        while done < self.len {
            // SAFETY: the bytes are initialised and in bounds.
            let n = unsafe { libc::write(fd, self.buf[done..].as_ptr().cast(), self.len - done) };
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        self.len = 0;
    }
}

impl<const N: usize> Default for StackWriter<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for StackWriter<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Whether `FERROC_SHOW_STATS` is set to a true boolean (`1`, `true`, `yes`, `on`); the
/// instances read it with their other options (see [`crate::options`]).
pub fn show_stats_requested() -> bool {
    // SAFETY: a NUL-terminated name; getenv does not allocate.
    let v = unsafe { libc::getenv(c"FERROC_SHOW_STATS".as_ptr()) };
    if v.is_null() {
        return false;
    }
    // SAFETY: getenv returned a NUL-terminated string of the environment.
    let text = unsafe { core::ffi::CStr::from_ptr(v) }.to_bytes();
    crate::options::parse_bool(text).unwrap_or(false)
}

/// Prints the options in force (`FERROC_VERBOSE`), and how many environment values were bad.
pub fn print_options(o: &crate::Options, bad_values: usize) {
    let mut w = StackWriter::<1024>::new();
    let _ = crate::options::write_options(&mut w, o);
    if bad_values > 0 {
        let _ = writeln!(
            w,
            "ferroc: {bad_values} bad value(s) in the environment (defaults kept)"
        );
    }
    w.flush_to(2);
}

/// Prints the one-line warning for a bad value of an option's environment variable.
pub fn print_bad_value(id: crate::OptionId, text: &[u8]) {
    let mut w = StackWriter::<256>::new();
    let name = id.env().to_str().unwrap_or("FERROC_?");
    let _ = write!(w, "ferroc: warning: {name}=\"");
    // The value as it was, bytes outside printable ASCII escaped, cut at 64 bytes.
    for &b in text.iter().take(64) {
        let _ = match b {
            b' '..=b'~' if b != b'"' && b != b'\\' => w.write_char(b as char),
            _ => write!(w, "\\x{b:02x}"),
        };
    }
    let _ = writeln!(
        w,
        "\"{} is not a valid value, ignored ({} keeps its value)",
        if text.len() > 64 { "..." } else { "" },
        id.name()
    );
    w.flush_to(2);
}

/// Prints that the start-up reservation failed.
pub fn print_reserve_failed(bytes: usize) {
    let mut w = StackWriter::<128>::new();
    let _ = writeln!(
        w,
        "ferroc: warning: could not reserve {bytes} bytes at start-up (FERROC_RESERVE)"
    );
    w.flush_to(2);
}

/// Prints an option changed at run time (with `verbose`).
pub fn print_option_change(id: crate::OptionId, o: &crate::Options) {
    let mut w = StackWriter::<128>::new();
    let _ = writeln!(w, "ferroc: option {} set to {}", id.name(), o.get(id));
    w.flush_to(2);
}

/// Writes `stats` as a small table: counts by kind and live blocks by size class (feature
/// `stat`; a note without it), then the arenas' figures with their peaks (always).
pub fn write_stats(w: &mut impl Write, s: &Stats) -> fmt::Result {
    writeln!(w, "ferroc statistics")?;
    if cfg!(feature = "stat") {
        write_counts(w, s)?;
    } else {
        writeln!(
            w,
            "  (counts by kind and live bytes need the `stat` feature; the arenas' figures follow)"
        )?;
    }
    writeln!(w, "  {:<10} {:>14} {:>14}", "bytes", "current", "peak")?;
    for (name, now, peak) in [
        ("reserved", s.total_reserved(), s.peak_reserved),
        ("committed", s.total_committed(), s.peak_committed),
        ("in use", s.in_use, s.peak_in_use),
    ] {
        writeln!(w, "  {name:<10} {now:>14} {:>14}", peak.max(now))?;
    }
    writeln!(
        w,
        "  huge: {} blocks, {} bytes; direct runs: {} bytes; {} slabs pending purge, {} abandoned",
        s.huge_blocks, s.huge_bytes, s.direct, s.pending, s.abandoned
    )
}

/// The counters' part of the table (feature `stat`).
fn write_counts(w: &mut impl Write, s: &Stats) -> fmt::Result {
    writeln!(
        w,
        "  {:<8} {:>14} {:>16} {:>14} {:>16}",
        "kind", "allocated", "bytes", "freed", "bytes"
    )?;
    for k in Kind::ALL {
        let (a, f) = (s.allocated[k as usize], s.freed[k as usize]);
        writeln!(
            w,
            "  {:<8} {:>14} {:>16} {:>14} {:>16}",
            k.name(),
            a.blocks,
            a.bytes,
            f.blocks,
            f.bytes
        )?;
    }
    writeln!(
        w,
        "  live: {} blocks, {} bytes (peak {}); slabs held: {} (peak {})",
        s.live_blocks(),
        s.live_bytes(),
        s.peak_live,
        s.slabs,
        s.peak_slabs
    )?;
    write_classes(w, s)
}

/// Live blocks by size class, the classes with any (feature `stat`), four to a line: block
/// size, then live blocks.
fn write_classes(w: &mut impl Write, s: &Stats) -> fmt::Result {
    let mut on_line = 0;
    for (c, &size) in CLASS_SIZES.iter().enumerate() {
        let n = s.class_count(c);
        if n.blocks == 0 {
            continue;
        }
        if on_line == 0 {
            write!(w, "  live by class:")?;
        } else if on_line % 4 == 0 {
            write!(w, "\n                ")?;
        }
        write!(w, " {size:>7}: {:>9}", n.blocks)?;
        on_line += 1;
    }
    if on_line > 0 {
        writeln!(w)?;
    }
    Ok(())
}

/// Prints `stats` to standard error without allocating.
pub fn print_stats(stats: &Stats) {
    // Room for the table with a line per four classes, every class live (with
    // `finer-grained`, about a hundred).
    let mut w = StackWriter::<8192>::new();
    let _ = write_stats(&mut w, stats);
    w.flush_to(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table: the kinds and, with `stat`, the live classes, four to a line (block size,
    /// live blocks); without `stat` a note instead.
    #[test]
    fn table_lists_live_classes() {
        let mut s = Stats::default();
        let live = [0, 1, 3, 5, 9];
        for &c in &live {
            s.class_live[c] = 10 + c as i64;
        }
        s.class_live[2] = -1; // Not positive: not listed.
        let mut w = StackWriter::<8192>::new();
        write_stats(&mut w, &s).unwrap();
        let text = core::str::from_utf8(w.as_bytes()).unwrap();
        assert!(text.starts_with("ferroc statistics\n"), "{text}");
        assert!(text.contains("huge: 0 blocks"), "{text}");
        let lines: std::vec::Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("  live by class:"))
            .take(2)
            .collect();
        if cfg!(feature = "stat") {
            let entry = |c: usize| std::format!(" {:>7}: {:>9}", CLASS_SIZES[c], 10 + c);
            let first: std::string::String = live[..4].iter().map(|&c| entry(c)).collect();
            assert_eq!(lines[0], std::format!("  live by class:{first}"), "{text}");
            assert_eq!(lines[1], std::format!("{:16}{}", "", entry(9)), "{text}");
        } else {
            assert!(lines.is_empty(), "{text}");
            assert!(text.contains("need the `stat` feature"), "{text}");
        }
    }
}
