//! Each element's worker thread, from NULL -> READY to READY -> NULL. It first gets the model
//! (so the state change returns at once), then transcribes what the element queues: audio and
//! the events that must stay in order with it. The streaming thread never waits for inference,
//! only, for non-live input, for the queue to have room.

use super::model::{self, ModelWatch};
use super::stream::{Stream, StreamError, TimedTranscript};
use super::{clock_time, Settings};
use crate::live_timing::{final_delay, OverloadWatch};
use crate::queue::{Limits, Next, Pace, Queued, Refused, Work, WorkQueue};
use crate::scheduler::{CancelToken, DecodeSlot};
use gst::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMITS: Limits = Limits {
    // Non-live input: the streaming thread waits while this much audio is queued.
    max_queued_ns: 10_000_000_000,
    // Live input: partial decodes run only when no more than this much audio waits behind
    // them. Behind that, partials are shed (finals never are) so the worker catches up.
    caught_up_ns: 250_000_000,
};

pub enum Item {
    Caps {
        caps: gst::Caps,
        live: bool,
    },
    Segment(gst::Segment),
    Buffer(gst::Buffer),
    Gap {
        pts: gst::ClockTime,
        duration: Option<gst::ClockTime>,
    },
    /// Any other serialized event (stream-start, tags, segment-done...): passed on in order,
    /// after the text of the audio before it.
    Event(gst::Event),
}

impl Queued for Item {
    /// From the buffer's size at `bytes_per_second` when it has no duration (0 before caps:
    /// such a buffer is refused anyway).
    fn audio_ns(&self, bytes_per_second: u64) -> u64 {
        let bytes_per_second = if bytes_per_second == 0 {
            32_000
        } else {
            bytes_per_second
        };
        match self {
            Item::Buffer(b) => b
                .duration()
                .map(|d| d.nseconds())
                .unwrap_or(b.size() as u64 * 1_000_000_000 / bytes_per_second),
            _ => 0,
        }
    }

    fn pace(&self) -> Option<Pace> {
        match self {
            Item::Caps { caps, live } => Some(Pace {
                live: *live,
                bytes_per_second: bytes_per_second(caps),
            }),
            _ => None,
        }
    }

    fn survives_flush(&self) -> bool {
        match self {
            Item::Caps { .. } => true,
            Item::Event(e) => e.is_sticky(),
            _ => false,
        }
    }
}

/// Bytes per second of the audio `caps` describe (16 kHz mono S16 if they cannot be read).
fn bytes_per_second(caps: &gst::Caps) -> u64 {
    super::convert::info_from_caps(caps)
        .map(|i| i.rate() as u64 * i.bpf() as u64)
        .unwrap_or(32_000)
}

/// Where the worker's results go: the element's pads and bus.
pub trait Output: Send + 'static {
    fn caps(&mut self, _caps: &gst::Caps) {}
    fn segment(&mut self, _segment: &gst::Segment) {}
    /// No result will start before `pts` (input time): downstream may move on to it.
    fn settled(&mut self, _pts: gst::ClockTime) {}
    fn event(&mut self, _event: gst::Event) {}
    /// A result; `settings` are the element's current ones (some change while playing).
    fn transcript(
        &mut self,
        t: &TimedTranscript,
        settings: &Settings,
    ) -> Result<gst::FlowSuccess, gst::FlowError>;
}

/// What an element's read-only properties report of its current run (READY -> PAUSED on).
#[derive(Debug, Default)]
pub struct RunCounters {
    /// Live input: the longest delay of a final after its utterance's end, in ms.
    pub max_delay_ms: AtomicU32,
    /// Audio the voice detector rejected, in ms.
    pub rejected_ms: AtomicU64,
}

impl RunCounters {
    pub fn reset(&self) {
        self.max_delay_ms.store(0, Ordering::Relaxed);
        self.rejected_ms.store(0, Ordering::Relaxed);
    }

    /// The value of the read-only property `name`, if it is one of these.
    pub fn property(&self, name: &str) -> Option<gst::glib::Value> {
        match name {
            super::settings::MAX_OBSERVED_DELAY => {
                Some(self.max_delay_ms.load(Ordering::Relaxed).to_value())
            }
            super::settings::REJECTED_AUDIO => {
                Some(self.rejected_ms.load(Ordering::Relaxed).to_value())
            }
            _ => None,
        }
    }
}

struct Shared {
    queue: WorkQueue<Item, gst::FlowError>,
    /// Settings changed while running, not yet applied.
    update: Mutex<Option<Settings>>,
    /// What the read-only properties report of this run.
    counters: Arc<RunCounters>,
    /// Stops the stream's decodes (a flush, a stop).
    cancel: CancelToken,
    /// The transcriber exists: the model is loaded.
    loaded: AtomicBool,
    /// The element's debug category.
    cat: gst::DebugCategory,
}

pub struct Worker {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread, which gets the models for `settings` (their start
    /// configuration, taken now) and then transcribes what is queued, logging in `cat`.
    pub fn start(
        element: &gst::Element,
        cat: gst::DebugCategory,
        settings: &Settings,
        watch: Arc<ModelWatch>,
        counters: Arc<RunCounters>,
        output: Box<dyn Output>,
    ) -> Worker {
        let shared = Arc::new(Shared {
            queue: WorkQueue::new(LIMITS),
            update: Mutex::default(),
            counters,
            cancel: CancelToken::new(),
            loaded: AtomicBool::new(false),
            cat,
        });
        let start = Start {
            weak: element.downgrade(),
            settings: settings.clone(),
            watch,
            shared: shared.clone(),
            output,
        };
        let thread = std::thread::Builder::new()
            .name(format!("whisperstt-{}", element.name()))
            .spawn(move || guarded_run(start))
            .ok();
        if thread.is_none() {
            shared.queue.fail(gst::FlowError::Error);
        }
        Worker { shared, thread }
    }

    /// Queues an item. Waits while too much non-live audio is queued (unless unlocked);
    /// returns the error (flushing, a failed model load, a failed downstream push) once there
    /// is one.
    pub fn enqueue(&self, item: Item) -> Result<gst::FlowSuccess, gst::FlowError> {
        match self.shared.queue.push(item) {
            Ok(()) => Ok(gst::FlowSuccess::Ok),
            Err(Refused::Flushing) => Err(gst::FlowError::Flushing),
            Err(Refused::Failed(e)) => Err(e),
        }
    }

    /// Queues end of stream and waits until everything before it is transcribed. False if a
    /// flush, a stop or an error came first. A sink's `unlock` (pausing) calls `paused` once
    /// per unlock: it returns whether to go on waiting (a sink waits for PLAYING in it).
    pub fn drain(&self, paused: impl Fn() -> bool) -> bool {
        self.shared.queue.drain(paused)
    }

    /// New settings (properties changed while running): the decoding ones apply from the
    /// next decode.
    pub fn update(&self, settings: Settings) {
        *self.shared.update.lock().unwrap() = Some(settings);
    }

    /// Drops what is queued and stops the running inference.
    pub fn flush_start(&self) {
        self.shared.queue.flush_start();
        self.shared.cancel.cancel();
    }

    /// A waiting push returns at once, keeping its item; nothing queued is dropped (a pause
    /// must lose nothing; a flush drops the queue itself).
    pub fn unlock(&self) {
        self.shared.queue.unlock();
    }

    pub fn unlock_stop(&self) {
        self.shared.queue.unlock_stop();
    }

    pub fn flush_stop(&self) {
        self.shared.queue.flush_stop();
    }
}

impl Drop for Worker {
    /// Stops within one encoder pass: the running inference is aborted; a load in progress
    /// is not waited for.
    fn drop(&mut self) {
        self.shared.queue.stop();
        self.shared.cancel.cancel();
        // Still loading: a state change must not wait for a load, so the thread is left to
        // finish it; it then sees `stopping` and exits, dropping the model handle. Once
        // loaded, joining waits at most for the cancelled decode.
        let loaded = self.shared.loaded.load(Ordering::Acquire);
        if let Some(t) = self.thread.take().filter(|_| loaded) {
            let _ = t.join();
        }
    }
}

/// What the worker thread starts with.
struct Start {
    weak: gst::glib::WeakRef<gst::Element>,
    settings: Settings,
    watch: Arc<ModelWatch>,
    shared: Arc<Shared>,
    output: Box<dyn Output>,
}

/// Runs the worker; a panic in it (a bug) becomes this element's error instead of a dead
/// thread the streaming thread would wait on for ever, and leaves every other stream alone.
fn guarded_run(start: Start) {
    let (weak, shared) = (start.weak.clone(), start.shared.clone());
    let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run(start)))
    else {
        return;
    };
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    if let Some(element) = weak.upgrade() {
        gst::element_error!(
            element,
            gst::LibraryError::Failed,
            ("Internal error in the transcription worker: {}", what)
        );
    }
    // The element's stop still uses it: a lock the panic held must not panic it in turn.
    shared.update.clear_poison();
    // The queue tells the streaming thread this stream is over.
    shared.queue.fail(gst::FlowError::Error);
}

/// Gets the models, then handles the queue's items in order until the element stops.
fn run(start: Start) {
    let Start {
        weak,
        mut settings,
        watch,
        shared,
        mut output,
    } = start;
    let transcriber = weak.upgrade().and_then(|element| {
        // Decodes run on this thread and the threads it starts: below the rest of the
        // process when the operator asks (WHISPERSTT_NICE).
        if let Err(e) = crate::cpu::lower_this_thread() {
            gst::element_warning!(element, gst::CoreError::Failed, ("{}", e));
        }
        let slot = DecodeSlot {
            budget: crate::scheduler::for_device(settings.start.device),
            cancel: shared.cancel.clone(),
        };
        model::load(&element, &settings.start_config(), &watch, slot).ok()
    });
    let Some(transcriber) = transcriber else {
        // The error is posted; every later push returns it.
        shared.queue.fail(gst::FlowError::Error);
        return;
    };
    let mut stream = Stream::new(transcriber);
    shared.loaded.store(true, Ordering::Release);
    let mut overload = OverloadWatch::default();
    while let Some((next, work)) = shared.queue.next() {
        let Some(element) = weak.upgrade() else {
            return;
        };
        if let Some(update) = shared.update.lock().unwrap().take() {
            apply(&element, &mut stream, &mut settings, update);
        }
        let mut current = Current {
            output: output.as_mut(),
            shared: &shared,
            work,
            settings: &settings,
            element: &element,
        };
        let result = handle(&mut stream, next, &mut current);
        let lag_ns = shared.queue.queued_ns();
        warn_if_overloaded(
            &mut overload,
            &element,
            shared.cat,
            &stream,
            lag_ns,
            &settings,
        );
        // Flushing is not an error of the stream: the next item after the flush goes on.
        if let Err(e) = result.filter_flushing() {
            shared.queue.fail_unless_flushing(e);
        }
    }
}

/// Warns when the device cannot keep up with this live stream (`OverloadWatch` says when).
fn warn_if_overloaded(
    watch: &mut OverloadWatch,
    element: &gst::Element,
    cat: gst::DebugCategory,
    stream: &Stream,
    lag_ns: u64,
    settings: &Settings,
) {
    if !stream.is_live() {
        watch.not_live();
        return;
    }
    let due = watch.check(
        Instant::now(),
        Duration::from_nanos(lag_ns),
        settings.start.latency,
    );
    if !due {
        return;
    }
    let latency = settings.latency();
    let lag = gst::ClockTime::from_nseconds(lag_ns);
    gst::warning!(
        cat,
        obj = element,
        "overloaded: {} ms behind real time",
        lag.mseconds()
    );
    let (model, device) = stream.model_and_device();
    let details = gst::Structure::builder("whisperstt-overload")
        .field("model", model)
        .field("device", device)
        .field("lag", lag)
        .field("latency", latency)
        .field("late-decodes", stream.late_decodes())
        .build();
    gst::element_warning!(
        element,
        gst::CoreError::Clock,
        (
            "Model {} on {} is overloaded: this live stream is {} ms behind real time (latency {} ms); partial results are shed first, finals are kept",
            model,
            device,
            lag.mseconds(),
            latency.mseconds()
        ),
        details: details
    );
}

/// Applies the settings that may change while running: decoding options to the transcriber
/// (refused ones are reported and the old ones stay), the rest to what the worker reads per
/// result. Start settings stay what the stream was started with.
fn apply(element: &gst::Element, stream: &mut Stream, settings: &mut Settings, update: Settings) {
    if let Err(e) = stream.set_decode_options(&update.playing.decode_options()) {
        gst::element_warning!(
            element,
            gst::LibraryError::Settings,
            ("Decoding settings not changed: {}", e)
        );
        return;
    }
    settings.playing = update.playing;
}

/// The element's output, passing on only results of work no flush has overtaken.
struct Current<'a> {
    output: &'a mut dyn Output,
    shared: &'a Shared,
    /// What the item being handled was taken as.
    work: Work,
    settings: &'a Settings,
    element: &'a gst::Element,
}

impl Current<'_> {
    fn stale(&self) -> bool {
        !self.shared.queue.is_current(&self.work)
    }

    fn transcript(&mut self, t: &mut TimedTranscript) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.stale() {
            return Err(gst::FlowError::Flushing);
        }
        t.lag = gst::ClockTime::from_nseconds(self.shared.queue.queued_ns());
        if self.work.live && t.transcript.is_final {
            self.observe_delay(t);
        }
        self.output.transcript(t, self.settings)
    }

    /// Live input: how long after its utterance's end (in running time) a final comes.
    /// Updates `max-observed-delay` and warns past latency + lateness (`final_delay`).
    fn observe_delay(&self, t: &TimedTranscript) {
        let (Some(now), Some(start)) = (self.element.current_running_time(), t.running_time) else {
            return;
        };
        let judged = final_delay(
            Duration::from_nanos(now.nseconds()),
            Duration::from_nanos((start + t.duration).nseconds()),
            self.settings.start.latency,
            self.settings.playing.lateness,
        );
        let delay = gst::ClockTime::from_nseconds(judged.delay.as_nanos() as u64);
        let delay_ms = delay.mseconds().min(u32::MAX as u64) as u32;
        let longest = &self.shared.counters.max_delay_ms;
        if delay_ms > longest.fetch_max(delay_ms, Ordering::Relaxed) {
            self.element.notify(super::settings::MAX_OBSERVED_DELAY);
        }
        if judged.late {
            gst::warning!(
                self.shared.cat,
                obj = self.element,
                "final of utterance {} came {} ms after it ended",
                t.transcript.utterance_id,
                delay.mseconds()
            );
            let details = gst::Structure::builder("whisperstt-late")
                .field("delay", delay)
                .field("latency", self.settings.latency())
                .field("lateness", clock_time(self.settings.playing.lateness))
                .field("utterance-id", t.transcript.utterance_id)
                .build();
            gst::element_warning!(
                self.element,
                gst::CoreError::Clock,
                (
                    "Final transcript {} ms after its utterance ended: over latency {} ms + lateness {} ms",
                    delay.mseconds(),
                    self.settings.latency().mseconds(),
                    self.settings.playing.lateness.as_millis()
                ),
                details: details
            );
        }
    }
}

trait FilterFlushing {
    fn filter_flushing(self) -> Result<gst::FlowSuccess, gst::FlowError>;
}

impl FilterFlushing for Result<gst::FlowSuccess, gst::FlowError> {
    fn filter_flushing(self) -> Result<gst::FlowSuccess, gst::FlowError> {
        match self {
            Err(gst::FlowError::Flushing) => Ok(gst::FlowSuccess::Ok),
            other => other,
        }
    }
}

/// Handles one item, passing on its results and, after them, how far the text has settled.
fn handle(
    stream: &mut Stream,
    next: Next<Item>,
    current: &mut Current,
) -> Result<gst::FlowSuccess, gst::FlowError> {
    let element = current.element;
    let item = match next {
        Next::Item(item) => item,
        Next::Drain(ticket) => return drain(stream, ticket, current),
        Next::Reset => {
            gst::debug!(
                current.shared.cat,
                obj = element,
                "flushed: pending audio dropped"
            );
            stream.forget_stream();
            current.shared.cancel.resume();
            return Ok(gst::FlowSuccess::Ok);
        }
    };
    let transcripts = match item {
        Item::Caps { caps, live } => {
            set_caps(stream, &caps, live, current)?;
            Vec::new()
        }
        Item::Segment(segment) => {
            let finals = match stream.set_segment(&segment) {
                Err(e @ StreamError::SegmentFormat(_)) => {
                    gst::element_error!(element, gst::StreamError::Format, ("{}", e));
                    return Err(gst::FlowError::Error);
                }
                other => result(element, other)?,
            };
            gst::debug!(
                current.shared.cat,
                obj = element,
                "{segment:?}; {} finals of the timeline before it go out first",
                finals.len()
            );
            // The old timeline's last text goes out before the new segment.
            for mut t in finals {
                current.transcript(&mut t)?;
            }
            current.output.segment(&segment);
            Vec::new()
        }
        Item::Buffer(buffer) => transcribe(stream, &buffer, current)?,
        // Passed on as the settled time moving, after the text the gap completes.
        Item::Gap { pts, duration } => {
            let (at, lasting) = (pts.display(), duration.display());
            gst::log!(
                current.shared.cat,
                obj = element,
                "gap at {at} for {lasting}"
            );
            result(element, stream.gap(pts, duration))?
        }
        Item::Event(event) => {
            // After the text of the audio before it (some may still be in lanes) and the
            // time that text settles.
            let finals = result(element, stream.lane_finals())?;
            emit(stream, finals, current)?;
            current.output.event(event);
            return Ok(gst::FlowSuccess::Ok);
        }
    };
    emit(stream, transcripts, current)
}

/// Sends `transcripts` out, then the time up to which no text is still to come.
fn emit(
    stream: &mut Stream,
    mut transcripts: Vec<TimedTranscript>,
    current: &mut Current,
) -> Result<gst::FlowSuccess, gst::FlowError> {
    log_rejections(stream, current);
    for t in &mut transcripts {
        current.transcript(t)?;
    }
    if let Some(pts) = stream.settled_pts() {
        if !current.stale() {
            current.output.settled(pts);
        }
    }
    Ok(gst::FlowSuccess::Ok)
}

fn set_caps(
    stream: &mut Stream,
    caps: &gst::Caps,
    live: bool,
    current: &mut Current,
) -> Result<(), gst::FlowError> {
    let (element, cat) = (current.element, current.shared.cat);
    if let Err(e) = stream.set_caps(caps, live) {
        gst::element_error!(element, gst::StreamError::Format, ("{}", e));
        return Err(gst::FlowError::NotNegotiated);
    }
    gst::info!(cat, obj = element, "caps {caps}; live input: {live}");
    current.output.caps(caps);
    Ok(())
}

/// One audio buffer into the stream; a partial decode the stream sheds is logged.
fn transcribe(
    stream: &mut Stream,
    buffer: &gst::Buffer,
    current: &mut Current,
) -> Result<Vec<TimedTranscript>, gst::FlowError> {
    let (element, caught_up) = (current.element, current.work.caught_up);
    #[cfg(feature = "fault-injection")]
    strike(element, stream);
    let (shed, gave_way) = (stream.partials_shed(), stream.partials_given_way());
    let transcripts = result(element, stream.transcribe(buffer, caught_up))?;
    if stream.partials_given_way() > gave_way {
        gst::debug!(
            current.shared.cat,
            obj = element,
            "partial decode at {} stopped: it ran past half the time a final has",
            buffer.pts().display()
        );
    } else if stream.partials_shed() > shed {
        let queued = current.shared.queue.queued_ns() / 1_000_000;
        gst::log!(
            current.shared.cat,
            obj = element,
            "partial decode shed at {}: {} ms of audio queued behind it{}",
            buffer.pts().display(),
            queued,
            if caught_up { ", the device busy" } else { "" }
        );
    }
    Ok(transcripts)
}

/// End of stream: the last finals, then the drain is marked done whatever the outcome (an
/// error is the stream's flow).
fn drain(
    stream: &mut Stream,
    ticket: u64,
    current: &mut Current,
) -> Result<gst::FlowSuccess, gst::FlowError> {
    let drained = result(current.element, stream.drain());
    log_rejections(stream, current);
    let out = drained.and_then(|mut finals| {
        let (cat, element) = (current.shared.cat, current.element);
        gst::debug!(
            cat,
            obj = element,
            "end of stream: {} last finals",
            finals.len()
        );
        finals
            .iter_mut()
            .try_for_each(|t| current.transcript(t).map(|_| ()))
    });
    current.shared.queue.drained(ticket);
    out.map(|_| gst::FlowSuccess::Ok)
}

/// Faults a test armed for this element (src/faults.rs).
#[cfg(feature = "fault-injection")]
fn strike(element: &gst::Element, stream: &mut Stream) {
    use crate::faults::{take, Fault};
    if take(&element.name(), Fault::WorkerPanic) {
        panic!("fault injected into {}", element.name());
    }
    if take(&element.name(), Fault::InferenceError) {
        stream.transcriber_mut().inject_inference_error();
    }
    if take(&element.name(), Fault::WorkerStall) {
        std::thread::sleep(crate::faults::STALL);
    }
}

/// Logs and counts what the voice detector threw away, so that speech it loses is never
/// silent.
fn log_rejections(stream: &mut Stream, current: &Current) {
    let rejections = stream.take_rejections();
    for r in &rejections {
        gst::debug!(
            current.shared.cat,
            obj = current.element,
            "voice detector rejected {:.2} s of audio at {} .. {}: {}",
            r.rejected.audio.as_secs_f64(),
            r.pts,
            r.end,
            r.rejected.reason.describe()
        );
    }
    if !rejections.is_empty() {
        let ms = stream.rejected_audio().as_millis().min(u64::MAX as u128) as u64;
        current
            .shared
            .counters
            .rejected_ms
            .store(ms, Ordering::Relaxed);
        current.element.notify(super::settings::REJECTED_AUDIO);
    }
}

/// Turns a stream error into an element error; a cancelled decode (flush, stop) is not one.
fn result(
    element: &gst::Element,
    r: Result<Vec<TimedTranscript>, StreamError>,
) -> Result<Vec<TimedTranscript>, gst::FlowError> {
    match r {
        Ok(t) => Ok(t),
        Err(e) if e.is_aborted() => Ok(Vec::new()),
        Err(e) => Err(super::stream_error(element, "Transcription failed", e)),
    }
}
