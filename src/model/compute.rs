//! Compute types: the type of the weights whisper.cpp multiplies with. A model file stored in
//! one type is converted once into another and kept beside it, so every later load (in this
//! process or the next) reads the converted file.

use super::ggml::{self, WeightType};
use super::{Device, ModelError};
use sha1::{Digest, Sha1};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a stream asks its model's weights to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeType {
    /// The fastest type measured to keep f16's accuracy on this CPU: bf16 where the CPU
    /// multiplies bf16 natively, else the file's own type.
    #[default]
    Auto,
    /// The file's own type, unconverted.
    Stored,
    /// This type (converted from an f16, bf16 or f32 file).
    Weights(WeightType),
}

/// The CPU features that bear on which weight type is fastest, as /proc/cpuinfo names them.
const SPEED_FLAGS: [&str; 7] = [
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
];

/// This machine's CPU as /proc/cpuinfo describes it (empty where it cannot be read).
#[derive(Debug, Clone, Default)]
pub struct CpuInfo {
    pub model: String,
    /// Those of `SPEED_FLAGS` it has.
    pub speed_flags: Vec<&'static str>,
}

impl CpuInfo {
    /// Read once: every pipeline start asks.
    pub fn of_this_machine() -> &'static CpuInfo {
        static INFO: once_cell::sync::Lazy<CpuInfo> = once_cell::sync::Lazy::new(|| {
            CpuInfo::parse(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
        });
        &INFO
    }

    fn parse(cpuinfo: &str) -> Self {
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map_or("", |(_, v)| v.trim())
        };
        let flags: Vec<&str> = field("flags").split_whitespace().collect();
        CpuInfo {
            model: field("model name").to_string(),
            speed_flags: SPEED_FLAGS
                .into_iter()
                .filter(|f| flags.contains(f))
                .collect(),
        }
    }
}

/// The CPU features that decide `ComputeType::Auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    /// bf16 dot products (AVX512-BF16 or AMX-BF16): bf16 weights are faster than f16 with the
    /// same results (tiny.en corpus: 0.78-0.92x the time, the same WER).
    pub bf16: bool,
}

impl CpuFeatures {
    /// This machine's (none where /proc/cpuinfo cannot be read).
    pub fn of_this_machine() -> Self {
        let flags = &CpuInfo::of_this_machine().speed_flags;
        CpuFeatures {
            bf16: flags.contains(&"avx512_bf16") || flags.contains(&"amx_bf16"),
        }
    }
}

impl ComputeType {
    /// The type to convert a file stored as `stored` into for `device`, or `None` to load
    /// the file as it is.
    pub fn target(self, stored: &str, device: Device, cpu: CpuFeatures) -> Option<WeightType> {
        let wanted = match self {
            ComputeType::Stored => return None,
            // GPU backends are not measured: their files load as they are.
            ComputeType::Auto if device != Device::Cpu => return None,
            ComputeType::Auto if stored == "f16" && cpu.bf16 => WeightType::Bf16,
            ComputeType::Auto => return None,
            ComputeType::Weights(w) => w,
        };
        (wanted.name() != stored).then_some(wanted)
    }
}

/// The file to load for `path` in `compute` on `device`: `path` itself, or its conversion,
/// made on first use beside it (or in the models directory's `converted/` where its own
/// directory is read-only). Elements and `ModelCache::preload` both load what this gives.
pub fn model_file(
    path: &Path,
    compute: ComputeType,
    device: Device,
) -> Result<PathBuf, ModelError> {
    let beside = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dirs = [
        beside.unwrap_or(Path::new(".")).to_path_buf(),
        super::locate::converted_dir(),
    ];
    model_file_in(path, compute, device, &dirs)
}

/// `model_file`, converting into the first of `dirs` that takes the file.
pub fn model_file_in(
    path: &Path,
    compute: ComputeType,
    device: Device,
    dirs: &[PathBuf],
) -> Result<PathBuf, ModelError> {
    // A file that is no model loads as it is: the load names what is wrong with it.
    let Ok(stored) = ggml::read_hparams(path) else {
        return Ok(path.to_path_buf());
    };
    match compute.target(stored.weight_type(), device, CpuFeatures::of_this_machine()) {
        None => Ok(path.to_path_buf()),
        Some(weights) => converted(path, weights, dirs),
    }
}

/// `path` converted to `weights`: found in any of `dirs`, or written into the first that
/// can be written.
fn converted(path: &Path, weights: WeightType, dirs: &[PathBuf]) -> Result<PathBuf, ModelError> {
    static CONVERTING: Mutex<()> = Mutex::new(());
    let name = converted_name(path, weights)?;
    // One conversion at a time in the process: two streams asking at once convert once.
    let _one = CONVERTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(done) = dirs.iter().map(|d| d.join(&name)).find(|p| p.is_file()) {
        return Ok(done);
    }
    let mut failed = None;
    for dir in dirs {
        let out = dir.join(&name);
        let written = super::import::write_atomically(&out, |tmp| {
            let io = |e: std::io::Error| ModelError::io(tmp, &e);
            let file = std::fs::File::create(tmp).map_err(io)?;
            ggml::retype(path, file, weights)?.sync_all().map_err(io)
        });
        match written {
            Ok(()) => return Ok(out),
            // Only a directory that cannot be written sends it on to the next.
            Err(e @ ModelError::Io { .. }) => failed = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(failed.unwrap_or_else(|| ModelError::invalid(path, "no directory to convert it into")))
}

/// The converted file's name: the source's stem, a digest of its identity (canonical path,
/// size, modification time: a replaced source is converted again), and the type.
fn converted_name(path: &Path, weights: WeightType) -> Result<String, ModelError> {
    let meta = std::fs::metadata(path).map_err(|e| ModelError::io(path, &e))?;
    let canonical = path.canonicalize().map_err(|e| ModelError::io(path, &e))?;
    let modified = meta.modified().map_err(|e| ModelError::io(path, &e))?;
    let mut h = Sha1::new();
    h.update(canonical.to_string_lossy().as_bytes());
    h.update(meta.len().to_le_bytes());
    h.update(format!("{modified:?}").as_bytes());
    let digest = super::import::hex_prefix(h, 8);
    let stem = path
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy());
    Ok(format!("{stem}-{digest}-{}.bin", weights.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_bf16_only_for_an_f16_file_on_a_cpu_with_bf16() {
        let bf16 = CpuFeatures { bf16: true };
        let plain = CpuFeatures { bf16: false };
        let cpu = Device::Cpu;
        assert_eq!(
            ComputeType::Auto.target("f16", cpu, bf16),
            Some(WeightType::Bf16)
        );
        assert_eq!(ComputeType::Auto.target("f16", cpu, plain), None);
        assert_eq!(ComputeType::Auto.target("q8_0", cpu, bf16), None);
        assert_eq!(ComputeType::Auto.target("f16", Device::Gpu(0), bf16), None);
        assert_eq!(ComputeType::Stored.target("f16", cpu, bf16), None);
        let q8 = ComputeType::Weights(WeightType::Q8_0);
        assert_eq!(q8.target("f16", cpu, plain), Some(WeightType::Q8_0));
        assert_eq!(q8.target("q8_0", cpu, plain), None);
        let f16 = ComputeType::Weights(WeightType::F16);
        assert_eq!(
            f16.target("bf16", Device::Gpu(0), plain),
            Some(WeightType::F16)
        );
    }

    #[test]
    fn cpuinfo_gives_the_model_and_the_flags_that_bear_on_speed() {
        let info = CpuInfo::parse(
            "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16 sse\n\n\
             processor\t: 1\nmodel name\t: AMD EPYC\n",
        );
        assert_eq!(info.model, "AMD EPYC");
        assert_eq!(info.speed_flags, ["avx2", "avx512f", "avx512_bf16"]);
        assert!(CpuInfo::parse("").speed_flags.is_empty());
    }
}
