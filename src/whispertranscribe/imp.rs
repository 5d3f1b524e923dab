use crate::element::{self, ReleaseWatch, Session, Settings, Stream, TimedTranscript};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use once_cell::sync::Lazy;
use std::sync::{Arc, Mutex};

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "whispertranscribe",
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
    /// From NULL -> READY to READY -> NULL.
    session: Mutex<Option<Arc<Session>>>,
    stream: Mutex<Stream>,
    releases: Mutex<Option<ReleaseWatch>>,
}

impl WhisperTranscribe {
    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let session = self
            .session
            .lock()
            .unwrap()
            .clone()
            .ok_or(gst::FlowError::Flushing)?;
        let transcripts = {
            let mut stream = self.stream.lock().unwrap();
            stream.ensure_transcriber(&session)?;
            stream.push(&buffer).map_err(|e| {
                element::stream_error(self.obj().upcast_ref(), "Transcription failed", e)
            })?
        };
        self.output(transcripts)
    }

    /// Posts each transcript on the bus and pushes it downstream as a timed text buffer.
    fn output(
        &self,
        transcripts: Vec<TimedTranscript>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        for t in transcripts {
            gst::debug!(
                CAT,
                imp = self,
                "{} .. {}: {}",
                t.pts,
                t.pts + t.duration,
                t.transcript.text
            );
            element::post_transcript(self.obj().upcast_ref(), &t);
            let mut buffer = gst::Buffer::from_mut_slice(t.transcript.text.into_bytes());
            {
                let b = buffer.get_mut().unwrap();
                b.set_pts(t.pts);
                b.set_duration(t.duration);
            }
            self.srcpad.push(buffer)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn session(&self) -> Option<Arc<Session>> {
        self.session.lock().unwrap().clone()
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::Caps(c) => {
                if let Err(e) = self.stream.lock().unwrap().set_caps(c.caps()) {
                    gst::element_imp_error!(self, gst::StreamError::Format, ("{}", e));
                    return false;
                }
                self.srcpad.push_event(gst::event::Caps::new(&text_caps()))
            }
            EventView::Segment(s) => {
                if let Err(e) = self.stream.lock().unwrap().set_segment(s.segment()) {
                    gst::element_imp_error!(self, gst::StreamError::Format, ("{}", e));
                    return false;
                }
                self.srcpad.push_event(event)
            }
            EventView::Eos(_) => {
                let drained = self.stream.lock().unwrap().drain();
                match drained {
                    Ok(t) => {
                        let _ = self.output(t);
                    }
                    Err(e) => {
                        let _ = element::stream_error(
                            self.obj().upcast_ref(),
                            "Transcription failed",
                            e,
                        );
                    }
                }
                self.srcpad.push_event(event)
            }
            EventView::FlushStart(_) => {
                if let Some(s) = self.session() {
                    s.set_flushing(true);
                }
                self.srcpad.push_event(event)
            }
            EventView::FlushStop(_) => {
                self.stream.lock().unwrap().flush();
                if let Some(s) = self.session() {
                    s.set_flushing(false);
                }
                self.srcpad.push_event(event)
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
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
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap()).build();
        WhisperTranscribe {
            srcpad,
            sinkpad,
            settings: Mutex::default(),
            session: Mutex::default(),
            stream: Mutex::default(),
            releases: Mutex::default(),
        }
    }
}

impl ObjectImpl for WhisperTranscribe {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(Settings::properties);
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        self.settings.lock().unwrap().set(value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.settings.lock().unwrap().get(pspec)
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
                "Filter/Audio/Text",
                "Transcribes 16 kHz mono speech with whisper.cpp into timed UTF-8 text buffers, \
                 and posts a whisperstt-transcript element message for each result (text, \
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
        gst::debug!(CAT, imp = self, "{transition:?}");
        match transition {
            gst::StateChange::NullToReady => {
                let obj = self.obj();
                let element: &gst::Element = obj.upcast_ref();
                let mut releases = self.releases.lock().unwrap();
                let releases = releases.get_or_insert_with(|| ReleaseWatch::new(element));
                let settings = self.settings.lock().unwrap().clone();
                *self.session.lock().unwrap() =
                    Some(Arc::new(Session::start(element, &settings, releases)));
            }
            gst::StateChange::ReadyToPaused => {
                if let Some(s) = self.session() {
                    s.set_flushing(false);
                }
            }
            // Unblock a streaming thread waiting for the model before the pads deactivate.
            gst::StateChange::PausedToReady => {
                if let Some(s) = self.session() {
                    s.set_flushing(true);
                }
            }
            _ => {}
        }
        let ret = self.parent_change_state(transition)?;
        match transition {
            gst::StateChange::PausedToReady => self.stream.lock().unwrap().flush(),
            gst::StateChange::ReadyToNull => {
                // The stream's whisper state and model handle go here, not before.
                *self.stream.lock().unwrap() = Stream::default();
                *self.session.lock().unwrap() = None;
            }
            _ => {}
        }
        Ok(ret)
    }
}
