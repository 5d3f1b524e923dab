//! What the voice detector threw away: audio loud enough to be heard over the noise floor that
//! never reached whisper.cpp. Counted for the transcript messages and kept as time ranges for
//! the element to log, so that dropped speech is never silent.

use crate::clock::samples_to_duration;
use crate::vad::evidence::NotSpeech;
use std::time::Duration;

/// Rejections this close together are one range in the log (machinery knocks, say, ten a
/// second): a line per stretch of noise, not per frame.
const MERGE_GAP_SAMPLES: u64 = crate::clock::SAMPLE_RATE as u64;

/// A stretch of the stream the detector did not pass on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rejected {
    /// From the transcriber's first sample.
    pub start: Duration,
    pub end: Duration,
    /// Audio rejected within it (less than `end - start` when merged from pieces).
    pub audio: Duration,
    pub reason: NotSpeech,
}

#[derive(Debug, Clone, Copy)]
struct Range {
    start: u64,
    end: u64,
    samples: u64,
    reason: NotSpeech,
}

impl Range {
    fn rejected(&self) -> Rejected {
        Rejected {
            start: samples_to_duration(self.start),
            end: samples_to_duration(self.end),
            audio: samples_to_duration(self.samples),
            reason: self.reason,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Rejections {
    total_samples: u64,
    /// The range still growing.
    open: Option<Range>,
    closed: Vec<Rejected>,
}

impl Rejections {
    /// `len` samples from stream position `start` were rejected for `reason`.
    pub fn add(&mut self, start: u64, len: usize, reason: NotSpeech) {
        let len = len as u64;
        self.total_samples += len;
        if let Some(open) = self.open.as_mut() {
            if open.reason == reason && start <= open.end + MERGE_GAP_SAMPLES {
                open.end = open.end.max(start + len);
                open.samples += len;
                return;
            }
        }
        self.close();
        self.open = Some(Range {
            start,
            end: start + len,
            samples: len,
            reason,
        });
    }

    /// The range growing is complete (speech came, the stream ended or its timeline moved).
    pub fn close(&mut self) {
        if let Some(open) = self.open.take() {
            self.closed.push(open.rejected());
        }
    }

    /// The complete ranges not taken yet.
    pub fn take(&mut self) -> Vec<Rejected> {
        std::mem::take(&mut self.closed)
    }

    /// All audio rejected since the stream started.
    pub fn total(&self) -> Duration {
        samples_to_duration(self.total_samples)
    }
}
