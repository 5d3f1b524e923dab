//! One stream's Silero voice detector, on a model shared through the model cache
//! (`crate::model::SileroModel`).
//!
//! whisper.cpp scores a whole buffer per call and resets the network's memory at the start of
//! each, so a stream scores its audio in blocks, each preceded by a second of the audio
//! before it to warm the network up. Frames are decided once their block is scored: up to a
//! block (~320 ms) after they arrive.

use super::{Decided, Segmenter, VadConfig, VadError, FRAME_SAMPLES};
use crate::model::cache::SileroHandle;
use std::collections::VecDeque;
use std::time::Duration;

/// Windows scored per call: how long a frame may wait for its decision.
const BLOCK_WINDOWS: usize = 10;
/// Windows of earlier audio scored again before each block, for the network's memory.
const WARMUP_WINDOWS: usize = 32;
/// Silero's own hysteresis: speech continues until the probability falls this far below the
/// threshold that started it.
const HYSTERESIS: f32 = 0.15;

/// One stream's Silero detector.
pub struct SileroVad {
    model: SileroHandle,
    config: VadConfig,
    segmenter: Segmenter,
    /// The last scored audio, replayed before the next block.
    warmup: Vec<f32>,
    /// Audio not yet scored.
    unscored: Vec<f32>,
    /// Probabilities of scored windows not yet used, from window `first_window` on.
    probabilities: VecDeque<f32>,
    first_window: usize,
    /// Frames waiting for their decision, and the stream sample where the first one starts.
    frames: VecDeque<Vec<f32>>,
    decided_samples: usize,
    scored_samples: usize,
}

impl SileroVad {
    pub fn new(model: SileroHandle, config: VadConfig) -> Self {
        SileroVad {
            model,
            config,
            segmenter: Segmenter::new(config.min_silence),
            warmup: Vec::new(),
            unscored: Vec::new(),
            probabilities: VecDeque::new(),
            first_window: 0,
            frames: VecDeque::new(),
            decided_samples: 0,
            scored_samples: 0,
        }
    }

    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    pub fn set_min_silence(&mut self, min_silence: Duration) {
        self.config.min_silence = min_silence;
        self.segmenter.set_min_silence(min_silence);
    }

    pub fn hold_pause(&mut self, pause: Duration) {
        self.segmenter.hold(pause);
    }

    pub fn undecided_samples(&self) -> usize {
        self.frames.iter().map(Vec::len).sum()
    }

    pub fn decide_frame(&mut self, frame: &[f32]) -> Result<Vec<Decided>, VadError> {
        self.frames.push_back(frame.to_vec());
        self.unscored.extend_from_slice(frame);
        let window = self.model.window();
        if self.unscored.len() >= BLOCK_WINDOWS * window {
            self.score(self.unscored.len() / window)?;
        }
        Ok(self.decide())
    }

    pub fn decide_rest(&mut self) -> Result<Vec<Decided>, VadError> {
        let windows = self.unscored.len().div_ceil(self.model.window());
        self.score(windows)?;
        let out = self.decide();
        // The padded last window broke the window grid: the next audio starts a new one.
        self.restart_grid();
        Ok(out)
    }

    pub fn forget_utterance(&mut self) {
        self.segmenter.forget_utterance();
        self.frames.clear();
        self.restart_grid();
    }

    fn restart_grid(&mut self) {
        self.warmup.clear();
        self.unscored.clear();
        self.probabilities.clear();
        self.first_window = 0;
        self.decided_samples = 0;
        self.scored_samples = 0;
    }

    /// Scores the next `windows` windows of unscored audio (zero-padding a short last one).
    fn score(&mut self, windows: usize) -> Result<(), VadError> {
        if windows == 0 {
            return Ok(());
        }
        let window = self.model.window();
        let take = (windows * window).min(self.unscored.len());
        let mut input = std::mem::take(&mut self.warmup);
        let warm = input.len() / window;
        input.extend(self.unscored.drain(..take));
        input.resize((warm + windows) * window, 0.0);
        let probabilities = self.model.probabilities(&input).map_err(VadError::Silero)?;
        if probabilities.len() != warm + windows {
            return Err(VadError::WindowCount {
                got: probabilities.len(),
                expected: warm + windows,
            });
        }
        self.probabilities.extend(&probabilities[warm..]);
        self.scored_samples += windows * window;
        let keep = WARMUP_WINDOWS.min(input.len() / window) * window;
        self.warmup = input.split_off(input.len() - keep);
        Ok(())
    }

    /// Decides every frame whose windows are all scored: speech if the most speech-like of
    /// them is over the threshold (or, inside an utterance, over the threshold less the
    /// hysteresis).
    fn decide(&mut self) -> Vec<Decided> {
        let window = self.model.window();
        let mut out = Vec::new();
        while let Some(len) = self.frames.front().map(Vec::len) {
            let (start, end) = (self.decided_samples, self.decided_samples + len);
            if end > self.scored_samples {
                break;
            }
            let (first, last) = (start / window, (end.max(start + 1) - 1) / window);
            // Windows before this frame are no longer needed.
            while self.first_window < first && self.probabilities.pop_front().is_some() {
                self.first_window += 1;
            }
            let p = self
                .probabilities
                .iter()
                .take(last + 1 - self.first_window)
                .copied()
                .fold(0.0, f32::max);
            let threshold = if self.segmenter.in_speech() {
                // Never below a floor: at 0 every frame would be speech and nothing would end.
                (self.config.threshold - HYSTERESIS).max(0.01)
            } else {
                self.config.threshold
            };
            let event = self.segmenter.next(p >= threshold);
            self.decided_samples = end;
            out.push((self.frames.pop_front().unwrap(), event));
        }
        out
    }
}

// A frame is shorter than a window: a frame's decision takes at most two windows.
const _: () = assert!(FRAME_SAMPLES <= 512);
