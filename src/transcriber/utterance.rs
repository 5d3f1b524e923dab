//! The utterance in progress and what its partial decodes agreed on: the state a stream keeps
//! between voice-detector frames, started afresh for each utterance.

use super::checks::comparable;
use super::decoder::FALLBACK_LOGPROB;
use super::segment::Decoded;
use super::WINDOW_SAMPLES;
use std::time::Duration;

/// A run of pause frames inside an utterance.
#[derive(Debug, Clone, Copy)]
pub(super) struct PauseRun {
    /// Samples into the utterance.
    pub start: usize,
    pub len: usize,
    /// Speech frames before it.
    pub speech_frames: usize,
}

/// The audio of the utterance being spoken, and where its speech and pauses are.
pub(super) struct Utterance {
    pub audio: Vec<f32>,
    /// Stream position of `audio[0]`.
    pub start: u64,
    /// Frames the detector called speech.
    pub speech_frames: usize,
    /// Where the detector last heard speech (samples into the utterance).
    pub speech_end: Option<usize>,
    /// Pause frames at the end so far.
    pub pause_frames: usize,
    /// Where the utterance is cut if it reaches its length limit: its longest pause in the
    /// second half.
    pub best_pause: Option<PauseRun>,
    /// Audio heard just before it, outside any utterance: a short utterance is judged
    /// together with it (`Transcriber::worth_decoding`).
    pub before: Vec<f32>,
    /// Live: the detector heard the utterance end, but at a phrase left open or in loud
    /// noise; it goes on until the pause is this long (`Transcriber::pause_hold`).
    pub held: Option<Duration>,
    /// Samples of silence its decodes start with: the padding a live stream had not yet
    /// heard when its speech began (whisper.cpp reads speech that starts its audio worse).
    pub lead: usize,
}

impl Utterance {
    /// None yet; the next begins at stream position `start`.
    pub fn new(start: u64) -> Self {
        Utterance {
            audio: Vec::with_capacity(WINDOW_SAMPLES),
            start,
            speech_frames: 0,
            speech_end: None,
            pause_frames: 0,
            best_pause: None,
            before: Vec::new(),
            held: None,
            lead: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.audio.is_empty()
    }

    pub fn len(&self) -> usize {
        self.audio.len()
    }

    /// An utterance starting with the padding kept before it and its first speech frame,
    /// which starts at stream position `frame_start`; `before` is the audio before the
    /// padding. Where the stream began less than `lead_to` samples before the speech, its
    /// decodes make up the rest with silence.
    pub fn begin(
        before: Vec<f32>,
        (padding, lead_to): (&[f32], usize),
        frame_start: u64,
        frame: &[f32],
    ) -> Self {
        let mut u = Utterance::new(0);
        u.before = before;
        u.audio.extend_from_slice(padding);
        u.start = frame_start - u.audio.len() as u64;
        if u.start == 0 {
            u.lead = lead_to.saturating_sub(padding.len());
        }
        u.add_speech(frame);
        u
    }

    pub fn add_speech(&mut self, frame: &[f32]) {
        self.audio.extend_from_slice(frame);
        self.speech_frames += 1;
        self.pause_frames = 0;
        self.speech_end = Some(self.audio.len());
    }

    /// A pause frame; the pause it extends becomes the cut point if it is in the second half
    /// of `limit` and the longest so far (ties go to the later: the longer first part).
    pub fn add_pause(&mut self, frame: &[f32], limit: usize) {
        self.audio.extend_from_slice(frame);
        self.pause_frames += 1;
        let len = self.pause_frames * frame.len();
        let run = PauseRun {
            start: self.audio.len() - len,
            len,
            speech_frames: self.speech_frames,
        };
        if run.start >= limit / 2 && self.best_pause.is_none_or(|b| len >= b.len) {
            self.best_pause = Some(run);
        }
    }

    /// Drops the pause the utterance ends in (its last `silence` samples) but `padding`.
    pub fn trim_pause(&mut self, silence: usize, padding: usize) {
        let keep = self.len().saturating_sub(silence.saturating_sub(padding));
        self.audio.truncate(keep.max(1));
    }

    /// Cuts the utterance in `pause` (which has audio after it), keeping `padding` of it on
    /// each side, at most half: this utterance ends there, and what follows is returned as the
    /// start of the next.
    pub fn split_at(&mut self, pause: PauseRun, padding: usize) -> Utterance {
        let keep = padding.min(pause.len / 2);
        let next_start = pause.start + pause.len - keep;
        let mut rest = Utterance::new(self.start + next_start as u64);
        rest.audio.extend_from_slice(&self.audio[next_start..]);
        rest.speech_frames = self.speech_frames.saturating_sub(pause.speech_frames);
        rest.speech_end = self.speech_end.map(|end| end.saturating_sub(next_start));
        rest.pause_frames = self.pause_frames;
        self.audio.truncate(pause.start + keep);
        self.speech_end = Some(pause.start);
        self.speech_frames = pause.speech_frames;
        self.best_pause = None;
        rest
    }

    /// Samples into the utterance before which a cut at the length `limit` cannot fall: the
    /// start of its best pause so far, or the middle of the limit.
    pub fn earliest_cut(&self, limit: usize) -> usize {
        self.best_pause.map_or(limit / 2, |p| p.start)
    }
}

/// Live mode: the partial decodes of the utterance in progress.
#[derive(Default)]
pub(super) struct Partials {
    /// Utterance length when the last partial decode ran.
    pub heard: usize,
    /// The words of the last partial.
    previous: Vec<String>,
    /// Leading words reported stable so far.
    stable: usize,
    /// The last partial's decode and how many utterance samples it heard: the final when it
    /// heard all the speech.
    last: Option<(usize, Decoded)>,
    /// `last` was decoded as a final is (with whisper.cpp's temperature fallback).
    last_as_final: bool,
    /// The utterance was judged not speech: no more partials.
    pub not_speech: bool,
}

impl Partials {
    /// Keeps a partial's decode of the first `heard` samples, for the final.
    pub fn keep(&mut self, heard: usize, decoded: Decoded) {
        self.last = Some((heard, decoded));
        self.last_as_final = false;
    }

    /// Keeps a final's decode of the first `heard` samples, made while a pause is held: the
    /// final if the speaker does not go on. It heard the speech so far: no partial is due
    /// until there is more, to take its place with a decode that would not serve.
    pub fn keep_final(&mut self, heard: usize, decoded: Decoded) {
        self.heard = self.heard.max(heard);
        self.last = Some((heard, decoded));
        self.last_as_final = true;
    }

    /// What whisper.cpp took for the last partial of this utterance (zero before the first).
    pub fn last_inference(&self) -> Duration {
        self.last
            .as_ref()
            .map_or(Duration::ZERO, |(_, d)| d.inference_time)
    }

    /// The last partial's decode, if it heard everything up to `speech_end`: the final need
    /// not decode again. Not one whisper.cpp would have retried at a higher temperature had
    /// it been a final's: partials are decoded without that fallback.
    pub fn into_covering(self, speech_end: Option<usize>) -> Option<Decoded> {
        match self.serves_as_final(speech_end) {
            true => self.last.map(|(_, decoded)| decoded),
            false => None,
        }
    }

    /// Whether `into_covering` would give the final.
    pub fn serves_as_final(&self, speech_end: Option<usize>) -> bool {
        self.last.as_ref().is_some_and(|(heard, decoded)| {
            covers(*heard, speech_end)
                && (self.last_as_final || decoded.avg_logprob() >= FALLBACK_LOGPROB)
        })
    }

    /// The text of the last partial, if it heard everything up to `speech_end`, and the
    /// probability of its ending (`Segment::end_p`).
    pub fn covering_text(&self, speech_end: Option<usize>) -> Option<(String, f32)> {
        let (heard, decoded) = self.last.as_ref()?;
        let end_p = decoded.segments.last()?.end_p();
        covers(*heard, speech_end).then(|| {
            let texts: Vec<&str> = decoded.segments.iter().map(|s| s.text.as_str()).collect();
            (texts.join(" "), end_p)
        })
    }

    /// The last partial no longer stands for the utterance (it was cut, or decoding changed).
    pub fn forget_last(&mut self) {
        self.last = None;
    }

    /// LocalAgreement-2: the leading words this partial and the previous one agree on are
    /// stable, but never past `before_cut` words (they may yet go to the next utterance) and
    /// never fewer than were reported stable already. Returns the stable text.
    pub fn agree(&mut self, text: &str, before_cut: usize) -> String {
        let words: Vec<String> = text.split_whitespace().map(String::from).collect();
        let agreed = words
            .iter()
            .zip(&self.previous)
            .take_while(|(a, b)| comparable(a) == comparable(b))
            .count();
        self.stable = self.stable.max(agreed.min(before_cut)).min(words.len());
        let stable = words[..self.stable].join(" ");
        self.previous = words;
        stable
    }
}

/// Whether a decode of the first `heard` samples heard all the speech, up to `speech_end`.
fn covers(heard: usize, speech_end: Option<usize>) -> bool {
    speech_end.is_some_and(|end| end <= heard)
}

#[cfg(test)]
mod tests {
    use super::super::language::Language;
    use super::super::segment::{Decoded, Segment};
    use super::{Partials, Utterance};
    use std::time::Duration;

    /// A partial of "Addy married." whose 4 tokens average `avg_logprob`.
    fn partial(avg_logprob: f32) -> Decoded {
        let segment = Segment {
            logprob_sum: 4.0 * avg_logprob,
            tokens: 4,
            last_ps: [0.9; 2],
            ..Segment::of_text("Addy married.", 0, 16_000)
        };
        Decoded {
            segments: vec![segment],
            language: Language::set("en"),
            detection: None,
            inference_time: Duration::ZERO,
            queue_time: Duration::ZERO,
            threads: 1,
            late: false,
        }
    }

    #[test]
    fn a_partial_whisper_cpp_would_have_retried_is_not_taken_as_the_final() {
        let covering = |avg_logprob: f32| {
            let mut partials = Partials::default();
            partials.keep(20_000, partial(avg_logprob));
            partials.into_covering(Some(18_000)).is_some()
        };
        assert!(covering(-0.4));
        assert!(
            !covering(-1.2),
            "under whisper.cpp's -1: decoded again with fallback"
        );
        let mut short = Partials::default();
        short.keep(10_000, partial(-0.4));
        assert!(
            short.into_covering(Some(18_000)).is_none(),
            "heard only part of the speech"
        );
    }

    /// A held pause's final, decoded as a final is: it serves whatever its log-probability,
    /// until a partial replaces it.
    #[test]
    fn a_final_decoded_while_a_pause_is_held_is_taken_as_the_final() {
        let mut partials = Partials::default();
        partials.keep(20_000, partial(-1.2));
        assert!(!partials.serves_as_final(Some(18_000)));
        partials.keep_final(20_000, partial(-1.2));
        assert!(partials.serves_as_final(Some(18_000)));
        assert_eq!(partials.heard, 20_000, "no partial due for what it heard");
        assert!(
            !partials.serves_as_final(Some(24_000)),
            "the speaker went on after it"
        );
        partials.keep(30_000, partial(-1.2));
        assert!(
            !partials.serves_as_final(Some(28_000)),
            "a partial decoded since is not a final's decode"
        );
        partials.keep_final(30_000, partial(-1.2));
        assert!(partials.into_covering(Some(28_000)).is_some());
    }

    #[test]
    fn speech_at_a_stream_s_start_is_decoded_after_the_padding_it_lacks_as_silence() {
        let frame = [0.1f32; 480];
        let lead_to = 4_800;
        let at_start = Utterance::begin(Vec::new(), (&[0.0; 1_440], lead_to), 1_440, &frame);
        assert_eq!((at_start.start, at_start.lead), (0, 3_360));
        let full = Utterance::begin(Vec::new(), (&[0.0; 4_800], lead_to), 4_800, &frame);
        assert_eq!(
            (full.start, full.lead),
            (0, 0),
            "the stream had all the padding"
        );
        let after_an_utterance =
            Utterance::begin(vec![0.2; 960], (&[0.0; 960], lead_to), 40_000, &frame);
        assert_eq!(
            after_an_utterance.lead, 0,
            "audio came before it: the padding is short because an utterance just ended"
        );
    }

    #[test]
    fn a_decode_after_silence_is_timed_from_the_audio_after_it() {
        let mut decoded = partial(-0.4);
        decoded.segments[0].words = vec![("Addy".into(), 3_000, 8_000, 0.9)];
        decoded.shift_back(4_000);
        let segment = &decoded.segments[0];
        assert_eq!((segment.start, segment.end), (0, 12_000));
        assert_eq!((segment.words[0].1, segment.words[0].2), (0, 4_000));
    }
}
