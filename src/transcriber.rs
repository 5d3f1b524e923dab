//! The per-stream transcriber: buffers 16 kHz mono audio, runs whisper.cpp on windows of at
//! most 30 s with the stream's own state, and turns segments into timed transcripts. Plain
//! Rust: tests drive it without GStreamer; the elements adapt it to pads and messages.

use crate::model::cache::ModelHandle;
use std::time::{Duration, Instant};
use whisper_rs::{FullParams, SamplingStrategy, WhisperState};

pub const SAMPLE_RATE: u32 = 16_000;
/// Whisper's encoder sees 30 s at a time.
pub const WINDOW_SAMPLES: usize = 30 * SAMPLE_RATE as usize;
/// whisper.cpp skips input under 100 ms and reads out of bounds under 201 samples; shorter
/// windows are padded with silence to this length.
const MIN_WINDOW_SAMPLES: usize = SAMPLE_RATE as usize;
/// whisper.cpp timestamps count 10 ms steps.
const SAMPLES_PER_TICK: i64 = SAMPLE_RATE as i64 / 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscribeError {
    #[error("language '{0}' is not one Whisper knows")]
    UnknownLanguage(String),
    #[error("could not create a whisper state: {0}")]
    State(String),
    #[error("whisper.cpp inference failed: {0}")]
    Inference(String),
}

/// Decoding choices for one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// A Whisper language code, or `auto` to detect it. English-only models always use `en`.
    pub language: String,
    pub translate: bool,
    pub threads: u32,
    /// 0 or 1: greedy; more: beam search of that width.
    pub beam_size: u32,
    pub word_timestamps: bool,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub start: Duration,
    pub end: Duration,
    pub probability: f32,
}

/// One piece of recognised speech, timed from the first sample pushed into the transcriber.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub is_final: bool,
    pub utterance_id: u64,
    pub start: Duration,
    pub end: Duration,
    pub language: String,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub words: Vec<Word>,
    /// Time whisper.cpp spent on the window this transcript came from.
    pub inference_time: Duration,
    /// Length of that window's audio.
    pub audio_duration: Duration,
}

fn samples_to_duration(samples: i64) -> Duration {
    Duration::from_nanos((samples.max(0) as u64) * 1_000_000_000 / SAMPLE_RATE as u64)
}

pub struct Transcriber {
    // Field order matters: the state must go before the handle that keeps its model loaded.
    state: WhisperState,
    params: FullParams<'static, 'static>,
    model: ModelHandle,
    language: &'static str,
    word_timestamps: bool,
    pending: Vec<f32>,
    /// Index in the stream of `pending[0]`.
    pending_start: u64,
    next_utterance: u64,
    inference_calls: u64,
}

impl Transcriber {
    /// Creates the stream's whisper state (once; it is reused for every window).
    pub fn new(model: ModelHandle, options: &DecodeOptions) -> Result<Self, TranscribeError> {
        let multilingual = model.context().is_multilingual();
        let language = if multilingual {
            whisper_language(&options.language)
                .ok_or_else(|| TranscribeError::UnknownLanguage(options.language.clone()))?
        } else {
            "en"
        };
        let state = model
            .context()
            .create_state()
            .map_err(|e| TranscribeError::State(e.to_string()))?;
        let strategy = if options.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: options.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        // Built once per stream and cloned per call: the setters leak a little on every call.
        let mut params = FullParams::new(strategy);
        params.set_n_threads(options.threads.max(1) as i32);
        params.set_language(Some(language));
        params.set_translate(options.translate && multilingual);
        params.set_no_context(true);
        params.set_token_timestamps(options.word_timestamps);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        Ok(Transcriber {
            state,
            params,
            model,
            language,
            word_timestamps: options.word_timestamps,
            pending: Vec::with_capacity(WINDOW_SAMPLES),
            pending_start: 0,
            next_utterance: 0,
            inference_calls: 0,
        })
    }

    pub fn model(&self) -> &ModelHandle {
        &self.model
    }

    /// whisper.cpp inference calls made so far.
    pub fn inference_calls(&self) -> u64 {
        self.inference_calls
    }

    /// Samples pushed so far.
    pub fn samples_seen(&self) -> u64 {
        self.pending_start + self.pending.len() as u64
    }

    /// Adds audio; transcribes each full 30 s window as it completes.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<Transcript>, TranscribeError> {
        self.pending.extend_from_slice(samples);
        let mut out = Vec::new();
        while self.pending.len() >= WINDOW_SAMPLES {
            out.extend(self.decode_window(false)?);
        }
        Ok(out)
    }

    /// Transcribes whatever is pending (end of stream).
    pub fn finish(&mut self) -> Result<Vec<Transcript>, TranscribeError> {
        let mut out = Vec::new();
        while !self.pending.is_empty() {
            out.extend(self.decode_window(true)?);
        }
        Ok(out)
    }

    /// Forgets pending audio and restarts the timeline at zero (a new stream or a flush).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.pending_start = 0;
    }

    fn decode_window(&mut self, draining: bool) -> Result<Vec<Transcript>, TranscribeError> {
        let n = self.pending.len().min(WINDOW_SAMPLES);
        let mut audio = self.pending[..n].to_vec();
        if audio.len() < MIN_WINDOW_SAMPLES {
            audio.resize(MIN_WINDOW_SAMPLES, 0.0);
        }
        let started = Instant::now();
        self.inference_calls += 1;
        self.state
            .full(self.params.clone(), &audio)
            .map_err(|e| TranscribeError::Inference(e.to_string()))?;
        let inference_time = started.elapsed();
        let language = match self.language {
            "auto" => {
                whisper_rs::get_lang_str(self.state.full_lang_id_from_state()).unwrap_or("auto")
            }
            l => l,
        };

        let mut segments = self.segments(n as i64);
        // A segment cut by the window's end is decoded again at the start of the next window,
        // as OpenAI's Whisper does for long audio.
        let mut consumed = n;
        if !draining && segments.len() > 1 {
            let last = segments.pop().unwrap();
            consumed = (last.start_samples as usize).clamp(1, n);
        }
        let mut out = Vec::with_capacity(segments.len());
        for seg in segments.into_iter().filter(|s| !s.text.is_empty()) {
            let base = self.pending_start as i64;
            let time = |samples: i64| samples_to_duration(base + samples.clamp(0, n as i64));
            out.push(Transcript {
                text: seg.text,
                is_final: true,
                utterance_id: self.next_utterance,
                start: time(seg.start_samples),
                end: time(seg.end_samples),
                language: language.to_string(),
                avg_logprob: seg.avg_logprob,
                no_speech_prob: seg.no_speech_prob,
                words: seg
                    .words
                    .into_iter()
                    .map(|w| Word {
                        start: time(w.start),
                        end: time(w.end),
                        text: w.text,
                        probability: w.probability,
                    })
                    .collect(),
                inference_time,
                audio_duration: samples_to_duration(n as i64),
            });
            self.next_utterance += 1;
        }
        self.pending.drain(..consumed);
        self.pending_start += consumed as u64;
        Ok(out)
    }

    fn segments(&self, window_samples: i64) -> Vec<RawSegment> {
        let eot = self.model.context().token_eot();
        let mut out = Vec::new();
        for i in 0..self.state.full_n_segments() {
            let Some(seg) = self.state.get_segment(i) else {
                continue;
            };
            let text = seg
                .to_str_lossy()
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            let mut words: Vec<RawWord> = Vec::new();
            let (mut logprob_sum, mut n_tokens) = (0.0f32, 0);
            for j in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(j) else {
                    continue;
                };
                if tok.token_id() >= eot {
                    continue;
                }
                let data = tok.token_data();
                logprob_sum += data.plog;
                n_tokens += 1;
                let piece = tok
                    .to_str_lossy()
                    .map(|s| s.into_owned())
                    .unwrap_or_default();
                let (t0, t1) = (data.t0 * SAMPLES_PER_TICK, data.t1 * SAMPLES_PER_TICK);
                match words.last_mut() {
                    Some(w) if !piece.starts_with(' ') => {
                        w.text.push_str(&piece);
                        w.end = t1.max(w.end);
                        w.probability = w.probability.min(data.p);
                    }
                    _ => words.push(RawWord {
                        text: piece,
                        start: t0,
                        end: t1,
                        probability: data.p,
                    }),
                }
            }
            words
                .iter_mut()
                .for_each(|w| w.text = w.text.trim().to_string());
            words.retain(|w| !w.text.is_empty());
            out.push(RawSegment {
                text,
                start_samples: (seg.start_timestamp() * SAMPLES_PER_TICK).min(window_samples),
                end_samples: (seg.end_timestamp() * SAMPLES_PER_TICK).min(window_samples),
                avg_logprob: if n_tokens > 0 {
                    logprob_sum / n_tokens as f32
                } else {
                    0.0
                },
                no_speech_prob: seg.no_speech_probability(),
                words: if self.word_timestamps {
                    words
                } else {
                    Vec::new()
                },
            });
        }
        out
    }
}

struct RawWord {
    text: String,
    start: i64,
    end: i64,
    probability: f32,
}

struct RawSegment {
    text: String,
    start_samples: i64,
    end_samples: i64,
    avg_logprob: f32,
    no_speech_prob: f32,
    words: Vec<RawWord>,
}
