//! The examples in examples/ as users run them, on pocketsphinx-testdata recordings. cargo
//! builds them for `cargo test --all-targets` (scripts/test.sh).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Runs `target/<profile>/examples/<name>` (next to this test's own binary).
fn example(name: &str, args: &[&str]) -> (Output, String) {
    let deps = std::env::current_exe().unwrap();
    let exe: PathBuf = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        exe.is_file(),
        "{} is missing: cargo test --all-targets builds it (or cargo build --examples)",
        exe.display()
    );
    let out = Command::new(&exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (out, stdout)
}

/// Two LibriVox sentences (6.8 s and 3 s) tiny.en hears right; the others have a word or
/// two it mishears, which would make a short clip's WER bound meaningless.
fn librivox() -> Vec<(PathBuf, String)> {
    vec![
        common::pocketsphinx_clip("-0870.wav"),
        common::pocketsphinx_clip("-0930.wav"),
    ]
}

/// The text after the two-space gap each example prints before a final's words.
fn text_of(line: &str) -> &str {
    line.split_once("  ").map_or("", |(_, t)| t)
}

#[test]
fn media_server_shares_one_load_across_every_stream() {
    let clips = librivox();
    let (a, b) = (clips[0].0.to_str().unwrap(), clips[1].0.to_str().unwrap());
    let (out, stdout) = example("media_server", &["--streams", "2", a, b]);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Inputs are given out in turn: streams 0 and 2 play the first clip, 1 and 3 the second.
    for k in 0..4 {
        let prefix = format!("[stream {k}] ");
        let text: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(text_of)
            .collect();
        let wer = common::wer(&clips[k % 2].1, &text.join(" "));
        assert!(wer <= 0.15, "stream {k}: WER {wer:.3}: {stdout}");
    }
    let said: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  stream "))
        .collect();
    assert_eq!(said.len(), 4, "{stdout}");
    assert_eq!(
        said.iter().filter(|l| l.contains("model loaded")).count(),
        1,
        "{stdout}"
    );
    assert!(
        stdout.contains("model cache: 1 loads, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn file_to_srt_writes_the_finals_it_prints() {
    let (clip, reference) = &librivox()[1];
    let dir = tempfile::tempdir().unwrap();
    let srt = dir.path().join("out.srt");
    let (out, stdout) = example(
        "file_to_srt",
        &[clip.to_str().unwrap(), srt.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let finals = stdout.lines().filter(|l| l.contains(" --> ")).count();
    assert!(
        stdout.contains(&format!("{finals} finals; subtitles in")),
        "{stdout}"
    );
    let file = std::fs::read_to_string(&srt).unwrap();
    // SRT: index, times, text lines, blank line; the words are those the example printed.
    let cues: Vec<&str> = file
        .split("\n\n")
        .filter(|c| !c.trim().is_empty())
        .collect();
    assert!(cues.len() >= finals && finals >= 1, "{file}");
    let text: Vec<&str> = cues.iter().flat_map(|c| c.lines().skip(2)).collect();
    let wer = common::wer(reference, &text.join(" "));
    assert!(wer <= 0.15, "WER {wer:.3}: {file}");
    let (bad, _) = example("file_to_srt", &["/nonexistent.wav", srt.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.wav"));
}

#[test]
fn live_captions_prints_finals_and_ends_with_its_source() {
    let (clip, reference) = &librivox()[0];
    let source = format!("filesrc location=\"{}\" ! decodebin", clip.display());
    let (out, stdout) = example("live_captions", &["--source", &source]);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not a terminal: finals only, one a line, after their start time in brackets.
    let text: Vec<&str> = stdout
        .lines()
        .map(|l| l.split_once("] ").map_or("", |(_, t)| t))
        .collect();
    assert!(
        !text.is_empty() && stdout.starts_with("[0:00:0"),
        "{stdout}"
    );
    let wer = common::wer(reference, &text.join(" "));
    assert!(wer <= 0.15, "WER {wer:.3}: {stdout}");
    let (bad, _) = example("live_captions", &["--source", "nosuchsrc"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no element \"nosuchsrc\""));
}
