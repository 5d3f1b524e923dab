//! Streaming behaviour of the elements on the real engine: flushes and stops during
//! inference, concurrent streams, discontinuities. (Real-time input: tests/realtime.rs.)

mod common;

use common::pipeline;
use gst::prelude::*;
use std::time::{Duration, Instant};

/// Transcribes `audio` through a `whispertranscribe` harness; with `jump_at` = (seconds, by),
/// the timestamps from that point on are shifted by `by`, the first one marked DISCONT.
fn harness_run(
    audio: &[f32],
    jump_at: Option<(f64, gst::ClockTime)>,
) -> Vec<(gst::ClockTime, String)> {
    pipeline::harness_transcribe(audio, gst::ClockTime::ZERO, |i| {
        let pts = gst::ClockTime::from_mseconds(100 * i as u64);
        match jump_at {
            Some((at, by)) if i as f64 * 0.1 >= at => {
                (pts + by, (i as f64 * 0.1 - at).abs() < 0.05)
            }
            _ => (pts, false),
        }
    })
}

#[test]
fn shared_a_discontinuity_shifts_later_timestamps() {
    let audio = common::read_wav(&common::jfk_wav());
    let plain = harness_run(&audio, None);
    let five = gst::ClockTime::from_seconds(5);
    // JFK pauses after "for you" (about 7.6 s to 8.2 s): jump there.
    let jumped = harness_run(&audio, Some((7.9, five)));
    let plain_text: Vec<&str> = plain.iter().map(|(_, t)| t.as_str()).collect();
    let jumped_text: Vec<&str> = jumped.iter().map(|(_, t)| t.as_str()).collect();
    // The harness reports itself live, so these are live-mode finals: compare each with the
    // reference rather than with each other.
    for text in [&plain_text, &jumped_text] {
        let wer = common::wer(common::JFK_TEXT, &text.join(" "));
        assert!(wer <= 0.15, "WER {wer:.3}: {text:?}");
    }
    let after: Vec<&(gst::ClockTime, String)> = jumped
        .iter()
        .filter(|(t, _)| *t >= gst::ClockTime::from_seconds(12))
        .collect();
    assert!(!after.is_empty(), "{jumped:?}");
    assert!(
        after[0].1.to_lowercase().starts_with("ask what you can do"),
        "{jumped:?}"
    );
    // "ask" starts about 8.1 s into the recording: 13.1 s after the jump.
    let ask = after[0].0.seconds_f64();
    assert!((12.6..=13.6).contains(&ask), "'ask' at {ask} s: {jumped:?}");
    assert!(jumped[0].0 < gst::ClockTime::from_seconds(1));
}

#[test]
fn flushing_during_inference_is_prompt_and_leaves_no_stale_text() {
    pipeline::init();
    let (path, _) = common::reference_speech().into_iter().next().unwrap();
    let audio = common::read_audio(&path);
    let mut h = gst_check::Harness::new("whispertranscribe");
    h.set_src_caps_str("audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved");
    h.play();
    let push_all = |h: &mut gst_check::Harness, offset: gst::ClockTime| {
        for (i, c) in audio.chunks(1600).enumerate() {
            let mut b = gst::Buffer::from_slice(
                c.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>(),
            );
            b.get_mut()
                .unwrap()
                .set_pts(offset + gst::ClockTime::from_mseconds(100 * i as u64));
            let _ = h.push(b);
        }
    };
    // Ten copies: the worker is still transcribing the first when the flush comes.
    for k in 0..10 {
        push_all(&mut h, gst::ClockTime::from_seconds(60 * k));
    }
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let flush_took = t.elapsed();
    while h.try_pull().is_some() {}
    // A new segment after the flush: only its text comes out, on its own timeline.
    let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
    segment.set_start(gst::ClockTime::from_seconds(1000));
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    push_all(&mut h, gst::ClockTime::from_seconds(1000));
    assert!(h.push_event(gst::event::Eos::new()));
    let mut after = Vec::new();
    while let Some(b) = h.try_pull() {
        after.push(b.pts().unwrap());
    }
    assert!(
        flush_took < Duration::from_secs(2),
        "flush took {flush_took:?}"
    );
    assert!(!after.is_empty());
    assert!(
        after
            .iter()
            .all(|pts| *pts >= gst::ClockTime::from_seconds(1000)),
        "stale text: {after:?}"
    );
}

#[test]
fn stopping_during_inference_returns_within_an_encoder_pass() {
    let (path, _) = common::reference_speech().into_iter().next().unwrap();
    // Transcribing the clip ten times over keeps the worker busy when the stop comes.
    let p = pipeline::launch(&format!(
        "concat name=c ! whispersink name=s {}",
        (0..10)
            .map(|_| format!("{} ! c. ", pipeline::source(&path)))
            .collect::<String>()
    ));
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let first = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Element],
    );
    assert!(first.is_some());
    let t = Instant::now();
    p.set_state(gst::State::Null).unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "PLAYING -> NULL took {:?}",
        t.elapsed()
    );
}

#[test]
fn two_concurrent_streams_match_their_solo_runs() {
    let clips = common::pocketsphinx_clips();
    let (a, b) = (&clips[6].0, &clips[9].0);
    let solo_a = pipeline::run(&format!("{} ! whispersink name=a", pipeline::source(a)));
    let solo_b = pipeline::run(&format!("{} ! whispersink name=b", pipeline::source(b)));
    let together = pipeline::run(&format!(
        "{} ! whispersink name=a  {} ! whispersink name=b",
        pipeline::source(a),
        pipeline::source(b)
    ));
    let by = |name: &str| -> Vec<String> {
        together
            .transcripts
            .iter()
            .filter(|s| s.get::<&str>("element").unwrap() == name)
            .map(|s| s.get::<String>("text").unwrap())
            .collect()
    };
    let texts = |r: &common::pipeline::Run| -> Vec<String> {
        r.transcripts
            .iter()
            .map(|s| s.get::<String>("text").unwrap())
            .collect()
    };
    assert!(!by("a").is_empty() && !by("b").is_empty());
    assert_eq!(by("a"), texts(&solo_a));
    assert_eq!(by("b"), texts(&solo_b));
}

#[test]
fn shared_timestamps_drifting_without_discont_do_not_cut_an_utterance() {
    let audio = common::read_wav(&common::jfk_wav());
    let plain = harness_run(&audio, None);
    // From 2 s on, timestamps run 120 ms ahead of the samples (a slaved clock), unmarked.
    let drifted = pipeline::harness_transcribe(&audio, gst::ClockTime::ZERO, |i| {
        let pts = gst::ClockTime::from_mseconds(100 * i as u64);
        match i >= 20 {
            true => (pts + gst::ClockTime::from_mseconds(120), false),
            false => (pts, false),
        }
    });
    let text = |r: &[(gst::ClockTime, String)]| -> Vec<String> {
        r.iter().map(|(_, t)| t.clone()).collect()
    };
    assert_eq!(text(&drifted), text(&plain));
}
