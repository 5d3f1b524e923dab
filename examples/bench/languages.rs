//! `bench languages`: the multilingual corpus (../shared/corpus/multilingual: de, es, fr, pt,
//! zh, ja, ru) through Whisper base with `language=auto`, whisperstt (the language detected
//! per stream and per utterance) against faster-whisper int8 on the same weights: how often
//! each identifies the language, and the word error rate (the character error rate for zh
//! and ja). Then a recording that switches language between speakers: how many of its
//! utterances get their own language, and its WER, beside faster-whisper with and without
//! `multilingual=True`. Prints tables, writes target/bench/languages.json.

use crate::common;
use crate::common::multilingual::{self, Clip};
use gstwhisperstt::model::cache::ModelCache;
use gstwhisperstt::transcriber::{DecodeOptions, LanguageDetection, Transcript};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// The languages the switching recording goes through, one speaker each.
const SWITCHING: [&str; 4] = ["de", "fr", "es", "pt"];
/// Seconds between its speakers.
const SWITCH_PAUSE: f32 = 1.5;

fn decode(detection: LanguageDetection) -> DecodeOptions {
    DecodeOptions {
        threads: crate::threads(),
        language_detection: detection,
        ..DecodeOptions::default()
    }
}

/// whisperstt in file mode on each clip: every result, and the seconds it took in all.
fn whisperstt(
    model: &Path,
    audio: &[Vec<f32>],
    mode: LanguageDetection,
) -> (Vec<Vec<Transcript>>, f64) {
    let cache = ModelCache::new();
    let started = Instant::now();
    let out = audio
        .iter()
        .map(|a| {
            let mut t = multilingual::transcriber(&cache, model, &decode(mode), false);
            common::feed(&mut t, a)
        })
        .collect();
    (out, started.elapsed().as_secs_f64())
}

/// Each clip's text, and the language of its first final.
fn heard(results: &[Vec<Transcript>]) -> Vec<(String, String)> {
    results
        .iter()
        .map(|out| {
            let finals: Vec<&Transcript> = out.iter().filter(|t| t.is_final).collect();
            let language = finals
                .first()
                .map(|r| r.language.clone())
                .unwrap_or_default();
            let text: Vec<&str> = finals.iter().map(|r| r.text.as_str()).collect();
            (text.join(" "), language)
        })
        .collect()
}

/// faster-whisper int8 with `flag` (`auto` or `multilingual`): (text, language) per file, and
/// its transcription seconds, if it can run.
fn faster_whisper(files: &[&Path], flag: &str) -> Option<(Vec<(String, String)>, f64)> {
    let python = std::env::var("WHISPERSTT_BENCH_PYTHON").ok()?;
    let ct2 = gstwhisperstt::model::locate::models_dir().join("faster-whisper-base");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_faster_whisper.py");
    let list = crate::bench_dir().join("languages-files.json");
    std::fs::write(&list, serde_json::to_string(files).unwrap()).unwrap();
    let mut cmd = crate::fw(&python, &script, &ct2, "int8", &list);
    cmd.arg(flag);
    let out = crate::measure(cmd);
    let texts: Vec<String> = serde_json::from_value(out["texts"].clone()).unwrap();
    let languages: Vec<String> = serde_json::from_value(out["languages"].clone()).unwrap();
    Some((
        texts.into_iter().zip(languages).collect(),
        out["seconds"].as_f64()?,
    ))
}

/// Of `language`'s clips: how many were identified, and the error rate.
fn score(clips: &[Clip], heard: &[(String, String)], language: &str) -> (usize, f64) {
    let (mut right, mut e, mut n) = (0, 0, 0);
    for (clip, (text, detected)) in clips.iter().zip(heard) {
        if clip.language != language {
            continue;
        }
        right += usize::from(detected == language);
        let (ce, cn) = multilingual::errors(language, &clip.reference, text);
        (e, n) = (e + ce, n + cn);
    }
    (right, e as f64 / n.max(1) as f64)
}

fn cell<T>(v: Option<T>, show: impl Fn(T) -> String) -> String {
    v.map(show).unwrap_or_else(|| "-".into())
}

pub fn table() {
    let (clips, model) = multilingual::corpus_and_model().unwrap_or_else(|e| panic!("{e}"));
    let audio: Vec<Vec<f32>> = clips.iter().map(|c| common::read_audio(&c.path)).collect();
    let (stream, stream_s) = whisperstt(&model, &audio, LanguageDetection::Stream);
    let (utterance, utterance_s) = whisperstt(&model, &audio, LanguageDetection::Utterance);
    let (stream, utterance) = (heard(&stream), heard(&utterance));
    let files: Vec<&Path> = clips.iter().map(|c| c.path.as_path()).collect();
    let theirs = faster_whisper(&files, "auto");
    println!(
        "## Other languages (Whisper base, language=auto, {} clips)\n",
        clips.len()
    );
    println!(
        "Language identified (of the clips), and WER (CER for zh and ja). Seconds for all \
         clips: whisperstt per stream {stream_s:.1}, per utterance {utterance_s:.1}, \
         faster-whisper int8 {}.\n",
        cell(theirs.as_ref(), |t| format!("{:.1}", t.1))
    );
    println!("| language | clips | identified: per stream / per utterance / faster-whisper | error rate: per stream / per utterance / faster-whisper |");
    println!("|---|---|---|---|");
    let mut languages: Vec<&str> = clips.iter().map(|c| c.language.as_str()).collect();
    languages.dedup();
    let mut results = Vec::new();
    for language in languages {
        let count = clips.iter().filter(|c| c.language == language).count();
        let ours = score(&clips, &stream, language);
        let per_utterance = score(&clips, &utterance, language);
        let their = theirs.as_ref().map(|t| score(&clips, &t.0, language));
        println!(
            "| {language} | {count} | {} / {} / {} | {:.3} / {:.3} / {} |",
            ours.0,
            per_utterance.0,
            cell(their, |t| t.0.to_string()),
            ours.1,
            per_utterance.1,
            cell(their, |t| format!("{:.3}", t.1))
        );
        results.push(json!({"language": language, "clips": count,
            "whisperstt_identified": ours.0, "whisperstt_error_rate": ours.1,
            "per_utterance_identified": per_utterance.0, "per_utterance_error_rate": per_utterance.1,
            "faster_whisper_identified": their.map(|t| t.0),
            "faster_whisper_error_rate": their.map(|t| t.1)}));
    }
    let switching = switching_table(&clips, &model);
    let theirs_texts = theirs.as_ref().map(|t| &t.0);
    let texts: Vec<_> = clips
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (text, language) = &stream[i];
            let fw = theirs_texts.and_then(|t| t.get(i));
            json!({"file": c.path, "reference": c.reference, "whisperstt": text,
                "language": language, "per_utterance": utterance[i].0,
                "faster_whisper": fw.map(|t| &t.0)})
        })
        .collect();
    let out = json!({"languages": results, "texts": texts, "switching": switching});
    let path = crate::bench_dir().join("languages.json");
    std::fs::write(path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
}

/// The switching recording, live and in file mode, each detection mode, beside
/// faster-whisper.
fn switching_table(clips: &[Clip], model: &Path) -> serde_json::Value {
    let (audio, spans) = multilingual::switching(clips, &SWITCHING, SWITCH_PAUSE);
    let reference: Vec<&str> = SWITCHING
        .iter()
        .map(|l| {
            clips
                .iter()
                .find(|c| c.language == *l)
                .unwrap()
                .reference
                .as_str()
        })
        .collect();
    let reference = reference.join(" ");
    let wav = crate::bench_dir().join("switching.wav");
    crate::write_wav(&wav, &audio);
    println!(
        "\n### A recording that switches language ({}, {SWITCH_PAUSE} s apart)\n",
        SWITCHING.join(", ")
    );
    println!("| system | finals in their speaker's language | WER |");
    println!("|---|---|---|");
    let mut rows = Vec::new();
    let cache = ModelCache::new();
    for (name, mode, live) in [
        ("whisperstt, per stream", LanguageDetection::Stream, false),
        (
            "whisperstt, per utterance",
            LanguageDetection::Utterance,
            false,
        ),
        (
            "whisperstt, per utterance, live",
            LanguageDetection::Utterance,
            true,
        ),
    ] {
        let mut t = multilingual::transcriber(&cache, model, &decode(mode), live);
        let out = common::feed(&mut t, &audio);
        let languages = multilingual::languages_heard(&out, &spans);
        let right = languages.iter().filter(|(a, b)| a == b).count();
        let text: Vec<&str> = out
            .iter()
            .filter(|t| t.is_final)
            .map(|t| t.text.as_str())
            .collect();
        let wer = common::wer(&reference, &text.join(" "));
        println!("| {name} | {right} of {} | {wer:.3} |", languages.len());
        rows.push(json!({"system": name, "right": right, "finals": languages.len(), "wer": wer}));
    }
    for flag in ["auto", "multilingual"] {
        if let Some((heard, _)) = faster_whisper(&[wav.as_path()], flag) {
            let wer = common::wer(&reference, &heard[0].0);
            println!("| faster-whisper int8, {flag} | - | {wer:.3} |");
            rows.push(json!({"system": format!("faster-whisper {flag}"), "wer": wer}));
        }
    }
    json!(rows)
}
