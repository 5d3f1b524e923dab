//! whispertranscribe and whispersink in real pipelines, on the real engine and tiny.en.

mod common;

use common::pipeline::{self, clock, play, run};
use gst::prelude::*;
use std::time::{Duration, Instant};

fn speech() -> (std::path::PathBuf, String) {
    common::reference_speech().into_iter().next().unwrap()
}

#[test]
fn whispertranscribe_pushes_timed_text_and_posts_matching_messages() {
    let (path, reference) = speech();
    let p = pipeline::launch(&format!(
        "{} ! whispertranscribe name=stt ! appsink name=out sync=false",
        pipeline::source(&path)
    ));
    let sink: gst_app::AppSink = p.by_name("out").unwrap().downcast().unwrap();
    let collected = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let c = collected.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
                let b = sample.buffer().unwrap();
                let text = String::from_utf8(b.map_readable().unwrap().to_vec()).unwrap();
                c.lock()
                    .unwrap()
                    .push((caps, b.pts().unwrap(), b.duration().unwrap(), text));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let r = play(&p, Duration::from_secs(60));
    p.set_state(gst::State::Null).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    let buffers = collected.lock().unwrap();
    assert!(!buffers.is_empty());
    // File mode posts finals only; each final's text arrives as one buffer per Whisper segment.
    assert!(r
        .transcripts
        .iter()
        .all(|m| m.get::<bool>("is-final").unwrap()));
    let buffer_text: Vec<&str> = buffers.iter().map(|b| b.3.as_str()).collect();
    assert_eq!(buffer_text.join(" "), r.text());
    let audio_len = gst::ClockTime::from_nseconds(
        (common::read_audio(&path).len() as u64) * 1_000_000_000 / 16_000,
    );
    let mut last_end = gst::ClockTime::ZERO;
    for (caps, pts, duration, _) in buffers.iter() {
        assert_eq!(caps.name(), "text/x-raw");
        assert_eq!(caps.get::<&str>("format").unwrap(), "utf8");
        assert!(*pts >= last_end, "text buffers overlap or go backwards");
        assert!(*pts + *duration <= audio_len);
        assert!(
            r.transcripts
                .iter()
                .any(|m| clock(m, "start") <= *pts && *pts + *duration <= clock(m, "end")),
            "buffer at {pts} lies outside every final"
        );
        last_end = *pts + *duration;
    }
    for msg in &r.transcripts {
        assert_eq!(msg.get::<&str>("element").unwrap(), "stt");
        assert!(msg.get::<&str>("model").unwrap().ends_with(".bin"));
        assert_eq!(msg.get::<&str>("language").unwrap(), "en");
        // An English-only model's language is not detected: certain, as a set one.
        assert_eq!(msg.get::<f64>("language-probability").unwrap(), 1.0);
        assert_eq!(
            msg.get::<&str>("stable-text").unwrap(),
            msg.get::<&str>("text").unwrap()
        );
    }
    let wer = common::wer(&reference, &r.text());
    assert!(wer <= 0.25, "WER {wer:.3}: {}", r.text());
    // The load is reported as it goes, as network sources report connecting.
    let progress: Vec<_> = r
        .progress
        .iter()
        .map(|(k, c, _)| (*k, c.as_str()))
        .collect();
    assert_eq!(
        progress,
        [
            (gst::ProgressType::Start, "whisperstt-model-load"),
            (gst::ProgressType::Complete, "whisperstt-model-load")
        ]
    );
    assert!(r.progress[1].2.contains("ready in"), "{:?}", r.progress);
}

#[test]
fn shared_jfk_through_whispersink_word_for_word_with_timings() {
    let jfk = common::jfk_wav();
    let r = run(&format!(
        "{} ! whispersink word-timestamps=true",
        pipeline::source(&jfk)
    ));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        common::normalize(&r.text()),
        common::normalize(common::JFK_TEXT),
        "{}",
        r.text()
    );
    let first = &r.transcripts[0];
    let last = r.transcripts.last().unwrap();
    // The speech spans about 0.3 s to 10.6 s of the 11 s recording.
    assert!(clock(first, "start") <= gst::ClockTime::from_mseconds(500));
    assert!(clock(last, "end") >= gst::ClockTime::from_mseconds(10_000));
    let words = first.get::<gst::List>("words").unwrap();
    assert!(words.len() >= 5, "{words:?}");
    let w0 = words.first().unwrap().get::<gst::Structure>().unwrap();
    assert_eq!(w0.get::<&str>("text").unwrap().trim_matches(','), "And");
}

/// Pushes `samples` through `whispertranscribe` with buffer timestamps starting at `start`.
fn transcribe_from(samples: &[f32], start: gst::ClockTime) -> Vec<(gst::ClockTime, String)> {
    pipeline::harness_transcribe(samples, start, |i| {
        (start + gst::ClockTime::from_mseconds(100 * i as u64), false)
    })
}

#[test]
fn timestamps_follow_the_input_timeline() {
    let (path, _) = speech();
    let audio = common::read_audio(&path);
    let at_zero = transcribe_from(&audio, gst::ClockTime::ZERO);
    let later = gst::ClockTime::from_seconds(5);
    let at_five = transcribe_from(&audio, later);
    assert!(!at_zero.is_empty());
    assert_eq!(at_zero.len(), at_five.len());
    for ((t0, text0), (t5, text5)) in at_zero.iter().zip(&at_five) {
        assert_eq!(text0, text5);
        assert_eq!(*t5, *t0 + later);
    }
}

#[test]
fn a_wrong_model_path_is_an_error_naming_it_and_the_process_carries_on() {
    let bad = "/nonexistent/models/ggml-missing.bin";
    let (path, reference) = speech();
    let r = run(&format!(
        "{} ! whispersink model={bad}",
        pipeline::source(&path)
    ));
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].contains(bad), "{}", r.errors[0]);
    assert!(r.transcripts.is_empty());
    // The load's progress ends in an error that says the same.
    assert_eq!(r.progress.len(), 2, "{:?}", r.progress);
    assert_eq!(r.progress[0].0, gst::ProgressType::Start);
    assert_eq!(r.progress[1].0, gst::ProgressType::Error);
    assert!(r.progress[1].2.contains(bad), "{:?}", r.progress);

    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.bin");
    std::fs::write(&garbage, vec![7u8; 4096]).unwrap();
    let r = run(&format!(
        "{} ! whispertranscribe model={} ! fakesink",
        pipeline::source(&path),
        garbage.display()
    ));
    assert_eq!(r.errors.len(), 1);
    assert!(
        r.errors[0].contains(&*garbage.to_string_lossy())
            && r.errors[0].contains("not a whisper.cpp ggml model"),
        "{}",
        r.errors[0]
    );
    assert_eq!(r.model_actions(), ["failed"]);

    // Unknown names say where they were looked for.
    let r = run(&format!(
        "{} ! whispersink model=no-such-model",
        pipeline::source(&path)
    ));
    assert!(
        r.errors[0].contains("model 'no-such-model' not found"),
        "{}",
        r.errors[0]
    );

    // The same process still transcribes.
    let r = run(&format!("{} ! whispersink", pipeline::source(&path)));
    assert!(r.errors.is_empty());
    assert!(common::wer(&reference, &r.text()) <= 0.25);
}

#[test]
fn state_changes_never_wait_for_a_model_load() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("cold.bin");
    std::fs::copy(common::model_path(), &model).unwrap();
    let (path, _) = speech();
    let p = pipeline::launch(&format!(
        "{} ! whispersink name=s model={}",
        pipeline::source(&path),
        model.display()
    ));
    let sink = p.by_name("s").unwrap();
    let t = Instant::now();
    assert_eq!(
        sink.set_state(gst::State::Ready).unwrap(),
        gst::StateChangeSuccess::Success
    );
    let ready_took = t.elapsed();
    let r = play(&p, Duration::from_secs(60));
    p.set_state(gst::State::Null).unwrap();
    assert_eq!(r.model_actions(), ["loaded"]);
    let load_time = clock(&r.model_messages[0], "load-time");
    assert!(
        ready_took.as_nanos() < load_time.nseconds() as u128,
        "NULL->READY took {ready_took:?}, the load {load_time}"
    );
    assert!(!r.transcripts.is_empty());

    // Stopping while the model is still loading returns at once too.
    let model2 = tmp.path().join("cold2.bin");
    std::fs::copy(common::model_path(), &model2).unwrap();
    let p = pipeline::launch(&format!(
        "{} ! whispersink model={}",
        pipeline::source(&path),
        model2.display()
    ));
    p.set_state(gst::State::Playing).unwrap();
    let t = Instant::now();
    p.set_state(gst::State::Null).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "PLAYING->NULL took {:?}",
        t.elapsed()
    );
}

#[test]
fn elements_document_their_properties() {
    pipeline::init();
    for name in ["whispertranscribe", "whispersink"] {
        let e = gst::ElementFactory::make(name).build().unwrap();
        // Every property the element itself declares (not GstElement's or GstBaseSink's):
        // a blurb that says something; and the ones users set by name are all there.
        let own: Vec<_> = e
            .list_properties()
            .into_iter()
            .filter(|p| p.owner_type() == e.type_())
            .collect();
        assert!(own.len() >= 20, "{name}: {} properties", own.len());
        for p in &own {
            assert!(
                p.blurb().is_some_and(|b| b.len() > 20),
                "{name}.{} blurb",
                p.name()
            );
            // Writable ones say when they may change (gst-inspect-1.0 shows it).
            let flags = p.flags();
            assert!(
                !flags.contains(gst::glib::ParamFlags::WRITABLE)
                    || flags.intersects(
                        gst::PARAM_FLAG_MUTABLE_READY | gst::PARAM_FLAG_MUTABLE_PLAYING
                    ),
                "{name}.{} has no mutability flag",
                p.name()
            );
        }
        for prop in [
            "model",
            "device",
            "flash-attn",
            "model-idle-timeout",
            "language",
            "translate",
            "threads",
            "beam-size",
            "word-timestamps",
            "latency",
            "lateness",
            "vad",
            "vad-threshold",
            "vad-min-silence",
            "vad-padding",
            "max-utterance",
            "partial-interval",
        ] {
            assert!(own.iter().any(|p| p.name() == prop), "{name} has no {prop}");
        }
        assert_eq!(e.property::<String>("model"), "tiny.en");
        assert_eq!(e.property::<i32>("model-idle-timeout"), -1);
    }
    let sink = gst::ElementFactory::make("whispersink").build().unwrap();
    assert!(!sink.property::<bool>("sync"));
}

/// Plays `pipeline` for `before`, pauses it for a moment, plays it to the end, and returns
/// what it transcribed.
fn play_with_a_pause(pipeline: &gst::Pipeline, before: Duration) -> pipeline::Run {
    pipeline.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(before);
    pipeline.set_state(gst::State::Paused).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    play(pipeline, Duration::from_secs(60))
}

#[test]
fn pausing_and_replaying_loses_nothing() {
    let (path, reference) = speech();
    let seconds = common::read_audio(&path).len() as f64 / 16_000.0;
    // sync=true: buffers are rendered in real time, so the pause falls mid-speech (the
    // input stays a file: no partials).
    for element in [
        "whispersink sync=true",
        "whispertranscribe ! fakesink sync=true",
    ] {
        let description = format!("{} ! {element}", pipeline::source(&path));
        let unpaused = run(&description);
        assert!(
            unpaused.errors.is_empty(),
            "{element}: {:?}",
            unpaused.errors
        );
        assert!(
            common::wer(&reference, &unpaused.text()) <= 0.2,
            "{element}: {}",
            unpaused.text()
        );
        let p = pipeline::launch(&description);
        let paused = play_with_a_pause(&p, Duration::from_secs_f64(seconds / 2.0));
        // Back to READY and played again from the start: a second, whole transcript.
        p.set_state(gst::State::Ready).unwrap();
        let replayed = play(&p, Duration::from_secs(60));
        p.set_state(gst::State::Null).unwrap();
        for (what, r) in [("paused", &paused), ("replayed", &replayed)] {
            assert!(r.errors.is_empty(), "{element}, {what}: {:?}", r.errors);
            assert_eq!(r.text(), unpaused.text(), "{element}, {what}");
        }
    }
}

/// What whispertranscribe sends downstream, in order.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Segment {
        base: gst::ClockTime,
    },
    Gap {
        pts: gst::ClockTime,
        end: gst::ClockTime,
    },
    Text {
        pts: gst::ClockTime,
        end: gst::ClockTime,
        text: String,
    },
    /// A custom downstream event the test sent, by its structure name.
    Marker(String),
}

/// Pushes each (segment base, audio) through a whispertranscribe harness as one file after
/// another (timestamps from 0 in each, as concat sends them), in 100 ms buffers; returns
/// what came out of the source pad after the harness's own segment, in order, until EOS.
fn transcribe_files(live: bool, files: &[(gst::ClockTime, Vec<f32>)]) -> Vec<Out> {
    pipeline::init();
    let mut h = gst_check::Harness::new("whispertranscribe");
    h.set_live(live);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let probe_seen = seen.clone();
    h.element().unwrap().static_pad("src").unwrap().add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let out = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => Some(Out::Text {
                    pts: b.pts().unwrap(),
                    end: b.pts().unwrap() + b.duration().unwrap(),
                    text: String::from_utf8(b.map_readable().unwrap().to_vec()).unwrap(),
                }),
                Some(gst::PadProbeData::Event(e)) => match e.view() {
                    gst::EventView::Segment(s) => Some(Out::Segment {
                        base: s
                            .segment()
                            .downcast_ref::<gst::ClockTime>()
                            .unwrap()
                            .base()
                            .unwrap(),
                    }),
                    gst::EventView::Gap(g) => {
                        let (pts, duration) = g.get();
                        Some(Out::Gap {
                            pts,
                            end: pts + duration.unwrap(),
                        })
                    }
                    gst::EventView::CustomDownstream(c) => c
                        .structure()
                        .filter(|s| s.name().starts_with("test-"))
                        .map(|s| Out::Marker(s.name().to_string())),
                    _ => None,
                },
                _ => None,
            };
            probe_seen.lock().unwrap().extend(out);
            gst::PadProbeReturn::Ok
        },
    );
    h.set_src_caps_str("audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved");
    h.play();
    for (base, samples) in files {
        let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
        segment.set_base(*base);
        assert!(h.push_event(gst::event::Segment::new(&segment)));
        for (i, c) in samples.chunks(1600).enumerate() {
            let bytes: Vec<u8> = c.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut b = gst::Buffer::from_slice(bytes);
            b.get_mut()
                .unwrap()
                .set_pts(gst::ClockTime::from_mseconds(100 * i as u64));
            assert_eq!(h.push(b), Ok(gst::FlowSuccess::Ok));
        }
        // A serialized event after each file's audio.
        let marker = gst::Structure::new_empty("test-after-file");
        assert!(h.push_event(gst::event::CustomDownstream::new(marker)));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let out = seen.lock().unwrap().clone();
    out[1..].to_vec()
}

fn texts(out: &[Out]) -> String {
    let texts: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Out::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    texts.join(" ")
}

#[test]
fn gaps_keep_the_text_stream_moving_and_in_order() {
    let (path, reference) = speech();
    let silence = vec![0.0f32; 3 * 16_000];
    let audio = [&silence[..], &common::read_audio(&path), &silence].concat();
    let total = gst::ClockTime::from_nseconds(audio.len() as u64 * 1_000_000_000 / 16_000);
    let speech_starts = gst::ClockTime::from_mseconds(2500);
    for live in [false, true] {
        let out = transcribe_files(live, &[(gst::ClockTime::ZERO, audio.clone())]);
        assert!(common::wer(&reference, &texts(&out)) <= 0.2, "{out:?}");
        assert!(matches!(out[0], Out::Segment { .. }), "{out:?}");
        // A GAP right away (a sink downstream can preroll before the first final) ...
        assert!(
            matches!(out[1], Out::Gap { pts, .. } if pts == gst::ClockTime::ZERO),
            "{out:?}"
        );
        // ... then the leading silence is declared passed before the text comes ...
        let first_text = out
            .iter()
            .position(|o| matches!(o, Out::Text { .. }))
            .unwrap();
        let announced = out[..first_text].iter().filter_map(|o| match o {
            Out::Gap { end, .. } => Some(*end),
            _ => None,
        });
        assert!(announced.max().unwrap() >= speech_starts, "{out:?}");
        // ... and the stream never goes back in time, and reaches the end of the audio.
        let mut position = gst::ClockTime::ZERO;
        for o in out[1..].iter().filter(|o| !matches!(o, Out::Marker(_))) {
            let (Out::Gap { pts, end } | Out::Text { pts, end, .. }) = o else {
                panic!("a second segment: {out:?}");
            };
            assert!(*pts >= position, "{o:?} before {position} in {out:?}");
            position = *end;
        }
        assert!(
            position >= total - gst::ClockTime::from_seconds(1),
            "{out:?}"
        );
        if !live {
            // A file's text is where it was said: not moved by the gaps.
            let Out::Text { pts, .. } = out[first_text] else {
                unreachable!()
            };
            assert!(pts >= speech_starts && pts < speech_starts + gst::ClockTime::from_seconds(1));
        }
    }
}

#[test]
fn a_files_text_comes_before_the_next_files_segment() {
    let (path, reference) = speech();
    // Each file ends in a pause that ends its utterance (2 s in files), so its text is due
    // before the marker that follows its audio; an event in mid-utterance does not wait
    // for the utterance to end.
    let mut audio = common::read_audio(&path);
    audio.extend(std::iter::repeat_n(0.0f32, 40_000));
    let duration = gst::ClockTime::from_nseconds(audio.len() as u64 * 1_000_000_000 / 16_000);
    let out = transcribe_files(
        false,
        &[
            (gst::ClockTime::ZERO, audio.clone()),
            (duration, audio.clone()),
        ],
    );
    let second = out
        .iter()
        .rposition(|o| matches!(o, Out::Segment { .. }))
        .unwrap();
    assert_eq!(out[second], Out::Segment { base: duration });
    // Events stay in order with the audio: each file's marker after its text (it used to
    // overtake the queue).
    let marker = Out::Marker("test-after-file".into());
    assert_eq!(out[second - 1], marker, "{out:?}");
    assert_eq!(out.last(), Some(&marker), "{out:?}");
    // Each file's whole text under its own segment, on its own timeline (from 0).
    for part in [&out[..second], &out[second..]] {
        assert!(common::wer(&reference, &texts(part)) <= 0.2, "{out:?}");
        assert!(
            part.iter()
                .any(|o| matches!(o, Out::Text { pts, .. } if *pts < duration / 2)),
            "{out:?}"
        );
    }
}
