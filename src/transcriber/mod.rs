//! The per-stream transcriber. Plain Rust: tests drive it without GStreamer; the elements
//! adapt it to pads and messages.
//!
//! Audio (16 kHz mono) is cut into utterances by the voice detector; silence never reaches
//! whisper.cpp. Each utterance is decoded once when it ends (a final). In live mode the
//! utterance in progress is also decoded at a steady cadence (partials), and the words two
//! consecutive decodes agree on (LocalAgreement-2) are reported as stable.
//!
//! `utterance` holds the cutting policy's state, `decoder` the decoding, `checks` the guards
//! against whisper.cpp's loops and hallucinations.

mod checks;
mod decoder;
pub mod early_text;
mod lanes;
mod language;
mod phrase;
mod rejected;
mod segment;
mod utterance;

pub use crate::clock::SAMPLE_RATE;
pub use decoder::{
    default_threads, language_for_bcp47, whisper_language, DecodeOptions, MAX_BEAM_SIZE,
};
pub use language::LanguageDetection;
pub use rejected::Rejected;

use crate::clock::{duration_to_samples, samples_to_duration};
use crate::model::cache::{SileroHandle, WhisperHandle};
use crate::scheduler::{Admission, DecodeSlot};
use crate::vad::evidence::{NotSpeech, SpeechEvidence};
use crate::vad::silero::SileroVad;
use crate::vad::{
    EnergyVad, VadConfig, VadError, VadEvent, VoiceDetector, FRAME_SAMPLES, MAX_ONSET_SAMPLES,
};
use checks::{drop_tail_hallucination, improbable_fragment};
use decoder::{Decoder, Pass};
use lanes::{LaneResult, Lanes, Pending};
use language::{LanguagePlan, LanguageProbabilities, LanguageTracker};
use phrase::leaves_phrase_open;
use rejected::Rejections;
use segment::{logprob_totals, mean_logprob, Decoded, Segment};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use utterance::{Partials, Utterance};
use whisper_rs::WhisperError;

/// Whisper's encoder sees 30 s at a time: the longest an utterance can be.
pub const WINDOW_SAMPLES: usize = 30 * SAMPLE_RATE as usize;
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
/// An utterance shorter than this is judged speech or not together with the audio before it:
/// a second of music passes for speech one time in six, two seconds almost never. A partial
/// waits until there is this much to judge (only at a stream's start is there less).
const EVIDENCE_SAMPLES: usize = 2 * SAMPLE_RATE as usize;
/// The most padding an utterance starts with: `vad-padding`'s maximum (2 s) and the onset.
const MAX_PREROLL: usize = 2 * SAMPLE_RATE as usize + MAX_ONSET_SAMPLES;
/// The scheduler's deadline for file-mode decodes (see `Transcriber::deadline`).
const FILE_DEADLINE: Duration = Duration::from_secs(30);
/// Live: an utterance this long ends at its next pause, open phrase or not. Held without
/// end, one LJ Speech utterance grew to 24 s; its partials took 0.6 to 1.1 s, fell behind real
/// time and were shed, and its final, decoded afresh, came 1.86 s after the speech.
const PHRASE_HOLD_LIMIT: usize = 10 * SAMPLE_RATE as usize;
/// Live: with the loudest sound of the last few seconds less than this over the noise floor
/// (speech at about 5 dB SNR or less), the detector's pauses are dips of speech into the
/// noise, not pauses: 12 LJ Speech clips in white noise at 0 dB were 24 finals live, against
/// 12 in file mode. Headroom at those pauses: 7 to 12 dB at 0 dB SNR, 11.5 to 15 dB at 5 dB,
/// 17 to 20 dB at 10 dB, 57 dB clean.
const NOISY_HEADROOM_DB: f32 = 16.0;
/// ... and there a pause ends an utterance only once it is this long, or half the latency if
/// that is less (the final's decode has the other half). Holds of 0.7, 1.2 and 2 s gave WER
/// 0.625, 0.555 and 0.520 on those clips (file mode 0.515); 1.5 and 2 s the same on
/// tests/robustness.rs's 12 (0.530 in 14 finals, 0.535 in 13; none: 0.680 in 23).
const NOISY_PAUSE_HOLD: Duration = Duration::from_millis(1500);
/// Live: the next regular partial waits for at least this many times what the last one took.
/// A partial slower than the audio between partials keeps the stream behind real time, and
/// one in flight when the utterance ends holds up its final: beside the test suite and two
/// video encodes the partials of a 13.7 s utterance took 0.9-1.2 s each, one after another,
/// and its final came 3.76 s after its speech (the realtime test's bound is 3.5 s).
const PARTIAL_COST_SPACING: u32 = 2;
/// Live: a pause this long after speech the last partial did not hear brings the next partial
/// forward; if the pause then ends the utterance, that partial is its final (no second decode).
const EARLY_PARTIAL_PAUSE: Duration = Duration::from_millis(150);

#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    #[error("language '{0}' is not one Whisper knows")]
    UnknownLanguage(String),
    #[error("beam size {0} is more than whisper.cpp's {max} decoders", max = MAX_BEAM_SIZE)]
    BeamSize(u32),
    #[error("cannot tokenize the prompt '{text}': {source}")]
    Prompt { text: String, source: WhisperError },
    #[error("could not create a whisper state: {0}")]
    State(#[source] WhisperError),
    #[error("whisper.cpp inference failed: {0}")]
    Inference(#[source] WhisperError),
    #[error(transparent)]
    Vad(#[from] VadError),
    #[error("inference aborted")]
    Aborted,
    /// A partial decode ran past its share of the latency and gave way to what waits behind
    /// it; the transcriber sheds it, it never reaches a caller.
    #[error("a partial decode gave way")]
    GaveWay,
    /// A partial decode found no threads it was admitted to (see `Admission`); shed as well.
    #[error("no threads free for a partial decode")]
    Busy,
    #[error("a decode lane ended without its result (it panicked)")]
    LaneLost,
    #[error("a decode lane could not start: {0}")]
    LaneStart(String),
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
    /// Live mode: a pause after words that leave a phrase open (a comma, "of the") ends the
    /// utterance only once it is this long; no longer than the detector's `min_silence`: off.
    pub phrase_silence: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            live: false,
            vad: Some(VadConfig::default()),
            partial_interval: Duration::from_millis(1000),
            max_utterance: Duration::from_secs(30),
            latency: Duration::from_secs(3),
            phrase_silence: Duration::from_millis(700),
        }
    }
}

/// Whether a push may run a partial decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialDecodes {
    Allowed,
    /// The caller is behind real time and sheds partials to catch up (finals never are).
    Shed,
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
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// How sure the detection that chose `language` was (1 for a language that was set).
    pub language_probability: f32,
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
    /// Audio of this stream the voice detector rejected so far (`Transcriber::take_rejected`).
    pub rejected_audio: Duration,
}

/// A partial is due by the cadence (`partial_interval` of new audio), or early: a pause
/// after speech the last partial did not hear, likely the utterance's end (its final).
#[derive(Debug, Clone, Copy)]
struct PartialDue {
    regular: bool,
    early: bool,
}

/// Where a decoded audio span lies in the stream, and which result it is.
struct Span {
    /// Stream position of the decoded audio's first sample.
    start: u64,
    len: usize,
    utterance_id: u64,
    is_final: bool,
}

/// An utterance that ended and is to be decoded for its final.
struct EndedUtterance {
    span: Span,
    /// Where the detector heard its speech end, in its audio.
    speech_end: Option<usize>,
    /// The stream's rejected audio when it ended.
    rejected_audio: Duration,
}

/// A final a lane is decoding.
struct PendingFinal {
    ended: EndedUtterance,
    result: Pending,
}

/// Each segment as a piece of text, and each word, at their times in the stream.
fn timed_pieces_and_words(
    segments: &[Segment],
    at: impl Fn(i64) -> Duration,
) -> (Vec<Piece>, Vec<Word>) {
    let pieces = segments
        .iter()
        .map(|s| Piece {
            text: s.text.clone(),
            start: at(s.start),
            end: at(s.end.max(s.start)),
        })
        .collect();
    let words = segments
        .iter()
        .flat_map(|s| s.words.iter())
        .map(|(w, t0, t1, p)| Word {
            text: w.clone(),
            start: at(*t0),
            end: at(*t1),
            probability: *p,
        })
        .collect();
    (pieces, words)
}

/// The result for a decode of `span`, or `None` when there is no text or it is an improbable
/// fragment (a hallucination on a cough).
fn transcript(decoded: Decoded, span: &Span) -> Option<Transcript> {
    let segments: Vec<Segment> = decoded
        .segments
        .into_iter()
        .filter(|s| !s.text.is_empty())
        .collect();
    let (first, last) = (segments.first()?, segments.last()?);
    let at =
        |samples: i64| samples_to_duration(span.start + samples.clamp(0, span.len as i64) as u64);
    let (logprob, tokens) = logprob_totals(&segments);
    if improbable_fragment(span.len as i64, logprob, tokens) {
        return None;
    }
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let (pieces, words) = timed_pieces_and_words(&segments, at);
    Some(Transcript {
        is_final: span.is_final,
        utterance_id: span.utterance_id,
        stable_text: if span.is_final {
            text.clone()
        } else {
            String::new()
        },
        start: at(first.start),
        end: at(last.end.max(first.start)),
        language: decoded.language.code.to_string(),
        language_probability: decoded.language.probability,
        avg_logprob: mean_logprob((logprob, tokens)),
        no_speech_prob: segments
            .iter()
            .map(|s| s.no_speech_prob)
            .fold(0.0, f32::max),
        pieces,
        words,
        inference_time: decoded.inference_time,
        queue_time: decoded.queue_time,
        threads: decoded.threads,
        audio_duration: samples_to_duration(span.len as u64),
        rejected_audio: Duration::ZERO,
        text,
    })
}

pub struct Transcriber {
    /// Within `finish`: the stream has no more audio.
    ending: bool,
    /// Finals handed to the lanes, oldest first (dropped first: the lanes skip them).
    pending: VecDeque<PendingFinal>,
    /// Side-by-side decoding of a file's utterances (`lanes`).
    lanes: Option<Lanes>,
    decoder: Decoder,
    options: StreamOptions,
    vad: Option<VoiceDetector>,
    /// Samples pushed so far: the stream's sample clock.
    position: u64,
    /// Samples not yet a whole VAD frame.
    carry: Vec<f32>,
    /// Recent silence kept to pad the start of the next utterance.
    preroll: VecDeque<f32>,
    /// The last few seconds of audio, utterances or not: what a short utterance is judged
    /// with (`EVIDENCE_SAMPLES`).
    history: VecDeque<f32>,
    utterance: Utterance,
    partials: Partials,
    languages: LanguageTracker,
    next_utterance: u64,
    late_decodes: u64,
    partials_shed: u64,
    partials_given_way: u64,
    rejected: Rejections,
    /// Dropped last: the lanes' and the decoder's references to the model go before the
    /// handle, so a release the handle starts (idle time-out 0) frees the model then.
    model: WhisperHandle,
}

impl Transcriber {
    /// Makes sure whisper.cpp can decode with `model`; each decode borrows a whisper state
    /// from the model's pool and its threads from `slot`'s budget, and stops when `slot`'s
    /// token is cancelled.
    pub fn new(
        model: WhisperHandle,
        decode: &DecodeOptions,
        options: StreamOptions,
        slot: DecodeSlot,
    ) -> Result<Self, TranscribeError> {
        let decoder = Decoder::new(model.model().clone(), decode, slot)?;
        let mut t = Transcriber {
            ending: false,
            pending: VecDeque::new(),
            lanes: None,
            model,
            languages: LanguageTracker::new(decoder.set_language(), decode.language_detection),
            decoder,
            vad: options
                .vad
                .map(|config| VoiceDetector::Energy(EnergyVad::new(config))),
            options: options.clone(),
            position: 0,
            carry: Vec::with_capacity(FRAME_SAMPLES),
            preroll: VecDeque::new(),
            history: VecDeque::new(),
            utterance: Utterance::new(0),
            partials: Partials::default(),
            next_utterance: 0,
            late_decodes: 0,
            partials_shed: 0,
            partials_given_way: 0,
            rejected: Rejections::default(),
        };
        t.set_live(options.live);
        Ok(t)
    }

    pub fn model(&self) -> &WhisperHandle {
        &self.model
    }

    /// Lanes decoding this file's utterances side by side (0: one decode at a time).
    pub fn decode_lanes(&self) -> usize {
        self.lanes.as_ref().map_or(0, Lanes::len)
    }

    /// whisper.cpp inference calls made so far.
    pub fn inference_calls(&self) -> u64 {
        self.decoder.calls
    }

    /// Audio whisper.cpp was given so far (short audio counts padded to a second).
    pub fn decoded_audio(&self) -> Duration {
        samples_to_duration(self.decoder.decoded_samples)
    }

    /// Samples pushed so far.
    pub fn position(&self) -> u64 {
        let undecided = self.vad.as_ref().map_or(0, |v| v.undecided_samples());
        self.position + (self.carry.len() + undecided) as u64
    }

    /// The earliest sample a transcript still to come can start at: the start of the
    /// utterance in progress or, between utterances, of the silence kept to pad the next.
    pub fn settled(&self) -> u64 {
        let current = match (&self.vad, self.utterance.is_empty()) {
            (None, _) => self.position - self.utterance.len() as u64,
            (Some(_), true) => self.position - self.preroll.len() as u64,
            (Some(_), false) => self.utterance.start,
        };
        self.pending
            .front()
            .map_or(current, |p| p.ended.span.start.min(current))
    }

    /// Detects voice with a Silero model instead of the built-in detector, with the same
    /// settings. Only before any audio, and only with voice detection on.
    pub fn use_silero(&mut self, model: SileroHandle) {
        if let Some(config) = self.vad.as_ref().map(|v| *v.config()) {
            self.vad = Some(VoiceDetector::Silero(Box::new(SileroVad::new(
                model, config,
            ))));
        }
    }

    pub fn is_live(&self) -> bool {
        self.options.live
    }

    /// Switches between live (partials) and file mode; takes effect from the next audio.
    pub fn set_live(&mut self, live: bool) {
        self.options.live = live;
        if let (Some(vad), Some(config)) = (self.vad.as_mut(), self.options.vad) {
            vad.set_min_silence(match live {
                true => config.min_silence,
                false => config.min_silence.max(FILE_MODE_MIN_SILENCE),
            });
        }
    }

    /// Changes how decodes are made, from the next decode on (properties changed while
    /// playing). An error leaves the previous options in place.
    pub fn set_decode_options(&mut self, options: &DecodeOptions) -> Result<(), TranscribeError> {
        if *options != self.decoder.options {
            self.decoder.configure(options)?;
            self.languages = self
                .languages
                .reconfigured(self.decoder.set_language(), options.language_detection);
            self.partials.forget_last();
        }
        Ok(())
    }

    pub fn decode_options(&self) -> &DecodeOptions {
        &self.decoder.options
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

    /// Live decodes that waited past their deadline for the device so far.
    pub fn late_decodes(&self) -> u64 {
        self.late_decodes
    }

    /// Adds audio and returns the results it completes; a partial decode may run only when
    /// `partials` allows.
    pub fn push(
        &mut self,
        samples: &[f32],
        partials: PartialDecodes,
    ) -> Result<Vec<Transcript>, TranscribeError> {
        let clean = samples.iter().map(|s| match s.is_finite() {
            true => s.clamp(-1.0, 1.0),
            false => 0.0,
        });
        let mut out = Vec::new();
        if self.vad.is_none() {
            for s in clean {
                self.utterance.audio.push(s);
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
                    out.extend(self.detect(&frame)?);
                }
            }
        }
        if let Some(due) = self.partial_due() {
            match partials == PartialDecodes::Allowed && self.device_allows(due) {
                true => out.extend(self.partial(due)?),
                false => self.partials_shed += 1,
            }
        }
        out.extend(self.ready_lane_finals()?);
        Ok(out)
    }

    /// Runs one frame through the detector and the frames it decides through the policy.
    fn detect(&mut self, frame: &[f32]) -> Result<Vec<Transcript>, TranscribeError> {
        let decided = self
            .vad
            .as_mut()
            .map_or(Ok(Vec::new()), |v| v.decide_frame(frame))?;
        let mut out = Vec::new();
        for (frame, event) in decided {
            out.extend(self.frame(&frame, event)?);
        }
        Ok(out)
    }

    /// Live: which partial decode is due now, if any.
    fn partial_due(&self) -> Option<PartialDue> {
        if !self.options.live || self.utterance.is_empty() {
            return None;
        }
        let spacing = self
            .options
            .partial_interval
            .max(self.partials.last_inference() * PARTIAL_COST_SPACING);
        let interval = duration_to_samples(spacing) as usize;
        let heard = self.partials.heard;
        // Without a detector all audio counts as speech.
        let unheard_speech = match self.vad {
            None => self.utterance.len() > heard,
            Some(_) => self.utterance.speech_end.is_some_and(|end| end > heard),
        };
        let paused = self.utterance.pause_frames * FRAME_SAMPLES
            >= duration_to_samples(EARLY_PARTIAL_PAUSE) as usize;
        // Nothing to decode but silence since the last partial (a held pause): none is due.
        let due = PartialDue {
            regular: unheard_speech && self.utterance.len() >= heard + interval,
            early: paused && unheard_speech,
        };
        (due.regular || due.early).then_some(due)
    }

    /// Partial passes are the first thing shed: a regular one runs only on an idle device, an
    /// early one (likely to be the final) while no decode waits. The scheduler decides as it
    /// queues the decode (`admission`); asked here first so that a busy device costs no
    /// speech check. Asked only when one is due: it takes the budget's lock.
    fn device_allows(&self, due: PartialDue) -> bool {
        let budget = &self.decoder.slot.budget;
        (due.regular && budget.idle()) || (due.early && budget.waiting() == 0)
    }

    /// Partial decodes that were due and did not run (behind real time, or the device busy)
    /// or gave way (`partials_given_way`).
    pub fn partials_shed(&self) -> u64 {
        self.partials_shed
    }

    /// Partial decodes that ran past half a final's time and were stopped.
    pub fn partials_given_way(&self) -> u64 {
        self.partials_given_way
    }

    /// Audio the voice detector rejected so far: heard over the noise floor, not decoded.
    pub fn rejected_audio(&self) -> Duration {
        self.rejected.total()
    }

    /// The stretches rejected since the last call, each complete (for a log).
    pub fn take_rejected(&mut self) -> Vec<Rejected> {
        self.rejected.take()
    }
}

/// The cutting policy: frames the detector decided, utterances ending, partials and finals.
impl Transcriber {
    /// One frame the detector decided on, in stream order.
    fn frame(
        &mut self,
        frame: &[f32],
        event: VadEvent,
    ) -> Result<Vec<Transcript>, TranscribeError> {
        let out = self.decide(frame, event);
        self.history.extend(frame);
        let excess = self
            .history
            .len()
            .saturating_sub(EVIDENCE_SAMPLES + MAX_PREROLL);
        self.history.drain(..excess);
        out
    }

    /// What `frame` means for the utterance in progress.
    fn decide(
        &mut self,
        frame: &[f32],
        event: VadEvent,
    ) -> Result<Vec<Transcript>, TranscribeError> {
        let Some(config) = self.vad.as_ref().map(|v| *v.config()) else {
            return Ok(Vec::new());
        };
        let frame_start = self.position;
        self.position += frame.len() as u64;
        let padding = duration_to_samples(config.padding) as usize;
        let in_utterance = !self.utterance.is_empty();
        match event {
            VadEvent::Silence | VadEvent::NoiseEnded(_) | VadEvent::Pause
                if self.utterance.held.is_some() =>
            {
                self.hold_pause(frame, padding)
            }
            // After an utterance was ended at a pause (files), speech goes on as a new one.
            VadEvent::SpeechStart | VadEvent::Speech if !in_utterance => {
                self.begin_utterance(frame_start, frame, padding);
                Ok(Vec::new())
            }
            VadEvent::Silence => {
                self.keep_preroll(frame, padding);
                Ok(Vec::new())
            }
            VadEvent::NoiseEnded(frames) => {
                let len = frames * FRAME_SAMPLES;
                let start = frame_start.saturating_sub(len as u64);
                self.rejected.add(start, len, NotSpeech::Unvoiced);
                self.keep_preroll(frame, padding);
                Ok(Vec::new())
            }
            VadEvent::Pause | VadEvent::SpeechEnd if !in_utterance => {
                self.keep_preroll(frame, padding);
                Ok(Vec::new())
            }
            VadEvent::SpeechEnd => self.pause_ended(frame, padding),
            VadEvent::SpeechStart | VadEvent::Speech | VadEvent::Pause => {
                let limit = self.max_utterance_samples();
                match event {
                    VadEvent::Pause => self.utterance.add_pause(frame, limit),
                    _ => {
                        self.utterance.add_speech(frame);
                        self.utterance.held = None;
                    }
                }
                match self.utterance.len() >= limit {
                    true => self.cut_at_best_pause(padding),
                    false => Ok(Vec::new()),
                }
            }
        }
    }

    /// Starts an utterance at the speech frame `frame` (at stream position `frame_start`),
    /// with `padding` samples before where its sound began, which may be before this frame.
    fn begin_utterance(&mut self, frame_start: u64, frame: &[f32], padding: usize) {
        let onset = self.vad.as_ref().map_or(0, |v| v.onset_samples());
        let wanted = padding + onset;
        let keep = self.preroll.len().min(wanted);
        let older = self.preroll.len() - keep;
        let padding: Vec<f32> = self.preroll.drain(..).skip(older).collect();
        let before = self.history.len().saturating_sub(keep);
        let from = before.saturating_sub(EVIDENCE_SAMPLES);
        let heard = self.history.range(from..before).copied().collect();
        // Live only: a file's utterance runs until a 2 s pause and whisper.cpp recovers its
        // first words from what follows; there the silence moved results by chance, a few
        // words either way (docs/design.md, section 4).
        let lead_to = if self.options.live { wanted } else { 0 };
        let padding = (&padding[..], lead_to);
        self.utterance = Utterance::begin(heard, padding, frame_start, frame);
    }

    /// Live: how long the pause that would end the utterance (under `PHRASE_HOLD_LIMIT`
    /// long) is to wait instead: `NOISY_PAUSE_HOLD` in loud noise, `phrase_silence` where the
    /// last partial left a phrase open; `None`: it ends the utterance now.
    fn pause_hold(&self) -> Option<Duration> {
        if !self.options.live || self.utterance.len() >= PHRASE_HOLD_LIMIT {
            return None;
        }
        let headroom = self.vad.as_ref().and_then(|v| v.headroom_db());
        if headroom.is_some_and(|db| db < NOISY_HEADROOM_DB) {
            let hold = NOISY_PAUSE_HOLD.min(self.options.latency / 2);
            return Some(hold.max(self.options.phrase_silence));
        }
        self.holds_open_phrase()
            .then_some(self.options.phrase_silence)
    }

    /// Whether the pause falls where the utterance's last partial left a phrase open. Only a
    /// partial that heard all the speech can tell; without one (partials shed under load)
    /// the utterance ends as it would.
    fn holds_open_phrase(&self) -> bool {
        let min_silence = self.vad.as_ref().map(|v| v.config().min_silence);
        min_silence.is_some_and(|m| self.options.phrase_silence > m)
            && self
                .partials
                .covering_text(self.utterance.speech_end)
                .is_some_and(|(text, end_p)| leaves_phrase_open(&text, end_p))
    }

    /// The detector's pause is long enough to end the utterance: it does, unless it is to be
    /// held (`pause_hold`; a held pause that reaches its hold is not held again). A held
    /// pause goes on inside the detector's utterance, so the speaker going on after it is
    /// heard as after any shorter pause.
    fn pause_ended(
        &mut self,
        frame: &[f32],
        padding: usize,
    ) -> Result<Vec<Transcript>, TranscribeError> {
        let hold = match self.utterance.held {
            Some(_) => None,
            None => self.pause_hold(),
        };
        let Some(hold) = hold else {
            // The pause frames the utterance holds (the ending frame is not in it).
            let silence = self.utterance.pause_frames * frame.len();
            return self.end_at_pause(silence, padding);
        };
        self.utterance.held = Some(hold);
        if let Some(vad) = self.vad.as_mut() {
            vad.hold_pause(hold);
        }
        self.decode_held_final(padding)?;
        self.hold_pause(frame, padding)
    }

    /// At the start of a held pause: the final the utterance will have if the speaker does
    /// not go on, decoded now unless a partial already serves. Decoded at the hold's end, a
    /// final that took two decodes (a loop, then the full context) came up to 1.9 s after the
    /// speech (0.7 s of hold, then the decodes). Only where no other decode waits and the utterance
    /// is worth one; if the speaker goes on, it stands as the utterance's last partial.
    fn decode_held_final(&mut self, padding: usize) -> Result<(), TranscribeError> {
        let u = &self.utterance;
        let needed = !self.partials.serves_as_final(u.speech_end);
        let Some(end) = u
            .speech_end
            .filter(|_| needed && self.worth_decoding(false).is_ok())
        else {
            return Ok(());
        };
        let audio = u.audio[..(end + padding).min(u.len())].to_vec();
        let admission = Admission::UnlessQueued(self.final_deadline(u.held));
        match self.decode(&audio, u.lead, admission, Pass::Final) {
            Ok(decoded) => {
                self.partials.keep_final(audio.len(), decoded);
                Ok(())
            }
            Err(TranscribeError::Busy) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A quiet frame of a held pause: the utterance ends once the pause is as long as it is
    /// held for (or at its length limit); speech before then goes on in it. The transcriber
    /// counts the pause, not the detector: Silero decides frames a block (320 ms) at a time,
    /// so those of the block that ended its utterance came before the hold reached it.
    fn hold_pause(
        &mut self,
        frame: &[f32],
        padding: usize,
    ) -> Result<Vec<Transcript>, TranscribeError> {
        let limit = self.max_utterance_samples();
        self.utterance.add_pause(frame, limit);
        let silence = self.utterance.pause_frames * frame.len();
        let hold = self.utterance.held.unwrap_or(self.options.phrase_silence);
        if silence >= duration_to_samples(hold) as usize {
            return self.end_at_pause(silence, padding);
        }
        match self.utterance.len() >= limit {
            true => self.cut_at_best_pause(padding),
            false => Ok(Vec::new()),
        }
    }

    /// Keeps the last `padding` of silence (and the frames a start may reach back to) to
    /// start the next utterance with.
    fn keep_preroll(&mut self, frame: &[f32], padding: usize) {
        self.preroll.extend(frame);
        while self.preroll.len() > padding + MAX_ONSET_SAMPLES {
            self.preroll.pop_front();
        }
    }

    /// Ends the utterance whose last `silence` samples are a pause, keeping `padding` of it.
    fn end_at_pause(
        &mut self,
        silence: usize,
        padding: usize,
    ) -> Result<Vec<Transcript>, TranscribeError> {
        self.utterance.trim_pause(silence, padding);
        self.preroll.clear();
        self.finish_utterance()
    }

    /// The length at which an utterance is cut even without a pause that ends it.
    fn max_utterance_samples(&self) -> usize {
        let limit = match self.options.live {
            true => self.options.max_utterance,
            false => self.options.max_utterance.min(FILE_MODE_MAX_UTTERANCE),
        };
        (duration_to_samples(limit) as usize).clamp(FRAME_SAMPLES, WINDOW_SAMPLES)
    }

    /// Ends an utterance at its length limit at its longest pause in the second half, so
    /// that no word is cut in two; what follows the pause starts the next utterance. Without
    /// a pause it is cut where it stands.
    fn cut_at_best_pause(&mut self, padding: usize) -> Result<Vec<Transcript>, TranscribeError> {
        let Some(pause) = self.utterance.best_pause.take() else {
            return self.finish_utterance();
        };
        if pause.start + pause.len == self.utterance.len() {
            // The pause is still going on: the utterance simply ends in it.
            return self.end_at_pause(pause.len, padding);
        }
        let rest = self.utterance.split_at(pause, padding);
        // A partial heard words after the cut: it cannot be the first part's final.
        self.partials.forget_last();
        let out = self.finish_utterance();
        self.utterance = rest;
        out
    }

    /// With the voice detector on: whether the utterance is speech enough to be worth an
    /// inference (clicks, steady noise, babble, machinery and held tones are not). A
    /// `partial` needs `EVIDENCE_SAMPLES` to judge by, or all the stream has heard; a final
    /// takes what there is.
    fn worth_decoding(&self, partial: bool) -> Result<(), NotSpeech> {
        if self.vad.is_none() {
            return Ok(());
        }
        let u = &self.utterance;
        if u.speech_frames < MIN_SPEECH_FRAMES {
            return Err(NotSpeech::TooShort);
        }
        let short_by = EVIDENCE_SAMPLES.saturating_sub(u.len());
        // A stream that has not yet heard 2 s (a caller speaking as soon as connected) is
        // judged on all it has, as a final is: its first partial then comes a second into the
        // speech, as later ones do, not two.
        let heard_all_since_start = u.start == u.before.len() as u64;
        if partial && short_by > u.before.len() && !heard_all_since_start {
            return Err(NotSpeech::TooShort);
        }
        if short_by == 0 || u.before.is_empty() {
            return SpeechEvidence::of(&u.audio).verdict();
        }
        let before = &u.before[u.before.len().saturating_sub(short_by)..];
        SpeechEvidence::of(&[before, &u.audio].concat()).verdict()
    }

    /// Ends the utterance in progress: decodes it (or takes the partial that heard all of
    /// it) and returns its final. The next utterance starts where this one ends. A file's
    /// final may go to a lane instead, and come from a later call.
    fn finish_utterance(&mut self) -> Result<Vec<Transcript>, TranscribeError> {
        if self.utterance.is_empty() {
            return Ok(Vec::new());
        }
        let worth = self.worth_decoding(false);
        let utterance = std::mem::replace(&mut self.utterance, Utterance::new(self.position));
        let partials = std::mem::take(&mut self.partials);
        if let Err(reason) = worth {
            self.rejected.add(utterance.start, utterance.len(), reason);
            return Ok(Vec::new());
        }
        self.rejected.close();
        let ended = EndedUtterance {
            span: Span {
                start: self.start_of(&utterance),
                len: utterance.len(),
                utterance_id: self.next_utterance,
                is_final: true,
            },
            speech_end: utterance.speech_end,
            rejected_audio: self.rejected.total(),
        };
        self.next_utterance += 1;
        if self.lanes_apply() {
            // A file's utterance never starts with silence to make up (`Utterance::lead`).
            return self.hand_to_lane(utterance.audio, ended);
        }
        // The encoder is sized to the utterance: on the 32-clip corpus 3.4x faster than the
        // full 30 s context at the same WER (0.046); a decode that loops is redone in full.
        let decoded = match partials.into_covering(ended.speech_end) {
            Some(decoded) => decoded,
            None => {
                let deadline = self.final_deadline(utterance.held);
                let (audio, lead) = (&utterance.audio, utterance.lead);
                self.decode(audio, lead, Admission::Queue(deadline), Pass::Final)?
            }
        };
        Ok(self.final_transcript(decoded, &ended).into_iter().collect())
    }

    /// The final of `ended` from its decode; settles the stream's language and context on it.
    fn final_transcript(
        &mut self,
        mut decoded: Decoded,
        ended: &EndedUtterance,
    ) -> Option<Transcript> {
        self.count_late(&decoded);
        let language = decoded.language;
        let detected = decoded.detection.as_ref().map(|d| d.top());
        drop_tail_hallucination(&mut decoded.segments, ended.speech_end);
        // Whisper's last timestamp wanders (into the silence after, or before the last
        // word's end); the detector's last speech frame is within a frame of the truth.
        if let (Some(end), Some(last)) = (ended.speech_end, decoded.segments.last_mut()) {
            last.end = (end as i64).max(last.start);
        }
        let result = transcript(decoded, &ended.span).map(|t| Transcript {
            rejected_audio: ended.rejected_audio,
            ..t
        });
        match &result {
            // Only a final that was kept settles the language: not a dropped fragment.
            Some(t) => {
                let seconds = ended.span.len as f32 / SAMPLE_RATE as f32;
                self.languages.settle(language, detected, seconds);
                self.decoder.remember(&t.text);
            }
            None => self.languages.forget_utterance(),
        }
        result
    }

    /// Whether this final may be decoded in a lane: a file whose utterances do not depend on
    /// each other (no carried context, no language to detect) and a budget of two threads.
    fn lanes_apply(&self) -> bool {
        let plan = self.languages.plan();
        #[cfg(feature = "fault-injection")]
        if self.decoder.inject_inference_error {
            return false;
        }
        let options = &self.decoder.options;
        // The last final of a stream with none in a lane gains nothing from one: decoded here
        // on all the stream's threads, a short file starts no lane threads at all.
        let alone_at_end = self.ending && self.pending.is_empty();
        !self.options.live
            && !alone_at_end
            && !options.carry_context
            && plan.language.is_some()
            && !plan.detect
            && Lanes::count(options.threads, self.decoder.slot.budget.capacity()) > 0
    }

    /// Hands `audio` to a lane (started on first use, and again after the options change),
    /// first taking back the finals that make room for it.
    fn hand_to_lane(
        &mut self,
        audio: Vec<f32>,
        ended: EndedUtterance,
    ) -> Result<Vec<Transcript>, TranscribeError> {
        let mut out = Vec::new();
        let options = &self.decoder.options;
        if !self.lanes.as_ref().is_some_and(|l| l.built_for(options)) {
            out.extend(self.take_lane_finals(0)?);
            let d = &self.decoder;
            let count = Lanes::count(d.options.threads, d.slot.budget.capacity());
            self.lanes = Some(Lanes::start(count, &d.model, &d.options, &d.slot));
        }
        let lanes = self.lanes.as_ref().expect("lanes started above");
        // One waiting beyond a decode per lane: a lane never idles while the next cut comes.
        out.extend(self.take_lane_finals(lanes.len())?);
        let lanes = self.lanes.as_ref().expect("lanes started above");
        let result = lanes.submit(audio, self.deadline(true), self.languages.plan());
        self.pending.push_back(PendingFinal { ended, result });
        Ok(out)
    }

    /// Every final still in a lane, in order, once decoded: the text of all the audio pushed
    /// so far that ended its utterance (before an event that must come after it).
    pub fn wait_for_lanes(&mut self) -> Result<Vec<Transcript>, TranscribeError> {
        self.take_lane_finals(0)
    }

    /// The lanes' finals in order, waiting until at most `keep` are left in flight.
    fn take_lane_finals(&mut self, keep: usize) -> Result<Vec<Transcript>, TranscribeError> {
        let mut out = Vec::new();
        while self.pending.len() > keep {
            let pending = self.pending.pop_front().expect("more than `keep` pending");
            let result = pending.result.wait();
            out.extend(self.lane_final(result, &pending.ended)?);
        }
        Ok(out)
    }

    /// The lanes' finals that are done, in order, without waiting.
    fn ready_lane_finals(&mut self) -> Result<Vec<Transcript>, TranscribeError> {
        let mut out = Vec::new();
        while let Some(result) = self.pending.front().and_then(|p| p.result.ready()) {
            let pending = self.pending.pop_front().expect("front checked");
            out.extend(self.lane_final(result, &pending.ended)?);
        }
        Ok(out)
    }

    fn lane_final(
        &mut self,
        result: LaneResult,
        ended: &EndedUtterance,
    ) -> Result<Option<Transcript>, TranscribeError> {
        self.decoder.calls += result.calls;
        self.decoder.decoded_samples += result.samples;
        let mut decoded = result.decoded?;
        decoded.language = self.languages.undetected(decoded.language.code);
        Ok(self.final_transcript(decoded, ended))
    }

    /// Decodes `audio` (after `lead` samples of silence) in the language the stream's tracker
    /// plans. When the decode detected a language the tracker chooses another than the one
    /// decoded in (a switch, or whisper.cpp's own detection overruled), it is decoded again
    /// in that one.
    fn decode(
        &mut self,
        audio: &[f32],
        lead: usize,
        admission: Admission,
        pass: Pass,
    ) -> Result<Decoded, TranscribeError> {
        let mut led = Vec::new();
        let decoded_audio = match lead {
            0 => audio,
            _ => {
                led.resize(lead, 0.0);
                led.extend_from_slice(audio);
                &led[..]
            }
        };
        let plan = self.languages.plan();
        let mut decoded = self.decoder.decode(decoded_audio, admission, pass, plan)?;
        let language = match &decoded.detection {
            Some(detected) => {
                let seconds = audio.len() as f32 / SAMPLE_RATE as f32;
                self.languages.choose(detected, seconds)
            }
            None => self.languages.undetected(decoded.language.code),
        };
        if language.code != decoded.language.code {
            let plan = LanguagePlan {
                language: Some(language.code),
                detect: false,
            };
            let first = decoded;
            decoded = self.decoder.decode(decoded_audio, admission, pass, plan)?;
            decoded.inference_time += first.inference_time;
            decoded.queue_time += first.queue_time;
        }
        decoded.shift_back(lead);
        decoded.language = language;
        Ok(decoded)
    }

    /// The result for a decode of `span` (see `transcript`), with the stream's count of
    /// rejected audio.
    fn transcript(&self, decoded: Decoded, span: &Span) -> Option<Transcript> {
        transcript(decoded, span).map(|t| Transcript {
            rejected_audio: self.rejected.total(),
            ..t
        })
    }

    /// Where `utterance` starts in the stream. Without a detector it is the last audio, and
    /// it is worked out from the clock: a gap may have moved the clock since it began.
    fn start_of(&self, utterance: &Utterance) -> u64 {
        match self.vad {
            Some(_) => utterance.start,
            None => self.position - utterance.len() as u64,
        }
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
        match is_final {
            true => now + self.final_budget(),
            false => now + self.options.latency,
        }
    }

    /// When the final of an utterance ended now is due: files as `deadline`; live, within the
    /// latency of its speech's end, which was the pause that ended it ago (`held`, or the
    /// detector's minimum silence).
    fn final_deadline(&self, held: Option<Duration>) -> Instant {
        match (self.options.live, held) {
            (true, Some(pause)) => Instant::now() + self.options.latency.saturating_sub(pause),
            _ => self.deadline(true),
        }
    }

    /// Live: the time a final has for its decode, from the pause that ends its utterance.
    fn final_budget(&self) -> Duration {
        let min_silence = self
            .vad
            .as_ref()
            .map_or(Duration::ZERO, |v| v.config().min_silence);
        self.options.latency.saturating_sub(min_silence)
    }

    /// Live decodes the scheduler served after their deadline: the device is overloaded.
    fn count_late(&mut self, decoded: &Decoded) {
        if self.options.live && decoded.late {
            self.late_decodes += 1;
        }
    }

    /// How the scheduler admits a partial decode (see `device_allows`).
    fn admission(&self, due: PartialDue) -> Admission {
        match due.early {
            true => Admission::UnlessQueued(self.deadline(false)),
            false => Admission::IfIdle,
        }
    }

    /// Decodes the utterance so far; reports the words two consecutive decodes agree on.
    fn partial(&mut self, due: PartialDue) -> Result<Vec<Transcript>, TranscribeError> {
        let heard_before = std::mem::replace(&mut self.partials.heard, self.utterance.len());
        // Judged not speech once, an utterance gets no more partials: music or babble can
        // pass for speech at one length after failing at the one before. Its final is still
        // judged on all of it.
        if self.partials.not_speech {
            return Ok(Vec::new());
        }
        match self.worth_decoding(true) {
            Ok(()) => {}
            Err(NotSpeech::TooShort) => return Ok(Vec::new()),
            Err(_) => {
                self.partials.not_speech = true;
                return Ok(Vec::new());
            }
        }
        let (audio, lead) = (self.utterance.audio.clone(), self.utterance.lead);
        // A partial holds up whatever waits behind it, a final among it. Beside a busy process
        // a 1 s partial on two spinning threads took 7.2 s and made a final 3.5 s late: a
        // partial gives way after half a final's budget, leaving the final the other half.
        let give_way = Instant::now() + self.final_budget() / 2;
        let pass = Pass::Partial { give_way };
        let mut decoded = match self.decode(&audio, lead, self.admission(due), pass) {
            Err(TranscribeError::GaveWay) => {
                self.partials_shed += 1;
                self.partials_given_way += 1;
                return Ok(Vec::new());
            }
            // Due again at the next push.
            Err(TranscribeError::Busy) => {
                self.partials_shed += 1;
                self.partials.heard = heard_before;
                return Ok(Vec::new());
            }
            decoded => decoded?,
        };
        self.count_late(&decoded);
        self.languages.heard(decoded.language);
        self.partials.keep(audio.len(), decoded.clone());
        drop_tail_hallucination(&mut decoded.segments, self.utterance.speech_end);
        // Words after where the utterance may yet be cut could go to the next utterance's
        // final: they are not called stable.
        let earliest_cut = self.utterance.earliest_cut(self.max_utterance_samples()) as i64;
        let words_before_cut: usize = decoded
            .segments
            .iter()
            .take_while(|s| s.end <= earliest_cut)
            .map(|s| s.text.split_whitespace().count())
            .sum();
        let span = Span {
            start: self.start_of(&self.utterance),
            len: audio.len(),
            utterance_id: self.next_utterance,
            is_final: false,
        };
        let Some(mut t) = self.transcript(decoded, &span) else {
            return Ok(Vec::new());
        };
        t.stable_text = self.partials.agree(&t.text, words_before_cut);
        Ok(vec![t])
    }
}

/// The stream's lifetime: its end, flushes, gaps and timestamps that jump.
impl Transcriber {
    /// End of stream: the utterance in progress gets its final.
    pub fn finish(&mut self) -> Result<Vec<Transcript>, TranscribeError> {
        let mut out = Vec::new();
        if let Some(vad) = self.vad.as_mut() {
            let decided = vad.decide_rest()?;
            for (frame, event) in decided {
                out.extend(self.frame(&frame, event)?);
            }
            if let Some(vad) = self.vad.as_mut() {
                vad.forget_utterance();
            }
        }
        // A last partial frame is not transcribed, but it was heard: the clock counts it.
        self.position += self.carry.len() as u64;
        self.carry.clear();
        self.ending = true;
        let last = self.finish_utterance();
        self.ending = false;
        out.extend(last?);
        out.extend(self.take_lane_finals(0)?);
        self.rejected.close();
        Ok(out)
    }

    /// Forgets pending audio, the stream's context and its detected language, and restarts
    /// the timeline at zero (a new stream or a flush).
    pub fn forget_stream(&mut self) {
        // Their lanes skip what they have not started.
        self.pending.clear();
        self.decoder.forget_stream();
        self.languages.forget_stream();
        self.restart_timeline();
    }

    /// Drops pending audio and restarts the timeline at zero, keeping the stream's context
    /// (its timestamps went back: a new file after concat, a loop).
    pub fn restart_timeline(&mut self) {
        self.rejected.close();
        self.position = 0;
        self.forget_utterance();
    }

    /// Drops the utterance in progress but keeps the timeline (a gap or discontinuity
    /// follows; call `skip` for its length).
    pub fn forget_utterance(&mut self) {
        self.carry.clear();
        self.preroll.clear();
        self.history.clear();
        self.utterance = Utterance::new(self.position);
        self.partials = Partials::default();
        self.languages.forget_utterance();
        if let Some(vad) = self.vad.as_mut() {
            vad.forget_utterance();
        }
    }

    /// Advances the timeline over audio that never came (a gap).
    pub fn skip(&mut self, samples: u64) {
        self.position += samples;
    }
}
