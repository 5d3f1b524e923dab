//! whispersink's `location` (subtitles written as finals come, parsed back, also by GStreamer's
//! `subparse`) and whispertranscribe's text on video through `textoverlay`.

mod common;

use common::pipeline;
use gst::prelude::*;
use gstwhisperstt::subtitles::parse;
use std::time::Duration;

#[test]
fn subtitles_parse_back_in_order_with_the_spoken_text() {
    let clips = common::pocketsphinx_clips();
    let clips = &clips[6..9];
    let reference: Vec<&str> = clips.iter().map(|(_, t)| t.as_str()).collect();
    let dir = tempfile::tempdir().unwrap();
    let sources: String = clips
        .iter()
        .map(|(p, _)| format!("{} ! c. ", pipeline::source(p)))
        .collect();
    for (name, parser) in [
        (
            "out.srt",
            parse::srt as fn(&str) -> Result<parse::Cues, String>,
        ),
        ("out.vtt", parse::webvtt),
        ("out.jsonl", parse::json_lines),
    ] {
        let path = dir.path().join(name);
        let run = pipeline::run(&format!(
            "concat name=c ! whispersink location=\"{}\" {sources}",
            path.display()
        ));
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        let finals: Vec<String> = run
            .transcripts
            .iter()
            .filter(|s| s.get::<bool>("is-final").unwrap())
            .map(|s| s.get::<String>("text").unwrap())
            .collect();
        let text = std::fs::read_to_string(&path).unwrap();
        let cues = parser(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        assert!(finals.len() >= 3, "{name}:\n{text}");
        if name.ends_with(".jsonl") {
            // One record per final, with its fields.
            assert_eq!(cues.len(), finals.len(), "{name}:\n{text}");
            for (cue, final_text) in cues.iter().zip(&finals) {
                assert_eq!(&cue.2, final_text, "{name}");
            }
        } else {
            // Cues a viewer can read: every word of the finals in order, at most two lines of
            // 42 characters and 7 s each.
            let words = |t: &str| t.split_whitespace().map(String::from).collect::<Vec<_>>();
            let shown: Vec<String> = cues.iter().flat_map(|c| words(&c.2)).collect();
            assert_eq!(shown, words(&finals.join(" ")), "{name}:\n{text}");
            assert!(cues.len() > finals.len(), "no final was split:\n{text}");
            for cue in &cues {
                let lines: Vec<&str> = cue.2.lines().collect();
                assert!((1..=2).contains(&lines.len()), "{name}: {cue:?}");
                assert!(
                    lines.iter().all(|l| l.chars().count() <= 42),
                    "{name}: {cue:?}"
                );
                assert!(cue.1 - cue.0 <= Duration::from_secs(7), "{name}: {cue:?}");
            }
        }
        for cue in &cues {
            assert!(cue.0 <= cue.1, "{name}: {cue:?}");
        }
        for w in cues.windows(2) {
            assert!(w[0].1 <= w[1].0, "{name}: times go backwards: {w:?}");
        }
        // The three clips follow each other: the last cue ends near their total length.
        let total: f64 = clips
            .iter()
            .map(|(p, _)| common::read_audio(p).len() as f64 / 16_000.0)
            .sum();
        let end = cues.last().unwrap().1;
        assert!(
            end <= Duration::from_secs_f64(total) && end >= Duration::from_secs_f64(total - 5.0),
            "{name}: last cue ends at {end:?} of {total} s"
        );
        let wer = common::wer(&reference.join(" "), &finals.join(" "));
        assert!(wer <= 0.15, "{name}: WER {wer:.3}");
    }
}

#[test]
fn an_unusable_location_fails_the_start_naming_it() {
    pipeline::init();
    for (location, expected) in [
        ("/tmp/whisperstt-subtitles.txt", "subtitle format"),
        ("/nonexistent-dir/out.srt", "/nonexistent-dir/out.srt"),
    ] {
        let p = pipeline::launch(&format!(
            "audiotestsrc num-buffers=1 ! audio/x-raw,rate=16000,channels=1 ! whispersink location={location}"
        ));
        let bus = p.bus().unwrap();
        assert!(p.set_state(gst::State::Playing).is_err(), "{location}");
        let msg = bus
            .pop_filtered(&[gst::MessageType::Error])
            .expect("an error");
        let gst::MessageView::Error(e) = msg.view() else {
            unreachable!()
        };
        assert!(
            e.error().to_string().contains(expected),
            "{location}: {}",
            e.error()
        );
        p.set_state(gst::State::Null).unwrap();
    }
}

/// A subtitle file that cannot take a cue (a full disk) stops the pipeline with an error
/// naming it.
#[test]
fn a_failed_subtitle_write_is_an_error_naming_the_file() {
    let (clip, _) = common::reference_speech().into_iter().next().unwrap();
    let run = pipeline::run(&format!(
        "{} ! whispersink location=/dev/full subtitle-format=srt",
        pipeline::source(&clip)
    ));
    assert!(
        run.errors
            .iter()
            .any(|e| e.contains("'/dev/full'") && e.contains("No space left")),
        "{:?}",
        run.errors
    );
}

/// What GStreamer's own `subparse` reads from `path`: each cue's text, start and end.
fn subparse(path: &std::path::Path) -> Vec<(String, Duration, Duration)> {
    pipeline::init();
    let p = pipeline::launch(&format!(
        "filesrc location=\"{}\" ! subparse ! appsink name=out sync=false",
        path.display()
    ));
    let sink: gst_app::AppSink = p.by_name("out").unwrap().downcast().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut cues = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().unwrap();
        let text = String::from_utf8(buffer.map_readable().unwrap().to_vec()).unwrap();
        let start: Duration = buffer.pts().unwrap().into();
        let end = start + Duration::from(buffer.duration().unwrap());
        cues.push((text, start, end));
    }
    p.set_state(gst::State::Null).unwrap();
    cues
}

#[test]
fn gstreamer_subparse_reads_the_cues_whispersink_writes() {
    let (path, _) = common::pocketsphinx_clip("-0870.wav");
    let dir = tempfile::tempdir().unwrap();
    for name in ["out.srt", "out.vtt"] {
        let file = dir.path().join(name);
        let run = pipeline::run(&format!(
            "{} ! whispersink location=\"{}\"",
            pipeline::source(&path),
            file.display()
        ));
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        let written = std::fs::read_to_string(&file).unwrap();
        let ours = match name {
            "out.srt" => parse::srt(&written),
            _ => parse::webvtt(&written),
        }
        .unwrap();
        let theirs = subparse(&file);
        assert!(!ours.is_empty(), "{name}: no cue");
        assert_eq!(theirs.len(), ours.len(), "{name}:\n{written}\n{theirs:?}");
        for (t, o) in theirs.iter().zip(ours.iter()) {
            // subparse gives Pango markup; the text has none, so it is the text itself.
            assert_eq!(t.0.trim_end(), o.2, "{name}");
            assert_eq!((t.1, t.2), (o.0, o.1), "{name}: {}", o.2);
        }
    }
}

#[test]
fn whispertranscribe_captions_video_through_textoverlay() {
    pipeline::init();
    let (path, reference) = common::pocketsphinx_clip("-0870.wav");
    let p = pipeline::launch(&format!(
        "{} ! whispertranscribe ! o.text_sink \
         videotestsrc num-buffers=200 ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         textoverlay name=o ! fakesink name=video",
        pipeline::source(&path)
    ));
    // What reaches the overlay's text pad, and how many frames leave it.
    let texts = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = texts.clone();
    let text_pad = p.by_name("o").unwrap().static_pad("text_sink").unwrap();
    text_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer() {
            let map = buffer.map_readable().unwrap();
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&map).into_owned());
        }
        gst::PadProbeReturn::Ok
    });
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = frames.clone();
    let video_pad = p.by_name("video").unwrap().static_pad("sink").unwrap();
    video_pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    let run = pipeline::play(&p, Duration::from_secs(60));
    p.set_state(gst::State::Null).unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(frames.load(std::sync::atomic::Ordering::Relaxed), 200);
    let texts = texts.lock().unwrap().join(" ");
    let wer = common::wer(&reference, &texts);
    assert!(wer <= 0.15, "WER {wer:.3}: {texts}");
}
