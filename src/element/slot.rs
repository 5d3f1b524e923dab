//! An element's worker through its state changes, and the property glue both elements share.

use super::model::ModelWatch;
use super::settings::{PropertyError, Settings};
use super::worker::{Item, Output, RunCounters, Worker};
use super::LOG_DOMAIN;
use gst::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// An element's worker, from NULL -> READY to READY -> NULL, the watch that reports its
/// models for as long as the element lives, and what its read-only properties report.
pub struct WorkerSlot {
    /// The element's debug category, which its worker logs in too.
    cat: gst::DebugCategory,
    worker: Mutex<Option<Arc<Worker>>>,
    /// A property read at start changed in READY, after the worker started with the old
    /// value: it starts again at READY -> PAUSED.
    restart: AtomicBool,
    models: Mutex<Option<Arc<ModelWatch>>>,
    counters: Arc<RunCounters>,
}

impl WorkerSlot {
    pub fn new(cat: gst::DebugCategory) -> Self {
        WorkerSlot {
            cat,
            worker: Mutex::default(),
            restart: AtomicBool::new(false),
            models: Mutex::default(),
            counters: Arc::default(),
        }
    }

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
        let models = self
            .models
            .lock()
            .unwrap()
            .get_or_insert_with(|| Arc::new(ModelWatch::new(element)))
            .clone();
        self.counters.reset();
        let worker = Worker::start(
            element,
            self.cat,
            &settings,
            models,
            self.counters.clone(),
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
        gst::debug!(self.cat, obj = element, "{transition:?}");
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

    pub fn enqueue(&self, item: Item) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.with(|w| w.enqueue(item))
            .unwrap_or(Err(gst::FlowError::Flushing))
    }
}

/// Property glue both elements share: stores the value (a value that cannot work is refused
/// with a warning naming it) and hands the new settings to a running worker, which applies
/// the decoding ones from its next decode.
pub fn set_property(
    element: &gst::Element,
    settings: &Mutex<Settings>,
    worker: &WorkerSlot,
    value: &gst::glib::Value,
    pspec: &gst::glib::ParamSpec,
) {
    let mut restart = false;
    if !pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING) {
        // A sink prerolling is still READY, on its way to PAUSED: running already.
        match element.current_state().max(element.pending_state()) {
            gst::State::Paused | gst::State::Playing => {
                refuse_property(element, pspec, &PropertyError::NotWhilePlaying);
                return;
            }
            gst::State::Ready => restart = true,
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
            gst::warning!(worker.cat, obj = element, "'{}' refused: {e}", pspec.name());
            refuse_property(element, pspec, &e);
            return;
        }
    };
    gst::debug!(
        worker.cat,
        obj = element,
        "'{}' set to {:?}",
        pspec.name(),
        value
    );
    // Read at start, and the worker started with the old value: it starts again.
    if restart {
        worker.restart.store(true, Ordering::Relaxed);
    }
    worker.with(|w| w.update(s));
}

/// Says a value that cannot work was refused (the old one stays).
fn refuse_property(element: &gst::Element, pspec: &gst::glib::ParamSpec, e: &PropertyError) {
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
    worker
        .counters
        .property(pspec.name())
        .unwrap_or_else(|| settings.lock().unwrap().get(pspec))
}
