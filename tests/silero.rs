//! The optional Silero voice detector (`vad-model`), on the real engine, through the shared
//! model cache. Its ggml file is only in ../shared (users download it), so every test here is
//! a `shared_` one.

mod common;

use common::feed;

use common::pipeline;
use gstwhisperstt::model::cache::ModelCache;
use gstwhisperstt::model::{ContextOptions, Device, ModelKey};
use gstwhisperstt::scheduler::DecodeSlot;
use gstwhisperstt::transcriber::{DecodeOptions, StreamOptions, Transcriber, Transcript};
use std::path::PathBuf;
use std::time::Instant;

fn silero_path() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/models/ggml-silero-v6.2.0.bin");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A transcriber detecting voice with Silero, both models from `cache`.
fn silero_transcriber(cache: &ModelCache, live: bool) -> Transcriber {
    let key = ModelKey::new(
        &common::model_path(),
        Device::Cpu,
        ContextOptions::default(),
    )
    .unwrap();
    let mut t = Transcriber::new(
        cache.acquire(&key, None).unwrap(),
        &DecodeOptions::default(),
        StreamOptions {
            live,
            ..StreamOptions::default()
        },
        DecodeSlot::for_device(Device::Cpu),
    )
    .unwrap();
    let vad = ModelKey::silero_vad(&silero_path()).unwrap();
    t.use_silero(cache.acquire_silero(&vad, None).unwrap());
    t
}

fn finals_text(out: &[Transcript]) -> String {
    out.iter()
        .filter(|t| t.is_final)
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn shared_silero_hears_speech_and_ignores_silence_and_noise() {
    let cache = ModelCache::new();
    let jfk = common::read_wav(&common::jfk_wav());
    for live in [false, true] {
        let mut t = silero_transcriber(&cache, live);
        let started = Instant::now();
        let out = feed(&mut t, &jfk);
        let text = finals_text(&out);
        // Live finals are shorter utterances (400 ms pauses end them): a word may go.
        let bound = if live { 0.1 } else { 0.0 };
        let wer = common::wer(common::JFK_TEXT, &text);
        assert!(wer <= bound, "live {live}: WER {wer:.3}: {text}");
        // Each final within JFK's 11 s, in order.
        for f in out.iter().filter(|t| t.is_final) {
            assert!(f.start < f.end && f.end.as_secs_f64() <= 11.1, "{f:?}");
        }
        eprintln!("JFK with Silero (live {live}): {:?}", started.elapsed());
    }
    for (name, audio) in [
        ("silence", vec![0.0f32; 60 * 16_000]),
        ("white noise", common::noise(60, false)),
        ("brown noise", common::noise(60, true)),
    ] {
        let mut t = silero_transcriber(&cache, true);
        let started = Instant::now();
        let out = feed(&mut t, &audio);
        assert!(out.is_empty(), "{name}: {out:?}");
        assert_eq!(t.inference_calls(), 0, "{name}");
        eprintln!("60 s of {name} through Silero: {:?}", started.elapsed());
    }
    // One load of each model for all those streams.
    let vad = ModelKey::silero_vad(&silero_path()).unwrap();
    assert_eq!(cache.loads_of(&vad), 1);
}

#[test]
fn shared_silero_utterances_split_at_pauses_with_timings_on_the_stream_clock() {
    // Two JFK copies 4 s apart: two groups of finals, the second group 15 s later.
    let cache = ModelCache::new();
    let jfk = common::read_wav(&common::jfk_wav());
    let mut audio = jfk.clone();
    audio.extend(std::iter::repeat_n(0.0, 4 * 16_000));
    audio.extend(&jfk);
    let mut t = silero_transcriber(&cache, false);
    let out = feed(&mut t, &audio);
    assert_eq!(out.len(), 2, "{out:?}");
    let shift = out[1].start.as_secs_f64() - out[0].start.as_secs_f64();
    assert!(
        (shift - 15.0).abs() <= 0.3,
        "second utterance {shift} s after the first"
    );
    assert_eq!(t.position(), audio.len() as u64);
}

#[test]
fn shared_wrong_or_damaged_silero_files_are_clear_errors() {
    let cache = ModelCache::new();
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(silero_path()).unwrap();
    let truncated = dir.path().join("truncated.bin");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let header_only = dir.path().join("header.bin");
    std::fs::write(&header_only, &good[..40]).unwrap();
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, vec![0x5au8; 4096]).unwrap();
    for (path, expected) in [
        (truncated, "truncated"),
        (header_only, "truncated"),
        (garbage, "not a ggml Silero VAD model"),
        // A Whisper model is not a voice detector.
        (common::model_path(), "not a ggml Silero VAD model"),
    ] {
        let key = ModelKey::silero_vad(&path).unwrap();
        let err = cache.acquire_silero(&key, None).unwrap_err().to_string();
        assert!(err.contains(expected), "{}: {err}", path.display());
    }
    // A voice detector's key is not a Whisper model's, however it is asked for.
    let vad = ModelKey::silero_vad(&silero_path()).unwrap();
    let err = cache.acquire(&vad, None).unwrap_err().to_string();
    assert!(
        err.contains("is a Silero voice detector, not a Whisper model"),
        "{err}"
    );
    assert_eq!(cache.stats().loads, 0);
}

#[test]
fn shared_whispersink_detects_voice_with_silero_from_the_cache() {
    let silero = silero_path();
    let run = pipeline::run(&format!(
        "{} ! whispersink vad-model=\"{}\"",
        pipeline::source(&common::jfk_wav()),
        silero.display()
    ));
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(
        common::wer(common::JFK_TEXT, &run.text()),
        0.0,
        "{}",
        run.text()
    );
    let models: Vec<String> = run
        .model_messages
        .iter()
        .map(|s| s.get::<String>("model").unwrap())
        .collect();
    assert!(
        models.iter().any(|m| m.ends_with("ggml-silero-v6.2.0.bin")),
        "{models:?}"
    );

    let wrong = pipeline::run(&format!(
        "{} ! whispersink vad-model=/nonexistent/silero.bin",
        pipeline::source(&common::jfk_wav())
    ));
    assert!(
        wrong
            .errors
            .iter()
            .any(|e| e.contains("/nonexistent/silero.bin")),
        "{:?}",
        wrong.errors
    );
}
