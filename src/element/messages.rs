//! The `whisperstt-transcript` message each result is posted as, and the event after a final.

use super::clock_time;
use super::stream::TimedTranscript;
use gst::prelude::*;

/// The structure name of transcript messages.
pub const TRANSCRIPT_MESSAGE: &str = "whisperstt-transcript";
/// The downstream custom event after each final's text, as GStreamer's other transcribers
/// send it.
pub const FINAL_TRANSCRIPT_EVENT: &str = "rstranscribe/final-transcript";

/// Builds the `whisperstt-transcript` message for one transcript.
pub fn transcript_message(element: &gst::Element, t: &TimedTranscript) -> gst::Message {
    let tr = &t.transcript;
    let words = gst::List::new(tr.words.iter().map(|w| {
        gst::Structure::builder("word")
            .field("text", w.text.as_str())
            .field("start", t.pts_of(w.start))
            .field("end", t.pts_of(w.end))
            .field("probability", w.probability as f64)
            .build()
            .to_send_value()
    }));
    let mut s = gst::Structure::builder(TRANSCRIPT_MESSAGE)
        .field("text", tr.text.as_str())
        .field("is-final", tr.is_final)
        .field("stable-text", tr.stable_text.as_str())
        .field("utterance-id", tr.utterance_id)
        .field("start", t.pts)
        .field("end", t.pts + t.duration)
        .field("duration", t.duration)
        .field("language", tr.language.as_str())
        .field("language-probability", tr.language_probability as f64)
        .field("avg-logprob", tr.avg_logprob as f64)
        .field("no-speech-prob", tr.no_speech_prob as f64)
        .field("words", words)
        .field("inference-time", clock_time(tr.inference_time))
        .field("queue-time", clock_time(tr.queue_time))
        .field("threads", tr.threads)
        .field("audio-duration", clock_time(tr.audio_duration))
        .field("rejected-audio", clock_time(tr.rejected_audio))
        .field("lag", t.lag)
        .field("model", t.model.as_str())
        .field("device", t.device.as_str())
        .field("element", element.name().as_str())
        .build();
    if let Some(rt) = t.running_time {
        s.set("running-time", rt);
    }
    if let Some(st) = t.stream_time {
        s.set("stream-time", st);
    }
    gst::message::Element::builder(s).src(element).build()
}

/// Logs the transcript in the element's category and posts its message; both elements do
/// this for every transcript.
pub fn post_transcript(element: &gst::Element, cat: gst::DebugCategory, t: &TimedTranscript) {
    let tr = &t.transcript;
    // Decode timings and scheduling, per result (a final reused from a partial repeats it).
    gst::debug!(
        cat,
        obj = element,
        "{} of utterance {} at {} .. {}: {:.2} s of audio decoded in {} ms on {} threads \
         after {} ms waiting for them, lag {} ms: {}",
        if tr.is_final { "final" } else { "partial" },
        tr.utterance_id,
        t.pts,
        t.pts + t.duration,
        tr.audio_duration.as_secs_f64(),
        tr.inference_time.as_millis(),
        tr.threads,
        tr.queue_time.as_millis(),
        t.lag.mseconds(),
        tr.text
    );
    let _ = element.post_message(transcript_message(element, t));
}
