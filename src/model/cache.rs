//! The process-wide model cache. Every element (and any embedding application) asks it for a
//! model; a model is loaded once per key however many ask at once (single flight), shared while
//! anyone holds a handle, and released after an idle time-out once the last handle is gone.
//!
//! The key is the model file's identity (canonical path, size and modification time: a replaced
//! file is a new model), the device, and every whisper.cpp context parameter fixed at load.

use super::{ggml, locate, ModelError};
use crate::vad::silero::SileroModel;
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};
use whisper_rs::{WhisperContext, WhisperContextParameters, WhisperState};

/// Where inference runs. `gpu:N` needs a build with a GPU feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    Gpu(u32),
}

/// True when this build has a GPU backend compiled in.
pub const GPU_BUILD: bool = cfg!(any(
    feature = "cuda",
    feature = "vulkan",
    feature = "hipblas",
    feature = "metal"
));

impl std::str::FromStr for Device {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        let bad = |what: &str| ModelError::Device {
            device: s.to_string(),
            what: what.to_string(),
        };
        match s.trim() {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu(0)),
            other => other
                .strip_prefix("gpu:")
                .and_then(|n| n.parse().ok())
                .map(Device::Gpu)
                .ok_or_else(|| bad("expected 'cpu' or 'gpu:N'")),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu(n) => write!(f, "gpu:{n}"),
        }
    }
}

/// whisper.cpp context parameters fixed when a model is loaded. Two requests that differ in
/// any of them get different models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ContextOptions {
    pub flash_attn: bool,
}

/// What a model file is for: both kinds live in the one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ModelKind {
    #[default]
    Whisper,
    /// A ggml Silero voice detector.
    SileroVad,
}

/// What identifies one loaded model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelKey {
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
    pub device: Device,
    pub options: ContextOptions,
    pub kind: ModelKind,
    /// 0 for the shared copy; otherwise a private copy (sharing turned off, for comparison).
    pub instance: u64,
}

impl ModelKey {
    /// The key for a Whisper ggml file as it is on disk now.
    pub fn new(path: &Path, device: Device, options: ContextOptions) -> Result<Self, ModelError> {
        let canonical = path.canonicalize().map_err(|e| ModelError::io(path, &e))?;
        let meta = std::fs::metadata(&canonical).map_err(|e| ModelError::io(path, &e))?;
        Ok(ModelKey {
            path: canonical,
            size: meta.len(),
            modified: meta.modified().map_err(|e| ModelError::io(path, &e))?,
            device,
            options,
            kind: ModelKind::Whisper,
            instance: 0,
        })
    }

    /// The key for a ggml Silero VAD file (it runs on the CPU: it is tiny).
    pub fn silero_vad(path: &Path) -> Result<Self, ModelError> {
        Ok(ModelKey {
            kind: ModelKind::SileroVad,
            ..ModelKey::new(path, Device::Cpu, ContextOptions::default())?
        })
    }
}

/// How long an unused model stays loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleTimeout {
    Never,
    /// `After(Duration::ZERO)` releases the model as soon as its last handle goes.
    After(Duration),
}

/// `off` (or 0, false) gives every acquisition its own copy of the model.
pub const SHARING_ENV: &str = "WHISPERSTT_MODEL_SHARING";
pub const IDLE_TIMEOUT_ENV: &str = "WHISPERSTT_MODEL_IDLE_TIMEOUT";
/// Long enough that a client reconnecting does not pay a reload, short enough that a server
/// gives memory back soon after a model falls out of use.
pub const DEFAULT_IDLE_TIMEOUT: IdleTimeout = IdleTimeout::After(Duration::from_secs(30));

impl IdleTimeout {
    /// `never`, or a number of seconds (0 = immediately).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "never" | "-1" => Some(IdleTimeout::Never),
            n => n
                .parse::<f64>()
                .ok()
                .filter(|v| *v >= 0.0)
                // Longer than a Duration holds (1e20 s): never, not a panic.
                .map(|v| {
                    Duration::try_from_secs_f64(v).map_or(IdleTimeout::Never, IdleTimeout::After)
                }),
        }
    }
}

/// A model loaded in whisper.cpp, shared by all handles with its key.
pub struct LoadedModel {
    key: ModelKey,
    engine: Engine,
    load_time: Duration,
}

enum Engine {
    Whisper {
        context: WhisperContext,
        info: ggml::ModelInfo,
        states: StatePool,
    },
    SileroVad(SileroModel),
}

impl LoadedModel {
    fn load(key: &ModelKey) -> Result<Self, ModelError> {
        if let Device::Gpu(_) = key.device {
            if !GPU_BUILD {
                return Err(ModelError::Device {
                    device: key.device.to_string(),
                    what: "this build of whisperstt has no GPU backend (build with a GPU feature)"
                        .into(),
                });
            }
        }
        let start = Instant::now();
        let changed = || ModelError::invalid(&key.path, "file changed while being loaded");
        // whisper.cpp may crash on a damaged file: check the whole structure first.
        let engine = match key.kind {
            ModelKind::Whisper => {
                let info = ggml::inspect(&key.path)?;
                if info.file_size != key.size {
                    return Err(changed());
                }
                crate::logging::log_engine_build();
                let mut params = WhisperContextParameters::default();
                params.flash_attn(key.options.flash_attn);
                match key.device {
                    Device::Cpu => params.use_gpu(false),
                    Device::Gpu(n) => params.use_gpu(true).gpu_device(n as i32),
                };
                let context = WhisperContext::new_with_params(&key.path, params).map_err(|_| {
                    ModelError::Load {
                        path: key.path.clone(),
                    }
                })?;
                Engine::Whisper {
                    context,
                    info,
                    states: StatePool::default(),
                }
            }
            ModelKind::SileroVad => {
                let model = SileroModel::load(&key.path)?;
                if model.info().file_size != key.size {
                    return Err(changed());
                }
                Engine::SileroVad(model)
            }
        };
        Ok(LoadedModel {
            key: key.clone(),
            engine,
            load_time: start.elapsed(),
        })
    }

    pub fn key(&self) -> &ModelKey {
        &self.key
    }

    /// The whisper.cpp context of a Whisper model.
    ///
    /// # Panics
    /// On a voice detector (a `ModelKind::SileroVad` key): asking it for text is a bug.
    pub fn context(&self) -> &WhisperContext {
        self.whisper().0
    }

    fn whisper(&self) -> (&WhisperContext, &StatePool) {
        match &self.engine {
            Engine::Whisper {
                context, states, ..
            } => (context, states),
            Engine::SileroVad(_) => panic!(
                "{} is a voice detector, not a Whisper model",
                self.key.path.display()
            ),
        }
    }

    /// Lends a whisper.cpp state (the buffers of one decode, ~140 MB with tiny.en) from the
    /// model's pool, creating one when every pooled state is lent. A stream borrows one per
    /// decode, so memory grows with the decodes running at once (bounded by the thread
    /// budget), not with the streams.
    ///
    /// # Panics
    /// On a voice detector, like `context`.
    pub fn lend_state(&self) -> Result<StateLoan<'_>, whisper_rs::WhisperError> {
        let (context, states) = self.whisper();
        let pooled = states.idle.lock().unwrap().pop();
        let state = match pooled {
            Some(state) => state,
            None => states.create(context)?,
        };
        Ok(StateLoan {
            state: Some(state),
            pool: states,
        })
    }

    /// Makes the model's first state if it has none yet, so a model whisper.cpp cannot run on
    /// fails before any audio. Streams starting together make one between them (each making
    /// its own would leave a state per stream in the pool, ~100 MB each with tiny.en).
    ///
    /// # Panics
    /// On a voice detector, like `context`.
    pub fn prepare_state(&self) -> Result<(), whisper_rs::WhisperError> {
        let (context, states) = self.whisper();
        let mut idle = states.idle.lock().unwrap();
        if states.created.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            idle.push(states.create(context)?);
        }
        Ok(())
    }

    /// Whisper states this model has created: its most concurrent decodes so far.
    pub fn states_created(&self) -> usize {
        match &self.engine {
            Engine::Whisper { states, .. } => {
                states.created.load(std::sync::atomic::Ordering::Relaxed)
            }
            Engine::SileroVad(_) => 0,
        }
    }

    /// What the checks learnt about a Whisper model; `None` for a voice detector.
    pub fn info(&self) -> Option<&ggml::ModelInfo> {
        match &self.engine {
            Engine::Whisper { info, .. } => Some(info),
            Engine::SileroVad(_) => None,
        }
    }

    /// The voice detector of a `ModelKind::SileroVad` model.
    pub fn silero(&self) -> Option<&SileroModel> {
        match &self.engine {
            Engine::SileroVad(model) => Some(model),
            Engine::Whisper { .. } => None,
        }
    }

    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The size of the weights (the ggml file).
    pub fn bytes(&self) -> u64 {
        self.key.size
    }
}

/// A model's idle whisper states.
#[derive(Default)]
struct StatePool {
    idle: Mutex<Vec<WhisperState>>,
    created: std::sync::atomic::AtomicUsize,
}

impl StatePool {
    /// A new state for this pool's model, counted.
    fn create(&self, context: &WhisperContext) -> Result<WhisperState, whisper_rs::WhisperError> {
        let state = context.create_state()?;
        self.created
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(state)
    }
}

/// A whisper state lent for one decode; back to the pool when dropped.
pub struct StateLoan<'a> {
    state: Option<WhisperState>,
    pool: &'a StatePool,
}

impl std::ops::Deref for StateLoan<'_> {
    type Target = WhisperState;

    fn deref(&self) -> &WhisperState {
        self.state.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for StateLoan<'_> {
    fn deref_mut(&mut self) -> &mut WhisperState {
        self.state.as_mut().unwrap()
    }
}

impl Drop for StateLoan<'_> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            self.pool.idle.lock().unwrap().push(state);
        }
    }
}

impl fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModel")
            .field("key", &self.key)
            .finish()
    }
}

/// How a handle was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquisition {
    /// This request loaded the model.
    Loaded,
    /// Another request was loading it; this one waited for that load.
    Joined,
    /// The model was already loaded.
    Reused,
}

/// Keeps a model loaded. Dropping the last handle starts the model's idle time-out.
pub struct ModelHandle {
    model: Arc<LoadedModel>,
    cache: Arc<Inner>,
    idle_timeout: Option<IdleTimeout>,
    acquisition: Acquisition,
}

impl ModelHandle {
    pub fn acquisition(&self) -> Acquisition {
        self.acquisition
    }

    pub fn model(&self) -> &Arc<LoadedModel> {
        &self.model
    }
}

impl std::ops::Deref for ModelHandle {
    type Target = LoadedModel;

    fn deref(&self) -> &LoadedModel {
        &self.model
    }
}

impl Drop for ModelHandle {
    fn drop(&mut self) {
        self.cache.release(&self.model.key, self.idle_timeout);
    }
}

impl fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelHandle")
            .field("key", &self.model.key)
            .field("acquisition", &self.acquisition)
            .finish()
    }
}

/// What happened to a model, as told to subscribers (and posted by elements as
/// `whisperstt-model` messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelAction {
    Loading,
    Loaded,
    /// Waited for a load another request had started.
    Joined,
    Reused,
    Released,
    Failed,
}

impl ModelAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelAction::Loading => "loading",
            ModelAction::Loaded => "loaded",
            ModelAction::Joined => "joined",
            ModelAction::Reused => "reused",
            ModelAction::Released => "released",
            ModelAction::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelEvent {
    pub action: ModelAction,
    pub key: ModelKey,
    pub load_time: Option<Duration>,
    pub bytes: u64,
    pub live_handles: usize,
    /// Loads of this key so far in this process.
    pub loads: u64,
    pub error: Option<ModelError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    Loading,
    Live,
    Idle,
}

#[derive(Debug, Clone)]
pub struct ModelStats {
    pub key: ModelKey,
    pub state: EntryState,
    pub bytes: u64,
    pub live_handles: usize,
    pub loads: u64,
}

#[derive(Debug, Clone, Default)]
pub struct CacheStats {
    /// Successful loads in this process, all keys.
    pub loads: u64,
    pub failed_loads: u64,
    pub releases: u64,
    pub models: Vec<ModelStats>,
}

impl CacheStats {
    pub fn model(&self, key: &ModelKey) -> Option<&ModelStats> {
        self.models.iter().find(|m| &m.key == key)
    }

    pub fn live_handles(&self) -> usize {
        self.models.iter().map(|m| m.live_handles).sum()
    }
}

type LoadResult = Result<Arc<LoadedModel>, ModelError>;

/// One load in flight: its waiters block here until the loader stores the result.
#[derive(Default)]
struct Pending {
    result: Mutex<Option<LoadResult>>,
    done: Condvar,
}

impl Pending {
    fn complete(&self, result: LoadResult) {
        *self.result.lock().unwrap() = Some(result);
        self.done.notify_all();
    }

    fn wait(&self) -> LoadResult {
        let guard = self.result.lock().unwrap();
        let guard = self.done.wait_while(guard, |r| r.is_none()).unwrap();
        guard.clone().unwrap()
    }
}

enum Entry {
    Loading {
        pending: Arc<Pending>,
        waiters: usize,
    },
    Ready {
        model: Arc<LoadedModel>,
        handles: usize,
        /// When an idle model is released; `None` while in use or kept forever.
        deadline: Option<Instant>,
    },
}

#[derive(Default)]
struct Table {
    entries: HashMap<ModelKey, Entry>,
    loads_by_key: HashMap<ModelKey, u64>,
    loads: u64,
    failed_loads: u64,
    releases: u64,
    reaper_started: bool,
}

impl Table {
    fn loads_of(&self, key: &ModelKey) -> u64 {
        self.loads_by_key.get(key).copied().unwrap_or(0)
    }

    /// Removes the idle models whose time is up.
    fn take_expired(&mut self, now: Instant) -> Vec<Arc<LoadedModel>> {
        let expired: Vec<ModelKey> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(e, Entry::Ready { handles: 0, deadline: Some(d), .. } if *d <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|k| match self.entries.remove(&k) {
                Some(Entry::Ready { model, .. }) => Some(model),
                _ => None,
            })
            .collect()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e {
                Entry::Ready { deadline, .. } => *deadline,
                Entry::Loading { .. } => None,
            })
            .min()
    }
}

type Listener = Arc<dyn Fn(&ModelEvent) + Send + Sync>;

struct Inner {
    table: Mutex<Table>,
    reaper_wake: Condvar,
    default_idle: Mutex<IdleTimeout>,
    listeners: Mutex<Vec<(u64, Listener)>>,
    next_listener: std::sync::atomic::AtomicU64,
    sharing: std::sync::atomic::AtomicBool,
}

impl Inner {
    fn emit(&self, event: ModelEvent) {
        let listeners: Vec<Listener> = self
            .listeners
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        for l in listeners {
            l(&event);
        }
    }

    fn event(
        &self,
        t: &Table,
        action: ModelAction,
        model: &LoadedModel,
        handles: usize,
    ) -> ModelEvent {
        ModelEvent {
            action,
            key: model.key.clone(),
            load_time: Some(model.load_time),
            bytes: model.bytes(),
            live_handles: handles,
            loads: t.loads_of(&model.key),
            error: None,
        }
    }

    fn released_event(&self, model: &LoadedModel) -> ModelEvent {
        let t = self.table.lock().unwrap();
        let mut ev = self.event(&t, ModelAction::Released, model, 0);
        ev.load_time = None;
        ev
    }

    fn release(self: &Arc<Self>, key: &ModelKey, timeout: Option<IdleTimeout>) {
        let timeout = timeout.unwrap_or_else(|| *self.default_idle.lock().unwrap());
        let mut t = self.table.lock().unwrap();
        let Some(Entry::Ready {
            handles, deadline, ..
        }) = t.entries.get_mut(key)
        else {
            return;
        };
        *handles -= 1;
        if *handles > 0 {
            return;
        }
        match timeout {
            IdleTimeout::Never => *deadline = None,
            IdleTimeout::After(d) if d.is_zero() => {
                let Some(Entry::Ready { model, .. }) = t.entries.remove(key) else {
                    unreachable!()
                };
                t.releases += 1;
                drop(t);
                let ev = self.released_event(&model);
                // Free whisper.cpp's buffers before telling anyone the model is gone.
                drop(model);
                self.emit(ev);
            }
            IdleTimeout::After(d) => {
                // Past what an Instant holds (a time-out of centuries): the same as never.
                *deadline = Instant::now().checked_add(d);
                if !t.reaper_started {
                    let weak = Arc::downgrade(self);
                    // Without a reaper (no thread to be had) idle models stay loaded.
                    t.reaper_started = std::thread::Builder::new()
                        .name("whisperstt-reaper".into())
                        .spawn(move || reap(weak))
                        .is_ok();
                }
                self.reaper_wake.notify_all();
            }
        }
    }
}

/// Releases idle models when their time-out passes. Holds the cache only weakly between
/// rounds, so a dropped (non-global) cache lets the thread end.
fn reap(cache: Weak<Inner>) {
    loop {
        let Some(inner) = cache.upgrade() else {
            return;
        };
        let mut t = inner.table.lock().unwrap();
        let expired = t.take_expired(Instant::now());
        t.releases += expired.len() as u64;
        if expired.is_empty() {
            let wait = t
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
            drop(inner.reaper_wake.wait_timeout(t, wait).unwrap());
            continue;
        }
        drop(t);
        for model in expired {
            let ev = inner.released_event(&model);
            drop(model);
            inner.emit(ev);
        }
    }
}

/// Unsubscribes on drop.
pub struct Subscription {
    cache: Weak<Inner>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.cache.upgrade() {
            inner
                .listeners
                .lock()
                .unwrap()
                .retain(|(id, _)| *id != self.id);
        }
    }
}

#[derive(Clone)]
pub struct ModelCache {
    inner: Arc<Inner>,
}

impl Default for ModelCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelCache {
    /// A cache of its own; elements use [`global`].
    pub fn new() -> Self {
        let default_idle = std::env::var(IDLE_TIMEOUT_ENV)
            .ok()
            .and_then(|s| IdleTimeout::parse(&s))
            .unwrap_or(DEFAULT_IDLE_TIMEOUT);
        ModelCache {
            inner: Arc::new(Inner {
                table: Mutex::default(),
                reaper_wake: Condvar::new(),
                default_idle: Mutex::new(default_idle),
                listeners: Mutex::default(),
                next_listener: Default::default(),
                sharing: std::sync::atomic::AtomicBool::new(
                    std::env::var(SHARING_ENV)
                        .map_or(true, |v| !matches!(v.as_str(), "0" | "off" | "false")),
                ),
            }),
        }
    }

    /// Turns sharing off (each acquisition loads a private copy, as one model per pipeline
    /// would) or back on: for measuring what sharing saves. Default: on, unless
    /// `WHISPERSTT_MODEL_SHARING=off`.
    pub fn set_sharing(&self, on: bool) {
        self.inner
            .sharing
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The idle time-out used when a handle does not name its own.
    pub fn default_idle_timeout(&self) -> IdleTimeout {
        *self.inner.default_idle.lock().unwrap()
    }

    pub fn set_default_idle_timeout(&self, timeout: IdleTimeout) {
        *self.inner.default_idle.lock().unwrap() = timeout;
    }

    /// A handle on the model for `key`, loading it if no one has. Blocks while it loads; many
    /// callers asking at once share one load. A failed load is returned to every waiter and
    /// not remembered: the next request tries again. `idle_timeout` (else the cache default)
    /// applies if this handle turns out to be the last one dropped.
    pub fn acquire(
        &self,
        key: &ModelKey,
        idle_timeout: Option<IdleTimeout>,
    ) -> Result<ModelHandle, ModelError> {
        self.acquire_reporting(key, idle_timeout).0
    }

    /// [`acquire`](Self::acquire), also returning the event this acquisition was reported as
    /// (loaded, joined, reused or failed), taken under the cache's lock, so a caller can pass
    /// it on (the elements post it on their bus).
    pub fn acquire_reporting(
        &self,
        key: &ModelKey,
        idle_timeout: Option<IdleTimeout>,
    ) -> (Result<ModelHandle, ModelError>, ModelEvent) {
        let private;
        let key = if self
            .inner
            .sharing
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            key
        } else {
            static NEXT_INSTANCE: std::sync::atomic::AtomicU64 =
                std::sync::atomic::AtomicU64::new(1);
            private = ModelKey {
                instance: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                ..key.clone()
            };
            &private
        };
        let handle = |model: Arc<LoadedModel>, acquisition| ModelHandle {
            model,
            cache: self.inner.clone(),
            idle_timeout,
            acquisition,
        };
        let mut t = self.inner.table.lock().unwrap();
        let pending = match t.entries.get_mut(key) {
            Some(Entry::Ready {
                model,
                handles,
                deadline,
            }) => {
                *handles += 1;
                *deadline = None;
                let (model, handles) = (model.clone(), *handles);
                let ev = self.inner.event(&t, ModelAction::Reused, &model, handles);
                drop(t);
                self.inner.emit(ev.clone());
                return (Ok(handle(model, Acquisition::Reused)), ev);
            }
            Some(Entry::Loading { pending, waiters }) => {
                *waiters += 1;
                let pending = pending.clone();
                drop(t);
                let result = pending.wait();
                let t = self.inner.table.lock().unwrap();
                let model = match result {
                    Ok(model) => model,
                    // The loader reported the failure to subscribers already.
                    Err(e) => return (Err(e.clone()), failed_event(&t, key, e)),
                };
                let handles = match t.entries.get(key) {
                    Some(Entry::Ready { handles, .. }) => *handles,
                    _ => 0,
                };
                let ev = self.inner.event(&t, ModelAction::Joined, &model, handles);
                drop(t);
                self.inner.emit(ev.clone());
                return (Ok(handle(model, Acquisition::Joined)), ev);
            }
            None => {
                let pending = Arc::new(Pending::default());
                t.entries.insert(
                    key.clone(),
                    Entry::Loading {
                        pending: pending.clone(),
                        waiters: 0,
                    },
                );
                pending
            }
        };
        let loads = t.loads_of(key);
        drop(t);
        self.inner.emit(ModelEvent {
            action: ModelAction::Loading,
            key: key.clone(),
            load_time: None,
            bytes: key.size,
            live_handles: 0,
            loads,
            error: None,
        });

        // A panic while loading must still wake the waiters, or they would wait forever.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| LoadedModel::load(key)))
            .unwrap_or_else(|_| {
                Err(ModelError::Load {
                    path: key.path.clone(),
                })
            })
            .map(Arc::new);

        let mut t = self.inner.table.lock().unwrap();
        let waiters = match t.entries.remove(key) {
            Some(Entry::Loading { waiters, .. }) => waiters,
            _ => 0,
        };
        let event = match &result {
            Ok(model) => {
                t.loads += 1;
                *t.loads_by_key.entry(key.clone()).or_default() += 1;
                t.entries.insert(
                    key.clone(),
                    Entry::Ready {
                        model: model.clone(),
                        handles: 1 + waiters,
                        deadline: None,
                    },
                );
                self.inner
                    .event(&t, ModelAction::Loaded, model, 1 + waiters)
            }
            Err(e) => {
                t.failed_loads += 1;
                failed_event(&t, key, e.clone())
            }
        };
        drop(t);
        pending.complete(result.clone());
        self.inner.emit(event.clone());
        (result.map(|m| handle(m, Acquisition::Loaded)), event)
    }

    /// Resolves a model name or path (see [`locate::resolve`]) and acquires it: what an
    /// application calls at start-up to have a model ready before the first pipeline. Keep the
    /// handle to keep the model loaded.
    pub fn preload(
        &self,
        model: &str,
        device: Device,
        options: ContextOptions,
    ) -> Result<ModelHandle, ModelError> {
        let path = locate::resolve(model)?;
        self.acquire(&ModelKey::new(&path, device, options)?, None)
    }

    /// Releases every idle model now; returns how many.
    pub fn release_idle(&self) -> usize {
        let mut t = self.inner.table.lock().unwrap();
        for e in t.entries.values_mut() {
            if let Entry::Ready {
                handles: 0,
                deadline,
                ..
            } = e
            {
                *deadline = Some(Instant::now());
            }
        }
        let expired = t.take_expired(Instant::now());
        t.releases += expired.len() as u64;
        drop(t);
        let n = expired.len();
        for model in expired {
            let ev = self.inner.released_event(&model);
            drop(model);
            self.inner.emit(ev);
        }
        n
    }

    pub fn stats(&self) -> CacheStats {
        let t = self.inner.table.lock().unwrap();
        let mut models: Vec<ModelStats> = t
            .entries
            .iter()
            .map(|(key, e)| match e {
                Entry::Loading { .. } => ModelStats {
                    key: key.clone(),
                    state: EntryState::Loading,
                    bytes: key.size,
                    live_handles: 0,
                    loads: t.loads_of(key),
                },
                Entry::Ready { model, handles, .. } => ModelStats {
                    key: key.clone(),
                    state: if *handles > 0 {
                        EntryState::Live
                    } else {
                        EntryState::Idle
                    },
                    bytes: model.bytes(),
                    live_handles: *handles,
                    loads: t.loads_of(key),
                },
            })
            .collect();
        models.sort_by(|a, b| a.key.path.cmp(&b.key.path));
        CacheStats {
            loads: t.loads,
            failed_loads: t.failed_loads,
            releases: t.releases,
            models,
        }
    }

    /// Loads of `key` in this process so far (0 if never loaded).
    pub fn loads_of(&self, key: &ModelKey) -> u64 {
        self.inner.table.lock().unwrap().loads_of(key)
    }

    /// Calls `listener` for every model event until the subscription is dropped. It runs on
    /// the thread that caused the event, outside the cache's lock.
    pub fn subscribe(
        &self,
        listener: impl Fn(&ModelEvent) + Send + Sync + 'static,
    ) -> Subscription {
        let id = self
            .inner
            .next_listener
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner
            .listeners
            .lock()
            .unwrap()
            .push((id, Arc::new(listener)));
        Subscription {
            cache: Arc::downgrade(&self.inner),
            id,
        }
    }
}

fn failed_event(t: &Table, key: &ModelKey, error: ModelError) -> ModelEvent {
    ModelEvent {
        action: ModelAction::Failed,
        key: key.clone(),
        load_time: None,
        bytes: key.size,
        live_handles: 0,
        loads: t.loads_of(key),
        error: Some(error),
    }
}

/// The cache every element of the plugin shares.
pub fn global() -> &'static ModelCache {
    static GLOBAL: Lazy<ModelCache> = Lazy::new(ModelCache::new);
    &GLOBAL
}
