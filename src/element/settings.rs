//! The properties both elements expose. Each is declared once, in `table()`: its ParamSpec
//! (name, blurb, default, range), when it may change, how it is read and how it is written.
//! Values are kept in the engine's units (durations, not milliseconds) in two groups:
//! `StartSettings`, read when the element starts (settable in NULL and READY only), and
//! `PlayingSettings`, which apply from the next decode or result even while playing. A
//! property's group is its mutability: a start property's setter can only reach
//! `StartSettings`, and its ParamSpec gets its flags from the group.

use crate::model::compute::ComputeType;
use crate::model::ggml::WeightType;
use crate::model::{ContextOptions, Device, IdleTimeout, ModelError};
use crate::subtitles::{SubtitleFormat, UnknownSubtitleFormat};
use crate::transcriber::{
    language_for_bcp47, whisper_language, DecodeOptions, LanguageDetection, StreamOptions,
    MAX_BEAM_SIZE,
};
use crate::vad::VadConfig;
use gst::glib;
use gst::prelude::*;
use once_cell::sync::Lazy;
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
    pub compute: ComputeType,
    pub context: ContextOptions,
    /// `None`: the cache's process default.
    pub idle_timeout: Option<IdleTimeout>,
    /// A Silero model to detect voice with, when voice detection is on.
    pub vad_model: Option<String>,
    pub decode: DecodeOptions,
    pub stream: StreamOptions,
}

/// The properties read when the element starts.
#[derive(Debug, Clone, PartialEq)]
pub struct StartSettings {
    pub model: String,
    pub device: Device,
    pub compute_type: ComputeTypeMode,
    pub flash_attn: bool,
    /// `None`: the cache's process default.
    pub idle_timeout: Option<IdleTimeout>,
    pub latency: Duration,
    pub vad: bool,
    /// A ggml Silero VAD file (or its name in the models directory); empty: the built-in detector.
    pub vad_model: String,
    pub vad_threshold: f64,
    pub vad_min_silence: Duration,
    pub vad_phrase_silence: Duration,
    pub vad_padding: Duration,
    pub max_utterance: Duration,
    pub partial_interval: Duration,
    pub location: Option<PathBuf>,
    pub subtitle_format: Option<SubtitleFormat>,
}

/// The properties that apply while playing: from the next decode, or the next result.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayingSettings {
    pub language: String,
    /// The BCP-47 tag last set through `language-code`, if any.
    pub language_code: Option<String>,
    pub language_detection: LanguageDetectionMode,
    pub translate: bool,
    pub initial_prompt: String,
    pub carry_context: bool,
    pub threads: u32,
    pub beam_size: u32,
    pub temperature: f64,
    pub temperature_increment: f64,
    pub no_speech_threshold: f64,
    pub suppress_non_speech: bool,
    pub word_timestamps: bool,
    pub lateness: Duration,
    pub granularity: Granularity,
    /// Live input: stable partial words go downstream before the final (`early_text`).
    pub stable_partials: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub start: StartSettings,
    pub playing: PlayingSettings,
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

/// When `language=auto` detects the language (the engine's `LanguageDetection`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstWhisperSttLanguageDetection")]
pub enum LanguageDetectionMode {
    #[default]
    #[enum_value(
        name = "Once, on the stream's first utterance; the rest of the stream keeps it",
        nick = "stream"
    )]
    Stream = 0,
    #[enum_value(
        name = "On each utterance (an encoder pass more per decode); short or unsure \
                utterances keep the stream's language",
        nick = "utterance"
    )]
    Utterance = 1,
}

impl From<LanguageDetection> for LanguageDetectionMode {
    fn from(detection: LanguageDetection) -> Self {
        match detection {
            LanguageDetection::Stream => LanguageDetectionMode::Stream,
            LanguageDetection::Utterance => LanguageDetectionMode::Utterance,
        }
    }
}

impl From<LanguageDetectionMode> for LanguageDetection {
    fn from(mode: LanguageDetectionMode) -> Self {
        match mode {
            LanguageDetectionMode::Stream => LanguageDetection::Stream,
            LanguageDetectionMode::Utterance => LanguageDetection::Utterance,
        }
    }
}

/// The weights' type whisper.cpp computes with (the engine's `ComputeType`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstWhisperSttComputeType")]
pub enum ComputeTypeMode {
    #[default]
    #[enum_value(
        name = "bf16 for an f16 model on CPUs with bf16 dot products (AVX512-BF16, AMX-BF16): \
                as accurate, faster; else as the file stores them",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "As the model file stores them, unconverted", nick = "stored")]
    Stored = 1,
    #[enum_value(name = "16-bit floats", nick = "f16")]
    F16 = 2,
    #[enum_value(
        name = "bfloat16: fast where the CPU has bf16 dot products",
        nick = "bf16"
    )]
    Bf16 = 3,
    #[enum_value(
        name = "8-bit blocks: half the size, a little less accurate",
        nick = "q8_0"
    )]
    Q8_0 = 4,
    #[enum_value(name = "5-bit blocks: smaller, less accurate", nick = "q5_0")]
    Q5_0 = 5,
    #[enum_value(name = "4-bit blocks: smallest, least accurate", nick = "q4_0")]
    Q4_0 = 6,
}

impl From<ComputeTypeMode> for ComputeType {
    fn from(mode: ComputeTypeMode) -> Self {
        let weights = |w| ComputeType::Weights(w);
        match mode {
            ComputeTypeMode::Auto => ComputeType::Auto,
            ComputeTypeMode::Stored => ComputeType::Stored,
            ComputeTypeMode::F16 => weights(WeightType::F16),
            ComputeTypeMode::Bf16 => weights(WeightType::Bf16),
            ComputeTypeMode::Q8_0 => weights(WeightType::Q8_0),
            ComputeTypeMode::Q5_0 => weights(WeightType::Q5_0),
            ComputeTypeMode::Q4_0 => weights(WeightType::Q4_0),
        }
    }
}

impl Default for Settings {
    /// The engine's own defaults.
    fn default() -> Self {
        let decode = DecodeOptions::default();
        let stream = StreamOptions::default();
        let vad = VadConfig::default();
        Settings {
            start: StartSettings {
                model: DEFAULT_MODEL.into(),
                device: Device::default(),
                compute_type: ComputeTypeMode::default(),
                flash_attn: ContextOptions::default().flash_attn,
                idle_timeout: None,
                latency: stream.latency,
                vad: stream.vad.is_some(),
                vad_model: String::new(),
                vad_threshold: vad.threshold as f64,
                vad_min_silence: vad.min_silence,
                vad_phrase_silence: stream.phrase_silence,
                vad_padding: vad.padding,
                max_utterance: stream.max_utterance,
                partial_interval: stream.partial_interval,
                location: None,
                subtitle_format: None,
            },
            playing: PlayingSettings {
                language: decode.language,
                language_code: None,
                language_detection: decode.language_detection.into(),
                translate: decode.translate,
                initial_prompt: decode.initial_prompt,
                carry_context: decode.carry_context,
                threads: decode.threads,
                beam_size: decode.beam_size,
                temperature: decode.temperature as f64,
                temperature_increment: decode.temperature_increment as f64,
                no_speech_threshold: decode.no_speech_threshold as f64,
                suppress_non_speech: decode.suppress_non_speech,
                word_timestamps: decode.word_timestamps,
                lateness: Duration::ZERO,
                granularity: Granularity::default(),
                stable_partials: false,
            },
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

type Setter<G> = fn(&mut G, &glib::Value) -> Result<(), PropertyError>;

/// How a property is read and written, and so when it may change.
enum Access {
    Start {
        get: fn(&StartSettings) -> glib::Value,
        set: Setter<StartSettings>,
    },
    Playing {
        get: fn(&PlayingSettings) -> glib::Value,
        set: Setter<PlayingSettings>,
    },
    /// Read-only: the element reports it from its run (`WorkerSlot`).
    Counter,
}

impl Access {
    fn flags(&self) -> glib::ParamFlags {
        match self {
            Access::Start { .. } => glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_READY,
            Access::Playing { .. } => glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_PLAYING,
            Access::Counter => glib::ParamFlags::READABLE,
        }
    }
}

/// One property: its ParamSpec, how it is reached, and which element has it (`None`: both).
struct Property {
    spec: glib::ParamSpec,
    access: Access,
    only: Option<ElementKind>,
}

impl Property {
    /// A property read when the element starts.
    fn start(
        spec: impl FnOnce(glib::ParamFlags) -> glib::ParamSpec,
        get: fn(&StartSettings) -> glib::Value,
        set: Setter<StartSettings>,
    ) -> Self {
        Self::new(spec, Access::Start { get, set })
    }

    /// A property that applies while playing.
    fn playing(
        spec: impl FnOnce(glib::ParamFlags) -> glib::ParamSpec,
        get: fn(&PlayingSettings) -> glib::Value,
        set: Setter<PlayingSettings>,
    ) -> Self {
        Self::new(spec, Access::Playing { get, set })
    }

    fn counter(spec: impl FnOnce(glib::ParamFlags) -> glib::ParamSpec) -> Self {
        Self::new(spec, Access::Counter)
    }

    fn new(spec: impl FnOnce(glib::ParamFlags) -> glib::ParamSpec, access: Access) -> Self {
        Property {
            spec: spec(access.flags()),
            access,
            only: None,
        }
    }

    fn only_in(self, kind: ElementKind) -> Self {
        Property {
            only: Some(kind),
            ..self
        }
    }
}

/// A property value in milliseconds as a duration, and back.
fn millis(value: &glib::Value) -> Duration {
    Duration::from_millis(value.get::<u32>().unwrap() as u64)
}

fn ms(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}

fn ms_value(d: Duration) -> glib::Value {
    ms(d).to_value()
}

/// A string property's value, empty for NULL.
fn text(value: &glib::Value) -> String {
    value.get::<Option<String>>().unwrap().unwrap_or_default()
}

/// `model-idle-timeout`: -1 is the process default, `i32::MAX` never, else seconds.
fn idle_timeout(seconds: i32) -> Option<IdleTimeout> {
    match seconds {
        IDLE_TIMEOUT_PROCESS_DEFAULT => None,
        i32::MAX => Some(IdleTimeout::Never),
        s => Some(IdleTimeout::After(Duration::from_secs(s.max(0) as u64))),
    }
}

fn idle_timeout_seconds(timeout: Option<IdleTimeout>) -> i32 {
    match timeout {
        None => IDLE_TIMEOUT_PROCESS_DEFAULT,
        Some(IdleTimeout::Never) => i32::MAX,
        Some(IdleTimeout::After(d)) => d.as_secs().min(i32::MAX as u64 - 1) as i32,
    }
}

fn set_language(s: &mut PlayingSettings, value: &glib::Value) -> Result<(), PropertyError> {
    let code = text(value).trim().to_lowercase();
    let code = if code.is_empty() { "auto".into() } else { code };
    if whisper_language(&code).is_none() {
        return Err(PropertyError::UnknownLanguage(code));
    }
    s.language = code;
    s.language_code = None;
    Ok(())
}

fn set_language_code(s: &mut PlayingSettings, value: &glib::Value) -> Result<(), PropertyError> {
    let tag = text(value);
    let language =
        language_for_bcp47(&tag).ok_or_else(|| PropertyError::UnknownLanguageCode(tag.clone()))?;
    s.language = language.into();
    s.language_code = Some(tag);
    Ok(())
}

fn set_subtitle_format(s: &mut StartSettings, value: &glib::Value) -> Result<(), PropertyError> {
    let name = text(value);
    s.subtitle_format = match name.trim().is_empty() {
        true => None,
        false => Some(name.parse()?),
    };
    Ok(())
}

/// Every property, in the order gst-inspect-1.0 lists them: how each is read and written.
static TABLE: Lazy<Vec<Property>> = Lazy::new(table);

#[rustfmt::skip]
fn table() -> Vec<Property> {
    let d = Settings::default();
    let (start, playing) = (&d.start, &d.playing);
    vec![
        Property::start(
            |f| glib::ParamSpecString::builder("model")
                .nick("Model")
                .blurb(
                    "Whisper model: a whisper.cpp ggml file, a faster-whisper (CTranslate2) model \
                     directory (imported once), or a name such as tiny.en looked up in the models \
                     directory ($WHISPERSTT_MODEL_DIR, else ~/.local/share/whisperstt/models). \
                     Shared by every element in the process that uses the same file, device, compute-type and flash-attn",
                )
                .default_value(Some(DEFAULT_MODEL))
                .flags(f).build(),
            |s| s.model.to_value(),
            |s, v| { s.model = text(v); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecString::builder("device")
                .nick("Device")
                .blurb("Where inference runs: cpu, or gpu:N in builds with a GPU feature")
                .default_value(Some(start.device.to_string().as_str()))
                .flags(f).build(),
            |s| s.device.to_string().to_value(),
            |s, v| { s.device = text(v).parse()?; Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecEnum::builder_with_default("compute-type", start.compute_type)
                .nick("Compute type")
                .blurb(
                    "The weights' type whisper.cpp computes with. A model stored in another \
                     type is converted once (from f16, bf16 or f32) and kept beside it (or in \
                     the models directory's converted/ folder); each type is a separate cached \
                     model",
                )
                .flags(f).build(),
            |s| s.compute_type.to_value(),
            |s, v| { s.compute_type = v.get().unwrap(); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecBoolean::builder("flash-attn")
                .nick("Flash attention")
                .blurb("Load the model with flash attention (slower on CPU; a separate cached model)")
                .default_value(start.flash_attn)
                .flags(f).build(),
            |s| s.flash_attn.to_value(),
            |s, v| { s.flash_attn = v.get().unwrap(); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecInt::builder("model-idle-timeout")
                .nick("Model idle time-out")
                .blurb(
                    "Seconds an unused model stays loaded after the last element using it stops: \
                     -1 = the process default ($WHISPERSTT_MODEL_IDLE_TIMEOUT, else 30), \
                     0 = release at once, 2147483647 = never",
                )
                .minimum(-1)
                .maximum(i32::MAX)
                .default_value(idle_timeout_seconds(start.idle_timeout))
                .flags(f).build(),
            |s| idle_timeout_seconds(s.idle_timeout).to_value(),
            |s, v| { s.idle_timeout = idle_timeout(v.get().unwrap()); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecString::builder("language")
                .nick("Language")
                .blurb(
                    "Spoken language as a Whisper code (en, de, ...), or auto to detect it (see \
                     language-detection; reported in transcript messages); English-only models \
                     always use en",
                )
                .default_value(Some(playing.language.as_str()))
                .flags(f).build(),
            |s| s.language.to_value(),
            set_language,
        ),
        Property::playing(
            |f| glib::ParamSpecString::builder("language-code")
                .nick("Language code")
                .blurb(
                    "Spoken language as a BCP-47 tag (en-US, pt-BR, zh-Hans, ...), as GStreamer \
                     transcribers take it; sets language to the matching Whisper language. \
                     Reads back the tag last set, else language",
                )
                .default_value(Some(playing.language.as_str()))
                .flags(f).build(),
            |s| s.language_code.as_ref().unwrap_or(&s.language).to_value(),
            set_language_code,
        ),
        Property::playing(
            |f| glib::ParamSpecEnum::builder_with_default("language-detection", playing.language_detection)
                .nick("Language detection")
                .blurb(
                    "With language=auto: detect the language once per stream, or on each \
                     utterance (a multilingual conversation)",
                )
                .flags(f).build(),
            |s| s.language_detection.to_value(),
            |s, v| { s.language_detection = v.get().unwrap(); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecBoolean::builder("translate")
                .nick("Translate")
                .blurb("Translate the speech into English (multilingual models only)")
                .default_value(playing.translate)
                .flags(f).build(),
            |s| s.translate.to_value(),
            |s, v| { s.translate = v.get().unwrap(); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecString::builder("initial-prompt")
                .nick("Initial prompt")
                .blurb("Text that primes every decode: names, terms and spelling to expect, the style of punctuation")
                .default_value(Some(""))
                .flags(f).build(),
            |s| s.initial_prompt.to_value(),
            |s, v| { s.initial_prompt = text(v); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecBoolean::builder("carry-context")
                .nick("Carry context")
                .blurb(
                    "Prime each utterance with this stream's previous final (better continuity; \
                     a misheard phrase may echo). Never crosses streams; a flush forgets it",
                )
                .default_value(playing.carry_context)
                .flags(f).build(),
            |s| s.carry_context.to_value(),
            |s, v| { s.carry_context = v.get().unwrap(); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecUInt::builder("threads")
                .nick("Threads")
                .blurb(
                    "Inference threads for this stream at most (default: the cores it may use, \
                     at most 8); a decode gets fewer while other streams or other processes \
                     take the CPU, and all streams together stay within the process thread \
                     budget. Files use them as up to 4 decodes side by side, one thread each",
                )
                .minimum(1)
                .maximum(64)
                .default_value(playing.threads)
                .flags(f).build(),
            |s| s.threads.to_value(),
            |s, v| { s.threads = v.get().unwrap(); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecUInt::builder("beam-size")
                .nick("Beam size")
                .blurb("Beam search width; 0 or 1 decodes greedily (fastest)")
                .minimum(0)
                .maximum(MAX_BEAM_SIZE)
                .default_value(playing.beam_size)
                .flags(f).build(),
            |s| s.beam_size.to_value(),
            |s, v| { s.beam_size = v.get().unwrap(); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecDouble::builder("temperature")
                .nick("Temperature")
                .blurb("Sampling temperature of a decode's first attempt; 0 takes the most likely tokens")
                .minimum(0.0)
                .maximum(1.0)
                .default_value(playing.temperature)
                .flags(f).build(),
            |s| s.temperature.to_value(),
            |s, v| { s.temperature = v.get().unwrap(); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecDouble::builder("temperature-increment")
                .nick("Temperature increment")
                .blurb(
                    "Temperature fallback: a final whose decode repeats itself or is improbable is \
                     retried this much hotter, up to 1.0 (partials never are); 0 turns it off",
                )
                .minimum(0.0)
                .maximum(1.0)
                .default_value(playing.temperature_increment)
                .flags(f).build(),
            |s| s.temperature_increment.to_value(),
            |s, v| { s.temperature_increment = v.get().unwrap(); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecDouble::builder("no-speech-threshold")
                .nick("No-speech threshold")
                .blurb(
                    "A segment whose no-speech probability is above this (and whose text is \
                     improbable) is dropped as silence; 1 keeps everything",
                )
                .minimum(0.0)
                .maximum(1.0)
                .default_value(playing.no_speech_threshold)
                .flags(f).build(),
            |s| s.no_speech_threshold.to_value(),
            |s, v| { s.no_speech_threshold = v.get().unwrap(); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecBoolean::builder("suppress-non-speech")
                .nick("Suppress non-speech")
                .blurb("Never write non-speech tokens (music notes, bracketed sound descriptions)")
                .default_value(playing.suppress_non_speech)
                .flags(f).build(),
            |s| s.suppress_non_speech.to_value(),
            |s, v| { s.suppress_non_speech = v.get().unwrap(); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecBoolean::builder("word-timestamps")
                .nick("Word timestamps")
                .blurb("Add per-word timing and probability to transcript messages")
                .default_value(playing.word_timestamps)
                .flags(f).build(),
            |s| s.word_timestamps.to_value(),
            |s, v| { s.word_timestamps = v.get().unwrap(); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecUInt::builder("latency")
                .nick("Latency")
                .blurb("Live input: the longest a final may come after its utterance ends, in ms; added to the pipeline latency")
                .minimum(500)
                .maximum(30_000)
                .default_value(ms(start.latency))
                .flags(f).build(),
            |s| ms_value(s.latency),
            |s, v| { s.latency = millis(v); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecUInt::builder("lateness")
                .nick("Lateness")
                .blurb(
                    "Live input: delay in ms past latency a final may have before the element \
                     posts a warning (see max-observed-delay)",
                )
                .minimum(0)
                .maximum(60_000)
                .default_value(ms(playing.lateness))
                .flags(f).build(),
            |s| ms_value(s.lateness),
            |s, v| { s.lateness = millis(v); Ok(()) },
        ),
        Property::counter(
            |f| glib::ParamSpecUInt::builder(MAX_OBSERVED_DELAY)
                .nick("Maximum observed delay")
                .blurb(
                    "Live input: the longest time in ms from an utterance's end to its final so \
                     far in this run (notifies when it grows)",
                )
                .minimum(0)
                .maximum(u32::MAX)
                .default_value(0)
                .flags(f).build(),
        ),
        Property::counter(
            |f| glib::ParamSpecUInt64::builder(REJECTED_AUDIO)
                .nick("Rejected audio")
                .blurb(
                    "Audio in ms the voice detector heard over the noise floor and did not \
                     transcribe in this run, as not speech (notifies when it grows; each \
                     stretch is logged at DEBUG with its time and why)",
                )
                .flags(f).build(),
        ),
        Property::start(
            |f| glib::ParamSpecBoolean::builder("vad")
                .nick("Voice detection")
                .blurb("Cut the audio into utterances with the built-in voice detector, so silence and steady noise cost no inference; off: fixed 30 s windows")
                .default_value(start.vad)
                .flags(f).build(),
            |s| s.vad.to_value(),
            |s, v| { s.vad = v.get().unwrap(); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecString::builder("vad-model")
                .nick("Voice detection model")
                .blurb(
                    "A whisper.cpp ggml Silero VAD file (e.g. ggml-silero-v6.2.0.bin, or its name \
                     in the models directory) to detect speech with instead of the built-in \
                     detector; loaded once into the shared model cache. Empty: built-in",
                )
                .default_value(Some(""))
                .flags(f).build(),
            |s| s.vad_model.to_value(),
            |s, v| { s.vad_model = text(v).trim().to_string(); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecDouble::builder("vad-threshold")
                .nick("Voice detection threshold")
                .blurb(
                    "0..1: built-in detector: how far above the noise floor speech must be \
                     (0.5 = 12 dB over a wandering floor, down to 3 dB over a steady one); \
                     Silero: the speech probability. Higher ignores more",
                )
                .minimum(0.0)
                .maximum(1.0)
                .default_value(start.vad_threshold)
                .flags(f).build(),
            |s| s.vad_threshold.to_value(),
            |s, v| { s.vad_threshold = v.get().unwrap(); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecUInt::builder("vad-min-silence")
                .nick("Minimum silence")
                .blurb("Silence in ms that ends an utterance")
                .minimum(100)
                .maximum(10_000)
                .default_value(ms(start.vad_min_silence))
                .flags(f).build(),
            |s| ms_value(s.vad_min_silence),
            |s, v| { s.vad_min_silence = millis(v); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecUInt::builder("vad-phrase-silence")
                .nick("Silence after an open phrase")
                .blurb(
                    "Live input: silence in ms that ends an utterance whose words so far leave \
                     a phrase open (a comma, 'of the'); at most vad-min-silence: no wait",
                )
                .minimum(0)
                .maximum(10_000)
                .default_value(ms(start.vad_phrase_silence))
                .flags(f).build(),
            |s| ms_value(s.vad_phrase_silence),
            |s, v| { s.vad_phrase_silence = millis(v); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecUInt::builder("vad-padding")
                .nick("Speech padding")
                .blurb("Audio in ms kept before and after the detected speech")
                .minimum(0)
                .maximum(2000)
                .default_value(ms(start.vad_padding))
                .flags(f).build(),
            |s| ms_value(s.vad_padding),
            |s, v| { s.vad_padding = millis(v); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecUInt::builder("max-utterance")
                .nick("Maximum utterance")
                .blurb(
                    "Longest utterance in ms; longer speech is cut into separate finals at its \
                     longest pause in the second half (files: at most 20 s)",
                )
                .minimum(1000)
                .maximum(30_000)
                .default_value(ms(start.max_utterance))
                .flags(f).build(),
            |s| ms_value(s.max_utterance),
            |s, v| { s.max_utterance = millis(v); Ok(()) },
        ),
        Property::start(
            |f| glib::ParamSpecUInt::builder("partial-interval")
                .nick("Partial interval")
                .blurb("Live input: decode the utterance in progress after this many ms of new audio (partial results)")
                .minimum(200)
                .maximum(10_000)
                .default_value(ms(start.partial_interval))
                .flags(f).build(),
            |s| ms_value(s.partial_interval),
            |s, v| { s.partial_interval = millis(v); Ok(()) },
        ),
        Property::playing(
            |f| glib::ParamSpecEnum::builder_with_default("output-granularity", playing.granularity)
                .nick("Output granularity")
                .blurb("How each final is cut into text buffers: per segment, per word or per utterance")
                .flags(f).build(),
            |s| s.granularity.to_value(),
            |s, v| { s.granularity = v.get().unwrap(); Ok(()) },
        )
        .only_in(ElementKind::Transcribe),
        Property::playing(
            |f| glib::ParamSpecBoolean::builder("stable-partials")
                .nick("Stable partials")
                .blurb(
                    "Live input: push a partial's words downstream once two consecutive decodes \
                     agree on them, rather than wait for the final, which then adds the rest: \
                     the first words of a long utterance arrive within the latency (captions)",
                )
                .default_value(playing.stable_partials)
                .flags(f).build(),
            |s| s.stable_partials.to_value(),
            |s, v| { s.stable_partials = v.get().unwrap(); Ok(()) },
        )
        .only_in(ElementKind::Transcribe),
        Property::start(
            |f| glib::ParamSpecString::builder("location")
                .nick("Location")
                .blurb(
                    "Write finals to this subtitle file as they come (SRT, WebVTT or JSON \
                     Lines by extension .srt, .vtt, .jsonl, or subtitle-format), timed in \
                     running time and flushed after each cue",
                )
                .flags(f).build(),
            |s| s.location.as_ref().map(|l| l.to_string_lossy().into_owned()).to_value(),
            |s, v| { s.location = Some(text(v)).filter(|l| !l.is_empty()).map(PathBuf::from); Ok(()) },
        )
        .only_in(ElementKind::Sink),
        Property::start(
            |f| glib::ParamSpecString::builder("subtitle-format")
                .nick("Subtitle format")
                .blurb("Format of location: srt, webvtt or jsonl; empty: from its extension")
                .default_value(Some(""))
                .flags(f).build(),
            |s| s.subtitle_format.map(|f| f.name()).unwrap_or("").to_value(),
            set_subtitle_format,
        )
        .only_in(ElementKind::Sink),
    ]
}

impl Settings {
    /// The ParamSpecs of `kind`'s properties: new ones for each element class (GObject
    /// installs a ParamSpec in one class only).
    pub fn properties(kind: ElementKind) -> Vec<glib::ParamSpec> {
        table()
            .into_iter()
            .filter(|p| p.only.is_none_or(|k| k == kind))
            .map(|p| p.spec)
            .collect()
    }

    fn property(name: &str) -> &'static Property {
        TABLE
            .iter()
            .find(|p| p.spec.name() == name)
            .unwrap_or_else(|| unreachable!("unknown property {name}"))
    }

    /// Sets a property; a value that cannot work (an unknown language) is refused with the
    /// reason and the setting keeps its value.
    pub fn set(
        &mut self,
        value: &glib::Value,
        pspec: &glib::ParamSpec,
    ) -> Result<(), PropertyError> {
        match &Self::property(pspec.name()).access {
            Access::Start { set, .. } => set(&mut self.start, value),
            Access::Playing { set, .. } => set(&mut self.playing, value),
            Access::Counter => unreachable!("{} is read-only", pspec.name()),
        }
    }

    /// A property's value (not the counters: the element reports those).
    pub fn get(&self, pspec: &glib::ParamSpec) -> glib::Value {
        match &Self::property(pspec.name()).access {
            Access::Start { get, .. } => get(&self.start),
            Access::Playing { get, .. } => get(&self.playing),
            Access::Counter => unreachable!("{} is the element's counter", pspec.name()),
        }
    }

    /// The worker's start configuration, from the properties as they are now.
    pub fn start_config(&self) -> StartConfig {
        let start = &self.start;
        StartConfig {
            model: start.model.clone(),
            device: start.device,
            compute: start.compute_type.into(),
            context: ContextOptions {
                flash_attn: start.flash_attn,
            },
            idle_timeout: start.idle_timeout,
            vad_model: Some(start.vad_model.clone()).filter(|m| start.vad && !m.is_empty()),
            decode: self.playing.decode_options(),
            stream: start.stream_options(),
        }
    }

    pub fn latency(&self) -> gst::ClockTime {
        super::clock_time(self.start.latency)
    }
}

impl StartSettings {
    /// Whether results are live is learnt from upstream when caps arrive.
    fn stream_options(&self) -> StreamOptions {
        StreamOptions {
            live: false,
            vad: self.vad.then_some(VadConfig {
                threshold: self.vad_threshold as f32,
                min_silence: self.vad_min_silence,
                padding: self.vad_padding,
            }),
            partial_interval: self.partial_interval,
            max_utterance: self.max_utterance,
            latency: self.latency,
            phrase_silence: self.vad_phrase_silence,
        }
    }
}

impl PlayingSettings {
    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            language: self.language.trim().to_lowercase(),
            language_detection: self.language_detection.into(),
            translate: self.translate,
            threads: self.threads,
            beam_size: self.beam_size,
            // Word buffers, and stable words sent before the final, need word timing.
            word_timestamps: self.word_timestamps
                || self.granularity == Granularity::Word
                || self.stable_partials,
            initial_prompt: self.initial_prompt.clone(),
            carry_context: self.carry_context,
            temperature: self.temperature as f32,
            temperature_increment: self.temperature_increment as f32,
            no_speech_threshold: self.no_speech_threshold as f32,
            suppress_non_speech: self.suppress_non_speech,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> glib::ParamSpec {
        Settings::property(name).spec.clone()
    }

    fn set(s: &mut Settings, name: &str, value: impl ToValue) -> Result<(), PropertyError> {
        s.set(&value.to_value(), &spec(name))
    }

    /// What every property reads back from the engine's defaults is its declared default.
    #[test]
    fn each_property_reads_back_its_declared_default() {
        gst::init().unwrap();
        let d = Settings::default();
        for p in TABLE
            .iter()
            .filter(|p| !matches!(p.access, Access::Counter))
        {
            let (declared, read) = (p.spec.default_value(), d.get(&p.spec));
            // A value's debug form names its type and its contents (NULL strings too).
            assert_eq!(
                format!("{declared:?}"),
                format!("{read:?}"),
                "{}",
                p.spec.name()
            );
        }
    }

    #[test]
    fn milliseconds_are_kept_as_durations_and_reach_the_engine() {
        let mut s = Settings::default();
        set(&mut s, "latency", 1234u32).unwrap();
        set(&mut s, "vad-min-silence", 250u32).unwrap();
        set(&mut s, "lateness", 70u32).unwrap();
        assert_eq!(s.start.latency, Duration::from_millis(1234));
        assert_eq!(s.playing.lateness, Duration::from_millis(70));
        let config = s.start_config();
        assert_eq!(config.stream.latency, Duration::from_millis(1234));
        assert_eq!(
            config.stream.vad.unwrap().min_silence,
            Duration::from_millis(250)
        );
        assert_eq!(s.get(&spec("latency")).get::<u32>(), Ok(1234));
    }

    #[test]
    fn the_idle_time_out_round_trips_through_its_special_values() {
        let mut s = Settings::default();
        for (seconds, timeout) in [
            (-1, None),
            (0, Some(IdleTimeout::After(Duration::ZERO))),
            (5, Some(IdleTimeout::After(Duration::from_secs(5)))),
            (i32::MAX, Some(IdleTimeout::Never)),
        ] {
            set(&mut s, "model-idle-timeout", seconds).unwrap();
            assert_eq!(s.start.idle_timeout, timeout);
            assert_eq!(s.get(&spec("model-idle-timeout")).get::<i32>(), Ok(seconds));
        }
    }

    #[test]
    fn only_playing_settings_change_where_each_property_says() {
        let mut s = Settings::default();
        set(&mut s, "beam-size", 4u32).unwrap();
        set(&mut s, "language-code", "de-AT").unwrap();
        assert_eq!(s.start, Settings::default().start);
        assert_eq!(s.playing.decode_options().language, "de");
        assert_eq!(
            s.get(&spec("language-code")).get::<String>().unwrap(),
            "de-AT"
        );
        assert!(spec("beam-size")
            .flags()
            .contains(gst::PARAM_FLAG_MUTABLE_PLAYING));
        set(&mut s, "vad-model", " silero.bin ").unwrap();
        assert_eq!(s.playing.beam_size, 4);
        assert!(!spec("vad-model")
            .flags()
            .contains(gst::PARAM_FLAG_MUTABLE_PLAYING));
        assert_eq!(s.start_config().vad_model.as_deref(), Some("silero.bin"));
        set(&mut s, "vad", false).unwrap();
        assert_eq!(
            s.start_config().vad_model,
            None,
            "no detector, no detector model"
        );
    }

    #[test]
    fn values_that_cannot_work_are_refused_and_the_old_value_stays() {
        let mut s = Settings::default();
        assert_eq!(
            set(&mut s, "language", "klingon"),
            Err(PropertyError::UnknownLanguage("klingon".into()))
        );
        assert!(set(&mut s, "device", "tpu").is_err());
        assert!(set(&mut s, "subtitle-format", "doc").is_err());
        assert_eq!(s, Settings::default());
    }
}
