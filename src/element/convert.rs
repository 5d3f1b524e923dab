//! Turns whatever raw audio the elements accept into what whisper.cpp takes (16 kHz mono f32),
//! with GStreamer's own `GstAudioConverter`. The Rust binding has no wrapper for the converter
//! itself, so this calls the C API through `gstreamer-audio-sys`.

use gst::glib::translate::{IntoGlibPtr, ToGlibPtr};
use gst_audio_sys as ffi;
use std::ptr::{self, NonNull};

/// The rate whisper.cpp works at.
const OUT_RATE: u32 = crate::clock::SAMPLE_RATE;

/// Audio the converter cannot take, or a conversion that failed; each names the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot read audio caps {0}")]
    Caps(String),
    #[error("cannot convert 0 Hz audio")]
    ZeroRate,
    #[error("cannot convert audio with {0} channels")]
    Channels(u32),
    #[error("cannot convert non-interleaved audio")]
    NotInterleaved,
    #[error("cannot convert audio in format {0}")]
    Format(String),
    #[error("GStreamer cannot convert {format} {rate} Hz {channels}-channel audio")]
    Unsupported {
        format: String,
        rate: u32,
        channels: u32,
    },
    #[error("{bytes} bytes of audio are not a whole number of {frame}-byte frames")]
    PartialFrame { bytes: usize, frame: usize },
    #[error("cannot allocate {0} output samples")]
    OutOfMemory(usize),
    #[error("GStreamer failed to convert {0} frames")]
    Failed(usize),
}

/// Most channels GStreamer's channel mixer takes (a `GstAudioInfo` describes 64, but a
/// converter for 64 crashes in `gst_audio_channel_mixer_is_passthrough`).
pub const MAX_CHANNELS: u32 = 63;

/// Reads raw audio caps like `AudioInfo::from_caps`, but also takes more than two channels
/// without a `channel-mask` (which GStreamer refuses) as unpositioned channels, as if the
/// mask were 0: [`Converter`] averages those.
pub fn info_from_caps(caps: &gst::CapsRef) -> Result<gst_audio::AudioInfo, ConvertError> {
    let unpositioned = |caps: &gst::CapsRef| {
        let s = caps.structure(0)?;
        if s.has_field("channel-mask") {
            return None;
        }
        let mut caps = caps.to_owned();
        caps.make_mut().set("channel-mask", gst::Bitmask::new(0));
        gst_audio::AudioInfo::from_caps(&caps).ok()
    };
    gst_audio::AudioInfo::from_caps(caps)
        .ok()
        .or_else(|| unpositioned(caps))
        .ok_or_else(|| ConvertError::Caps(caps.to_string()))
}

/// Converts interleaved raw audio of one fixed format to 16 kHz mono native-endian f32.
///
/// Channels are down-mixed before resampling (cheaper, and mono is all we keep). The resampler
/// is the converter's default: windowed sinc with a Blackman-Nuttall window at the default
/// quality (4), the same as `audioresample`'s default. It keeps history across calls, so
/// consecutive buffers join seamlessly; call [`Converter::reset`] after a discontinuity.
pub struct Converter {
    raw: NonNull<ffi::GstAudioConverter>,
    bpf: usize,
    /// Bytes of the input's sample type, for the alignment the C code assumes.
    sample_align: usize,
    /// Aligned copy of the input, used only when a buffer's bytes are misaligned.
    scratch: Vec<u64>,
}

// SAFETY: a GstAudioConverter is plain heap memory with no thread affinity or thread-local
// state; `Converter` owns it exclusively and only touches it through `&mut self` (or `&self`
// for read-only queries), so moving it to another thread is sound.
unsafe impl Send for Converter {}

impl Converter {
    /// For audio described by `info`; output is always 16 kHz mono F32 (native endian).
    pub fn new(info: &gst_audio::AudioInfo) -> Result<Converter, ConvertError> {
        let (rate, channels, bpf) = (info.rate(), info.channels(), info.bpf() as usize);
        if rate == 0 {
            return Err(ConvertError::ZeroRate);
        }
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(ConvertError::Channels(channels));
        }
        if info.layout() != gst_audio::AudioLayout::Interleaved {
            return Err(ConvertError::NotInterleaved);
        }
        let format = info.format();
        if matches!(
            format,
            gst_audio::AudioFormat::Unknown | gst_audio::AudioFormat::Encoded
        ) || bpf == 0
        {
            return Err(ConvertError::Format(format!("{format:?}")));
        }

        let out_info = gst_audio::AudioInfo::builder(gst_audio::AUDIO_FORMAT_F32, OUT_RATE, 1)
            .build()
            .map_err(|_| ConvertError::Format("F32 16 kHz mono".into()))?;

        // Positioned layouts (mono, stereo, 5.1 with a channel-mask, ...) get GStreamer's own
        // down-mix, which knows e.g. to favour the centre channel. Unpositioned channels (no or
        // zero channel-mask) have no such meaning, and the converter refuses them without an
        // explicit matrix, so give it one that averages them.
        let mut config = gst_audio::AudioConverterConfig::new();
        if info.is_unpositioned() && channels > 1 {
            config.set_mix_matrix(&[vec![1.0 / channels as f32; channels as usize]]);
        }

        // The converter only reads the infos (it copies them) but its signature wants mutable
        // pointers, so hand it copies.
        // SAFETY: to_glib_none points at the AudioInfo's own plain-data GstAudioInfo.
        let (mut in_raw, mut out_raw): (ffi::GstAudioInfo, ffi::GstAudioInfo) =
            unsafe { (*info.to_glib_none().0, *out_info.to_glib_none().0) };
        let config: gst::Structure = config.into();
        // SAFETY: valid infos (copied above) and an owned structure whose ownership we pass on.
        let raw = unsafe {
            ffi::gst_audio_converter_new(
                ffi::GST_AUDIO_CONVERTER_FLAG_NONE,
                &mut in_raw,
                &mut out_raw,
                config.into_glib_ptr(),
            )
        };
        let raw = NonNull::new(raw).ok_or_else(|| ConvertError::Unsupported {
            format: format!("{format:?}"),
            rate,
            channels,
        })?;

        Ok(Converter {
            raw,
            bpf,
            sample_align: (info.width() as usize / 8).next_power_of_two().min(8),
            scratch: Vec::new(),
        })
    }

    /// Converts one buffer's bytes (whole frames) into mono 16 kHz samples, appended to `out`.
    ///
    /// Output lags input by the resampler's history: see [`Converter::latency_frames`].
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<f32>) -> Result<(), ConvertError> {
        if input.is_empty() {
            return Ok(());
        }
        if !input.len().is_multiple_of(self.bpf) {
            return Err(ConvertError::PartialFrame {
                bytes: input.len(),
                frame: self.bpf,
            });
        }
        // The C code reads samples through typed pointers; don't hand it misaligned ones.
        let data = if !(input.as_ptr() as usize).is_multiple_of(self.sample_align) {
            self.scratch.clear();
            self.scratch.resize(input.len().div_ceil(8), 0);
            let aligned = self.scratch.as_mut_ptr().cast::<u8>();
            // SAFETY: scratch holds at least input.len() bytes and does not overlap input.
            unsafe { ptr::copy_nonoverlapping(input.as_ptr(), aligned, input.len()) };
            aligned.cast_const()
        } else {
            input.as_ptr()
        };
        self.run(data, input.len() / self.bpf, out)
    }

    /// Flushes what the resampler still holds (at end of stream) by feeding it
    /// [`Converter::latency_frames`] frames of silence, appending the output to `out`.
    pub fn drain(&mut self, out: &mut Vec<f32>) -> Result<(), ConvertError> {
        // A null input makes the converter process silence.
        self.run(ptr::null(), self.latency_frames(), out)
    }

    /// Forget resampler history (after a flush or discontinuity): the next input is treated
    /// like a stream's first. (GStreamer keeps the resampler's sub-sample phase, so output
    /// may sit up to one input frame off a new converter's: irrelevant for speech.)
    pub fn reset(&mut self) {
        // SAFETY: self.raw is a live converter.
        unsafe { ffi::gst_audio_converter_reset(self.raw.as_ptr()) }
    }

    /// Input frames the resampler holds back before their output appears (0 without
    /// resampling). Output sample 0 still lines up with input sample 0: the delay only shows
    /// as output arriving late, which [`Converter::drain`] makes up for at the end.
    pub fn latency_frames(&self) -> usize {
        // SAFETY: self.raw is a live converter.
        unsafe { ffi::gst_audio_converter_get_max_latency(self.raw.as_ptr()) }
    }

    /// Converts `frames` input frames at `input` (null for silence), appending to `out`.
    fn run(
        &mut self,
        input: *const u8,
        frames: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), ConvertError> {
        if frames == 0 {
            return Ok(());
        }
        // SAFETY: self.raw is a live converter.
        let out_frames =
            unsafe { ffi::gst_audio_converter_get_out_frames(self.raw.as_ptr(), frames) };
        out.try_reserve(out_frames)
            .map_err(|_| ConvertError::OutOfMemory(out_frames))?;
        let mut in_ptrs = [input.cast_mut().cast::<std::ffi::c_void>()];
        let mut out_ptrs = [out
            .spare_capacity_mut()
            .as_mut_ptr()
            .cast::<std::ffi::c_void>()];
        // SAFETY: the input holds `frames` whole frames (checked by the caller) or is null, and
        // is only read (no IN_WRITABLE flag); the output has room for `out_frames` mono f32
        // samples, exactly what get_out_frames said this call produces.
        let ok = unsafe {
            ffi::gst_audio_converter_samples(
                self.raw.as_ptr(),
                ffi::GST_AUDIO_CONVERTER_FLAG_NONE,
                if input.is_null() {
                    ptr::null_mut()
                } else {
                    in_ptrs.as_mut_ptr()
                },
                frames,
                out_ptrs.as_mut_ptr(),
                out_frames,
            )
        };
        if ok == 0 {
            return Err(ConvertError::Failed(frames));
        }
        // SAFETY: the converter initialised these `out_frames` samples.
        unsafe { out.set_len(out.len() + out_frames) };
        Ok(())
    }
}

impl Drop for Converter {
    fn drop(&mut self) {
        // SAFETY: we own the converter and nothing uses it after this.
        unsafe { ffi::gst_audio_converter_free(self.raw.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn info(format: gst_audio::AudioFormat, rate: u32, channels: u32) -> gst_audio::AudioInfo {
        gst::init().unwrap();
        gst_audio::AudioInfo::builder(format, rate, channels)
            .build()
            .unwrap()
    }

    /// `secs` of a sine at `freq` Hz and amplitude `amp`, one value per frame.
    fn sine(rate: u32, freq: f64, amp: f64, secs: f64) -> Vec<f64> {
        let n = (rate as f64 * secs) as usize;
        (0..n)
            .map(|i| amp * (2.0 * PI * freq * i as f64 / rate as f64).sin())
            .collect()
    }

    /// Interleaves each value into `channels` copies, encoded by `enc`.
    fn encode<const N: usize>(v: &[f64], channels: usize, enc: impl Fn(f64) -> [u8; N]) -> Vec<u8> {
        v.iter()
            .flat_map(|&x| std::iter::repeat_n(enc(x), channels).flatten())
            .collect()
    }

    fn s16le(x: f64) -> [u8; 2] {
        ((x * 32767.0).round() as i16).to_le_bytes()
    }

    fn rms(v: &[f32]) -> f64 {
        (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    fn zero_crossings(v: &[f32]) -> usize {
        v.windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count()
    }

    fn convert_all(c: &mut Converter, input: &[u8]) -> Vec<f32> {
        let mut out = Vec::new();
        c.convert(input, &mut out).unwrap();
        out
    }

    #[test]
    fn stereo_48k_s16le_downsamples_keeping_pitch_and_level() {
        let mut c = Converter::new(&info(gst_audio::AudioFormat::S16le, 48000, 2)).unwrap();
        let input = encode(&sine(48000, 440.0, 0.5, 1.0), 2, s16le);
        let mut out = convert_all(&mut c, &input);
        let latency = c.latency_frames();
        eprintln!("48 kHz -> 16 kHz latency: {latency} input frames");
        // Everything but the resampler's held-back tail comes out at once...
        assert!((out.len() as i64 - (48000 - latency as i64) / 3).abs() <= 2);
        // ...and the tail on draining.
        c.drain(&mut out).unwrap();
        assert!((out.len() as i64 - 16000).abs() <= 2, "{}", out.len());
        let second = &out[..16000];
        assert!((zero_crossings(second) as i64 - 880).abs() <= 5);
        let want = 0.5 / 2f64.sqrt();
        assert!(
            (rms(second) - want).abs() < 0.05 * want,
            "rms {}",
            rms(second)
        );
    }

    #[test]
    fn output_is_not_shifted_in_time() {
        // The resampler pre-fills its history, so output sample i is input time i / 16 kHz.
        let mut c = Converter::new(&info(gst_audio::AudioFormat::F32le, 48000, 1)).unwrap();
        let input = encode(&sine(48000, 440.0, 0.5, 0.5), 1, |x| {
            (x as f32).to_le_bytes()
        });
        let mut out = convert_all(&mut c, &input);
        c.drain(&mut out).unwrap();
        let ideal = sine(16000, 440.0, 0.5, 0.5);
        // Skip the start, where the filter sees the silence before the signal.
        let err = out[200..7800]
            .iter()
            .zip(&ideal[200..7800])
            .map(|(&a, &b)| (a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 0.01, "max error {err}");
    }

    #[test]
    fn mono_8k_f32be_upsamples() {
        let mut c = Converter::new(&info(gst_audio::AudioFormat::F32be, 8000, 1)).unwrap();
        let input = encode(&sine(8000, 440.0, 0.5, 1.0), 1, |x| {
            (x as f32).to_be_bytes()
        });
        let mut out = convert_all(&mut c, &input);
        c.drain(&mut out).unwrap();
        assert!((out.len() as i64 - 16000).abs() <= 2, "{}", out.len());
        assert!((zero_crossings(&out) as i64 - 880).abs() <= 5);
        let want = 0.5 / 2f64.sqrt();
        assert!((rms(&out) - want).abs() < 0.05 * want);
    }

    #[test]
    fn the_most_channels_the_mixer_takes_convert_and_more_are_refused() {
        let info_63 = info(gst_audio::AudioFormat::S16le, 16000, MAX_CHANNELS);
        let mut c = Converter::new(&info_63).unwrap();
        let out = convert_all(&mut c, &encode(&sine(16000, 440.0, 0.5, 0.5), 63, s16le));
        assert!((rms(&out) - 0.5 / 2f64.sqrt()).abs() < 0.05);
        let info_64 = info(gst_audio::AudioFormat::S16le, 16000, 64);
        let e = Converter::new(&info_64).err().unwrap();
        assert_eq!(e, ConvertError::Channels(64), "{e}");
    }

    #[test]
    fn six_unpositioned_channels_average() {
        let info = info(gst_audio::AudioFormat::F32le, 44100, 6);
        assert!(info.is_unpositioned());
        let mut c = Converter::new(&info).unwrap();
        // Channel 0 carries the sine, the other five silence: the average is a sixth of it.
        let input: Vec<u8> = sine(44100, 440.0, 0.6, 1.0)
            .iter()
            .flat_map(|&x| {
                let mut frame = [0f32; 6];
                frame[0] = x as f32;
                frame.into_iter().flat_map(f32::to_le_bytes)
            })
            .collect();
        let mut out = convert_all(&mut c, &input);
        c.drain(&mut out).unwrap();
        assert!((out.len() as i64 - 16000).abs() <= 2, "{}", out.len());
        let want = 0.1 / 2f64.sqrt();
        assert!((rms(&out[..16000]) - want).abs() < 0.05 * want);
    }

    #[test]
    fn six_channels_from_caps_with_zero_mask() {
        gst::init().unwrap();
        let caps = gst::Caps::builder("audio/x-raw")
            .field("format", "S16BE")
            .field("rate", 22050i32)
            .field("channels", 6i32)
            .field("layout", "interleaved")
            .field("channel-mask", gst::Bitmask::new(0))
            .build();
        let info = gst_audio::AudioInfo::from_caps(&caps).unwrap();
        let mut c = Converter::new(&info).unwrap();
        let input = encode(&sine(22050, 300.0, 0.5, 1.0), 6, |x| {
            ((x * 32767.0).round() as i16).to_be_bytes()
        });
        let mut out = convert_all(&mut c, &input);
        c.drain(&mut out).unwrap();
        let want = 0.5 / 2f64.sqrt();
        assert!((rms(&out[..16000]) - want).abs() < 0.05 * want);
    }

    #[test]
    fn caps_without_channel_mask() {
        gst::init().unwrap();
        let caps = |channels: i32| {
            gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("rate", 48000i32)
                .field("channels", channels)
                .field("layout", "interleaved")
                .build()
        };
        let six = info_from_caps(&caps(6)).unwrap();
        assert!(six.is_unpositioned() && six.channels() == 6);
        assert!(Converter::new(&six).is_ok());
        // Mono and stereo keep their usual positions.
        assert!(!info_from_caps(&caps(2)).unwrap().is_unpositioned());
        let bad = gst::Caps::builder("audio/x-raw")
            .field("rate", 0i32)
            .build();
        assert!(info_from_caps(&bad).is_err());
    }

    #[test]
    fn positioned_5_1_downmixes() {
        let mask = gst_audio::AudioChannelPosition::fallback_mask(6);
        gst::init().unwrap();
        let caps = gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("rate", 48000i32)
            .field("channels", 6i32)
            .field("layout", "interleaved")
            .field("channel-mask", gst::Bitmask::new(mask))
            .build();
        let info = gst_audio::AudioInfo::from_caps(&caps).unwrap();
        assert!(!info.is_unpositioned());
        let mut c = Converter::new(&info).unwrap();
        let input = encode(&sine(48000, 440.0, 0.5, 0.5), 6, |x| {
            (x as f32).to_le_bytes()
        });
        let out = convert_all(&mut c, &input);
        // Same signal on every channel: GStreamer's down-mix keeps it, at some level.
        assert!(rms(&out) > 0.1, "rms {}", rms(&out));
        assert!((zero_crossings(&out) as i64 - 440).abs() <= 5);
    }

    #[test]
    fn mono_16k_s16le_is_exact() {
        let mut c = Converter::new(&info(gst_audio::AudioFormat::S16le, 16000, 1)).unwrap();
        assert_eq!(c.latency_frames(), 0);
        let samples: Vec<i16> = vec![0, 1, -1, 12345, -12345, i16::MAX, i16::MIN, 256];
        let input: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let out = convert_all(&mut c, &input);
        let want: Vec<f32> = samples.iter().map(|&s| s as f32 / 32768.0).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn mono_16k_f32le_passes_through() {
        let mut c = Converter::new(&info(gst_audio::AudioFormat::F32le, 16000, 1)).unwrap();
        let samples = [0.0f32, 0.25, -1.0, 1.5, 1e-7];
        let input: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        // Misaligned input goes through the aligned copy.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&input);
        assert_eq!(convert_all(&mut c, &shifted[1..]), samples);
        assert_eq!(convert_all(&mut c, &input), samples);
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut c = Converter::new(&info(gst_audio::AudioFormat::S16le, 48000, 2)).unwrap();
        let mut out = vec![1.0];
        let err = c.convert(&[0u8; 6], &mut out).unwrap_err();
        assert_eq!(err, ConvertError::PartialFrame { bytes: 6, frame: 4 });
        assert!(err.to_string().contains("4-byte frames"), "{err}");
        assert_eq!(out, [1.0]);
        c.convert(&[], &mut out).unwrap();
        assert_eq!(out, [1.0]);
    }

    #[test]
    fn chunked_equals_whole() {
        let info = info(gst_audio::AudioFormat::S16le, 44100, 2);
        let input = encode(&sine(44100, 1000.0, 0.5, 0.5), 2, s16le);
        let mut c = Converter::new(&info).unwrap();
        let whole = convert_all(&mut c, &input);

        let mut c = Converter::new(&info).unwrap();
        let mut chunked = Vec::new();
        // Odd chunk sizes, down to a single frame.
        let mut rest = &input[..];
        for size in [1usize, 7, 100, 441, 3, 1000].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((size * 4).min(rest.len()));
            c.convert(now, &mut chunked).unwrap();
            rest = later;
        }
        assert!((chunked.len() as i64 - whole.len() as i64).abs() <= 1);
        let err = whole
            .iter()
            .zip(&chunked)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-4, "max difference {err}");
    }

    #[test]
    fn reset_forgets_history() {
        let info = info(gst_audio::AudioFormat::F32le, 48000, 1);
        let loud = encode(&sine(48000, 1000.0, 0.9, 0.1), 1, |x| {
            (x as f32).to_le_bytes()
        });
        let silence = vec![0u8; 4 * 4800];
        let mut c = Converter::new(&info).unwrap();
        c.convert(&loud, &mut Vec::new()).unwrap();
        // Without a reset, the held-back end of the tone comes out first...
        let tail = convert_all(&mut c, &silence);
        assert!(tail.iter().any(|x| x.abs() > 0.1));
        // ...with one, only silence.
        c.convert(&loud, &mut Vec::new()).unwrap();
        c.reset();
        let after = convert_all(&mut c, &silence);
        assert!(after.iter().all(|&x| x == 0.0));
        let want = (4800 - c.latency_frames() as i64) / 3;
        assert!(
            (after.len() as i64 - want).abs() <= 1,
            "{} vs {want}",
            after.len()
        );
    }
}
