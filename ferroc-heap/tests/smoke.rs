//! First end-to-end checks of the heap over `Mmap`.
use core::{alloc::Layout, ptr::NonNull};
use ferroc_arena::Arenas;
use ferroc_base::Mmap;
use ferroc_heap::{Context, Heap};

#[test]
fn many_sizes_alloc_free() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    let mut v: Vec<(NonNull<u8>, Layout)> = Vec::new();
    for i in 0..20_000usize {
        let size = (i * 37) % 3000 + (i % 7) * 1000 * ((i % 13 == 0) as usize);
        let align = 1 << (i % 8);
        let l = Layout::from_size_align(size, align).unwrap();
        let p = heap.allocate(l).unwrap();
        assert_eq!(p.as_ptr() as usize % align, 0);
        // SAFETY: the live block just allocated.
        assert!(unsafe { heap.usable_size(p) } >= size);
        // SAFETY: the same block, of at least `size` bytes.
        unsafe { p.as_ptr().write_bytes(i as u8, size) };
        v.push((p, l));
        if i % 3 == 0 {
            let (p, l) = v.swap_remove(i % v.len());
            // SAFETY: live block from this heap.
            unsafe { heap.deallocate(p, l) };
        }
    }
    for (p, l) in v {
        // SAFETY: live block from this heap.
        unsafe { heap.deallocate(p, l) };
    }
    heap.collect(true);
    drop(cx);
    assert_eq!(arenas.stats().slabs_in_use, 0, "{:?}", arenas.stats());
}

#[test]
fn huge_and_aligned() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    for (size, align) in [
        (0, 4096),
        (0, 1 << 21),
        (10 << 20, 8),
        (1, 1 << 22),
        (5 << 20, 1 << 26),
        (0, 1 << 30),
        (100, 1 << 17),
    ] {
        let l = Layout::from_size_align(size, align).unwrap();
        let p = heap.allocate_zeroed(l).unwrap();
        assert_eq!(p.as_ptr() as usize % align, 0, "{size} {align}");
        // SAFETY: the live block just allocated.
        assert!(unsafe { heap.usable_size(p) } >= size);
        if size > 0 {
            let last = p.as_ptr().wrapping_add(size - 1);
            // SAFETY: the last byte of the same block, of at least `size` bytes.
            assert_eq!(unsafe { *last }, 0);
            // SAFETY: the same byte.
            unsafe { last.write(1) };
        }
        // SAFETY: the same live block, freed once.
        unsafe { heap.free(p) };
    }
    drop(cx);
    assert_eq!(arenas.stats().slabs_in_use, 0);
    assert_eq!(arenas.stats().direct_runs, 0);
}

#[test]
fn cross_thread_frees_and_abandon() {
    let arenas = Arenas::new(Mmap);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<usize>>();
        let arenas = &arenas;
        s.spawn(move || {
            let cx = Context::new(arenas);
            let heap = Heap::new(&cx);
            for round in 0..50 {
                let batch: Vec<usize> = (0..1000)
                    .map(|i| {
                        let p = heap
                            .allocate(Layout::from_size_align(8 + (i + round) % 500, 8).unwrap())
                            .unwrap();
                        // SAFETY: fresh block of >= 8 bytes.
                        unsafe { p.as_ptr().cast::<u64>().write_unaligned(0xC0FFEE) };
                        p.as_ptr() as usize
                    })
                    .collect();
                tx.send(batch).unwrap();
            }
            // The context dies with blocks still live in the other thread's hands.
        });
        let cx = Context::new(arenas);
        for batch in rx {
            for p in batch {
                let p = NonNull::new(p as *mut u8).unwrap();
                // SAFETY: a live block of at least 8 bytes handed over by the producer.
                let word = unsafe { p.as_ptr().cast::<u64>().read_unaligned() };
                assert_eq!(word, 0xC0FFEE);
                // SAFETY: the same live block, freed once.
                unsafe { cx.free(p) };
            }
        }
        cx.collect(true);
    });
    assert_eq!(arenas.stats().slabs_in_use, 0, "{:?}", arenas.stats());
}
