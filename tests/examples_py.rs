//! The script examples, run as users run them: examples/transcripts.py (PyGObject) and
//! examples/captions_video.sh (gst-launch-1.0), on pocketsphinx-testdata recordings.
//!
//! They load the plugin the GStreamer way, so the tests point GST_PLUGIN_PATH at the library
//! this build made (not the one installed system-wide, which may be older), with a registry
//! file of their own under target/.

mod common;

use common::pipeline;
use gst::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// target/<profile>/, from this test's own binary (target/<profile>/deps/examples_py-...).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A directory holding only this build's plugin (cargo leaves the cdylib it built for the
/// tests in deps/, among every other crate's libraries), and a registry file beside it.
fn plugin_env() -> (PathBuf, PathBuf) {
    let built = profile_dir().join("deps/libgstwhisperstt.so");
    assert!(built.is_file(), "{} is missing", built.display());
    let dir = profile_dir().join("examples_py");
    let plugins = dir.join("plugin");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&built, plugins.join("libgstwhisperstt.so")).unwrap();
    (plugins, dir.join("registry.bin"))
}

/// Runs a program (a path is taken from the repository's root) with this build's plugin and
/// no stdin; returns its output and stdout.
fn run(program: &str, args: &[&str]) -> (Output, String) {
    let program = if program.contains('/') {
        repo().join(program)
    } else {
        PathBuf::from(program)
    };
    static PLUGIN: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    let (plugins, registry) = PLUGIN.get_or_init(plugin_env);
    let out = Command::new(&program)
        .args(args)
        .current_dir(repo())
        .env("GST_PLUGIN_PATH", plugins)
        .env("GST_REGISTRY", registry)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (out, stdout)
}

fn describe(out: &Output, stdout: &str) -> String {
    format!(
        "{}\n--- stdout\n{stdout}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Debian's python3, which python3-gi is installed for (a pyenv or venv `python3` earlier in
/// PATH would not see it). A machine without it fails here, naming the packages.
fn python() -> &'static str {
    let python = if Path::new("/usr/bin/python3").is_file() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let ok = Command::new(python)
        .args([
            "-c",
            "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import Gst from gi: install python3-gi and gir1.2-gstreamer-1.0 (scripts/setup.sh)"
    );
    python
}

/// A LibriVox sentence from pocketsphinx-testdata (6.8 s) that tiny.en hears right, and its
/// reference text.
fn librivox_0870() -> (String, String) {
    let (path, text) = common::pocketsphinx_clip("-0870.wav");
    (path.to_str().unwrap().to_string(), text)
}

#[test]
fn transcripts_py_prints_finals_with_their_details() {
    let (clip, reference) = librivox_0870();
    let (out, stdout) = run(python(), &["examples/transcripts.py", &clip]);
    assert!(out.status.success(), "{}", describe(&out, &stdout));

    // "final   [   0.00 -    6.81]  text", then its details and its words.
    let lines: Vec<&str> = stdout.lines().collect();
    let finals: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("final "))
        .collect();
    assert!(!finals.is_empty(), "no final: {}", describe(&out, &stdout));
    let mut text = Vec::new();
    for &i in &finals {
        let (times, t) = lines[i]["final".len()..]
            .trim_start()
            .split_once("]  ")
            .unwrap_or_else(|| panic!("not a final line: {}", lines[i]));
        let (start, end) = times
            .trim_start_matches('[')
            .split_once(" - ")
            .map(|(s, e)| (s.trim().parse::<f64>(), e.trim().parse::<f64>()))
            .unwrap();
        let (start, end) = (start.unwrap(), end.unwrap());
        assert!(
            0.0 <= start && start < end && end <= 7.2,
            "times {start}..{end}: {}",
            lines[i]
        );
        text.push(t.to_string());
        // The details come from the message's fields by name: a wrong name, a missing field
        // or a wrong type would have ended the script with a traceback.
        let details = lines.get(i + 1).copied().unwrap_or_default();
        assert!(
            details.contains("language en") && details.contains("confidence 0."),
            "{details}"
        );
        // "words: And[0.06-0.21 p=0.50] Mr.[0.22-0.59 p=0.85] ...": the words say the text.
        let words = lines.get(i + 2).copied().unwrap_or_default();
        let said: Vec<&str> = words
            .trim_start()
            .strip_prefix("words: ")
            .unwrap_or_else(|| panic!("no words after the final: {words}"))
            .split("] ")
            .map(|w| w.split_once('[').map_or("", |(w, _)| w))
            .collect();
        assert!(
            words.contains(" p=0.") && common::wer(t, &said.join(" ")) <= 0.1,
            "words {said:?} for {t:?}"
        );
    }
    assert!(
        !stdout.contains("partial"),
        "a file is not live: no partials expected\n{stdout}"
    );
    let text = text.join(" ");
    let wer = common::wer(&reference, &text);
    assert!(wer <= 0.15, "WER {wer:.3}: {text:?} vs {reference:?}");
}

#[test]
fn transcripts_py_fails_with_the_error_text() {
    let (out, stdout) = run(
        python(),
        &["examples/transcripts.py", "/nonexistent/talk.ogg"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out, &stdout));
    assert!(
        stderr.contains("error from") && stderr.contains("/nonexistent/talk.ogg"),
        "{stderr}"
    );
    // A model that does not exist: the element's own error, naming it.
    let (clip, _) = librivox_0870();
    let (out, stdout) = run(
        python(),
        &["examples/transcripts.py", &clip, "--model", "no-such-model"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out, &stdout));
    assert!(stderr.contains("'no-such-model' not found"), "{stderr}");
}

/// PNG's signature and IHDR chunk: (width, height).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR", "IHDR is not the first chunk");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (be(&png[16..20]), be(&png[20..24]))
}

/// Decoded RGB video frames of a launch line that ends in `appsink name=sink` (caps
/// video/x-raw,format=RGB): (PTS, width, height, pixels), tightly packed rows.
fn frames(description: &str) -> Vec<(gst::ClockTime, usize, usize, Vec<u8>)> {
    let p = pipeline::launch(description);
    let sink = p
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    sink.set_sync(false);
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    loop {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            p.set_state(gst::State::Null).unwrap();
            panic!("{description}: {msg:?}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{description}: no end after 60 s"
        );
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) else {
            if sink.is_eos() {
                break;
            }
            continue;
        };
        let s = sample.caps().unwrap().structure(0).unwrap();
        let (w, h) = (
            s.get::<i32>("width").unwrap() as usize,
            s.get::<i32>("height").unwrap() as usize,
        );
        let buffer = sample.buffer().unwrap();
        let map = buffer.map_readable().unwrap();
        let stride = map.len() / h;
        assert!(stride >= 3 * w, "{} bytes for {w}x{h}", map.len());
        let mut rgb = Vec::with_capacity(3 * w * h);
        for row in map.chunks_exact(stride).take(h) {
            rgb.extend_from_slice(&row[..3 * w]);
        }
        out.push((buffer.pts().unwrap_or(gst::ClockTime::ZERO), w, h, rgb));
    }
    p.set_state(gst::State::Null).unwrap();
    out
}

fn png_pixels(path: &Path) -> (usize, usize, Vec<u8>) {
    let mut f = frames(&format!(
        "filesrc location=\"{}\" ! pngdec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink",
        path.display()
    ));
    assert_eq!(f.len(), 1, "{}", path.display());
    let (_, w, h, rgb) = f.remove(0);
    (w, h, rgb)
}

/// The pixels that differ between two frames: (how many, bounding box x0, y0, x1, y1; the
/// box is inverted, x0 > x1, when none does).
fn difference(w: usize, a: &[u8], b: &[u8], threshold: u8) -> (usize, [usize; 4]) {
    let mut n = 0;
    let mut bbox = [usize::MAX, usize::MAX, 0, 0];
    for (i, (pa, pb)) in a.chunks_exact(3).zip(b.chunks_exact(3)).enumerate() {
        if pa.iter().zip(pb).any(|(x, y)| x.abs_diff(*y) > threshold) {
            let (x, y) = (i % w, i / w);
            n += 1;
            bbox = [
                bbox[0].min(x),
                bbox[1].min(y),
                bbox[2].max(x),
                bbox[3].max(y),
            ];
        }
    }
    (n, bbox)
}

/// "[   0.00 -    6.81] text" lines from scripts/print-transcripts.py: (start, end, text).
fn printed_transcripts(stdout: &str) -> Vec<(f64, f64, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (times, text) = l.strip_prefix('[')?.split_once("] ")?;
            let (s, e) = times.split_once(" - ")?;
            Some((
                s.trim().parse().ok()?,
                e.trim().parse().ok()?,
                text.to_string(),
            ))
        })
        .collect()
}

#[test]
fn captions_video_screenshot_shows_the_transcribed_caption() {
    let (clip, reference) = librivox_0870();
    let dir = repo().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = |at: &str, name: &str| {
        let png = dir.join(name);
        let _ = std::fs::remove_file(&png);
        let (out, stdout) = run(
            "examples/captions_video.sh",
            &["--screenshot", &clip, at, png.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", describe(&out, &stdout));
        (png, stdout)
    };
    // 3 s into the sentence, and 9.5 s: after it (the recording is 7.1 s), the same bars
    // with no caption.
    let (captions, stdout) = shot("3", "captions.png");
    let (bare, _) = shot("9.5", "no-caption.png");

    // The caption really came from whispertranscribe: its transcript covers 3 s and is the
    // sentence.
    let transcripts = printed_transcripts(&stdout);
    assert!(
        transcripts.iter().any(|(s, e, _)| *s <= 3.0 && 3.0 < *e),
        "no transcript at 3 s: {stdout}"
    );
    let text: Vec<&str> = transcripts.iter().map(|(_, _, t)| t.as_str()).collect();
    let wer = common::wer(&reference, &text.join(" "));
    assert!(wer <= 0.15, "WER {wer:.3}: {text:?}");

    let bytes = std::fs::read(&captions).unwrap();
    assert_eq!(png_size(&bytes), (640, 360));
    assert_eq!(png_size(&std::fs::read(&bare).unwrap()), (640, 360));

    // The pixels: the two frames differ only in the caption, a wide band near the bottom.
    let (w, h, with) = png_pixels(&captions);
    let (_, _, without) = png_pixels(&bare);
    assert_eq!((w, h), (640, 360));
    let (n, [x0, y0, x1, y1]) = difference(w, &with, &without, 8);
    eprintln!("caption: {n} pixels differ, within ({x0},{y0})-({x1},{y1})");
    assert!(n > w * h / 50, "only {n} pixels differ: no caption drawn?");
    assert!(
        y0 >= h / 2 && x1 - x0 >= w / 2,
        "the difference ({x0},{y0})-({x1},{y1}) is not a caption at the bottom"
    );
}

#[test]
fn captions_video_burns_captions_into_a_video_file() {
    let (clip, reference) = librivox_0870();
    let dir = profile_dir().join("examples_py");
    std::fs::create_dir_all(&dir).unwrap();
    // The input: 8 s of colour bars with the sentence as its sound track, VP8 and Opus in WebM.
    let input = dir.join("talk.webm");
    let made = pipeline::run(&format!(
        "videotestsrc pattern=smpte75 num-buffers=200 ! video/x-raw,width=320,height=180,framerate=25/1 ! \
         vp8enc deadline=1 ! webmmux name=mux ! filesink location=\"{}\" \
         filesrc location=\"{clip}\" ! wavparse ! audioconvert ! audioresample ! opusenc ! mux.",
        input.display()
    ));
    assert!(made.errors.is_empty(), "{:?}", made.errors);

    let output = dir.join("captioned.webm");
    let _ = std::fs::remove_file(&output);
    let (out, stdout) = run(
        "examples/captions_video.sh",
        &[input.to_str().unwrap(), output.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", describe(&out, &stdout));
    let text: Vec<String> = printed_transcripts(&stdout)
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    let wer = common::wer(&reference, &text.join(" "));
    assert!(wer <= 0.15, "WER {wer:.3}: {text:?}");

    // The output keeps the whole picture and the sound.
    let video = |path: &Path| {
        frames(&format!(
            "filesrc location=\"{}\" ! decodebin caps=video/x-raw ! videoconvert ! \
             video/x-raw,format=RGB ! appsink name=sink",
            path.display()
        ))
    };
    let (before, after) = (video(&input), video(&output));
    assert_eq!(after.len(), 200, "frames in the output");
    let sound = pipeline::run(&format!(
        "filesrc location=\"{}\" ! decodebin caps=audio/x-raw ! fakesink name=sink",
        output.display()
    ));
    assert!(
        sound.errors.is_empty(),
        "no sound track: {:?}",
        sound.errors
    );

    // At 3 s, during the sentence, the frame has a caption over its lower part that the input
    // did not have; at 7.6 s, after it, the picture is the input's (up to VP8's losses).
    let at = |f: &[(gst::ClockTime, usize, usize, Vec<u8>)], ms: u64| {
        let t = gst::ClockTime::from_mseconds(ms);
        f.iter().find(|(pts, ..)| *pts >= t).unwrap().clone()
    };
    let (_, w, h, a) = at(&after, 3000);
    let (_, _, _, b) = at(&before, 3000);
    let (n, [x0, y0, x1, _]) = difference(w, &a, &b, 40);
    eprintln!("at 3 s: {n} pixels differ from the input, from ({x0},{y0}) to x {x1}");
    assert!(
        n > w * h / 50 && y0 >= h / 2 && x1 - x0 >= w / 2,
        "no caption at 3 s: {n} pixels differ, from ({x0},{y0}) to x {x1}"
    );
    let (_, _, _, a) = at(&after, 7600);
    let (_, _, _, b) = at(&before, 7600);
    let (n, _) = difference(w, &a, &b, 40);
    eprintln!("at 7.6 s: {n} pixels differ from the input");
    assert!(
        n < w * h / 200,
        "{n} pixels differ at 7.6 s, after the sentence"
    );
}
