//! The built-in voice detector: needs no model, costs almost nothing, and keeps silence and
//! steady noise away from whisper.cpp. It compares each 30 ms frame's energy with the noise
//! floor (the quietest frame of the last few seconds) and asks voiced speech to be tonal
//! rather than hiss-like (few zero crossings) before an utterance may start.
//!
//! The optional Silero detector (`silero`) scores speech with a small neural network instead;
//! both feed the same `Segmenter`, behind one `VoiceDetector`.

pub mod silero;

use std::collections::VecDeque;
use std::time::Duration;

/// What can go wrong in voice detection (only the Silero detector can fail).
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error("Silero voice detection failed: {0}")]
    Silero(#[source] whisper_rs::WhisperError),
    #[error("Silero gave {got} probabilities for {expected} windows")]
    WindowCount { got: usize, expected: usize },
}

pub const FRAME_SAMPLES: usize = 480; // 30 ms at 16 kHz
const FRAMES_PER_SECOND: usize = 16_000 / FRAME_SAMPLES;
/// How far back the noise floor looks.
const FLOOR_WINDOW_FRAMES: usize = 5 * FRAMES_PER_SECOND;
/// Frames quieter than this are never speech (digital silence, a muted microphone).
const ABSOLUTE_MIN_DB: f32 = -60.0;
/// Speech frames are within this many dB of the loudest frame of the last few seconds: the
/// tail of a word fading into digital silence is not speech any more.
const PEAK_RANGE_DB: f32 = 35.0;
/// Until this many frames were seen, the floor is assumed no louder than `PRIOR_FLOOR_DB`,
/// so speech that starts with the stream is not taken for the floor.
const PRIOR_FRAMES: usize = FRAMES_PER_SECOND / 2;
const PRIOR_FLOOR_DB: f32 = -50.0;
/// White noise crosses zero on about half the samples; voiced speech far less often.
const MAX_VOICED_ZERO_CROSSINGS: f32 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// 0..1: how far above the noise floor a frame must be to count as speech (0.5 = 12 dB).
    pub threshold: f32,
    /// Silence that ends an utterance.
    pub min_silence: Duration,
    /// Audio kept before the first and after the last speech frame of an utterance.
    pub padding: Duration,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            threshold: 0.5,
            min_silence: Duration::from_millis(400),
            padding: Duration::from_millis(300),
        }
    }
}

impl VadConfig {
    fn margin_db(&self) -> f32 {
        24.0 * self.threshold.clamp(0.0, 1.0)
    }
}

/// What one frame meant for the utterance in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    Silence,
    /// An utterance started at this frame.
    SpeechStart,
    Speech,
    /// A quiet frame inside an utterance, which may yet go on.
    Pause,
    /// The utterance ended: its last speech frame was `min_silence` ago.
    SpeechEnd,
}

/// First-order high-pass at about 100 Hz for the analysis only: rumble, wind and brown noise
/// live below speech and would make the energy swing.
#[derive(Default, Clone, Copy)]
struct HighPass {
    last_in: f32,
    last_out: f32,
}

impl HighPass {
    const A: f32 = 0.962; // RC / (RC + dt), RC = 1 / (2 pi 100 Hz), dt = 1 / 16 kHz

    fn filter(&mut self, frame: &[f32]) -> Vec<f32> {
        frame
            .iter()
            .map(|&x| {
                let x = if x.is_finite() {
                    x.clamp(-1.0, 1.0)
                } else {
                    0.0
                };
                self.last_out = Self::A * (self.last_out + x - self.last_in);
                self.last_in = x;
                self.last_out
            })
            .collect()
    }
}

/// Turns each frame's speech decision into utterance events: an utterance ends once its last
/// speech frame is `min_silence` behind. Both detectors use it.
#[derive(Debug, Clone)]
pub struct Segmenter {
    min_silence: Duration,
    in_speech: bool,
    silent_frames: usize,
}

impl Segmenter {
    pub fn new(min_silence: Duration) -> Self {
        Segmenter {
            min_silence,
            in_speech: false,
            silent_frames: 0,
        }
    }

    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    pub fn next(&mut self, speech: bool) -> VadEvent {
        let frame_ms = (FRAME_SAMPLES * 1000 / 16_000) as u128;
        let min_silence_frames = self.min_silence.as_millis().div_ceil(frame_ms).max(1) as usize;
        match (self.in_speech, speech) {
            (false, true) => {
                self.in_speech = true;
                self.silent_frames = 0;
                VadEvent::SpeechStart
            }
            (false, false) => VadEvent::Silence,
            (true, true) => {
                self.silent_frames = 0;
                VadEvent::Speech
            }
            (true, false) => {
                self.silent_frames += 1;
                if self.silent_frames >= min_silence_frames {
                    self.in_speech = false;
                    VadEvent::SpeechEnd
                } else {
                    VadEvent::Pause
                }
            }
        }
    }

    /// Out of speech: the next speech frame starts an utterance.
    pub fn forget_utterance(&mut self) {
        self.in_speech = false;
        self.silent_frames = 0;
    }

    pub fn set_min_silence(&mut self, min_silence: Duration) {
        self.min_silence = min_silence;
    }
}

pub struct EnergyVad {
    config: VadConfig,
    high_pass: HighPass,
    recent_db: VecDeque<f32>,
    frames_seen: usize,
    segmenter: Segmenter,
}

fn frame_db(frame: &[f32]) -> f32 {
    let energy = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
    10.0 * energy.max(1e-12).log10()
}

fn zero_crossing_rate(frame: &[f32]) -> f32 {
    let crossings = frame
        .windows(2)
        .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
        .count();
    crossings as f32 / frame.len().max(2) as f32
}

impl EnergyVad {
    pub fn new(config: VadConfig) -> Self {
        EnergyVad {
            config,
            high_pass: HighPass::default(),
            recent_db: VecDeque::with_capacity(FLOOR_WINDOW_FRAMES),
            frames_seen: 0,
            segmenter: Segmenter::new(config.min_silence),
        }
    }

    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    pub fn set_min_silence(&mut self, min_silence: Duration) {
        self.config.min_silence = min_silence;
        self.segmenter.set_min_silence(min_silence);
    }

    pub fn in_speech(&self) -> bool {
        self.segmenter.in_speech()
    }

    /// Classifies one frame of `FRAME_SAMPLES` samples (non-finite samples count as silence).
    pub fn process(&mut self, frame: &[f32]) -> VadEvent {
        let clean = self.high_pass.filter(frame);
        let db = frame_db(&clean);
        if self.recent_db.len() == FLOOR_WINDOW_FRAMES {
            self.recent_db.pop_front();
        }
        self.recent_db.push_back(db);
        self.frames_seen += 1;
        let mut floor = self.recent_db.iter().copied().fold(f32::INFINITY, f32::min);
        if self.frames_seen <= PRIOR_FRAMES {
            floor = floor.min(PRIOR_FLOOR_DB);
        }
        let peak = self
            .recent_db
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let loud = db > ABSOLUTE_MIN_DB
            && db > floor + self.config.margin_db()
            && db > peak - PEAK_RANGE_DB;
        // Starting needs voiced speech; continuing needs only energy (consonants hiss).
        let speech = loud
            && (self.segmenter.in_speech()
                || zero_crossing_rate(&clean) < MAX_VOICED_ZERO_CROSSINGS);
        self.segmenter.next(speech)
    }

    /// Forgets the utterance in progress (a flush or a discontinuity); keeps the noise floor.
    pub fn forget_utterance(&mut self) {
        self.segmenter.forget_utterance();
    }
}

/// The spread between loud and quiet 30 ms frames (90th minus 10th percentile, in dB). Speech
/// rises and falls with its syllables (20 dB and more); hum, hiss and fans stay within a few dB.
pub fn dynamic_range_db(audio: &[f32]) -> f32 {
    let mut high_pass = HighPass::default();
    let mut levels: Vec<f32> = audio
        .chunks_exact(FRAME_SAMPLES)
        .map(|f| frame_db(&high_pass.filter(f)))
        .collect();
    if levels.len() < 2 {
        return 0.0;
    }
    levels.sort_by(f32::total_cmp);
    let at = |q: f32| levels[((levels.len() - 1) as f32 * q) as usize];
    at(0.9) - at(0.1)
}

/// The stream's voice detector. The energy detector decides each frame as it comes; Silero
/// scores blocks of frames, so frames come back with their events a little later.
pub enum VoiceDetector {
    Energy(EnergyVad),
    // Boxed: it holds its model handle and its buffers; one per stream.
    Silero(Box<silero::SileroVad>),
}

/// A frame with what the detector made of it.
pub type Decided = (Vec<f32>, VadEvent);

impl VoiceDetector {
    /// Classifies one frame of `FRAME_SAMPLES`; returns the frames decided by now, in order.
    pub fn decide_frame(&mut self, frame: &[f32]) -> Result<Vec<Decided>, VadError> {
        match self {
            VoiceDetector::Energy(vad) => Ok(vec![(frame.to_vec(), vad.process(frame))]),
            VoiceDetector::Silero(vad) => vad.decide_frame(frame),
        }
    }

    /// Decides every frame still waiting (end of stream, a gap).
    pub fn decide_rest(&mut self) -> Result<Vec<Decided>, VadError> {
        match self {
            VoiceDetector::Energy(_) => Ok(Vec::new()),
            VoiceDetector::Silero(vad) => vad.decide_rest(),
        }
    }

    /// Forgets the utterance in progress and frames not yet decided.
    pub fn forget_utterance(&mut self) {
        match self {
            VoiceDetector::Energy(vad) => vad.forget_utterance(),
            VoiceDetector::Silero(vad) => vad.forget_utterance(),
        }
    }

    pub fn config(&self) -> &VadConfig {
        match self {
            VoiceDetector::Energy(vad) => vad.config(),
            VoiceDetector::Silero(vad) => vad.config(),
        }
    }

    pub fn set_min_silence(&mut self, min_silence: Duration) {
        match self {
            VoiceDetector::Energy(vad) => vad.set_min_silence(min_silence),
            VoiceDetector::Silero(vad) => vad.set_min_silence(min_silence),
        }
    }

    /// Frames pushed but not yet decided.
    pub fn undecided_samples(&self) -> usize {
        match self {
            VoiceDetector::Energy(_) => 0,
            VoiceDetector::Silero(vad) => vad.undecided_samples(),
        }
    }
}
