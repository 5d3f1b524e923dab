//! The optional Silero voice detector: whisper.cpp's ggml port of Silero VAD, loaded once
//! into the model cache and shared by every stream that names the same file.
//!
//! whisper.cpp scores a whole buffer per call and resets the network's memory at the start of
//! each, so a stream scores its audio in blocks, each preceded by a second of the audio
//! before it to warm the network up. Frames are decided once their block is scored: up to a
//! block (~320 ms) after they arrive.

use super::{Decided, Segmenter, VadConfig, FRAME_SAMPLES};
use crate::model::cache::ModelHandle;
use crate::model::{ggml, ModelError};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use whisper_rs::{WhisperVadContext, WhisperVadContextParams};

/// Windows scored per call: how long a frame may wait for its decision.
const BLOCK_WINDOWS: usize = 10;
/// Windows of earlier audio scored again before each block, for the network's memory.
const WARMUP_WINDOWS: usize = 32;
/// Silero's own hysteresis: speech continues until the probability falls this far below the
/// threshold that started it.
const HYSTERESIS: f32 = 0.15;

/// A loaded Silero model. The whisper.cpp context holds its scratch state, so calls take
/// turns; each is a few milliseconds.
pub struct SileroModel {
    context: Mutex<WhisperVadContext>,
    info: ggml::SileroInfo,
}

impl SileroModel {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let info = ggml::inspect_silero(path)?;
        let mut params = WhisperVadContextParams::new();
        // Tiny network: more threads cost more in hand-offs than they save.
        params.set_n_threads(1);
        params.set_use_gpu(false);
        let load_error = || ModelError::Load {
            path: path.to_path_buf(),
        };
        let path_str = path.to_str().ok_or_else(load_error)?;
        let context = WhisperVadContext::new(path_str, params).map_err(|_| load_error())?;
        Ok(SileroModel {
            context: Mutex::new(context),
            info,
        })
    }

    pub fn info(&self) -> &ggml::SileroInfo {
        &self.info
    }

    /// Samples per probability.
    pub fn window(&self) -> usize {
        self.info.window
    }

    /// The speech probability of each `window()` of `audio` (the last one zero-padded).
    pub fn probabilities(&self, audio: &[f32]) -> Result<Vec<f32>, String> {
        let mut context = self.context.lock().unwrap_or_else(|e| e.into_inner());
        context
            .detect_speech(audio)
            .map_err(|e| format!("Silero voice detection failed: {e}"))?;
        Ok(context.probabilities().to_vec())
    }
}

/// One stream's Silero detector.
pub struct SileroVad {
    model: ModelHandle,
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
    /// `model` must be a `ModelKind::SileroVad` handle.
    pub fn new(model: ModelHandle, config: VadConfig) -> Result<Self, String> {
        if model.silero().is_none() {
            return Err(format!(
                "{} is not a Silero voice detector",
                model.key().path.display()
            ));
        }
        Ok(SileroVad {
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
        })
    }

    fn silero(&self) -> &SileroModel {
        self.model.silero().expect("checked in new")
    }

    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    pub fn set_min_silence(&mut self, min_silence: Duration) {
        self.config.min_silence = min_silence;
        self.segmenter.set_min_silence(min_silence);
    }

    pub fn undecided_samples(&self) -> usize {
        self.frames.iter().map(Vec::len).sum()
    }

    pub fn push(&mut self, frame: &[f32]) -> Result<Vec<Decided>, String> {
        self.frames.push_back(frame.to_vec());
        self.unscored.extend_from_slice(frame);
        let window = self.silero().window();
        if self.unscored.len() >= BLOCK_WINDOWS * window {
            self.score(self.unscored.len() / window)?;
        }
        Ok(self.decide())
    }

    pub fn flush(&mut self) -> Result<Vec<Decided>, String> {
        let windows = self.unscored.len().div_ceil(self.silero().window());
        self.score(windows)?;
        let out = self.decide();
        // The padded last window broke the window grid: the next audio starts a new one.
        self.restart_grid();
        Ok(out)
    }

    pub fn reset(&mut self) {
        self.segmenter.reset();
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
    fn score(&mut self, windows: usize) -> Result<(), String> {
        if windows == 0 {
            return Ok(());
        }
        let window = self.silero().window();
        let take = (windows * window).min(self.unscored.len());
        let mut input = std::mem::take(&mut self.warmup);
        let warm = input.len() / window;
        input.extend(self.unscored.drain(..take));
        input.resize((warm + windows) * window, 0.0);
        let probabilities = self.silero().probabilities(&input)?;
        if probabilities.len() != warm + windows {
            return Err(format!(
                "Silero gave {} probabilities for {} windows",
                probabilities.len(),
                warm + windows
            ));
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
        let window = self.silero().window();
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
