//! `bench languages`: the multilingual corpus (../shared/corpus/multilingual: de, es, fr, pt,
//! zh, ja, ru) through Whisper base with `language=auto`, whisperstt against faster-whisper
//! int8 on the same weights: how often each identifies the language, and the word error rate
//! (the character error rate for zh and ja). Prints a table, writes target/bench/languages.json.

use crate::common;
use gstwhisperstt::model::cache::ModelCache;
use gstwhisperstt::model::{locate, ContextOptions, Device, ModelKey};
use gstwhisperstt::scheduler::DecodeSlot;
use gstwhisperstt::transcriber::{DecodeOptions, StreamOptions, Transcriber};
use serde_json::json;
use std::path::{Path, PathBuf};

struct Clip {
    path: PathBuf,
    language: String,
    reference: String,
}

fn clips() -> Vec<Clip> {
    let dir = common::shared_corpus().join("multilingual");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Some(Clip {
                path: dir.join(cols.first()?),
                language: cols.get(1)?.to_string(),
                reference: cols.get(3)?.to_string(),
            })
        })
        .collect()
}

/// Languages written without spaces between words: scored by characters.
fn by_characters(language: &str) -> bool {
    matches!(language, "zh" | "ja")
}

/// (errors, units) of `hypothesis` against `reference`: words, or for zh and ja characters
/// (punctuation and spaces left out).
fn errors(language: &str, reference: &str, hypothesis: &str) -> (usize, usize) {
    if !by_characters(language) {
        return common::word_errors(reference, hypothesis);
    }
    let spaced = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .map(String::from)
            .collect::<Vec<_>>()
            .join(" ")
    };
    common::word_errors(&spaced(reference), &spaced(hypothesis))
}

/// The base model's ggml file, imported from the faster-whisper directory on first use.
fn base_model() -> PathBuf {
    let dir = locate::models_dir().join("faster-whisper-base");
    assert!(
        dir.join("model.bin").is_file(),
        "{} is missing: docs/models.md says how to get Whisper base from PyPI",
        dir.display()
    );
    locate::resolve(dir.to_str().unwrap()).unwrap()
}

/// whisperstt in file mode: the text of the finals and the language of the first.
fn whisperstt(model: &Path, clips: &[Clip]) -> Vec<(String, String)> {
    let cache = ModelCache::new();
    let key = ModelKey::new(model, Device::Cpu, ContextOptions::default()).unwrap();
    let decode = DecodeOptions {
        threads: crate::threads(),
        ..DecodeOptions::default()
    };
    clips
        .iter()
        .map(|clip| {
            let handle = cache.acquire(&key, None).unwrap();
            let slot = DecodeSlot::for_device(Device::Cpu);
            let mut t = Transcriber::new(handle, &decode, StreamOptions::default(), slot).unwrap();
            let out = common::feed(&mut t, &common::read_audio(&clip.path));
            let language = out.first().map(|r| r.language.clone()).unwrap_or_default();
            let text: Vec<String> = out.into_iter().map(|r| r.text).collect();
            (text.join(" "), language)
        })
        .collect()
}

/// faster-whisper int8 with language detection: (text, language) per clip, if it can run.
fn faster_whisper(clips: &[Clip]) -> Option<Vec<(String, String)>> {
    let python = std::env::var("WHISPERSTT_BENCH_PYTHON").ok()?;
    let ct2 = locate::models_dir().join("faster-whisper-base");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_faster_whisper.py");
    let list = crate::bench_dir().join("languages-files.json");
    let files: Vec<&Path> = clips.iter().map(|c| c.path.as_path()).collect();
    std::fs::write(&list, serde_json::to_string(&files).unwrap()).unwrap();
    let mut cmd = crate::fw(&python, &script, &ct2, "int8", &list);
    cmd.arg("auto");
    let out = crate::measure(cmd);
    let texts: Vec<String> = serde_json::from_value(out["texts"].clone()).unwrap();
    let languages: Vec<String> = serde_json::from_value(out["languages"].clone()).unwrap();
    Some(texts.into_iter().zip(languages).collect())
}

pub fn table() {
    let clips = clips();
    let ours = whisperstt(&base_model(), &clips);
    let theirs = faster_whisper(&clips);
    println!(
        "## Other languages (Whisper base, language=auto, {} clips)\n",
        clips.len()
    );
    println!("Language identified (of the clips), and WER (CER for zh and ja).\n");
    println!("| language | clips | whisperstt identified | faster-whisper identified | whisperstt error rate | faster-whisper error rate |");
    println!("|---|---|---|---|---|---|");
    let mut languages: Vec<&str> = clips.iter().map(|c| c.language.as_str()).collect();
    languages.dedup();
    let mut results = Vec::new();
    for language in languages {
        let of = |heard: &[(String, String)]| {
            let (mut right, mut e, mut n) = (0, 0, 0);
            for (clip, (text, detected)) in clips.iter().zip(heard) {
                if clip.language != language {
                    continue;
                }
                right += usize::from(detected == language);
                let (ce, cn) = errors(language, &clip.reference, text);
                (e, n) = (e + ce, n + cn);
            }
            (right, e as f64 / n.max(1) as f64)
        };
        let count = clips.iter().filter(|c| c.language == language).count();
        let (our_id, our_rate) = of(&ours);
        let their = theirs.as_deref().map(of);
        let cell = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "| {language} | {count} | {our_id} | {} | {our_rate:.3} | {} |",
            cell(their.map(|t| t.0.to_string())),
            cell(their.map(|t| format!("{:.3}", t.1)))
        );
        results.push(
            json!({"language": language, "clips": count, "whisperstt_identified": our_id,
            "whisperstt_error_rate": our_rate, "faster_whisper_identified": their.map(|t| t.0),
            "faster_whisper_error_rate": their.map(|t| t.1)}),
        );
    }
    let texts: Vec<_> = clips
        .iter()
        .zip(&ours)
        .map(|(c, (text, language))| json!({"file": c.path, "reference": c.reference, "whisperstt": text, "language": language}))
        .collect();
    let out = json!({"languages": results, "texts": texts});
    let path = crate::bench_dir().join("languages.json");
    std::fs::write(path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
}
