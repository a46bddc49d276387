//! Threads coming and going under Ferroc as the process allocator: memory of exited threads is
//! reused, a thread's heap is handed back at exit, and `fork` leaves a working child.
use ferroc_global::GlobalInstance;
use std::{
    alloc::Layout,
    sync::{Mutex, mpsc},
    thread,
};

#[global_allocator]
static A: ferroc_global::Ferroc = ferroc_global::Ferroc;

// An instance of its own, so its arenas see only what these tests do.
ferroc_global::config!(Isolated: ferroc_base::Mmap = ferroc_base::Mmap);

/// Tests that count resident memory or fork must not overlap.
static SERIAL: Mutex<()> = Mutex::new(());

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

#[test]
fn two_thousand_threads_keep_resident_memory_flat() {
    let _serial = SERIAL.lock().unwrap();
    let run_batch = |threads: usize| {
        let (tx, rx) = mpsc::channel::<Vec<Box<[u8]>>>();
        for chunk in 0..threads / 16 {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let tx = tx.clone();
                    thread::spawn(move || {
                        let seed = chunk * 16 + i;
                        let mut keep = Vec::new();
                        let mut scratch = Vec::new();
                        for k in 0..400 {
                            let b = vec![(seed + k) as u8; 16 + (k * 37 + seed) % 2000]
                                .into_boxed_slice();
                            if k % 2 == 0 {
                                keep.push(b)
                            } else {
                                scratch.push(b)
                            }
                        }
                        // Live blocks leave with the thread; the rest die here.
                        tx.send(keep).unwrap();
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            // The main thread frees what the dead threads left it.
            while let Ok(blocks) = rx.try_recv() {
                for b in &blocks {
                    assert!(b.iter().all(|&x| x == b[0]));
                }
            }
        }
    };
    run_batch(256);
    let warm = resident_bytes();
    run_batch(2_000);
    let after = resident_bytes();
    assert!(
        after < warm + (32 << 20),
        "resident memory grew from {warm} to {after} bytes over 2,000 threads"
    );
}

#[test]
fn a_thread_heap_is_released_at_exit() {
    let _serial = SERIAL.lock().unwrap();
    let layout = Layout::from_size_align(100, 8).unwrap();
    thread::spawn(move || {
        let blocks: Vec<_> = (0..10_000)
            .map(|_| Isolated.allocate(layout).unwrap())
            .collect();
        for b in blocks {
            // SAFETY: live blocks of this allocator.
            unsafe { Isolated.deallocate(b, layout) };
        }
    })
    .join()
    .unwrap();
    let s = Isolated.arenas().stats();
    assert_eq!(s.slabs_in_use, 0, "{s:?}");

    // A thread that exits with a live block abandons its slab; the block stays valid and,
    // once freed, the slab goes back.
    let survivor = thread::spawn(move || Isolated.allocate(layout).unwrap().as_ptr() as usize)
        .join()
        .unwrap();
    let s = Isolated.arenas().stats();
    assert_eq!((s.slabs_in_use, s.abandoned), (1, 1), "{s:?}");
    let p = std::ptr::NonNull::new(survivor as *mut u8).unwrap();
    // SAFETY: the block is live (its thread left it allocated) and 100 bytes long.
    unsafe { p.as_ptr().write_bytes(7, 100) };
    // SAFETY: a live block of `Isolated` allocated with `layout`, freed once.
    unsafe { Isolated.deallocate(p, layout) };
    Isolated.collect(true);
    let s = Isolated.arenas().stats();
    assert_eq!((s.slabs_in_use, s.abandoned), (0, 0), "{s:?}");
}

#[test]
fn fork_in_a_multithreaded_program() {
    let _serial = SERIAL.lock().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut v: Vec<String> = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    v.push(format!("{t}-{}", v.len()));
                    if v.len() > 1000 {
                        v.clear();
                    }
                }
            })
        })
        .collect();
    thread::sleep(std::time::Duration::from_millis(20));
    // SAFETY: the child only allocates, frees and exits with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut total = 0usize;
        for i in 0..2_000usize {
            let v = vec![i as u8; 1 + i * 97 % (3 << 20)];
            total += v.len();
            let s: String = (0..i % 50).map(|_| 'x').collect();
            total += s.len();
        }
        // SAFETY: exits the child without running the parent's destructors.
        unsafe { libc::_exit(if total > 0 { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status}"
    );
}
