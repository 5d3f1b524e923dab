//! Gets an element its model and whisper state on a worker thread, so NULL -> READY returns
//! at once. The streaming thread waits for the result when the first audio arrives; a flush
//! or a stop interrupts that wait.

use super::{post_model_event, ReleaseWatch, Settings};
use crate::model::cache::{self, Acquisition, ModelAction, ModelEvent, ModelKey};
use crate::model::{locate, ModelError};
use crate::transcriber::Transcriber;
use gst::prelude::*;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

enum Slot {
    Loading,
    Ready(Box<Transcriber>),
    /// Handed to the streaming side.
    Taken,
    Failed(String),
}

struct Shared {
    slot: Mutex<(Slot, bool)>,
    changed: Condvar,
}

/// Why the streaming thread got no transcriber.
#[derive(Debug)]
pub enum NotReady {
    /// Flushing or stopping: return FLUSHING.
    Interrupted,
    /// The load failed; the error was already posted.
    Failed,
}

pub struct Session {
    shared: Arc<Shared>,
}

const PROGRESS_CODE: &str = "whisperstt-model-load";

impl Session {
    /// Starts resolving, importing if needed, and acquiring the model, then creating the
    /// stream's whisper state, all on a worker thread.
    pub fn start(element: &gst::Element, settings: &Settings, releases: &ReleaseWatch) -> Session {
        let shared = Arc::new(Shared {
            slot: Mutex::new((Slot::Loading, false)),
            changed: Condvar::new(),
        });
        let weak = element.downgrade();
        let settings = settings.clone();
        let thread_shared = shared.clone();
        // The key is only known on the worker; it records it there for release messages.
        let key_slot = releases.key_slot();
        let spawned = std::thread::Builder::new()
            .name(format!("whisperstt-load-{}", element.name()))
            .spawn(move || {
                let outcome = load(&weak, &settings, &key_slot);
                let mut slot = thread_shared.slot.lock().unwrap();
                slot.0 = match outcome {
                    Ok(t) => Slot::Ready(Box::new(t)),
                    Err(e) => Slot::Failed(e),
                };
                thread_shared.changed.notify_all();
            });
        if let Err(e) = spawned {
            shared.slot.lock().unwrap().0 =
                Slot::Failed(format!("cannot start the loader thread: {e}"));
        }
        Session { shared }
    }

    /// Waits for the transcriber and hands it over (once).
    pub fn take_transcriber(&self) -> Result<Transcriber, NotReady> {
        let mut guard = self.shared.slot.lock().unwrap();
        loop {
            if guard.1 {
                return Err(NotReady::Interrupted);
            }
            match std::mem::replace(&mut guard.0, Slot::Taken) {
                Slot::Ready(t) => return Ok(*t),
                Slot::Failed(e) => {
                    guard.0 = Slot::Failed(e);
                    return Err(NotReady::Failed);
                }
                Slot::Loading => {
                    guard.0 = Slot::Loading;
                    guard = self.shared.changed.wait(guard).unwrap();
                }
                Slot::Taken => return Err(NotReady::Failed),
            }
        }
    }

    /// While set, `take_transcriber` returns `Interrupted` at once.
    pub fn set_flushing(&self, flushing: bool) {
        self.shared.slot.lock().unwrap().1 = flushing;
        self.shared.changed.notify_all();
    }
}

fn load(
    weak: &gst::glib::WeakRef<gst::Element>,
    settings: &Settings,
    key_slot: &Mutex<Option<ModelKey>>,
) -> Result<Transcriber, String> {
    let post = |msg: gst::Message| {
        if let Some(e) = weak.upgrade() {
            let _ = e.post_message(msg);
        }
    };
    let progress = |kind, text: String| {
        if let Some(e) = weak.upgrade() {
            post(
                gst::message::Progress::builder(kind, PROGRESS_CODE, &text)
                    .src(&e)
                    .build(),
            );
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
        let handle = cache::global().acquire(&key, settings.idle_timeout());
        Ok((key, handle))
    })();
    let result = match acquired {
        Ok((key, Ok(handle))) => {
            if let Some(e) = weak.upgrade() {
                let action = match handle.acquisition() {
                    Acquisition::Loaded => ModelAction::Loaded,
                    Acquisition::Joined => ModelAction::Joined,
                    Acquisition::Reused => ModelAction::Reused,
                };
                let stats = cache::global().stats();
                post_model_event(
                    &e,
                    &ModelEvent {
                        action,
                        key: key.clone(),
                        load_time: Some(handle.load_time()),
                        bytes: handle.bytes(),
                        live_handles: stats.model(&key).map_or(0, |m| m.live_handles),
                        loads: cache::global().loads_of(&key),
                        error: None,
                    },
                );
            }
            Transcriber::new(handle, &settings.decode_options()).map_err(|e| e.to_string())
        }
        Ok((key, Err(e))) => {
            if let Some(el) = weak.upgrade() {
                post_model_event(
                    &el,
                    &ModelEvent {
                        action: ModelAction::Failed,
                        loads: cache::global().loads_of(&key),
                        key,
                        load_time: None,
                        bytes: 0,
                        live_handles: 0,
                        error: Some(e.clone()),
                    },
                );
            }
            Err(e.to_string())
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
                    ("Could not load Whisper model: {}", err)
                );
            }
        }
    }
    result
}
