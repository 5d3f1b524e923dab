//! whisperstt: speech to text for GStreamer on whisper.cpp, with one model shared by every
//! pipeline in the process.
//!
//! The engine (`model`, `transcriber`) is plain Rust; the elements adapt it to GStreamer.

pub mod clock;
pub mod cpu;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod model;
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
