//! The robustness corpus's generators (tests/common/degrade.rs) do what they say: the same
//! seed gives the same audio, speech is mixed at the SNR asked for, each noise has the
//! character it is named for, and the room rings on.

mod common;

use common::degrade::{self, Condition, Noise};

const RATE: usize = 16_000;

fn rms(a: &[f32]) -> f32 {
    (a.iter().map(|s| s * s).sum::<f32>() / a.len() as f32).sqrt()
}

/// A stand-in for speech: syllable-like bursts of a harmonic tone, with pauses.
fn syllables(seconds: usize) -> Vec<f32> {
    (0..seconds * RATE)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let on = (t * 4.0).fract() < 0.6;
            if on {
                0.3 * (2.0 * std::f32::consts::PI * 150.0 * t).sin()
            } else {
                0.0
            }
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_audio_and_another_seed_other_audio() {
    let voices = vec![syllables(3)];
    for noise in Noise::ALL {
        let a = noise.generate(RATE, 7, &voices);
        assert_eq!(a, noise.generate(RATE, 7, &voices), "{}", noise.name());
        assert_ne!(a, noise.generate(RATE, 8, &voices), "{}", noise.name());
        assert!(
            (rms(&a) - 1.0).abs() < 1e-3,
            "{}: RMS {}",
            noise.name(),
            rms(&a)
        );
    }
}

#[test]
fn speech_is_mixed_at_the_snr_asked_for() {
    let speech = syllables(4);
    let voices = vec![syllables(3)];
    for noise in Noise::ALL {
        for snr in [20.0f32, 10.0, 5.0, 0.0] {
            let n = noise.generate(speech.len(), 1, &voices);
            let mixed = degrade::mix_at_snr(&speech, &n, snr);
            let added: Vec<f32> = mixed.iter().zip(&speech).map(|(m, s)| m - s).collect();
            let measured = 10.0 * (degrade::active_power(&speech) / rms(&added).powi(2)).log10();
            assert!(
                (measured - snr).abs() < 0.05,
                "{} at {snr} dB measured {measured:.3} dB",
                noise.name()
            );
        }
    }
}

#[test]
fn machinery_comes_in_bursts_and_music_in_tones() {
    let frame_rms = |a: &[f32]| a.chunks(160).map(rms).collect::<Vec<f32>>();
    // Impulsive: its loudest 10 ms are far above its quietest.
    let machinery = frame_rms(&Noise::Machinery.generate(2 * RATE, 3, &[]));
    let (lo, hi) = machinery
        .iter()
        .fold((f32::MAX, 0.0f32), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    assert!(hi / lo > 5.0, "machinery {lo} .. {hi}");
    // White noise is steady.
    let white = frame_rms(&Noise::White.generate(2 * RATE, 3, &[]));
    let (lo, hi) = white
        .iter()
        .fold((f32::MAX, 0.0f32), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    assert!(hi / lo < 1.5, "white {lo} .. {hi}");
    // Tonal: few zero crossings against white noise's one in two samples.
    let crossings = |a: &[f32]| {
        a.windows(2)
            .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
            .count() as f32
            / a.len() as f32
    };
    let music = Noise::Music.generate(2 * RATE, 3, &[]);
    assert!(crossings(&music) < 0.15, "music {}", crossings(&music));
    assert!(crossings(&Noise::White.generate(2 * RATE, 3, &[])) > 0.4);
}

#[test]
fn a_room_rings_on_after_the_sound_stops_and_attenuation_is_in_db() {
    let mut click = vec![0.0f32; RATE];
    click[0] = 1.0;
    let heard = Condition::Reverberant(0.6).apply(&click, 5, &[]);
    assert!(heard.len() > click.len(), "the tail is kept");
    // 100-200 ms after the click the room still rings; 1 s after it, not any more.
    let ringing = rms(&heard[RATE / 10..RATE / 5]);
    assert!(ringing > 1e-3, "ringing {ringing}");
    assert!(heard[RATE..].iter().all(|s| *s == 0.0));
    let quiet = Condition::Distant.apply(&syllables(1), 0, &[]);
    let ratio = rms(&syllables(1)) / rms(&quiet);
    assert!((ratio - 10.0).abs() < 1e-3, "-20 dB is a tenth: {ratio}");
}
