//! The streaming transcriber (voice detection, partials, finals) on the real engine, without
//! GStreamer.

mod common;

use gstwhisperstt::transcriber::{DecodeOptions, PartialDecodes, Transcript};
use std::time::Duration;

use common::{feed, transcriber};

/// One test at a time: a live transcriber sheds partial passes while another stream
/// decodes, and the live tests count on every partial.
use common::one_at_a_time as alone;

#[test]
fn silence_and_noise_cost_no_inference() {
    let _beside = common::side_by_side();
    let hum: Vec<f32> = (0..60 * 16_000)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.05 * (2.0 * std::f32::consts::PI * 50.0 * t).sin()
                + 0.02 * (2.0 * std::f32::consts::PI * 150.0 * t).sin()
        })
        .collect();
    let inputs = [
        ("silence", vec![0.0f32; 60 * 16_000]),
        ("white noise", common::noise(60, false)),
        ("brown noise", common::noise(60, true)),
        ("mains hum", hum),
    ];
    for live in [false, true] {
        for (name, audio) in &inputs {
            let mut t = transcriber(live);
            let out = feed(&mut t, audio);
            assert!(out.is_empty(), "{name} (live: {live}) gave {out:?}");
            assert_eq!(t.inference_calls(), 0, "{name} (live: {live})");
        }
    }
}

/// A stream that hears speech within a second of starting (a caller who speaks as soon as
/// connected) gets its first partial after a second of speech, as later utterances do, not
/// after the 2 s the detector's second look otherwise waits for.
#[test]
fn a_new_stream_s_first_partial_comes_after_a_second_of_speech() {
    let _alone = alone();
    let (clip, reference) = common::pocketsphinx_clip("-0870.wav");
    let mut audio = vec![0.0f32; 8_000];
    audio.extend(common::read_audio(&clip));
    let mut t = transcriber(true);
    let out = feed(&mut t, &audio);
    let first = out.iter().find(|r| !r.is_final).expect("no partial");
    assert!(
        first.audio_duration <= Duration::from_millis(1300),
        "first partial after {:?} of audio: {first:?}",
        first.audio_duration
    );
    let finals: Vec<&str> = out
        .iter()
        .filter(|r| r.is_final)
        .map(|r| r.text.as_str())
        .collect();
    let wer = common::wer(&reference, &finals.join(" "));
    assert!(wer <= 0.1, "WER {wer:.3}: {finals:?}");
}

#[test]
fn speech_after_noise_is_still_heard() {
    let _beside = common::side_by_side();
    let (path, reference) = common::reference_speech().into_iter().next().unwrap();
    let mut audio = common::noise(5, false)
        .iter()
        .map(|s| s * 0.2)
        .collect::<Vec<f32>>();
    audio.extend(common::read_audio(&path));
    let mut t = transcriber(false);
    let text: Vec<String> = feed(&mut t, &audio).into_iter().map(|s| s.text).collect();
    let wer = common::wer(&reference, &text.join(" "));
    assert!(wer <= 0.25, "WER {wer:.3}: {}", text.join(" "));
}

/// Speech without a pause long enough to end an utterance is cut at its length limit in a
/// pause, not in a word: every word is heard once, each cut leaves quiet audio between the
/// final before it and the final after it, and live, no word called stable moves to the
/// next utterance.
#[test]
fn an_utterance_at_its_limit_is_cut_in_a_pause() {
    let _alone = alone();
    // The LibriVox recordings (24 s) back to back, cut at 9 s: few of their pauses are long
    // enough to end an utterance (0.4 s live, 2 s in files).
    let clips: Vec<_> = common::pocketsphinx_clips()
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("librivox"))
        .collect();
    assert_eq!(clips.len(), 5);
    let audio: Vec<f32> = clips
        .iter()
        .flat_map(|(path, _)| common::read_audio(path))
        .collect();
    let reference: Vec<&str> = clips.iter().map(|(_, t)| t.as_str()).collect();
    let at = |d: Duration| (d.as_secs_f64() * 16_000.0) as usize;
    let rms = |s: &[f32]| (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt();
    let speech_rms = rms(&audio);
    let run = |live: bool, max_utterance: Duration| {
        let options = gstwhisperstt::transcriber::StreamOptions {
            live,
            max_utterance,
            ..Default::default()
        };
        let mut t = common::transcriber_with(&common::model_path(), options);
        feed(&mut t, &audio)
    };
    for live in [false, true] {
        let out = run(live, Duration::from_secs(9));
        let finals: Vec<&Transcript> = out.iter().filter(|s| s.is_final).collect();
        let text: Vec<&str> = finals.iter().map(|f| f.text.as_str()).collect();
        let wer = common::wer(&reference.join(" "), &text.join(" "));
        assert!(wer <= 0.1, "live {live}: WER {wer:.3}: {text:?}");
        // Cuts happened: more finals than the pauses alone give.
        let uncut = run(live, Duration::from_secs(30));
        let uncut_finals = uncut.iter().filter(|s| s.is_final).count();
        assert!(
            finals.len() > uncut_finals,
            "live {live}: {} finals, {uncut_finals} without the limit: {text:?}",
            finals.len()
        );
        for pair in finals.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            assert!(
                after.start > before.end,
                "live {live}: no pause between {:?} (to {:?}) and {:?} (from {:?})",
                before.text,
                before.end,
                after.text,
                after.start
            );
            let between = rms(&audio[at(before.end)..at(after.start)]);
            assert!(
                between < 0.1 * speech_rms,
                "live {live}: cut between {:?} and {:?} is not quiet",
                before.end,
                after.start
            );
        }
        // Each utterance's last stable words open its final (one may differ: the final is a
        // decode of its own).
        for f in &finals {
            let mut partials = out
                .iter()
                .filter(|p| !p.is_final && p.utterance_id == f.utterance_id);
            let Some(last) = partials.next_back() else {
                continue;
            };
            let stable = common::normalize(&last.stable_text);
            let said = common::normalize(&f.text);
            let opening = said[..stable.len().min(said.len())].join(" ");
            let (errors, _) = common::word_errors(&stable.join(" "), &opening);
            assert!(
                errors <= 1,
                "stable {:?} is not in its final {:?}",
                last.stable_text,
                f.text
            );
        }
    }
}

#[test]
fn end_of_stream_mid_utterance_gives_its_final() {
    let _beside = common::side_by_side();
    let (path, _) = common::reference_speech().into_iter().next().unwrap();
    let audio = common::read_audio(&path);
    let half = &audio[..audio.len() / 2];
    for live in [false, true] {
        let mut t = transcriber(live);
        let out = feed(&mut t, half);
        let finals: Vec<&Transcript> = out.iter().filter(|s| s.is_final).collect();
        assert!(!finals.is_empty(), "live {live}: no final");
        assert!(finals.iter().all(|f| !f.text.is_empty()));
        let last = finals.last().unwrap();
        assert!(last.end <= Duration::from_secs_f64(half.len() as f64 / 16_000.0 + 0.01));
    }
}

#[test]
fn shared_live_partials_precede_finals_and_finals_match_file_mode() {
    let _alone = alone();
    // The first six sentences (43 s): every partial re-decodes its utterance so far, so the
    // whole recording would take minutes here; the element test plays all of it in real time.
    let (path, _, sentence_ends) = common::long_recording();
    let sentences = 6;
    let end = sentence_ends[sentences - 1] + Duration::from_millis(300);
    let audio = &common::read_wav(&path)[..(end.as_secs_f64() * 16_000.0) as usize];
    let reference = common::ljspeech_text(1..=sentences);

    let mut file = transcriber(false);
    let file_text: Vec<String> = feed(&mut file, audio).into_iter().map(|s| s.text).collect();
    let file_wer = common::wer(&reference, &file_text.join(" "));

    let mut live = transcriber(true);
    let out = feed(&mut live, audio);
    let finals: Vec<&Transcript> = out.iter().filter(|s| s.is_final).collect();
    let live_text: Vec<&str> = finals.iter().map(|s| s.text.as_str()).collect();
    let live_wer = common::wer(&reference, &live_text.join(" "));
    eprintln!("file-mode WER {file_wer:.4}, live finals WER {live_wer:.4}, {} finals, {} partials, {} inference calls",
        finals.len(), out.len() - finals.len(), live.inference_calls());
    // 108 words: one word is 0.009 of WER, too few for the live-versus-file comparison,
    // which tests/realtime.rs makes on the whole recording.
    assert!(live_wer <= 0.08, "live {live_wer:.4} (file {file_wer:.4})");
    // Each sentence ending is heard: roughly one final per sentence (a long one may be cut).
    // LJ Speech's clips are phrases; 4 of these 6 end at a comma, where the reader goes on
    // after a pause the phrase hold bridges.
    let sentence_ends = reference
        .split_whitespace()
        .filter(|w| w.ends_with(['.', '?', '!']))
        .count();
    let spoken = sentence_ends + usize::from(!reference.ends_with(['.', '?', '!']));
    assert!(
        (spoken..=2 * sentences).contains(&finals.len()),
        "{} finals for {spoken} sentences in {sentences} clips",
        finals.len()
    );

    // Every final longer than the partial interval was preceded by partials of its utterance,
    // whose stable words never shrink and always start the partial's text.
    for f in &finals {
        let partials: Vec<&Transcript> = out
            .iter()
            .take_while(|s| !std::ptr::eq(*s, *f))
            .filter(|s| !s.is_final && s.utterance_id == f.utterance_id)
            .collect();
        if f.end - f.start > Duration::from_millis(2500) {
            assert!(
                !partials.is_empty(),
                "no partial before final {}: {}",
                f.utterance_id,
                f.text
            );
        }
        let mut stable = 0;
        for p in &partials {
            let n = p.stable_text.split_whitespace().count();
            assert!(
                n >= stable,
                "stable text shrank in utterance {}",
                f.utterance_id
            );
            assert!(
                p.text.starts_with(&p.stable_text),
                "{:?} vs {:?}",
                p.stable_text,
                p.text
            );
            stable = n;
        }
    }
    // Fed faster than real time the device is idle, so a pause after speech brings a partial
    // forward, and when the pause ends the utterance that partial is the final: every final
    // is its utterance's last partial, and no final costs a decode of its own.
    for f in &finals {
        let last_partial = out
            .iter()
            .take_while(|s| !std::ptr::eq(*s, *f))
            .filter(|s| !s.is_final && s.utterance_id == f.utterance_id)
            .last()
            .unwrap_or_else(|| panic!("no partial in utterance {}", f.utterance_id));
        assert_eq!(last_partial.text, f.text, "utterance {}", f.utterance_id);
    }
    // (One spare: a partial decode that loops is redone in full; without reuse it would be
    // one more per final. A partial that ran past half a final's time gave way after at most
    // two calls, the redone one included, and left no partial.)
    let partials = out.len() - finals.len();
    let given_way = live.partials_given_way() as usize;
    assert!(
        live.inference_calls() as usize <= partials + 1 + 2 * given_way,
        "{} inference calls for {partials} partials, {given_way} given way, and {} finals",
        live.inference_calls(),
        finals.len()
    );
    // Finals do not overlap and go forward in time.
    for w in finals.windows(2) {
        assert!(
            w[1].start >= w[0].end,
            "{:?} then {:?}",
            (w[0].start, w[0].end),
            (w[1].start, w[1].end)
        );
    }
}

#[test]
fn shared_jfk_word_for_word() {
    let _alone = alone();
    let wav = common::jfk_wav();
    let mut t = transcriber(false);
    let mut out = t
        .push(&common::read_wav(&wav), PartialDecodes::Allowed)
        .unwrap();
    out.extend(t.finish().unwrap());
    let text: Vec<&str> = out.iter().map(|s| s.text.as_str()).collect();
    let text = text.join(" ");
    assert_eq!(
        common::normalize(&text),
        common::normalize(common::JFK_TEXT),
        "{text}"
    );
    // File mode: the 1 s pause after "for you" does not end the utterance; one decode.
    assert_eq!(out.len(), 1);
    assert_eq!(t.inference_calls(), 1);
    assert!(out.iter().all(|s| s.is_final));
}

/// Without a voice detector the stream is cut into 30 s windows; live, each window's partials
/// are timed from where the window starts, as its final is (they were timed from the stream's
/// start after the first window).
#[test]
fn without_a_detector_partials_are_timed_in_their_window() {
    let _alone = alone();
    // The LibriVox recordings (24 s) twice.
    let once: Vec<f32> = common::pocketsphinx_clips()
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("librivox"))
        .flat_map(|(path, _)| common::read_audio(&path))
        .collect();
    let audio = [once.clone(), once].concat();
    assert!(audio.len() > 40 * 16_000, "{} s", audio.len() / 16_000);
    let options = gstwhisperstt::transcriber::StreamOptions {
        live: true,
        vad: None,
        ..Default::default()
    };
    let mut t = common::transcriber_with(&common::model_path(), options);
    let out = feed(&mut t, &audio);
    let second: Vec<&Transcript> = out.iter().filter(|r| r.utterance_id == 1).collect();
    let partials = second.iter().filter(|r| !r.is_final).count();
    assert!(partials >= 1, "no partial of the second window: {out:?}");
    for r in &second {
        assert!(
            r.start >= Duration::from_secs(30) && r.end <= Duration::from_secs(61),
            "{} {:?}..{:?}: {}",
            if r.is_final { "final" } else { "partial" },
            r.start,
            r.end,
            r.text
        );
    }
}

#[test]
fn a_partial_past_its_share_of_the_latency_gives_way_and_finals_stay() {
    let _alone = alone();
    // A LibriVox sentence of some seconds: long enough for several partials.
    let (path, reference) = common::pocketsphinx_clip("-0870.wav");
    let audio = common::read_audio(&path);
    let live = |latency: Duration| {
        let options = gstwhisperstt::transcriber::StreamOptions {
            live: true,
            latency,
            ..Default::default()
        };
        let mut t = common::transcriber_with(&common::model_path(), options);
        let out = feed(&mut t, &audio);
        (out, t.partials_shed())
    };
    // The default latency leaves partials half of 2.6 s each: they all run.
    let (out, shed) = live(Duration::from_secs(3));
    let partials = out.iter().filter(|t| !t.is_final).count();
    assert!(partials >= 2, "{partials} partials");
    assert_eq!(shed, 0);
    // A latency no longer than the pause that ends an utterance leaves a final no time of its
    // own, so every partial gives way as soon as it starts; the finals are decoded in full.
    let (out, shed) = live(Duration::from_millis(400));
    let finals: Vec<&str> = out
        .iter()
        .filter(|t| t.is_final)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(out.len(), finals.len(), "a partial came out: {out:?}");
    assert!(
        shed as usize >= partials,
        "{shed} shed, {partials} partials ran before"
    );
    let wer = common::wer(&reference, &finals.join(" "));
    assert!(wer <= 0.15, "WER {wer:.3}: {finals:?}");
}

/// Live and file-mode WER of `recordings` with 0.6 s of room tone after each word `after`
/// picks in file mode's transcript (a speaker pausing inside sentences, over live's 400 ms):
/// (file, live, finals live, recordings).
fn paused_wer(
    recordings: &[(Vec<f32>, String)],
    after: fn(&str) -> bool,
) -> (f64, f64, usize, usize) {
    let word_timer = || {
        let mut t = transcriber(false);
        let options = DecodeOptions {
            word_timestamps: true,
            ..t.decode_options().clone()
        };
        t.set_decode_options(&options).unwrap();
        t
    };
    let paused = common::paused_inside_sentences(&word_timer, recordings, 9_600, after);
    let mut finals_live = 0;
    let mut wer_of = |live: bool| {
        let (mut errors, mut words) = (0, 0);
        for (audio, reference) in &paused {
            let finals: Vec<String> = feed(&mut transcriber(live), audio)
                .into_iter()
                .filter(|r| r.is_final)
                .map(|r| r.text)
                .collect();
            if live {
                finals_live += finals.len();
            }
            let (e, w) = common::word_errors(reference, &finals.join(" "));
            errors += e;
            words += w;
        }
        errors as f64 / words.max(1) as f64
    };
    let (file, live) = (wer_of(false), wer_of(true));
    println!(
        "{} recordings paused: file WER {file:.4}, live {live:.4} in {finals_live} finals",
        paused.len()
    );
    (file, live, finals_live, paused.len())
}

/// Issue 30's bound: with 0.6 s of room tone at each comma of `clips` (at least `at_least`
/// of them have one), live finals' WER is within 0.02 of file mode's.
fn assert_live_within_0_02_of_file_mode_when_paused(
    clips: Vec<(std::path::PathBuf, String)>,
    at_least: usize,
) {
    let recordings: Vec<(Vec<f32>, String)> = clips
        .into_iter()
        .map(|(path, text)| (common::read_audio(&path), text))
        .collect();
    let (file, live, finals, paused) = paused_wer(&recordings, common::at_comma);
    assert!(paused >= at_least, "only {paused} recordings with commas");
    assert!(
        live <= file + 0.02,
        "live WER {live:.4} against file mode's {file:.4} ({finals} finals for {paused} recordings)"
    );
}

/// Issue 30 on the two pocketsphinx-testdata recordings whose transcript has commas (a fresh
/// clone's check: live and file mode are equal there with the phrase hold and without it,
/// 0.1071; the shared corpus's test below is the one that fails without the hold).
#[test]
fn live_finals_with_pauses_inside_sentences_are_within_0_02_of_file_mode() {
    let _alone = alone();
    assert_live_within_0_02_of_file_mode_when_paused(common::pocketsphinx_clips(), 2);
}

/// The same on the shared corpus's clips whose transcript has commas (12, about 90 s). A
/// pause after words the last partial leaves open (a comma, "of the", a period Whisper was
/// unsure of) does not end the utterance until `phrase_silence`, so the words after it are
/// decoded with those before: measured live 0.1000 in 23 finals against file mode's 0.1100;
/// without the hold 0.1350 in 31 finals.
#[test]
fn shared_live_finals_with_pauses_inside_sentences_are_within_0_02_of_file_mode() {
    let _alone = alone();
    assert_live_within_0_02_of_file_mode_when_paused(
        common::corpus_clips(&common::shared_corpus()),
        8,
    );
}

/// A speaker who hesitates (0.6 s of room tone after "the", "a", "of", "to", "and" and at
/// commas of pocketsphinx-testdata's recordings) goes on in the same utterance wherever the
/// pause is held. The detector used to end a held pause 0.72 s in while the next word's
/// consonant was already sounding: a fresh start waits for a vowel over the full margin, so
/// a 0.6 s pause looked 0.8 s long. A held pause now stays inside the detector's utterance.
/// Measured: 11 finals for 8 recordings (15 before), WER 0.2439 before and after (file mode
/// 0.1098). Partials decoded without temperature fallback then made the cue the same from
/// run to run ("Addy married." with its period at 0.32, held): 10 finals, 0.2195 (0.2073
/// with the stream-start silence). A sure period after a guessed word now holds too (a
/// partial heard "and" as "in red.", "red" at 0.34): 9 finals, 0.1220, within issue 30's
/// 0.02. What is still lost: a first word at the stream's very start ("Eight of", judged
/// too short).
#[test]
fn a_hesitating_speaker_goes_on_in_the_same_utterance_after_a_held_pause() {
    let _alone = alone();
    let recordings: Vec<(Vec<f32>, String)> = common::pocketsphinx_clips()
        .into_iter()
        .map(|(path, text)| (common::read_audio(&path), text))
        .collect();
    let (file, live, finals, paused) = paused_wer(&recordings, common::at_hesitation);
    assert!(paused >= 8, "only {paused} recordings with hesitations");
    assert!(
        finals <= paused + 2,
        "{finals} finals for {paused} recordings"
    );
    assert!(
        live <= file + 0.02,
        "live WER {live:.4} against file mode's {file:.4}"
    );
}

/// Live speech that starts with the stream (a push-to-talk button, a caller who speaks as
/// soon as connected) is decoded after the padding the stream had not heard, as silence:
/// whisper.cpp reads speech that starts its audio worse. Its finals stay timed from the
/// stream's start. pocketsphinx-testdata's recordings cut to their first sound: 5 errors in
/// 96 words, 6 (0.0625) without the silence.
#[test]
fn live_speech_that_starts_with_the_stream_keeps_its_words_and_timing() {
    let _alone = alone();
    let (mut errors, mut words, mut first_lost) = (0, 0, Vec::new());
    for (path, reference) in common::pocketsphinx_clips() {
        let audio = common::read_audio(&path);
        let out = feed(
            &mut transcriber(true),
            common::degrade::starting_on_speech(&audio),
        );
        let finals: Vec<&Transcript> = out.iter().filter(|r| r.is_final).collect();
        let text: Vec<&str> = finals.iter().map(|r| r.text.as_str()).collect();
        let text = text.join(" ");
        let (e, n) = common::word_errors(&reference, &text);
        (errors, words) = (errors + e, words + n);
        if common::normalize(&text).first() != common::normalize(&reference).first() {
            first_lost.push(text.clone());
        }
        let start = finals.first().map(|r| r.start);
        assert!(
            start.is_some_and(|s| s < Duration::from_millis(100)),
            "first final starts at {start:?}: {text:?}"
        );
    }
    let wer = errors as f64 / words as f64;
    println!("WER {wer:.4}, first word lost in {first_lost:?}");
    assert!(first_lost.is_empty(), "first word lost in {first_lost:?}");
    assert!(wer < 0.06, "WER {wer:.4}");
}

/// A file's utterances are decoded side by side, one lane a thread, and their finals come
/// back in order, as accurate as one decode at a time; none starts before what the
/// transcriber had declared settled (what whispertranscribe lets the text stream pass).
#[test]
fn a_files_utterances_decoded_side_by_side_come_back_in_order() {
    use gstwhisperstt::model::cache::ModelCache;
    use gstwhisperstt::scheduler::{CancelToken, DecodeSlot, ThreadBudget};
    use gstwhisperstt::transcriber::{StreamOptions, Transcriber};
    let _alone = alone();
    let clips = common::pocketsphinx_clips();
    let mut audio = Vec::new();
    for (path, _) in &clips {
        audio.extend(common::read_audio(path));
        audio.extend(std::iter::repeat_n(0.0, 3 * 16_000));
    }
    let reference: Vec<&str> = clips.iter().map(|(_, t)| t.as_str()).collect();
    let cache = ModelCache::new();
    let run = |threads: u32| {
        let slot = DecodeSlot {
            budget: std::sync::Arc::new(ThreadBudget::new(2)),
            cancel: CancelToken::new(),
        };
        let decode = DecodeOptions {
            threads,
            ..DecodeOptions::default()
        };
        let model = cache.acquire(&common::model_key(), None).unwrap();
        let mut t = Transcriber::new(model, &decode, StreamOptions::default(), slot).unwrap();
        let mut finals: Vec<Transcript> = Vec::new();
        let mut settled = Duration::ZERO;
        for chunk in audio.chunks(1600) {
            for f in t.push(chunk, PartialDecodes::Allowed).unwrap() {
                assert!(f.start >= settled, "{:?} before {settled:?}", f.start);
                finals.push(f);
            }
            settled = Duration::from_secs_f64(t.settled() as f64 / 16_000.0);
        }
        finals.extend(t.finish().unwrap());
        (finals, t.decode_lanes())
    };
    let (one_at_a_time, no_lanes) = run(1);
    let (side_by_side, lanes) = run(2);
    assert_eq!((no_lanes, lanes), (0, 2));
    let wer = |finals: &[Transcript]| {
        let text: Vec<&str> = finals.iter().map(|f| f.text.as_str()).collect();
        common::wer(&reference.join(" "), &text.join(" "))
    };
    let (wer_one, wer_side) = (wer(&one_at_a_time), wer(&side_by_side));
    eprintln!("one at a time WER {wer_one:.3}, side by side {wer_side:.3}");
    assert!(
        wer_side <= wer_one + 0.02,
        "{wer_side:.3} against {wer_one:.3}"
    );
    assert_eq!(side_by_side.len(), one_at_a_time.len());
    for (a, b) in one_at_a_time.iter().zip(&side_by_side) {
        assert_eq!((a.utterance_id, a.start), (b.utterance_id, b.start));
    }
    assert!(side_by_side.windows(2).all(|w| w[0].end <= w[1].start));
}

/// Live, a regular partial waits for at least twice what the last one of its utterance took
/// (`PARTIAL_COST_SPACING`): asked for every 200 ms on one thread, where each partial takes
/// over 100 ms, partials would otherwise follow each other after 200 ms of audio.
#[test]
fn partials_wait_twice_what_the_last_one_took() {
    // Its partials run only on an idle device.
    let _alone = alone();
    use gstwhisperstt::model::cache::ModelCache;
    use gstwhisperstt::model::Device;
    use gstwhisperstt::scheduler::DecodeSlot;
    use gstwhisperstt::transcriber::{StreamOptions, Transcriber};
    let options = StreamOptions {
        live: true,
        partial_interval: Duration::from_millis(200),
        ..StreamOptions::default()
    };
    let decode = DecodeOptions {
        threads: 1,
        ..DecodeOptions::default()
    };
    let model = ModelCache::new()
        .acquire(&common::model_key(), None)
        .unwrap();
    let mut t =
        Transcriber::new(model, &decode, options, DecodeSlot::for_device(Device::Cpu)).unwrap();
    let mut audio = Vec::new();
    for (path, _) in common::pocketsphinx_clips().iter().take(8) {
        audio.extend(common::read_audio(path));
    }
    let partials: Vec<Transcript> = feed(&mut t, &audio)
        .into_iter()
        .filter(|r| !r.is_final)
        .collect();
    let pairs: Vec<(&Transcript, &Transcript)> = partials
        .windows(2)
        .map(|w| (&w[0], &w[1]))
        .filter(|(a, b)| a.utterance_id == b.utterance_id)
        .collect();
    // A pause in the speech brings a partial forward (`EARLY_PARTIAL_PAUSE`): a few may be
    // closer.
    let too_close = pairs
        .iter()
        .filter(|(a, b)| b.audio_duration < a.audio_duration + a.inference_time * 2)
        .count();
    eprintln!(
        "{} partials, {} pairs in one utterance, {too_close} closer than twice the first's time",
        partials.len(),
        pairs.len()
    );
    assert!(pairs.len() >= 5, "{} pairs", pairs.len());
    assert!(
        too_close * 4 <= pairs.len(),
        "{too_close} of {}",
        pairs.len()
    );
}
