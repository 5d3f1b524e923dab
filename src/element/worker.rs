//! Each element's worker thread, from NULL -> READY to READY -> NULL. It first gets the model
//! (so the state change returns at once), then transcribes what the element queues: audio and
//! the events that must stay in order with it. The streaming thread never waits for inference,
//! only, for non-live input, for the queue to have room.

use super::stream::{Stream, TimedTranscript};
use super::{post_model_event, ReleaseWatch, Settings};
use crate::model::cache::{self, ModelHandle, ModelKey};
use crate::model::{locate, ModelError};
use crate::transcriber::{TranscribeError, Transcriber};
use gst::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// Non-live input: the streaming thread waits while this much audio is queued.
const MAX_QUEUED_NS: u64 = 10_000_000_000;
/// Live input: partial decodes run only when no more than this much audio waits behind them.
/// Behind that, partials are shed (finals never are) so the worker catches up.
const CAUGHT_UP_NS: u64 = 250_000_000;

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
    /// End of stream: finish the utterance in progress, then mark this drain done.
    Drain(u64),
    /// After a flush: forget pending audio.
    Reset,
    /// Any other serialized event (stream-start, tags, segment-done...): passed on in order,
    /// after the text of the audio before it.
    Event(gst::Event),
}

impl Item {
    /// How much audio the item holds; from its size at `bytes_per_second` when the buffer
    /// has no duration.
    fn duration_ns(&self, bytes_per_second: u64) -> u64 {
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

#[derive(Default)]
struct Queue {
    /// Items with the audio duration each added to `queued_ns`.
    items: VecDeque<(Item, u64)>,
    queued_ns: u64,
    /// Of the negotiated audio, to tell how long a buffer without a duration is (0 before
    /// caps: such a buffer is refused anyway).
    bytes_per_second: u64,
    live: bool,
    flushing: bool,
    stopping: bool,
    /// A sink's `unlock` (pausing, or about to flush): pushes take their item without waiting
    /// for room, so the streaming thread lets go of the sink's preroll lock.
    unlocked: bool,
    /// Counts flushes: results of work started before one are dropped.
    generation: u64,
    /// Drains queued and the last one done.
    drains_queued: u64,
    drained: u64,
    /// The last result of handling an item; returned to the streaming thread.
    flow: Option<gst::FlowError>,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    /// Settings changed while running, not yet applied.
    update: Mutex<Option<Settings>>,
    /// Live input: the longest delay of a final after its utterance's end, in ms.
    max_delay_ms: Arc<AtomicU32>,
    /// The transcriber's abort flag, once it exists.
    abort: Mutex<Option<Arc<AtomicBool>>>,
}

impl Shared {
    fn abort(&self, on: bool) {
        if let Some(flag) = self.abort.lock().unwrap().as_ref() {
            flag.store(on, Ordering::Relaxed);
        }
    }
}

pub struct Worker {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    pub fn start(
        element: &gst::Element,
        settings: &Settings,
        releases: &ReleaseWatch,
        max_delay_ms: Arc<AtomicU32>,
        output: Box<dyn Output>,
    ) -> Worker {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            changed: Condvar::new(),
            update: Mutex::default(),
            max_delay_ms,
            abort: Mutex::default(),
        });
        let weak = element.downgrade();
        let settings = settings.clone();
        let key_slot = releases.key_slot();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("whisperstt-{}", element.name()))
            .spawn(move || {
                // Decodes run on this thread and the threads it starts: below the rest of
                // the process when the operator asks (WHISPERSTT_NICE).
                if let Err(e) = crate::cpu::lower_this_thread() {
                    if let Some(element) = weak.upgrade() {
                        gst::element_warning!(element, gst::CoreError::Failed, ("{}", e));
                    }
                }
                guarded_run(weak, settings, key_slot, thread_shared, output)
            })
            .ok();
        if thread.is_none() {
            shared.queue.lock().unwrap().flow = Some(gst::FlowError::Error);
        }
        Worker { shared, thread }
    }

    /// Queues an item. Waits while too much non-live audio is queued (unless unlocked);
    /// returns the error (flushing, a failed model load, a failed downstream push) once there
    /// is one.
    pub fn push(&self, item: Item) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut q = self.shared.queue.lock().unwrap();
        loop {
            if q.flushing || q.stopping {
                return Err(gst::FlowError::Flushing);
            }
            if let Some(e) = q.flow {
                return Err(e);
            }
            if q.live || q.unlocked || q.queued_ns < MAX_QUEUED_NS {
                break;
            }
            q = self.shared.changed.wait(q).unwrap();
        }
        if let Item::Caps { live, caps } = &item {
            q.live = *live;
            q.bytes_per_second = bytes_per_second(caps);
        }
        let duration = item.duration_ns(q.bytes_per_second);
        q.queued_ns += duration;
        q.items.push_back((item, duration));
        self.shared.changed.notify_all();
        Ok(gst::FlowSuccess::Ok)
    }

    /// Queues end of stream and waits until everything before it is transcribed. False if a
    /// flush, a stop or an error came first. A sink's `unlock` (pausing) calls `paused` once
    /// per unlock, without the queue's lock: it returns whether to go on waiting (a sink
    /// waits for PLAYING in it).
    pub fn drain(&self, paused: impl Fn() -> bool) -> bool {
        let (ticket, generation) = {
            let mut q = self.shared.queue.lock().unwrap();
            q.drains_queued += 1;
            (q.drains_queued, q.generation)
        };
        if self.push(Item::Drain(ticket)).is_err() {
            return false;
        }
        let mut answered_unlock = false;
        let mut q = self.shared.queue.lock().unwrap();
        loop {
            if q.drained >= ticket {
                return true;
            }
            if q.generation != generation || q.flushing || q.stopping || q.flow.is_some() {
                return false;
            }
            if q.unlocked && !answered_unlock {
                drop(q);
                if !paused() {
                    return false;
                }
                answered_unlock = true;
                q = self.shared.queue.lock().unwrap();
                continue;
            }
            answered_unlock &= q.unlocked;
            q = self.shared.changed.wait(q).unwrap();
        }
    }

    /// New settings (properties changed while running): the decoding ones apply from the
    /// next decode.
    pub fn update(&self, settings: Settings) {
        *self.shared.update.lock().unwrap() = Some(settings);
    }

    /// Drops what is queued and stops the running inference.
    pub fn flush_start(&self) {
        let mut q = self.shared.queue.lock().unwrap();
        q.flushing = true;
        q.generation += 1;
        // Caps and sticky events (stream-start, tags) stay: upstream does not send them
        // again after a flush.
        q.items.retain(|(i, _)| match i {
            Item::Caps { .. } => true,
            Item::Event(e) => e.is_sticky(),
            _ => false,
        });
        q.queued_ns = 0;
        self.shared.abort(true);
        self.shared.changed.notify_all();
    }

    /// A waiting push returns at once, keeping its item; nothing queued is dropped (a pause
    /// must lose nothing; a flush drops the queue itself).
    pub fn unlock(&self) {
        self.shared.queue.lock().unwrap().unlocked = true;
        self.shared.changed.notify_all();
    }

    pub fn unlock_stop(&self) {
        self.shared.queue.lock().unwrap().unlocked = false;
    }

    pub fn flush_stop(&self) {
        let mut q = self.shared.queue.lock().unwrap();
        q.flushing = false;
        q.flow = None;
        q.items.push_back((Item::Reset, 0));
        self.shared.changed.notify_all();
    }
}

impl Drop for Worker {
    /// Stops within one encoder pass: the running inference is aborted; a load in progress
    /// is not waited for.
    fn drop(&mut self) {
        {
            let mut q = self.shared.queue.lock().unwrap();
            q.stopping = true;
            q.items.clear();
        }
        self.shared.abort(true);
        self.shared.changed.notify_all();
        // Still loading: a state change must not wait for a load, so the thread is left to
        // finish it; it then sees `stopping` and exits, dropping the model handle. Once
        // loaded, joining waits at most for the aborted decode.
        let loaded = self.shared.abort.lock().unwrap().is_some();
        if let Some(t) = self.thread.take().filter(|_| loaded) {
            let _ = t.join();
        }
    }
}

/// Runs the worker; a panic in it (a bug) becomes this element's error instead of a dead
/// thread the streaming thread would wait on for ever, and leaves every other stream alone.
fn guarded_run(
    weak: gst::glib::WeakRef<gst::Element>,
    settings: Settings,
    key_slot: Arc<Mutex<Option<ModelKey>>>,
    shared: Arc<Shared>,
    output: Box<dyn Output>,
) {
    let thread_shared = shared.clone();
    let thread_weak = weak.clone();
    let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        run(thread_weak, settings, key_slot, thread_shared, output)
    })) else {
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
    // The streaming thread and the element's stop still use these: a lock the panic held
    // must not panic them in turn.
    shared.queue.clear_poison();
    shared.update.clear_poison();
    shared.abort.clear_poison();
    // The queue tells the streaming thread this stream is over (and dropping the items wakes
    // a waiting drain).
    let mut q = shared.queue.lock().unwrap();
    q.flow = Some(gst::FlowError::Error);
    q.items.clear();
    shared.changed.notify_all();
}

fn run(
    weak: gst::glib::WeakRef<gst::Element>,
    mut settings: Settings,
    key_slot: Arc<Mutex<Option<ModelKey>>>,
    shared: Arc<Shared>,
    mut output: Box<dyn Output>,
) {
    let transcriber = match load(&weak, &settings, &key_slot) {
        Ok(t) => t,
        Err(_) => {
            // The error is posted; every later push returns it.
            let mut q = shared.queue.lock().unwrap();
            q.flow = Some(gst::FlowError::Error);
            q.items.clear();
            shared.changed.notify_all();
            return;
        }
    };
    *shared.abort.lock().unwrap() = Some(transcriber.abort_flag());
    if shared.queue.lock().unwrap().stopping {
        transcriber.abort_flag().store(true, Ordering::Relaxed);
    }
    let mut stream = Stream::new(transcriber);
    let mut overload = OverloadWatch::default();
    loop {
        let (item, work) = {
            let mut q = shared.queue.lock().unwrap();
            loop {
                if q.stopping {
                    return;
                }
                if let Some((item, duration)) = q.items.pop_front() {
                    q.queued_ns = q.queued_ns.saturating_sub(duration);
                    shared.changed.notify_all();
                    let work = Work {
                        generation: q.generation,
                        caught_up: q.queued_ns <= CAUGHT_UP_NS,
                        live: q.live,
                    };
                    break (item, work);
                }
                q = shared.changed.wait(q).unwrap();
            }
        };
        let Some(element) = weak.upgrade() else {
            return;
        };
        if let Some(update) = shared.update.lock().unwrap().take() {
            apply(&element, &mut stream, &mut settings, update);
        }
        let mut current = Current {
            output: output.as_mut(),
            shared: &shared,
            generation: work.generation,
            settings: &settings,
            element: &element,
            live: work.live,
        };
        let result = handle(&element, &mut stream, item, work.caught_up, &mut current);
        let lag_ns = shared.queue.lock().unwrap().queued_ns;
        overload.check(&element, &stream, lag_ns, &settings);
        // Flushing is not an error of the stream: the next item after the flush goes on.
        if let Err(e) = result.filter_flushing() {
            let mut q = shared.queue.lock().unwrap();
            if !q.flushing && !q.stopping {
                q.flow = Some(e);
            }
            shared.changed.notify_all();
        }
    }
}

/// Warns when the device cannot keep up with this live stream: it has stayed further behind
/// real time than its latency for `OVERLOAD_AFTER`, or is that much further behind than its
/// latency (work arrives faster than it is done). At most one warning per
/// `OVERLOAD_WARNING_INTERVAL`.
#[derive(Default)]
struct OverloadWatch {
    behind_since: Option<Instant>,
    warned_at: Option<Instant>,
}

const OVERLOAD_AFTER: std::time::Duration = std::time::Duration::from_secs(5);
const OVERLOAD_WARNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl OverloadWatch {
    fn check(&mut self, element: &gst::Element, stream: &Stream, lag_ns: u64, settings: &Settings) {
        let latency = settings.latency();
        if !stream.is_live() || lag_ns <= latency.nseconds() {
            self.behind_since = None;
            return;
        }
        let since = *self.behind_since.get_or_insert_with(Instant::now);
        // A stream found this far behind after one long stall (a decode starved of the CPU)
        // has been behind for at least its excess over the latency, seen between items or not.
        let excess = std::time::Duration::from_nanos(lag_ns - latency.nseconds());
        if since.elapsed().max(excess) < OVERLOAD_AFTER
            || self
                .warned_at
                .is_some_and(|t| t.elapsed() < OVERLOAD_WARNING_INTERVAL)
        {
            return;
        }
        self.warned_at = Some(Instant::now());
        let lag = gst::ClockTime::from_nseconds(lag_ns);
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
}

struct Work {
    generation: u64,
    /// Nothing much waits behind this item: time for a partial decode.
    caught_up: bool,
    live: bool,
}

/// Applies settings changed while running: decoding options to the transcriber (refused
/// ones are reported and the old ones stay), the rest to what the worker reads per result.
fn apply(element: &gst::Element, stream: &mut Stream, settings: &mut Settings, update: Settings) {
    if let Err(e) = stream.set_decode_options(&update.decode_options()) {
        gst::element_warning!(
            element,
            gst::LibraryError::Settings,
            ("Decoding settings not changed: {}", e)
        );
        return;
    }
    // Only what may change while playing: `latency` (READY only) stays what the stream's
    // deadlines and the LATENCY answer were made with.
    let latency_ms = settings.latency_ms;
    *settings = update;
    settings.latency_ms = latency_ms;
}

/// The element's output, passing on only results of work no flush has overtaken.
struct Current<'a> {
    output: &'a mut dyn Output,
    shared: &'a Shared,
    generation: u64,
    settings: &'a Settings,
    element: &'a gst::Element,
    live: bool,
}

impl Current<'_> {
    fn stale(&self) -> bool {
        self.shared.queue.lock().unwrap().generation != self.generation
    }

    fn transcript(&mut self, t: &mut TimedTranscript) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.stale() {
            return Err(gst::FlowError::Flushing);
        }
        t.lag = gst::ClockTime::from_nseconds(self.shared.queue.lock().unwrap().queued_ns);
        if self.live && t.transcript.is_final {
            self.observe_delay(t);
        }
        self.output.transcript(t, self.settings)
    }

    /// Live input: how long after its utterance's end (in running time) a final comes.
    /// Updates `max-observed-delay` and warns past latency + lateness.
    fn observe_delay(&self, t: &TimedTranscript) {
        let (Some(now), Some(start)) = (self.element.current_running_time(), t.running_time) else {
            return;
        };
        let delay = now.saturating_sub(start + t.duration);
        let delay_ms = delay.mseconds().min(u32::MAX as u64) as u32;
        let previous = self
            .shared
            .max_delay_ms
            .fetch_max(delay_ms, Ordering::Relaxed);
        if delay_ms > previous {
            self.element.notify(super::settings::MAX_OBSERVED_DELAY);
        }
        let allowed = self.settings.latency_ms as u64 + self.settings.lateness_ms as u64;
        if delay.mseconds() > allowed {
            let details = gst::Structure::builder("whisperstt-late")
                .field("delay", delay)
                .field("latency", self.settings.latency())
                .field(
                    "lateness",
                    gst::ClockTime::from_mseconds(self.settings.lateness_ms as u64),
                )
                .field("utterance-id", t.transcript.utterance_id)
                .build();
            gst::element_warning!(
                self.element,
                gst::CoreError::Clock,
                (
                    "Final transcript {} ms after its utterance ended: over latency {} ms + lateness {} ms",
                    delay.mseconds(),
                    self.settings.latency_ms,
                    self.settings.lateness_ms
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

fn handle(
    element: &gst::Element,
    stream: &mut Stream,
    item: Item,
    caught_up: bool,
    current: &mut Current,
) -> Result<gst::FlowSuccess, gst::FlowError> {
    let shared = current.shared;
    let mut transcripts = match item {
        Item::Caps { caps, live } => {
            if let Err(e) = stream.set_caps(&caps, live) {
                gst::element_error!(element, gst::StreamError::Format, ("{}", e));
                return Err(gst::FlowError::NotNegotiated);
            }
            current.output.caps(&caps);
            Vec::new()
        }
        Item::Segment(segment) => {
            let finals = match stream.set_segment(&segment) {
                Err(TranscribeError::Input(e)) => {
                    gst::element_error!(element, gst::StreamError::Format, ("{}", e));
                    return Err(gst::FlowError::Error);
                }
                other => result(element, other)?,
            };
            // The old timeline's last text goes out before the new segment.
            for mut t in finals {
                current.transcript(&mut t)?;
            }
            current.output.segment(&segment);
            Vec::new()
        }
        Item::Buffer(buffer) => {
            #[cfg(feature = "fault-injection")]
            strike(element, stream);
            result(element, stream.push(&buffer, caught_up))?
        }
        // Passed on as the settled time moving, after the text the gap completes.
        Item::Gap { pts, duration } => result(element, stream.gap(pts, duration))?,
        Item::Drain(ticket) => {
            let out = result(element, stream.drain()).and_then(|mut finals| {
                finals
                    .iter_mut()
                    .try_for_each(|t| current.transcript(t).map(|_| ()))
            });
            // Answered whatever the outcome: an error is the stream's flow.
            shared.queue.lock().unwrap().drained = ticket;
            shared.changed.notify_all();
            return out.map(|_| gst::FlowSuccess::Ok);
        }
        Item::Reset => {
            stream.flush();
            shared.abort(false);
            Vec::new()
        }
        Item::Event(event) => {
            current.output.event(event);
            Vec::new()
        }
    };
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

/// Turns a transcription error into an element error; an abort (flush, stop) is not one.
fn result(
    element: &gst::Element,
    r: Result<Vec<TimedTranscript>, TranscribeError>,
) -> Result<Vec<TimedTranscript>, gst::FlowError> {
    match r {
        Ok(t) => Ok(t),
        Err(TranscribeError::Aborted) => Ok(Vec::new()),
        Err(e) => Err(super::stream_error(element, "Transcription failed", e)),
    }
}

const PROGRESS_CODE: &str = "whisperstt-model-load";

/// Gets the Silero voice detector from the shared cache, posting its model message.
fn acquire_silero(
    weak: &gst::glib::WeakRef<gst::Element>,
    settings: &Settings,
) -> Result<ModelHandle, ModelError> {
    let path = locate::resolve(&settings.vad_model)?;
    let key = ModelKey::silero_vad(&path)?;
    let (handle, event) = cache::global().acquire_reporting(&key, settings.idle_timeout());
    if let Some(e) = weak.upgrade() {
        post_model_event(&e, &event);
    }
    handle
}

/// Resolves (importing if needed) and acquires the model, then creates the stream's whisper
/// state. Posts the model message, progress messages, and on failure an element error.
fn load(
    weak: &gst::glib::WeakRef<gst::Element>,
    settings: &Settings,
    key_slot: &Mutex<Option<ModelKey>>,
) -> Result<Transcriber, String> {
    let progress = |kind, text: String| {
        if let Some(e) = weak.upgrade() {
            let msg = gst::message::Progress::builder(kind, PROGRESS_CODE, &text)
                .src(&e)
                .build();
            let _ = e.post_message(msg);
        }
    };
    progress(
        gst::ProgressType::Start,
        format!("Loading Whisper model '{}'", settings.model),
    );
    let started = Instant::now();
    let acquired = (|| -> Result<_, ModelError> {
        let path = locate::resolve(&settings.model)?;
        let key = ModelKey::new(&path, settings.device()?, settings.context_options())?;
        *key_slot.lock().unwrap() = Some(key.clone());
        Ok(cache::global().acquire_reporting(&key, settings.idle_timeout()))
    })();
    let result = match acquired {
        Ok((handle, event)) => {
            if let Some(e) = weak.upgrade() {
                post_model_event(&e, &event);
            }
            // With sharing off the model has a private key: watch for that one's release.
            if let Ok(handle) = &handle {
                *key_slot.lock().unwrap() = Some(handle.key().clone());
            }
            handle.map_err(|e| e.to_string()).and_then(|handle| {
                let mut transcriber = Transcriber::new(
                    handle,
                    &settings.decode_options(),
                    settings.stream_options(),
                )
                .map_err(|e| e.to_string())?;
                if let (Some(ignored), Some(e)) = (transcriber.ignored_options(), weak.upgrade()) {
                    gst::element_warning!(
                        e,
                        gst::LibraryError::Settings,
                        (
                            "Model '{}' is English-only: {} ignored, it transcribes English",
                            settings.model,
                            ignored
                        )
                    );
                }
                if settings.vad && !settings.vad_model.is_empty() {
                    let silero = acquire_silero(weak, settings).map_err(|e| e.to_string())?;
                    transcriber.use_silero(silero).map_err(|e| e.to_string())?;
                }
                Ok(transcriber)
            })
        }
        Err(e) => Err(e.to_string()),
    };
    match &result {
        Ok(_) => progress(
            gst::ProgressType::Complete,
            format!(
                "Whisper model '{}' ready in {:.0} ms",
                settings.model,
                started.elapsed().as_secs_f64() * 1e3
            ),
        ),
        Err(err) => {
            progress(gst::ProgressType::Error, err.clone());
            if let Some(e) = weak.upgrade() {
                gst::element_error!(
                    e,
                    gst::ResourceError::OpenRead,
                    ("Could not load a model: {}", err)
                );
            }
        }
    }
    result
}
