//! `whispertranscribe`: audio in, timed UTF-8 text out, transcripts on the bus.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct WhisperTranscribe(ObjectSubclass<imp::WhisperTranscribe>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "whispertranscribe",
        gst::Rank::NONE,
        WhisperTranscribe::static_type(),
    )
}
