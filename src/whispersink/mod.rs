//! `whispersink`: audio in, transcripts on the bus, nothing downstream.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct WhisperSink(ObjectSubclass<imp::WhisperSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "whispersink",
        gst::Rank::NONE,
        WhisperSink::static_type(),
    )
}
