//! `GlobalInstance::visit_blocks` and `contains` on a `config!` instance: a thread sees its
//! own live blocks (not its freed ones, not another thread's, not huge ones), and a thread
//! that has not allocated sees nothing.
use ferroc_global::GlobalInstance;
use std::{alloc::Layout, collections::BTreeMap, thread};

ferroc_global::config!(Isolated: ferroc_base::Mmap = ferroc_base::Mmap);

fn visited() -> BTreeMap<usize, usize> {
    let mut seen = BTreeMap::new();
    assert!(Isolated.visit_blocks(|p, size| {
        assert!(seen.insert(p.as_ptr() as usize, size).is_none());
        true
    }));
    seen
}

#[test]
fn a_thread_visits_its_own_live_blocks() {
    thread::spawn(|| {
        assert!(visited().is_empty(), "no context yet");
        assert!(!Isolated.contains(core::ptr::null()));

        let layouts = [(24, 8), (500, 16), (5000, 64), (200_000, 8)];
        let blocks: Vec<_> = layouts
            .iter()
            .map(|&(s, a)| {
                Isolated
                    .allocate(Layout::from_size_align(s, a).unwrap())
                    .unwrap()
            })
            .collect();
        let huge = Isolated
            .allocate(Layout::from_size_align(8 << 20, 8).unwrap())
            .unwrap();
        let want: BTreeMap<usize, usize> = blocks
            .iter()
            // SAFETY: live blocks of the instance.
            .map(|&p| (p.as_ptr() as usize, unsafe { Isolated.usable_size(p) }))
            .collect();
        assert_eq!(visited(), want);
        for p in &blocks {
            assert!(Isolated.contains(p.as_ptr()));
        }
        assert!(
            !Isolated.contains(huge.as_ptr()),
            "huge blocks are nobody's"
        );
        let local = 5u32;
        assert!(!Isolated.contains(core::ptr::from_ref(&local).cast()));

        // Another thread's context does not hold them.
        let addrs: Vec<usize> = blocks.iter().map(|p| p.as_ptr() as usize).collect();
        thread::spawn(move || {
            let mine = Isolated
                .allocate(Layout::from_size_align(24, 8).unwrap())
                .unwrap();
            for &a in &addrs {
                assert!(!Isolated.contains(a as *const u8));
            }
            assert_eq!(
                visited().keys().copied().collect::<Vec<_>>(),
                [mine.as_ptr() as usize]
            );
            // SAFETY: this thread's live block, freed once.
            unsafe { Isolated.free(mine) };
        })
        .join()
        .unwrap();

        let mut stopped = 0;
        assert!(!Isolated.visit_blocks(|_, _| {
            stopped += 1;
            false
        }));
        assert_eq!(stopped, 1);

        for p in blocks.into_iter().chain([huge]) {
            // SAFETY: live blocks of the instance, each freed once.
            unsafe { Isolated.free(p) };
            assert!(!Isolated.contains(p.as_ptr()));
        }
        assert!(visited().is_empty());
    })
    .join()
    .unwrap();
}
