//! Loom model of [`StartPhase`]: two threads start one instance at once.

use ferroc_base::sync::atomic::{AtomicI64, Ordering};
use loom::sync::Arc;

use super::{Begin, StartPhase};

/// Two threads allocate through a fresh instance at once. Exactly one of them starts it; it
/// stores an option (a `Relaxed` atomic, as `OptionState` stores each) and finishes. Whoever
/// sees the start over (`Done`, or `is_started` later) reads the option the starter stored,
/// and the other thread never waits: it returns `Running` at once while the start is on.
#[test]
fn loom_start_phase_two_starters() {
    ferroc_base::loom_model("start_phase_two_starters", || {
        let phase = Arc::new(StartPhase::new());
        let option = Arc::new(AtomicI64::new(10));
        let starter = |phase: Arc<StartPhase>, option: Arc<AtomicI64>| {
            loom::thread::spawn(move || match phase.begin() {
                Begin::Mine => {
                    assert!(!phase.is_fresh() && !phase.is_started());
                    option.store(-1, Ordering::Relaxed);
                    phase.finish();
                    true
                }
                Begin::Done => {
                    assert_eq!(option.load(Ordering::Relaxed), -1, "started, so stored");
                    false
                }
                Begin::Running => {
                    if phase.is_started() {
                        assert_eq!(option.load(Ordering::Relaxed), -1, "started, so stored");
                    }
                    false
                }
            })
        };
        let a = starter(phase.clone(), option.clone());
        let b = starter(phase.clone(), option.clone());
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(a ^ b, "exactly one starter");
        assert!(phase.is_started());
        assert_eq!(phase.begin(), Begin::Done);
    });
}
