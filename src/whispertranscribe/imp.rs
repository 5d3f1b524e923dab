// SPDX-License-Identifier: MIT
/**
 * SECTION:element-whispertranscribe
 * @see_also: whispersink
 *
 * `whispertranscribe` transcribes speech with whisper.cpp and pushes the text downstream as timed
 * UTF-8 buffers (`text/x-raw,format=utf8`), each with the PTS and duration of the words it holds
 * on the input's timeline. It takes 16- or 32-bit audio at any rate and channel count, and mixes
 * it to 16 kHz mono inside.
 *
 * A built-in voice detector cuts the audio into utterances; silence and steady noise never reach
 * whisper.cpp. Each utterance is decoded once when it ends: its *final*, pushed as one buffer per
 * Whisper segment, per word or per utterance (`output-granularity`) and followed by the custom
 * downstream event `rstranscribe/final-transcript`, on which gst-plugins-rs's `textaccumulate`
 * drains. With live input the utterance in progress is also decoded about once a second:
 * *partials*, posted on the bus. With `stable-partials=true` the words two partials agreed on
 * also go downstream at once and the final adds the rest, so the first words of a long utterance
 * arrive within the latency (live captions). Between finals the element sends GAP events, so
 * text sinks preroll at once and `textoverlay` does not hold video back for text that is not
 * coming.
 *
 * Every result is also posted as a `whisperstt-transcript` element message. The model comes from a
 * process-wide cache shared with every other whisperstt element, and `whisperstt-model` messages
 * report its loads, reuses and releases.
 *
 * Example launch line:
 *
 * |[
 * gst-launch-1.0 filesrc location=speech.wav ! decodebin ! audioconvert ! audioresample ! \
 *     whispertranscribe ! overlay.text_sink \
 *     videotestsrc ! textoverlay name=overlay ! autovideosink
 * ]|
 */
use crate::element::{
    self, ElementKind, Granularity, Item, Output, Settings, TimedTranscript, WorkerSlot,
};
use crate::transcriber::early_text::EarlyText;
use crate::transcriber::Word;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use once_cell::sync::Lazy;
use std::sync::Mutex;

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        // Under the plugin's prefix, so GST_DEBUG=whisperstt*:5 shows everything it does.
        "whisperstt-transcribe",
        gst::DebugColorFlags::empty(),
        Some("Whisper speech-to-text transform"),
    )
});

fn text_caps() -> gst::Caps {
    gst::Caps::builder("text/x-raw")
        .field("format", "utf8")
        .build()
}

pub struct WhisperTranscribe {
    srcpad: gst::Pad,
    sinkpad: gst::Pad,
    settings: Mutex<Settings>,
    worker: WorkerSlot,
}

/// The worker's results: finals as timed text buffers, everything on the bus, and the events
/// that must stay in order with the text.
struct TextOutput {
    element: glib::WeakRef<gst::Element>,
    srcpad: gst::Pad,
    /// How far the text stream has gone (text and gaps pushed); none since the segment.
    position: Option<gst::ClockTime>,
    /// `stable-partials`: the words of the utterance in progress already pushed.
    early: EarlyText,
}

/// The settled time moves on in steps at least this long: a GAP per input buffer would be
/// a flood of events.
const GAP_STEP: gst::ClockTime = gst::ClockTime::from_mseconds(100);

impl TextOutput {
    /// Text downstream never goes back in time: a piece that would start before the
    /// stream's position (timestamps jumping back without a new segment) starts there.
    fn push_text(
        &mut self,
        text: &str,
        start: gst::ClockTime,
        end: gst::ClockTime,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let start = self.position.map_or(start, |p| start.max(p));
        let end = end.max(start);
        let mut buffer = gst::Buffer::from_mut_slice(text.as_bytes().to_vec());
        {
            let b = buffer.get_mut().unwrap();
            b.set_pts(start);
            b.set_duration(end - start);
        }
        self.position = Some(end);
        self.srcpad.push(buffer)
    }
}

/// How a final, or words sent before it, are cut into buffers.
impl TextOutput {
    fn push_final(
        &mut self,
        t: &TimedTranscript,
        granularity: Granularity,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let tr = &t.transcript;
        if granularity == Granularity::Segment {
            for p in &tr.pieces {
                self.push_text(&p.text, t.pts_of(p.start), t.pts_of(p.end))?;
            }
            return Ok(gst::FlowSuccess::Ok);
        }
        if granularity == Granularity::Word && !tr.words.is_empty() {
            return self.push_words(t, &tr.words, granularity);
        }
        // Per utterance, or word timing missing (the decode ran before the setting changed).
        self.push_text(&tr.text, t.pts_of(tr.start), t.pts_of(tr.end))
    }

    /// `words` a buffer each (`word`), else together in one.
    fn push_words(
        &mut self,
        t: &TimedTranscript,
        words: &[Word],
        granularity: Granularity,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (Some(first), Some(last)) = (words.first(), words.last()) else {
            return Ok(gst::FlowSuccess::Ok);
        };
        if granularity != Granularity::Word {
            let text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>();
            return self.push_text(&text.join(" "), t.pts_of(first.start), t.pts_of(last.end));
        }
        for w in words {
            self.push_text(&w.text, t.pts_of(w.start), t.pts_of(w.end))?;
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl Output for TextOutput {
    fn caps(&mut self, _caps: &gst::Caps) {
        if self.srcpad.current_caps().is_none() {
            self.srcpad.push_event(gst::event::Caps::new(&text_caps()));
        }
    }

    fn event(&mut self, event: gst::Event) {
        self.srcpad.push_event(event);
    }

    fn segment(&mut self, segment: &gst::Segment) {
        self.position = None;
        self.early.reset();
        self.srcpad.push_event(gst::event::Segment::new(segment));
    }

    /// GAP events keep downstream moving through silence: a sink can preroll (a tee'd
    /// pipeline would otherwise wait for the first final for ever) and textoverlay need not
    /// hold video back waiting for text that is not coming.
    fn settled(&mut self, pts: gst::ClockTime) {
        let gap = match self.position {
            // The first: at once, so downstream can preroll.
            None => gst::event::Gap::builder(pts)
                .duration(gst::ClockTime::ZERO)
                .build(),
            Some(position) if pts >= position + GAP_STEP => gst::event::Gap::builder(position)
                .duration(pts - position)
                .build(),
            Some(_) => return,
        };
        self.position = Some(pts);
        self.srcpad.push_event(gap);
    }

    fn transcript(
        &mut self,
        t: &TimedTranscript,
        settings: &Settings,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(element) = self.element.upgrade() else {
            return Err(gst::FlowError::Flushing);
        };
        element::post_transcript(&element, *CAT, t);
        let granularity = settings.playing.granularity;
        // Downstream gets settled text only: stable partial words if asked for, each final
        // (or what stable partials left of it) cut as asked, then the event GStreamer's
        // transcription elements (textaccumulate, tttocea608, ...) drain on.
        if !t.transcript.is_final {
            if settings.playing.stable_partials {
                let words = self.early.partial(&t.transcript);
                self.push_words(t, &words, granularity)?;
            }
            return Ok(gst::FlowSuccess::Ok);
        }
        match self.early.final_rest(&t.transcript) {
            Some(rest) => self.push_words(t, &rest, granularity)?,
            None => self.push_final(t, granularity)?,
        };
        let done = gst::Structure::new_empty(element::FINAL_TRANSCRIPT_EVENT);
        self.srcpad
            .push_event(gst::event::CustomDownstream::new(done));
        Ok(gst::FlowSuccess::Ok)
    }
}

impl WhisperTranscribe {
    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.worker.enqueue(Item::Buffer(buffer))
    }

    fn queue(&self, item: Item) -> bool {
        self.worker.enqueue(item).is_ok()
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            // These stay in order with the audio: the worker forwards them.
            EventView::Caps(c) => {
                let live = element::upstream_is_live(&self.sinkpad);
                self.queue(Item::Caps {
                    caps: c.caps_owned(),
                    live,
                })
            }
            EventView::Segment(s) => self.queue(Item::Segment(s.segment().clone())),
            EventView::Gap(g) => {
                let (pts, duration) = g.get();
                self.queue(Item::Gap { pts, duration })
            }
            EventView::Eos(_) => {
                // Not a sink: nothing unlocks it.
                self.worker.with(|w| w.drain(|| true));
                self.srcpad.push_event(event)
            }
            EventView::FlushStart(_) => {
                self.worker.with(|w| w.flush_start());
                self.srcpad.push_event(event)
            }
            EventView::FlushStop(_) => {
                self.worker.with(|w| w.flush_stop());
                self.srcpad.push_event(event)
            }
            _ if event.is_serialized() => self.queue(Item::Event(event)),
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let mut upstream = gst::query::Latency::new();
            if !self.sinkpad.peer_query(&mut upstream) {
                return false;
            }
            let (live, min, max) = upstream.result();
            let ours = self.settings.lock().unwrap().latency();
            if live {
                q.set(true, min + ours, max.map(|m| m + ours));
            } else {
                q.set(false, min, max);
            }
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for WhisperTranscribe {
    const NAME: &'static str = "GstWhisperTranscribe";
    type Type = super::WhisperTranscribe;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").unwrap())
            .chain_function(|_pad, parent, buffer| {
                WhisperTranscribe::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                WhisperTranscribe::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap())
            .query_function(|pad, parent, query| {
                WhisperTranscribe::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_query(pad, query),
                )
            })
            .build();
        WhisperTranscribe {
            srcpad,
            sinkpad,
            settings: Mutex::default(),
            worker: WorkerSlot::new(*CAT),
        }
    }
}

impl ObjectImpl for WhisperTranscribe {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> =
            Lazy::new(|| Settings::properties(ElementKind::Transcribe));
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let obj = self.obj();
        element::set_property(obj.upcast_ref(), &self.settings, &self.worker, value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        element::property(&self.settings, &self.worker, pspec)
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }
}

impl GstObjectImpl for WhisperTranscribe {}

impl ElementImpl for WhisperTranscribe {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "Whisper speech-to-text",
                "Audio/Text/Filter",
                "Transcribes speech (any rate and channels, mixed to 16 kHz mono inside) with \
                 whisper.cpp into timed UTF-8 text buffers, and posts a whisperstt-transcript element message for each result (text, \
                 is-final, start, end, duration, language, avg-logprob, no-speech-prob, words, \
                 model, element, ...). The model comes from a process-wide cache shared with \
                 every other whisperstt element; whisperstt-model messages report its loads, \
                 reuses and releases.",
                "whisperstt developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &element::sink_caps(),
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &text_caps(),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        let obj = self.obj();
        let element: &gst::Element = obj.upcast_ref();
        let output = |_: &Settings| -> Result<Box<dyn Output>, gst::StateChangeError> {
            Ok(Box::new(TextOutput {
                element: element.downgrade(),
                srcpad: self.srcpad.clone(),
                position: None,
                early: EarlyText::default(),
            }))
        };
        self.worker
            .change_state(element, transition, &self.settings, output, || {
                self.parent_change_state(transition)
            })
    }
}
