//! Checks on what whisper.cpp says, against its classic failures: a decode that loops, and
//! a short improbable phrase heard in silence ("Thank you.").

use super::segment::Segment;
use crate::clock::SAMPLE_RATE;

/// Utterances shorter than this whose text is improbable (mean token log-probability under
/// `IMPROBABLE_LOGPROB`, whisper.cpp's own fallback threshold) are not reported.
const SHORT_FRAGMENT_SAMPLES: usize = SAMPLE_RATE as usize;
const IMPROBABLE_LOGPROB: f32 = -1.0;

/// A decode that repeats itself or says far more than the audio could hold: the sign of a
/// too small encoder context.
pub(super) fn looks_like_a_loop(segments: &[Segment], samples: usize) -> bool {
    words_look_like_a_loop(
        &comparable_words(segments),
        samples as f32 / SAMPLE_RATE as f32,
    )
}

fn comparable_words(segments: &[Segment]) -> Vec<String> {
    segments
        .iter()
        .flat_map(|s| s.text.split_whitespace())
        .map(comparable)
        .collect()
}

/// More words than `seconds` of speech can hold, or words that repeat (`repeat`).
fn words_look_like_a_loop(words: &[String], seconds: f32) -> bool {
    words.len() as f32 > 6.0 * seconds + 5.0 || repeat(words)
}

/// The same 3-word phrase three times in a row, or a phrase of 4 words or more twice in a
/// row (a fitted context tends to say the end of an utterance again: "four queen of clubs
/// four queen of clubs"; speech rarely does).
fn repeat(words: &[String]) -> bool {
    let thrice = words
        .windows(9)
        .any(|w| w[0..3] == w[3..6] && w[3..6] == w[6..9]);
    thrice || (4..=words.len() / 2).any(|n| words.windows(2 * n).any(|w| w[..n] == w[n..]))
}

/// Cuts a decode whose text ends in a `repeat` after the first time it says the repeated
/// phrase: "four queen of clubs. four queen of clubs. four queen" -> "four queen of clubs."
/// That is what a fitted context's loop leaves out: on the live benchmark a redo in the
/// full context said the same, or less ("whatever they" for "whatever they were, whatever
/// they were, whatever they were."), after 0.6-0.9 s more inference. False, and nothing
/// cut, when the text of `samples` of audio does not end in one, or what is left would
/// still say too much or say a 4-word phrase twice anywhere (in noise, a sentence said
/// twice and then a loop: "...may be considered, as the invention of the metal letters ...
/// may be considered, as the invention of the invention of the invention of").
pub(super) fn cut_repeated_end(segments: &mut Vec<Segment>, samples: usize) -> bool {
    let words = comparable_words(segments);
    let seconds = samples as f32 / SAMPLE_RATE as f32;
    let clean = |kept: &[String]| {
        let mut phrases = std::collections::HashSet::new();
        !words_look_like_a_loop(kept, seconds) && kept.windows(4).all(|p| phrases.insert(p))
    };
    match words_before_repeated_end(&words) {
        Some(keep) if clean(&words[..keep]) => {
            keep_first_words(segments, keep);
            true
        }
        _ => false,
    }
}

/// Where the repetition that ends `words` says its phrase the second time, as a count of
/// words: of the phrases said at least twice up to the end, the one that starts earliest
/// (the shortest among equals). A word or two said over and over is left to a redo: "5, 5."
/// came out as "5, 5. 5. 5. 5. 5. 5. 5. 5. 5", which a redo in the full context read as "5 5".
fn words_before_repeated_end(words: &[String]) -> Option<usize> {
    const MIN_PHRASE: usize = 3;
    let n = words.len();
    let (start, len) = (1..=n / 2)
        .filter_map(|len| {
            let mut start = n - len;
            while start > 0 && words[start - 1] == words[start - 1 + len] {
                start -= 1;
            }
            (n - start >= 2 * len && repeat(&words[start..])).then_some((start, len))
        })
        .min()?;
    (len >= MIN_PHRASE).then_some(start + len)
}

/// Keeps the first `keep` words of `segments`' text, with their timed words.
fn keep_first_words(segments: &mut Vec<Segment>, keep: usize) {
    let mut left = keep;
    for (i, segment) in segments.iter_mut().enumerate() {
        let count = segment.text.split_whitespace().count();
        if count < left {
            left -= count;
            continue;
        }
        segment.text.truncate(end_of_words(&segment.text, left));
        // whisper.cpp's words are the text's: a token without a leading space continues one.
        segment.words.truncate(left);
        if let Some(last) = segment.words.last() {
            segment.end = last.2;
        }
        segments.truncate(i + 1);
        return;
    }
}

/// The byte offset where the `n`th whitespace-separated word of `text` ends.
fn end_of_words(text: &str, n: usize) -> usize {
    let mut seen = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), in_word) {
            (true, true) => {
                seen += 1;
                if seen == n {
                    return i;
                }
                in_word = false;
            }
            (false, _) => in_word = true,
            (true, false) => {}
        }
    }
    text.len()
}

/// Under a second and improbable (mean token log-probability under `IMPROBABLE_LOGPROB`):
/// Whisper's classic hallucination ("Thank you.", "Bye."), heard in a cough or a silence.
pub(super) fn improbable_fragment(samples: i64, logprob_sum: f32, tokens: usize) -> bool {
    samples < SHORT_FRAGMENT_SAMPLES as i64
        && logprob_sum < IMPROBABLE_LOGPROB * tokens.max(1) as f32
}

/// Drops a last segment that is Whisper's classic hallucination on the silence after speech
/// ("Thank you." appended to a sentence): under a second, improbable, and running past the
/// detector's last speech frame (`speech_end`, samples into the audio; none without a
/// detector). Seen on the 10-minute benchmark recording: "...printed in black letter. Thank
/// you." where the "Thank you." segment was 0.54 s at a mean log-probability of -1.11.
pub(super) fn drop_tail_hallucination(segments: &mut Vec<Segment>, speech_end: Option<usize>) {
    let Some(last) = segments.last() else {
        return;
    };
    let into_silence = speech_end.is_none_or(|end| last.end > end as i64);
    let fragment = improbable_fragment(last.end - last.start, last.logprob_sum, last.tokens);
    if segments.len() > 1 && fragment && into_silence {
        segments.pop();
    }
}

/// Lower-cased words without punctuation, for comparing hypotheses.
pub(super) fn comparable(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_phrases_look_like_loops_and_speech_does_not() {
        let words =
            |text: &str| -> Vec<String> { text.split_whitespace().map(comparable).collect() };
        let looping = [
            "Four queen of clubs. Four queen of clubs.",
            "not only by Schofer. Not only by Schofer.",
            "and then we and then we and then we went",
            "the the the the the the the the the the the the the the the the the",
        ];
        for text in looping {
            assert!(words_look_like_a_loop(&words(text), 5.0), "{text}");
        }
        let speech = [
            "And so my fellow Americans ask not what your country can do for you, ask what you can do for your country.",
            "Ten of clubs. Four queen of clubs. Seven of clubs.",
            "Go forward ten meters, then go forward ten more.",
            "Printing, in the only sense with which we are at present concerned, differs from most if not from all the arts and crafts represented in the Exhibition",
        ];
        for text in speech {
            assert!(!words_look_like_a_loop(&words(text), 10.0), "{text}");
        }
        // Twenty words cannot come out of one second of audio.
        assert!(words_look_like_a_loop(&words(speech[0]), 1.0));
    }

    /// The loops the live benchmark's fitted contexts gave, and what is left of them.
    #[test]
    fn a_repeated_end_is_said_once() {
        let cut = |texts: &[&str]| {
            let mut segments: Vec<Segment> =
                texts.iter().map(|t| Segment::of_text(t, 0, 100)).collect();
            let looped = cut_repeated_end(&mut segments, 160_000);
            (
                looped,
                segments.into_iter().map(|s| s.text).collect::<Vec<_>>(),
            )
        };
        let cases: [(&[&str], &[&str]); 4] = [
            (
                &["Four queen of clubs. Four queen of clubs. Four queen of clubs. Four queen"],
                &["Four queen of clubs."],
            ),
            (
                &["10 of clubs. 10 of clubs. 10 of clubs. 10 of clubs. 10"],
                &["10 of clubs."],
            ),
            (
                &[
                    "And it was a matter of course,",
                    "whatever they were, whatever they were, whatever they were.",
                ],
                &["And it was a matter of course,", "whatever they were,"],
            ),
            (
                &[
                    "And it was a matter of course that in the Middle Ages, when the craftsmen took care that",
                    "beautiful forms should always be a part of their productions, whatever they were, whatever",
                    "they were, whatever they were.",
                ],
                &[
                    "And it was a matter of course that in the Middle Ages, when the craftsmen took care that",
                    "beautiful forms should always be a part of their productions, whatever they were,",
                ],
            ),
        ];
        for (texts, kept) in cases {
            assert_eq!(
                cut(texts),
                (true, kept.iter().map(|k| k.to_string()).collect())
            );
        }
        // Repeats that do not end the text, an end said only twice, and a word said over
        // and over ("5, 5." said as "5, 5. 5. 5. 5. 5. 5. 5. 5. 5": a redo in the full
        // context says "5 5"): not cut.
        for texts in [
            &["5, 5. 5. 5. 5. 5. 5. 5. 5. 5"][..],
            &["not only by Schofer. Not only by Schofer. And then he left"],
            &["Ten of clubs. Four queen of clubs. Seven of clubs."],
            // Brown noise at 0 dB: a sentence said twice, then a loop.
            &["The invention of movable metal letters may be considered, as the invention of the metal letters may be considered, as the invention of the invention of the invention of the invention"],
            &["he said no, no."],
        ] {
            let uncut = texts.iter().map(|t| t.to_string()).collect();
            assert_eq!(cut(texts), (false, uncut));
        }
    }

    #[test]
    fn a_cut_keeps_the_timed_words_of_the_text_kept() {
        let mut looped = Segment::of_text(
            "Five of hearts, please. Five of hearts, please. Five",
            0,
            48000,
        );
        let words = [
            "Five", "of", "hearts,", "please.", "Five", "of", "hearts,", "please.", "Five",
        ];
        looped.words = (0..words.len() as i64)
            .map(|i| {
                (
                    words[i as usize].to_string(),
                    i * 4000,
                    i * 4000 + 3000,
                    0.9,
                )
            })
            .collect();
        let mut segments = vec![Segment::of_text("Draw.", 0, 8000), looped];
        assert!(cut_repeated_end(&mut segments, 48_000));
        assert_eq!(segments[1].text, "Five of hearts, please.");
        assert_eq!(segments[1].words.len(), 4);
        assert_eq!(segments[1].end, 3 * 4000 + 3000);
    }

    /// The decode of the 10-minute benchmark recording that said "Thank you." after the
    /// speech, its figures as whisper.cpp gave them (samples, log-probabilities).
    #[test]
    fn an_improbable_short_segment_after_the_speech_is_dropped_and_speech_is_kept() {
        let segment =
            |text: &str, start: i64, end: i64, mean_logprob: f32, tokens: usize| Segment {
                logprob_sum: mean_logprob * tokens as f32,
                tokens,
                ..Segment::of_text(text, start, end)
            };
        let sentence = segment(
            "The first books were printed in black letter.",
            159040,
            191040,
            -0.07,
            10,
        );
        let thanks = segment("Thank you.", 191040, 199680, -1.11, 3);
        let texts =
            |segments: &[Segment]| segments.iter().map(|s| s.text.clone()).collect::<Vec<_>>();

        let mut decoded = vec![sentence.clone(), thanks.clone()];
        drop_tail_hallucination(&mut decoded, Some(194880));
        assert_eq!(texts(&decoded), [sentence.text.as_str()]);
        // Without a detector, short and improbable is enough.
        let mut decoded = vec![sentence.clone(), thanks.clone()];
        drop_tail_hallucination(&mut decoded, None);
        assert_eq!(decoded.len(), 1);

        // Kept: a probable tail, a long one, one within the speech, and a lone segment (the
        // short-fragment rule in `transcript` judges those with the utterance's length).
        let probable = segment("Thank you.", 191040, 199680, -0.3, 3);
        let long = segment("and that was all.", 180000, 199680, -1.11, 5);
        for (tail, speech_end) in [(probable, 194880), (long, 194880), (thanks.clone(), 199680)] {
            let mut decoded = vec![sentence.clone(), tail.clone()];
            drop_tail_hallucination(&mut decoded, Some(speech_end));
            assert_eq!(decoded.len(), 2, "{} {speech_end}", tail.text);
        }
        let mut decoded = vec![thanks];
        drop_tail_hallucination(&mut decoded, Some(0));
        assert_eq!(decoded.len(), 1);
    }
}
