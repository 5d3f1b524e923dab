use std::path::{Path, PathBuf};

/// Everything that can go wrong between a model name and a loaded model. Each variant names the
/// file it is about, so an element error or a CLI message tells the user what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {what}", path.display())]
    Invalid { path: PathBuf, what: String },
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("model '{name}' not found (looked for {})", display_paths(searched))]
    NotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("{}: whisper.cpp could not load this model (see the whisperstt-engine debug log)", path.display())]
    Load { path: PathBuf },
    #[error("device '{device}': {what}")]
    Device { device: String, what: String },
}

impl ModelError {
    pub fn invalid(path: &Path, what: impl Into<String>) -> Self {
        ModelError::Invalid {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    pub fn io(path: &Path, err: &std::io::Error) -> Self {
        let message = match err.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::UnexpectedEof => "file is truncated".to_string(),
            _ => err.to_string(),
        };
        ModelError::Io {
            path: path.to_path_buf(),
            message,
        }
    }

    /// The file this error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ModelError::Invalid { path, .. }
            | ModelError::Io { path, .. }
            | ModelError::Load { path } => Some(path),
            ModelError::NotFound { .. } | ModelError::Device { .. } => None,
        }
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
