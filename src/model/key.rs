//! What identifies a loaded model in the cache: the file as it is on disk, the device, and
//! every whisper.cpp context parameter fixed at load.

use super::ModelError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where inference runs. `gpu:N` needs a build with a GPU feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    Gpu(u32),
}

/// True when this build has a GPU backend compiled in.
pub const GPU_BUILD: bool = cfg!(any(
    feature = "cuda",
    feature = "vulkan",
    feature = "hipblas",
    feature = "metal"
));

impl std::str::FromStr for Device {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        let bad = |what: &str| ModelError::Device {
            device: s.to_string(),
            what: what.to_string(),
        };
        match s.trim() {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu(0)),
            other => other
                .strip_prefix("gpu:")
                .and_then(|n| n.parse().ok())
                .map(Device::Gpu)
                .ok_or_else(|| bad("expected 'cpu' or 'gpu:N'")),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu(n) => write!(f, "gpu:{n}"),
        }
    }
}

/// whisper.cpp context parameters fixed when a model is loaded. Two requests that differ in
/// any of them get different models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ContextOptions {
    pub flash_attn: bool,
}

/// What a model file is for: both kinds live in the one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ModelKind {
    #[default]
    Whisper,
    /// A ggml Silero voice detector.
    SileroVad,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Whisper => "a Whisper model",
            ModelKind::SileroVad => "a Silero voice detector",
        })
    }
}

/// What identifies one loaded model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelKey {
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
    pub device: Device,
    pub options: ContextOptions,
    pub kind: ModelKind,
    /// 0 for the shared copy; otherwise a private copy (sharing turned off, for comparison).
    pub instance: u64,
}

impl ModelKey {
    /// The key for a Whisper ggml file as it is on disk now (a replaced file is a new model).
    pub fn new(path: &Path, device: Device, options: ContextOptions) -> Result<Self, ModelError> {
        let canonical = path.canonicalize().map_err(|e| ModelError::io(path, &e))?;
        let meta = std::fs::metadata(&canonical).map_err(|e| ModelError::io(path, &e))?;
        Ok(ModelKey {
            path: canonical,
            size: meta.len(),
            modified: meta.modified().map_err(|e| ModelError::io(path, &e))?,
            device,
            options,
            kind: ModelKind::Whisper,
            instance: 0,
        })
    }

    /// Whether the file, as checked (`file_size` bytes), is still the one this key describes.
    pub fn unchanged(&self, file_size: u64) -> Result<(), ModelError> {
        match file_size == self.size {
            true => Ok(()),
            false => Err(ModelError::invalid(
                &self.path,
                "file changed while being loaded",
            )),
        }
    }

    /// The key for a ggml Silero VAD file (it runs on the CPU: it is tiny).
    pub fn silero_vad(path: &Path) -> Result<Self, ModelError> {
        Ok(ModelKey {
            kind: ModelKind::SileroVad,
            ..ModelKey::new(path, Device::Cpu, ContextOptions::default())?
        })
    }
}

/// How long an unused model stays loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleTimeout {
    Never,
    /// `After(Duration::ZERO)` releases the model as soon as its last handle goes.
    After(Duration),
}

/// Long enough that a client reconnecting does not pay a reload, short enough that a server
/// gives memory back soon after a model falls out of use.
pub const DEFAULT_IDLE_TIMEOUT: IdleTimeout = IdleTimeout::After(Duration::from_secs(30));

impl IdleTimeout {
    /// `never`, or a number of seconds (0 = immediately).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "never" | "-1" => Some(IdleTimeout::Never),
            n => n
                .parse::<f64>()
                .ok()
                .filter(|v| *v >= 0.0)
                // Longer than a Duration holds (1e20 s): never, not a panic.
                .map(|v| {
                    Duration::try_from_secs_f64(v).map_or(IdleTimeout::Never, IdleTimeout::After)
                }),
        }
    }
}
