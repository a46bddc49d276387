//! Ferroc's main job: the global allocator of a real multi-threaded program.
//!
//! Eight worker threads build and tear down maps, strings and vectors; half of what they
//! build is sent to a collector thread and dropped there (freed by a thread other than its
//! allocator). At the end it prints the throughput and Ferroc's statistics.
//!
//! Run it with `cargo run --release -p ferroc --features stat --example quickstart`.

use ferroc::GlobalInstance;
use std::{
    collections::{BTreeMap, HashMap},
    sync::mpsc,
    thread,
    time::Instant,
};

#[global_allocator]
static ALLOC: ferroc::Ferroc = ferroc::Ferroc;

const THREADS: usize = 8;
const ROUNDS: usize = 40;

/// One round of work: returns the things to hand to the collector, and a checksum.
fn round(t: usize, r: usize) -> (Vec<Vec<u8>>, u64) {
    let mut sum = 0u64;
    let mut words: HashMap<String, usize> = HashMap::new();
    for i in 0..4_000 {
        let w = format!("word-{}-{}", (i * 7919 + t) % 1_000, r % 5);
        *words.entry(w).or_default() += i;
    }
    sum += words.values().map(|&v| v as u64).sum::<u64>();
    let mut tree: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for i in 0..2_000u64 {
        tree.insert(
            i * 31 % 2_003,
            vec![(i % 251) as u8; (i % 200) as usize + 1],
        );
    }
    sum += tree.values().map(|v| v.len() as u64).sum::<u64>();
    let mut s = String::new();
    for i in 0..10_000 {
        s.push_str(if i % 3 == 0 { "fizz" } else { "b" });
    }
    sum += s.len() as u64;
    // Half of the tree goes to the collector thread, to be freed there.
    let handed: Vec<Vec<u8>> = tree.into_values().step_by(2).collect();
    (handed, sum)
}

fn main() {
    let start = Instant::now();
    let (tx, rx) = mpsc::channel::<Vec<Vec<u8>>>();
    let collector = thread::spawn(move || {
        let mut bytes = 0usize;
        for batch in rx {
            bytes += batch.iter().map(Vec::len).sum::<usize>();
        }
        bytes
    });
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut sum = 0;
                for r in 0..ROUNDS {
                    let (handed, s) = round(t, r);
                    sum += s;
                    tx.send(handed).unwrap();
                }
                sum
            })
        })
        .collect();
    drop(tx);
    let checksum: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let freed_remotely = collector.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let rounds = THREADS * ROUNDS;

    println!("ferroc quickstart: {THREADS} threads x {ROUNDS} rounds in {secs:.3} s");
    println!("  throughput: {:.0} rounds/s", rounds as f64 / secs);
    println!("  checksum: {checksum}");
    println!("  bytes freed by the collector thread: {freed_remotely}");
    let s = ALLOC.stats();
    let allocated: u64 = s.allocated.iter().map(|c| c.blocks).sum();
    println!(
        "  allocations: {allocated} ({:.1} M/s)",
        allocated as f64 / secs / 1e6
    );
    let mut out = String::new();
    ferroc::global::print::write_stats(&mut out, &s).unwrap();
    print!("{out}");
}
