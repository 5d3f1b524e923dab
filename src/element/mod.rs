//! What `whispertranscribe` and `whispersink` share: their properties, getting the model off
//! the state-change path, turning buffers into transcripts with timestamps, and the bus
//! messages they post.

mod convert;
mod settings;
mod stream;
mod worker;

pub use settings::{ElementKind, Granularity, Settings};
pub use stream::TimedTranscript;
pub use worker::{Item, Output, Worker};

use crate::model::cache::{self, ModelAction, ModelEvent, ModelKey, Subscription};
use gst::prelude::*;
use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The structure name of transcript messages.
pub const TRANSCRIPT_MESSAGE: &str = "whisperstt-transcript";
/// The downstream custom event after each final's text, as GStreamer's other transcribers
/// send it.
pub const FINAL_TRANSCRIPT_EVENT: &str = "rstranscribe/final-transcript";
/// The structure name of model cache messages.
pub const MODEL_MESSAGE: &str = "whisperstt-model";
/// The GLib log domain of warnings given outside a pipeline (a refused property value on an
/// element without a bus).
pub const LOG_DOMAIN: &str = "whisperstt";

/// Sink caps: 16- and 32-bit audio at any rate and channel count, converted inside to what
/// whisper.cpp takes (16 kHz mono f32) by GStreamer's own audio converter.
pub fn sink_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field(
            "format",
            gst::List::new(["S16LE", "S16BE", "F32LE", "F32BE"]),
        )
        .field("rate", gst::IntRange::new(1i32, i32::MAX))
        .field(
            "channels",
            gst::IntRange::new(1i32, convert::MAX_CHANNELS as i32),
        )
        .field("layout", "interleaved")
        .build()
}

/// A duration as a GStreamer clock time.
pub fn clock_time(d: std::time::Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(d.as_nanos() as u64)
}

/// Posts a `whisperstt-model` message for a cache event.
/// The plugin-global model cache's loads, shares, releases and failures, as the elements see
/// them (the same as their `whisperstt-model` messages).
static MODEL_CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "whisperstt-model",
        gst::DebugColorFlags::empty(),
        Some("whisperstt model cache: loads, shares and releases"),
    )
});

pub fn post_model_event(element: &gst::Element, event: &ModelEvent) {
    gst::info!(
        MODEL_CAT,
        obj = element,
        "{} {} on {}{}: {} handles, {} loads{}",
        event.action.as_str(),
        event.key.path.display(),
        event.key.device,
        event
            .load_time
            .map(|t| format!(" in {} ms", t.as_millis()))
            .unwrap_or_default(),
        event.live_handles,
        event.loads,
        event
            .error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    let mut s = gst::Structure::builder(MODEL_MESSAGE)
        .field("action", event.action.as_str())
        .field("model", event.key.path.to_string_lossy().as_ref())
        .field("device", event.key.device.to_string())
        .field("bytes", event.bytes)
        .field("live-handles", event.live_handles as u32)
        .field("loads", event.loads)
        .field("element", element.name().as_str())
        .build();
    if let Some(t) = event.load_time {
        s.set("load-time", clock_time(t));
    }
    if let Some(e) = &event.error {
        s.set("error", e.to_string());
    }
    let _ = element.post_message(gst::message::Element::builder(s).src(element).build());
}

/// Forwards the cache's release of the element's last model to the element's bus, for as
/// long as the element lives (a release can come long after the element stopped using it).
pub struct ReleaseWatch {
    last_key: Arc<Mutex<Option<ModelKey>>>,
    _subscription: Subscription,
}

impl ReleaseWatch {
    pub fn new(element: &gst::Element) -> Self {
        let last_key: Arc<Mutex<Option<ModelKey>>> = Arc::default();
        let weak = element.downgrade();
        let key = last_key.clone();
        let subscription = cache::global().subscribe(move |event| {
            if event.action != ModelAction::Released
                || key.lock().unwrap().as_ref() != Some(&event.key)
            {
                return;
            }
            if let Some(element) = weak.upgrade() {
                post_model_event(&element, event);
            }
        });
        ReleaseWatch {
            last_key,
            _subscription: subscription,
        }
    }

    /// Where the element's loader records the key of the model it acquired.
    pub fn key_slot(&self) -> Arc<Mutex<Option<ModelKey>>> {
        self.last_key.clone()
    }
}

/// An element's worker, from NULL -> READY to READY -> NULL, the watch that reports its
/// model's release for as long as the element lives, and the delay of finals it observed.
#[derive(Default)]
pub struct WorkerSlot {
    worker: Mutex<Option<Arc<Worker>>>,
    /// A property read at start changed in READY, after the worker started with the old
    /// value: it starts again at READY -> PAUSED.
    restart: AtomicBool,
    releases: Mutex<Option<ReleaseWatch>>,
    max_delay_ms: Arc<AtomicU32>,
}

impl WorkerSlot {
    /// Starts the worker, which gets the model, with the element's current `settings` and
    /// the output `output` makes for them.
    fn start(
        &self,
        element: &gst::Element,
        settings: &Mutex<Settings>,
        output: impl FnOnce(&Settings) -> Result<Box<dyn Output>, gst::StateChangeError>,
    ) -> Result<(), gst::StateChangeError> {
        let settings = settings.lock().unwrap().clone();
        let output = output(&settings)?;
        let mut releases = self.releases.lock().unwrap();
        let releases = releases.get_or_insert_with(|| ReleaseWatch::new(element));
        self.max_delay_ms.store(0, Ordering::Relaxed);
        let worker = Worker::start(
            element,
            &settings,
            releases,
            self.max_delay_ms.clone(),
            output,
        );
        *self.worker.lock().unwrap() = Some(Arc::new(worker));
        Ok(())
    }

    /// READY -> NULL: the worker, the stream's whisper state and its model handle go.
    pub fn stop(&self) {
        let worker = self.worker.lock().unwrap().take();
        drop(worker);
    }

    /// The worker's part of a state change, around the base class's (`parent`): NULL ->
    /// READY starts it (with `settings` and the element's `output` for them), and READY ->
    /// PAUSED again if a property read at start changed in READY; PAUSED -> READY drops what
    /// is queued or being decoded, releasing the streaming thread's waits before the pads
    /// deactivate; READY -> NULL stops it.
    pub fn change_state(
        &self,
        element: &gst::Element,
        transition: gst::StateChange,
        settings: &Mutex<Settings>,
        output: impl FnOnce(&Settings) -> Result<Box<dyn Output>, gst::StateChangeError>,
        parent: impl FnOnce() -> Result<gst::StateChangeSuccess, gst::StateChangeError>,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::NullToReady => {
                self.restart.store(false, Ordering::Relaxed);
                self.start(element, settings, output)?;
            }
            gst::StateChange::ReadyToPaused if self.restart.swap(false, Ordering::Relaxed) => {
                self.stop();
                self.start(element, settings, output)?;
            }
            gst::StateChange::PausedToReady => {
                self.with(|w| w.flush_start());
            }
            _ => {}
        }
        let ret = parent();
        match transition {
            gst::StateChange::PausedToReady => {
                self.with(|w| w.flush_stop());
            }
            gst::StateChange::ReadyToNull if ret.is_ok() => self.stop(),
            _ => {}
        }
        ret
    }

    /// Runs `f` on the worker without holding the lock (pushes may wait for room).
    pub fn with<R>(&self, f: impl FnOnce(&Worker) -> R) -> Option<R> {
        let worker = self.worker.lock().unwrap().clone();
        worker.as_deref().map(f)
    }

    pub fn push(&self, item: Item) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.with(|w| w.push(item))
            .unwrap_or(Err(gst::FlowError::Flushing))
    }
}

/// Property glue both elements share: stores the value (a value that cannot work is refused
/// with a warning naming it) and hands the new settings to a running worker, which applies
/// the decoding ones from its next decode.
pub fn set_property(
    element: &gst::Element,
    cat: gst::DebugCategory,
    settings: &Mutex<Settings>,
    worker: &WorkerSlot,
    value: &gst::glib::Value,
    pspec: &gst::glib::ParamSpec,
) {
    if !pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING) {
        // A sink prerolling is still READY, on its way to PAUSED: running already.
        match element.current_state().max(element.pending_state()) {
            gst::State::Paused | gst::State::Playing => {
                refuse_property(element, pspec, "it changes only in the NULL or READY state");
                return;
            }
            gst::State::Ready => worker.restart.store(true, Ordering::Relaxed),
            _ => {}
        }
    }
    // The lock is let go before anything is posted: a synchronous bus handler may read a
    // property of this element.
    let changed = {
        let mut s = settings.lock().unwrap();
        s.set(value, pspec).map(|_| s.clone())
    };
    let s = match changed {
        Ok(s) => s,
        Err(e) => {
            refuse_property(element, pspec, &e);
            return;
        }
    };
    gst::debug!(cat, obj = element, "'{}' set", pspec.name());
    worker.with(|w| w.update(s));
}

/// Says a value that cannot work was refused (the old one stays).
fn refuse_property(element: &gst::Element, pspec: &gst::glib::ParamSpec, e: &str) {
    if element.bus().is_some() {
        gst::element_warning!(
            element,
            gst::LibraryError::Settings,
            ("Property '{}' not changed: {}", pspec.name(), e)
        );
    } else {
        // Not in a pipeline yet (a gst-launch line, properties set before adding the
        // element): GStreamer would drop a message posted now. Say it where GLib says it
        // refuses an out-of-range value.
        gst::glib::g_warning!(
            LOG_DOMAIN,
            "{}: property '{}' not changed: {}",
            element.name(),
            pspec.name(),
            e
        );
    }
}

pub fn property(
    settings: &Mutex<Settings>,
    worker: &WorkerSlot,
    pspec: &gst::glib::ParamSpec,
) -> gst::glib::Value {
    if pspec.name() == settings::MAX_OBSERVED_DELAY {
        return worker.max_delay_ms.load(Ordering::Relaxed).to_value();
    }
    settings.lock().unwrap().get(pspec)
}

/// Builds the `whisperstt-transcript` message for one transcript.
pub fn transcript_message(element: &gst::Element, t: &TimedTranscript) -> gst::Message {
    let tr = &t.transcript;
    let words = gst::List::new(tr.words.iter().map(|w| {
        gst::Structure::builder("word")
            .field("text", w.text.as_str())
            .field("start", t.pts_of(w.start))
            .field("end", t.pts_of(w.end))
            .field("probability", w.probability as f64)
            .build()
            .to_send_value()
    }));
    let mut s = gst::Structure::builder(TRANSCRIPT_MESSAGE)
        .field("text", tr.text.as_str())
        .field("is-final", tr.is_final)
        .field("stable-text", tr.stable_text.as_str())
        .field("utterance-id", tr.utterance_id)
        .field("start", t.pts)
        .field("end", t.pts + t.duration)
        .field("duration", t.duration)
        .field("language", tr.language.as_str())
        .field("avg-logprob", tr.avg_logprob as f64)
        .field("no-speech-prob", tr.no_speech_prob as f64)
        .field("words", words)
        .field("inference-time", clock_time(tr.inference_time))
        .field("queue-time", clock_time(tr.queue_time))
        .field("threads", tr.threads)
        .field("audio-duration", clock_time(tr.audio_duration))
        .field("lag", t.lag)
        .field("model", t.model.as_str())
        .field("device", t.device.as_str())
        .field("element", element.name().as_str())
        .build();
    if let Some(rt) = t.running_time {
        s.set("running-time", rt);
    }
    if let Some(st) = t.stream_time {
        s.set("stream-time", st);
    }
    gst::message::Element::builder(s).src(element).build()
}

/// Logs the transcript in the element's category and posts its message; both elements do
/// this for every transcript.
pub fn post_transcript(element: &gst::Element, cat: gst::DebugCategory, t: &TimedTranscript) {
    let tr = &t.transcript;
    // Decode timings and scheduling, per result (a final reused from a partial repeats it).
    gst::debug!(
        cat,
        obj = element,
        "{} of utterance {} at {} .. {}: {:.2} s of audio decoded in {} ms on {} threads \
         after {} ms waiting for them, lag {} ms: {}",
        if tr.is_final { "final" } else { "partial" },
        tr.utterance_id,
        t.pts,
        t.pts + t.duration,
        tr.audio_duration.as_secs_f64(),
        tr.inference_time.as_millis(),
        tr.threads,
        tr.queue_time.as_millis(),
        t.lag.mseconds(),
        tr.text
    );
    let _ = element.post_message(transcript_message(element, t));
}

/// Whether the audio upstream of `sinkpad` is live (from a LATENCY query).
pub fn upstream_is_live(sinkpad: &gst::Pad) -> bool {
    let mut q = gst::query::Latency::new();
    sinkpad.peer_query(&mut q) && q.result().0
}

/// Posts a stream error naming what failed; returns the flow error to give upstream.
pub(crate) fn stream_error(
    element: &gst::Element,
    what: &str,
    err: impl std::fmt::Display,
) -> gst::FlowError {
    gst::element_error!(element, gst::StreamError::Failed, ("{}: {}", what, err));
    gst::FlowError::Error
}
