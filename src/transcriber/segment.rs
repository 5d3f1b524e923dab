//! What a decode gives: whisper.cpp's segments, timed in samples of the decoded audio.

use super::decoder::DetectedLanguages;
use super::language::Language;
use std::time::Duration;

/// One whisper.cpp segment, with times in samples from the decoded audio's start.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub text: String,
    pub start: i64,
    pub end: i64,
    pub logprob_sum: f32,
    pub tokens: usize,
    pub no_speech_prob: f32,
    /// Probabilities of the last two text tokens: a closing mark and the word it closes,
    /// most often (`end_p`).
    pub last_ps: [f32; 2],
    pub words: Vec<(String, i64, i64, f32)>,
}

/// What one decode gave, and what it cost.
#[derive(Debug, Clone)]
pub(super) struct Decoded {
    pub segments: Vec<Segment>,
    /// The language it was decoded in, and how sure the detection that chose it was.
    pub language: Language,
    /// Each language's probability, when the decode detected them.
    pub detection: Option<DetectedLanguages>,
    pub inference_time: Duration,
    pub queue_time: Duration,
    pub threads: u32,
    /// The scheduler served it after its deadline.
    pub late: bool,
}

impl Segment {
    /// A segment of `text` from `start` to `end` (samples), with no token statistics: for
    /// tests to build on.
    #[cfg(test)]
    pub fn of_text(text: &str, start: i64, end: i64) -> Segment {
        Segment {
            text: text.into(),
            start,
            end,
            logprob_sum: 0.0,
            tokens: 0,
            no_speech_prob: 0.0,
            last_ps: [1.0; 2],
            words: Vec::new(),
        }
    }

    /// How sure whisper.cpp was of how the text ends: the lower probability of its last two
    /// tokens. A sure period after a guessed word ("cold-hearted in red." for "cold-hearted
    /// and", cut at a pause) is no surer an end than the word.
    pub fn end_p(&self) -> f32 {
        self.last_ps[0].min(self.last_ps[1])
    }
}

impl Decoded {
    /// The average log-probability of its text tokens, as whisper.cpp judges a decode for
    /// its temperature fallback.
    pub fn avg_logprob(&self) -> f32 {
        mean_logprob(logprob_totals(&self.segments))
    }

    /// Times from the start of the audio after the first `samples` decoded (silence put
    /// before it): what came in that silence is at 0.
    pub fn shift_back(&mut self, samples: usize) {
        let back = |t: &mut i64| *t = (*t - samples as i64).max(0);
        for segment in &mut self.segments {
            back(&mut segment.start);
            back(&mut segment.end);
            for (_, start, end, _) in &mut segment.words {
                back(start);
                back(end);
            }
        }
    }
}

/// The summed log-probability of `segments`' text tokens, and how many there are.
pub(super) fn logprob_totals(segments: &[Segment]) -> (f32, usize) {
    let tokens = segments.iter().map(|s| s.tokens).sum();
    let logprob = segments.iter().map(|s| s.logprob_sum).sum();
    (logprob, tokens)
}

/// The average of `logprob_totals` (0 without any token).
pub(super) fn mean_logprob((logprob, tokens): (f32, usize)) -> f32 {
    match tokens {
        0 => 0.0,
        n => logprob / n as f32,
    }
}
