//! Whisper models: finding them, checking them before whisper.cpp sees them, importing
//! faster-whisper (CTranslate2) directories, and sharing loaded models across the process.
//! Nothing here depends on GStreamer.

pub mod cache;
pub mod ct2;
mod error;
pub mod ggml;
pub mod import;
pub mod locate;
mod mel;
mod vocab;

pub use error::ModelError;
