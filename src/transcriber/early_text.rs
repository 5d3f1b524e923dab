//! Live text before the final. A final comes once its utterance ends, so the first words of a
//! long utterance reach downstream its whole length after they were spoken: later than the
//! latency a live element promises for them (a 7 s sentence, a 4 s latency). Here the words two
//! consecutive partials agreed on (LocalAgreement-2, `Transcript::stable_text`) go out as soon
//! as they are stable, and the utterance's final supplies only the words after them.

use super::checks::comparable;
use super::{Transcript, Word};
use std::time::Duration;

/// A final word counts as one already sent when it starts this close to the end of the last
/// word sent (when the texts do not line up).
const SENT_OVERLAP: Duration = Duration::from_millis(50);

/// The words of the utterance in progress already sent downstream.
#[derive(Debug, Default)]
pub struct EarlyText {
    utterance: Option<u64>,
    sent: Vec<Word>,
}

impl EarlyText {
    /// A partial: its stable words not sent yet (none without word timings).
    pub fn partial(&mut self, t: &Transcript) -> Vec<Word> {
        if self.utterance != Some(t.utterance_id) {
            self.utterance = Some(t.utterance_id);
            self.sent.clear();
        }
        let stable = t.stable_text.split_whitespace().count().min(t.words.len());
        // A later decode may have gained or lost a word before those sent: go on after them.
        let from = match self.sent.is_empty() {
            true => 0,
            false => first_unsent(&t.words, &self.sent),
        };
        if stable <= from {
            return Vec::new();
        }
        let new = t.words[from..stable].to_vec();
        self.sent.extend(new.iter().cloned());
        new
    }

    /// A final: the words not sent early, or `None` when none of its utterance were (the
    /// final goes out whole, as without early text).
    pub fn final_rest(&mut self, t: &Transcript) -> Option<Vec<Word>> {
        let sent = std::mem::take(&mut self.sent);
        let ours = self.utterance.take() == Some(t.utterance_id);
        if !ours || sent.is_empty() {
            return None;
        }
        if t.words.is_empty() {
            return Some(rest_untimed(t, &sent));
        }
        let from = first_unsent(&t.words, &sent);
        Some(t.words[from..].to_vec())
    }

    /// A flush or new segment: nothing in progress was sent.
    pub fn reset(&mut self) {
        *self = EarlyText::default();
    }
}

/// Where the final's words go on from those sent: after the word matching the last one sent,
/// the nearest such to the count sent (a decode may merge or split a word); failing that, the
/// first word starting where the sent ones ended.
fn first_unsent(words: &[Word], sent: &[Word]) -> usize {
    let last = sent.last().expect("some words were sent");
    let key = comparable(&last.text);
    let n = sent.len();
    let by_text = (n.saturating_sub(2)..=n + 2)
        .filter(|&i| i >= 1 && i <= words.len() && comparable(&words[i - 1].text) == key)
        .min_by_key(|&i| i.abs_diff(n));
    by_text.unwrap_or_else(|| {
        let from = last.end.saturating_sub(SENT_OVERLAP);
        words
            .iter()
            .position(|w| w.start >= from)
            .unwrap_or(words.len())
    })
}

/// A final without word timings: the words after as many as were sent, as one piece from
/// the end of the last sent to the end of the final.
fn rest_untimed(t: &Transcript, sent: &[Word]) -> Vec<Word> {
    let rest: Vec<&str> = t.text.split_whitespace().skip(sent.len()).collect();
    if rest.is_empty() {
        return Vec::new();
    }
    let start = sent.last().map_or(t.start, |w| w.end).min(t.end);
    vec![Word {
        text: rest.join(" "),
        start,
        end: t.end,
        probability: 1.0,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str, from_ms: u64) -> Vec<Word> {
        text.split_whitespace()
            .enumerate()
            .map(|(i, w)| Word {
                text: w.to_string(),
                start: Duration::from_millis(from_ms + 300 * i as u64),
                end: Duration::from_millis(from_ms + 300 * i as u64 + 250),
                probability: 0.9,
            })
            .collect()
    }

    fn result(id: u64, text: &str, stable: &str, is_final: bool) -> Transcript {
        Transcript {
            text: text.to_string(),
            is_final,
            utterance_id: id,
            stable_text: stable.to_string(),
            words: words(text, 1000),
            end: Duration::from_millis(1000 + 300 * text.split_whitespace().count() as u64),
            ..Transcript::default()
        }
    }

    fn texts(words: &[Word]) -> Vec<&str> {
        words.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn stable_words_go_once_and_the_final_adds_the_rest() {
        let mut early = EarlyText::default();
        assert!(early.partial(&result(0, "the ache", "", false)).is_empty());
        let sent = early.partial(&result(0, "the ache of his", "the ache", false));
        assert_eq!(texts(&sent), ["the", "ache"]);
        let sent = early.partial(&result(0, "the ache of his over", "the ache of", false));
        assert_eq!(texts(&sent), ["of"]);
        let last = result(0, "the ache of his overstrained eyes", "", true);
        let rest = early.final_rest(&last).unwrap();
        assert_eq!(texts(&rest), ["his", "overstrained", "eyes"]);
        // The next utterance starts afresh, and its final goes out whole.
        assert!(early.final_rest(&result(1, "next", "", true)).is_none());
    }

    #[test]
    fn a_final_lines_up_on_the_last_word_sent_or_else_by_time() {
        let mut early = EarlyText::default();
        early.partial(&result(3, "it is ill disposed", "it is ill", false));
        // The final reads "ill-disposed" where the partials had "ill disposed": it has no
        // "ill" to line up on, so it lines up by time.
        let mut last = result(3, "it is ill-disposed young", "", true);
        last.words[2].start = Duration::from_millis(1600);
        let rest = early.final_rest(&last).unwrap();
        assert_eq!(texts(&rest), ["young"]);
        early.partial(&result(4, "a b c d", "a b c", false));
        let rest = early
            .final_rest(&result(4, "x a b c d e", "", true))
            .unwrap();
        assert_eq!(texts(&rest), ["d", "e"], "the final gained a word in front");
    }

    #[test]
    fn a_partial_that_gains_a_leading_word_goes_on_after_those_sent() {
        let mut early = EarlyText::default();
        early.partial(&result(5, "mister john had", "mister john", false));
        let sent = early.partial(&result(
            5,
            "and mister john had then",
            "and mister john had",
            false,
        ));
        assert_eq!(texts(&sent), ["had"]);
        let rest = early.final_rest(&result(5, "and mister john had then leisure", "", true));
        assert_eq!(texts(&rest.unwrap()), ["then", "leisure"]);
    }

    #[test]
    fn a_final_without_word_timings_sends_the_words_after_the_count_sent() {
        let mut early = EarlyText::default();
        early.partial(&result(7, "one two three", "one two", false));
        let mut last = result(7, "one two three four", "", true);
        last.words.clear();
        let rest = early.final_rest(&last).unwrap();
        assert_eq!(texts(&rest), ["three four"]);
        assert_eq!(rest[0].start, Duration::from_millis(1550));
        assert_eq!(rest[0].end, last.end);
    }

    #[test]
    fn partials_without_word_timings_send_nothing_early() {
        let mut early = EarlyText::default();
        let mut p = result(9, "one two three", "one two", false);
        p.words.clear();
        assert!(early.partial(&p).is_empty());
        assert!(early
            .final_rest(&result(9, "one two three", "", true))
            .is_none());
    }
}
