//! One element's stream, run by its worker: caps, segment, the transcriber, and the mapping
//! from the transcriber's sample clock to buffer timestamps (resynchronised on gaps and
//! discontinuities).

use super::convert::{ConvertError, Converter};
use crate::clock::{duration_to_samples, samples_to_duration};
use crate::transcriber::{
    DecodeOptions, PartialDecodes, Rejected, TranscribeError, Transcriber, Transcript,
};
use gst::ClockTime;
use std::time::Duration;

/// What can go wrong with a stream's input or its transcription.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Transcribe(#[from] TranscribeError),
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("audio arrived before caps")]
    NoCaps,
    #[error("cannot map a buffer of {0} bytes")]
    Unmappable(usize),
    #[error("need a TIME segment, got {0:?}")]
    SegmentFormat(gst::Format),
}

impl StreamError {
    /// A flush or a stop cancelled the decode: not an error of the stream.
    pub fn is_aborted(&self) -> bool {
        matches!(self, StreamError::Transcribe(TranscribeError::Aborted))
    }
}

/// A timestamp jump larger than this is a discontinuity, not jitter.
const DISCONT_TOLERANCE: ClockTime = ClockTime::from_mseconds(40);
/// Up to this, a jump on a buffer not marked DISCONT is clock drift: followed, not cut at.
const MAX_DRIFT: ClockTime = ClockTime::from_mseconds(250);
/// A GAP event up to this long is silence within the utterance, not its end.
const SHORT_GAP: ClockTime = ClockTime::from_mseconds(300);
/// A forward jump or GAP longer than this starts a new timeline at its end, as a jump back
/// does, instead of advancing the transcriber's sample clock over it: that clock turns
/// samples into nanoseconds in 64 bits, which overflows past 2^64 ns / 16 000 (13.3 days).
const MAX_SKIP: ClockTime = ClockTime::from_seconds(3600);

/// A transcript placed on the input's timeline.
#[derive(Debug, Clone)]
pub struct TimedTranscript {
    pub transcript: Transcript,
    pub pts: ClockTime,
    pub duration: ClockTime,
    pub running_time: Option<ClockTime>,
    pub stream_time: Option<ClockTime>,
    /// Audio still queued for the stream when this result was posted: how far it is behind.
    pub lag: ClockTime,
    pub model: String,
    pub device: String,
    /// The timestamp of the transcriber's sample 0.
    origin: ClockTime,
}

impl TimedTranscript {
    /// A time the transcriber reports (from its sample 0) on the input's timeline.
    pub fn pts_of(&self, offset: Duration) -> ClockTime {
        self.origin + super::clock_time(offset)
    }
}

fn samples_to_time(samples: u64) -> ClockTime {
    super::clock_time(samples_to_duration(samples))
}

fn time_to_samples(t: ClockTime) -> u64 {
    duration_to_samples(Duration::from_nanos(t.nseconds()))
}

/// A stretch the voice detector rejected, on the input's timeline.
pub struct TimedRejection {
    pub pts: ClockTime,
    pub end: ClockTime,
    pub rejected: Rejected,
}

pub struct Stream {
    transcriber: Transcriber,
    /// Rejected stretches placed on the timeline, not yet logged.
    rejections: Vec<TimedRejection>,
    /// From the negotiated audio to 16 kHz mono f32.
    converter: Option<Converter>,
    segment: gst::FormattedSegment<ClockTime>,
    /// Timestamp of the transcriber's sample 0; set by the first buffer after a (re)start.
    origin: Option<ClockTime>,
    /// Converted audio not yet given to the transcriber (a renegotiation's resampler tail).
    pending_tail: Vec<f32>,
    model: String,
    device: String,
}

impl Stream {
    pub fn new(transcriber: Transcriber) -> Self {
        let key = transcriber.model().key();
        Stream {
            model: key.path.to_string_lossy().into_owned(),
            device: key.device.to_string(),
            transcriber,
            rejections: Vec::new(),
            converter: None,
            segment: gst::FormattedSegment::new(),
            origin: None,
            pending_tail: Vec::new(),
        }
    }

    #[cfg(feature = "fault-injection")]
    pub fn transcriber_mut(&mut self) -> &mut Transcriber {
        &mut self.transcriber
    }

    pub fn set_caps(&mut self, caps: &gst::CapsRef, live: bool) -> Result<(), ConvertError> {
        let info = super::convert::info_from_caps(caps)?;
        if let Some(converter) = &mut self.converter {
            // Renegotiated mid-stream: what the old converter holds back belongs before.
            converter.drain(&mut self.pending_tail)?;
        }
        self.converter = Some(Converter::new(&info)?);
        self.transcriber.set_live(live);
        Ok(())
    }

    /// A new segment: a changed one is a new timeline, so what the old one still holds is
    /// transcribed first (returned), placed on the old one, and the next buffer's timestamp
    /// starts the new one.
    pub fn set_segment(
        &mut self,
        segment: &gst::Segment,
    ) -> Result<Vec<TimedTranscript>, StreamError> {
        let seg = segment
            .downcast_ref::<ClockTime>()
            .ok_or(StreamError::SegmentFormat(segment.format()))?;
        if *seg == self.segment {
            return Ok(Vec::new());
        }
        let finals = self.drain()?;
        self.segment = seg.clone();
        // The stream's context (`carry-context`) stays: only the timeline is new.
        self.transcriber.restart_timeline();
        self.forget_input();
        Ok(finals)
    }

    /// The input time no text still to come starts before: what the output may declare
    /// passed. (Live too: text keeps the time it was said at. Downstream waiting for text,
    /// like textoverlay, waits out the utterance in progress; `latency` counts from an
    /// utterance's end.)
    pub fn settled_pts(&self) -> Option<ClockTime> {
        Some(self.origin? + samples_to_time(self.transcriber.settled()))
    }

    fn expected_pts(&self) -> Option<ClockTime> {
        self.origin
            .map(|o| o + samples_to_time(self.transcriber.position()))
    }

    /// Lines the transcriber's clock up with `pts`: an utterance cut by a jump ends (its final
    /// is returned), and a gap advances the clock so later timestamps stay right.
    fn resync(
        &mut self,
        pts: ClockTime,
        discont: bool,
    ) -> Result<Vec<TimedTranscript>, StreamError> {
        let (Some(expected), Some(origin)) = (self.expected_pts(), self.origin) else {
            self.origin = Some(pts);
            return Ok(Vec::new());
        };
        let drift = pts.absdiff(expected);
        if drift <= DISCONT_TOLERANCE {
            return Ok(Vec::new());
        }
        if !discont && drift <= MAX_DRIFT {
            // Timestamps drifting against the sample count (a slaved clock, RTP skew): follow
            // them without cutting the utterance.
            self.origin = Some(if pts > expected {
                origin + drift
            } else {
                origin.saturating_sub(drift)
            });
            return Ok(Vec::new());
        }
        // Placed on the timeline they were heard in, before it moves.
        let finals = self.transcriber.finish()?;
        let finals = self.place(finals);
        if pts > expected && pts - expected <= MAX_SKIP {
            self.transcriber.skip(time_to_samples(pts - expected));
        } else {
            // Time went back (a new file after concat, a loop), or far ahead (a source
            // switching to wall-clock time): a new timeline from here.
            self.transcriber.restart_timeline();
            self.origin = Some(pts);
        }
        Ok(finals)
    }

    /// Converts one audio buffer to 16 kHz mono and transcribes what completes; a partial
    /// decode may run only when `caught_up` (live input with no backlog behind it).
    pub fn transcribe(
        &mut self,
        buffer: &gst::BufferRef,
        caught_up: bool,
    ) -> Result<Vec<TimedTranscript>, StreamError> {
        let converter = self.converter.as_mut().ok_or(StreamError::NoCaps)?;
        let map = buffer
            .map_readable()
            .map_err(|_| StreamError::Unmappable(buffer.size()))?;
        let mut samples = std::mem::take(&mut self.pending_tail);
        converter.convert(&map, &mut samples)?;
        let pts = buffer.pts().or_else(|| {
            // Untimestamped audio continues the timeline (or starts at the segment start).
            self.expected_pts()
                .or(Some(self.segment.start().unwrap_or(ClockTime::ZERO)))
        });
        let mut out = match pts {
            Some(pts) => self.resync(pts, buffer.flags().contains(gst::BufferFlags::DISCONT))?,
            None => Vec::new(),
        };
        let partials = match caught_up {
            true => PartialDecodes::Allowed,
            false => PartialDecodes::Shed,
        };
        let transcripts = self.transcriber.push(&samples, partials)?;
        out.extend(self.place(transcripts));
        Ok(out)
    }

    /// No audio from `pts` for `duration`: the utterance in progress ends, the clock moves on.
    pub fn gap(
        &mut self,
        pts: ClockTime,
        duration: Option<ClockTime>,
    ) -> Result<Vec<TimedTranscript>, StreamError> {
        let mut out = self.resync(pts, true)?;
        match duration {
            // A short gap (a lost packet) is silence inside the utterance.
            Some(d) if d <= SHORT_GAP => {
                let silence = vec![0.0; time_to_samples(d) as usize];
                let transcripts = self.transcriber.push(&silence, PartialDecodes::Shed)?;
                out.extend(self.place(transcripts));
            }
            _ => {
                let finals = self.transcriber.finish()?;
                out.extend(self.place(finals));
                match duration {
                    Some(d) if d <= MAX_SKIP => self.transcriber.skip(time_to_samples(d)),
                    Some(d) => {
                        self.transcriber.restart_timeline();
                        self.origin = Some(pts.saturating_add(d));
                    }
                    None => {}
                }
            }
        }
        Ok(out)
    }

    /// Transcribes what is pending (end of stream), with what the resampler held back.
    pub fn drain(&mut self) -> Result<Vec<TimedTranscript>, StreamError> {
        let mut tail = std::mem::take(&mut self.pending_tail);
        if let Some(converter) = &mut self.converter {
            converter.drain(&mut tail)?;
        }
        let mut out = self.transcriber.push(&tail, PartialDecodes::Shed)?;
        out.extend(self.transcriber.finish()?);
        Ok(self.place(out))
    }

    /// The finals still decoding side by side (a file's), once done.
    pub fn lane_finals(&mut self) -> Result<Vec<TimedTranscript>, StreamError> {
        let finals = self.transcriber.wait_for_lanes()?;
        Ok(self.place(finals))
    }

    pub fn is_live(&self) -> bool {
        self.transcriber.is_live()
    }

    pub fn model_and_device(&self) -> (&str, &str) {
        (&self.model, &self.device)
    }

    /// Partial decodes that were due and did not run so far.
    pub fn partials_shed(&self) -> u64 {
        self.transcriber.partials_shed()
    }

    /// Partial decodes stopped for running past half a final's time so far.
    pub fn partials_given_way(&self) -> u64 {
        self.transcriber.partials_given_way()
    }

    /// Live decodes the scheduler served after their deadline so far.
    pub fn late_decodes(&self) -> u64 {
        self.transcriber.late_decodes()
    }

    pub fn set_decode_options(&mut self, options: &DecodeOptions) -> Result<(), TranscribeError> {
        self.transcriber.set_decode_options(options)
    }

    /// Drops pending audio and the stream's context (a flush); the next buffer starts a new
    /// timeline.
    pub fn forget_stream(&mut self) {
        self.transcriber.forget_stream();
        self.forget_input();
    }

    /// Forgets the audio not yet transcribed (the resampler's history, its tail) and where
    /// the timeline was: the next buffer's timestamp starts it again.
    fn forget_input(&mut self) {
        if let Some(converter) = &mut self.converter {
            converter.reset();
        }
        self.pending_tail.clear();
        self.origin = None;
    }

    /// Audio the voice detector rejected so far in this stream.
    pub fn rejected_audio(&self) -> Duration {
        self.transcriber.rejected_audio()
    }

    /// The stretches the voice detector rejected since the last call.
    pub fn take_rejections(&mut self) -> Vec<TimedRejection> {
        std::mem::take(&mut self.rejections)
    }

    /// Puts the transcriber's results (and its rejections) on the input's timeline; called
    /// after each transcriber call, before the timeline may move.
    fn place(&mut self, transcripts: Vec<Transcript>) -> Vec<TimedTranscript> {
        let origin = self.origin.unwrap_or(ClockTime::ZERO);
        let rejected = self.transcriber.take_rejected().into_iter();
        self.rejections
            .extend(rejected.map(|rejected| TimedRejection {
                pts: origin + super::clock_time(rejected.start),
                end: origin + super::clock_time(rejected.end),
                rejected,
            }));
        transcripts
            .into_iter()
            .map(|transcript| {
                let pts = origin + super::clock_time(transcript.start);
                let duration = super::clock_time(transcript.end.saturating_sub(transcript.start));
                TimedTranscript {
                    running_time: self.segment.to_running_time(pts),
                    stream_time: self.segment.to_stream_time(pts),
                    lag: ClockTime::ZERO,
                    transcript,
                    pts,
                    duration,
                    model: self.model.clone(),
                    device: self.device.clone(),
                    origin,
                }
            })
            .collect()
    }
}
