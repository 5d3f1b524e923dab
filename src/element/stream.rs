//! One element's streaming state: caps, segment, the stream's transcriber, and the mapping
//! from the transcriber's sample clock to buffer timestamps.

use super::session::{NotReady, Session};
use crate::transcriber::{TranscribeError, Transcriber, Transcript};
use gst::ClockTime;
use std::time::Duration;

/// A transcript placed on the input's timeline.
#[derive(Debug, Clone)]
pub struct TimedTranscript {
    pub transcript: Transcript,
    pub pts: ClockTime,
    pub duration: ClockTime,
    pub running_time: Option<ClockTime>,
    pub stream_time: Option<ClockTime>,
    pub model: String,
    pub device: String,
    /// The timestamp of the transcriber's sample 0.
    origin: ClockTime,
}

impl TimedTranscript {
    /// A time the transcriber reports (from its sample 0) on the input's timeline.
    pub fn pts_of(&self, offset: Duration) -> ClockTime {
        self.origin + ClockTime::from_nseconds(offset.as_nanos() as u64)
    }
}

#[derive(Default)]
pub struct Stream {
    format: Option<gst_audio::AudioFormat>,
    segment: gst::FormattedSegment<ClockTime>,
    /// Timestamp of the transcriber's sample 0; set by the first buffer after a (re)start.
    origin: Option<ClockTime>,
    transcriber: Option<Transcriber>,
}

impl Stream {
    pub fn set_caps(&mut self, caps: &gst::CapsRef) -> Result<(), String> {
        let info = gst_audio::AudioInfo::from_caps(caps)
            .map_err(|_| format!("cannot read audio caps {caps}"))?;
        if info.rate() != crate::transcriber::SAMPLE_RATE || info.channels() != 1 {
            return Err(format!(
                "need 16000 Hz mono audio, got {} Hz with {} channels (add audioconvert ! audioresample)",
                info.rate(),
                info.channels()
            ));
        }
        match info.format() {
            gst_audio::AudioFormat::S16le | gst_audio::AudioFormat::F32le => {
                self.format = Some(info.format());
                Ok(())
            }
            f => Err(format!("unsupported sample format {f:?}")),
        }
    }

    pub fn set_segment(&mut self, segment: &gst::Segment) -> Result<(), String> {
        let seg = segment
            .downcast_ref::<ClockTime>()
            .ok_or_else(|| format!("need a TIME segment, got {:?}", segment.format()))?;
        self.segment = seg.clone();
        Ok(())
    }

    /// Gets the transcriber from the session on first use, waiting for the model if needed.
    pub fn ensure_transcriber(&mut self, session: &Session) -> Result<(), gst::FlowError> {
        if self.transcriber.is_none() {
            match session.take_transcriber() {
                Ok(t) => self.transcriber = Some(t),
                Err(NotReady::Interrupted) => return Err(gst::FlowError::Flushing),
                Err(NotReady::Failed) => return Err(gst::FlowError::Error),
            }
        }
        Ok(())
    }

    /// Decodes one audio buffer (mono, 16 kHz) and transcribes what completes.
    pub fn push(&mut self, buffer: &gst::BufferRef) -> Result<Vec<TimedTranscript>, String> {
        let format = self.format.ok_or("audio arrived before caps")?;
        let map = buffer.map_readable().map_err(|_| "cannot map buffer")?;
        let samples: Vec<f32> = match format {
            gst_audio::AudioFormat::S16le => map
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
                .collect(),
            _ => map
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        };
        if self.origin.is_none() {
            let segment_start = self.segment.start().unwrap_or(ClockTime::ZERO);
            self.origin = Some(buffer.pts().unwrap_or(segment_start));
        }
        let t = self.transcriber.as_mut().ok_or("no transcriber")?;
        let out = t.push(&samples).map_err(|e| e.to_string())?;
        Ok(self.place(out))
    }

    /// Transcribes what is pending (end of stream).
    pub fn drain(&mut self) -> Result<Vec<TimedTranscript>, TranscribeError> {
        let Some(t) = self.transcriber.as_mut() else {
            return Ok(Vec::new());
        };
        let out = t.finish()?;
        Ok(self.place(out))
    }

    /// Drops pending audio; the next buffer starts a new timeline.
    pub fn flush(&mut self) {
        if let Some(t) = self.transcriber.as_mut() {
            t.reset();
        }
        self.origin = None;
    }

    fn place(&self, transcripts: Vec<Transcript>) -> Vec<TimedTranscript> {
        let origin = self.origin.unwrap_or(ClockTime::ZERO);
        let (model, device) = self
            .transcriber
            .as_ref()
            .map(|t| {
                let key = t.model().key();
                (
                    key.path.to_string_lossy().into_owned(),
                    key.device.to_string(),
                )
            })
            .unwrap_or_default();
        transcripts
            .into_iter()
            .map(|transcript| {
                let pts = origin + ClockTime::from_nseconds(transcript.start.as_nanos() as u64);
                let duration = ClockTime::from_nseconds(
                    transcript.end.saturating_sub(transcript.start).as_nanos() as u64,
                );
                TimedTranscript {
                    running_time: self.segment.to_running_time(pts),
                    stream_time: self.segment.to_stream_time(pts),
                    transcript,
                    pts,
                    duration,
                    model: model.clone(),
                    device: device.clone(),
                    origin,
                }
            })
            .collect()
    }
}
