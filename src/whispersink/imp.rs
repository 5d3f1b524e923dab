// SPDX-License-Identifier: MIT
/**
 * SECTION:element-whispersink
 * @see_also: whispertranscribe
 *
 * `whispersink` transcribes speech with whisper.cpp and posts a `whisperstt-transcript` element
 * message for each result: partials while someone speaks (live input), and a final after each
 * utterance. With `location` it also writes the finals to a subtitle file (SRT, WebVTT or JSON
 * Lines), each cue flushed as it comes. It takes 16- or 32-bit audio at any rate and channel count,
 * and mixes it to 16 kHz mono inside.
 *
 * The model comes from a process-wide cache shared with every other whisperstt element:
 * a second pipeline on the same model is ready in milliseconds. `sync` defaults to false, so a
 * file is transcribed as fast as the CPU allows; live sources pace themselves. EOS is posted once
 * the last final is out.
 *
 * Example launch line:
 *
 * |[
 * gst-launch-1.0 -m filesrc location=speech.wav ! decodebin ! audioconvert ! audioresample ! \
 *     whispersink location=speech.srt
 * ]|
 */
use crate::element::{self, ElementKind, Item, Output, Settings, TimedTranscript, WorkerSlot};
use crate::subtitles::{self, Cue, CueLimits, SubtitleFormat, SubtitleWriter, TimedWord};
use crate::transcriber::Transcript;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use once_cell::sync::Lazy;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        // Under the plugin's prefix, so GST_DEBUG=whisperstt*:5 shows everything it does.
        "whisperstt-sink",
        gst::DebugColorFlags::empty(),
        Some("Whisper speech-to-text sink"),
    )
});

pub struct WhisperSink {
    settings: Mutex<Settings>,
    worker: WorkerSlot,
}

impl Default for WhisperSink {
    fn default() -> Self {
        WhisperSink {
            settings: Mutex::default(),
            worker: WorkerSlot::new(*CAT),
        }
    }
}

/// The worker's results go to the bus, and finals to the subtitle file if there is one.
struct BusOutput {
    element: glib::WeakRef<gst::Element>,
    /// The subtitle file and its path (for errors).
    subtitles: Option<(SubtitleWriter<File>, PathBuf)>,
}

/// Opens `location` for subtitles in the format asked for or named by its extension.
fn open_subtitles(
    settings: &Settings,
) -> Result<Option<(SubtitleWriter<File>, PathBuf)>, gst::ErrorMessage> {
    let Some(path) = &settings.start.location else {
        return Ok(None);
    };
    let format = settings
        .start
        .subtitle_format
        .or_else(|| SubtitleFormat::from_path(path))
        .ok_or_else(|| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "Cannot tell the subtitle format of '{}': name it .srt, .vtt or .jsonl, or set subtitle-format",
                    path.display()
                )
            )
        })?;
    let writer = SubtitleWriter::create(path, format).map_err(|e| {
        gst::error_msg!(
            gst::ResourceError::OpenWrite,
            ("Cannot write subtitles to '{}': {}", path.display(), e)
        )
    })?;
    Ok(Some((writer, path.clone())))
}

impl Output for BusOutput {
    fn transcript(
        &mut self,
        t: &TimedTranscript,
        _settings: &Settings,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let element = self.element.upgrade().ok_or(gst::FlowError::Flushing)?;
        element::post_transcript(&element, *CAT, t);
        let Some((writer, path)) = self.subtitles.as_mut().filter(|_| t.transcript.is_final) else {
            return Ok(gst::FlowSuccess::Ok);
        };
        // Subtitles follow the pipeline's timeline (running time): it starts at 0 and keeps
        // going across concatenated files and live sources alike.
        let start = t.running_time.unwrap_or(t.pts);
        let tr = &t.transcript;
        let extra = serde_json::json!({
            "utterance-id": tr.utterance_id,
            "language": tr.language,
            "language-probability": tr.language_probability,
            "avg-logprob": tr.avg_logprob,
            "no-speech-prob": tr.no_speech_prob,
        });
        let (start, end): (Duration, Duration) = (start.into(), (start + t.duration).into());
        for (start, end, text) in &subtitle_cues(tr, writer.format(), start, end) {
            let cue = Cue {
                start: *start,
                end: *end,
                text,
                json: Some(&extra),
            };
            writer.write(&cue).map_err(|e| {
                gst::element_error!(
                    element,
                    gst::ResourceError::Write,
                    ("Cannot write subtitles to '{}': {}", path.display(), e)
                );
                gst::FlowError::Error
            })?;
        }
        Ok(gst::FlowSuccess::Ok)
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
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> =
            Lazy::new(|| Settings::properties(ElementKind::Sink));
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
                "Transcribes speech (any rate and channels, mixed to 16 kHz mono inside) with \
                 whisper.cpp and posts a whisperstt-transcript element message for each result \
                 (text, is-final, start, end, duration, language, avg-logprob, no-speech-prob, \
                 words, model, element, ...). The model comes from a process-wide cache shared with every other \
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
        let obj = self.obj();
        let element: &gst::Element = obj.upcast_ref();
        // Results go to the bus and the subtitle file.
        let output = |settings: &Settings| -> Result<Box<dyn Output>, gst::StateChangeError> {
            let subtitles = open_subtitles(settings).map_err(|e| {
                self.post_error_message(e);
                gst::StateChangeError
            })?;
            Ok(Box::new(BusOutput {
                element: element.downgrade(),
                subtitles,
            }))
        };
        self.worker
            .change_state(element, transition, &self.settings, output, || {
                self.parent_change_state(transition)
            })
    }
}

impl BaseSinkImpl for WhisperSink {
    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let live = element::upstream_is_live(&self.obj().static_pad("sink").unwrap());
        self.worker
            .enqueue(Item::Caps {
                caps: caps.clone(),
                live,
            })
            .map(|_| ())
            .map_err(|e| gst::loggable_error!(CAT, "cannot take caps {caps}: {e:?}"))
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.worker.enqueue(Item::Buffer(buffer.clone()))
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Segment(s) => {
                let _ = self.worker.enqueue(Item::Segment(s.segment().clone()));
            }
            gst::EventView::Gap(g) => {
                let (pts, duration) = g.get();
                let _ = self.worker.enqueue(Item::Gap { pts, duration });
            }
            // Transcribe what is pending before the sink reports EOS. Paused meanwhile: the
            // base class needs its preroll lock back, so wait for PLAYING (then go on) in
            // the way it provides, or give up on a stop or flush.
            gst::EventView::Eos(_) => {
                let obj = self.obj();
                let stopped = std::cell::Cell::new(false);
                self.worker.with(|w| {
                    w.drain(|| {
                        stopped.set(obj.wait_preroll().is_err());
                        !stopped.get()
                    })
                });
                // Stopped or flushed while paused: the base class must not wait for preroll
                // on this EOS (it would, for ever).
                if stopped.get() {
                    return false;
                }
            }
            gst::EventView::FlushStart(_) => {
                self.worker.with(|w| w.flush_start());
            }
            gst::EventView::FlushStop(_) => {
                self.worker.with(|w| w.flush_stop());
            }
            _ => {}
        }
        self.parent_event(event)
    }

    /// Before pausing or flushing, the base class needs `render` to return: a render waiting
    /// for room in the queue queues its buffer and returns. Nothing is dropped: a pause loses
    /// no audio, and a flush or PAUSED -> READY drops the queue itself (see `event` and
    /// `change_state`).
    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.worker.with(|w| w.unlock());
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.worker.with(|w| w.unlock_stop());
        Ok(())
    }
}

/// The cues of a final shown from `start` to `end`: JSON Lines keeps one record per final,
/// with its fields; SRT and WebVTT get cues a viewer can read.
fn subtitle_cues(
    transcript: &Transcript,
    format: SubtitleFormat,
    start: Duration,
    end: Duration,
) -> Vec<(Duration, Duration, String)> {
    let laid = match format {
        SubtitleFormat::JsonLines => Vec::new(),
        _ => subtitles::lay_out(&timed_words(transcript, start), end, CueLimits::default()),
    };
    match laid.is_empty() {
        true => vec![(start, end, transcript.text.clone())],
        false => laid
            .into_iter()
            .map(|c| (c.start, c.end, c.lines.join("\n")))
            .collect(),
    }
}

/// `transcript`'s words on the timeline where it starts at `start`: its word timings where it
/// has them (`word-timestamps`), else each segment's words spread over the segment.
fn timed_words(transcript: &Transcript, start: Duration) -> Vec<TimedWord> {
    let at = |t: Duration| start + t.saturating_sub(transcript.start);
    if !transcript.words.is_empty() {
        return transcript
            .words
            .iter()
            .map(|w| TimedWord {
                text: w.text.clone(),
                start: at(w.start),
                end: at(w.end),
            })
            .collect();
    }
    transcript
        .pieces
        .iter()
        .flat_map(|p| subtitles::spread_words(&p.text, at(p.start), at(p.end)))
        .collect()
}
