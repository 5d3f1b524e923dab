//! The properties both elements expose, with their defaults, ranges and mutability.

use crate::model::{ContextOptions, Device, IdleTimeout, ModelError};
use crate::subtitles::{SubtitleFormat, UnknownSubtitleFormat};
use crate::transcriber::{
    language_for_bcp47, whisper_language, DecodeOptions, StreamOptions, MAX_BEAM_SIZE,
};
use crate::vad::VadConfig;
use gst::glib;
use gst::prelude::*;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_MODEL: &str = "tiny.en";
/// -1: use the process default (`WHISPERSTT_MODEL_IDLE_TIMEOUT`, else 30 s).
pub const IDLE_TIMEOUT_PROCESS_DEFAULT: i32 = -1;

/// A property value that cannot work; the property keeps its old value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error("language '{0}' is not one Whisper knows")]
    UnknownLanguage(String),
    #[error("language code '{0}' has no Whisper language")]
    UnknownLanguageCode(String),
    #[error(transparent)]
    Device(#[from] ModelError),
    #[error(transparent)]
    SubtitleFormat(#[from] UnknownSubtitleFormat),
    #[error("it changes only in the NULL or READY state")]
    NotWhilePlaying,
}

/// What a worker starts with, taken from the properties once when the element starts:
/// everything needed to acquire its models and build its transcriber.
#[derive(Debug, Clone, PartialEq)]
pub struct StartConfig {
    /// The `model` property as written, for messages.
    pub model: String,
    pub device: Device,
    pub context: ContextOptions,
    /// `None`: the cache's process default.
    pub idle_timeout: Option<IdleTimeout>,
    /// A Silero model to detect voice with, when voice detection is on.
    pub vad_model: Option<String>,
    pub decode: DecodeOptions,
    pub stream: StreamOptions,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub model: String,
    pub device: Device,
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
    /// A ggml Silero VAD file (or its name in the models directory); empty: the built-in detector.
    pub vad_model: String,
    pub vad_threshold: f64,
    pub vad_min_silence_ms: u32,
    pub vad_padding_ms: u32,
    pub max_utterance_ms: u32,
    pub partial_interval_ms: u32,
    pub initial_prompt: String,
    pub carry_context: bool,
    pub temperature: f64,
    pub temperature_increment: f64,
    pub no_speech_threshold: f64,
    pub suppress_non_speech: bool,
    /// The BCP-47 tag last set through `language-code`, if any.
    pub language_code: Option<String>,
    pub granularity: Granularity,
    pub location: Option<PathBuf>,
    pub subtitle_format: Option<SubtitleFormat>,
}

/// How `whispertranscribe` cuts each final into text buffers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstWhisperSttGranularity")]
pub enum Granularity {
    #[default]
    #[enum_value(
        name = "One buffer per whisper.cpp segment (a phrase or sentence)",
        nick = "segment"
    )]
    Segment = 0,
    #[enum_value(
        name = "One buffer per word, timed from token timestamps",
        nick = "word"
    )]
    Word = 1,
    #[enum_value(
        name = "One buffer per utterance (the whole final)",
        nick = "utterance"
    )]
    Utterance = 2,
}

impl Default for Settings {
    /// The engine's own defaults, in the properties' units.
    fn default() -> Self {
        let decode = DecodeOptions::default();
        let stream = StreamOptions::default();
        let vad = VadConfig::default();
        let ms = |d: Duration| d.as_millis() as u32;
        Settings {
            model: DEFAULT_MODEL.into(),
            device: Device::default(),
            flash_attn: ContextOptions::default().flash_attn,
            model_idle_timeout: IDLE_TIMEOUT_PROCESS_DEFAULT,
            language: decode.language,
            translate: decode.translate,
            threads: decode.threads,
            beam_size: decode.beam_size,
            word_timestamps: decode.word_timestamps,
            latency_ms: ms(stream.latency),
            lateness_ms: 0,
            vad: stream.vad.is_some(),
            vad_model: String::new(),
            vad_threshold: vad.threshold as f64,
            vad_min_silence_ms: ms(vad.min_silence),
            vad_padding_ms: ms(vad.padding),
            max_utterance_ms: ms(stream.max_utterance),
            partial_interval_ms: ms(stream.partial_interval),
            initial_prompt: decode.initial_prompt,
            carry_context: decode.carry_context,
            temperature: decode.temperature as f64,
            temperature_increment: decode.temperature_increment as f64,
            no_speech_threshold: decode.no_speech_threshold as f64,
            suppress_non_speech: decode.suppress_non_speech,
            language_code: None,
            granularity: Granularity::default(),
            location: None,
            subtitle_format: None,
        }
    }
}

/// Which element a property list is for: each has a few of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementKind {
    Transcribe,
    Sink,
}

/// The read-only property both elements update as finals come.
pub const MAX_OBSERVED_DELAY: &str = "max-observed-delay";
pub const REJECTED_AUDIO: &str = "rejected-audio";

impl Settings {
    pub fn properties(kind: ElementKind) -> Vec<glib::ParamSpec> {
        // Model and stream-shaping properties are read at NULL -> READY (model) or when the
        // stream starts; decoding properties apply from the next decode, even while playing.
        let ready = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_READY;
        let playing = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_PLAYING;
        let d = Settings::default();
        let mut props = vec![
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
                .default_value(Some(d.device.to_string().as_str()))
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
                .blurb(
                    "Spoken language as a Whisper code (en, de, ...), or auto to detect it once per \
                     stream (reported in transcript messages); English-only models always use en",
                )
                .default_value(Some(d.language.as_str()))
                .flags(playing)
                .build(),
            glib::ParamSpecString::builder("language-code")
                .nick("Language code")
                .blurb(
                    "Spoken language as a BCP-47 tag (en-US, pt-BR, zh-Hans, ...), as GStreamer \
                     transcribers take it; sets language to the matching Whisper language. \
                     Reads back the tag last set, else language",
                )
                .default_value(Some(d.language.as_str()))
                .flags(playing)
                .build(),
            glib::ParamSpecBoolean::builder("translate")
                .nick("Translate")
                .blurb("Translate the speech into English (multilingual models only)")
                .default_value(d.translate)
                .flags(playing)
                .build(),
            glib::ParamSpecString::builder("initial-prompt")
                .nick("Initial prompt")
                .blurb("Text that primes every decode: names, terms and spelling to expect, the style of punctuation")
                .default_value(Some(""))
                .flags(playing)
                .build(),
            glib::ParamSpecBoolean::builder("carry-context")
                .nick("Carry context")
                .blurb(
                    "Prime each utterance with this stream's previous final (better continuity; \
                     a misheard phrase may echo). Never crosses streams; a flush forgets it",
                )
                .default_value(d.carry_context)
                .flags(playing)
                .build(),
            glib::ParamSpecUInt::builder("threads")
                .nick("Threads")
                .blurb(
                    "Inference threads for this stream at most (default: the cores it may use, \
                     at most 8); a decode gets fewer while other streams or other processes \
                     take the CPU, and all streams together stay within the process thread budget",
                )
                .minimum(1)
                .maximum(64)
                .default_value(d.threads)
                .flags(playing)
                .build(),
            glib::ParamSpecUInt::builder("beam-size")
                .nick("Beam size")
                .blurb("Beam search width; 0 or 1 decodes greedily (fastest)")
                .minimum(0)
                .maximum(MAX_BEAM_SIZE)
                .default_value(d.beam_size)
                .flags(playing)
                .build(),
            glib::ParamSpecDouble::builder("temperature")
                .nick("Temperature")
                .blurb("Sampling temperature of a decode's first attempt; 0 takes the most likely tokens")
                .minimum(0.0)
                .maximum(1.0)
                .default_value(d.temperature)
                .flags(playing)
                .build(),
            glib::ParamSpecDouble::builder("temperature-increment")
                .nick("Temperature increment")
                .blurb(
                    "Temperature fallback: a decode that repeats itself or is improbable is retried \
                     this much hotter, up to 1.0; 0 turns the fallback off",
                )
                .minimum(0.0)
                .maximum(1.0)
                .default_value(d.temperature_increment)
                .flags(playing)
                .build(),
            glib::ParamSpecDouble::builder("no-speech-threshold")
                .nick("No-speech threshold")
                .blurb(
                    "A segment whose no-speech probability is above this (and whose text is \
                     improbable) is dropped as silence; 1 keeps everything",
                )
                .minimum(0.0)
                .maximum(1.0)
                .default_value(d.no_speech_threshold)
                .flags(playing)
                .build(),
            glib::ParamSpecBoolean::builder("suppress-non-speech")
                .nick("Suppress non-speech")
                .blurb("Never write non-speech tokens (music notes, bracketed sound descriptions)")
                .default_value(d.suppress_non_speech)
                .flags(playing)
                .build(),
            glib::ParamSpecBoolean::builder("word-timestamps")
                .nick("Word timestamps")
                .blurb("Add per-word timing and probability to transcript messages")
                .default_value(d.word_timestamps)
                .flags(playing)
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
                .blurb(
                    "Live input: delay in ms past latency a final may have before the element \
                     posts a warning (see max-observed-delay)",
                )
                .minimum(0)
                .maximum(60_000)
                .default_value(d.lateness_ms)
                .flags(playing)
                .build(),
            glib::ParamSpecUInt::builder(MAX_OBSERVED_DELAY)
                .nick("Maximum observed delay")
                .blurb(
                    "Live input: the longest time in ms from an utterance's end to its final so \
                     far in this run (notifies when it grows)",
                )
                .minimum(0)
                .maximum(u32::MAX)
                .default_value(0)
                .read_only()
                .build(),
            glib::ParamSpecUInt64::builder(REJECTED_AUDIO)
                .nick("Rejected audio")
                .blurb(
                    "Audio in ms the voice detector heard over the noise floor and did not \
                     transcribe in this run, as not speech (notifies when it grows; each \
                     stretch is logged at DEBUG with its time and why)",
                )
                .read_only()
                .build(),
            glib::ParamSpecBoolean::builder("vad")
                .nick("Voice detection")
                .blurb("Cut the audio into utterances with the built-in voice detector, so silence and steady noise cost no inference; off: fixed 30 s windows")
                .default_value(d.vad)
                .flags(ready)
                .build(),
            glib::ParamSpecString::builder("vad-model")
                .nick("Voice detection model")
                .blurb(
                    "A whisper.cpp ggml Silero VAD file (e.g. ggml-silero-v6.2.0.bin, or its name \
                     in the models directory) to detect speech with instead of the built-in \
                     detector; loaded once into the shared model cache. Empty: built-in",
                )
                .default_value(Some(""))
                .flags(ready)
                .build(),
            glib::ParamSpecDouble::builder("vad-threshold")
                .nick("Voice detection threshold")
                .blurb(
                    "0..1: built-in detector: how far above the noise floor speech must be \
                     (0.5 = 12 dB over a wandering floor, down to 3 dB over a steady one); \
                     Silero: the speech probability. Higher ignores more",
                )
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
                .blurb(
                    "Longest utterance in ms; longer speech is cut into separate finals at its \
                     longest pause in the second half (files: at most 20 s)",
                )
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
        ];
        match kind {
            ElementKind::Transcribe => props.push(
                glib::ParamSpecEnum::builder_with_default("output-granularity", d.granularity)
                    .nick("Output granularity")
                    .blurb("How each final is cut into text buffers: per segment, per word or per utterance")
                    .flags(playing)
                    .build(),
            ),
            ElementKind::Sink => props.extend([
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb(
                        "Write finals to this subtitle file as they come (SRT, WebVTT or JSON \
                         Lines by extension .srt, .vtt, .jsonl, or subtitle-format), timed in \
                         running time and flushed after each cue",
                    )
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("subtitle-format")
                    .nick("Subtitle format")
                    .blurb("Format of location: srt, webvtt or jsonl; empty: from its extension")
                    .default_value(Some(""))
                    .flags(ready)
                    .build(),
            ]),
        }
        props
    }

    /// Sets a property; a value that cannot work (an unknown language) is refused with the
    /// reason and the setting keeps its value.
    pub fn set(
        &mut self,
        value: &glib::Value,
        pspec: &glib::ParamSpec,
    ) -> Result<(), PropertyError> {
        let text = || value.get::<Option<String>>().unwrap().unwrap_or_default();
        match pspec.name() {
            "model" => self.model = text(),
            "device" => self.device = text().parse()?,
            "flash-attn" => self.flash_attn = value.get().unwrap(),
            "model-idle-timeout" => self.model_idle_timeout = value.get().unwrap(),
            "language" => {
                let code = text().trim().to_lowercase();
                let code = if code.is_empty() { "auto".into() } else { code };
                if whisper_language(&code).is_none() {
                    return Err(PropertyError::UnknownLanguage(code));
                }
                self.language = code;
                self.language_code = None;
            }
            "language-code" => {
                let tag = text();
                let language = language_for_bcp47(&tag)
                    .ok_or_else(|| PropertyError::UnknownLanguageCode(tag.clone()))?;
                self.language = language.into();
                self.language_code = Some(tag);
            }
            "translate" => self.translate = value.get().unwrap(),
            "initial-prompt" => self.initial_prompt = text(),
            "carry-context" => self.carry_context = value.get().unwrap(),
            "threads" => self.threads = value.get().unwrap(),
            "beam-size" => self.beam_size = value.get().unwrap(),
            "temperature" => self.temperature = value.get().unwrap(),
            "temperature-increment" => self.temperature_increment = value.get().unwrap(),
            "no-speech-threshold" => self.no_speech_threshold = value.get().unwrap(),
            "suppress-non-speech" => self.suppress_non_speech = value.get().unwrap(),
            "word-timestamps" => self.word_timestamps = value.get().unwrap(),
            "latency" => self.latency_ms = value.get().unwrap(),
            "lateness" => self.lateness_ms = value.get().unwrap(),
            "vad" => self.vad = value.get().unwrap(),
            "vad-model" => self.vad_model = text().trim().to_string(),
            "vad-threshold" => self.vad_threshold = value.get().unwrap(),
            "vad-min-silence" => self.vad_min_silence_ms = value.get().unwrap(),
            "vad-padding" => self.vad_padding_ms = value.get().unwrap(),
            "max-utterance" => self.max_utterance_ms = value.get().unwrap(),
            "partial-interval" => self.partial_interval_ms = value.get().unwrap(),
            "output-granularity" => self.granularity = value.get().unwrap(),
            "location" => self.location = Some(text()).filter(|l| !l.is_empty()).map(PathBuf::from),
            "subtitle-format" => {
                let name = text();
                self.subtitle_format = if name.trim().is_empty() {
                    None
                } else {
                    Some(name.parse()?)
                };
            }
            other => unreachable!("unknown property {other}"),
        }
        Ok(())
    }

    pub fn get(&self, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "model" => self.model.to_value(),
            "device" => self.device.to_string().to_value(),
            "flash-attn" => self.flash_attn.to_value(),
            "model-idle-timeout" => self.model_idle_timeout.to_value(),
            "language" => self.language.to_value(),
            "language-code" => self
                .language_code
                .as_ref()
                .unwrap_or(&self.language)
                .to_value(),
            "translate" => self.translate.to_value(),
            "initial-prompt" => self.initial_prompt.to_value(),
            "carry-context" => self.carry_context.to_value(),
            "threads" => self.threads.to_value(),
            "beam-size" => self.beam_size.to_value(),
            "temperature" => self.temperature.to_value(),
            "temperature-increment" => self.temperature_increment.to_value(),
            "no-speech-threshold" => self.no_speech_threshold.to_value(),
            "suppress-non-speech" => self.suppress_non_speech.to_value(),
            "word-timestamps" => self.word_timestamps.to_value(),
            "latency" => self.latency_ms.to_value(),
            "lateness" => self.lateness_ms.to_value(),
            "vad" => self.vad.to_value(),
            "vad-model" => self.vad_model.to_value(),
            "vad-threshold" => self.vad_threshold.to_value(),
            "vad-min-silence" => self.vad_min_silence_ms.to_value(),
            "vad-padding" => self.vad_padding_ms.to_value(),
            "max-utterance" => self.max_utterance_ms.to_value(),
            "partial-interval" => self.partial_interval_ms.to_value(),
            "output-granularity" => self.granularity.to_value(),
            "location" => self
                .location
                .as_ref()
                .map(|l| l.to_string_lossy().into_owned())
                .to_value(),
            "subtitle-format" => self
                .subtitle_format
                .map(|f| f.name())
                .unwrap_or("")
                .to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    /// The worker's start configuration, from the properties as they are now.
    pub fn start_config(&self) -> StartConfig {
        StartConfig {
            model: self.model.clone(),
            device: self.device,
            context: ContextOptions {
                flash_attn: self.flash_attn,
            },
            idle_timeout: self.idle_timeout(),
            vad_model: Some(self.vad_model.clone()).filter(|m| self.vad && !m.is_empty()),
            decode: self.decode_options(),
            stream: self.stream_options(),
        }
    }

    /// `None`: the cache's process default.
    fn idle_timeout(&self) -> Option<IdleTimeout> {
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
            // Word buffers need word timing.
            word_timestamps: self.word_timestamps || self.granularity == Granularity::Word,
            initial_prompt: self.initial_prompt.clone(),
            carry_context: self.carry_context,
            temperature: self.temperature as f32,
            temperature_increment: self.temperature_increment as f32,
            no_speech_threshold: self.no_speech_threshold as f32,
            suppress_non_speech: self.suppress_non_speech,
        }
    }

    /// Whether results are live is learnt from upstream when caps arrive.
    fn stream_options(&self) -> StreamOptions {
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
            latency: ms(self.latency_ms),
        }
    }

    pub fn latency(&self) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(self.latency_ms as u64)
    }
}
