//! The mel filter bank whisper.cpp reads from the model file. CTranslate2 models do not carry
//! it, so the importer computes it: Slaney mel scale with Slaney area normalisation, the same
//! bank OpenAI's Whisper ships (librosa's default, 16 kHz, n_fft 400).

use super::ggml::MEL_BINS;

const SAMPLE_RATE: f64 = 16_000.0;
const N_FFT: f64 = 400.0;

fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// `n_mels` rows of `MEL_BINS` weights, row-major.
pub fn filters(n_mels: usize) -> Vec<f32> {
    let fft_freqs: Vec<f64> = (0..MEL_BINS)
        .map(|i| i as f64 * SAMPLE_RATE / N_FFT)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0));
    let mel_points: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = Vec::with_capacity(n_mels * MEL_BINS);
    for m in 0..n_mels {
        let (left, centre, right) = (mel_points[m], mel_points[m + 1], mel_points[m + 2]);
        let norm = 2.0 / (right - left);
        for &f in &fft_freqs {
            let rising = (f - left) / (centre - left);
            let falling = (right - f) / (right - centre);
            out.push((rising.min(falling).max(0.0) * norm) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_bank_matches_reference_values() {
        // Worked out by hand: the first filter rises over 0..37.24 Hz and falls to 74.48 Hz
        // (mel points 45.245 / 81 apart); FFT bin 1 is 40 Hz, on the falling side:
        // (74.48 - 40) / 37.24 * 2 / 74.48 = 0.02486.
        let f = filters(80);
        assert_eq!(f.len(), 80 * MEL_BINS);
        assert!((f[1] - 0.024_862).abs() < 2e-5, "{}", f[1]);
        assert_eq!(f[0], 0.0);
        // Each filter is a triangle: a single peak, zero far away.
        let row = &f[40 * MEL_BINS..41 * MEL_BINS];
        assert_eq!(row[0], 0.0);
        assert_eq!(row[200], 0.0);
        assert!(row.iter().any(|&v| v > 0.0));
    }
}
