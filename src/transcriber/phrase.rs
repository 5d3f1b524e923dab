//! Whether a decode's text stops with a phrase left open: the speaker paused inside a
//! sentence and will go on. Live, such a pause does not end the utterance at once
//! (`StreamOptions::phrase_silence`): decoded alone, the words after it lose what came
//! before ("the acavas overstrained eyes" for "the ache of his overstrained eyes").
//!
//! Whisper closes the text of any audio that stops with a period, so a period alone says
//! little. How sure it was of that period says more: on the LJ Speech reading, periods at
//! sentence ends came at 0.64 to 0.98 (one at 0.41), periods where the reader went on after
//! a pause from 0.46 up, and in the corpus clips with pauses put at their commas 0.12 to 0.46
//! for half of them and up to 1.0 for the rest. So does how sure it was of the word the
//! period closes: a speaker's "and" before a pause came out as "in red." with a sure period
//! after a guessed "red" (0.34). A comma, a dash, an ellipsis, no closing mark at all, or a
//! word no English sentence ends on leave the phrase open whatever the probability.

use super::checks::comparable;

/// Endings Whisper writes where a sentence goes on (Chinese and Japanese commas included).
const OPEN_ENDINGS: [&str; 10] = [
    ",", ";", ":", "-", "\u{2013}", "\u{2014}", "...", "\u{2026}", "\u{3001}", "\u{ff0c}",
];

/// Marks that close a sentence; a text ending in none of them is open.
const CLOSING_MARKS: [char; 6] = ['.', '?', '!', '\u{3002}', '\u{ff1f}', '\u{ff01}'];

/// Below this probability a closing mark, or the word it closes, is Whisper's guess at audio
/// that stopped, not a sentence's end.
const UNSURE_CLOSE: f32 = 0.5;

/// English words a sentence does not end on: articles, conjunctions, most prepositions,
/// possessives and auxiliaries. Words that end sentences now and then ("it", "do", "that",
/// "in") are left out: a wrong hold costs latency, a missed one only what it costs today.
const OPENING_WORDS: [&str; 38] = [
    "a", "an", "the", "and", "or", "but", "nor", "of", "to", "at", "by", "with", "from", "into",
    "onto", "than", "which", "whose", "if", "because", "while", "whereas", "although", "though",
    "unless", "my", "your", "our", "their", "its", "were", "been", "could", "would", "should",
    "might", "must", "very",
];

/// Whether `text` stops where its phrase cannot have ended; `end_p` is how sure whisper.cpp
/// was of its last two tokens (`Segment::end_p`: a closing mark and the word it closes).
pub(super) fn leaves_phrase_open(text: &str, end_p: f32) -> bool {
    let text = text.trim_end();
    let Some(last_char) = text.chars().last() else {
        return false;
    };
    if OPEN_ENDINGS.iter().any(|e| text.ends_with(e)) || !CLOSING_MARKS.contains(&last_char) {
        return true;
    }
    let last = text.split_whitespace().last().unwrap_or_default();
    // "of the?" is a question cut short as much as "of the." is a sentence.
    end_p < UNSURE_CLOSE || OPENING_WORDS.contains(&comparable(last).as_str())
}

#[cfg(test)]
mod tests {
    use super::super::segment::Segment;
    use super::leaves_phrase_open;

    const SURE: f32 = 0.9;

    #[test]
    fn commas_dashes_ellipses_and_no_closing_mark_leave_a_phrase_open() {
        for text in [
            "Printing, in the only sense with which we are at present concerned,",
            "And it was a matter of course that in the middle ages...",
            "and it was a matter of course that in the middle ages",
            "Now\u{2026}",
            "the one thing -",
            "我们今天\u{ff0c}",
            "今日は\u{3001}",
        ] {
            assert!(leaves_phrase_open(text, SURE), "{text}");
        }
    }

    #[test]
    fn a_sentence_cut_after_a_word_that_cannot_end_it_is_open_whatever_its_period() {
        assert!(leaves_phrase_open("the ache of the.", SURE));
        assert!(leaves_phrase_open("It is larger than?", SURE));
    }

    #[test]
    fn a_period_whisper_was_unsure_of_leaves_it_open() {
        assert!(leaves_phrase_open(
            "in the only sense with which we are concerned.",
            0.30
        ));
        assert!(!leaves_phrase_open(
            "in the only sense with which we are concerned.",
            0.64
        ));
    }

    /// "and" before a pause, heard as "in red." (a sure period after "red" at 0.34).
    #[test]
    fn a_sure_period_after_a_guessed_word_leaves_it_open() {
        let text = "Unless to be rather cold-hearted in red.";
        let segment = |last_ps| Segment {
            last_ps,
            ..Segment::of_text(text, 0, 16_000)
        };
        assert!(leaves_phrase_open(text, segment([0.34, 0.91]).end_p()));
        assert!(!leaves_phrase_open(text, segment([0.81, 0.91]).end_p()));
    }

    #[test]
    fn sure_sentence_ends_close_the_phrase() {
        for text in [
            "in being comparatively modern.",
            "Why should one halt on the way?",
            "Come in.",
            "好的。",
            "",
            "   ",
        ] {
            assert!(!leaves_phrase_open(text, SURE), "{text:?}");
        }
    }
}
