//! Realistic Rust workloads with the process allocator chosen at build time: one binary per
//! allocator (features `alloc-ferroc`, `alloc-system`, `alloc-mimalloc`, `alloc-jemalloc`), each
//! adding its own line to the same criterion groups. `cargo xtask bench` builds and runs all
//! four (after the `heap` bench) and prints the table. Times are wall time, or process CPU
//! time with `FERROC_BENCH_CLOCK=cpu` (see `clock`).
//!
//! Workloads: a `BTreeMap<String, Vec<u8>>` built and dropped; a `HashMap` churn (string values
//! inserted over random keys of a fixed key space, a third as many removed); `Vec` and
//! `String` growth by pushes; and a multi-threaded channel pipeline (producer → transformer →
//! consumer, each message allocated by one thread and freed by another).

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::{
    collections::{BTreeMap, HashMap},
    hint::black_box,
    sync::mpsc,
    thread,
    time::Duration,
};

use criterion::{criterion_group, criterion_main};

mod clock;
use clock::Clock;

type Criterion = criterion::Criterion<Clock>;

// The process allocator: the first feature on in the order ferroc, mimalloc, jemalloc, system
// (so `--all-features` builds too); no feature at all is the system allocator.
#[cfg(feature = "alloc-ferroc")]
#[global_allocator]
static A: ferroc::Ferroc = ferroc::Ferroc;
#[cfg(feature = "alloc-ferroc")]
const ALLOCATOR: &str = "ferroc";

#[cfg(all(feature = "alloc-mimalloc", not(feature = "alloc-ferroc")))]
#[global_allocator]
static A: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "alloc-mimalloc", not(feature = "alloc-ferroc")))]
const ALLOCATOR: &str = "mimalloc";

#[cfg(all(
    feature = "alloc-jemalloc",
    not(any(feature = "alloc-ferroc", feature = "alloc-mimalloc"))
))]
#[global_allocator]
static A: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(all(
    feature = "alloc-jemalloc",
    not(any(feature = "alloc-ferroc", feature = "alloc-mimalloc"))
))]
const ALLOCATOR: &str = "jemalloc";

#[cfg(not(any(
    feature = "alloc-ferroc",
    feature = "alloc-mimalloc",
    feature = "alloc-jemalloc"
)))]
#[global_allocator]
static A: std::alloc::System = std::alloc::System;
#[cfg(not(any(
    feature = "alloc-ferroc",
    feature = "alloc-mimalloc",
    feature = "alloc-jemalloc"
)))]
const ALLOCATOR: &str = "system";

/// A deterministic pseudo-random sequence.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn btreemap(n: u64) -> usize {
    let mut rng = 0x2545_f491_4f6c_dd1d;
    let mut map = BTreeMap::new();
    for i in 0..n {
        let k = xorshift(&mut rng);
        map.insert(
            format!("key-{k:016x}"),
            vec![i as u8; (k % 120) as usize + 8],
        );
    }
    map.values().map(Vec::len).sum()
}

fn hashmap_churn(n: u64) -> usize {
    let mut rng = 0x9e37_79b9_7f4a_7c15;
    let mut map: HashMap<u64, String> = HashMap::new();
    let mut total = 0;
    for i in 0..n {
        let k = xorshift(&mut rng) % 4096;
        map.insert(k, format!("value number {i} for {k}"));
        if i.is_multiple_of(3) {
            let old = xorshift(&mut rng) % 4096;
            if let Some(v) = map.remove(&old) {
                total += v.len();
            }
        }
    }
    total + map.len()
}

fn vec_growth(n: usize) -> usize {
    let mut outer = Vec::new();
    for round in 0..16 {
        let mut v = Vec::new();
        for i in 0..n {
            v.push((i * round) as u64);
        }
        let mut s = String::new();
        for i in 0..n / 8 {
            s.push(char::from(b'a' + (i % 26) as u8));
        }
        outer.push((v.len(), s.len()));
    }
    outer.iter().map(|(a, b)| a + b).sum()
}

fn pipeline(messages: usize) -> usize {
    let (tx1, rx1) = mpsc::sync_channel::<Vec<u8>>(256);
    let (tx2, rx2) = mpsc::sync_channel::<String>(256);
    let producer = thread::spawn(move || {
        for i in 0..messages {
            tx1.send(vec![(i % 251) as u8; 32 + i % 480]).unwrap();
        }
    });
    let transformer = thread::spawn(move || {
        for m in rx1 {
            tx2.send(format!("{}:{}", m.len(), m[0])).unwrap();
        }
    });
    let consumer = thread::spawn(move || rx2.into_iter().map(|s| s.len()).sum::<usize>());
    producer.join().unwrap();
    transformer.join().unwrap();
    consumer.join().unwrap()
}

fn workloads(c: &mut Criterion) {
    bench(c, "btreemap", || btreemap(20_000));
    bench(c, "hashmap_churn", || hashmap_churn(50_000));
    bench(c, "vec_growth", || vec_growth(100_000));
    bench(c, "channel_pipeline", || pipeline(20_000));
}

/// One benchmark group, `name`, with this allocator's run of `work`.
fn bench<R>(c: &mut Criterion, name: &str, mut work: impl FnMut() -> R) {
    let mut group = c.benchmark_group(name);
    group.bench_function(ALLOCATOR, |b| b.iter(|| black_box(work())));
    group.finish();
}

fn config() -> Criterion {
    criterion::Criterion::default()
        .with_measurement(Clock::from_env())
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = workloads
}
criterion_main!(benches);
