//! `fork()` while other threads hammer remote frees onto the forking thread's full shards.
//!
//! A remote free into a full shard notifies the shard's owner in two steps, and the owner
//! waits out the step in between (`NOTIFYING`). Were the fork to catch a freer there, the
//! child's copy of the owner (the forking thread) would wait for ever on its next un-full of
//! that shard. Ferroc's `pthread_atfork` handlers keep that from happening; this test forks
//! many times while eight threads free the forker's blocks, and each child un-fulls every full
//! shard (`collect(true)`), allocates and exits. An alarm kills a child that hangs.
use ferroc_global::GlobalInstance;
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
};

#[global_allocator]
static A: ferroc_global::Ferroc = ferroc_global::Ferroc;

const FREERS: usize = 8;
const FORKS: usize = 150;
/// Blocks of 1 KiB: 64 to a 64 KiB shard, so full episodes (and notifications) are frequent.
const BLOCK: usize = 1024;
/// Blocks allocated between two forks: dozens of shards filled each round.
const PER_ROUND: usize = 2048;
const BATCH: usize = 16;
/// Seconds a child may take before its alarm counts it as hung (it needs milliseconds).
const HANG_GUARD_S: u32 = 20;

type Batch = Vec<Box<[u8]>>;

#[test]
fn fork_while_remote_frees_notify_full_shards() {
    let freed = Arc::new(AtomicUsize::new(0));
    let (senders, freers): (Vec<mpsc::Sender<Batch>>, Vec<_>) = (0..FREERS)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<Batch>();
            let freed = freed.clone();
            let h = thread::spawn(move || {
                while let Ok(batch) = rx.recv() {
                    // One by one: each drop is a remote free into the forker's shards.
                    for b in batch {
                        assert_eq!(b[0], 0x5a);
                        drop(b);
                        freed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            (tx, h)
        })
        .unzip();

    for round in 0..FORKS {
        // Fill shards: once the forker has moved past a shard it is in its full list, and the
        // first remote free into it notifies. Allocating also takes notified shards back, so
        // the episodes keep coming.
        let mut batch: Batch = Vec::with_capacity(BATCH);
        for i in 0..PER_ROUND {
            let mut b = vec![0u8; BLOCK].into_boxed_slice();
            b[0] = 0x5a;
            batch.push(b);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                senders[(round + i) % FREERS].send(full).unwrap();
            }
        }
        // Fork while the freers are still busy with this round's blocks.
        // SAFETY: the child only allocates, frees and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            child();
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "round {round}: child status {status:#x} (signal {} = SIGALRM means it hung)",
            libc::SIGALRM
        );
    }
    drop(senders);
    for f in freers {
        f.join().unwrap();
    }
    assert_eq!(
        freed.load(Ordering::Relaxed),
        FORKS * PER_ROUND / BATCH * BATCH
    );
}

/// The child: un-fulls every full shard of the forker's context (`collect(true)` waits out a
/// notification in flight, which is where a child of an unguarded fork hangs), then allocates
/// from those shards and exits.
fn child() -> ! {
    // SAFETY: async-signal-safe; the default action of SIGALRM ends the child.
    unsafe { libc::alarm(HANG_GUARD_S) };
    A.collect(true);
    let mut live: Batch = Vec::new();
    for _ in 0..PER_ROUND {
        live.push(vec![0x33u8; BLOCK].into_boxed_slice());
    }
    let ok = live.iter().all(|b| b.iter().all(|&x| x == 0x33));
    drop(live);
    A.collect(true);
    // SAFETY: leaves the child without running the parent's destructors.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

/// The same hazard made certain: a thread is held between the two steps of a notification
/// (its push returned `MustNotify`, it has not called `notified` yet) while another thread
/// forks. The fork handlers make `fork()` wait until the notification is complete, so the
/// child finds the shard `NOTIFIED` and its owner's un-full returns; without them the child
/// would find `NOTIFYING` and spin until its alarm.
#[test]
fn fork_waits_for_a_notification_in_flight() {
    use ferroc_heap::thread_free::{Block, NOTIFIED, Pushed, ThreadFree};
    use std::ptr::{self, NonNull};

    static SHARD: ThreadFree = ThreadFree::new();
    // This thread's context exists (the harness allocated through `A`), so the fork handlers
    // are registered; allocate anyway to be sure.
    drop(vec![0u8; 8]);
    assert!(SHARD.try_park());
    let block = NonNull::from(Box::leak(Box::new(Block {
        next: ptr::null_mut(),
    })));
    let block = block.as_ptr() as usize;
    let (in_window_tx, in_window) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let notifier = thread::spawn(move || {
        // SAFETY: a leaked block nobody else references, 8-aligned.
        let r = unsafe { SHARD.push_remote(NonNull::new(block as *mut Block).unwrap()) };
        assert_eq!(r, Pushed::MustNotify);
        in_window_tx.send(()).unwrap();
        // Held here, between the push and the end of the notification.
        release_rx.recv().unwrap();
        SHARD.notified();
    });
    in_window.recv().unwrap();
    let forker = thread::spawn(move || {
        // SAFETY: the child only reads the shard's word and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: async-signal-safe; the default action of SIGALRM ends the child.
            unsafe { libc::alarm(HANG_GUARD_S) };
            // The owner's un-full: waits while the state is NOTIFYING.
            let left = SHARD.unpark();
            let taken = SHARD.take() as usize;
            // SAFETY: leaves the child without running the parent's destructors.
            unsafe {
                libc::_exit(if left == NOTIFIED && taken == block {
                    0
                } else {
                    1
                })
            }
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    });
    // Whether the forker is already waiting in its prepare handler or not yet: either way the
    // fork cannot complete before the notification does.
    thread::sleep(std::time::Duration::from_millis(50));
    release.send(()).unwrap();
    notifier.join().unwrap();
    let status = forker.join().unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x} (signal {} = SIGALRM means it hung)",
        libc::SIGALRM
    );
    assert_eq!(SHARD.unpark(), NOTIFIED);
}
