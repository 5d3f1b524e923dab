//! The per-stream transcriber. Plain Rust: tests drive it without GStreamer; the elements
//! adapt it to pads and messages.
//!
//! Audio (16 kHz mono) is cut into utterances by the voice detector; silence never reaches
//! whisper.cpp. Each utterance is decoded once when it ends (a final). In live mode the
//! utterance in progress is also decoded at a steady cadence (partials), and the words two
//! consecutive decodes agree on (LocalAgreement-2) are reported as stable.

use crate::model::cache::ModelHandle;
use crate::vad::silero::SileroVad;
use crate::vad::{dynamic_range_db, EnergyVad, VadConfig, VadEvent, VoiceDetector, FRAME_SAMPLES};
use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use whisper_rs::{FullParams, SamplingStrategy, WhisperState};

pub const SAMPLE_RATE: u32 = 16_000;
/// Whisper's encoder sees 30 s at a time: the longest an utterance can be.
pub const WINDOW_SAMPLES: usize = 30 * SAMPLE_RATE as usize;
/// whisper.cpp skips input under 100 ms and reads out of bounds under 201 samples; shorter
/// audio is padded with silence to this length.
const MIN_DECODE_SAMPLES: usize = SAMPLE_RATE as usize;
/// In file mode only a pause this long ends an utterance: longer audio gives Whisper more
/// context, and there is no latency to keep.
const FILE_MODE_MIN_SILENCE: Duration = Duration::from_secs(2);
/// ... and one that reaches this length is cut at its longest pause (`cut_at_best_pause`).
/// On the 10-minute benchmark recording limits of 16 and 20 s gave WER 0.048 and 0.047, 24
/// and 28 s 0.052 and 0.050 and slower decodes (the decoder attends to the whole encoder
/// output); ending at the first 400 ms pause after 10 s, as before, 0.052.
const FILE_MODE_MAX_UTTERANCE: Duration = Duration::from_secs(20);
/// An utterance with less speech than this (a click, a cough) is dropped without inference.
const MIN_SPEECH_FRAMES: usize = 5;
/// Audio flatter than this is steady noise, not speech: dropped without inference.
const MIN_SPEECH_DYNAMIC_RANGE_DB: f32 = 10.0;
/// Decodes shrink the encoder to the audio (much faster on short utterances), keeping this
/// many positions of margin; whisper.cpp loops on too small a context.
const AUDIO_CTX_MARGIN: usize = 64;
/// Contexts below this (about 9 s) made tiny.en loop on short audio here.
const MIN_FITTED_AUDIO_CTX: usize = 448;
const FULL_AUDIO_CTX: usize = 1500;
/// Utterances shorter than this whose text is improbable (mean token log-probability under
/// `IMPROBABLE_LOGPROB`, whisper.cpp's own fallback threshold) are not reported.
const SHORT_FRAGMENT_SAMPLES: usize = SAMPLE_RATE as usize;
const IMPROBABLE_LOGPROB: f32 = -1.0;
/// The scheduler's deadline for file-mode decodes (see `Transcriber::deadline`).
const FILE_DEADLINE: Duration = Duration::from_secs(30);
/// whisper.cpp timestamps count 10 ms steps.
/// Live: a pause this long after speech the last partial did not hear brings the next partial
/// forward; if the pause then ends the utterance, that partial is its final (no second decode).
const EARLY_PARTIAL_PAUSE: Duration = Duration::from_millis(150);
const SAMPLES_PER_TICK: i64 = SAMPLE_RATE as i64 / 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscribeError {
    #[error("language '{0}' is not one Whisper knows")]
    UnknownLanguage(String),
    #[error("could not create a whisper state: {0}")]
    State(String),
    #[error("whisper.cpp inference failed: {0}")]
    Inference(String),
    #[error("inference aborted")]
    Aborted,
    #[error("bad input: {0}")]
    Input(String),
}

/// Of a prompt's text, the end this long (in bytes) holds more than the `MAX_PROMPT_TOKENS`
/// whisper.cpp takes (about 4 bytes a token in English, 1 to 3 in other scripts). Text before
/// it is not tokenized: whisper.cpp's tokenizer regex recurses once per character of a word,
/// and a word of some thousands of characters overflowed the worker thread's stack.
const PROMPT_TAIL_BYTES: usize = 2048;

/// The end of `text` that can still reach the prompt, from a word boundary when there is
/// one near the cut.
fn prompt_tail(text: &str) -> &str {
    if text.len() <= PROMPT_TAIL_BYTES {
        return text;
    }
    let mut cut = text.len() - PROMPT_TAIL_BYTES;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let tail = &text[cut..];
    match tail
        .char_indices()
        .take_while(|(i, _)| *i < 64)
        .find(|(_, c)| c.is_whitespace())
    {
        Some((space, _)) => tail[space..].trim_start(),
        None => tail,
    }
}

/// Beams whisper.cpp decodes at most (its `WHISPER_MAX_DECODERS`); a wider beam fails every
/// decode with error -4.
pub const MAX_BEAM_SIZE: u32 = 8;

/// Decoding choices for one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// A Whisper language code, or `auto` to detect it. English-only models always use `en`.
    pub language: String,
    pub translate: bool,
    pub threads: u32,
    /// 0 or 1: greedy; more: beam search of that width, at most `MAX_BEAM_SIZE`.
    pub beam_size: u32,
    pub word_timestamps: bool,
    /// Text that primes every decode (names, spelling, style).
    pub initial_prompt: String,
    /// Prime each utterance's decode with the stream's previous final (never another
    /// stream's: the context lives in this transcriber).
    pub carry_context: bool,
    /// Sampling temperature of the first attempt (0: the most likely tokens).
    pub temperature: f32,
    /// Step by which whisper.cpp raises the temperature and retries a decode that looks
    /// wrong (too repetitive or improbable); 0 turns the fallback off.
    pub temperature_increment: f32,
    /// A segment whose no-speech probability is above this and whose tokens are improbable
    /// is dropped as silence.
    pub no_speech_threshold: f32,
    /// Never emit non-speech tokens (music notes, bracketed sound descriptions).
    pub suppress_non_speech: bool,
}

/// Inference threads by default: the machine's cores, at most 8 (whisper.cpp gains little past that).
pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .min(8)
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            language: "auto".into(),
            translate: false,
            threads: default_threads(),
            beam_size: 0,
            word_timestamps: false,
            initial_prompt: String::new(),
            carry_context: false,
            temperature: 0.0,
            temperature_increment: 0.2,
            no_speech_threshold: 0.6,
            suppress_non_speech: true,
        }
    }
}

/// The `'static` spelling whisper.cpp uses for a language code, or `None` if unknown.
pub fn whisper_language(code: &str) -> Option<&'static str> {
    if code == "auto" {
        return Some("auto");
    }
    whisper_rs::get_lang_id(code).and_then(whisper_rs::get_lang_str)
}

/// The Whisper language for a BCP-47 tag (`en-US`, `pt-BR`, `zh-Hant-TW`): its primary
/// subtag, where Whisper spells a language differently from BCP-47 mapped to Whisper's code.
/// An empty tag or `auto` is detection.
pub fn language_for_bcp47(tag: &str) -> Option<&'static str> {
    let tag = tag.trim().to_lowercase();
    let primary = tag.split(['-', '_']).next().unwrap_or_default();
    let code = match primary {
        "" | "auto" | "und" => "auto",
        "iw" => "he",
        "jv" => "jw",
        "in" => "id",
        "nb" => "no",
        "fil" => "tl",
        "cmn" => "zh",
        other => other,
    };
    whisper_language(code)
}

/// How the stream is cut into utterances and when results come.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOptions {
    /// Live: partial results while speech goes on. Otherwise only finals, decoded as fast as
    /// the CPU allows.
    pub live: bool,
    /// The built-in voice detector; `None` cuts the stream into 30 s windows instead.
    pub vad: Option<VadConfig>,
    /// Live mode: decode the utterance in progress after this much new speech.
    pub partial_interval: Duration,
    /// An utterance longer than this is ended (a final) where it stands.
    pub max_utterance: Duration,
    /// Live mode: how long after its utterance a final may come; sets its decode's deadline.
    pub latency: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            live: false,
            vad: Some(VadConfig::default()),
            partial_interval: Duration::from_millis(1000),
            max_utterance: Duration::from_secs(30),
            latency: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub start: Duration,
    pub end: Duration,
    pub probability: f32,
}

/// A piece of text with its time: one whisper.cpp segment of an utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub text: String,
    pub start: Duration,
    pub end: Duration,
}

/// A result for one utterance, timed from the first sample pushed into the transcriber.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub is_final: bool,
    /// Partials and the final of one utterance share it.
    pub utterance_id: u64,
    /// Partials: the leading words two consecutive decodes agreed on (LocalAgreement-2).
    pub stable_text: String,
    pub start: Duration,
    pub end: Duration,
    pub language: String,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub pieces: Vec<Piece>,
    /// Filled when word timestamps were asked for.
    pub words: Vec<Word>,
    /// Time whisper.cpp spent on the decode this result came from.
    pub inference_time: Duration,
    /// Time that decode waited for the scheduler to free threads for it.
    pub queue_time: Duration,
    /// Threads the scheduler gave that decode.
    pub threads: u32,
    /// Length of the audio that decode saw.
    pub audio_duration: Duration,
}

/// Whole seconds apart, so a stream running for months cannot overflow the nanoseconds.
fn samples_to_duration(samples: u64) -> Duration {
    let rate = SAMPLE_RATE as u64;
    Duration::from_secs(samples / rate)
        + Duration::from_nanos(samples % rate * 1_000_000_000 / rate)
}

fn duration_to_samples(d: Duration) -> usize {
    (d.as_nanos() * SAMPLE_RATE as u128 / 1_000_000_000) as usize
}

/// One whisper.cpp segment, with times in samples from the decoded audio's start.
#[derive(Clone)]
struct Segment {
    text: String,
    start: i64,
    end: i64,
    logprob_sum: f32,
    tokens: usize,
    no_speech_prob: f32,
    words: Vec<(String, i64, i64, f32)>,
}

#[derive(Clone)]
struct Decoded {
    segments: Vec<Segment>,
    language: &'static str,
    inference_time: Duration,
    queue_time: Duration,
    threads: u32,
    /// The scheduler served it after its deadline.
    late: bool,
}

unsafe extern "C" fn abort_requested(flag: *mut c_void) -> bool {
    // SAFETY: `flag` points into the `Arc<AtomicBool>` the decoder keeps alive for as long as
    // its parameters are in use.
    unsafe { (*(flag as *const AtomicBool)).load(Ordering::Relaxed) }
}

/// One stream's decoding: its parameters and context; each decode borrows a whisper state
/// from the model's pool.
struct Decoder {
    params: FullParams<'static, 'static>,
    model: ModelHandle,
    options: DecodeOptions,
    /// What the stream asked for: a language, or `auto`.
    requested_language: &'static str,
    /// The language decodes use: the requested one, or the one detected first.
    language: &'static str,
    /// `initial_prompt`, tokenized.
    prompt_tokens: Vec<c_int>,
    /// The previous final's tokens, with `carry_context`.
    context_tokens: Vec<c_int>,
    abort: Arc<AtomicBool>,
    calls: u64,
    #[cfg(feature = "fault-injection")]
    inject_inference_error: bool,
}

/// Prompt tokens whisper.cpp takes at most (half its text context).
const MAX_PROMPT_TOKENS: usize = 223;

impl Decoder {
    fn new(model: ModelHandle, options: &DecodeOptions) -> Result<Self, TranscribeError> {
        // A model whisper.cpp cannot run on fails here, before any audio.
        model
            .prepare_state()
            .map_err(|e| TranscribeError::State(e.to_string()))?;
        let mut decoder = Decoder {
            params: FullParams::new(SamplingStrategy::Greedy { best_of: 1 }),
            model,
            options: options.clone(),
            requested_language: "en",
            language: "en",
            prompt_tokens: Vec::new(),
            context_tokens: Vec::new(),
            abort: Arc::new(AtomicBool::new(false)),
            calls: 0,
            #[cfg(feature = "fault-injection")]
            inject_inference_error: false,
        };
        decoder.configure(options)?;
        Ok(decoder)
    }

    /// Builds the parameters for `options`. Done once per stream and on each change of the
    /// options, then cloned per call: the setters leak a little on every call.
    fn configure(&mut self, options: &DecodeOptions) -> Result<(), TranscribeError> {
        let multilingual = self.model.context().is_multilingual();
        let language = if multilingual {
            whisper_language(&options.language)
                .ok_or_else(|| TranscribeError::UnknownLanguage(options.language.clone()))?
        } else {
            "en"
        };
        if options.beam_size > MAX_BEAM_SIZE {
            return Err(TranscribeError::Input(format!(
                "beam size {} is more than whisper.cpp's {MAX_BEAM_SIZE} decoders",
                options.beam_size
            )));
        }
        let prompt_tokens = self.tokenize(&options.initial_prompt)?;
        // A language detected earlier stays unless the language itself changed.
        let settled = (self.options.language == options.language
            && self.requested_language == language
            && self.language != language)
            .then_some(self.language);
        let strategy = if options.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: options.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(options.threads.max(1) as i32);
        params.set_language(Some(language));
        params.set_translate(options.translate && multilingual);
        // The stream's own context is passed as prompt tokens (see `prompt`), so whisper.cpp
        // keeps none between calls: a partial's text never primes the final of its own audio.
        params.set_no_context(true);
        params.set_token_timestamps(options.word_timestamps);
        params.set_temperature(options.temperature);
        params.set_temperature_inc(options.temperature_increment);
        params.set_no_speech_thold(options.no_speech_threshold);
        params.set_suppress_blank(true);
        params.set_suppress_nst(options.suppress_non_speech);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        // The safe abort setter is unsound (engine notes): use the raw one with a flag.
        // SAFETY: the callback only reads the AtomicBool, which `self.abort` keeps alive as
        // long as the decoder (and so every clone of these parameters) lives.
        unsafe {
            params.set_abort_callback(Some(abort_requested));
            params.set_abort_callback_user_data(Arc::as_ptr(&self.abort) as *mut c_void);
        }
        if !options.carry_context {
            self.context_tokens.clear();
        }
        if let Some(settled) = settled {
            params.set_language(Some(settled));
        }
        self.params = params;
        self.requested_language = language;
        self.language = settled.unwrap_or(language);
        self.prompt_tokens = prompt_tokens;
        self.options = options.clone();
        Ok(())
    }

    fn tokenize(&self, text: &str) -> Result<Vec<c_int>, TranscribeError> {
        let text = prompt_tail(text.trim());
        if text.is_empty() {
            return Ok(Vec::new());
        }
        // A leading space: the prompt reads as text that came before, like a decode's output.
        let tokens = self
            .model
            .context()
            .tokenize(&format!(" {text}"), 4 * text.len() + 8)
            .map_err(|e| TranscribeError::Input(format!("cannot tokenize '{text}': {e}")))?;
        Ok(tokens)
    }

    /// The tokens that prime the next decode: the initial prompt, then as much of the end of
    /// the carried context as whisper.cpp still takes (the user's prompt goes last to go).
    fn prompt(&self) -> Vec<c_int> {
        let initial =
            &self.prompt_tokens[self.prompt_tokens.len().saturating_sub(MAX_PROMPT_TOKENS)..];
        let room = MAX_PROMPT_TOKENS - initial.len();
        let context = &self.context_tokens[self.context_tokens.len().saturating_sub(room)..];
        initial.iter().chain(context).copied().collect()
    }

    /// Called with each final's text: the context for the next utterance of this stream.
    fn remember(&mut self, text: &str) {
        if self.options.carry_context {
            self.context_tokens = self.tokenize(text).unwrap_or_default();
        }
    }

    /// Language detection runs on the stream's first decode only; later decodes use what it
    /// found (detection costs an extra encoder pass per call).
    fn settle_language(&mut self, detected: &'static str) {
        if self.language == "auto" && detected != "auto" {
            self.language = detected;
            self.params.set_language(Some(detected));
        }
    }

    /// A new stream (a flush): no context, and the language is detected again.
    fn reset(&mut self) {
        self.context_tokens.clear();
        if self.language != self.requested_language {
            self.language = self.requested_language;
            self.params.set_language(Some(self.requested_language));
        }
    }

    /// Decodes `audio` with the encoder sized to it, falling back to the full context when
    /// the result looks like a repetition loop. The scheduler serves it by `deadline`.
    fn decode(&mut self, audio: &[f32], deadline: Instant) -> Result<Decoded, TranscribeError> {
        let centred;
        let audio = match dc_offset(audio) {
            Some(offset) => {
                centred = audio.iter().map(|s| s - offset).collect::<Vec<f32>>();
                &centred[..]
            }
            None => audio,
        };
        let ctx = (audio.len() / 320 + AUDIO_CTX_MARGIN).max(MIN_FITTED_AUDIO_CTX);
        let ctx = ctx.div_ceil(64) * 64;
        if ctx < FULL_AUDIO_CTX {
            let decoded = self.decode_with_ctx(audio, ctx as i32, deadline)?;
            if !looks_like_a_loop(&decoded, audio.len()) {
                return Ok(decoded);
            }
        }
        self.decode_with_ctx(audio, 0, deadline)
    }

    /// `audio_ctx` 0: the model's full 30 s context.
    fn decode_with_ctx(
        &mut self,
        audio: &[f32],
        audio_ctx: i32,
        deadline: Instant,
    ) -> Result<Decoded, TranscribeError> {
        let mut padded;
        let audio = if audio.len() < MIN_DECODE_SAMPLES {
            padded = audio.to_vec();
            padded.resize(MIN_DECODE_SAMPLES, 0.0);
            &padded[..]
        } else {
            audio
        };
        let threads = self.options.threads.max(1);
        let prompt = self.prompt();
        let budget = crate::scheduler::for_device(self.model.key().device);
        let queued = Instant::now();
        let Some(permit) = budget.acquire(threads, deadline, &self.abort) else {
            return Err(TranscribeError::Aborted);
        };
        if self.abort.load(Ordering::Relaxed) {
            return Err(TranscribeError::Aborted);
        }
        let started = Instant::now();
        self.calls += 1;
        let mut params: FullParams<'static, '_> = self.params.clone();
        if audio_ctx > 0 {
            // A fitted context can make whisper.cpp run on: no segment may hold much more
            // than the audio could say.
            let seconds = audio.len() as f32 / SAMPLE_RATE as f32;
            params.set_max_tokens((seconds * 6.0) as i32 + 10);
        }
        params.set_n_threads(permit.threads() as i32);
        params.set_audio_ctx(audio_ctx);
        #[cfg(feature = "fault-injection")]
        if std::mem::take(&mut self.inject_inference_error) {
            // More than any model's context: whisper.cpp refuses the decode.
            params.set_audio_ctx(1 << 20);
        }
        params.set_tokens(&prompt);
        // Lent while the permit is held: no more states than decodes the budget allows.
        let mut state = self
            .model
            .lend_state()
            .map_err(|e| TranscribeError::State(e.to_string()))?;
        let result = state.full(params, audio);
        if self.abort.load(Ordering::Relaxed) {
            return Err(TranscribeError::Aborted);
        }
        result.map_err(|e| TranscribeError::Inference(e.to_string()))?;
        let inference_time = started.elapsed();
        let language = match self.language {
            "auto" => whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or("auto"),
            l => l,
        };
        let segments = self.segments(&state, audio.len() as i64);
        drop(state);
        let (late, permit_threads) = (permit.late, permit.threads());
        drop(permit);
        Ok(Decoded {
            segments,
            language,
            inference_time,
            queue_time: started.duration_since(queued),
            threads: permit_threads,
            late,
        })
    }

    fn segments(&self, state: &WhisperState, audio_samples: i64) -> Vec<Segment> {
        let eot = self.model.context().token_eot();
        let clamp = |ticks: i64| (ticks * SAMPLES_PER_TICK).clamp(0, audio_samples);
        let mut out = Vec::new();
        for i in 0..state.full_n_segments() {
            let Some(seg) = state.get_segment(i) else {
                continue;
            };
            let text = seg
                .to_str_lossy()
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            let mut words: Vec<(String, i64, i64, f32)> = Vec::new();
            let (mut logprob_sum, mut tokens) = (0.0f32, 0);
            for j in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(j) else {
                    continue;
                };
                if tok.token_id() >= eot {
                    continue;
                }
                let data = tok.token_data();
                logprob_sum += data.plog;
                tokens += 1;
                if !self.options.word_timestamps {
                    continue;
                }
                let piece = tok
                    .to_str_lossy()
                    .map(|s| s.into_owned())
                    .unwrap_or_default();
                let (t0, t1) = (clamp(data.t0), clamp(data.t1));
                match words.last_mut() {
                    Some(w) if !piece.starts_with(' ') => {
                        w.0.push_str(&piece);
                        w.2 = w.2.max(t1);
                        w.3 = w.3.min(data.p);
                    }
                    _ => words.push((piece, t0, t1, data.p)),
                }
            }
            words.iter_mut().for_each(|w| w.0 = w.0.trim().to_string());
            words.retain(|w| !w.0.is_empty());
            out.push(Segment {
                text,
                start: clamp(seg.start_timestamp()),
                end: clamp(seg.end_timestamp()),
                logprob_sum,
                tokens,
                no_speech_prob: seg.no_speech_probability(),
                words,
            });
        }
        out
    }
}

/// The audio's constant offset, when it has one worth removing: Whisper mishears speech
/// riding on one (WER 0.03 -> 0.11 on an offset of half full scale), and a cheap sound card or
/// a bad conversion gives one. Audio without one is left as it is, bit for bit.
fn dc_offset(audio: &[f32]) -> Option<f32> {
    const NOTICEABLE: f32 = 0.01;
    let mean = audio.iter().map(|&s| s as f64).sum::<f64>() / audio.len().max(1) as f64;
    (mean.abs() as f32 > NOTICEABLE).then_some(mean as f32)
}

/// A decode that repeats itself or says far more than the audio could hold: the sign of a
/// too small encoder context.
fn looks_like_a_loop(decoded: &Decoded, samples: usize) -> bool {
    let words: Vec<String> = decoded
        .segments
        .iter()
        .flat_map(|s| s.text.split_whitespace())
        .map(comparable)
        .collect();
    words_look_like_a_loop(&words, samples as f32 / SAMPLE_RATE as f32)
}

/// More words than `seconds` of speech can hold, the same 3-word phrase three times in a row,
/// or a phrase of 4 words or more twice in a row (a fitted context tends to say the end of an
/// utterance again: "four queen of clubs four queen of clubs"; speech rarely does).
fn words_look_like_a_loop(words: &[String], seconds: f32) -> bool {
    if words.len() as f32 > 6.0 * seconds + 5.0 {
        return true;
    }
    let thrice = words
        .windows(9)
        .any(|w| w[0..3] == w[3..6] && w[3..6] == w[6..9]);
    thrice || (4..=words.len() / 2).any(|n| words.windows(2 * n).any(|w| w[..n] == w[n..]))
}

/// Under a second and improbable (mean token log-probability under `IMPROBABLE_LOGPROB`):
/// Whisper's classic hallucination ("Thank you.", "Bye."), heard in a cough or a silence.
fn improbable_fragment(samples: i64, logprob_sum: f32, tokens: usize) -> bool {
    samples < SHORT_FRAGMENT_SAMPLES as i64
        && logprob_sum < IMPROBABLE_LOGPROB * tokens.max(1) as f32
}

/// Drops a last segment that is Whisper's classic hallucination on the silence after speech
/// ("Thank you." appended to a sentence): under a second, improbable, and running past the
/// detector's last speech frame (`speech_end`, samples into the audio; none without a
/// detector). Seen on the 10-minute benchmark recording: "...printed in black letter. Thank
/// you." where the "Thank you." segment was 0.54 s at a mean log-probability of -1.11.
fn drop_tail_hallucination(segments: &mut Vec<Segment>, speech_end: Option<usize>) {
    let Some(last) = segments.last() else {
        return;
    };
    let into_silence = speech_end.is_none_or(|end| last.end > end as i64);
    let fragment = improbable_fragment(last.end - last.start, last.logprob_sum, last.tokens);
    if segments.len() > 1 && fragment && into_silence {
        segments.pop();
    }
}

/// Lower-cased words without punctuation, for comparing hypotheses.
fn comparable(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

pub struct Transcriber {
    decoder: Decoder,
    options: StreamOptions,
    vad: Option<VoiceDetector>,
    /// Samples pushed so far: the stream's sample clock.
    position: u64,
    /// Samples not yet a whole VAD frame.
    carry: Vec<f32>,
    /// Recent silence kept to pad the start of the next utterance.
    preroll: VecDeque<f32>,
    utterance: Vec<f32>,
    /// Stream position of `utterance[0]`.
    utterance_start: u64,
    /// Frames of the utterance the detector called speech.
    speech_frames: usize,
    /// Utterance length when the last partial decode ran.
    partial_at: usize,
    previous_hypothesis: Vec<String>,
    stable_words: usize,
    next_utterance: u64,
    late_decodes: u64,
    /// Where the detector last heard speech in the utterance (samples into it).
    speech_end: Option<usize>,
    /// Pause frames at the end of the utterance so far.
    pause_frames: usize,
    /// The last partial's decode and how many utterance samples it heard: the final when
    /// it heard all the speech.
    last_partial: Option<(usize, Decoded)>,
    /// Where an utterance at its length limit is cut: its longest pause in the second half.
    best_pause: Option<PauseRun>,
}

/// A run of pause frames inside an utterance.
#[derive(Debug, Clone, Copy)]
struct PauseRun {
    /// Samples into the utterance.
    start: usize,
    len: usize,
    /// Speech frames before it.
    speech_frames: usize,
}

impl Transcriber {
    /// Makes sure whisper.cpp can decode with `model`; the whisper state comes from the
    /// model's pool per decode.
    pub fn new(
        model: ModelHandle,
        decode: &DecodeOptions,
        options: StreamOptions,
    ) -> Result<Self, TranscribeError> {
        let mut t = Transcriber {
            decoder: Decoder::new(model, decode)?,
            vad: options
                .vad
                .map(|config| VoiceDetector::Energy(EnergyVad::new(config))),
            options: options.clone(),
            position: 0,
            carry: Vec::with_capacity(FRAME_SAMPLES),
            preroll: VecDeque::new(),
            utterance: Vec::with_capacity(WINDOW_SAMPLES),
            utterance_start: 0,
            speech_frames: 0,
            partial_at: 0,
            previous_hypothesis: Vec::new(),
            stable_words: 0,
            next_utterance: 0,
            late_decodes: 0,
            speech_end: None,
            pause_frames: 0,
            last_partial: None,
            best_pause: None,
        };
        t.set_live(options.live);
        Ok(t)
    }

    pub fn model(&self) -> &ModelHandle {
        &self.decoder.model
    }

    /// whisper.cpp inference calls made so far.
    pub fn inference_calls(&self) -> u64 {
        self.decoder.calls
    }

    /// Samples pushed so far.
    pub fn position(&self) -> u64 {
        let undecided = self.vad.as_ref().map_or(0, |v| v.undecided_samples());
        self.position + (self.carry.len() + undecided) as u64
    }

    /// The earliest sample a transcript still to come can start at: the start of the
    /// utterance in progress or, between utterances, of the silence kept to pad the next.
    pub fn settled(&self) -> u64 {
        match (&self.vad, self.utterance.is_empty()) {
            (None, _) => self.position - self.utterance.len() as u64,
            (Some(_), true) => self.position - self.preroll.len() as u64,
            (Some(_), false) => self.utterance_start,
        }
    }

    /// Detects voice with a Silero model (a `ModelKind::SileroVad` handle from the cache)
    /// instead of the built-in detector, with the same settings. Only before any audio, and
    /// only with voice detection on.
    pub fn use_silero(&mut self, model: ModelHandle) -> Result<(), TranscribeError> {
        let Some(config) = self.vad.as_ref().map(|v| *v.config()) else {
            return Ok(());
        };
        let silero = SileroVad::new(model, config).map_err(TranscribeError::Input)?;
        self.vad = Some(VoiceDetector::Silero(silero));
        Ok(())
    }

    pub fn is_live(&self) -> bool {
        self.options.live
    }

    /// Switches between live (partials) and file mode; takes effect from the next audio.
    pub fn set_live(&mut self, live: bool) {
        self.options.live = live;
        if let (Some(vad), Some(config)) = (self.vad.as_mut(), self.options.vad) {
            vad.set_min_silence(if live {
                config.min_silence
            } else {
                config.min_silence.max(FILE_MODE_MIN_SILENCE)
            });
        }
    }

    /// Changes how decodes are made, from the next decode on (properties changed while
    /// playing). An error leaves the previous options in place.
    pub fn set_decode_options(&mut self, options: &DecodeOptions) -> Result<(), TranscribeError> {
        if *options != self.decoder.options {
            self.decoder.configure(options)?;
            self.last_partial = None;
        }
        Ok(())
    }

    /// Decode options the model cannot follow, for a warning: an English-only model
    /// transcribes English whatever `language` and `translate` ask for.
    pub fn ignored_options(&self) -> Option<String> {
        let options = &self.decoder.options;
        if self.decoder.model.context().is_multilingual() {
            return None;
        }
        let mut ignored = Vec::new();
        if !matches!(options.language.as_str(), "en" | "auto") {
            ignored.push(format!("language '{}'", options.language));
        }
        if options.translate {
            ignored.push("translate".to_string());
        }
        (!ignored.is_empty()).then(|| ignored.join(" and "))
    }

    /// Makes the next decode fail in whisper.cpp (src/faults.rs).
    #[cfg(feature = "fault-injection")]
    pub fn inject_inference_error(&mut self) {
        self.decoder.inject_inference_error = true;
    }

    /// Tokens of this stream's previous final that prime the next decode (`carry_context`).
    pub fn carried_context_tokens(&self) -> usize {
        self.decoder.context_tokens.len()
    }

    pub fn decode_options(&self) -> &DecodeOptions {
        &self.decoder.options
    }

    /// A flag that, once set, makes the running and every later decode stop early with
    /// `Aborted` until it is cleared.
    pub fn abort_flag(&self) -> Arc<AtomicBool> {
        self.decoder.abort.clone()
    }

    /// Adds audio and returns the results it completes.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<Transcript>, TranscribeError> {
        self.push_audio(samples, true)
    }

    /// Like `push`; with `partial_allowed` false no partial decode runs now (the caller is
    /// behind real time and sheds partials to catch up; finals are never shed).
    pub fn push_audio(
        &mut self,
        samples: &[f32],
        partial_allowed: bool,
    ) -> Result<Vec<Transcript>, TranscribeError> {
        let mut out = Vec::new();
        let clean = samples.iter().map(|s| {
            if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        });
        if self.vad.is_none() {
            for s in clean {
                self.utterance.push(s);
                self.position += 1;
                if self.utterance.len() >= WINDOW_SAMPLES {
                    out.extend(self.finish_utterance()?);
                }
            }
        } else {
            for s in clean {
                self.carry.push(s);
                if self.carry.len() == FRAME_SAMPLES {
                    let frame =
                        std::mem::replace(&mut self.carry, Vec::with_capacity(FRAME_SAMPLES));
                    let decided = self.vad.as_mut().unwrap().push(&frame);
                    for (frame, event) in decided.map_err(TranscribeError::Inference)? {
                        out.extend(self.frame(&frame, event)?);
                    }
                }
            }
        }
        if self.options.live && partial_allowed && !self.utterance.is_empty() {
            let interval = duration_to_samples(self.options.partial_interval);
            let unheard_speech = self.speech_end.is_some_and(|end| end > self.partial_at);
            let paused =
                self.pause_frames * FRAME_SAMPLES >= duration_to_samples(EARLY_PARTIAL_PAUSE);
            let due = self.utterance.len() >= self.partial_at + interval;
            let early = paused && unheard_speech;
            // Partial passes are the first thing shed: a regular one runs only on an idle
            // device, an early one (likely to be the final) while no decode waits. The device
            // is asked only when one is due: it takes the device's lock.
            if due || early {
                let device = crate::scheduler::for_device(self.decoder.model.key().device);
                if (due && device.idle()) || (early && device.waiting() == 0) {
                    out.extend(self.partial()?);
                }
            }
        }
        Ok(out)
    }

    /// One frame the detector decided on, in stream order.
    fn frame(
        &mut self,
        frame: &[f32],
        event: VadEvent,
    ) -> Result<Vec<Transcript>, TranscribeError> {
        let config = *self.vad.as_ref().unwrap().config();
        let frame_start = self.position;
        self.position += frame.len() as u64;
        let padding = duration_to_samples(config.padding);
        let in_utterance = !self.utterance.is_empty();
        match event {
            VadEvent::Silence => {
                self.keep_preroll(frame, padding);
                Ok(Vec::new())
            }
            // After an utterance was ended at a pause (files), speech goes on as a new one.
            VadEvent::SpeechStart | VadEvent::Speech if !in_utterance => {
                self.utterance.extend(self.preroll.drain(..));
                self.utterance_start = frame_start - self.utterance.len() as u64;
                self.utterance.extend_from_slice(frame);
                self.speech_frames = 1;
                self.pause_frames = 0;
                self.speech_end = Some(self.utterance.len());
                Ok(Vec::new())
            }
            VadEvent::Pause | VadEvent::SpeechEnd if !in_utterance => {
                self.keep_preroll(frame, padding);
                Ok(Vec::new())
            }
            VadEvent::SpeechStart | VadEvent::Speech | VadEvent::Pause => {
                self.utterance.extend_from_slice(frame);
                let limit = self.max_utterance_samples();
                if event == VadEvent::Pause {
                    self.pause_frames += 1;
                    let len = self.pause_frames * frame.len();
                    let run = PauseRun {
                        start: self.utterance.len() - len,
                        len,
                        speech_frames: self.speech_frames,
                    };
                    // Ties go to the later pause: the longer first part.
                    if run.start >= limit / 2 && self.best_pause.is_none_or(|b| len >= b.len) {
                        self.best_pause = Some(run);
                    }
                } else {
                    self.speech_frames += 1;
                    self.pause_frames = 0;
                    self.speech_end = Some(self.utterance.len());
                }
                if self.utterance.len() >= limit {
                    return self.cut_at_best_pause(padding);
                }
                Ok(Vec::new())
            }
            VadEvent::SpeechEnd => {
                // The pause frames the utterance holds (the ending frame is not in it).
                let silence = self.pause_frames * frame.len();
                self.end_at_pause(silence, padding)
            }
        }
    }

    /// Keeps the last `padding` of silence to start the next utterance with.
    fn keep_preroll(&mut self, frame: &[f32], padding: usize) {
        self.preroll.extend(frame);
        while self.preroll.len() > padding {
            self.preroll.pop_front();
        }
    }

    /// Ends the utterance whose last `silence` samples are a pause, keeping `padding` of it.
    fn end_at_pause(
        &mut self,
        silence: usize,
        padding: usize,
    ) -> Result<Vec<Transcript>, TranscribeError> {
        let keep = self
            .utterance
            .len()
            .saturating_sub(silence.saturating_sub(padding));
        self.utterance.truncate(keep.max(1));
        self.preroll.clear();
        self.finish_utterance()
    }

    /// The length at which an utterance is cut even without a pause that ends it.
    fn max_utterance_samples(&self) -> usize {
        let limit = match self.options.live {
            true => self.options.max_utterance,
            false => self.options.max_utterance.min(FILE_MODE_MAX_UTTERANCE),
        };
        duration_to_samples(limit).clamp(FRAME_SAMPLES, WINDOW_SAMPLES)
    }

    /// Ends an utterance at its length limit at its longest pause in the second half
    /// (keeping `padding` of it on each side, at most half), so that no word is cut in two;
    /// what follows the pause starts the next utterance. Without a pause it is cut where it
    /// stands.
    fn cut_at_best_pause(&mut self, padding: usize) -> Result<Vec<Transcript>, TranscribeError> {
        let Some(pause) = self.best_pause.take() else {
            let out = self.finish_utterance()?;
            // Speech goes on: the next utterance starts here.
            self.utterance_start = self.position;
            return Ok(out);
        };
        let pause_end = pause.start + pause.len;
        if pause_end == self.utterance.len() {
            // The pause is still going on: the utterance simply ends in it.
            return self.end_at_pause(pause.len, padding);
        }
        let keep = padding.min(pause.len / 2);
        let next_start = pause_end - keep;
        let mut rest = Vec::with_capacity(WINDOW_SAMPLES);
        rest.extend_from_slice(&self.utterance[next_start..]);
        let rest_start = self.utterance_start + next_start as u64;
        let rest_speech_frames = self.speech_frames.saturating_sub(pause.speech_frames);
        let rest_speech_end = self.speech_end.map(|end| end.saturating_sub(next_start));
        let rest_pause_frames = self.pause_frames;
        self.utterance.truncate(pause.start + keep);
        self.speech_end = Some(pause.start);
        self.speech_frames = pause.speech_frames;
        // A partial heard words after the cut: it cannot be the first part's final.
        self.last_partial = None;
        let out = self.finish_utterance();
        self.utterance = rest;
        self.utterance_start = rest_start;
        self.speech_frames = rest_speech_frames;
        self.speech_end = rest_speech_end;
        self.pause_frames = rest_pause_frames;
        out
    }

    /// Samples into the utterance before which a cut at the length limit cannot fall: the
    /// start of its best pause so far, or the middle of the limit.
    fn earliest_cut(&self) -> usize {
        self.best_pause
            .map_or(self.max_utterance_samples() / 2, |p| p.start)
    }

    /// Ends the utterance in progress: decodes it and returns its final.
    fn finish_utterance(&mut self) -> Result<Vec<Transcript>, TranscribeError> {
        if self.utterance.is_empty() || !self.worth_decoding() {
            // Only the utterance: the detector may hold later frames (Silero decides late).
            self.clear_utterance();
            return Ok(Vec::new());
        }
        let audio = std::mem::take(&mut self.utterance);
        let speech_end = self.speech_end.take();
        self.speech_frames = 0;
        let start = if self.vad.is_some() {
            self.utterance_start
        } else {
            self.position - audio.len() as u64
        };
        let covering_partial = self
            .last_partial
            .take()
            .filter(|(heard, _)| speech_end.is_some_and(|end| end <= *heard))
            .map(|(_, decoded)| decoded);
        // The encoder is sized to the utterance: on the 32-clip corpus 3.4x faster than the
        // full 30 s context at the same WER (0.046); a decode that loops is redone in full.
        let decoded = match covering_partial {
            Some(decoded) => Ok(decoded),
            None => self.decoder.decode(&audio, self.deadline(true)),
        };
        self.utterance = Vec::with_capacity(WINDOW_SAMPLES);
        self.best_pause = None;
        self.partial_at = 0;
        self.previous_hypothesis.clear();
        self.stable_words = 0;
        let id = self.next_utterance;
        self.next_utterance += 1;
        let mut decoded = decoded?;
        self.count_late(&decoded);
        let language = decoded.language;
        drop_tail_hallucination(&mut decoded.segments, speech_end);
        // Whisper's last timestamp wanders (into the silence after, or before the last
        // word's end); the detector's last speech frame is within a frame of the truth.
        if let (Some(end), Some(last)) = (speech_end, decoded.segments.last_mut()) {
            last.end = (end as i64).max(last.start);
        }
        let result = self.transcript(decoded, start, audio.len(), id, true);
        if let Some(t) = &result {
            // Only a final that was kept settles the language: not a dropped fragment.
            self.decoder.settle_language(language);
            self.decoder.remember(&t.text);
        }
        Ok(result.into_iter().collect())
    }

    /// When a decode is due, for the scheduler. Live: a final within the latency (less the
    /// pause that already ended its utterance), a partial after the finals queued with it.
    /// Files have no deadline of their own; theirs is far enough out that live decodes go
    /// first, and near enough that a file is not starved for ever.
    fn deadline(&self, is_final: bool) -> Instant {
        let now = Instant::now();
        if !self.options.live {
            return now + FILE_DEADLINE;
        }
        let min_silence = self
            .vad
            .as_ref()
            .map_or(Duration::ZERO, |v| v.config().min_silence);
        match is_final {
            true => now + self.options.latency.saturating_sub(min_silence),
            false => now + self.options.latency,
        }
    }

    /// Live decodes the scheduler served after their deadline: the device is overloaded.
    fn count_late(&mut self, decoded: &Decoded) {
        if self.options.live && decoded.late {
            self.late_decodes += 1;
        }
    }

    /// Live decodes that waited past their deadline for the device so far.
    pub fn late_decodes(&self) -> u64 {
        self.late_decodes
    }

    /// With the voice detector on: whether the utterance holds enough speech-like audio to
    /// be worth an inference (clicks and steady noise are not).
    fn worth_decoding(&self) -> bool {
        self.vad.is_none()
            || (self.speech_frames >= MIN_SPEECH_FRAMES
                && dynamic_range_db(&self.utterance) >= MIN_SPEECH_DYNAMIC_RANGE_DB)
    }

    /// Decodes the utterance so far; reports the words two consecutive decodes agree on.
    fn partial(&mut self) -> Result<Vec<Transcript>, TranscribeError> {
        self.partial_at = self.utterance.len();
        if !self.worth_decoding() {
            return Ok(Vec::new());
        }
        let audio = self.utterance.clone();
        let mut decoded = self.decoder.decode(&audio, self.deadline(false))?;
        self.count_late(&decoded);
        self.last_partial = Some((audio.len(), decoded.clone()));
        drop_tail_hallucination(&mut decoded.segments, self.speech_end);
        // Words after where the utterance may yet be cut could go to the next utterance's
        // final: they are not called stable.
        let earliest_cut = self.earliest_cut() as i64;
        let words_before_cut: usize = decoded
            .segments
            .iter()
            .take_while(|s| s.end <= earliest_cut)
            .map(|s| s.text.split_whitespace().count())
            .sum();
        let Some(mut t) = self.transcript(
            decoded,
            self.utterance_start,
            audio.len(),
            self.next_utterance,
            false,
        ) else {
            return Ok(Vec::new());
        };
        let words: Vec<String> = t.text.split_whitespace().map(String::from).collect();
        let agreed = words
            .iter()
            .zip(&self.previous_hypothesis)
            .take_while(|(a, b)| comparable(a) == comparable(b))
            .count();
        // What was reported stable stays stable within the utterance.
        self.stable_words = self
            .stable_words
            .max(agreed.min(words_before_cut))
            .min(words.len());
        t.stable_text = words[..self.stable_words].join(" ");
        self.previous_hypothesis = words;
        Ok(vec![t])
    }

    fn transcript(
        &self,
        decoded: Decoded,
        start: u64,
        len: usize,
        utterance_id: u64,
        is_final: bool,
    ) -> Option<Transcript> {
        let segments: Vec<Segment> = decoded
            .segments
            .into_iter()
            .filter(|s| !s.text.is_empty())
            .collect();
        let first = segments.first()?;
        let last = segments.last()?;
        let at = |samples: i64| samples_to_duration(start + samples.clamp(0, len as i64) as u64);
        let tokens: usize = segments.iter().map(|s| s.tokens).sum();
        let logprob: f32 = segments.iter().map(|s| s.logprob_sum).sum();
        let avg_logprob = if tokens > 0 {
            logprob / tokens as f32
        } else {
            0.0
        };
        if improbable_fragment(len as i64, logprob, tokens) {
            return None;
        }
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Some(Transcript {
            is_final,
            utterance_id,
            stable_text: if is_final {
                text.clone()
            } else {
                String::new()
            },
            start: at(first.start),
            end: at(last.end.max(first.start)),
            language: decoded.language.to_string(),
            avg_logprob,
            no_speech_prob: segments
                .iter()
                .map(|s| s.no_speech_prob)
                .fold(0.0, f32::max),
            pieces: segments
                .iter()
                .map(|s| Piece {
                    text: s.text.clone(),
                    start: at(s.start),
                    end: at(s.end.max(s.start)),
                })
                .collect(),
            words: segments
                .iter()
                .flat_map(|s| s.words.iter())
                .map(|(w, t0, t1, p)| Word {
                    text: w.clone(),
                    start: at(*t0),
                    end: at(*t1),
                    probability: *p,
                })
                .collect(),
            inference_time: decoded.inference_time,
            queue_time: decoded.queue_time,
            threads: decoded.threads,
            audio_duration: samples_to_duration(len as u64),
            text,
        })
    }

    /// End of stream: the utterance in progress gets its final.
    pub fn finish(&mut self) -> Result<Vec<Transcript>, TranscribeError> {
        let mut out = Vec::new();
        if let Some(vad) = self.vad.as_mut() {
            let decided = vad.flush().map_err(TranscribeError::Inference)?;
            for (frame, event) in decided {
                out.extend(self.frame(&frame, event)?);
            }
            self.vad.as_mut().unwrap().reset();
        }
        // A last partial frame is not transcribed, but it was heard: the clock counts it.
        self.position += self.carry.len() as u64;
        self.carry.clear();
        out.extend(self.finish_utterance()?);
        Ok(out)
    }

    /// Forgets pending audio and restarts the timeline at zero (a new stream or a flush).
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.restart_timeline();
    }

    /// Drops pending audio and restarts the timeline at zero, keeping the stream's context
    /// (its timestamps went back: a new file after concat, a loop).
    pub fn restart_timeline(&mut self) {
        self.position = 0;
        self.discard();
    }

    /// Drops the utterance in progress but keeps the timeline (a gap or discontinuity
    /// follows; call `skip` for its length).
    pub fn discard(&mut self) {
        self.carry.clear();
        self.preroll.clear();
        self.clear_utterance();
        if let Some(vad) = self.vad.as_mut() {
            vad.reset();
        }
    }

    fn clear_utterance(&mut self) {
        self.utterance.clear();
        self.best_pause = None;
        self.pause_frames = 0;
        self.speech_end = None;
        self.speech_frames = 0;
        self.partial_at = 0;
        self.previous_hypothesis.clear();
        self.stable_words = 0;
        self.last_partial = None;
    }

    /// Advances the timeline over audio that never came (a gap).
    pub fn skip(&mut self, samples: u64) {
        self.position += samples;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_prompt_keeps_its_end_from_a_word_boundary() {
        assert_eq!(prompt_tail("short prompt"), "short prompt");
        let words = "word ".repeat(1000) + "the end";
        let tail = prompt_tail(&words);
        assert!(tail.len() <= PROMPT_TAIL_BYTES && tail.len() > PROMPT_TAIL_BYTES - 64);
        assert!(
            tail.starts_with("word ") && tail.ends_with("the end"),
            "{tail}"
        );
        // No space near the cut, and a cut inside a character: whole characters only.
        let cjk = "字".repeat(3000);
        let tail = prompt_tail(&cjk);
        assert!(tail.chars().all(|c| c == '字') && tail.len() >= PROMPT_TAIL_BYTES - 3);
    }

    #[test]
    fn sample_counts_convert_exactly_after_months_of_audio() {
        let month = 30 * 24 * 3600;
        let samples = month * SAMPLE_RATE as u64 + SAMPLE_RATE as u64 / 4;
        assert_eq!(
            samples_to_duration(samples),
            Duration::from_secs(month) + Duration::from_millis(250)
        );
        assert_eq!(
            duration_to_samples(samples_to_duration(samples)),
            samples as usize
        );
    }

    #[test]
    fn repeated_phrases_look_like_loops_and_speech_does_not() {
        let words =
            |text: &str| -> Vec<String> { text.split_whitespace().map(comparable).collect() };
        let looping = [
            "Four queen of clubs. Four queen of clubs.",
            "not only by Schofer. Not only by Schofer.",
            "and then we and then we and then we went",
            "the the the the the the the the the the the the the the the the the",
        ];
        for text in looping {
            assert!(words_look_like_a_loop(&words(text), 5.0), "{text}");
        }
        let speech = [
            "And so my fellow Americans ask not what your country can do for you, ask what you can do for your country.",
            "Ten of clubs. Four queen of clubs. Seven of clubs.",
            "Go forward ten meters, then go forward ten more.",
            "Printing, in the only sense with which we are at present concerned, differs from most if not from all the arts and crafts represented in the Exhibition",
        ];
        for text in speech {
            assert!(!words_look_like_a_loop(&words(text), 10.0), "{text}");
        }
        // Twenty words cannot come out of one second of audio.
        assert!(words_look_like_a_loop(&words(speech[0]), 1.0));
    }

    /// The decode of the 10-minute benchmark recording that said "Thank you." after the
    /// speech, its figures as whisper.cpp gave them (samples, log-probabilities).
    #[test]
    fn an_improbable_short_segment_after_the_speech_is_dropped_and_speech_is_kept() {
        let segment =
            |text: &str, start: i64, end: i64, mean_logprob: f32, tokens: usize| Segment {
                text: text.into(),
                start,
                end,
                logprob_sum: mean_logprob * tokens as f32,
                tokens,
                no_speech_prob: 0.0,
                words: Vec::new(),
            };
        let sentence = segment(
            "The first books were printed in black letter.",
            159040,
            191040,
            -0.07,
            10,
        );
        let thanks = segment("Thank you.", 191040, 199680, -1.11, 3);
        let texts =
            |segments: &[Segment]| segments.iter().map(|s| s.text.clone()).collect::<Vec<_>>();

        let mut decoded = vec![sentence.clone(), thanks.clone()];
        drop_tail_hallucination(&mut decoded, Some(194880));
        assert_eq!(texts(&decoded), [sentence.text.as_str()]);
        // Without a detector, short and improbable is enough.
        let mut decoded = vec![sentence.clone(), thanks.clone()];
        drop_tail_hallucination(&mut decoded, None);
        assert_eq!(decoded.len(), 1);

        // Kept: a probable tail, a long one, one within the speech, and a lone segment (the
        // short-fragment rule in `transcript` judges those with the utterance's length).
        let probable = segment("Thank you.", 191040, 199680, -0.3, 3);
        let long = segment("and that was all.", 180000, 199680, -1.11, 5);
        for (tail, speech_end) in [(probable, 194880), (long, 194880), (thanks.clone(), 199680)] {
            let mut decoded = vec![sentence.clone(), tail.clone()];
            drop_tail_hallucination(&mut decoded, Some(speech_end));
            assert_eq!(decoded.len(), 2, "{} {speech_end}", tail.text);
        }
        let mut decoded = vec![thanks];
        drop_tail_hallucination(&mut decoded, Some(0));
        assert_eq!(decoded.len(), 1);
    }
}
