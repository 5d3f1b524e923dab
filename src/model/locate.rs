//! Turns what a user writes in the `model` property (a ggml file, a faster-whisper directory,
//! or a short name such as `tiny.en`) into a ggml file whisper.cpp can load.

use super::{ggml, import, ModelError};
use std::path::{Path, PathBuf};

pub const MODEL_DIR_ENV: &str = "WHISPERSTT_MODEL_DIR";

/// The models directory: `$WHISPERSTT_MODEL_DIR`, else `$XDG_DATA_HOME/whisperstt/models`,
/// else `~/.local/share/whisperstt/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("whisperstt").join("models")
}

/// Where imported faster-whisper models are kept.
pub fn import_cache_dir() -> PathBuf {
    models_dir().join("imported")
}

/// Where models converted to another compute type are kept.
pub fn converted_dir() -> PathBuf {
    models_dir().join("converted")
}

/// True when the text names a file or directory rather than a short model name.
fn looks_like_path(spec: &str) -> bool {
    spec.contains(std::path::MAIN_SEPARATOR) || spec.contains('/') || spec.ends_with(".bin")
}

/// The candidates a short name can stand for, in the order they are tried.
fn candidates(name: &str) -> Vec<PathBuf> {
    let dir = models_dir();
    vec![
        dir.join(format!("ggml-{name}.bin")),
        dir.join(format!("{name}.bin")),
        dir.join(name),
    ]
}

/// Resolves `spec` to a ggml file, importing a faster-whisper directory on first use.
pub fn resolve(spec: &str) -> Result<PathBuf, ModelError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(ModelError::NotFound {
            name: String::new(),
            searched: vec![],
        });
    }
    let path = if looks_like_path(spec) {
        PathBuf::from(spec)
    } else {
        let tried = candidates(spec);
        match tried.iter().find(|p| p.exists()) {
            Some(p) => p.clone(),
            None => {
                return Err(ModelError::NotFound {
                    name: spec.to_string(),
                    searched: tried,
                })
            }
        }
    };
    if path.is_dir() {
        if import::is_ct2_dir(&path) {
            return import::imported(&path, &import_cache_dir());
        }
        return Err(ModelError::invalid(
            &path,
            "is a directory without model.bin (neither a ggml file nor a faster-whisper model)",
        ));
    }
    if !path.exists() {
        return Err(ModelError::io(
            &path,
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    Ok(path)
}

/// A model found in the models directory.
#[derive(Debug, Clone)]
pub struct ListedModel {
    pub name: String,
    pub path: PathBuf,
    pub kind: &'static str,
    pub info: Result<ggml::ModelInfo, ModelError>,
}

/// The models in the models directory, by short name.
pub fn list() -> Vec<ListedModel> {
    let dir = models_dir();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() && import::is_ct2_dir(&path) {
            out.push(ListedModel {
                name: file_name,
                kind: "faster-whisper",
                info: Err(ModelError::invalid(&path, "not imported yet")),
                path,
            });
        } else if path.is_file() && file_name.ends_with(".bin") {
            let stem = file_name.trim_end_matches(".bin");
            out.push(ListedModel {
                name: stem.strip_prefix("ggml-").unwrap_or(stem).to_string(),
                kind: "ggml",
                info: ggml::inspect(&path),
                path,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
