use crate::element::{self, ReleaseWatch, Session, Settings, Stream};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use once_cell::sync::Lazy;
use std::sync::{Arc, Mutex};

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "whispersink",
        gst::DebugColorFlags::empty(),
        Some("Whisper speech-to-text sink"),
    )
});

#[derive(Default)]
pub struct WhisperSink {
    settings: Mutex<Settings>,
    /// From NULL -> READY to READY -> NULL.
    session: Mutex<Option<Arc<Session>>>,
    stream: Mutex<Stream>,
    releases: Mutex<Option<ReleaseWatch>>,
}

impl WhisperSink {
    fn session(&self) -> Option<Arc<Session>> {
        self.session.lock().unwrap().clone()
    }

    fn post(&self, transcripts: Vec<element::TimedTranscript>) {
        for t in &transcripts {
            gst::debug!(
                CAT,
                imp = self,
                "{} .. {}: {}",
                t.pts,
                t.pts + t.duration,
                t.transcript.text
            );
            element::post_transcript(self.obj().upcast_ref(), t);
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for WhisperSink {
    const NAME: &'static str = "GstWhisperSink";
    type Type = super::WhisperSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for WhisperSink {
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
        // Files are transcribed as fast as the CPU allows; live sources pace themselves.
        self.obj().set_sync(false);
    }
}

impl GstObjectImpl for WhisperSink {}

impl ElementImpl for WhisperSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "Whisper speech-to-text sink",
                "Sink/Audio",
                "Transcribes 16 kHz mono speech with whisper.cpp and posts a \
                 whisperstt-transcript element message for each result (text, is-final, start, \
                 end, duration, language, avg-logprob, no-speech-prob, words, model, element, \
                 ...). The model comes from a process-wide cache shared with every other \
                 whisperstt element. sync defaults to false here.",
                "whisperstt developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            vec![gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &element::sink_caps(),
            )
            .unwrap()]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "{transition:?}");
        if transition == gst::StateChange::NullToReady {
            let obj = self.obj();
            let element: &gst::Element = obj.upcast_ref();
            let mut releases = self.releases.lock().unwrap();
            let releases = releases.get_or_insert_with(|| ReleaseWatch::new(element));
            let settings = self.settings.lock().unwrap().clone();
            *self.session.lock().unwrap() =
                Some(Arc::new(Session::start(element, &settings, releases)));
        }
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToNull {
            *self.stream.lock().unwrap() = Stream::default();
            *self.session.lock().unwrap() = None;
        }
        Ok(ret)
    }
}

impl BaseSinkImpl for WhisperSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(s) = self.session() {
            s.set_flushing(false);
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.stream.lock().unwrap().flush();
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        self.stream
            .lock()
            .unwrap()
            .set_caps(caps)
            .map_err(|e| gst::loggable_error!(CAT, "{}", e))
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let session = self.session().ok_or(gst::FlowError::Flushing)?;
        let transcripts = {
            let mut stream = self.stream.lock().unwrap();
            stream.ensure_transcriber(&session)?;
            stream.push(buffer).map_err(|e| {
                element::stream_error(self.obj().upcast_ref(), "Transcription failed", e)
            })?
        };
        self.post(transcripts);
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Segment(s) => {
                if let Err(e) = self.stream.lock().unwrap().set_segment(s.segment()) {
                    gst::element_imp_error!(self, gst::StreamError::Format, ("{}", e));
                    return false;
                }
            }
            // Transcribe what is pending before the sink reports EOS.
            gst::EventView::Eos(_) => {
                let drained = self.stream.lock().unwrap().drain();
                match drained {
                    Ok(t) => self.post(t),
                    Err(e) => {
                        let _ = element::stream_error(
                            self.obj().upcast_ref(),
                            "Transcription failed",
                            e,
                        );
                    }
                }
            }
            gst::EventView::FlushStop(_) => self.stream.lock().unwrap().flush(),
            _ => {}
        }
        self.parent_event(event)
    }

    /// Called on flush and state changes: stop waiting for the model.
    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(s) = self.session() {
            s.set_flushing(true);
        }
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(s) = self.session() {
            s.set_flushing(false);
        }
        Ok(())
    }
}
