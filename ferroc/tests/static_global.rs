//! A bare-metal style global allocator: `config!` over a fixed static region, no OS memory, one
//! context (`thread_exit = unsafe none`). The binary has no test harness, so it runs on one
//! thread, which is what `unsafe none` requires.
//!
//! Built and run by `cargo xtask test` with `--no-default-features --features base-static,global`.
use ferroc::{
    GlobalInstance,
    base::{Static, StaticMemory},
};

static MEMORY: StaticMemory<{ 64 << 20 }> = StaticMemory::new();
static BASE: Static = Static::new(&MEMORY);

ferroc::config!(Bare: &'static Static = &BASE; thread_exit = unsafe none);

#[global_allocator]
static A: Bare = Bare;

fn main() {
    let start = &MEMORY as *const _ as usize;
    let in_region = |p: *const u8| (start..start + (64 << 20)).contains(&(p as usize));

    let mut v: Vec<u64> = Vec::new();
    for i in 0..100_000 {
        v.push(i);
    }
    assert!(
        in_region(v.as_ptr().cast()),
        "the vector lives in the static region"
    );
    assert_eq!(v.iter().sum::<u64>(), 4_999_950_000);
    let words: Vec<String> = (0..10_000).map(|i| format!("word {i}")).collect();
    assert!(words.iter().all(|w| in_region(w.as_ptr())));
    drop(v);
    drop(words);

    // Exhaustion is a failure, not a crash: a block larger than the region fails cleanly.
    let too_big = std::alloc::Layout::from_size_align(128 << 20, 8).unwrap();
    assert!(Bare.allocate(too_big).is_err());
    // And the allocator still works afterwards.
    let b = Box::new([1u8; 4096]);
    assert!(in_region(b.as_ptr()));
    println!("static_global: 1 passed, 0 failed");
}
