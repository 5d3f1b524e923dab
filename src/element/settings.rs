//! The properties both elements expose, with their defaults, ranges and mutability.

use crate::model::cache::{ContextOptions, Device, IdleTimeout};
use crate::transcriber::{default_threads, DecodeOptions, StreamOptions};
use crate::vad::VadConfig;
use gst::glib;
use gst::prelude::*;
use std::time::Duration;

pub const DEFAULT_MODEL: &str = "tiny.en";
pub const DEFAULT_DEVICE: &str = "cpu";
pub const DEFAULT_LANGUAGE: &str = "auto";
/// -1: use the process default (`WHISPERSTT_MODEL_IDLE_TIMEOUT`, else 30 s).
pub const IDLE_TIMEOUT_PROCESS_DEFAULT: i32 = -1;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub model: String,
    pub device: String,
    pub flash_attn: bool,
    pub model_idle_timeout: i32,
    pub language: String,
    pub translate: bool,
    pub threads: u32,
    pub beam_size: u32,
    pub word_timestamps: bool,
    pub latency_ms: u32,
    pub lateness_ms: u32,
    pub vad: bool,
    pub vad_threshold: f64,
    pub vad_min_silence_ms: u32,
    pub vad_padding_ms: u32,
    pub max_utterance_ms: u32,
    pub partial_interval_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: DEFAULT_MODEL.into(),
            device: DEFAULT_DEVICE.into(),
            flash_attn: false,
            model_idle_timeout: IDLE_TIMEOUT_PROCESS_DEFAULT,
            language: DEFAULT_LANGUAGE.into(),
            translate: false,
            threads: default_threads(),
            beam_size: 0,
            word_timestamps: false,
            latency_ms: 3000,
            lateness_ms: 0,
            vad: true,
            vad_threshold: 0.5,
            vad_min_silence_ms: 400,
            vad_padding_ms: 300,
            max_utterance_ms: 30_000,
            partial_interval_ms: 1000,
        }
    }
}

impl Settings {
    pub fn properties() -> Vec<glib::ParamSpec> {
        // Everything here is read when the element goes NULL -> READY (model) or
        // READY -> PAUSED (decoding), so changes apply from the next start.
        let ready = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_READY;
        let d = Settings::default();
        vec![
            glib::ParamSpecString::builder("model")
                .nick("Model")
                .blurb(
                    "Whisper model: a whisper.cpp ggml file, a faster-whisper (CTranslate2) model \
                     directory (imported once), or a name such as tiny.en looked up in the models \
                     directory ($WHISPERSTT_MODEL_DIR, else ~/.local/share/whisperstt/models). \
                     Shared by every element in the process that uses the same file, device and flash-attn",
                )
                .default_value(Some(DEFAULT_MODEL))
                .flags(ready)
                .build(),
            glib::ParamSpecString::builder("device")
                .nick("Device")
                .blurb("Where inference runs: cpu, or gpu:N in builds with a GPU feature")
                .default_value(Some(DEFAULT_DEVICE))
                .flags(ready)
                .build(),
            glib::ParamSpecBoolean::builder("flash-attn")
                .nick("Flash attention")
                .blurb("Load the model with flash attention (slower on CPU; a separate cached model)")
                .default_value(d.flash_attn)
                .flags(ready)
                .build(),
            glib::ParamSpecInt::builder("model-idle-timeout")
                .nick("Model idle time-out")
                .blurb(
                    "Seconds an unused model stays loaded after the last element using it stops: \
                     -1 = the process default ($WHISPERSTT_MODEL_IDLE_TIMEOUT, else 30), \
                     0 = release at once, 2147483647 = never",
                )
                .minimum(-1)
                .maximum(i32::MAX)
                .default_value(IDLE_TIMEOUT_PROCESS_DEFAULT)
                .flags(ready)
                .build(),
            glib::ParamSpecString::builder("language")
                .nick("Language")
                .blurb("Spoken language as a Whisper code (en, de, ...), or auto to detect it; English-only models always use en")
                .default_value(Some(DEFAULT_LANGUAGE))
                .flags(ready)
                .build(),
            glib::ParamSpecBoolean::builder("translate")
                .nick("Translate")
                .blurb("Translate the speech into English (multilingual models only)")
                .default_value(d.translate)
                .flags(ready)
                .build(),
            glib::ParamSpecUInt::builder("threads")
                .nick("Threads")
                .blurb("Inference threads for this stream (default: the machine's cores, at most 8)")
                .minimum(1)
                .maximum(64)
                .default_value(d.threads)
                .flags(ready)
                .build(),
            glib::ParamSpecUInt::builder("beam-size")
                .nick("Beam size")
                .blurb("Beam search width; 0 or 1 decodes greedily (fastest)")
                .minimum(0)
                .maximum(16)
                .default_value(d.beam_size)
                .flags(ready)
                .build(),
            glib::ParamSpecBoolean::builder("word-timestamps")
                .nick("Word timestamps")
                .blurb("Add per-word timing and probability to transcript messages")
                .default_value(d.word_timestamps)
                .flags(ready)
                .build(),
            glib::ParamSpecUInt::builder("latency")
                .nick("Latency")
                .blurb("Live input: the longest a final may come after its utterance ends, in ms; added to the pipeline latency")
                .minimum(500)
                .maximum(30_000)
                .default_value(d.latency_ms)
                .flags(ready)
                .build(),
            glib::ParamSpecUInt::builder("lateness")
                .nick("Lateness")
                .blurb("Live input: extra delay in ms tolerated before a whisperstt-late warning")
                .minimum(0)
                .maximum(60_000)
                .default_value(d.lateness_ms)
                .flags(ready)
                .build(),
            glib::ParamSpecBoolean::builder("vad")
                .nick("Voice detection")
                .blurb("Cut the audio into utterances with the built-in voice detector, so silence and steady noise cost no inference; off: fixed 30 s windows")
                .default_value(d.vad)
                .flags(ready)
                .build(),
            glib::ParamSpecDouble::builder("vad-threshold")
                .nick("Voice detection threshold")
                .blurb("0..1: how far above the noise floor speech must be (0.5 = 12 dB); higher ignores more")
                .minimum(0.0)
                .maximum(1.0)
                .default_value(d.vad_threshold)
                .flags(ready)
                .build(),
            glib::ParamSpecUInt::builder("vad-min-silence")
                .nick("Minimum silence")
                .blurb("Silence in ms that ends an utterance")
                .minimum(100)
                .maximum(10_000)
                .default_value(d.vad_min_silence_ms)
                .flags(ready)
                .build(),
            glib::ParamSpecUInt::builder("vad-padding")
                .nick("Speech padding")
                .blurb("Audio in ms kept before and after the detected speech")
                .minimum(0)
                .maximum(2000)
                .default_value(d.vad_padding_ms)
                .flags(ready)
                .build(),
            glib::ParamSpecUInt::builder("max-utterance")
                .nick("Maximum utterance")
                .blurb("Longest utterance in ms; longer speech is cut there into separate finals")
                .minimum(1000)
                .maximum(30_000)
                .default_value(d.max_utterance_ms)
                .flags(ready)
                .build(),
            glib::ParamSpecUInt::builder("partial-interval")
                .nick("Partial interval")
                .blurb("Live input: decode the utterance in progress after this many ms of new audio (partial results)")
                .minimum(200)
                .maximum(10_000)
                .default_value(d.partial_interval_ms)
                .flags(ready)
                .build(),
        ]
    }

    pub fn set(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) {
        let text = || value.get::<Option<String>>().unwrap().unwrap_or_default();
        match pspec.name() {
            "model" => self.model = text(),
            "device" => self.device = text(),
            "flash-attn" => self.flash_attn = value.get().unwrap(),
            "model-idle-timeout" => self.model_idle_timeout = value.get().unwrap(),
            "language" => self.language = text(),
            "translate" => self.translate = value.get().unwrap(),
            "threads" => self.threads = value.get().unwrap(),
            "beam-size" => self.beam_size = value.get().unwrap(),
            "word-timestamps" => self.word_timestamps = value.get().unwrap(),
            "latency" => self.latency_ms = value.get().unwrap(),
            "lateness" => self.lateness_ms = value.get().unwrap(),
            "vad" => self.vad = value.get().unwrap(),
            "vad-threshold" => self.vad_threshold = value.get().unwrap(),
            "vad-min-silence" => self.vad_min_silence_ms = value.get().unwrap(),
            "vad-padding" => self.vad_padding_ms = value.get().unwrap(),
            "max-utterance" => self.max_utterance_ms = value.get().unwrap(),
            "partial-interval" => self.partial_interval_ms = value.get().unwrap(),
            other => unreachable!("unknown property {other}"),
        }
    }

    pub fn get(&self, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "model" => self.model.to_value(),
            "device" => self.device.to_value(),
            "flash-attn" => self.flash_attn.to_value(),
            "model-idle-timeout" => self.model_idle_timeout.to_value(),
            "language" => self.language.to_value(),
            "translate" => self.translate.to_value(),
            "threads" => self.threads.to_value(),
            "beam-size" => self.beam_size.to_value(),
            "word-timestamps" => self.word_timestamps.to_value(),
            "latency" => self.latency_ms.to_value(),
            "lateness" => self.lateness_ms.to_value(),
            "vad" => self.vad.to_value(),
            "vad-threshold" => self.vad_threshold.to_value(),
            "vad-min-silence" => self.vad_min_silence_ms.to_value(),
            "vad-padding" => self.vad_padding_ms.to_value(),
            "max-utterance" => self.max_utterance_ms.to_value(),
            "partial-interval" => self.partial_interval_ms.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    pub fn device(&self) -> Result<Device, crate::model::ModelError> {
        self.device.parse()
    }

    pub fn context_options(&self) -> ContextOptions {
        ContextOptions {
            flash_attn: self.flash_attn,
        }
    }

    /// `None`: the cache's process default.
    pub fn idle_timeout(&self) -> Option<IdleTimeout> {
        match self.model_idle_timeout {
            IDLE_TIMEOUT_PROCESS_DEFAULT => None,
            i32::MAX => Some(IdleTimeout::Never),
            s => Some(IdleTimeout::After(Duration::from_secs(s.max(0) as u64))),
        }
    }

    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            language: self.language.trim().to_lowercase(),
            translate: self.translate,
            threads: self.threads,
            beam_size: self.beam_size,
            word_timestamps: self.word_timestamps,
        }
    }

    /// Whether results are live is learnt from upstream when caps arrive.
    pub fn stream_options(&self) -> StreamOptions {
        let ms = |v: u32| Duration::from_millis(v as u64);
        StreamOptions {
            live: false,
            vad: self.vad.then(|| VadConfig {
                threshold: self.vad_threshold as f32,
                min_silence: ms(self.vad_min_silence_ms),
                padding: ms(self.vad_padding_ms),
            }),
            partial_interval: ms(self.partial_interval_ms),
            max_utterance: ms(self.max_utterance_ms),
        }
    }

    pub fn latency(&self) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(self.latency_ms as u64)
    }
}
