//! This whole test binary runs with Ferroc as the process allocator.
use std::{
    collections::{BTreeMap, HashMap},
    sync::mpsc,
    thread,
};

#[global_allocator]
static A: ferroc_global::Ferroc = ferroc_global::Ferroc;

#[test]
fn collections_and_threads() {
    let mut handles = Vec::new();
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    for t in 0..8 {
        let tx = tx.clone();
        handles.push(thread::spawn(move || {
            let mut m = HashMap::new();
            for i in 0..20_000 {
                m.insert(i, format!("thread {t} value {i}"));
            }
            let v: Vec<String> = m.into_values().filter(|s| s.len() % 3 == 0).collect();
            tx.send(v).unwrap();
        }));
    }
    drop(tx);
    let mut total = 0;
    for v in rx {
        total += v.len();
        drop(v); // freed by a thread other than the allocator
    }
    for h in handles {
        h.join().unwrap();
    }
    assert!(total > 0);
    let mut b = BTreeMap::new();
    for i in 0..10_000u64 {
        b.insert(i, vec![i as u8; (i % 300) as usize]);
    }
    assert_eq!(
        b.values().map(|v| v.len()).sum::<usize>(),
        (0..10_000).map(|i| i % 300).sum()
    );
}

#[test]
fn realloc_growth_and_alignments() {
    let mut s = String::new();
    for i in 0..200_000 {
        s.push(char::from(b'a' + (i % 26) as u8));
    }
    assert!(s.starts_with("abc"));
    for shift in [0, 4, 12, 16, 21, 22, 26, 30] {
        let l = std::alloc::Layout::from_size_align(100, 1 << shift).unwrap();
        // SAFETY: `l` has a non-zero size.
        let p = unsafe { std::alloc::alloc(l) };
        assert!(!p.is_null());
        assert_eq!(p as usize % (1 << shift), 0);
        // SAFETY: `p` is a new block of 100 bytes.
        unsafe { p.write_bytes(1, 100) };
        // SAFETY: `p` was allocated above with `l`, and is freed once.
        unsafe { std::alloc::dealloc(p, l) };
    }
}
