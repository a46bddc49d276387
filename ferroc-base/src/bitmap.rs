//! A lock-free bitmap of fixed length whose runs of bits are claimed and released atomically.
//!
//! Used by [`Static`](crate::Static) for its units and by `ferroc-arena` for slabs and abandoned
//! slabs. A set bit means "taken".
//!
//! # Invariant
//! A run returned by [`Bitmap::claim`] had every bit clear just before this thread set them, and
//! no other thread can own any bit of it until [`Bitmap::release`] clears it: every bit is set by
//! a compare-and-swap that checks it was clear, so two claims never overlap.
//!
//! A run that spans several words is claimed word by word, lowest first; if a later word has a
//! bit taken meanwhile, the words already set are rolled back and the search goes on. While that
//! happens another thread may see the rolled-back bits as taken and skip them; `claim` therefore
//! scans again when it met contention before reporting "no space".
//!
//! # Orderings
//! - A successful claim CAS is `Acquire`: it synchronises with the `Release` of the thread that
//!   released those bits, so whatever that thread wrote into the memory the bits stand for
//!   happens-before the new owner's use of it.
//! - [`Bitmap::release`] is a `Release` `fetch_and` for the same reason, seen from the other side.
//! - The scan that looks for candidate runs uses `Relaxed` loads: it only guides the CAS, which
//!   re-checks every bit it takes.
//!
//! Modelled under loom by `loom_tests/bitmap.rs`: two claimers racing across a word boundary
//! while a third thread releases bits.

use crate::sync::atomic::{AtomicU64, Ordering};

/// Bits per word of a bitmap.
pub const WORD_BITS: usize = 64;

/// Number of 64-bit words needed for `bits` bits.
#[inline]
pub const fn words_for(bits: usize) -> usize {
    bits.div_ceil(WORD_BITS)
}

/// A bitmap of `len` bits over a slice of atomic words.
#[derive(Clone, Copy)]
pub struct Bitmap<'a> {
    words: &'a [AtomicU64],
    len: usize,
}

/// Mask of the bits `[start, start + count)` inside one word; `start + count <= 64`.
#[inline]
fn mask(start: usize, count: usize) -> u64 {
    debug_assert!(start + count <= WORD_BITS && count > 0);
    let ones = if count == WORD_BITS {
        u64::MAX
    } else {
        (1u64 << count) - 1
    };
    ones << start
}

/// Splits the run `[start, start + count)` into `(word index, mask)` pieces.
fn pieces(start: usize, count: usize) -> impl Iterator<Item = (usize, u64)> {
    let end = start + count;
    let mut pos = start;
    core::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let word = pos / WORD_BITS;
        let bit = pos % WORD_BITS;
        let n = (WORD_BITS - bit).min(end - pos);
        pos += n;
        Some((word, mask(bit, n)))
    })
}

impl<'a> Bitmap<'a> {
    /// A bitmap of `len` bits over `words`, which must hold at least [`words_for`]`(len)` words.
    /// Bits at `len` and past it are never claimed, whatever their value.
    pub fn new(words: &'a [AtomicU64], len: usize) -> Self {
        assert!(words.len() >= words_for(len), "bitmap words too short");
        Bitmap { words, len }
    }

    /// Number of bits.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the bitmap has no bits at all.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first set bit of `[start, start + count)` in a relaxed snapshot, if any.
    fn first_set(&self, start: usize, count: usize) -> Option<usize> {
        pieces(start, count).find_map(|(w, m)| {
            let hit = self.words[w].load(Ordering::Relaxed) & m;
            (hit != 0).then(|| w * WORD_BITS + hit.trailing_zeros() as usize)
        })
    }

    /// The first clear bit at or after `from` in a relaxed snapshot, or `len` if none.
    fn first_clear(&self, from: usize) -> usize {
        let mut pos = from;
        while pos < self.len {
            let free = !self.words[pos / WORD_BITS].load(Ordering::Relaxed) >> (pos % WORD_BITS);
            if free != 0 {
                return (pos + free.trailing_zeros() as usize).min(self.len);
            }
            pos = (pos / WORD_BITS + 1) * WORD_BITS;
        }
        self.len
    }

    /// Word `w` in a relaxed snapshot, bits at `len` and past it cleared.
    #[inline]
    pub fn word(&self, w: usize) -> u64 {
        let v = self.words[w].load(Ordering::Relaxed);
        let end = self.len.saturating_sub(w * WORD_BITS);
        if end >= WORD_BITS {
            v
        } else {
            v & ((1u64 << end) - 1)
        }
    }

    /// Whether every bit of `[start, start + count)` is clear (a relaxed snapshot).
    pub fn is_clear(&self, start: usize, count: usize) -> bool {
        self.first_set(start, count).is_none()
    }

    /// Whether every bit of `[start, start + count)` is set (a relaxed snapshot).
    pub fn is_set(&self, start: usize, count: usize) -> bool {
        pieces(start, count).all(|(w, m)| self.words[w].load(Ordering::Relaxed) & m == m)
    }

    /// Number of set bits (a relaxed snapshot).
    pub fn count_set(&self) -> usize {
        pieces(0, self.len)
            .map(|(w, m)| (self.words[w].load(Ordering::Relaxed) & m).count_ones() as usize)
            .sum()
    }

    /// Tries to set every bit of `[start, start + count)`, all of which must be clear. On
    /// failure nothing is left set.
    pub fn try_claim_at(&self, start: usize, count: usize) -> bool {
        if count == 0 || start + count > self.len {
            return false;
        }
        for (done, (w, m)) in pieces(start, count).enumerate() {
            if !self.claim_word(w, m) {
                // Roll back the words already taken.
                for (w, m) in pieces(start, count).take(done) {
                    self.words[w].fetch_and(!m, Ordering::Release);
                }
                return false;
            }
        }
        true
    }

    /// Sets the bits `m` of word `w` if all are clear.
    #[inline]
    fn claim_word(&self, w: usize, m: u64) -> bool {
        let word = &self.words[w];
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            if cur & m != 0 {
                return false;
            }
            match word.compare_exchange_weak(cur, cur | m, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Claims a run of `count` clear bits whose first index `i` satisfies `i % step == phase`,
    /// searching from the lowest index. Returns `i`, or `None` when no such run is free.
    pub fn claim(&self, count: usize, step: usize, phase: usize) -> Option<usize> {
        debug_assert!(step > 0 && phase < step);
        if count == 0 || count > self.len {
            return None;
        }
        // Two full passes: the second only if the first met contention (see the module docs).
        for _ in 0..2 {
            let mut contended = false;
            let mut i = phase;
            while i + count <= self.len {
                match self.first_set(i, count) {
                    // No run can start on a set bit: skip all of them at once.
                    Some(taken) => i = next_candidate(self.first_clear(taken + 1), step, phase),
                    None if self.try_claim_at(i, count) => return Some(i),
                    None => contended = true,
                }
            }
            if !contended {
                break;
            }
        }
        None
    }

    /// Clears every bit of `[start, start + count)`; each must be set (owned by the caller).
    pub fn release(&self, start: usize, count: usize) {
        debug_assert!(start + count <= self.len);
        debug_assert!(self.is_set(start, count), "releasing bits that are not set");
        for (w, m) in pieces(start, count) {
            self.words[w].fetch_and(!m, Ordering::Release);
        }
    }

    /// Sets every bit of `[start, start + count)` whatever their state (for bitmaps whose bits
    /// are flags, not ownership, like "dirty").
    pub fn set(&self, start: usize, count: usize) {
        for (w, m) in pieces(start, count) {
            self.words[w].fetch_or(m, Ordering::Release);
        }
    }

    /// Clears every bit of `[start, start + count)` whatever their state.
    pub fn clear(&self, start: usize, count: usize) {
        for (w, m) in pieces(start, count) {
            self.words[w].fetch_and(!m, Ordering::Release);
        }
    }

    /// Atomically takes one set bit of `[start, start+count)`, clearing it: the bit index
    /// returned belongs to the caller alone. Used where a set bit marks an item waiting to be
    /// taken (an abandoned slab).
    pub fn take_one(&self, start: usize, count: usize) -> Option<usize> {
        for (w, m) in pieces(start, count) {
            let word = &self.words[w];
            let mut cur = word.load(Ordering::Relaxed);
            while cur & m != 0 {
                let bit = (cur & m).trailing_zeros();
                let new = cur & !(1u64 << bit);
                match word.compare_exchange_weak(cur, new, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => return Some(w * WORD_BITS + bit as usize),
                    Err(actual) => cur = actual,
                }
            }
        }
        None
    }
}

/// The least `i >= from` with `i % step == phase`.
#[inline]
fn next_candidate(from: usize, step: usize, phase: usize) -> usize {
    let rem = from % step;
    if rem <= phase {
        from - rem + phase
    } else {
        from - rem + step + phase
    }
}

#[cfg(all(test, not(ferroc_loom)))]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn next_candidate_respects_phase() {
        assert_eq!(next_candidate(0, 4, 1), 1);
        assert_eq!(next_candidate(2, 4, 1), 5);
        assert_eq!(next_candidate(5, 4, 1), 5);
        assert_eq!(next_candidate(7, 1, 0), 7);
    }

    #[test]
    fn runs_crossing_words() {
        let w = words(4);
        let b = Bitmap::new(&w, 200);
        assert_eq!(b.claim(60, 1, 0), Some(0));
        // 70 bits cannot fit in the 4 left in word 0, so they start at 60 and cross into word 1.
        assert_eq!(b.claim(70, 1, 0), Some(60));
        assert!(b.is_set(0, 130));
        assert_eq!(b.claim(64, 1, 0), Some(130));
        assert_eq!(b.claim(7, 1, 0), None);
        assert_eq!(b.claim(6, 1, 0), Some(194));
        b.release(60, 70);
        assert!(b.is_clear(60, 70));
        assert_eq!(b.claim(65, 1, 0), Some(60));
        assert_eq!(b.count_set(), 60 + 65 + 64 + 6);
    }

    #[test]
    fn runs_of_whole_words() {
        let w = words(3);
        let b = Bitmap::new(&w, 192);
        assert_eq!(b.claim(64, 1, 0), Some(0));
        assert_eq!(b.claim(128, 1, 0), Some(64));
        assert_eq!(b.claim(1, 1, 0), None);
        b.release(0, 192);
        assert_eq!(b.claim(192, 1, 0), Some(0));
    }

    #[test]
    fn aligned_runs_use_phase() {
        let w = words(2);
        let b = Bitmap::new(&w, 100);
        assert_eq!(b.claim(1, 1, 0), Some(0));
        assert_eq!(b.claim(3, 8, 7), Some(7));
        assert_eq!(b.claim(3, 8, 7), Some(15));
        assert_eq!(b.claim(2, 32, 0), Some(32));
    }

    #[test]
    fn never_claims_past_len() {
        let w = words(1);
        let b = Bitmap::new(&w, 10);
        assert_eq!(b.claim(11, 1, 0), None);
        assert_eq!(b.claim(10, 1, 0), Some(0));
        assert_eq!(b.claim(1, 1, 0), None);
        assert!(!b.try_claim_at(9, 2));
    }

    #[test]
    fn take_one_clears_a_set_bit() {
        let w = words(2);
        let b = Bitmap::new(&w, 128);
        b.set(70, 1);
        b.set(3, 1);
        assert_eq!(b.take_one(0, 128), Some(3));
        assert_eq!(b.take_one(0, 128), Some(70));
        assert_eq!(b.take_one(0, 128), None);
    }

    /// Runs of exactly 64·k bits at every offset of a word, so they straddle k or k+1 words.
    #[test]
    fn runs_of_64k_bits_at_any_offset() {
        let w = words(6);
        let b = Bitmap::new(&w, 6 * 64);
        for k in 1..=4 {
            for start in [0, 1, 31, 63, 64, 65, 127] {
                let n = 64 * k;
                if start + n > b.len() {
                    continue;
                }
                if start > 0 {
                    assert!(b.try_claim_at(0, start));
                }
                assert_eq!(b.claim(n, 1, 0), Some(start), "k {k} start {start}");
                assert!(b.is_set(start, n));
                assert_eq!(b.count_set(), start + n);
                b.release(start, n);
                if start > 0 {
                    b.release(0, start);
                }
                assert_eq!(b.count_set(), 0);
            }
        }
        // A claim that would need one bit more than is free fails and leaves nothing set.
        assert!(b.try_claim_at(64, 1));
        assert_eq!(b.claim(6 * 64 - 64, 1, 0), None);
        assert!(!b.try_claim_at(0, 128));
        assert_eq!(b.count_set(), 1);
    }

    /// Lengths just past one, two and many words: every bit can be claimed, one at a time and
    /// as one run, and the bits past `len` never are.
    #[test]
    fn bitmaps_of_more_than_64_128_and_1000_bits() {
        for len in [65, 127, 128, 129, 1000, 1001, 1024, 1025] {
            let w = words(words_for(len));
            // Bits past `len` in the last word start set and must be ignored, not claimed.
            if len % 64 != 0 {
                w[len / 64].store(!0 << (len % 64), Ordering::Relaxed);
            }
            let b = Bitmap::new(&w, len);
            for i in 0..len {
                assert_eq!(b.claim(1, 1, 0), Some(i), "len {len}");
            }
            assert_eq!(b.claim(1, 1, 0), None, "len {len}");
            assert_eq!(b.count_set(), len);
            b.release(0, len);
            assert_eq!(b.count_set(), 0);
            assert_eq!(b.claim(len, 1, 0), Some(0), "len {len}");
            b.release(0, len);
            // The last bit, and a run ending exactly at `len`.
            assert!(b.try_claim_at(len - 1, 1));
            assert!(!b.try_claim_at(len - 1, 2));
            assert_eq!(b.claim(len - 1, 1, 0), Some(0));
            b.release(0, len);
            // Aligned runs across every word boundary: step 64, phase 63.
            let runs: Vec<usize> = core::iter::from_fn(|| b.claim(2, 64, 63)).collect();
            let expect: Vec<usize> = (0..)
                .map(|k| 64 * k + 63)
                .take_while(|&i| i + 2 <= len)
                .collect();
            assert_eq!(runs, expect, "len {len}");
            for i in runs {
                b.release(i, 2);
            }
            assert_eq!(b.count_set(), 0);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Claim {
            count: usize,
            step: usize,
            phase: usize,
        },
        ClaimAt {
            start: usize,
            count: usize,
        },
        Release(usize),
    }

    fn op(len: usize) -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let count = prop_oneof![1..=8usize, 60..=70usize, 1..=len, Just(64), Just(128)];
        prop_oneof![
            4 => (count.clone(), prop::sample::select(vec![1usize, 2, 4, 64]), any::<usize>())
                .prop_map(|(count, step, p)| Op::Claim { count, step, phase: p % step }),
            1 => (0..len, count).prop_map(|(start, count)| Op::ClaimAt { start, count }),
            3 => any::<usize>().prop_map(Op::Release),
        ]
    }

    /// The lowest `i % step == phase` whose `count` bits are all clear in the model.
    fn model_first_fit(model: &[bool], count: usize, step: usize, phase: usize) -> Option<usize> {
        (phase..)
            .step_by(step)
            .take_while(|&i| i + count <= model.len())
            .find(|&i| model[i..i + count].iter().all(|&b| !b))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Single-threaded, a bitmap is a first-fit allocator: every claim returns exactly the
        /// run a plain `Vec<bool>` model picks, whatever the lengths and word boundaries.
        #[test]
        fn claims_match_a_first_fit_model(
            len in proptest::prop_oneof![1..=200usize, proptest::strategy::Just(1000usize), 1000..=1100usize],
            ops in proptest::collection::vec(op(1100), 1..60),
        ) {
            let w = words(words_for(len));
            let b = Bitmap::new(&w, len);
            let mut model = vec![false; len];
            let mut live: Vec<(usize, usize)> = Vec::new();
            for op in ops {
                match op {
                    Op::Claim { count, step, phase } => {
                        let got = b.claim(count, step, phase);
                        proptest::prop_assert_eq!(got, model_first_fit(&model, count, step, phase));
                        if let Some(i) = got {
                            model[i..i + count].iter_mut().for_each(|m| *m = true);
                            live.push((i, count));
                        }
                    }
                    Op::ClaimAt { start, count } => {
                        let start = start % len;
                        let fits = start + count <= len && model[start..start + count].iter().all(|&m| !m);
                        proptest::prop_assert_eq!(b.try_claim_at(start, count), fits);
                        if fits {
                            model[start..start + count].iter_mut().for_each(|m| *m = true);
                            live.push((start, count));
                        }
                    }
                    Op::Release(k) if !live.is_empty() => {
                        let (i, n) = live.swap_remove(k % live.len());
                        b.release(i, n);
                        model[i..i + n].iter_mut().for_each(|m| *m = false);
                    }
                    Op::Release(_) => {}
                }
                proptest::prop_assert_eq!(b.count_set(), model.iter().filter(|&&m| m).count());
            }
            for (i, n) in live {
                b.release(i, n);
            }
            proptest::prop_assert_eq!(b.count_set(), 0);
        }
    }

    #[test]
    fn concurrent_claims_never_overlap() {
        let w = words(16);
        let b = Bitmap::new(&w, 1000);
        let owner: Vec<AtomicU64> = (0..1000).map(|_| AtomicU64::new(0)).collect();
        std::thread::scope(|s| {
            for t in 1..=8u64 {
                let (b, owner) = (&b, &owner);
                s.spawn(move || {
                    for round in 0..300usize {
                        let n = 1 + (round * 7 + t as usize) % 70;
                        if let Some(i) = b.claim(n, 1, 0) {
                            for o in &owner[i..i + n] {
                                assert_eq!(o.swap(t, Ordering::Relaxed), 0, "overlap");
                            }
                            for o in &owner[i..i + n] {
                                assert_eq!(o.swap(0, Ordering::Relaxed), t, "overlap");
                            }
                            b.release(i, n);
                        }
                    }
                });
            }
        });
        assert_eq!(b.count_set(), 0);
    }
}
