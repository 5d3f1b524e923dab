//! Models: finding them, checking them before whisper.cpp sees them, importing faster-whisper
//! (CTranslate2) directories, loading Whisper models and Silero voice detectors, and sharing
//! them across the process. Nothing here depends on GStreamer.

pub mod cache;
pub mod compute;
pub mod ct2;
mod error;
pub mod ggml;
pub mod import;
mod key;
pub mod locate;
mod mel;
mod silero;
mod vocab;
mod whisper;

pub use error::ModelError;
pub use key::{
    ContextOptions, Device, IdleTimeout, ModelKey, ModelKind, DEFAULT_IDLE_TIMEOUT, GPU_BUILD,
};
pub use silero::SileroModel;
pub use whisper::{StateLoan, WhisperModel};
