//! The sample clock every stream keeps: counts of 16 kHz samples and the times they stand for,
//! exact over months of audio.

use std::time::Duration;

/// The rate whisper.cpp works at.
pub const SAMPLE_RATE: u32 = 16_000;

/// Whole seconds apart, so a stream running for months cannot overflow the nanoseconds.
pub fn samples_to_duration(samples: u64) -> Duration {
    let rate = SAMPLE_RATE as u64;
    Duration::from_secs(samples / rate)
        + Duration::from_nanos(samples % rate * 1_000_000_000 / rate)
}

/// In 128 bits: in 64, a product past 2^64 (13.3 days of nanoseconds times the rate) wraps.
pub fn duration_to_samples(d: Duration) -> u64 {
    (d.as_nanos() * SAMPLE_RATE as u128 / 1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_counts_convert_exactly_after_months_of_audio() {
        let month = 30 * 24 * 3600;
        let samples = month * SAMPLE_RATE as u64 + SAMPLE_RATE as u64 / 4;
        assert_eq!(
            samples_to_duration(samples),
            Duration::from_secs(month) + Duration::from_millis(250)
        );
        assert_eq!(duration_to_samples(samples_to_duration(samples)), samples);
    }
}
