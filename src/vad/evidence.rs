//! The second look at an utterance before it costs an inference: the frame detector lets
//! through anything loud and voiced at its start, and this asks whether the whole of it
//! behaves like speech. Measured on the robustness corpus (tests/common/degrade.rs, 12 LJ
//! Speech clips in five noises at 0 to 20 dB, and 6 s pieces of each noise alone):
//! - speech rises and falls with its syllables: its loud frames are 10 dB and more above
//!   its quiet ones. Babble alone stays within 7 to 9 dB; speech in white noise at 5 dB
//!   only spans 7.6 to 9 dB too, but over a floor that wanders less than 1 dB (babble's
//!   wanders 6 dB and more), and 4 dB at 0 dB SNR: over a steady floor 3 dB is enough. An
//!   utterance with no noise-only frames in it (a live one, ended by a 400 ms pause, or one
//!   at a stream's start) measures its floor on the speech's own quiet frames: in white noise
//!   at 5 dB that floor wanders 2 to 2.5 dB over a range of 7.8 dB, in music 5 dB over 9.5 dB,
//!   where babble alone wanders 8.6 to 17.6 dB. So the range asked for grows with the
//!   spread, from 3 dB at 2 dB of spread to 10 dB at 9 dB and more;
//! - speech has vowels: runs of voiced frames. Impulsive machinery has none (0 frames);
//! - a voice's pitch moves: held for 180 ms and more (a steady period, or autocorrelations
//!   alike from frame to frame) it covers at most 63 % of the voiced frames of speech in music
//!   at 0 dB (52 % at 5 dB, under 10 % without music), and at least 72 % of music's in pieces
//!   of 2 s and more. So a held tone, a chord, a beep is not speech. (A second of music
//!   alone can still pass: a live utterance's first partial may decode it, once.)

use super::{
    autocorrelations, frame_db, pitch_of, HighPass, FRAME_SAMPLES, VOICED_PERIODICITY, VOWEL_FRAMES,
};

/// An utterance's loud frames (90th percentile) must be this far above its quiet ones (10th)
/// over a wandering floor...
const MIN_DYNAMIC_RANGE_DB: f32 = 10.0;
/// ... or this far, over a floor as steady as hiss or a fan...
const MIN_DYNAMIC_RANGE_STEADY_DB: f32 = 3.0;
/// ... whose quietest 30 % of frames lie within this many dB; in between, a dB more range
/// for each dB more spread.
const MAX_STEADY_SPREAD_DB: f32 = 2.0;
/// Pitch is held between two frames when the period moves less than this share...
const HELD_PERIOD_CHANGE: f32 = 0.003;
/// ... or their autocorrelations (at the pitch lags) correlate this well...
const HELD_SIMILARITY: f32 = 0.95;
/// ... for this many frames in a row (180 ms).
const MIN_HELD_FRAMES: usize = 6;
/// A held tone: this share of the voiced frames hold their pitch.
const MAX_HELD_SHARE: f32 = 0.68;

/// Why an utterance is not worth an inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSpeech {
    TooShort,
    /// As flat as steady noise or babble.
    Flat,
    /// No vowel in it: clicks, knocks, machinery.
    Unvoiced,
    /// A pitch held like a note: music, tones, beeps.
    HeldTone,
}

impl NotSpeech {
    pub fn describe(self) -> &'static str {
        match self {
            NotSpeech::TooShort => "too short",
            NotSpeech::Flat => "as flat as steady noise",
            NotSpeech::Unvoiced => "no voiced sound",
            NotSpeech::HeldTone => "a held tone",
        }
    }
}

/// What an utterance's audio shows of speech.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeechEvidence {
    /// 90th minus 10th percentile of the frames' levels, dB.
    pub dynamic_range_db: f32,
    /// How far the quietest 30 % of frames range above the quietest, dB.
    pub floor_spread_db: f32,
    /// Frames in runs of at least `VOWEL_FRAMES` voiced frames.
    pub vowel_frames: usize,
    /// Voiced frames whose pitch is held for `MIN_HELD_FRAMES` or more, over all voiced ones.
    pub held_share: f32,
}

/// One frame's level and pitch.
struct FrameTraits {
    db: f32,
    voiced: bool,
    period: f32,
    shape: Vec<f32>,
}

impl SpeechEvidence {
    /// Looks at `audio` (16 kHz mono) frame by frame.
    pub fn of(audio: &[f32]) -> Self {
        let frames = frame_traits(audio);
        let mut levels: Vec<f32> = frames.iter().map(|f| f.db).collect();
        levels.sort_by(f32::total_cmp);
        let at = |q: f32| levels[((levels.len().max(1) - 1) as f32 * q) as usize];
        let voiced = frames.iter().filter(|f| f.voiced).count();
        match levels.len() < 2 {
            true => SpeechEvidence {
                dynamic_range_db: 0.0,
                floor_spread_db: 0.0,
                vowel_frames: 0,
                held_share: 0.0,
            },
            false => SpeechEvidence {
                dynamic_range_db: at(0.9) - at(0.1),
                floor_spread_db: at(0.3) - at(0.0),
                vowel_frames: vowel_frames(&frames),
                held_share: held_frames(&frames) as f32 / voiced.max(1) as f32,
            },
        }
    }

    /// Whether this is worth an inference, and if not, why.
    pub fn verdict(&self) -> Result<(), NotSpeech> {
        let wander = (self.floor_spread_db - MAX_STEADY_SPREAD_DB).max(0.0);
        let min_range = (MIN_DYNAMIC_RANGE_STEADY_DB + wander).min(MIN_DYNAMIC_RANGE_DB);
        if self.dynamic_range_db < min_range {
            Err(NotSpeech::Flat)
        } else if self.vowel_frames < VOWEL_FRAMES {
            Err(NotSpeech::Unvoiced)
        } else if self.held_share > MAX_HELD_SHARE {
            Err(NotSpeech::HeldTone)
        } else {
            Ok(())
        }
    }
}

fn frame_traits(audio: &[f32]) -> Vec<FrameTraits> {
    let mut high_pass = HighPass::default();
    let mut previous: Vec<f32> = Vec::new();
    audio
        .chunks_exact(FRAME_SAMPLES)
        .map(|frame| {
            let clean = high_pass.filter(frame);
            // The pitch is read over this frame and the one before, as the detector reads it.
            let window: Vec<f32> = previous.iter().chain(&clean).copied().collect();
            let shape = autocorrelations(&window);
            let pitch = pitch_of(&shape);
            let traits = FrameTraits {
                db: frame_db(&clean),
                voiced: pitch.periodicity >= VOICED_PERIODICITY,
                period: pitch.period,
                shape,
            };
            previous = clean;
            traits
        })
        .collect()
}

/// Frames in runs of voiced frames long enough to be a vowel.
fn vowel_frames(frames: &[FrameTraits]) -> usize {
    runs(frames.iter().map(|f| f.voiced))
        .filter(|&run| run >= VOWEL_FRAMES)
        .sum()
}

/// Voiced frames in runs that hold their pitch for `MIN_HELD_FRAMES` or more.
fn held_frames(frames: &[FrameTraits]) -> usize {
    let held = frames.windows(2).map(|pair| {
        let [a, b] = pair else { return false };
        // A steady period is a clean note; alike autocorrelations, a chord whose strongest
        // peak flips between its notes.
        a.voiced
            && b.voiced
            && ((b.period - a.period).abs() < HELD_PERIOD_CHANGE * b.period
                || similarity(&a.shape, &b.shape) > HELD_SIMILARITY)
    });
    // A run of n held pairs is n + 1 frames.
    runs(held)
        .filter(|&pairs| pairs + 1 >= MIN_HELD_FRAMES)
        .map(|pairs| pairs + 1)
        .sum()
}

/// The lengths of the runs of `true`.
fn runs(flags: impl Iterator<Item = bool>) -> impl Iterator<Item = usize> {
    let mut run = 0;
    flags.chain(std::iter::once(false)).filter_map(move |flag| {
        if flag {
            run += 1;
            None
        } else {
            let ended = std::mem::take(&mut run);
            (ended > 0).then_some(ended)
        }
    })
}

/// The correlation of two equally long series (1: the same shape).
fn similarity(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let mean = |x: &[f32]| x[..n].iter().sum::<f32>() / n as f32;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    match aa > 0.0 && bb > 0.0 {
        true => ab / (aa * bb).sqrt(),
        false => 0.0,
    }
}
