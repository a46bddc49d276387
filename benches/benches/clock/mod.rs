//! The clock the benches measure with (shared by the bench targets, not a target itself).
//!
//! By default wall time, like criterion's own `WallTime`. With `FERROC_BENCH_CLOCK=cpu` in the
//! environment (`cargo xtask bench --cpu-time`), the CPU time of the whole process: every
//! thread, user and system (page faults included), but not the time spent waiting for a CPU,
//! so a machine busy with other work inflates it far less than wall time.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// Wall time or process CPU time, chosen once from the environment.
pub struct Clock {
    cpu: bool,
    /// Only lends its duration formatter: both clocks count nanoseconds.
    wall: WallTime,
}

impl Clock {
    /// The clock `FERROC_BENCH_CLOCK` asks for (`cpu`, or wall time otherwise).
    pub fn from_env() -> Self {
        Clock {
            cpu: std::env::var("FERROC_BENCH_CLOCK").is_ok_and(|v| v == "cpu"),
            wall: WallTime,
        }
    }

    /// The time now, from an arbitrary origin.
    pub fn now(&self) -> Duration {
        let id = if self.cpu {
            libc::CLOCK_PROCESS_CPUTIME_ID
        } else {
            libc::CLOCK_MONOTONIC
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write to; both clocks exist on Linux.
        let rc = unsafe { libc::clock_gettime(id, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime failed");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

impl Measurement for Clock {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        self.now()
    }

    fn end(&self, start: Duration) -> Duration {
        self.now().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}
