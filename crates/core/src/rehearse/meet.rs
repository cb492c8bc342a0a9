//! Where the two halves of a cut run meet. The first half claims each
//! migration before its round trip; the second half settles the cut once
//! it knows what it carries besides its round trips (B's backup took its
//! time, A and B's restore will take theirs) and how fast the first half
//! goes, so that both end together. Nothing is proved differently for it:
//! the cut only says which copy round-trips which migration.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cut between two halves, settled while they run.
pub(super) struct Meet {
    len: usize,
    /// The first index the first half has not claimed, and the first it
    /// may not claim (the cut, once settled; `len` before).
    state: Mutex<(usize, usize)>,
    started: Instant,
}

/// What the second half carries besides its own round trips, as a
/// multiple of the time B's backup of its start took: B's restore at its
/// end (a dump of the copy, a restore, the checks and the swap), and A
/// where it rides on that copy too. Measured on the diesel-style history
/// of the bench: B's start 90 ms, its end 270 ms, A 155 ms.
const B_END: f64 = 3.0;
const A_RIDES: f64 = 1.7;

/// An up applied as `migrate` applies it, against a round trip: about an
/// eighth on the diesel-style history of the bench (1.05 ms against
/// 7.95 ms in the server's statement log).
const UP_PER_TRIP: f64 = 1.0 / 8.0;

impl Meet {
    /// A meeting of two halves of `len` migrations, their round trips
    /// starting now.
    pub(super) fn new(len: usize) -> Meet {
        Meet { len, state: Mutex::new((0, len)), started: Instant::now() }
    }

    /// The time since the round trips started.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether the first half may round-trip the migration at `i`: it may
    /// below the cut (or before the cut is settled), and is then held to it.
    pub(super) fn claim(&self, i: usize) -> bool {
        let mut s = self.state.lock().expect("no claim panics");
        if i < s.1 {
            s.0 = s.0.max(i + 1);
            true
        } else {
            false
        }
    }

    /// Settles the cut: where both halves end together, by the first
    /// half's pace so far and what the second half carries (`backup`: the
    /// time B's backup of its start took; `carries`: whether A plays on it
    /// too, and whether B ends on it before the halves join), or
    /// `fallback` while the first half has finished too few round trips to
    /// tell its pace. Never below what the first half has claimed.
    pub(super) fn settle(
        &self,
        fallback: usize,
        backup: Option<Duration>,
        carries: (bool, bool),
    ) -> usize {
        let mut s = self.state.lock().expect("no claim panics");
        let done = s.0.saturating_sub(1);
        let want = forced()
            .or_else(|| balanced(self.len, done, self.started.elapsed(), backup, carries))
            .unwrap_or(fallback);
        let at = want.max(s.0).clamp(1, self.len);
        s.1 = at;
        at
    }
}

/// For the tests of each place scenario A may play on a cut run:
/// `BACKSTOP_TEST_CUT_AT=<index>` settles the cut there, whatever the pace.
fn forced() -> Option<usize> {
    std::env::var("BACKSTOP_TEST_CUT_AT").ok()?.parse().ok()
}

/// The cut at which the first half (at `done` round trips after
/// `elapsed`) and the second (the ups before the cut, its round trips,
/// and what rides on it) end together; `None` before two round trips.
fn balanced(
    len: usize,
    done: usize,
    elapsed: Duration,
    backup: Option<Duration>,
    (a_rides, b_ends): (bool, bool),
) -> Option<usize> {
    if done < 2 {
        return None;
    }
    let trip = elapsed.as_secs_f64() / done as f64;
    if trip <= 0.0 {
        return None;
    }
    let times = |yes: bool, n: f64| if yes { n } else { 0.0 };
    let carried =
        backup.map_or(0.0, |b| b.as_secs_f64() * (times(b_ends, B_END) + times(a_rides, A_RIDES)));
    // First half: (at - done) trips. Second: `at` ups, (len - at) trips
    // and what it carries.
    let at = ((len + done) as f64 * trip + carried) / (trip * (2.0 - UP_PER_TRIP));
    Some(at.round() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_gives_the_second_half_less_by_what_it_carries() {
        let ms = Duration::from_millis;
        // Nothing carried: a little past the middle, for the ups.
        assert_eq!(balanced(250, 10, ms(75), None, (false, false)), Some(139));
        // B's backup took 90 ms, A rides and B ends there: 423 ms more,
        // 56 trips of 7.5 ms, half of them moved to the first half.
        assert_eq!(balanced(250, 10, ms(75), Some(ms(90)), (true, true)), Some(169));
        // B ends after the halves join: only A is carried.
        assert_eq!(balanced(250, 10, ms(75), Some(ms(90)), (true, false)), Some(150));
        assert_eq!(balanced(250, 1, ms(75), Some(ms(90)), (true, true)), None, "no pace yet");
        assert_eq!(balanced(250, 5, ms(0), None, (false, false)), None, "no time measured");
    }

    #[test]
    fn a_settled_cut_holds_the_first_half_and_never_takes_back_a_claim() {
        let meet = Meet::new(10);
        assert!(meet.claim(0) && meet.claim(1));
        // Too few trips done for a pace: the fallback, but not below 2.
        assert_eq!(meet.settle(1, None, (false, false)), 2);
        assert!(!meet.claim(2), "held to the cut");
        let meet = Meet::new(10);
        assert_eq!(meet.settle(0, None, (false, false)), 1, "the first half has one at least");
        assert!(meet.claim(0) && !meet.claim(1));
    }
}
