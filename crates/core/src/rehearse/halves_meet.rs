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
/// end (a dump of the copy, a restore, the checks and the swap), and A's
/// check where it rides on that copy too (A's ups are counted apart, see
/// [`A_UP_PER_TRIP`]). Measured on the diesel-style history of the bench:
/// B's start 90 ms to 130 ms, its end 270 ms to 380 ms, A's check 60 ms.
const B_END: f64 = 3.0;
const A_CHECK: f64 = 0.6;

/// An up applied as `migrate` applies it, against a round trip: about an
/// eighth on the diesel-style history of the bench (1.05 ms against
/// 7.95 ms in the server's statement log; 1.33 ms against the first
/// half's early pace of 11.4 ms on a slower host).
const UP_PER_TRIP: f64 = 1.0 / 8.0;

/// An up of A's injected run, against a round trip: A applies the ups of
/// the batch's last transaction once more (every pending one where the
/// batch is one transaction), so its time grows with them, not with B's
/// backup; about a twelfth (0.76 ms and 1.43 ms against early paces of
/// 11.4 ms and 16 ms on two hosts).
const A_UP_PER_TRIP: f64 = 1.0 / 12.0;

/// Where A rides on the second half's copy: the index among the pending
/// migrations of the first one its batch's last transaction applies.
pub(super) type ARides = Option<usize>;

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
    /// time B's backup of its start took; `carries`: where A plays on it
    /// too, and whether B ends on it before the halves join), or
    /// `fallback` while the first half has finished too few round trips to
    /// tell its pace. Never below what the first half has claimed.
    pub(super) fn settle(
        &self,
        fallback: usize,
        backup: Option<Duration>,
        carries: (ARides, bool),
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
    (a_rides, b_ends): (ARides, bool),
) -> Option<usize> {
    if done < 2 {
        return None;
    }
    let trip = elapsed.as_secs_f64() / done as f64;
    if trip <= 0.0 {
        return None;
    }
    let times = |yes: bool, n: f64| if yes { n } else { 0.0 };
    let checks = times(b_ends, B_END) + times(a_rides.is_some(), A_CHECK);
    let a_ups = a_rides.map_or(0, |at| len.saturating_sub(at)) as f64 * A_UP_PER_TRIP * trip;
    let carried = backup.map_or(0.0, |b| b.as_secs_f64() * checks) + a_ups;
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
        assert_eq!(balanced(250, 10, ms(75), None, (None, false)), Some(139));
        // B's backup took 90 ms, A rides from the first migration (the
        // batch is one transaction: 250 ups of 0.63 ms) and B ends there:
        // 480 ms more, 64 trips of 7.5 ms, half of them moved to the
        // first half.
        assert_eq!(balanced(250, 10, ms(75), Some(ms(90)), (Some(0), true)), Some(173));
        // A's batch is its last ten migrations: A is mostly its check.
        assert_eq!(balanced(250, 10, ms(75), Some(ms(90)), (Some(240), true)), Some(162));
        // B ends after the halves join: only A is carried.
        assert_eq!(balanced(250, 10, ms(75), Some(ms(90)), (Some(0), false)), Some(154));
        assert_eq!(balanced(250, 1, ms(75), Some(ms(90)), (Some(0), true)), None, "no pace yet");
        assert_eq!(balanced(250, 5, ms(0), None, (None, false)), None, "no time measured");
    }

    #[test]
    fn a_settled_cut_holds_the_first_half_and_never_takes_back_a_claim() {
        let meet = Meet::new(10);
        assert!(meet.claim(0) && meet.claim(1));
        // Too few trips done for a pace: the fallback, but not below 2.
        assert_eq!(meet.settle(1, None, (None, false)), 2);
        assert!(!meet.claim(2), "held to the cut");
        let meet = Meet::new(10);
        assert_eq!(meet.settle(0, None, (None, false)), 1, "the first half has one at least");
        assert!(meet.claim(0) && !meet.claim(1));
    }
}
