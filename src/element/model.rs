//! The element side of the model cache: acquiring an element's models off the state-change
//! path, building its transcriber on them, and telling the application about it all
//! (`whisperstt-model` messages, progress messages, errors).

use super::settings::StartConfig;
use crate::model::cache::{self, CachedModel, ModelAction, ModelEvent, ModelHandle, Subscription};
use crate::model::{
    compute, locate, IdleTimeout, ModelError, ModelKey, ModelKind, SileroModel, WhisperModel,
};
use crate::scheduler::DecodeSlot;
use crate::transcriber::{TranscribeError, Transcriber};
use gst::prelude::*;
use once_cell::sync::Lazy;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The structure name of model cache messages.
pub const MODEL_MESSAGE: &str = "whisperstt-model";
const PROGRESS_CODE: &str = "whisperstt-model-load";

/// The plugin-global model cache's loads, shares, releases and failures, as the elements see
/// them (the same as their `whisperstt-model` messages).
static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "whisperstt-model",
        gst::DebugColorFlags::empty(),
        Some("whisperstt model cache: loads, shares and releases"),
    )
});

/// Why an element has no transcriber.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Transcriber(#[from] TranscribeError),
}

/// Logs a cache event and posts it as a `whisperstt-model` message from `element`.
pub fn post_model_event(element: &gst::Element, event: &ModelEvent) {
    gst::info!(
        CAT,
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
        s.set("load-time", super::clock_time(t));
    }
    if let Some(e) = &event.error {
        s.set("error", e.to_string());
    }
    let _ = element.post_message(gst::message::Element::builder(s).src(element).build());
}

/// An element's models in the cache: posts each acquisition, and forwards the release of the
/// last Whisper model it acquired for as long as the element lives (a release can come long
/// after the element stopped using it).
pub struct ModelWatch {
    last_whisper: Arc<Mutex<Option<ModelKey>>>,
    _subscription: Subscription,
}

impl ModelWatch {
    pub fn new(element: &gst::Element) -> Self {
        let last_whisper: Arc<Mutex<Option<ModelKey>>> = Arc::default();
        let (weak, watched) = (element.downgrade(), last_whisper.clone());
        let subscription = cache::global().subscribe(move |event| {
            if event.action != ModelAction::Released
                || watched.lock().unwrap().as_ref() != Some(&event.key)
            {
                return;
            }
            if let Some(element) = weak.upgrade() {
                post_model_event(&element, event);
            }
        });
        ModelWatch {
            last_whisper,
            _subscription: subscription,
        }
    }

    /// Posts what acquiring a model did; a Whisper model acquired is the one whose release
    /// is forwarded from now on.
    fn acquired(&self, element: &gst::Element, event: &ModelEvent) {
        if event.error.is_none() && event.key.kind == ModelKind::Whisper {
            *self.last_whisper.lock().unwrap() = Some(event.key.clone());
        }
        post_model_event(element, event);
    }

    /// Resolves `name` (importing a faster-whisper directory if needed) into `key_of`'s key
    /// and acquires it from the global cache.
    fn acquire<M: CachedModel>(
        &self,
        element: &gst::Element,
        name: &str,
        key_of: impl FnOnce(&std::path::Path) -> Result<ModelKey, ModelError>,
        idle_timeout: Option<IdleTimeout>,
    ) -> Result<ModelHandle<M>, ModelError> {
        let key = key_of(&locate::resolve(name)?)?;
        gst::debug!(CAT, obj = element, "acquiring {} as {:?}", name, key);
        let (handle, event) = cache::global().acquire_reporting::<M>(&key, idle_timeout);
        self.acquired(element, &event);
        handle
    }
}

/// Gets the element's models from the shared cache and builds its transcriber on them,
/// reporting progress; a failure is also posted as the element's error.
pub fn load(
    element: &gst::Element,
    config: &StartConfig,
    watch: &ModelWatch,
    slot: DecodeSlot,
) -> Result<Transcriber, LoadError> {
    let progress = |kind, text: &str| {
        let msg = gst::message::Progress::builder(kind, PROGRESS_CODE, text)
            .src(element)
            .build();
        let _ = element.post_message(msg);
    };
    let start = format!("Loading Whisper model '{}'", config.model);
    progress(gst::ProgressType::Start, &start);
    let started = Instant::now();
    let result = build_transcriber(element, config, watch, slot);
    match &result {
        Ok(_) => {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            let done = format!("Whisper model '{}' ready in {ms:.0} ms", config.model);
            progress(gst::ProgressType::Complete, &done);
        }
        Err(err) => {
            gst::error!(
                CAT,
                obj = element,
                "could not load '{}': {err}",
                config.model
            );
            progress(gst::ProgressType::Error, &err.to_string());
            gst::element_error!(
                element,
                gst::ResourceError::OpenRead,
                ("Could not load a model: {}", err)
            );
        }
    }
    result
}

fn build_transcriber(
    element: &gst::Element,
    config: &StartConfig,
    watch: &ModelWatch,
    slot: DecodeSlot,
) -> Result<Transcriber, LoadError> {
    let whisper_key = |path: &std::path::Path| {
        let file = compute::model_file(path, config.compute, config.device)?;
        ModelKey::new(&file, config.device, config.context)
    };
    let idle = config.idle_timeout;
    let model = watch.acquire::<WhisperModel>(element, &config.model, whisper_key, idle)?;
    let mut transcriber = Transcriber::new(model, &config.decode, config.stream.clone(), slot)?;
    if let Some(ignored) = transcriber.ignored_options() {
        gst::element_warning!(
            element,
            gst::LibraryError::Settings,
            (
                "Model '{}' is English-only: {} ignored, it transcribes English",
                config.model,
                ignored
            )
        );
    }
    if let Some(vad_model) = &config.vad_model {
        let silero =
            watch.acquire::<SileroModel>(element, vad_model, ModelKey::silero_vad, idle)?;
        transcriber.use_silero(silero);
    }
    Ok(transcriber)
}
