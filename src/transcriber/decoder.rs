//! One stream's decoding: whisper.cpp's parameters built from the stream's options, its
//! prompt and carried context, its language, and each decode through the scheduler on a
//! whisper state borrowed from the model's pool.

use super::checks::{cut_repeated_end, looks_like_a_loop};
use super::language::{Language, LanguageDetection, LanguagePlan, LanguageProbabilities};
use super::segment::{Decoded, Segment};
use super::TranscribeError;
use crate::clock::SAMPLE_RATE;
use crate::model::WhisperModel;
use crate::scheduler::{Admission, CancelToken, DecodeSlot, Refusal};
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use whisper_rs::{FullParams, SamplingStrategy, WhisperState};

/// whisper.cpp skips input under 100 ms and reads out of bounds under 201 samples; shorter
/// audio is padded with silence to this length.
const MIN_DECODE_SAMPLES: usize = SAMPLE_RATE as usize;
/// Decodes shrink the encoder to the audio (much faster on short utterances), keeping this
/// many positions of margin; whisper.cpp loops on too small a context.
const AUDIO_CTX_MARGIN: usize = 64;
/// Contexts below this (about 9 s) made tiny.en loop on short audio here.
const MIN_FITTED_AUDIO_CTX: usize = 448;
const FULL_AUDIO_CTX: usize = 1500;
/// whisper.cpp timestamps count 10 ms steps.
const SAMPLES_PER_TICK: i64 = SAMPLE_RATE as i64 / 100;
/// Prompt tokens whisper.cpp takes at most (half its text context).
const MAX_PROMPT_TOKENS: usize = 223;
/// Of a prompt's text, the end this long (in bytes) holds more than the `MAX_PROMPT_TOKENS`
/// whisper.cpp takes (about 4 bytes a token in English, 1 to 3 in other scripts). Text before
/// it is not tokenized: whisper.cpp's tokenizer regex recurses once per character of a word,
/// and a word of some thousands of characters overflowed the worker thread's stack.
const PROMPT_TAIL_BYTES: usize = 2048;

/// Beams whisper.cpp decodes at most (its `WHISPER_MAX_DECODERS`); a wider beam fails every
/// decode with error -4.
pub const MAX_BEAM_SIZE: u32 = 8;

/// Decoding choices for one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// A Whisper language code, or `auto` to detect it. English-only models always use `en`.
    pub language: String,
    /// With `auto`: detected once per stream, or on each utterance.
    pub language_detection: LanguageDetection,
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
            language_detection: LanguageDetection::Stream,
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

/// Which result a decode is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// A final: retried at higher temperatures when it looks failed, never stopped early.
    Final,
    /// A partial, a preview the next one replaces: no temperature fallback (each retry is a
    /// whole decode again, and its sampling depends on what the pooled whisper state decoded
    /// before, so the same audio read differently from run to run and with it the phrase
    /// hold's cue), and it gives way at `give_way` to what waits behind it.
    Partial { give_way: Instant },
}

/// whisper.cpp's default `logprob_thold`: a decode whose tokens average a log-probability
/// under it is retried at a higher temperature. A partial decoded without that retry is not
/// taken as the final (`Partials::into_covering`) when it falls under it.
pub(super) const FALLBACK_LOGPROB: f32 = -1.0;

/// What whisper.cpp's abort callback asks: has the stream been cancelled (a flush, a stop),
/// or has the running decode passed the moment it gives way (a partial, `Decoder::decode`)?
struct AbortCheck {
    cancel: CancelToken,
    epoch: Instant,
    /// Nanoseconds after `epoch` past which the running decode gives way; `u64::MAX`: never.
    give_way_at: AtomicU64,
}

impl AbortCheck {
    fn new(cancel: CancelToken) -> Self {
        AbortCheck {
            cancel,
            epoch: Instant::now(),
            give_way_at: AtomicU64::new(u64::MAX),
        }
    }

    fn set_give_way(&self, at: Option<Instant>) {
        let nanos = at.map_or(u64::MAX, |at| {
            at.saturating_duration_since(self.epoch).as_nanos() as u64
        });
        self.give_way_at.store(nanos, Ordering::Relaxed);
    }

    fn gave_way(&self) -> bool {
        let at = self.give_way_at.load(Ordering::Relaxed);
        at != u64::MAX && self.epoch.elapsed().as_nanos() as u64 >= at
    }

    fn requested(&self) -> bool {
        self.cancel.is_cancelled() || self.gave_way()
    }
}

unsafe extern "C" fn abort_requested(check: *mut c_void) -> bool {
    // SAFETY: `check` is the `AbortCheck` the decoder keeps alive (in an Arc) for as long as
    // its parameters are in use.
    unsafe { (*(check as *const AbortCheck)).requested() }
}

/// One stream's decoding: its parameters and context; each decode borrows a whisper state
/// from the model's pool and its threads from the device's budget.
pub(super) struct Decoder {
    params: FullParams<'static, 'static>,
    pub model: Arc<WhisperModel>,
    pub slot: DecodeSlot,
    abort: Arc<AbortCheck>,
    pub options: DecodeOptions,
    /// The language set (`en` on an English-only model); `None`: `auto`.
    set_language: Option<&'static str>,
    /// The language `params` hold (`None`: `auto`). Changed only when a decode asks for
    /// another: whisper-rs leaks the string on each `set_language`.
    params_language: Option<&'static str>,
    /// `initial_prompt`, tokenized.
    prompt_tokens: Vec<c_int>,
    /// The previous final's tokens, with `carry_context`.
    pub context_tokens: Vec<c_int>,
    pub calls: u64,
    /// Samples of audio whisper.cpp was given so far (a loop's full-context retry counts
    /// twice: it is decoded twice).
    pub decoded_samples: u64,
    #[cfg(feature = "fault-injection")]
    pub inject_inference_error: bool,
    /// The pass of the decode running (`decode`).
    pass: Pass,
}

impl Decoder {
    pub fn new(
        model: Arc<WhisperModel>,
        options: &DecodeOptions,
        slot: DecodeSlot,
    ) -> Result<Self, TranscribeError> {
        // A model whisper.cpp cannot run on fails here, before any audio.
        model.prepare_state().map_err(TranscribeError::State)?;
        let mut decoder = Decoder {
            params: FullParams::new(SamplingStrategy::Greedy { best_of: 1 }),
            model,
            abort: Arc::new(AbortCheck::new(slot.cancel.clone())),
            slot,
            options: options.clone(),
            set_language: Some("en"),
            params_language: Some("en"),
            prompt_tokens: Vec::new(),
            context_tokens: Vec::new(),
            calls: 0,
            decoded_samples: 0,
            #[cfg(feature = "fault-injection")]
            inject_inference_error: false,
            pass: Pass::Final,
        };
        decoder.configure(options)?;
        Ok(decoder)
    }

    /// Builds the parameters for `options`. Done once per stream and on each change of the
    /// options, then cloned per call: the setters leak a little on every call.
    pub fn configure(&mut self, options: &DecodeOptions) -> Result<(), TranscribeError> {
        let multilingual = self.model.context().is_multilingual();
        let language = match multilingual {
            true => whisper_language(&options.language)
                .ok_or_else(|| TranscribeError::UnknownLanguage(options.language.clone()))?,
            false => "en",
        };
        if options.beam_size > MAX_BEAM_SIZE {
            return Err(TranscribeError::BeamSize(options.beam_size));
        }
        let prompt_tokens = self.tokenize(&options.initial_prompt)?;
        let mut params = whisper_params(options, multilingual);
        params.set_language(Some(language));
        // The safe abort setter is unsound (engine notes): use the raw one.
        // SAFETY: the callback only reads `self.abort`, which lives as long as the decoder
        // (and so every clone of these parameters).
        unsafe {
            params.set_abort_callback(Some(abort_requested));
            params.set_abort_callback_user_data(Arc::as_ptr(&self.abort) as *mut c_void);
        }
        if !options.carry_context {
            self.context_tokens.clear();
        }
        self.params = params;
        self.set_language = (language != "auto").then_some(language);
        self.params_language = self.set_language;
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
        self.model
            .context()
            .tokenize(&format!(" {text}"), 4 * text.len() + 8)
            .map_err(|e| TranscribeError::Prompt {
                text: text.chars().take(64).collect(),
                source: e,
            })
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

    /// At most `threads` for the next decodes (a lane sharing the stream's with others).
    pub fn set_threads(&mut self, threads: u32) {
        self.options.threads = threads;
    }

    /// Called with each final's text: the context for the next utterance of this stream.
    pub fn remember(&mut self, text: &str) {
        if self.options.carry_context {
            self.context_tokens = self.tokenize(text).unwrap_or_default();
        }
    }

    /// The language set (`en` on an English-only model), or `None` for `auto`.
    pub fn set_language(&self) -> Option<&'static str> {
        self.set_language
    }

    /// A new stream (a flush): no context.
    pub fn forget_stream(&mut self) {
        self.context_tokens.clear();
    }

    /// Makes the parameters decode in `language` (`None`: whisper.cpp detects it).
    fn use_language(&mut self, language: Option<&'static str>) {
        if language != self.params_language {
            self.params.set_language(Some(language.unwrap_or("auto")));
            self.params_language = language;
        }
    }

    /// Decodes `audio` in `plan`'s language with the encoder sized to it. A result that
    /// loops is cut after its repeated end (`cut_repeated_end`), or else decoded again in the
    /// full context (its cost counts both). The scheduler admits it as `admission` says; a
    /// partial `pass` still running at its `give_way` ends with `TranscribeError::GaveWay`.
    pub fn decode(
        &mut self,
        audio: &[f32],
        admission: Admission,
        pass: Pass,
        plan: LanguagePlan,
    ) -> Result<Decoded, TranscribeError> {
        self.use_language(plan.language);
        let give_way = match pass {
            Pass::Final => None,
            Pass::Partial { give_way } => Some(give_way),
        };
        self.abort.set_give_way(give_way);
        self.pass = pass;
        let decoded = self.decode_in_context(audio, admission, plan.detect);
        self.abort.set_give_way(None);
        self.pass = Pass::Final;
        decoded
    }

    fn decode_in_context(
        &mut self,
        audio: &[f32],
        admission: Admission,
        detect: bool,
    ) -> Result<Decoded, TranscribeError> {
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
            let mut decoded = self.decode_with_ctx(audio, ctx as i32, admission, detect)?;
            if !looks_like_a_loop(&decoded.segments, audio.len())
                || cut_repeated_end(&mut decoded.segments, audio.len())
            {
                return Ok(decoded);
            }
            let mut redone = self.decode_with_ctx(audio, 0, admission, detect)?;
            redone.inference_time += decoded.inference_time;
            redone.queue_time += decoded.queue_time;
            return Ok(redone);
        }
        self.decode_with_ctx(audio, 0, admission, detect)
    }

    /// `audio_ctx` 0: the model's full 30 s context. Waits for threads from the budget, then
    /// runs whisper.cpp on a pooled state.
    fn decode_with_ctx(
        &mut self,
        audio: &[f32],
        audio_ctx: i32,
        admission: Admission,
        detect: bool,
    ) -> Result<Decoded, TranscribeError> {
        let mut padded;
        let audio = if audio.len() < MIN_DECODE_SAMPLES {
            padded = audio.to_vec();
            padded.resize(MIN_DECODE_SAMPLES, 0.0);
            &padded[..]
        } else {
            audio
        };
        let budget = self.slot.budget.clone();
        let queued = Instant::now();
        let permit = budget
            .acquire(self.options.threads.max(1), admission, &self.slot.cancel)
            .map_err(|refusal| match refusal {
                Refusal::Cancelled => TranscribeError::Aborted,
                Refusal::Busy => TranscribeError::Busy,
            })?;
        let started = Instant::now();
        let (segments, (language, detection), inference_time) =
            self.run_whisper(audio, audio_ctx, permit.threads(), detect)?;
        Ok(Decoded {
            segments,
            language: Language::set(language),
            detection,
            inference_time,
            queue_time: started.duration_since(queued),
            threads: permit.threads(),
            late: permit.late,
        })
    }

    /// One whisper.cpp call on `threads` threads: the segments, the language it used (and,
    /// with `detect`, each language's probability), and the time whisper.cpp took.
    fn run_whisper(
        &mut self,
        audio: &[f32],
        audio_ctx: i32,
        threads: u32,
        detect: bool,
    ) -> Result<(Vec<Segment>, UsedLanguage, Duration), TranscribeError> {
        if self.slot.cancel.is_cancelled() {
            return Err(TranscribeError::Aborted);
        }
        self.calls += 1;
        self.decoded_samples += audio.len() as u64;
        let prompt = self.prompt();
        let mut params: FullParams<'static, '_> = self.params.clone();
        if audio_ctx > 0 {
            // A fitted context can make whisper.cpp run on: no segment may hold much more
            // than the audio could say.
            let seconds = audio.len() as f32 / SAMPLE_RATE as f32;
            params.set_max_tokens((seconds * 6.0) as i32 + 10);
        }
        params.set_n_threads(threads as i32);
        params.set_audio_ctx(audio_ctx);
        if self.pass != Pass::Final {
            params.set_temperature_inc(0.0);
        }
        #[cfg(feature = "fault-injection")]
        if std::mem::take(&mut self.inject_inference_error) {
            // More than any model's context: whisper.cpp refuses the decode.
            params.set_audio_ctx(1 << 20);
        }
        params.set_tokens(&prompt);
        // Lent while the caller holds its permit: no more states than decodes the budget allows.
        let started = Instant::now();
        let mut state = self.model.lend_state().map_err(TranscribeError::State)?;
        let result = state.full(params, audio);
        if self.slot.cancel.is_cancelled() {
            return Err(TranscribeError::Aborted);
        }
        if result.is_err() && self.abort.gave_way() {
            return Err(TranscribeError::GaveWay);
        }
        result.map_err(TranscribeError::Inference)?;
        let language = match self.params_language {
            None => whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or("en"),
            Some(l) => l,
        };
        // On the mel and the encoder size the decode just used: an encoder pass and one
        // decoder step more.
        let detection = match detect {
            true => Some(DetectedLanguages(
                state
                    .lang_detect(0, threads as usize)
                    .map_err(TranscribeError::Inference)?
                    .1,
            )),
            false => None,
        };
        let segments = self.segments(&state, audio.len() as i64);
        Ok((segments, (language, detection), started.elapsed()))
    }

    fn segments(&self, state: &WhisperState, audio_samples: i64) -> Vec<Segment> {
        let eot = self.model.context().token_eot();
        let clamp = |ticks: i64| (ticks * SAMPLES_PER_TICK).clamp(0, audio_samples);
        let mut out = Vec::new();
        for i in 0..state.full_n_segments() {
            let Some(seg) = state.get_segment(i) else {
                continue;
            };
            let text = seg.to_bytes().map(readable).unwrap_or_default();
            let mut segment = Segment {
                text,
                start: clamp(seg.start_timestamp()),
                end: clamp(seg.end_timestamp()),
                logprob_sum: 0.0,
                tokens: 0,
                no_speech_prob: seg.no_speech_probability(),
                last_ps: [1.0; 2],
                words: Vec::new(),
            };
            // A word's bytes: a character outside ASCII may span tokens.
            let mut word_bytes: Vec<Vec<u8>> = Vec::new();
            for j in 0..seg.n_tokens() {
                match seg.get_token(j) {
                    Some(tok) if tok.token_id() < eot => {
                        self.add_token(&mut segment, &mut word_bytes, &tok, clamp)
                    }
                    _ => {}
                }
            }
            for (word, bytes) in segment.words.iter_mut().zip(&word_bytes) {
                word.0 = readable(bytes);
            }
            segment.words.retain(|w| !w.0.is_empty());
            out.push(segment);
        }
        out
    }

    /// Counts a text token's probability into its segment and, with word timestamps, joins
    /// it to the word it continues (a token without a leading space); `word_bytes` holds
    /// each word's bytes, made text once the word is whole.
    fn add_token(
        &self,
        segment: &mut Segment,
        word_bytes: &mut Vec<Vec<u8>>,
        tok: &whisper_rs::WhisperToken,
        clamp: impl Fn(i64) -> i64,
    ) {
        let data = tok.token_data();
        segment.logprob_sum += data.plog;
        segment.tokens += 1;
        segment.last_ps = [segment.last_ps[1], data.p];
        if !self.options.word_timestamps {
            return;
        }
        let piece = tok.to_bytes().unwrap_or_default();
        let (t0, t1) = (clamp(data.t0), clamp(data.t1));
        match (segment.words.last_mut(), word_bytes.last_mut()) {
            (Some(w), Some(bytes)) if !piece.starts_with(b" ") => {
                bytes.extend_from_slice(piece);
                w.2 = w.2.max(t1);
                w.3 = w.3.min(data.p);
            }
            _ => {
                segment.words.push((String::new(), t0, t1, data.p));
                word_bytes.push(piece.to_vec());
            }
        }
    }
}

/// The language a decode used, and each language's probability if it detected them.
type UsedLanguage = (&'static str, Option<DetectedLanguages>);

/// whisper.cpp's language detection: a probability per language id.
#[derive(Debug, Clone)]
pub(super) struct DetectedLanguages(Vec<f32>);

impl LanguageProbabilities for DetectedLanguages {
    fn top(&self) -> Language {
        let (id, &probability) = self
            .0
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &0.0));
        Language {
            code: whisper_rs::get_lang_str(id as i32).unwrap_or("en"),
            probability,
        }
    }

    fn of(&self, code: &'static str) -> f32 {
        let id = whisper_rs::get_lang_id(code).and_then(|id| usize::try_from(id).ok());
        id.and_then(|id| self.0.get(id)).copied().unwrap_or(0.0)
    }
}

/// whisper.cpp's parameters for `options`, without the language and the abort callback.
fn whisper_params(options: &DecodeOptions, multilingual: bool) -> FullParams<'static, 'static> {
    let strategy = match options.beam_size {
        0 | 1 => SamplingStrategy::Greedy { best_of: 1 },
        beam => SamplingStrategy::BeamSearch {
            beam_size: beam as i32,
            patience: -1.0,
        },
    };
    let mut params = FullParams::new(strategy);
    params.set_n_threads(options.threads.max(1) as i32);
    params.set_translate(options.translate && multilingual);
    // The stream's own context is passed as prompt tokens (see `Decoder::prompt`), so
    // whisper.cpp keeps none between calls: a partial's text never primes the final of its
    // own audio.
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
    params
}

/// The audio's constant offset, when it has one worth removing: Whisper mishears speech
/// riding on one (WER 0.03 -> 0.11 on an offset of half full scale), and a cheap sound card or
/// a bad conversion gives one. Audio without one is left as it is, bit for bit.
fn dc_offset(audio: &[f32]) -> Option<f32> {
    const NOTICEABLE: f32 = 0.01;
    let mean = audio.iter().map(|&s| s as f64).sum::<f64>() / audio.len().max(1) as f64;
    (mean.abs() as f32 > NOTICEABLE).then_some(mean as f32)
}

/// whisper.cpp's bytes as text: trimmed, without the pieces of a character a segment or a
/// word was cut in (whisper.cpp's tokens are bytes; on music it may emit half a '♪').
fn readable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace(char::REPLACEMENT_CHARACTER, "")
        .trim()
        .to_string()
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
}
