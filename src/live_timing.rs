//! The timing rules for live streams, apart from the clock that drives them: when a stream
//! counts as overloaded (the device cannot keep up), and when a final counts as late. The
//! worker hands in `now` and the figures; the element posts the warnings. Tests drive them
//! with instants of their own making.

use std::time::{Duration, Instant};

/// Behind real time by more than its latency for this long, a stream is overloaded.
pub const OVERLOAD_AFTER: Duration = Duration::from_secs(5);
/// At most one overload warning per stream this often.
pub const OVERLOAD_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Says when to warn that the device cannot keep up with a live stream: it has stayed
/// further behind real time than its latency for `OVERLOAD_AFTER`, or is found that much
/// further behind than its latency at once (one long stall: a decode starved of the CPU).
/// At most one warning per `OVERLOAD_WARNING_INTERVAL`.
#[derive(Debug, Default)]
pub struct OverloadWatch {
    behind_since: Option<Instant>,
    warned_at: Option<Instant>,
}

impl OverloadWatch {
    /// At `now`, `lag` of live audio waits behind the worker for a stream whose results may
    /// take `latency`: whether to warn now.
    pub fn check(&mut self, now: Instant, lag: Duration, latency: Duration) -> bool {
        if lag <= latency {
            self.behind_since = None;
            return false;
        }
        let since = *self.behind_since.get_or_insert(now);
        // Found this far behind after one long stall, it has been behind for at least its
        // excess over the latency, seen between items or not.
        let behind_for = now.saturating_duration_since(since).max(lag - latency);
        let warned_lately = self
            .warned_at
            .is_some_and(|t| now.saturating_duration_since(t) < OVERLOAD_WARNING_INTERVAL);
        if behind_for < OVERLOAD_AFTER || warned_lately {
            return false;
        }
        self.warned_at = Some(now);
        true
    }

    /// The stream is not live (or no longer): nothing it queues is behind real time.
    pub fn not_live(&mut self) {
        self.behind_since = None;
    }
}

/// How a live final's delay after its utterance's end compares with what was promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalDelay {
    pub delay: Duration,
    /// Past `latency + lateness`: warn.
    pub late: bool,
}

/// Judges a final that came at running time `now` for an utterance that ended at
/// `utterance_end`.
pub fn final_delay(
    now: Duration,
    utterance_end: Duration,
    latency: Duration,
    lateness: Duration,
) -> FinalDelay {
    let delay = now.saturating_sub(utterance_end);
    FinalDelay {
        delay,
        late: delay > latency + lateness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATENCY: Duration = Duration::from_secs(3);

    fn s(secs: f64) -> Duration {
        Duration::from_millis((secs * 1000.0).round() as u64)
    }

    /// Checks at `t0 + at` for each `(at, lag)`; returns the times (s) a warning was due.
    fn warnings(checks: &[(f64, f64)]) -> Vec<f64> {
        let (t0, mut watch) = (Instant::now(), OverloadWatch::default());
        checks
            .iter()
            .filter(|(at, lag)| watch.check(t0 + s(*at), s(*lag), LATENCY))
            .map(|(at, _)| *at)
            .collect()
    }

    #[test]
    fn a_stream_behind_its_latency_for_five_seconds_is_overloaded() {
        // 0.5 s over its latency from t = 1 s on: due at t = 6 s, not before.
        let checks: Vec<(f64, f64)> = (0..=8)
            .map(|t| (t as f64, if t == 0 { 1.0 } else { 3.5 }))
            .collect();
        assert_eq!(warnings(&checks), vec![6.0]);
    }

    #[test]
    fn catching_up_starts_the_five_seconds_again() {
        let checks = [
            (0.0, 3.5),
            (4.0, 3.5),
            (4.5, 2.0),
            (5.0, 3.5),
            (9.0, 3.5),
            (10.0, 3.5),
        ];
        assert_eq!(warnings(&checks), vec![10.0]);
    }

    #[test]
    fn one_long_stall_is_overloaded_as_soon_as_it_is_found() {
        // The worker stalled 10 s: found 10 s behind at its first look, with a 3 s latency.
        assert_eq!(warnings(&[(0.0, 0.2), (10.0, 10.0)]), vec![10.0]);
        // 7.9 s behind is less than 5 s over the latency: not yet.
        assert_eq!(warnings(&[(0.0, 7.9)]), Vec::<f64>::new());
    }

    #[test]
    fn warnings_come_at_most_every_ten_seconds_while_behind() {
        let checks: Vec<(f64, f64)> = (0..=30).map(|t| (t as f64, 9.0)).collect();
        assert_eq!(warnings(&checks), vec![0.0, 10.0, 20.0, 30.0]);
    }

    #[test]
    fn within_its_latency_a_stream_is_never_overloaded() {
        let checks: Vec<(f64, f64)> = (0..=60).map(|t| (t as f64, 3.0)).collect();
        assert!(warnings(&checks).is_empty());
    }

    #[test]
    fn a_stream_no_longer_live_starts_afresh() {
        let (t0, mut watch) = (Instant::now(), OverloadWatch::default());
        assert!(!watch.check(t0, s(3.5), LATENCY));
        watch.not_live();
        assert!(!watch.check(t0 + s(6.0), s(3.5), LATENCY));
        assert!(watch.check(t0 + s(11.0), s(3.5), LATENCY));
    }

    #[test]
    fn a_final_is_late_past_latency_and_lateness() {
        let judge = |now: f64| final_delay(s(now), s(10.0), LATENCY, s(0.5));
        assert_eq!(
            judge(12.0),
            FinalDelay {
                delay: s(2.0),
                late: false
            }
        );
        assert_eq!(
            judge(13.5),
            FinalDelay {
                delay: s(3.5),
                late: false
            },
            "exactly latency + lateness is on time"
        );
        assert_eq!(
            judge(13.6),
            FinalDelay {
                delay: s(3.6),
                late: true
            }
        );
        // A final stamped before its utterance's end (clock skew) is no delay.
        assert_eq!(judge(9.0).delay, Duration::ZERO);
    }
}
