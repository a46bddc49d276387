//! Runtime options: [`Options`] (the typed value and its defaults), [`OptionId`] (the names
//! the C API and the environment use), the parsers of the environment's values (pure, no
//! allocation, never panicking), and [`OptionState`], the options of one instance.
//!
//! ## Where the options come from, and who wins
//! 1. [`Options::DEFAULT`];
//! 2. the instance's own options: `config!(..; options = ..)`, or
//!    [`GlobalInstance::set_options`](crate::GlobalInstance::set_options) before the first
//!    allocation;
//! 3. the environment (`FERROC_*`, feature `libc`), read when the instance starts (its first
//!    thread context, or the single context's first slow-path call), before its first arena
//!    is made. **The environment wins over 2**, as with mimalloc: whoever runs the program
//!    can tune it without rebuilding it;
//! 4. [`GlobalInstance::set_option`](crate::GlobalInstance::set_option) (`fe_option_set`,
//!    `mallopt`) after the start: it sets the value in force. Options that only mean
//!    something at start-up ([`OptionId::is_runtime`] false: large pages, eager commit,
//!    reserve) are refused then ([`OptionError::Started`]). Before the start it changes the
//!    instance's own options, which the environment then overrides as in 3.
//!
//! A bad value in the environment prints one line on stderr naming the variable and the
//! value, and the option keeps its value; nothing panics. An empty variable counts as unset.
//!
//! ## Invariants
//! - Nothing here allocates: the environment is read with `getenv` and parsed from its bytes,
//!   and every message goes through a stack buffer ([`crate::print::StackWriter`]).
//! - The options are read on slow paths only: at the start, by the C API's `free` of a
//!   pointer that is not Ferroc's, at exit (the statistics report), and by the getters.
//! - The start happens once per instance without anyone waiting: the thread that wins the
//!   `FRESH → STARTING` CAS reads the environment (printing warnings and, with `verbose`, the
//!   table), applies the options and reserves; a thread that starts at the same time applies
//!   the same arena settings itself (idempotent stores) and goes on, so no arena is made
//!   with settings other than the options in force. (No thread waits for another: a child of
//!   `fork()` must never wait for a thread it does not have.)

use core::fmt;

use ferroc_base::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicUsize, Ordering};

use crate::start_phase::{Begin, StartPhase};

/// What the C API's `free` (and its other names) does with a pointer Ferroc never handed out
/// (`FERROC_INVALID_FREE`, `FE_OPTION_INVALID_FREE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum InvalidFree {
    /// Print `ferroc: free(): invalid pointer 0x…` on stderr and abort, as glibc does (the
    /// default).
    Abort = 0,
    /// Print that line and go on, leaving the memory alone.
    Warn = 1,
    /// Leave the memory alone silently.
    Ignore = 2,
}

impl InvalidFree {
    /// The policy of a C value (`FE_INVALID_FREE_*`).
    pub const fn from_raw(v: i64) -> Option<Self> {
        match v {
            0 => Some(InvalidFree::Abort),
            1 => Some(InvalidFree::Warn),
            2 => Some(InvalidFree::Ignore),
            _ => None,
        }
    }

    /// The name the environment uses.
    pub const fn name(self) -> &'static str {
        match self {
            InvalidFree::Abort => "abort",
            InvalidFree::Warn => "warn",
            InvalidFree::Ignore => "ignore",
        }
    }
}

/// Ferroc's runtime options, with their defaults ([`Options::DEFAULT`]):
///
/// | field | default | environment | what it trades |
/// |---|---|---|---|
/// | [`purge_delay_ms`](Self::purge_delay_ms) | `10` | `FERROC_PURGE_DELAY` | memory back to the OS soon (low RSS) against decommit/page-fault churn; `0` at once, negative never |
/// | [`verbose`](Self::verbose) | `false` | `FERROC_VERBOSE` | the options in force and any warning printed at start-up |
/// | [`show_stats`](Self::show_stats) | `false` | `FERROC_SHOW_STATS` | the statistics table on stderr at exit (feature `stat`) |
/// | [`large_pages`](Self::large_pages) | `false` | `FERROC_LARGE_PAGES` | fewer TLB misses for big heaps against more resident memory |
/// | [`eager_commit`](Self::eager_commit) | `false` | `FERROC_EAGER_COMMIT` | arenas committed whole when made (fewer commit calls) against committed memory accounted up front |
/// | [`reserve`](Self::reserve) | `0` | `FERROC_RESERVE` | address space (and, with eager commit, memory) taken at start-up against growth later |
/// | [`invalid_free`](Self::invalid_free) | `abort` | `FERROC_INVALID_FREE` | catching a bad `free` at once against a program that frees foreign memory running on |
///
/// Booleans in the environment are `1/0`, `true/false`, `yes/no`, `on/off` (any case); sizes
/// a number with an optional suffix `k`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB` (any case, `B`
/// optional, powers of 1024); the purge delay a decimal number of milliseconds, which may be
/// negative. See the module docs for who wins between the code and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    /// How long a freed slab stays committed before it is given back to the OS, in ms. `0`
    /// gives freed memory back at once; a negative value never purges by time (only an
    /// explicit `collect(true)` / `malloc_trim` does). Takes effect at run time.
    pub purge_delay_ms: i64,
    /// Print the options in force when the instance starts, and each option changed later.
    pub verbose: bool,
    /// Print the statistics (feature `stat`) to stderr when the process exits; may be turned
    /// on or off until then.
    pub show_stats: bool,
    /// Back arenas with large OS pages (transparent huge pages, or reserved huge pages where
    /// the system has them). Start-up only.
    pub large_pages: bool,
    /// Commit whole arenas when they are made instead of slab by slab. Start-up only (it
    /// applies to the arenas made from the start on).
    pub eager_commit: bool,
    /// Bytes of arenas to reserve (and, with `eager_commit`, commit) at start-up; `0` for
    /// none. Start-up only.
    pub reserve: usize,
    /// What the C API's `free` does with a pointer Ferroc never handed out. Takes effect at
    /// run time.
    pub invalid_free: InvalidFree,
}

impl Options {
    /// The defaults (see the table above).
    pub const DEFAULT: Options = Options {
        purge_delay_ms: ferroc_arena::DEFAULT_PURGE_DELAY_MS as i64,
        verbose: false,
        show_stats: false,
        large_pages: false,
        eager_commit: false,
        reserve: 0,
        invalid_free: InvalidFree::Abort,
    };

    /// The defaults.
    pub const fn new() -> Self {
        Self::DEFAULT
    }

    /// The purge delay as [`Arenas::set_purge_delay`](ferroc_arena::Arenas::set_purge_delay)
    /// takes it: negative becomes [`NEVER_PURGE`](ferroc_arena::NEVER_PURGE).
    pub const fn arena_purge_delay(&self) -> u64 {
        if self.purge_delay_ms < 0 {
            ferroc_arena::NEVER_PURGE
        } else {
            self.purge_delay_ms as u64
        }
    }

    /// The value of one option as the C API gives it (booleans `0`/`1`, the invalid-free
    /// policy as `FE_INVALID_FREE_*`, the reserve in bytes, saturated at `i64::MAX`).
    pub const fn get(&self, id: OptionId) -> i64 {
        match id {
            OptionId::PurgeDelay => self.purge_delay_ms,
            OptionId::Verbose => self.verbose as i64,
            OptionId::ShowStats => self.show_stats as i64,
            OptionId::LargePages => self.large_pages as i64,
            OptionId::EagerCommit => self.eager_commit as i64,
            OptionId::Reserve => {
                if self.reserve > i64::MAX as usize {
                    i64::MAX
                } else {
                    self.reserve as i64
                }
            }
            OptionId::InvalidFree => self.invalid_free as i64,
        }
    }

    /// Sets one option from a C value: booleans are `0`/`1` (any non-zero is on), the
    /// reserve a non-negative number of bytes, the invalid-free policy `0..=2`.
    pub fn set(&mut self, id: OptionId, value: i64) -> Result<(), OptionError> {
        match id {
            OptionId::PurgeDelay => self.purge_delay_ms = value,
            OptionId::Verbose => self.verbose = value != 0,
            OptionId::ShowStats => self.show_stats = value != 0,
            OptionId::LargePages => self.large_pages = value != 0,
            OptionId::EagerCommit => self.eager_commit = value != 0,
            OptionId::Reserve => {
                self.reserve = usize::try_from(value).map_err(|_| OptionError::Invalid)?
            }
            OptionId::InvalidFree => {
                self.invalid_free = InvalidFree::from_raw(value).ok_or(OptionError::Invalid)?
            }
        }
        Ok(())
    }

    /// Sets one option from the text of its environment variable; `Err` (the option
    /// unchanged) if the text is not a valid value.
    pub fn set_from_text(&mut self, id: OptionId, text: &[u8]) -> Result<(), OptionError> {
        let bad = OptionError::Invalid;
        match id {
            OptionId::PurgeDelay => self.purge_delay_ms = parse_int(text).ok_or(bad)?,
            OptionId::Verbose => self.verbose = parse_bool(text).ok_or(bad)?,
            OptionId::ShowStats => self.show_stats = parse_bool(text).ok_or(bad)?,
            OptionId::LargePages => self.large_pages = parse_bool(text).ok_or(bad)?,
            OptionId::EagerCommit => self.eager_commit = parse_bool(text).ok_or(bad)?,
            OptionId::Reserve => self.reserve = parse_size(text).ok_or(bad)?,
            OptionId::InvalidFree => self.invalid_free = parse_invalid_free(text).ok_or(bad)?,
        }
        Ok(())
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One option, by the number the C API gives it (`FE_OPTION_*` in `ferroc.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum OptionId {
    /// [`Options::purge_delay_ms`] (`FE_OPTION_PURGE_DELAY`).
    PurgeDelay = 0,
    /// [`Options::verbose`] (`FE_OPTION_VERBOSE`).
    Verbose = 1,
    /// [`Options::show_stats`] (`FE_OPTION_SHOW_STATS`).
    ShowStats = 2,
    /// [`Options::large_pages`] (`FE_OPTION_LARGE_PAGES`).
    LargePages = 3,
    /// [`Options::eager_commit`] (`FE_OPTION_EAGER_COMMIT`).
    EagerCommit = 4,
    /// [`Options::reserve`] (`FE_OPTION_RESERVE`).
    Reserve = 5,
    /// [`Options::invalid_free`] (`FE_OPTION_INVALID_FREE`).
    InvalidFree = 6,
}

impl OptionId {
    /// Every option, in the order of their numbers.
    pub const ALL: [OptionId; 7] = [
        OptionId::PurgeDelay,
        OptionId::Verbose,
        OptionId::ShowStats,
        OptionId::LargePages,
        OptionId::EagerCommit,
        OptionId::Reserve,
        OptionId::InvalidFree,
    ];

    /// The option of a C number.
    pub const fn from_raw(v: i32) -> Option<Self> {
        if v >= 0 && (v as usize) < Self::ALL.len() {
            Some(Self::ALL[v as usize])
        } else {
            None
        }
    }

    /// The name of the [`Options`] field.
    pub const fn name(self) -> &'static str {
        match self {
            OptionId::PurgeDelay => "purge_delay_ms",
            OptionId::Verbose => "verbose",
            OptionId::ShowStats => "show_stats",
            OptionId::LargePages => "large_pages",
            OptionId::EagerCommit => "eager_commit",
            OptionId::Reserve => "reserve",
            OptionId::InvalidFree => "invalid_free",
        }
    }

    /// The environment variable.
    pub const fn env(self) -> &'static core::ffi::CStr {
        match self {
            OptionId::PurgeDelay => c"FERROC_PURGE_DELAY",
            OptionId::Verbose => c"FERROC_VERBOSE",
            OptionId::ShowStats => c"FERROC_SHOW_STATS",
            OptionId::LargePages => c"FERROC_LARGE_PAGES",
            OptionId::EagerCommit => c"FERROC_EAGER_COMMIT",
            OptionId::Reserve => c"FERROC_RESERVE",
            OptionId::InvalidFree => c"FERROC_INVALID_FREE",
        }
    }

    /// Whether a change after the start takes effect (purge delay, verbose, show stats,
    /// invalid free); the others only mean something at start-up.
    pub const fn is_runtime(self) -> bool {
        matches!(
            self,
            OptionId::PurgeDelay | OptionId::Verbose | OptionId::ShowStats | OptionId::InvalidFree
        )
    }
}

/// Why an option could not be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionError {
    /// The instance has started (allocated), and the option only means something at
    /// start-up (or, for [`set_options`](crate::GlobalInstance::set_options), the options
    /// as a whole can no longer be given).
    Started,
    /// Not a valid value for the option.
    Invalid,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OptionError::Started => "the allocator has started: the option is start-up only",
            OptionError::Invalid => "not a valid value for the option",
        })
    }
}

impl core::error::Error for OptionError {}

/// `text` without leading and trailing ASCII whitespace.
fn trim(text: &[u8]) -> &[u8] {
    text.trim_ascii()
}

/// A boolean: `1/0`, `true/false`, `yes/no`, `on/off`, in any case, with surrounding spaces.
pub fn parse_bool(text: &[u8]) -> Option<bool> {
    let t = trim(text);
    let is = |word: &str| t.eq_ignore_ascii_case(word.as_bytes());
    if is("1") || is("true") || is("yes") || is("on") {
        Some(true)
    } else if is("0") || is("false") || is("no") || is("off") {
        Some(false)
    } else {
        None
    }
}

/// A decimal integer with an optional sign (`-5`, `+10`, `0`), surrounding spaces allowed;
/// `None` if it does not fit an `i64`.
pub fn parse_int(text: &[u8]) -> Option<i64> {
    let t = trim(text);
    let (negative, digits) = match t.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, t),
    };
    let magnitude = parse_digits(digits)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// One or more decimal digits, nothing else.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |v, &d| {
        if d.is_ascii_digit() {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// A size in bytes: decimal digits, then optionally spaces and a suffix `k`, `kb`, `kib`,
/// `m`, `mb`, `mib`, `g`, `gb`, `gib`, `t`, `tb`, `tib` or `b` (any case; all powers of
/// 1024). `None` on anything else or on overflow.
pub fn parse_size(text: &[u8]) -> Option<usize> {
    let t = trim(text);
    let end = t
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(t.len());
    let number = usize::try_from(parse_digits(&t[..end])?).ok()?;
    let suffix = t[end..].trim_ascii_start();
    let shift = match suffix.len() {
        0 => 0,
        _ => {
            let (unit, rest) = suffix.split_first()?;
            let shift = match unit.to_ascii_lowercase() {
                b'b' if rest.is_empty() => 0,
                b'k' => 10,
                b'm' => 20,
                b'g' => 30,
                b't' => 40,
                _ => return None,
            };
            let is = |word: &str| rest.eq_ignore_ascii_case(word.as_bytes());
            if !(rest.is_empty() || is("b") || is("ib")) {
                return None;
            }
            shift
        }
    };
    number.checked_mul(1usize.checked_shl(shift)?)
}

/// An invalid-free policy by name: `abort`, `warn` or `ignore` (any case).
pub fn parse_invalid_free(text: &[u8]) -> Option<InvalidFree> {
    let t = trim(text);
    [InvalidFree::Abort, InvalidFree::Warn, InvalidFree::Ignore]
        .into_iter()
        .find(|p| t.eq_ignore_ascii_case(p.name().as_bytes()))
}

/// Writes the options as a table, one line per option (`ferroc: option <field> = <value>
/// (<variable>)`).
pub fn write_options(w: &mut impl fmt::Write, o: &Options) -> fmt::Result {
    for id in OptionId::ALL {
        write!(w, "ferroc: option {:<15} = ", id.name())?;
        match id {
            OptionId::PurgeDelay if o.purge_delay_ms < 0 => write!(w, "never")?,
            OptionId::PurgeDelay => write!(w, "{} ms", o.purge_delay_ms)?,
            OptionId::Verbose => write!(w, "{}", o.verbose)?,
            OptionId::ShowStats => write!(w, "{}", o.show_stats)?,
            OptionId::LargePages => write!(w, "{}", o.large_pages)?,
            OptionId::EagerCommit => write!(w, "{}", o.eager_commit)?,
            OptionId::Reserve => write!(w, "{} bytes", o.reserve)?,
            OptionId::InvalidFree => write!(w, "{}", o.invalid_free.name())?,
        }
        // The variable names are ASCII literals.
        let env = id.env().to_str().unwrap_or("");
        writeln!(w, " ({env})")?;
    }
    Ok(())
}

/// The options of one instance, and whether it has started (see the module docs).
///
/// Each field is its own atomic, read and written `Relaxed`: an option is a setting, not a
/// publication of other memory, and each is read whole. The start is a [`StartPhase`]
/// (`Acquire`/`Release`, modelled under loom): whoever sees it over sees the options the
/// starter stored.
pub struct OptionState {
    phase: StartPhase,
    purge_delay_ms: AtomicI64,
    verbose: AtomicBool,
    show_stats: AtomicBool,
    large_pages: AtomicBool,
    eager_commit: AtomicBool,
    reserve: AtomicUsize,
    invalid_free: AtomicU8,
}

impl OptionState {
    /// An instance's options before its start.
    pub const fn new(o: Options) -> Self {
        OptionState {
            phase: StartPhase::new(),
            purge_delay_ms: AtomicI64::new(o.purge_delay_ms),
            verbose: AtomicBool::new(o.verbose),
            show_stats: AtomicBool::new(o.show_stats),
            large_pages: AtomicBool::new(o.large_pages),
            eager_commit: AtomicBool::new(o.eager_commit),
            reserve: AtomicUsize::new(o.reserve),
            invalid_free: AtomicU8::new(o.invalid_free as u8),
        }
    }

    /// Whether the instance has started.
    #[inline]
    pub fn is_started(&self) -> bool {
        self.phase.is_started()
    }

    /// The stored options (the instance's own before the start, those in force after).
    pub fn load(&self) -> Options {
        let r = Ordering::Relaxed;
        Options {
            purge_delay_ms: self.purge_delay_ms.load(r),
            verbose: self.verbose.load(r),
            show_stats: self.show_stats.load(r),
            large_pages: self.large_pages.load(r),
            eager_commit: self.eager_commit.load(r),
            reserve: self.reserve.load(r),
            invalid_free: InvalidFree::from_raw(i64::from(self.invalid_free.load(r)))
                .unwrap_or(InvalidFree::Abort),
        }
    }

    fn store(&self, o: &Options) {
        let r = Ordering::Relaxed;
        self.purge_delay_ms.store(o.purge_delay_ms, r);
        self.verbose.store(o.verbose, r);
        self.show_stats.store(o.show_stats, r);
        self.large_pages.store(o.large_pages, r);
        self.eager_commit.store(o.eager_commit, r);
        self.reserve.store(o.reserve, r);
        self.invalid_free.store(o.invalid_free as u8, r);
    }

    /// The options in force: after the start, those stored; before it, the instance's own
    /// with the environment over them (read again, silently), as the start will make them.
    pub fn current(&self) -> Options {
        let mut o = self.load();
        if !self.is_started() {
            overlay_env(&mut o, false);
        }
        o
    }

    /// Whether the statistics are to be shown at exit (read by the exit hook).
    pub fn show_stats(&self) -> bool {
        self.show_stats.load(Ordering::Relaxed)
    }

    /// Whether changes are to be reported.
    pub fn verbose(&self) -> bool {
        self.verbose.load(Ordering::Relaxed)
    }

    /// Replaces the instance's own options; refused once it has started (or is starting).
    /// Meant for before the first allocation, as the caller orders it: a call racing another
    /// thread's first allocation may pass the check and still be overwritten by the start,
    /// which then puts the earlier options (with the environment over them) in force.
    pub fn set_all(&self, o: &Options) -> Result<(), OptionError> {
        if !self.phase.is_fresh() {
            return Err(OptionError::Started);
        }
        self.store(o);
        Ok(())
    }

    /// Sets one option (see the module docs for when it takes effect); after the start, the
    /// arena settings it controls are applied to `arenas` at once.
    pub fn set_one<B: ferroc_base::BaseAlloc>(
        &self,
        arenas: &ferroc_arena::Arenas<B>,
        id: OptionId,
        value: i64,
    ) -> Result<(), OptionError> {
        let started = !self.phase.is_fresh();
        if started && !id.is_runtime() {
            return Err(OptionError::Started);
        }
        let mut o = self.load();
        o.set(id, value)?;
        let r = Ordering::Relaxed;
        match id {
            OptionId::PurgeDelay => self.purge_delay_ms.store(o.purge_delay_ms, r),
            OptionId::Verbose => self.verbose.store(o.verbose, r),
            OptionId::ShowStats => self.show_stats.store(o.show_stats, r),
            OptionId::LargePages => self.large_pages.store(o.large_pages, r),
            OptionId::EagerCommit => self.eager_commit.store(o.eager_commit, r),
            OptionId::Reserve => self.reserve.store(o.reserve, r),
            OptionId::InvalidFree => self.invalid_free.store(o.invalid_free as u8, r),
        }
        if started {
            if id == OptionId::PurgeDelay {
                arenas.set_purge_delay(o.arena_purge_delay());
            }
            if o.verbose {
                #[cfg(feature = "libc")]
                crate::print::print_option_change(id, &o);
            }
        }
        Ok(())
    }

    /// Starts the instance over `arenas` if it has not started: the environment over the
    /// instance's own options (warnings printed), the arena settings applied, the
    /// reservation made, and with `verbose` the table printed. Returns the options in force.
    /// Call it before the instance's first arena can be made; a slow path.
    #[cold]
    pub fn start<B: ferroc_base::BaseAlloc>(&self, arenas: &ferroc_arena::Arenas<B>) -> Options {
        match self.phase.begin() {
            Begin::Mine => {
                let mut o = self.load();
                let warnings = overlay_env(&mut o, true);
                self.store(&o);
                apply_settings(arenas, &o);
                #[cfg_attr(not(feature = "libc"), allow(unused_variables))]
                let reserved = match o.reserve {
                    0 => Ok(0),
                    bytes => arenas.reserve(bytes).map_err(|_| ()),
                };
                #[cfg(feature = "libc")]
                {
                    if reserved.is_err() {
                        crate::print::print_reserve_failed(o.reserve);
                    }
                    if o.verbose {
                        crate::print::print_options(&o, warnings);
                    }
                }
                let _ = warnings;
                self.phase.finish();
                o
            }
            Begin::Done => self.load(),
            Begin::Running => {
                // Another thread is starting: the same settings, computed here, so that an
                // arena this thread makes meanwhile is made with them.
                let mut o = self.load();
                overlay_env(&mut o, false);
                apply_settings(arenas, &o);
                o
            }
        }
    }
}

/// The arena settings of `o` (idempotent). Large pages are asked of the base only when on:
/// for `Mmap` the setting is process-wide (one OS), so an instance without them must not turn
/// them off for another that has them.
fn apply_settings<B: ferroc_base::BaseAlloc>(arenas: &ferroc_arena::Arenas<B>, o: &Options) {
    arenas.set_purge_delay(o.arena_purge_delay());
    arenas.set_eager_commit(o.eager_commit);
    if o.large_pages {
        arenas.base().use_large_pages(true);
    }
}

/// Puts the environment's values over `o` (feature `libc`; otherwise nothing); with `warn`,
/// prints a line for each bad value. Returns how many values were bad.
#[cfg_attr(not(feature = "libc"), allow(unused_variables, unused_mut))]
fn overlay_env(o: &mut Options, warn: bool) -> usize {
    let mut bad = 0;
    #[cfg(feature = "libc")]
    for id in OptionId::ALL {
        let Some(text) = getenv(id.env()) else {
            continue;
        };
        if text.trim_ascii().is_empty() {
            continue;
        }
        if o.set_from_text(id, text).is_err() {
            bad += 1;
            if warn {
                crate::print::print_bad_value(id, text);
            }
        }
    }
    bad
}

/// The value of an environment variable, without allocating.
#[cfg(feature = "libc")]
fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: a NUL-terminated name; getenv neither allocates nor keeps the pointer.
    let v = unsafe { libc::getenv(name.as_ptr()) };
    if v.is_null() {
        return None;
    }
    // SAFETY: getenv returned a NUL-terminated string of the environment, which lives until
    // the program changes that variable (which it must not do while we read it).
    Some(unsafe { core::ffi::CStr::from_ptr(v) }.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        for t in ["1", "true", "TRUE", "yes", "Yes", "on", "ON", " on\n"] {
            assert_eq!(parse_bool(t.as_bytes()), Some(true), "{t}");
        }
        for t in ["0", "false", "False", "no", "NO", "off", "\toff "] {
            assert_eq!(parse_bool(t.as_bytes()), Some(false), "{t}");
        }
        for t in ["", "2", "y", "n", "enable", "truex", "o n", "-1"] {
            assert_eq!(parse_bool(t.as_bytes()), None, "{t}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"250"), Some(250));
        assert_eq!(parse_int(b" -1 "), Some(-1));
        assert_eq!(parse_int(b"+7"), Some(7));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        for t in [
            "",
            "-",
            "+",
            "1.5",
            "10ms",
            "--1",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999",
            "1 0",
        ] {
            assert_eq!(parse_int(t.as_bytes()), None, "{t}");
        }
    }

    #[test]
    fn sizes() {
        let cases: &[(&str, usize)] = &[
            ("0", 0),
            ("4096", 4096),
            ("64k", 64 << 10),
            ("64K", 64 << 10),
            ("64KiB", 64 << 10),
            ("64kb", 64 << 10),
            ("512MiB", 512 << 20),
            ("512 mib", 512 << 20),
            ("3m", 3 << 20),
            ("1GiB", 1 << 30),
            ("1g", 1 << 30),
            ("2GB", 2 << 30),
            ("1TiB", 1 << 40),
            ("100b", 100),
            (" 8 KIB ", 8 << 10),
        ];
        for &(t, v) in cases {
            assert_eq!(parse_size(t.as_bytes()), Some(v), "{t}");
        }
        for t in [
            "",
            "k",
            "-1",
            "1.5G",
            "1x",
            "1kk",
            "1kib2",
            "1 k b",
            "1bb",
            "1ki",
            "1p",
            "18446744073709551616",
            "17179869184GiB",
            "GiB",
        ] {
            assert_eq!(parse_size(t.as_bytes()), None, "{t}");
        }
    }

    #[test]
    fn invalid_free_names() {
        assert_eq!(parse_invalid_free(b"abort"), Some(InvalidFree::Abort));
        assert_eq!(parse_invalid_free(b"WARN"), Some(InvalidFree::Warn));
        assert_eq!(parse_invalid_free(b" Ignore\n"), Some(InvalidFree::Ignore));
        assert_eq!(parse_invalid_free(b"0"), None);
        assert_eq!(parse_invalid_free(b"ignored"), None);
    }

    #[test]
    fn defaults_and_ids() {
        let d = Options::DEFAULT;
        assert_eq!(d, Options::default());
        assert_eq!(d.purge_delay_ms, 10);
        assert_eq!(d.invalid_free, InvalidFree::Abort);
        assert_eq!(d.arena_purge_delay(), 10);
        let never = Options {
            purge_delay_ms: -1,
            ..d
        };
        assert_eq!(never.arena_purge_delay(), u64::MAX);
        for (i, id) in OptionId::ALL.into_iter().enumerate() {
            assert_eq!(OptionId::from_raw(i as i32), Some(id));
            assert_eq!(id as i32, i as i32);
        }
        assert_eq!(OptionId::from_raw(-1), None);
        assert_eq!(OptionId::from_raw(7), None);
    }

    #[test]
    fn set_and_get_round_trip() {
        let mut o = Options::DEFAULT;
        for (id, v) in [
            (OptionId::PurgeDelay, -5),
            (OptionId::Verbose, 1),
            (OptionId::ShowStats, 1),
            (OptionId::LargePages, 1),
            (OptionId::EagerCommit, 1),
            (OptionId::Reserve, 1 << 30),
            (OptionId::InvalidFree, 2),
        ] {
            o.set(id, v).unwrap();
            assert_eq!(o.get(id), v, "{id:?}");
        }
        assert_eq!(o.set(OptionId::Reserve, -1), Err(OptionError::Invalid));
        assert_eq!(o.set(OptionId::InvalidFree, 3), Err(OptionError::Invalid));
        assert_eq!(o.reserve, 1 << 30);
        assert_eq!(o.invalid_free, InvalidFree::Ignore);
        // A bad text keeps the value.
        assert!(o.set_from_text(OptionId::PurgeDelay, b"soon").is_err());
        assert_eq!(o.purge_delay_ms, -5);
        o.set_from_text(OptionId::Reserve, b"1MiB").unwrap();
        assert_eq!(o.reserve, 1 << 20);
    }

    #[test]
    fn runtime_options_after_start() {
        use ferroc_base::Mmap;
        let arenas = ferroc_arena::Arenas::new(Mmap);
        let state = OptionState::new(Options {
            eager_commit: true,
            purge_delay_ms: 0,
            ..Options::DEFAULT
        });
        state.set_one(&arenas, OptionId::Reserve, 0).unwrap();
        assert!(!state.is_started());
        let o = state.start(&arenas);
        assert!(state.is_started());
        // The environment of the test process may set FERROC_*; what was applied is `o`.
        assert_eq!(arenas.eager_commit(), o.eager_commit);
        assert_eq!(arenas.purge_delay(), o.arena_purge_delay());
        assert_eq!(
            state.set_one(&arenas, OptionId::EagerCommit, 0),
            Err(OptionError::Started)
        );
        assert_eq!(state.set_all(&o), Err(OptionError::Started));
        state.set_one(&arenas, OptionId::PurgeDelay, -1).unwrap();
        assert_eq!(arenas.purge_delay(), u64::MAX);
        state.set_one(&arenas, OptionId::PurgeDelay, 25).unwrap();
        assert_eq!(arenas.purge_delay(), 25);
        assert_eq!(state.current().purge_delay_ms, 25);
        assert_eq!(
            state.set_one(&arenas, OptionId::InvalidFree, 9),
            Err(OptionError::Invalid)
        );
        state.set_one(&arenas, OptionId::InvalidFree, 1).unwrap();
        assert_eq!(state.load().invalid_free, InvalidFree::Warn);
    }

    #[test]
    fn the_table_names_every_option() {
        let mut s = std::string::String::new();
        write_options(&mut s, &Options::DEFAULT).unwrap();
        for id in OptionId::ALL {
            assert!(s.contains(id.name()), "{s}");
            assert!(s.contains(id.env().to_str().unwrap()), "{s}");
        }
        assert_eq!(s.lines().count(), OptionId::ALL.len());
        assert!(s.contains("10 ms") && s.contains("abort"));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_bool(&bytes);
            let _ = parse_int(&bytes);
            let _ = parse_size(&bytes);
            let _ = parse_invalid_free(&bytes);
            for id in OptionId::ALL {
                let mut o = Options::DEFAULT;
                if o.set_from_text(id, &bytes).is_err() {
                    prop_assert_eq!(o, Options::DEFAULT);
                }
            }
        }

        #[test]
        fn text_like_inputs_do_not_panic(s in "[ +-]?[0-9]{0,25} ?[kKmMgGtTbBiI]{0,4}") {
            let _ = parse_int(s.as_bytes());
            let _ = parse_size(s.as_bytes());
        }

        #[test]
        fn sizes_round_trip(n in 0usize..(1 << 20), unit in 0usize..4) {
            let (suffix, shift) = [("", 0), ("k", 10), ("MiB", 20), ("g", 30)][unit];
            let text = std::format!("{n}{suffix}");
            prop_assert_eq!(parse_size(text.as_bytes()), Some(n << shift));
        }

        #[test]
        fn integers_round_trip(n in any::<i64>()) {
            let text = std::format!("{n}");
            prop_assert_eq!(parse_int(text.as_bytes()), Some(n));
        }

        #[test]
        fn c_values_never_panic(id in 0i32..7, v in any::<i64>()) {
            let mut o = Options::DEFAULT;
            let id = OptionId::from_raw(id).unwrap();
            if o.set(id, v).is_ok() {
                let got = o.get(id);
                match id {
                    OptionId::Verbose | OptionId::ShowStats | OptionId::LargePages
                    | OptionId::EagerCommit => prop_assert_eq!(got, i64::from(v != 0)),
                    _ => prop_assert_eq!(got, v),
                }
            } else {
                prop_assert_eq!(o, Options::DEFAULT);
            }
        }
    }
}
