//! The process-wide model cache. Every element (and any embedding application) asks it for a
//! model; a model is loaded once per key however many ask at once (single flight), shared while
//! anyone holds a handle, and released after an idle time-out once the last handle is gone.
//! Whisper models and Silero voice detectors live side by side in it, each behind a handle of
//! its own type.

use super::compute::{self, ComputeType};
use super::key::{ContextOptions, Device, IdleTimeout, ModelKey, ModelKind};
use super::{locate, ModelError, SileroModel, WhisperModel, DEFAULT_IDLE_TIMEOUT, GPU_BUILD};
use once_cell::sync::Lazy;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// `off` (or 0, false) gives every acquisition its own copy of the model.
pub const SHARING_ENV: &str = "WHISPERSTT_MODEL_SHARING";
pub const IDLE_TIMEOUT_ENV: &str = "WHISPERSTT_MODEL_IDLE_TIMEOUT";

/// A kind of model the cache can hold.
pub trait CachedModel: Send + Sync + Sized + 'static {
    const KIND: ModelKind;
    /// Loads the file `key` names, checking it first (whisper.cpp may crash on a bad one) and
    /// that it is still the file the key describes.
    fn load(key: &ModelKey) -> Result<Self, ModelError>;
}

pub type WhisperHandle = ModelHandle<WhisperModel>;
pub type SileroHandle = ModelHandle<SileroModel>;

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

/// A model as the table holds it, whatever its kind.
#[derive(Clone)]
struct Loaded {
    model: Arc<dyn Any + Send + Sync>,
    load_time: Duration,
}

/// Keeps a model loaded. Dropping the last handle starts the model's idle time-out.
pub struct ModelHandle<M: CachedModel> {
    model: Arc<M>,
    key: ModelKey,
    load_time: Duration,
    cache: Arc<Inner>,
    idle_timeout: Option<IdleTimeout>,
    acquisition: Acquisition,
}

impl<M: CachedModel> ModelHandle<M> {
    pub fn key(&self) -> &ModelKey {
        &self.key
    }

    pub fn acquisition(&self) -> Acquisition {
        self.acquisition
    }

    /// The loaded model, the same `Arc` for every handle on one key.
    pub fn model(&self) -> &Arc<M> {
        &self.model
    }

    /// How long this model took to load (whoever loaded it).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The size of the weights (the ggml file).
    pub fn bytes(&self) -> u64 {
        self.key.size
    }
}

impl<M: CachedModel> std::ops::Deref for ModelHandle<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M: CachedModel> Drop for ModelHandle<M> {
    fn drop(&mut self) {
        self.cache.release(&self.key, self.idle_timeout);
    }
}

impl<M: CachedModel> fmt::Debug for ModelHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelHandle")
            .field("key", &self.key)
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

type LoadResult = Result<Loaded, ModelError>;

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
        loaded: Loaded,
        handles: usize,
        /// When an idle model is released; `None` while in use or kept forever.
        deadline: Option<Instant>,
    },
}

/// What an acquisition found in the table.
enum Found {
    /// Loaded: the handle is taken, and reported as this event.
    Ready(Loaded, ModelEvent),
    /// Another request is loading it.
    Loading(Arc<Pending>),
    /// Nobody is: this request loads it.
    Absent(Arc<Pending>),
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

    fn handles_of(&self, key: &ModelKey) -> usize {
        match self.entries.get(key) {
            Some(Entry::Ready { handles, .. }) => *handles,
            _ => 0,
        }
    }

    /// The event for `key` as the table stands now.
    fn event(
        &self,
        action: ModelAction,
        key: &ModelKey,
        load_time: Option<Duration>,
    ) -> ModelEvent {
        ModelEvent {
            action,
            key: key.clone(),
            load_time,
            bytes: key.size,
            live_handles: self.handles_of(key),
            loads: self.loads_of(key),
            error: None,
        }
    }

    /// A failed acquisition holds no handle, whatever else holds the key.
    fn failed_event(&self, key: &ModelKey, error: ModelError) -> ModelEvent {
        ModelEvent {
            error: Some(error),
            live_handles: 0,
            ..self.event(ModelAction::Failed, key, None)
        }
    }

    /// Takes a handle on `key`: the loaded model, the load to wait for, or a new load to run.
    fn find_or_start(&mut self, key: &ModelKey) -> Found {
        match self.entries.get_mut(key) {
            Some(Entry::Ready {
                loaded,
                handles,
                deadline,
            }) => {
                *handles += 1;
                *deadline = None;
                let loaded = loaded.clone();
                let event = self.event(ModelAction::Reused, key, Some(loaded.load_time));
                Found::Ready(loaded, event)
            }
            Some(Entry::Loading { pending, waiters }) => {
                *waiters += 1;
                Found::Loading(pending.clone())
            }
            None => {
                let pending = Arc::new(Pending::default());
                let entry = Entry::Loading {
                    pending: pending.clone(),
                    waiters: 0,
                };
                self.entries.insert(key.clone(), entry);
                Found::Absent(pending)
            }
        }
    }

    /// Records a load's outcome: a loaded model is handed to its loader and every waiter.
    fn finish_load(&mut self, key: &ModelKey, result: &LoadResult) -> ModelEvent {
        let waiters = match self.entries.remove(key) {
            Some(Entry::Loading { waiters, .. }) => waiters,
            _ => 0,
        };
        match result {
            Ok(loaded) => {
                self.loads += 1;
                *self.loads_by_key.entry(key.clone()).or_default() += 1;
                let entry = Entry::Ready {
                    loaded: loaded.clone(),
                    handles: 1 + waiters,
                    deadline: None,
                };
                self.entries.insert(key.clone(), entry);
                self.event(ModelAction::Loaded, key, Some(loaded.load_time))
            }
            Err(e) => {
                self.failed_loads += 1;
                self.failed_event(key, e.clone())
            }
        }
    }

    /// Removes the idle models whose time is up.
    fn take_expired(&mut self, now: Instant) -> Vec<(ModelKey, Loaded)> {
        let expired: Vec<ModelKey> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(e, Entry::Ready { handles: 0, deadline: Some(d), .. } if *d <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let models: Vec<(ModelKey, Loaded)> = expired
            .into_iter()
            .filter_map(|k| match self.entries.remove(&k) {
                Some(Entry::Ready { loaded, .. }) => Some((k, loaded)),
                _ => None,
            })
            .collect();
        self.releases += models.len() as u64;
        models
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

    fn stats(&self) -> CacheStats {
        let mut models: Vec<ModelStats> = self
            .entries
            .iter()
            .map(|(key, e)| ModelStats {
                key: key.clone(),
                state: match e {
                    Entry::Loading { .. } => EntryState::Loading,
                    Entry::Ready { handles: 0, .. } => EntryState::Idle,
                    Entry::Ready { .. } => EntryState::Live,
                },
                bytes: key.size,
                live_handles: self.handles_of(key),
                loads: self.loads_of(key),
            })
            .collect();
        models.sort_by(|a, b| a.key.path.cmp(&b.key.path));
        CacheStats {
            loads: self.loads,
            failed_loads: self.failed_loads,
            releases: self.releases,
            models,
        }
    }
}

type Listener = Arc<dyn Fn(&ModelEvent) + Send + Sync>;

struct Inner {
    table: Mutex<Table>,
    reaper_wake: Condvar,
    default_idle: Mutex<IdleTimeout>,
    listeners: Mutex<Vec<(u64, Listener)>>,
    next_listener: AtomicU64,
    sharing: AtomicBool,
}

impl Inner {
    fn emit(&self, event: &ModelEvent) {
        let listeners: Vec<Listener> = self
            .listeners
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        for l in listeners {
            l(event);
        }
    }

    /// Frees models taken out of the table, then tells subscribers.
    fn announce_released(&self, models: Vec<(ModelKey, Loaded)>) {
        for (key, loaded) in models {
            let event = self
                .table
                .lock()
                .unwrap()
                .event(ModelAction::Released, &key, None);
            // Free whisper.cpp's buffers before telling anyone the model is gone.
            drop(loaded);
            self.emit(&event);
        }
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
            IdleTimeout::After(d) => {
                // Past what an Instant holds (a time-out of centuries): the same as never.
                *deadline = Instant::now().checked_add(d);
                if d.is_zero() {
                    let expired = t.take_expired(Instant::now());
                    drop(t);
                    self.announce_released(expired);
                    return;
                }
                self.wake_reaper(&mut t);
            }
        }
    }

    /// Starts the reaper on the first idle time-out, and wakes it for a new deadline.
    fn wake_reaper(self: &Arc<Self>, t: &mut Table) {
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

/// Releases idle models when their time-out passes. Holds the cache only weakly between
/// rounds, so a dropped (non-global) cache lets the thread end.
fn reap(cache: Weak<Inner>) {
    loop {
        let Some(inner) = cache.upgrade() else {
            return;
        };
        let mut t = inner.table.lock().unwrap();
        let expired = t.take_expired(Instant::now());
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
        inner.announce_released(expired);
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

/// Loads the model `key` names, timed; a panic in the loader is a failed load, not a dead
/// cache: its waiters must still wake.
fn load_model<M: CachedModel>(key: &ModelKey) -> LoadResult {
    if let (Device::Gpu(_), false) = (key.device, GPU_BUILD) {
        return Err(ModelError::Device {
            device: key.device.to_string(),
            what: "this build of whisperstt has no GPU backend (build with a GPU feature)".into(),
        });
    }
    let start = Instant::now();
    let model =
        std::panic::catch_unwind(AssertUnwindSafe(|| M::load(key))).unwrap_or_else(|_| {
            Err(ModelError::Load {
                path: key.path.clone(),
            })
        })?;
    Ok(Loaded {
        model: Arc::new(model),
        load_time: start.elapsed(),
    })
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
        let sharing = std::env::var(SHARING_ENV)
            .map_or(true, |v| !matches!(v.as_str(), "0" | "off" | "false"));
        ModelCache {
            inner: Arc::new(Inner {
                table: Mutex::default(),
                reaper_wake: Condvar::new(),
                default_idle: Mutex::new(default_idle),
                listeners: Mutex::default(),
                next_listener: AtomicU64::new(0),
                sharing: AtomicBool::new(sharing),
            }),
        }
    }

    /// Turns sharing off (each acquisition loads a private copy, as one model per pipeline
    /// would) or back on: for measuring what sharing saves. Default: on, unless
    /// `WHISPERSTT_MODEL_SHARING=off`.
    pub fn set_sharing(&self, on: bool) {
        self.inner.sharing.store(on, Ordering::Relaxed);
    }

    /// The idle time-out used when a handle does not name its own.
    pub fn default_idle_timeout(&self) -> IdleTimeout {
        *self.inner.default_idle.lock().unwrap()
    }

    pub fn set_default_idle_timeout(&self, timeout: IdleTimeout) {
        *self.inner.default_idle.lock().unwrap() = timeout;
    }

    /// A handle on the Whisper model for `key`, loading it if no one has. Blocks while it
    /// loads; many callers asking at once share one load. A failed load is returned to every
    /// waiter and not remembered: the next request tries again. `idle_timeout` (else the
    /// cache default) applies if this handle turns out to be the last one dropped.
    pub fn acquire(
        &self,
        key: &ModelKey,
        idle_timeout: Option<IdleTimeout>,
    ) -> Result<WhisperHandle, ModelError> {
        self.acquire_reporting(key, idle_timeout).0
    }

    /// [`acquire`](Self::acquire) for a Silero voice detector (a [`ModelKey::silero_vad`] key).
    pub fn acquire_silero(
        &self,
        key: &ModelKey,
        idle_timeout: Option<IdleTimeout>,
    ) -> Result<SileroHandle, ModelError> {
        self.acquire_reporting(key, idle_timeout).0
    }

    /// Acquires a model of kind `M`, also returning the event this acquisition was reported
    /// as (loaded, joined, reused or failed), so a caller can pass it on (the elements post it
    /// on their bus).
    pub fn acquire_reporting<M: CachedModel>(
        &self,
        key: &ModelKey,
        idle_timeout: Option<IdleTimeout>,
    ) -> (Result<ModelHandle<M>, ModelError>, ModelEvent) {
        if key.kind != M::KIND {
            let what = format!("is {}, not {}", key.kind, M::KIND);
            return self.failed(key, ModelError::invalid(&key.path, what));
        }
        let key = self.key_for_request(key);
        let found = self.inner.table.lock().unwrap().find_or_start(&key);
        let (result, event) = match found {
            Found::Ready(loaded, event) => (Ok((loaded, Acquisition::Reused)), event),
            Found::Loading(pending) => match pending.wait() {
                Ok(loaded) => self.joined(&key, loaded),
                // The loader reported the failure to subscribers already.
                Err(e) => return self.failed(&key, e),
            },
            Found::Absent(pending) => self.load::<M>(&key, &pending),
        };
        self.inner.emit(&event);
        let handle = result.map(|(loaded, acquisition)| ModelHandle {
            // The key's kind is `M`'s: every model stored under it is an `M`.
            model: loaded
                .model
                .downcast::<M>()
                .unwrap_or_else(|_| unreachable!()),
            key,
            load_time: loaded.load_time,
            cache: self.inner.clone(),
            idle_timeout,
            acquisition,
        });
        (handle, event)
    }

    /// An acquisition that failed with `error`, reported to the caller (not to subscribers).
    fn failed<M: CachedModel>(
        &self,
        key: &ModelKey,
        error: ModelError,
    ) -> (Result<ModelHandle<M>, ModelError>, ModelEvent) {
        let event = self
            .inner
            .table
            .lock()
            .unwrap()
            .failed_event(key, error.clone());
        (Err(error), event)
    }

    /// The key itself, or with sharing off a key of its own (a private copy).
    fn key_for_request(&self, key: &ModelKey) -> ModelKey {
        static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);
        match self.inner.sharing.load(Ordering::Relaxed) {
            true => key.clone(),
            false => ModelKey {
                instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
                ..key.clone()
            },
        }
    }

    /// A handle taken on a model another request loaded (its loader counted it): its event.
    fn joined(
        &self,
        key: &ModelKey,
        loaded: Loaded,
    ) -> (Result<(Loaded, Acquisition), ModelError>, ModelEvent) {
        let t = self.inner.table.lock().unwrap();
        let event = t.event(ModelAction::Joined, key, Some(loaded.load_time));
        (Ok((loaded, Acquisition::Joined)), event)
    }

    /// Runs the load this request started, then hands the outcome to everyone waiting on it.
    fn load<M: CachedModel>(
        &self,
        key: &ModelKey,
        pending: &Pending,
    ) -> (Result<(Loaded, Acquisition), ModelError>, ModelEvent) {
        let loading = self
            .inner
            .table
            .lock()
            .unwrap()
            .event(ModelAction::Loading, key, None);
        self.inner.emit(&loading);
        let result = load_model::<M>(key);
        let event = self.inner.table.lock().unwrap().finish_load(key, &result);
        pending.complete(result.clone());
        (result.map(|loaded| (loaded, Acquisition::Loaded)), event)
    }

    /// Resolves a model name or path (see [`locate::resolve`]) and acquires it in `compute`:
    /// what an application calls at start-up to have a model ready before the first pipeline
    /// (with the elements' `compute-type`, `device` and `flash-attn`, it is their model). Keep
    /// the handle to keep the model loaded.
    pub fn preload(
        &self,
        model: &str,
        device: Device,
        compute: ComputeType,
        options: ContextOptions,
    ) -> Result<WhisperHandle, ModelError> {
        let path = compute::model_file(&locate::resolve(model)?, compute, device)?;
        self.acquire(&ModelKey::new(&path, device, options)?, None)
    }

    /// Releases every idle model now; returns how many.
    pub fn release_idle(&self) -> usize {
        let now = Instant::now();
        let mut t = self.inner.table.lock().unwrap();
        for e in t.entries.values_mut() {
            if let Entry::Ready {
                handles: 0,
                deadline,
                ..
            } = e
            {
                *deadline = Some(now);
            }
        }
        let expired = t.take_expired(now);
        drop(t);
        let n = expired.len();
        self.inner.announce_released(expired);
        n
    }

    pub fn stats(&self) -> CacheStats {
        self.inner.table.lock().unwrap().stats()
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
        let id = self.inner.next_listener.fetch_add(1, Ordering::Relaxed);
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

/// The cache every element of the plugin shares.
pub fn global() -> &'static ModelCache {
    static GLOBAL: Lazy<ModelCache> = Lazy::new(ModelCache::new);
    &GLOBAL
}

#[cfg(test)]
mod tests {
    //! The cache's own rules against a test model whose loads the test controls: each key's
    //! path says how its load behaves, and every load is counted.
    use super::*;
    use std::path::{Path, PathBuf};
    use std::sync::Barrier;

    /// How a test model's load behaves, by its file name.
    fn behaviour(path: &Path) -> (&'static str, Duration) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let slow = Duration::from_millis(if name.contains("slow") { 200 } else { 0 });
        let outcome = match name {
            n if n.contains("fail") => "fail",
            n if n.contains("panic") => "panic",
            _ => "ok",
        };
        (outcome, slow)
    }

    static LOADS: Lazy<Mutex<HashMap<PathBuf, usize>>> = Lazy::new(Mutex::default);

    struct TestModel;

    impl CachedModel for TestModel {
        const KIND: ModelKind = ModelKind::Whisper;

        fn load(key: &ModelKey) -> Result<Self, ModelError> {
            *LOADS.lock().unwrap().entry(key.path.clone()).or_default() += 1;
            let (outcome, slow) = behaviour(&key.path);
            std::thread::sleep(slow);
            match outcome {
                "fail" => Err(ModelError::invalid(&key.path, "test failure")),
                "panic" => panic!("test loader panic"),
                _ => Ok(TestModel),
            }
        }
    }

    /// A key of its own for each test (the load counts are process-wide).
    fn key(name: &str) -> ModelKey {
        ModelKey {
            path: PathBuf::from(format!("/test-models/{name}")),
            size: 1,
            modified: std::time::SystemTime::UNIX_EPOCH,
            device: Device::Cpu,
            options: ContextOptions::default(),
            kind: ModelKind::Whisper,
            instance: 0,
        }
    }

    fn loads(key: &ModelKey) -> usize {
        LOADS.lock().unwrap().get(&key.path).copied().unwrap_or(0)
    }

    fn cache() -> ModelCache {
        let cache = ModelCache::new();
        cache.set_sharing(true);
        cache.set_default_idle_timeout(IdleTimeout::Never);
        cache
    }

    type Acquired = (Result<ModelHandle<TestModel>, ModelError>, ModelEvent);

    /// `n` threads ask for `key` at the same moment.
    fn acquire_at_once(cache: &ModelCache, key: &ModelKey, n: usize) -> Vec<Acquired> {
        let barrier = Arc::new(Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (cache, key, barrier) = (cache.clone(), key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    cache.acquire_reporting::<TestModel>(&key, None)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    #[test]
    fn concurrent_requests_share_one_load() {
        let (cache, key) = (cache(), key("single-flight-slow"));
        let acquired = acquire_at_once(&cache, &key, 8);
        assert_eq!(loads(&key), 1);
        let handles: Vec<_> = acquired.iter().map(|(h, _)| h.as_ref().unwrap()).collect();
        let loaded = handles
            .iter()
            .filter(|h| h.acquisition() == Acquisition::Loaded)
            .count();
        assert_eq!(loaded, 1, "one request loads, the others join");
        assert!(handles
            .iter()
            .all(|h| Arc::ptr_eq(h.model(), handles[0].model())));
        assert_eq!(cache.stats().model(&key).unwrap().live_handles, 8);
        drop(acquired);
        assert_eq!(cache.stats().live_handles(), 0);
    }

    #[test]
    fn a_failed_load_reaches_every_waiter_and_the_next_request_tries_again() {
        let (cache, key) = (cache(), key("fails-slow"));
        let acquired = acquire_at_once(&cache, &key, 4);
        assert_eq!(loads(&key), 1);
        for (result, event) in &acquired {
            let error = result.as_ref().unwrap_err();
            assert!(error.to_string().contains("fails-slow"), "{error}");
            assert_eq!(event.action, ModelAction::Failed);
            assert_eq!(event.live_handles, 0);
        }
        assert!(cache.acquire_reporting::<TestModel>(&key, None).0.is_err());
        assert_eq!(loads(&key), 2, "a failure is not cached");
        assert_eq!(cache.stats().failed_loads, 2);
        assert!(cache.stats().model(&key).is_none());
    }

    #[test]
    fn a_panicking_loader_is_a_failed_load_naming_the_file() {
        let (cache, key) = (cache(), key("panics"));
        let (result, event) = cache.acquire_reporting::<TestModel>(&key, None);
        let error = result.unwrap_err();
        assert_eq!(error.path(), Some(key.path.as_path()));
        assert_eq!(event.action, ModelAction::Failed);
        // The cache still works.
        assert!(cache
            .acquire_reporting::<TestModel>(&self::key("next"), None)
            .0
            .is_ok());
    }

    #[test]
    fn a_held_model_is_reused_and_an_idle_one_released_after_its_time_out() {
        let (cache, key) = (cache(), key("idle"));
        let released = Arc::new(Mutex::new(Vec::new()));
        let seen = released.clone();
        let _subscription = cache.subscribe(move |e| {
            if e.action == ModelAction::Released {
                seen.lock().unwrap().push(e.key.clone());
            }
        });
        let timeout = Some(IdleTimeout::After(Duration::from_millis(100)));
        let first = cache
            .acquire_reporting::<TestModel>(&key, timeout)
            .0
            .unwrap();
        let (second, event) = cache.acquire_reporting::<TestModel>(&key, timeout);
        assert_eq!(event.action, ModelAction::Reused);
        assert_eq!(event.live_handles, 2);
        drop((first, second));
        assert_eq!(cache.stats().model(&key).unwrap().state, EntryState::Idle);
        // Taken again before its time-out: no new load, no release.
        let again = cache
            .acquire_reporting::<TestModel>(&key, timeout)
            .0
            .unwrap();
        assert_eq!(again.acquisition(), Acquisition::Reused);
        drop(again);
        let deadline = Instant::now() + Duration::from_secs(10);
        while released.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(*released.lock().unwrap(), vec![key.clone()]);
        assert!(cache.stats().model(&key).is_none());
        assert_eq!(loads(&key), 1);
        assert_eq!(cache.stats().releases, 1);
    }

    #[test]
    fn a_model_kept_for_ever_stays_until_released_by_hand() {
        let (cache, key) = (cache(), key("never"));
        drop(cache.acquire_reporting::<TestModel>(&key, Some(IdleTimeout::Never)));
        assert_eq!(cache.stats().model(&key).unwrap().state, EntryState::Idle);
        assert_eq!(cache.release_idle(), 1);
        assert!(cache.stats().model(&key).is_none());
    }

    #[test]
    fn release_at_zero_time_out_never_races_a_new_request() {
        let (cache, key) = (cache(), key("churn"));
        let timeout = Some(IdleTimeout::After(Duration::ZERO));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (cache, key) = (cache.clone(), key.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let handle = cache.acquire_reporting::<TestModel>(&key, timeout).0;
                        assert!(handle.is_ok());
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let stats = cache.stats();
        assert!(
            stats.model(&key).is_none(),
            "released after the last handle"
        );
        assert_eq!(stats.loads, stats.releases, "{stats:?}");
        assert_eq!(stats.loads as usize, loads(&key));
    }

    #[test]
    fn sharing_off_gives_each_request_its_own_copy() {
        let (cache, key) = (cache(), key("private"));
        cache.set_sharing(false);
        let a = cache.acquire_reporting::<TestModel>(&key, None).0.unwrap();
        let b = cache.acquire_reporting::<TestModel>(&key, None).0.unwrap();
        assert!(!Arc::ptr_eq(a.model(), b.model()));
        assert_eq!(loads(&key), 2);
    }

    #[test]
    fn a_key_of_another_kind_is_refused_naming_both() {
        let cache = cache();
        let key = ModelKey {
            kind: ModelKind::SileroVad,
            ..key("wrong-kind")
        };
        let error = cache
            .acquire_reporting::<TestModel>(&key, None)
            .0
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("Silero") && error.contains("Whisper"),
            "{error}"
        );
        assert_eq!(loads(&key), 0);
    }
}
