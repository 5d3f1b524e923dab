//! The built-in voice detector: needs no model, costs almost nothing, and keeps silence and
//! steady noise away from whisper.cpp. It compares each 30 ms frame's energy with the noise
//! floor (the quietest frame of the last few seconds), by a margin that shrinks as the floor
//! steadies, and asks for a voice's pitch (periodic at 62 to 400 Hz, which hiss is not, at
//! any level) before an utterance may start. `evidence` then looks at a whole utterance
//! before it costs an inference.
//!
//! The optional Silero detector (`silero`) scores speech with a small neural network instead;
//! both feed the same `Segmenter`, behind one `VoiceDetector`.

pub mod evidence;
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
/// An utterance goes on while frames are this share of the starting margin over the floor
/// (hysteresis).
const CONTINUE_MARGIN_SHARE: f32 = 0.5;
/// A frame at least this periodic (`Pitch`) is voiced...
const VOICED_PERIODICITY: f32 = 0.5;
/// ... and this many voiced frames in a row (90 ms) are a vowel: an utterance starts on one.
/// A knock of machinery over mains hum can be voiced for a frame, never for three.
const VOWEL_FRAMES: usize = 3;
/// How far before its start frame an utterance's speech may have begun: the loud frames
/// before the vowel that started it (a consonant, the vowel's own first frames), at most
/// 300 ms. Padding is kept from there.
const MAX_ONSET_FRAMES: usize = 10;
pub const MAX_ONSET_SAMPLES: usize = MAX_ONSET_FRAMES * FRAME_SAMPLES;
/// The floor's spread is measured over the quietest this share of frames: in speech with
/// pauses, the pauses.
const QUIET_SHARE_PERCENT: usize = 15;
/// dB of margin per dB of floor spread.
const SPREAD_TO_MARGIN: f32 = 6.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// 0..1: how far above the noise floor a frame must be to count as speech (0.5 = 12 dB
    /// over a wandering floor, down to 3 dB over a steady one).
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
    /// How far above the floor speech is: `threshold` times 6 to 24 dB, the more the floor
    /// wanders (`spread`). Steady noise (hiss, fans) hardly wanders, so speech only a few dB
    /// above it still counts; in babble or a noisy room the margin is the full 24 dB.
    fn margin_db(&self, spread: f32) -> f32 {
        let full = (SPREAD_TO_MARGIN * spread).clamp(6.0, 24.0);
        full * self.threshold.clamp(0.0, 1.0)
    }
}

/// What the detector knows of the last few seconds' levels, in dB.
struct FloorLevel {
    floor: f32,
    /// How far the quietest `QUIET_SHARE_PERCENT` of frames range above the floor.
    spread: f32,
    peak: f32,
}

/// What one frame meant for the utterance in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    Silence,
    /// Silence that ends this many frames loud over the noise floor with no vowel in them
    /// (knocks, a burst of hiss): not speech, but the transcriber counts them as rejected.
    NoiseEnded(usize),
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
    /// A pause the transcriber holds open: the utterance ends only after this many quiet
    /// frames (`hold`), and until then the detector listens as it does inside speech.
    held_frames: Option<usize>,
}

impl Segmenter {
    pub fn new(min_silence: Duration) -> Self {
        Segmenter {
            min_silence,
            in_speech: false,
            silent_frames: 0,
            held_frames: None,
        }
    }

    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Right after a `SpeechEnd`: the pause goes on inside the utterance until it is
    /// `pause` long (counted from the last speech frame), so that a speaker going on after
    /// it continues the utterance as after any shorter pause: with the energy detector's
    /// lower margin and no vowel needed. A speaker's 0.6 s pause otherwise looks 0.8 s long
    /// to a fresh start, which waits for a vowel over the full margin.
    pub fn hold(&mut self, pause: Duration) {
        if !self.in_speech {
            self.in_speech = true;
            self.held_frames = Some(frames_in(pause).max(self.silent_frames + 1));
        }
    }

    pub fn next(&mut self, speech: bool) -> VadEvent {
        let min_silence_frames = self.held_frames.unwrap_or(frames_in(self.min_silence));
        match (self.in_speech, speech) {
            (false, true) => {
                self.in_speech = true;
                self.silent_frames = 0;
                VadEvent::SpeechStart
            }
            (false, false) => VadEvent::Silence,
            (true, true) => {
                self.silent_frames = 0;
                self.held_frames = None;
                VadEvent::Speech
            }
            (true, false) => {
                self.silent_frames += 1;
                if self.silent_frames >= min_silence_frames {
                    self.in_speech = false;
                    self.held_frames = None;
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
        self.held_frames = None;
    }

    pub fn set_min_silence(&mut self, min_silence: Duration) {
        self.min_silence = min_silence;
    }
}

/// Whole frames in `d`, at least one.
fn frames_in(d: Duration) -> usize {
    let frame_ms = (FRAME_SAMPLES * 1000 / 16_000) as u128;
    d.as_millis().div_ceil(frame_ms).max(1) as usize
}

pub struct EnergyVad {
    config: VadConfig,
    high_pass: HighPass,
    recent_db: VecDeque<f32>,
    frames_seen: usize,
    /// The previous frame, high-passed: the pitch analysis looks at two frames.
    last_frame: Vec<f32>,
    /// Loud voiced frames in a row, up to this one.
    voiced_run: usize,
    /// Loud frames in a row outside an utterance, up to this one.
    loud_run: usize,
    segmenter: Segmenter,
}

fn frame_db(frame: &[f32]) -> f32 {
    let energy = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
    10.0 * energy.max(1e-12).log10()
}

impl EnergyVad {
    pub fn new(config: VadConfig) -> Self {
        EnergyVad {
            config,
            high_pass: HighPass::default(),
            recent_db: VecDeque::with_capacity(FLOOR_WINDOW_FRAMES),
            frames_seen: 0,
            last_frame: Vec::new(),
            voiced_run: 0,
            loud_run: 0,
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

    /// At a `SpeechStart`: how many samples before the start frame the sound began.
    pub fn onset_samples(&self) -> usize {
        self.loud_run.saturating_sub(1).min(MAX_ONSET_FRAMES) * FRAME_SAMPLES
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
        let level = self.floor_level();
        // Starting needs a vowel; continuing needs only energy (consonants hiss), and less of
        // it: speech in noise dips to a few dB over the floor between stressed syllables.
        let in_speech = self.segmenter.in_speech();
        let margin = match in_speech {
            true => self.config.margin_db(level.spread) * CONTINUE_MARGIN_SHARE,
            false => self.config.margin_db(level.spread),
        };
        let loud =
            db > ABSOLUTE_MIN_DB && db > level.floor + margin && db > level.peak - PEAK_RANGE_DB;
        self.voiced_run = match loud && !in_speech && self.voiced(&clean) {
            true => self.voiced_run + 1,
            false => 0,
        };
        let speech = loud && (in_speech || self.voiced_run >= VOWEL_FRAMES);
        self.last_frame = clean;
        // A loud run outside an utterance that ends without starting one was noise.
        let outside_loud = loud && !in_speech;
        let ended_noise =
            (!outside_loud && !in_speech && self.loud_run > 0).then_some(self.loud_run);
        self.loud_run = match outside_loud {
            true => self.loud_run + 1,
            false => 0,
        };
        match (self.segmenter.next(speech), ended_noise) {
            (VadEvent::Silence, Some(run)) => VadEvent::NoiseEnded(run),
            (event, _) => event,
        }
    }

    /// Whether this frame, with the one before it, is periodic at a voice's pitch.
    fn voiced(&self, frame: &[f32]) -> bool {
        let mut window = Vec::with_capacity(2 * FRAME_SAMPLES);
        window.extend_from_slice(&self.last_frame);
        window.extend_from_slice(frame);
        pitch(&window).periodicity >= VOICED_PERIODICITY
    }

    /// The noise floor of the last few seconds, how much it wanders, and the loudest frame.
    fn floor_level(&self) -> FloorLevel {
        let mut sorted: Vec<f32> = self.recent_db.iter().copied().collect();
        sorted.sort_by(f32::total_cmp);
        let mut floor = sorted[0];
        if self.frames_seen <= PRIOR_FRAMES {
            floor = floor.min(PRIOR_FLOOR_DB);
        }
        let quiet = sorted[(sorted.len() - 1) * QUIET_SHARE_PERCENT / 100];
        FloorLevel {
            floor,
            spread: quiet - sorted[0],
            peak: sorted[sorted.len() - 1],
        }
    }

    /// How far the loudest frame of the last few seconds is over the noise floor, in dB.
    pub fn headroom_db(&self) -> f32 {
        let level = self.floor_level();
        level.peak - level.floor
    }

    /// Forgets the utterance in progress (a flush or a discontinuity); keeps the noise floor.
    pub fn forget_utterance(&mut self) {
        self.segmenter.forget_utterance();
    }
}

/// A stretch of audio's pitch: how periodic it is and at what period.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pitch {
    /// The highest normalized autocorrelation at a voice's pitch lags: voiced speech scores
    /// 0.6 and more (about 0.4 in white noise at 0 dB), hiss 0.1 to 0.2.
    pub periodicity: f32,
    /// Its lag in samples at 8 kHz, refined between lags.
    pub period: f32,
}

/// Pitch lags at 8 kHz: 2.5 to 16 ms (400 down to 62 Hz).
const MIN_PITCH_LAG: usize = 20;
const MAX_PITCH_LAG: usize = 128;

/// The pitch of a stretch of (high-passed) 16 kHz audio, analysed at 8 kHz: halves the work,
/// and a voice's pitch is far below 4 kHz.
pub fn pitch(audio: &[f32]) -> Pitch {
    pitch_of(&autocorrelations(audio))
}

/// The normalized autocorrelation of `audio` (16 kHz, taken to 8 kHz) at each lag from one
/// below `MIN_PITCH_LAG` to one above `MAX_PITCH_LAG`; empty if `audio` is too short.
fn autocorrelations(audio: &[f32]) -> Vec<f32> {
    let x: Vec<f32> = audio.chunks_exact(2).map(|p| 0.5 * (p[0] + p[1])).collect();
    if x.len() < 2 * MAX_PITCH_LAG {
        return Vec::new();
    }
    (MIN_PITCH_LAG - 1..=MAX_PITCH_LAG + 1)
        .map(|lag| normalized_autocorrelation(&x, lag))
        .collect()
}

/// The pitch `autocorrelations` show: their peak, placed between lags by a parabola through
/// it and its neighbours.
fn pitch_of(r: &[f32]) -> Pitch {
    let Some((best, &periodicity)) = r
        .get(1..r.len().saturating_sub(1))
        .unwrap_or_default()
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
    else {
        return Pitch::default();
    };
    let (left, right) = (r[best], r[best + 2]);
    let curve = left - 2.0 * periodicity + right;
    let offset = match curve < 0.0 {
        true => (0.5 * (left - right) / curve).clamp(-0.5, 0.5),
        false => 0.0,
    };
    Pitch {
        periodicity: periodicity.max(0.0),
        period: (MIN_PITCH_LAG + best) as f32 + offset,
    }
}

fn normalized_autocorrelation(x: &[f32], lag: usize) -> f32 {
    let (a, b) = (&x[..x.len() - lag], &x[lag..]);
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (p, q) in a.iter().zip(b) {
        ab += p * q;
        aa += p * p;
        bb += q * q;
    }
    match aa > 0.0 && bb > 0.0 {
        true => ab / (aa * bb).sqrt(),
        false => 0.0,
    }
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

    /// How far the loudest sound of the last few seconds is over the noise floor, in dB
    /// (the energy detector's; Silero does not measure it).
    pub fn headroom_db(&self) -> Option<f32> {
        match self {
            VoiceDetector::Energy(vad) => Some(vad.headroom_db()),
            VoiceDetector::Silero(_) => None,
        }
    }

    /// At a `SpeechStart`: how many samples before the start frame speech began.
    pub fn onset_samples(&self) -> usize {
        match self {
            VoiceDetector::Energy(vad) => vad.onset_samples(),
            VoiceDetector::Silero(_) => 0,
        }
    }

    /// Right after a `SpeechEnd`: hold the pause open inside the utterance until it is
    /// `pause` long (`Segmenter::hold`). Silero has decided the frames of its block after
    /// the end already; the hold starts with the next block.
    pub fn hold_pause(&mut self, pause: Duration) {
        match self {
            VoiceDetector::Energy(vad) => vad.segmenter.hold(pause),
            VoiceDetector::Silero(vad) => vad.hold_pause(pause),
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

#[cfg(test)]
mod tests {
    use super::*;

    const PAUSE: Duration = Duration::from_millis(400);
    const HOLD: Duration = Duration::from_millis(700);

    /// A segmenter that heard speech and then quiet frames until it ended the utterance.
    fn ended_after_speech() -> Segmenter {
        let mut s = Segmenter::new(PAUSE);
        assert_eq!(s.next(true), VadEvent::SpeechStart);
        while s.next(false) != VadEvent::SpeechEnd {}
        s
    }

    #[test]
    fn a_held_pause_ends_the_utterance_once_it_is_as_long_as_the_hold() {
        let mut s = ended_after_speech();
        s.hold(HOLD);
        assert!(s.in_speech());
        // 400 ms made the end (14 frames); 700 ms is 24 frames of pause in all.
        let events: Vec<VadEvent> = (0..10).map(|_| s.next(false)).collect();
        assert!(
            events[..9].iter().all(|e| *e == VadEvent::Pause),
            "{events:?}"
        );
        assert_eq!(events[9], VadEvent::SpeechEnd);
        assert_eq!(s.next(false), VadEvent::Silence);
    }

    #[test]
    fn speech_in_a_held_pause_goes_on_in_the_utterance_and_the_next_pause_is_not_held() {
        let mut s = ended_after_speech();
        s.hold(HOLD);
        assert_eq!(s.next(false), VadEvent::Pause);
        assert_eq!(s.next(true), VadEvent::Speech);
        let quiet = (1..)
            .find(|_| s.next(false) == VadEvent::SpeechEnd)
            .unwrap();
        assert_eq!(quiet, 14, "the pause after it ends at 400 ms again");
    }

    /// 30 ms frames of a deterministic signal: `voiced` a 150 Hz buzz with its harmonics,
    /// else hiss; at `amplitude`.
    fn frames(count: usize, voiced: bool, amplitude: f32, seed: &mut u32) -> Vec<Vec<f32>> {
        let mut sample = |i: usize| match voiced {
            true => {
                (1..6)
                    .map(|h| {
                        (2.0 * std::f32::consts::PI * 150.0 * h as f32 * i as f32 / 16e3).sin()
                    })
                    .sum::<f32>()
                    / 3.0
            }
            false => {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (*seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            }
        };
        let all: Vec<f32> = (0..count * FRAME_SAMPLES)
            .map(|i| amplitude * sample(i))
            .collect();
        all.chunks(FRAME_SAMPLES).map(<[f32]>::to_vec).collect()
    }

    /// The events of a consonant (hiss 30 dB over the room) heard 0.6 s after a second of
    /// voice, with the pause held open or not.
    fn consonant_after_a_pause(held: bool) -> Vec<VadEvent> {
        let mut seed = 7;
        let mut vad = EnergyVad::new(VadConfig::default());
        for f in frames(60, false, 1e-4, &mut seed) {
            vad.process(&f);
        }
        for f in frames(33, true, 0.1, &mut seed) {
            vad.process(&f);
        }
        let mut ended = false;
        for f in frames(20, false, 1e-4, &mut seed) {
            if vad.process(&f) == VadEvent::SpeechEnd && held {
                vad.segmenter.hold(HOLD);
            }
            ended |= !vad.in_speech();
        }
        assert!(ended || held, "the pause ended the utterance");
        let consonant = frames(3, false, 3e-3, &mut seed);
        consonant.iter().map(|f| vad.process(f)).collect()
    }

    #[test]
    fn a_consonant_inside_a_held_pause_goes_on_in_the_utterance_without_waiting_for_a_vowel() {
        assert_eq!(consonant_after_a_pause(true), [VadEvent::Speech; 3]);
        // A fresh start waits for a vowel: the speaker's 0.6 s pause would look 0.8 s long.
        assert!(!consonant_after_a_pause(false).contains(&VadEvent::SpeechStart));
    }
}
