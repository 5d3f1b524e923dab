//! The voice detector on the robustness corpus (tests/common/degrade.rs), with the real engine:
//! speech in noise reaches whisper.cpp as it would without the detector, noise alone costs
//! (almost) no inference and gives no text, and what is thrown away is counted and placed.
//! The speech is Debian pocketsphinx-testdata's LibriVox reader (67 words in 25 s), so these
//! run on a fresh machine; the benchmark (`scripts/bench.sh noise`) measures the same on the
//! shared corpus against faster-whisper.

mod common;

use common::degrade::{self, Condition, Noise};
use gstwhisperstt::transcriber::{StreamOptions, Transcriber};
use gstwhisperstt::vad::evidence::NotSpeech;
use std::time::Duration;

/// A recording and its transcript.
type Clip = (Vec<f32>, String);

/// The LibriVox reader's five sentences, and the other recordings (other speakers) to make
/// babble from.
fn speech() -> (Vec<Clip>, Vec<Vec<f32>>) {
    let (targets, others): (Vec<_>, Vec<_>) = common::pocketsphinx_clips()
        .into_iter()
        .partition(|(p, _)| p.to_string_lossy().contains("librivox"));
    let targets = targets
        .into_iter()
        .map(|(p, t)| (common::read_audio(&p), t))
        .collect();
    let voices = others
        .iter()
        .map(|(p, _)| without_pauses(&common::read_audio(p)))
        .collect();
    (targets, voices)
}

/// `voice` without its quiet 30 ms frames (more than 30 dB below its loudest): the digit
/// recordings pause between words, and a crowd does not.
fn without_pauses(voice: &[f32]) -> Vec<f32> {
    let power = |f: &[f32]| f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32;
    let loudest = voice.chunks(480).map(power).fold(0.0, f32::max);
    voice
        .chunks(480)
        .filter(|f| power(f) >= loudest * 1e-3)
        .flatten()
        .copied()
        .collect()
}

fn transcriber(vad: bool, live: bool) -> Transcriber {
    let mut options = StreamOptions {
        live,
        ..StreamOptions::default()
    };
    if !vad {
        options.vad = None;
    }
    common::transcriber_with(&common::model_path(), options)
}

/// The finals' text for `audio`.
fn finals(t: &mut Transcriber, audio: &[f32]) -> String {
    let out = common::feed(t, audio);
    let texts: Vec<String> = out
        .into_iter()
        .filter(|r| r.is_final)
        .map(|r| r.text)
        .collect();
    texts.join(" ")
}

/// Word errors over the five sentences in `condition` with and without the detector, and
/// the words; `live` decodes as a live stream does (partials, then finals).
fn errors_with_and_without_detector(condition: Condition, live: bool) -> ([usize; 2], usize) {
    let (targets, voices) = speech();
    let mut errors = [0usize; 2];
    let mut words = 0;
    for (i, (audio, reference)) in targets.iter().enumerate() {
        let degraded = condition.apply(audio, 100 + i as u64, &voices);
        for (slot, vad) in [true, false].into_iter().enumerate() {
            let text = finals(&mut transcriber(vad, live), &degraded);
            errors[slot] += common::word_errors(reference, &text).0;
        }
        words += common::normalize(reference).len();
    }
    (errors, words)
}

/// Speech in each noise at 10 and 5 dB SNR loses (almost) nothing to the detector. Before the
/// detector adapted to the noise floor and asked for a pitch rather than few zero crossings,
/// white noise at 5 dB lost nearly every word (WER 0.989 against 0.149 on the shared corpus).
#[test]
fn speech_in_noise_reaches_the_decoder() {
    let _beside = common::side_by_side();
    let mut report = Vec::new();
    let (mut lost, mut all_words) = (0i64, 0);
    for noise in [
        Noise::White,
        Noise::Brown,
        Noise::Machinery,
        Noise::Music,
        Noise::Babble,
    ] {
        for snr in [10.0, 5.0] {
            let condition = Condition::Noisy(noise, snr);
            let ([with, without], words) = errors_with_and_without_detector(condition, false);
            let wer = |e: usize| e as f64 / words as f64;
            report.push(format!("{}: {with} / {without}", condition.name()));
            lost += with as i64 - without as i64;
            all_words += words;
            // A word or two either way is whisper.cpp hearing a slightly different cut.
            assert!(
                wer(with) <= wer(without) + 0.05,
                "{}: WER {:.3} with the detector, {:.3} without; errors so far: {report:?}",
                condition.name(),
                wer(with),
                wer(without)
            );
        }
    }
    // Over all ten conditions, the detector costs at most two words in a hundred.
    assert!(lost as f64 <= 0.02 * all_words as f64, "{report:?}");
    eprintln!("word errors with / without the detector: {report:?}");
}

/// Each of `conditions` costs at most `share` of the words with the detector on, against
/// the same audio without it.
fn assert_detector_costs_at_most(conditions: &[Condition], live: bool, share: f64) {
    for condition in conditions {
        let ([with, without], words) = errors_with_and_without_detector(*condition, live);
        assert!(
            with as f64 <= without as f64 + share * words as f64,
            "{} (live: {live}): {with} word errors with the detector, {without} without, of {words}",
            condition.name()
        );
    }
}

/// Speech 20 dB quieter, or through a room (RT60 0.6 s), loses nothing to the detector: a
/// quiet voice is still far above a quiet floor, and a room's tail is not a new utterance.
#[test]
fn quiet_and_reverberant_speech_reaches_the_decoder() {
    let _beside = common::side_by_side();
    let conditions = [Condition::Distant, Condition::Reverberant(0.6)];
    assert_detector_costs_at_most(&conditions, false, 0.02);
}

/// Live, where utterances end at 400 ms pauses and partials run as the speech goes on, speech
/// in white noise and babble at 5 dB (the hardest of the file-mode test at that SNR) loses at
/// most 0.05 of its words to the detector, as in file mode. Before hysteresis and the graded
/// range, white noise lost 30 words of 71 here.
#[test]
fn live_speech_in_noise_reaches_the_decoder() {
    let _beside = common::side_by_side();
    let conditions = [Noise::White, Noise::Babble].map(|noise| Condition::Noisy(noise, 5.0));
    assert_detector_costs_at_most(&conditions, true, 0.05);
}

/// Live in white noise at 0 dB, where speech dips into the noise inside sentences, the dips
/// are not taken for pauses (the noisy-pause hold): on 12 LJ Speech clips (one sentence each)
/// live finals lose at most 0.05 of the words against the same audio without a detector (the
/// issue's target at 0 dB) and come in at most two finals more than the clips. Without the
/// hold: 24 finals, WER 0.655 against 0.495.
#[test]
fn shared_live_speech_in_loud_noise_is_not_cut_at_its_dips() {
    let clips: Vec<(Vec<f32>, String)> = common::corpus_clips(&common::shared_corpus())
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("ljspeech_LJ"))
        .take(12)
        .map(|(p, t)| (common::read_audio(&p), t))
        .collect();
    let _beside = common::side_by_side();
    let condition = Condition::Noisy(Noise::White, 0.0);
    let (mut errors, mut finals, mut words) = ([0usize; 2], 0, 0);
    for (i, (audio, reference)) in clips.iter().enumerate() {
        let degraded = condition.apply(audio, 1000 + i as u64, &[]);
        for (slot, vad) in [true, false].into_iter().enumerate() {
            let out = common::feed(&mut transcriber(vad, vad), &degraded);
            let texts: Vec<String> = out
                .into_iter()
                .filter(|r| r.is_final)
                .map(|r| r.text)
                .collect();
            finals += usize::from(vad) * texts.len();
            errors[slot] += common::word_errors(reference, &texts.join(" ")).0;
        }
        words += common::normalize(reference).len();
    }
    let [live, without] = errors.map(|e| e as f64 / words as f64);
    eprintln!("white 0 dB: live WER {live:.3} in {finals} finals, without a detector {without:.3}");
    assert!(
        live <= without + 0.05,
        "live {live:.3}, without a detector {without:.3}"
    );
    assert!(
        finals <= clips.len() + 2,
        "{finals} finals for {} clips",
        clips.len()
    );
}

/// Noise of every kind alone, in file and live mode: no text, whisper.cpp given at most 5 % of
/// it, and what loud noise the detector threw away counted and given a reason.
#[test]
fn noise_alone_gives_no_text_and_little_inference() {
    let _beside = common::side_by_side();
    let (_, voices) = speech();
    for kind in Noise::ALL {
        let audio = degrade::pure_noise(kind, 30, 7, &voices);
        for live in [false, true] {
            let mut t = transcriber(true, live);
            let text = finals(&mut t, &audio);
            let what = format!("{} alone (live: {live})", kind.name());
            assert_eq!(text, "", "{what}");
            // Measured 0.0 % of every noise in both modes. Live was 5.1 to 6.7 % before
            // hysteresis, the 15 % quiet share and the graded range (a short stretch of music
            // or babble passed); before the utterance checks, 99.6 % of music.
            let decoded = t.decoded_audio().as_secs_f64() / 30.0;
            assert!(decoded <= 0.05, "{what}: {:.1} % decoded", decoded * 100.0);
            let rejected = t.take_rejected();
            let counted: Duration = rejected.iter().map(|r| r.audio).sum();
            assert_eq!(counted, t.rejected_audio(), "{what}: {rejected:?}");
            if matches!(kind, Noise::Machinery | Noise::Music | Noise::Babble) {
                // Loud noise is rejected visibly, all along; white and brown noise are quiet
                // against their own floor.
                let span: Duration = rejected.iter().map(|r| r.end - r.start).sum();
                assert!(span >= Duration::from_secs(20), "{what}: {rejected:?}");
                assert!(
                    t.rejected_audio() >= Duration::from_secs(5),
                    "{what}: {rejected:?}"
                );
            }
        }
    }
}

/// Each reason the detector gives is the one for the noise: machinery's knocks have no voice,
/// music holds its notes, babble is as flat as a crowd.
#[test]
fn rejections_name_why_and_where() {
    let _beside = common::side_by_side();
    let (_, voices) = speech();
    let expected = [
        (Noise::Machinery, NotSpeech::Unvoiced),
        (Noise::Music, NotSpeech::HeldTone),
        (Noise::Babble, NotSpeech::Flat),
    ];
    for (kind, reason) in expected {
        let mut audio = vec![0.0; 2 * 16_000];
        audio.extend(degrade::pure_noise(kind, 20, 3, &voices));
        let mut t = transcriber(true, false);
        assert_eq!(finals(&mut t, &audio), "");
        let rejected = t.take_rejected();
        let main = rejected
            .iter()
            .max_by_key(|r| r.audio)
            .unwrap_or_else(|| panic!("{}: nothing rejected", kind.name()));
        assert_eq!(main.reason, reason, "{}: {rejected:?}", kind.name());
        // Within the noise (and the 300 ms of padding before it) and the stream.
        assert!(main.start >= Duration::from_millis(1_600), "{main:?}");
        assert!(main.end <= Duration::from_secs(22), "{main:?}");
        assert!(main.audio >= Duration::from_secs(5), "{main:?}");
    }
}

/// Through an element: what the detector threw away is in each transcript message
/// (`rejected-audio`), in the element's `rejected-audio` property, and logged at DEBUG with
/// its time range and reason.
#[test]
fn an_element_reports_what_its_detector_rejected() {
    use common::pipeline;
    use gst::prelude::*;
    use std::sync::{Arc, Mutex};
    let _beside = common::side_by_side();
    pipeline::init();
    let logged: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = logged.clone();
    gst::log::set_threshold_for_name("whisperstt-sink", gst::DebugLevel::Debug);
    gst::log::add_log_function(
        move |cat, _level, _file, _function, _line, _object, message| {
            let text = message.get().map(|m| m.to_string()).unwrap_or_default();
            if cat.name() == "whisperstt-sink" && text.contains("voice detector rejected") {
                sink.lock().unwrap().push(text);
            }
        },
    );
    let (targets, voices) = speech();
    let (sentence, reference) = &targets[0];
    // 10 s of machinery, then the sentence, then a second of silence.
    let mut audio = degrade::pure_noise(Noise::Machinery, 10, 5, &voices);
    audio.extend(sentence);
    audio.extend(vec![0.0; 16_000]);
    let p = pipeline::launch(
        "appsrc name=src format=time max-bytes=0 \
         caps=audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved ! \
         whispersink name=stt",
    );
    let src: gst_app::AppSrc = p.by_name("src").unwrap().downcast().unwrap();
    for (i, chunk) in audio.chunks(1600).enumerate() {
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut b = gst::Buffer::from_slice(bytes);
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(100 * i as u64));
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    let run = pipeline::play(&p, Duration::from_secs(120));
    let property = p.by_name("stt").unwrap().property::<u64>("rejected-audio");
    p.set_state(gst::State::Null).unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert!(
        common::wer(reference, &run.text()) <= 0.15,
        "{}",
        run.text()
    );
    let last = run.transcripts.last().unwrap();
    let in_message = pipeline::clock(last, "rejected-audio");
    assert!(
        in_message >= gst::ClockTime::from_seconds(3),
        "rejected-audio {in_message} in {last:?}"
    );
    assert_eq!(
        property,
        in_message.mseconds(),
        "the property and the message agree"
    );
    let logged = logged.lock().unwrap();
    assert!(!logged.is_empty(), "no rejection logged");
    // Each line places its stretch within the 10 s of machinery.
    for line in logged.iter() {
        assert!(line.contains("no voiced sound"), "{line}");
        assert!(line.contains(" at 0:00:0"), "{line}");
    }
}
