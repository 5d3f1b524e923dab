//! whisperstt: speech to text for GStreamer on whisper.cpp, with one model shared by every
//! pipeline in the process.
//!
//! This crate is the GStreamer plugin `whisperstt`, with the elements `whispertranscribe` and
//! `whispersink` (their use is documented in README.md and docs/), and, as an `rlib` named
//! `gstwhisperstt`, the engine behind them. The engine is plain Rust: the model cache and model
//! files (`model`), the per-stream transcriber (`transcriber`), voice detection (`vad`) and the
//! inference thread budget (`scheduler`, `cpu`); the elements adapt it to GStreamer.
//!
//! # Embedding: the model cache
//!
//! Every whisperstt element in a process gets its model from one cache,
//! [`model::cache::global()`]. An application that embeds GStreamer can use the same cache, so
//! that its pipelines never wait for a load:
//!
//! - [`ModelCache::preload`](model::cache::ModelCache::preload)`(model, device, options)`
//!   resolves `model` as the elements' `model` property does (a name in the models directory,
//!   a ggml file, or a faster-whisper directory, imported on first use), loads it or shares the
//!   copy already loaded, and returns a handle. While the handle lives the model stays loaded;
//!   pipelines that name the same file, device and options reuse it.
//! - [`ModelCache::stats`](model::cache::ModelCache::stats) counts the cache's loads, failed
//!   loads and releases, and lists each model with its state, size, live handles and loads.
//! - `ModelCache::subscribe(listener)` calls `listener` on every load, join, reuse, release
//!   and failure (the events elements post as `whisperstt-model` messages) until the
//!   subscription it returns is dropped; `ModelCache::set_default_idle_timeout` sets how long
//!   a model nobody uses stays loaded.
//!
//! Failures are a [`model::ModelError`] naming the file or model they are about. A cache of
//! its own ([`ModelCache::new`](model::cache::ModelCache::new)) behaves like the global one,
//! for tests and tools:
//!
//! ```
//! use gstwhisperstt::model::{cache, ModelError};
//!
//! // What an application calls at start-up: `cache::global().preload(...)`, keeping the handle.
//! let cache = cache::ModelCache::new();
//! assert_eq!(cache.stats().loads, 0);
//!
//! // The device and context options default to the CPU and no flash attention.
//! let err = cache
//!     .preload("no-such-model", Default::default(), Default::default(), Default::default())
//!     .err()
//!     .expect("no model has this name");
//! assert!(err.to_string().starts_with("model 'no-such-model' not found (looked for "));
//! match err {
//!     ModelError::NotFound { name, searched } => {
//!         assert_eq!(name, "no-such-model");
//!         // The models directory's candidates: ggml-NAME.bin, NAME.bin, NAME/.
//!         assert!(!searched.is_empty());
//!         assert!(searched.iter().all(|p| p.to_string_lossy().contains("no-such-model")));
//!     }
//!     other => panic!("expected NotFound, got {other}"),
//! }
//!
//! // A name that names no file never reaches whisper.cpp: nothing was loaded, nothing failed.
//! let stats = cache.stats();
//! assert_eq!((stats.loads, stats.failed_loads, stats.releases), (0, 0, 0));
//! assert!(stats.models.is_empty());
//! ```

pub mod clock;
pub mod cpu;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod live_timing;
pub mod model;
pub mod queue;
pub mod scheduler;
pub mod subtitles;
pub mod transcriber;
pub mod vad;

mod element;
mod logging;
mod whispersink;
mod whispertranscribe;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    logging::init();
    whispertranscribe::register(plugin)?;
    whispersink::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    whisperstt,
    "Speech to text with whisper.cpp on a process-wide shared model cache",
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    // No public repository yet: GStreamer's own words for a package without an origin.
    "Unknown package origin",
    env!("BUILD_REL_DATE")
);
