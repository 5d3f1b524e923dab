//! What `whispertranscribe` and `whispersink` share: their properties, getting the model off
//! the state-change path, turning buffers into transcripts with timestamps, and the bus
//! messages they post.
//!
//! `slot` runs an element's worker through its state changes and holds its properties'
//! glue; `worker` is that thread and its queue; `model` gets the models and reports them;
//! `stream` places a transcriber on the input's timeline; `convert` makes its audio 16 kHz
//! mono; `messages` builds the transcript messages.

mod convert;
mod messages;
mod model;
mod settings;
mod slot;
mod stream;
mod worker;

pub use messages::{post_transcript, FINAL_TRANSCRIPT_EVENT};
pub use settings::{ElementKind, Granularity, Settings};
pub use slot::{property, set_property, WorkerSlot};
pub use stream::TimedTranscript;
pub use worker::{Item, Output};

use gst::prelude::*;

/// The GLib log domain of warnings given outside a pipeline (a refused property value on an
/// element without a bus).
pub const LOG_DOMAIN: &str = "whisperstt";

/// Sink caps: 16- and 32-bit audio at any rate and channel count, converted inside to what
/// whisper.cpp takes (16 kHz mono f32) by GStreamer's own audio converter.
pub fn sink_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field(
            "format",
            gst::List::new(["S16LE", "S16BE", "F32LE", "F32BE"]),
        )
        .field("rate", gst::IntRange::new(1i32, i32::MAX))
        .field(
            "channels",
            gst::IntRange::new(1i32, convert::MAX_CHANNELS as i32),
        )
        .field("layout", "interleaved")
        .build()
}

/// A duration as a GStreamer clock time.
pub fn clock_time(d: std::time::Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(d.as_nanos() as u64)
}

/// Whether the audio upstream of `sinkpad` is live (from a LATENCY query).
pub fn upstream_is_live(sinkpad: &gst::Pad) -> bool {
    let mut q = gst::query::Latency::new();
    sinkpad.peer_query(&mut q) && q.result().0
}

/// Posts a stream error naming what failed; returns the flow error to give upstream.
pub(crate) fn stream_error(
    element: &gst::Element,
    what: &str,
    err: impl std::fmt::Display,
) -> gst::FlowError {
    gst::element_error!(element, gst::StreamError::Failed, ("{}: {}", what, err));
    gst::FlowError::Error
}
