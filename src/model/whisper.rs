//! A Whisper model loaded in whisper.cpp: its context, shared by every stream on it, and a pool
//! of whisper states (one decode's buffers each) lent out per decode.

use super::cache::CachedModel;
use super::{ggml, Device, ModelError, ModelKey, ModelKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use whisper_rs::{WhisperContext, WhisperContextParameters, WhisperState};

pub struct WhisperModel {
    context: WhisperContext,
    info: ggml::ModelInfo,
    states: StatePool,
}

impl CachedModel for WhisperModel {
    const KIND: ModelKind = ModelKind::Whisper;

    fn load(key: &ModelKey) -> Result<Self, ModelError> {
        // whisper.cpp may crash on a damaged file: check the whole structure first.
        let info = ggml::inspect(&key.path)?;
        key.unchanged(info.file_size)?;
        crate::logging::log_engine_build();
        let mut params = WhisperContextParameters::default();
        params.flash_attn(key.options.flash_attn);
        match key.device {
            Device::Cpu => params.use_gpu(false),
            Device::Gpu(n) => params.use_gpu(true).gpu_device(n as i32),
        };
        let context =
            WhisperContext::new_with_params(&key.path, params).map_err(|_| ModelError::Load {
                path: key.path.clone(),
            })?;
        Ok(WhisperModel {
            context,
            info,
            states: StatePool::default(),
        })
    }
}

impl WhisperModel {
    pub fn context(&self) -> &WhisperContext {
        &self.context
    }

    /// What the checks learnt about the file.
    pub fn info(&self) -> &ggml::ModelInfo {
        &self.info
    }

    /// Lends a whisper.cpp state (the buffers of one decode, ~140 MB with tiny.en) from the
    /// pool, creating one when every pooled state is lent. A stream borrows one per decode, so
    /// memory grows with the decodes running at once (bounded by the thread budget), not with
    /// the streams.
    pub fn lend_state(&self) -> Result<StateLoan<'_>, whisper_rs::WhisperError> {
        let pooled = self.states.idle.lock().unwrap().pop();
        let state = match pooled {
            Some(state) => state,
            None => self.states.create(&self.context)?,
        };
        Ok(StateLoan {
            state: Some(state),
            pool: &self.states,
        })
    }

    /// Makes the model's first state if it has none yet, so a model whisper.cpp cannot run on
    /// fails before any audio. Streams starting together make one between them (each making
    /// its own would leave a state per stream in the pool, ~100 MB each with tiny.en).
    pub fn prepare_state(&self) -> Result<(), whisper_rs::WhisperError> {
        let mut idle = self.states.idle.lock().unwrap();
        if self.states.created.load(Ordering::Relaxed) == 0 {
            idle.push(self.states.create(&self.context)?);
        }
        Ok(())
    }

    /// Whisper states this model has created: its most concurrent decodes so far.
    pub fn states_created(&self) -> usize {
        self.states.created.load(Ordering::Relaxed)
    }
}

/// A model's idle whisper states.
#[derive(Default)]
struct StatePool {
    idle: Mutex<Vec<WhisperState>>,
    created: AtomicUsize,
}

impl StatePool {
    /// A new state for this pool's model, counted.
    fn create(&self, context: &WhisperContext) -> Result<WhisperState, whisper_rs::WhisperError> {
        let state = context.create_state()?;
        self.created.fetch_add(1, Ordering::Relaxed);
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
