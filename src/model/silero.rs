//! whisper.cpp's ggml port of the Silero voice detector, loaded once into the model cache and
//! shared by every stream that names the same file (each stream's detector is in `crate::vad`).

use super::cache::CachedModel;
use super::{ggml, ModelError, ModelKey, ModelKind};
use std::sync::Mutex;
use whisper_rs::{WhisperVadContext, WhisperVadContextParams};

/// A loaded Silero model. The whisper.cpp context holds its scratch state, so calls take
/// turns; each is a few milliseconds.
pub struct SileroModel {
    context: Mutex<WhisperVadContext>,
    info: ggml::SileroInfo,
}

impl CachedModel for SileroModel {
    const KIND: ModelKind = ModelKind::SileroVad;

    fn load(key: &ModelKey) -> Result<Self, ModelError> {
        let path = &key.path;
        let info = ggml::inspect_silero(path)?;
        key.unchanged(info.file_size)?;
        let mut params = WhisperVadContextParams::new();
        // Tiny network: more threads cost more in hand-offs than they save.
        params.set_n_threads(1);
        params.set_use_gpu(false);
        let load_error = || ModelError::Load { path: path.clone() };
        let path_str = path.to_str().ok_or_else(load_error)?;
        let context = WhisperVadContext::new(path_str, params).map_err(|_| load_error())?;
        Ok(SileroModel {
            context: Mutex::new(context),
            info,
        })
    }
}

impl SileroModel {
    pub fn info(&self) -> &ggml::SileroInfo {
        &self.info
    }

    /// Samples per probability.
    pub fn window(&self) -> usize {
        self.info.window
    }

    /// The speech probability of each `window()` of `audio` (the last one zero-padded).
    pub fn probabilities(&self, audio: &[f32]) -> Result<Vec<f32>, whisper_rs::WhisperError> {
        let mut context = self.context.lock().unwrap_or_else(|e| e.into_inner());
        context.detect_speech(audio)?;
        Ok(context.probabilities().to_vec())
    }
}
