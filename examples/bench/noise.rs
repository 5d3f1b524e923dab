//! `bench noise`: speech as real microphones hear it (the robustness corpus of
//! tests/common/degrade.rs: five noises at 20, 10, 5 and 0 dB SNR, 20 dB quieter, a reverberant
//! room) and noise alone, through whisperstt with its built-in detector (in file mode and as a
//! live stream decodes, partials and all), with the Silero detector, and without a detector,
//! and through faster-whisper with and without its Silero `vad_filter`, on the same tiny.en
//! weights. Prints two tables and writes target/bench/noise.json.

use crate::common::degrade::{self, Condition, Noise};
use crate::common::{self};
use gstwhisperstt::model::cache::{ModelCache, SileroHandle, WhisperHandle};
use gstwhisperstt::model::{Device, ModelKey};
use gstwhisperstt::scheduler::DecodeSlot;
use gstwhisperstt::transcriber::{DecodeOptions, StreamOptions, Transcriber};
use gstwhisperstt::vad::VadConfig;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What one system made of one piece of audio.
struct Heard {
    text: String,
    /// Audio whisper.cpp was given, in seconds (whisperstt only).
    decoded: f64,
}

/// A clip's audio and its transcript.
type Clip = (Vec<f32>, String);

/// The target clips (LJ Speech: one reader, long sentences) and, for babble, the other
/// speakers of the corpus.
fn speech(quick: bool) -> (Vec<Clip>, Vec<Vec<f32>>) {
    let clips = common::corpus_clips(&common::shared_corpus());
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let targets = clips
        .iter()
        .filter(|(p, _)| name(p).starts_with("ljspeech_"))
        .take(if quick { 5 } else { 12 })
        .map(|(p, t)| (common::read_audio(p), t.clone()))
        .collect();
    let voices = clips
        .iter()
        .filter(|(p, _)| {
            ["cmuarctic_", "librispeech_", "timit_"]
                .iter()
                .any(|s| name(p).starts_with(s))
        })
        .map(|(p, _)| common::read_audio(p))
        .collect();
    (targets, voices)
}

/// How whisperstt hears a piece of audio: which detector, and whether as a live stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    BuiltIn,
    BuiltInLive,
    Silero,
    NoDetector,
}

impl Setup {
    const ALL: [Setup; 4] = [
        Setup::BuiltIn,
        Setup::BuiltInLive,
        Setup::Silero,
        Setup::NoDetector,
    ];

    fn name(self) -> &'static str {
        match self {
            Setup::BuiltIn => "whisperstt",
            Setup::BuiltInLive => "live",
            Setup::Silero => "Silero",
            Setup::NoDetector => "vad=false",
        }
    }
}

/// whisperstt's engine on one loaded model (and the Silero detector), a transcriber per piece
/// of audio.
struct Whisperstt {
    _model: WhisperHandle,
    cache: ModelCache,
    key: ModelKey,
    silero: SileroHandle,
}

impl Whisperstt {
    fn new() -> Self {
        let cache = ModelCache::new();
        let key = common::model_key();
        let silero = common::shared_corpus().join("../models/ggml-silero-v6.2.0.bin");
        let silero = ModelKey::silero_vad(&silero).unwrap();
        Whisperstt {
            _model: cache.acquire(&key, None).unwrap(),
            silero: cache.acquire_silero(&silero, None).unwrap(),
            cache,
            key,
        }
    }

    fn hear(&self, audio: &[f32], setup: Setup) -> Heard {
        let options = StreamOptions {
            vad: (setup != Setup::NoDetector).then(VadConfig::default),
            live: setup == Setup::BuiltInLive,
            ..StreamOptions::default()
        };
        let decode = DecodeOptions {
            threads: crate::threads(),
            ..DecodeOptions::default()
        };
        let model = self.cache.acquire(&self.key, None).unwrap();
        let slot = DecodeSlot::for_device(Device::Cpu);
        let mut t = Transcriber::new(model, &decode, options, slot).unwrap();
        if setup == Setup::Silero {
            let silero = self.cache.acquire_silero(self.silero.key(), None).unwrap();
            t.use_silero(silero);
        }
        let out = common::feed(&mut t, audio);
        let text: Vec<String> = out
            .into_iter()
            .filter(|r| r.is_final)
            .map(|r| r.text)
            .collect();
        Heard {
            text: text.join(" "),
            decoded: t.decoded_audio().as_secs_f64(),
        }
    }
}

/// faster-whisper int8 on every file, without and with `vad_filter`; `None` if it cannot run.
fn faster_whisper(files: &[PathBuf]) -> Option<[Vec<String>; 2]> {
    let python = std::env::var("WHISPERSTT_BENCH_PYTHON").ok()?;
    let ct2 = gstwhisperstt::model::locate::models_dir().join("faster-whisper-tiny.en");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_faster_whisper.py");
    let list = crate::bench_dir().join("noise-files.json");
    std::fs::write(&list, serde_json::to_string(files).unwrap()).unwrap();
    let run = |vad: bool| {
        let mut cmd = crate::fw(&python, &script, &ct2, "int8", &list);
        if vad {
            cmd.arg("vad");
        }
        let texts = crate::measure(cmd)["texts"].clone();
        serde_json::from_value::<Vec<String>>(texts).unwrap()
    };
    Some([run(false), run(true)])
}

fn wer_of(pairs: impl Iterator<Item = (String, String)>) -> f64 {
    let (mut errors, mut words) = (0, 0);
    for (reference, text) in pairs {
        let (e, n) = common::word_errors(&reference, &text);
        errors += e;
        words += n;
    }
    errors as f64 / words.max(1) as f64
}

/// Writes `audio` where faster-whisper can read it.
fn wav(dir: &Path, name: &str, audio: &[f32]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    crate::write_wav(&path, audio);
    path
}

pub fn table(quick: bool) {
    let (targets, voices) = speech(quick);
    let engine = Whisperstt::new();
    let dir = crate::bench_dir().join("noise");
    let conditions = Condition::all();
    // (condition, clip) -> whisperstt in each setup; and the files.
    let mut rows = Vec::new();
    let mut files = Vec::new();
    for (c, condition) in conditions.iter().enumerate() {
        let mut heard = Vec::new();
        for (i, (audio, _)) in targets.iter().enumerate() {
            let degraded = condition.apply(audio, 1000 + i as u64, &voices);
            files.push(wav(&dir, &format!("{c:02}-{i:02}.wav"), &degraded));
            heard.push(Setup::ALL.map(|setup| engine.hear(&degraded, setup)));
        }
        eprintln!("{}: done", condition.name());
        rows.push(heard);
    }
    let seconds = if quick { 30 } else { 60 };
    let noises: Vec<Vec<f32>> = Noise::ALL
        .iter()
        .map(|&n| degrade::pure_noise(n, seconds, 99, &voices))
        .collect();
    for (n, audio) in noises.iter().enumerate() {
        files.push(wav(&dir, &format!("noise-{n}.wav"), audio));
    }
    let fw = faster_whisper(&files);
    let results = print_speech_table(&conditions, &targets, &rows, fw.as_ref(), quick);
    let noise_results = print_noise_table(
        &engine,
        &noises,
        seconds,
        fw.as_ref(),
        targets.len() * conditions.len(),
    );
    let out = json!({"speech": results, "noise": noise_results});
    std::fs::write(
        crate::bench_dir().join("noise.json"),
        serde_json::to_string_pretty(&out).unwrap(),
    )
    .unwrap();
}

fn print_speech_table(
    conditions: &[Condition],
    targets: &[Clip],
    rows: &[Vec<[Heard; 4]>],
    fw: Option<&[Vec<String>; 2]>,
    quick: bool,
) -> Vec<Value> {
    let audio: f64 = targets.iter().map(|(a, _)| a.len() as f64 / 16_000.0).sum();
    println!(
        "## Speech in noise, quiet and reverberant (tiny.en, {} LJ Speech clips, {audio:.0} s{})\n",
        targets.len(),
        if quick { ", quick" } else { "" }
    );
    println!(
        "WER. whisperstt: the built-in detector in file mode; live: the same as a live stream \
         decodes it (partials, then finals); Silero: the Silero detector; \"lost\": what the \
         built-in detector costs (whisperstt minus vad=false).\n"
    );
    println!("| condition | whisperstt | live | Silero | vad=false | lost | faster-whisper | faster-whisper vad_filter |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for (c, (condition, heard)) in conditions.iter().zip(rows).enumerate() {
        let refs = || targets.iter().map(|(_, r)| r.clone());
        let wer: Vec<f64> = (0..Setup::ALL.len())
            .map(|k| wer_of(refs().zip(heard.iter().map(|h| h[k].text.clone()))))
            .collect();
        let theirs = fw.map(|fw| {
            let slice = |v: &Vec<String>| v[c * targets.len()..(c + 1) * targets.len()].to_vec();
            [
                wer_of(refs().zip(slice(&fw[0]))),
                wer_of(refs().zip(slice(&fw[1]))),
            ]
        });
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:+.3} | {} | {} |",
            condition.name(),
            wer[0],
            wer[1],
            wer[2],
            wer[3],
            wer[0] - wer[3],
            cell(theirs.map(|t| t[0])),
            cell(theirs.map(|t| t[1]))
        );
        let mut row = json!({"condition": condition.name(),
            "faster_whisper": theirs.map(|t| t[0]), "faster_whisper_vad": theirs.map(|t| t[1])});
        for (setup, wer) in Setup::ALL.iter().zip(&wer) {
            row[setup.name()] = json!(wer);
        }
        results.push(row);
    }
    results
}

fn print_noise_table(
    engine: &Whisperstt,
    noises: &[Vec<f32>],
    seconds: usize,
    fw: Option<&[Vec<String>; 2]>,
    first_noise_file: usize,
) -> Vec<Value> {
    println!("\n## Noise alone ({seconds} s of each, RMS -26 dBFS)\n");
    println!("Words of text, and for whisperstt the share of the noise whisper.cpp was given.\n");
    println!("| noise | whisperstt | live | Silero | vad=false | faster-whisper | faster-whisper vad_filter |");
    println!("|---|---|---|---|---|---|---|");
    let words = |t: &str| t.split_whitespace().count();
    let mut results = Vec::new();
    for (n, (kind, audio)) in Noise::ALL.iter().zip(noises).enumerate() {
        let heard = Setup::ALL.map(|setup| engine.hear(audio, setup));
        let share = |h: &Heard| 100.0 * h.decoded / seconds as f64;
        let theirs = fw.map(|fw| {
            [
                words(&fw[0][first_noise_file + n]),
                words(&fw[1][first_noise_file + n]),
            ]
        });
        let ours: Vec<String> = heard
            .iter()
            .map(|h| format!("{}, {:.1} %", words(&h.text), share(h)))
            .collect();
        let cell = |v: Option<usize>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "| {} | {} | {} | {} |",
            kind.name(),
            ours.join(" | "),
            cell(theirs.map(|t| t[0])),
            cell(theirs.map(|t| t[1]))
        );
        let mut row = json!({"noise": kind.name(), "faster_whisper_words": theirs.map(|t| t[0]),
            "faster_whisper_vad_words": theirs.map(|t| t[1])});
        for (setup, h) in Setup::ALL.iter().zip(&heard) {
            row[setup.name()] =
                json!({"words": words(&h.text), "decoded_share": share(h) / 100.0, "text": h.text});
        }
        results.push(row);
    }
    results
}
