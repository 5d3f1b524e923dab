//! The robustness corpus: clean speech made into what real microphones hear, deterministically
//! (every generator is seeded), so a test or a benchmark run is the same audio every time.
//!
//! - noise of five kinds (`Noise`): white, brown (rumble), babble made from other speakers,
//!   impulsive machinery (a jackhammer's bursts over an engine's hum), and music-like tones;
//! - mixed at a given signal-to-noise ratio, measured over the speech's active frames;
//! - attenuated (a distant or quiet talker);
//! - convolved with a synthetic room response (a direct path, early reflections and a
//!   velvet-noise tail decaying at a given RT60).
#![allow(dead_code)]

use std::f32::consts::PI;

const RATE: usize = 16_000;
const FRAME: usize = 480;

/// A small seeded generator (xorshift64*): the same seed, the same audio.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }
}

/// The kinds of noise the corpus is mixed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    White,
    /// Integrated white noise: rumble, wind, traffic far off.
    Brown,
    /// Several other speakers at once.
    Babble,
    /// Bursts of broadband noise ten times a second over a low hum, like a jackhammer.
    Machinery,
    /// Chords of harmonic tones that change twice a second.
    Music,
}

impl Noise {
    pub const ALL: [Noise; 5] = [
        Noise::White,
        Noise::Brown,
        Noise::Babble,
        Noise::Machinery,
        Noise::Music,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Noise::White => "white",
            Noise::Brown => "brown",
            Noise::Babble => "babble",
            Noise::Machinery => "machinery",
            Noise::Music => "music",
        }
    }

    /// `len` samples of this noise at unit RMS. Babble is made from `voices` (other speakers'
    /// recordings; at least one), each looped from its own offset.
    pub fn generate(self, len: usize, seed: u64, voices: &[Vec<f32>]) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let raw = match self {
            Noise::White => (0..len).map(|_| rng.signed()).collect(),
            Noise::Brown => brown(len, &mut rng),
            Noise::Babble => babble(len, &mut rng, voices),
            Noise::Machinery => machinery(len, &mut rng),
            Noise::Music => music(len, &mut rng),
        };
        scale_to_rms(raw, 1.0)
    }
}

fn brown(len: usize, rng: &mut Rng) -> Vec<f32> {
    let mut level = 0.0f32;
    (0..len)
        .map(|_| {
            level = (level + rng.signed() * 0.02) * 0.998;
            level
        })
        .collect()
}

fn babble(len: usize, rng: &mut Rng, voices: &[Vec<f32>]) -> Vec<f32> {
    assert!(
        !voices.is_empty(),
        "babble needs other speakers' recordings"
    );
    let mut out = vec![0.0f32; len];
    // Six talkers: each voice more than once if there are fewer, from different places.
    for talker in 0..6 {
        let voice = &voices[talker % voices.len()];
        let voice = scale_to_rms(voice.clone(), 1.0);
        let start = (rng.unit() * voice.len() as f32) as usize;
        for (i, o) in out.iter_mut().enumerate() {
            *o += voice[(start + i) % voice.len()];
        }
    }
    out
}

fn machinery(len: usize, rng: &mut Rng) -> Vec<f32> {
    let burst_every = RATE / 10;
    let mut gain = 0.0f32;
    (0..len)
        .map(|i| {
            let phase = i % burst_every;
            if phase == 0 {
                gain = 0.5 + rng.unit();
            }
            // A sharp attack decaying over about 30 ms, then quiet until the next blow.
            let envelope = gain * (-(phase as f32) / (0.03 * RATE as f32)).exp();
            let t = i as f32 / RATE as f32;
            let hum = 0.15 * (2.0 * PI * 60.0 * t).sin() + 0.08 * (2.0 * PI * 120.0 * t).sin();
            envelope * rng.signed() + hum
        })
        .collect()
}

fn music(len: usize, rng: &mut Rng) -> Vec<f32> {
    let chord_len = RATE / 2;
    let mut notes = [0.0f32; 3];
    (0..len)
        .map(|i| {
            if i % chord_len == 0 {
                // Three notes of a scale between A2 and A5.
                for n in &mut notes {
                    let semitone = (rng.unit() * 36.0) as i32;
                    *n = 110.0 * 2f32.powf(semitone as f32 / 12.0);
                }
            }
            let t = i as f32 / RATE as f32;
            let within = (i % chord_len) as f32 / chord_len as f32;
            let envelope = (1.0 - within).powi(2) * 0.8 + 0.2;
            let tone = |f: f32| {
                (1..=4)
                    .map(|h| (2.0 * PI * f * h as f32 * t).sin() / h as f32)
                    .sum::<f32>()
            };
            envelope * notes.iter().map(|&f| tone(f)).sum::<f32>()
        })
        .collect()
}

/// `audio` from its first sound (a 30 ms frame within 30 dB of the loudest): speech that
/// starts with the stream, as from a push-to-talk button.
pub fn starting_on_speech(audio: &[f32]) -> &[f32] {
    let power = |f: &[f32]| rms(f).powi(2);
    let peak = audio.chunks(FRAME).map(power).fold(0.0, f32::max);
    let first = audio.chunks(FRAME).position(|f| power(f) > peak / 1000.0);
    &audio[first.unwrap_or(0) * FRAME..]
}

fn rms(audio: &[f32]) -> f32 {
    (audio.iter().map(|s| s * s).sum::<f32>() / audio.len().max(1) as f32).sqrt()
}

fn scale_to_rms(audio: Vec<f32>, target: f32) -> Vec<f32> {
    let gain = target / rms(&audio).max(1e-9);
    audio.into_iter().map(|s| s * gain).collect()
}

/// The speech's power over its active 30 ms frames: those within 30 dB of the loudest.
pub fn active_power(speech: &[f32]) -> f32 {
    let powers: Vec<f32> = speech
        .chunks(FRAME)
        .map(|f| f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32)
        .collect();
    let loudest = powers.iter().copied().fold(0.0, f32::max);
    let active: Vec<f32> = powers
        .into_iter()
        .filter(|&p| p >= loudest * 1e-3)
        .collect();
    active.iter().sum::<f32>() / active.len().max(1) as f32
}

/// `speech` with `noise` (as long as it, at any level) added so that the speech's active
/// power is `snr_db` above the noise's.
pub fn mix_at_snr(speech: &[f32], noise: &[f32], snr_db: f32) -> Vec<f32> {
    assert!(
        noise.len() >= speech.len(),
        "the noise is shorter than the speech"
    );
    let noise_power = rms(&noise[..speech.len()]).powi(2);
    let wanted = active_power(speech) / 10f32.powf(snr_db / 10.0);
    let gain = (wanted / noise_power.max(1e-12)).sqrt();
    speech
        .iter()
        .zip(noise)
        .map(|(s, n)| s + gain * n)
        .collect()
}

/// `audio` made `db` quieter.
pub fn attenuate(audio: &[f32], db: f32) -> Vec<f32> {
    let gain = 10f32.powf(-db / 20.0);
    audio.iter().map(|s| s * gain).collect()
}

/// A synthetic room response: the direct path, six early reflections in the first 30 ms, and
/// a velvet-noise tail (sparse random +/- taps, 2000 a second) decaying by 60 dB in `rt60`
/// seconds. Taps as (delay in samples, gain).
pub fn room_response(rt60: f32, seed: u64) -> Vec<(usize, f32)> {
    let mut rng = Rng::new(seed);
    let decay = |delay: usize| 10f32.powf(-3.0 * delay as f32 / (rt60 * RATE as f32));
    let mut taps = vec![(0, 1.0)];
    for _ in 0..6 {
        let delay = 80 + (rng.unit() * 400.0) as usize;
        taps.push((delay, 0.6 * decay(delay) * rng.signed().signum()));
    }
    let spacing = RATE / 2000;
    let length = (rt60 * RATE as f32) as usize;
    for start in (480..length).step_by(spacing) {
        let delay = start + (rng.unit() * spacing as f32) as usize;
        taps.push((delay, 0.5 * decay(delay) * rng.signed().signum()));
    }
    taps
}

/// `audio` as heard through `taps` (the tail it rings on with is kept), at the same peak
/// level as `audio`.
pub fn reverberate(audio: &[f32], taps: &[(usize, f32)]) -> Vec<f32> {
    let tail = taps.iter().map(|t| t.0).max().unwrap_or(0);
    let mut out = vec![0.0f32; audio.len() + tail];
    for &(delay, gain) in taps {
        for (o, s) in out[delay..delay + audio.len()].iter_mut().zip(audio) {
            *o += gain * s;
        }
    }
    let peak = |a: &[f32]| a.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let gain = peak(audio) / peak(&out).max(1e-9);
    out.into_iter().map(|s| s * gain).collect()
}

/// One way of degrading speech, as the benchmark and the tests name it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    Clean,
    Noisy(Noise, f32),
    /// 20 dB quieter.
    Distant,
    /// Through a room with this RT60, in seconds.
    Reverberant(f32),
}

impl Condition {
    /// Every condition the issue names: each noise at 20, 10, 5 and 0 dB, quiet, reverberant.
    pub fn all() -> Vec<Condition> {
        let mut all = vec![Condition::Clean];
        for noise in Noise::ALL {
            for snr in [20.0, 10.0, 5.0, 0.0] {
                all.push(Condition::Noisy(noise, snr));
            }
        }
        all.extend([Condition::Distant, Condition::Reverberant(0.6)]);
        all
    }

    pub fn name(&self) -> String {
        match self {
            Condition::Clean => "clean".into(),
            Condition::Noisy(noise, snr) => format!("{} {snr:.0} dB", noise.name()),
            Condition::Distant => "-20 dB".into(),
            Condition::Reverberant(rt60) => format!("room RT60 {rt60} s"),
        }
    }

    /// `speech` degraded this way; `seed` picks the noise, `voices` make babble.
    pub fn apply(&self, speech: &[f32], seed: u64, voices: &[Vec<f32>]) -> Vec<f32> {
        match *self {
            Condition::Clean => speech.to_vec(),
            Condition::Noisy(noise, snr) => {
                let noise = noise.generate(speech.len(), seed, voices);
                mix_at_snr(speech, &noise, snr)
            }
            Condition::Distant => attenuate(speech, 20.0),
            Condition::Reverberant(rt60) => reverberate(speech, &room_response(rt60, seed)),
        }
    }
}

/// Noise of `kind` alone, at a level a microphone might hear it (RMS 0.05, -26 dBFS).
pub fn pure_noise(kind: Noise, seconds: usize, seed: u64, voices: &[Vec<f32>]) -> Vec<f32> {
    kind.generate(seconds * RATE, seed, voices)
        .into_iter()
        .map(|s| s * 0.05)
        .collect()
}

/// `len` samples of a recording's own background: white noise at the level of its quietest
/// 30 ms (digital silence aside), so that a pause put into the recording sounds like the
/// speaker pausing, not like a dropout (digital silence in mid-recording sends Whisper into
/// loops it never meets live). A louder level (its quietest tenth) reached into speech tails
/// and kept the detector in speech through the pause.
pub fn room_tone(audio: &[f32], len: usize, seed: u64) -> Vec<f32> {
    white_noise_at(quietest_rms(audio), len, seed)
}

/// The RMS of `audio`'s quietest 30 ms frame that is not digital silence (0 if none is).
fn quietest_rms(audio: &[f32]) -> f32 {
    let quietest = audio
        .chunks_exact(FRAME)
        .map(rms)
        .filter(|&level| level > 1e-5)
        .fold(f32::INFINITY, f32::min);
    if quietest.is_finite() {
        quietest
    } else {
        0.0
    }
}

/// `len` samples of seeded white noise with RMS `level`.
fn white_noise_at(level: f32, len: usize, seed: u64) -> Vec<f32> {
    // Uniform noise in [-1, 1) has an RMS of 1/sqrt(3).
    let scale = level * 3f32.sqrt();
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.signed() * scale).collect()
}

/// The recording with `pause` samples of its own room tone put in at each of `cuts` (sample
/// positions in rising order).
pub fn insert_pauses(audio: &[f32], cuts: &[usize], pause: usize, seed: u64) -> Vec<f32> {
    let level = quietest_rms(audio);
    let mut out = Vec::with_capacity(audio.len() + cuts.len() * pause);
    let mut from = 0;
    for (i, &at) in cuts.iter().enumerate() {
        out.extend_from_slice(&audio[from..at.min(audio.len())]);
        out.extend(white_noise_at(level, pause, seed + i as u64));
        from = at.min(audio.len());
    }
    out.extend_from_slice(&audio[from..]);
    out
}
