//! Cues people can read: a final cut at word boundaries into cues of at most two lines of
//! about 42 characters and at most about 7 s each (the usual broadcast and web conventions),
//! timed from its words.

use std::time::Duration;

/// How much one cue may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CueLimits {
    pub line_chars: usize,
    pub lines: usize,
    pub max_duration: Duration,
}

impl Default for CueLimits {
    fn default() -> Self {
        CueLimits {
            line_chars: 42,
            lines: 2,
            max_duration: Duration::from_secs(7),
        }
    }
}

/// A word and when it was said.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedWord {
    pub text: String,
    pub start: Duration,
    pub end: Duration,
}

/// One cue of a laid-out final: its lines, and when it is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct LaidCue {
    pub start: Duration,
    pub end: Duration,
    pub lines: Vec<String>,
}

/// The words of a piece of text said from `start` to `end`, each timed by where its
/// characters fall (for text without word timings: a segment, or a whole final).
pub fn spread_words(text: &str, start: Duration, end: Duration) -> Vec<TimedWord> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let total: usize = words.iter().map(|w| w.chars().count() + 1).sum();
    let span = end.saturating_sub(start);
    let at = |chars: usize| start + span.mul_f64(chars as f64 / total.max(1) as f64);
    let mut offset = 0;
    words
        .into_iter()
        .map(|w| {
            let len = w.chars().count();
            let word = TimedWord {
                text: w.to_string(),
                start: at(offset),
                end: at(offset + len),
            };
            offset += len + 1;
            word
        })
        .collect()
}

/// `words` (in order) cut into cues within `limits`, each word in one cue; a word that
/// alone breaks them gets a cue of its own. A cue is shown until the next starts (the last
/// until `end`), but never longer than `limits.max_duration`.
pub fn lay_out(words: &[TimedWord], end: Duration, limits: CueLimits) -> Vec<LaidCue> {
    let mut groups: Vec<&[TimedWord]> = Vec::new();
    let mut first = 0;
    for i in 1..=words.len() {
        let fits = i < words.len() && fits(&words[first..=i], limits);
        if !fits {
            groups.push(&words[first..i]);
            first = i;
        }
    }
    let starts: Vec<Duration> = groups.iter().map(|g| g[0].start).collect();
    groups
        .iter()
        .enumerate()
        .map(|(k, g)| {
            let text: Vec<&str> = g.iter().map(|w| w.text.as_str()).collect();
            let next = starts.get(k + 1).copied().unwrap_or(end);
            let shown_until = next.min(starts[k] + limits.max_duration);
            LaidCue {
                start: starts[k],
                end: shown_until.max(g[g.len() - 1].end.min(next)).max(starts[k]),
                lines: lines(&text, limits),
            }
        })
        .collect()
}

fn fits(words: &[TimedWord], limits: CueLimits) -> bool {
    let duration = words[words.len() - 1].end.saturating_sub(words[0].start);
    let text: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let lines = lines(&text, limits);
    duration <= limits.max_duration
        && lines.len() <= limits.lines
        && lines.iter().all(|l| l.chars().count() <= limits.line_chars)
}

/// `words` on as few lines as fit `limits.line_chars`, two lines balanced: the break that
/// makes the longer line shortest.
fn lines(words: &[&str], limits: CueLimits) -> Vec<String> {
    let joined = words.join(" ");
    if joined.chars().count() <= limits.line_chars || words.len() < 2 {
        return vec![joined];
    }
    let width = |ws: &[&str]| ws.iter().map(|w| w.chars().count()).sum::<usize>() + ws.len() - 1;
    let best = (1..words.len())
        .min_by_key(|&i| width(&words[..i]).max(width(&words[i..])))
        .unwrap_or(1);
    let (top, bottom) = (words[..best].join(" "), words[best..].join(" "));
    if limits.lines >= 2 && width(&words[..best]).max(width(&words[best..])) <= limits.line_chars {
        return vec![top, bottom];
    }
    // More than two lines' worth: greedy lines, for `fits` to refuse.
    let mut out: Vec<String> = Vec::new();
    for w in words {
        match out.last_mut() {
            Some(line) if line.chars().count() + 1 + w.chars().count() <= limits.line_chars => {
                line.push(' ');
                line.push_str(w);
            }
            _ => out.push(w.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// What whispersink wrote for one held-out utterance before: one cue of 12.6 s and 160
    /// characters.
    const LONG: &str = "The invention of movable metal letters in the middle of the fifteenth \
        century may justly be considered as the invention of the art of printing, and it was \
        natural.";

    fn check_readable(cues: &[LaidCue], words: &[TimedWord], end: Duration) {
        let limits = CueLimits::default();
        let said: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        let shown: Vec<String> = cues.iter().map(|c| c.lines.join(" ")).collect();
        assert_eq!(
            shown.join(" "),
            said.join(" "),
            "every word, once, in order"
        );
        for c in cues {
            assert!((1..=limits.lines).contains(&c.lines.len()), "{c:?}");
            assert!(
                c.lines
                    .iter()
                    .all(|l| l.chars().count() <= limits.line_chars),
                "{c:?}"
            );
            assert!(
                c.start <= c.end && c.end - c.start <= limits.max_duration,
                "{c:?}"
            );
        }
        for w in cues.windows(2) {
            assert!(w[0].end <= w[1].start, "overlap: {w:?}");
        }
        assert_eq!(cues[0].start, words[0].start);
        assert!(cues.last().unwrap().end <= end);
    }

    #[test]
    fn a_long_final_becomes_cues_of_two_lines_and_seven_seconds_at_most() {
        let words = spread_words(LONG, secs(3.0), secs(15.6));
        let cues = lay_out(&words, secs(15.6), CueLimits::default());
        check_readable(&cues, &words, secs(15.6));
        assert!(cues.len() >= 2, "{cues:?}");
        assert_eq!(cues.last().unwrap().end, secs(15.6));
        // Two lines are balanced: neither is much longer than the other.
        for c in cues.iter().filter(|c| c.lines.len() == 2) {
            let (a, b) = (c.lines[0].len() as i64, c.lines[1].len() as i64);
            assert!((a - b).abs() <= 12, "{c:?}");
        }
    }

    #[test]
    fn slow_speech_is_cut_by_time_before_it_fills_the_lines() {
        // Eight words over 16 s: short enough for two lines, too long for one cue.
        let words = spread_words(
            "one two three four five six seven eight",
            secs(0.0),
            secs(16.0),
        );
        let cues = lay_out(&words, secs(16.0), CueLimits::default());
        check_readable(&cues, &words, secs(16.0));
        assert!(cues.len() >= 3, "{cues:?}");
    }

    #[test]
    fn a_short_final_is_one_cue_on_one_line() {
        let words = spread_words("Go forward ten meters.", secs(1.0), secs(2.5));
        let cues = lay_out(&words, secs(2.6), CueLimits::default());
        assert_eq!(cues.len(), 1);
        assert_eq!(cues[0].lines, ["Go forward ten meters."]);
        assert_eq!((cues[0].start, cues[0].end), (secs(1.0), secs(2.6)));
    }

    #[test]
    fn a_word_longer_than_a_line_gets_a_cue_of_its_own() {
        let long = "x".repeat(50);
        let text = format!("before {long} after");
        let words = spread_words(&text, secs(0.0), secs(3.0));
        let cues = lay_out(&words, secs(3.0), CueLimits::default());
        let texts: Vec<String> = cues.iter().map(|c| c.lines.join(" ")).collect();
        assert_eq!(texts, ["before", long.as_str(), "after"]);
    }

    #[test]
    fn spread_words_are_in_order_within_their_span() {
        let words = spread_words(LONG, secs(2.0), secs(9.0));
        assert_eq!(words.len(), LONG.split_whitespace().count());
        assert_eq!(words[0].start, secs(2.0));
        for w in words.windows(2) {
            assert!(w[0].start < w[0].end && w[0].end <= w[1].start, "{w:?}");
        }
        assert!(words.last().unwrap().end <= secs(9.0));
        assert!(lay_out(&[], secs(1.0), CueLimits::default()).is_empty());
    }
}
