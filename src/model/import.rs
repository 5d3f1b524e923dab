//! Imports a faster-whisper (CTranslate2) model directory into a whisper.cpp ggml file.
//! Sources may be float32, float16, bfloat16 or int8 (dequantised per row); the output is
//! float16 with the f32 tensors whisper.cpp expects.

use super::ggml::{self, Hparams, TensorSpec, WeightType};
use super::{ct2, mel, vocab, ModelError};
use sha1::{Digest, Sha1};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What an import produced.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub output: PathBuf,
    pub hparams: Hparams,
    pub source_type: String,
    pub bytes: u64,
}

/// True if `dir` looks like a CTranslate2 model directory (it has a `model.bin`).
pub fn is_ct2_dir(dir: &Path) -> bool {
    dir.is_dir() && dir.join("model.bin").is_file()
}

fn layer_count(model: &ct2::Model, prefix: &str) -> i32 {
    let layers: BTreeSet<&str> = model
        .variables
        .keys()
        .filter_map(|k| k.strip_prefix(prefix))
        .filter_map(|rest| rest.split('/').next())
        .filter(|layer| layer.parse::<u32>().is_ok())
        .collect();
    layers.len() as i32
}

fn dims(
    model: &ct2::Model,
    name: &str,
    rank: usize,
    path: &Path,
) -> Result<Vec<usize>, ModelError> {
    let v = model
        .get(name)
        .ok_or_else(|| ModelError::invalid(path, format!("model.bin has no variable '{name}'")))?;
    if v.dims.len() != rank {
        return Err(ModelError::invalid(
            path,
            format!("'{name}' has rank {}, expected {rank}", v.dims.len()),
        ));
    }
    Ok(v.dims.clone())
}

/// The hyper-parameters a CTranslate2 Whisper model implies, refused (like a ggml header) when
/// no Whisper model has them: they size every buffer of the import.
pub fn hparams(model: &ct2::Model, path: &Path) -> Result<Hparams, ModelError> {
    let conv1 = dims(model, "encoder/conv1/weight", 3, path)?;
    let enc_pos = dims(model, "encoder/position_encodings/encodings", 2, path)?;
    let dec_pos = dims(model, "decoder/position_encodings/encodings", 2, path)?;
    let emb = dims(model, "decoder/embeddings/weight", 2, path)?;
    // Out of i32's range is out of every accepted range: `check` names it.
    let int = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    let (audio_state, text_state) = (int(conv1[0]), int(emb[1]));
    let heads = |name: &str, width: i32| {
        model
            .scalar(name)
            .map_or(width / 64, |h| i32::try_from(h).unwrap_or(i32::MAX))
    };
    let hp = Hparams {
        n_vocab: int(emb[0]),
        n_audio_ctx: int(enc_pos[0]),
        n_audio_state: audio_state,
        n_audio_head: heads("encoder/num_heads", audio_state),
        n_audio_layer: layer_count(model, "encoder/layer_"),
        n_text_ctx: int(dec_pos[0]),
        n_text_state: text_state,
        n_text_head: heads("decoder/num_heads", text_state),
        n_text_layer: layer_count(model, "decoder/layer_"),
        n_mels: int(conv1[1]),
        ftype: 1,
    };
    hp.check(path)?;
    Ok(hp)
}

/// Where each whisper.cpp tensor comes from in a CTranslate2 Whisper model: a variable, or
/// a row range of one (q, k and v are fused along the output rows).
struct Source {
    var: String,
    /// Which of `parts` equal row blocks to take.
    part: usize,
    parts: usize,
}

fn source_for(name: &str) -> Option<Source> {
    let whole = |var: String| {
        Some(Source {
            var,
            part: 0,
            parts: 1,
        })
    };
    let split = |var: String, part, parts| Some(Source { var, part, parts });
    let (side, rest) = name.split_once('.')?;
    if let Some(rest) = rest.strip_prefix("blocks.") {
        let (layer, rest) = rest.split_once('.')?;
        let l = format!("{side}/layer_{layer}");
        let (module, param) = rest.rsplit_once('.')?;
        let ln = |p: &str| match param {
            "weight" => whole(format!("{l}/{p}/layer_norm/gamma")),
            _ => whole(format!("{l}/{p}/layer_norm/beta")),
        };
        return match module {
            "mlp_ln" => ln("ffn"),
            "attn_ln" => ln("self_attention"),
            "cross_attn_ln" => ln("attention"),
            "mlp.0" => whole(format!("{l}/ffn/linear_0/{param}")),
            "mlp.2" => whole(format!("{l}/ffn/linear_1/{param}")),
            "attn.query" => split(format!("{l}/self_attention/linear_0/{param}"), 0, 3),
            "attn.key" => split(format!("{l}/self_attention/linear_0/{param}"), 1, 3),
            "attn.value" => split(format!("{l}/self_attention/linear_0/{param}"), 2, 3),
            "attn.out" => whole(format!("{l}/self_attention/linear_1/{param}")),
            "cross_attn.query" => whole(format!("{l}/attention/linear_0/{param}")),
            "cross_attn.key" => split(format!("{l}/attention/linear_1/{param}"), 0, 2),
            "cross_attn.value" => split(format!("{l}/attention/linear_1/{param}"), 1, 2),
            "cross_attn.out" => whole(format!("{l}/attention/linear_2/{param}")),
            _ => None,
        };
    }
    match (side, rest) {
        (_, "positional_embedding") => whole(format!("{side}/position_encodings/encodings")),
        ("encoder", "conv1.weight") => whole("encoder/conv1/weight".into()),
        ("encoder", "conv1.bias") => whole("encoder/conv1/bias".into()),
        ("encoder", "conv2.weight") => whole("encoder/conv2/weight".into()),
        ("encoder", "conv2.bias") => whole("encoder/conv2/bias".into()),
        ("encoder", "ln_post.weight") | ("decoder", "ln.weight") => {
            whole(format!("{side}/layer_norm/gamma"))
        }
        ("encoder", "ln_post.bias") | ("decoder", "ln.bias") => {
            whole(format!("{side}/layer_norm/beta"))
        }
        ("decoder", "token_embedding.weight") => whole("decoder/embeddings/weight".into()),
        _ => None,
    }
}

/// The values of the ggml tensor `spec`, from the variable (or the row block of one) it comes
/// from, checked against the shape `spec` wants.
pub fn tensor_values(
    model: &ct2::Model,
    spec: &TensorSpec,
    path: &Path,
) -> Result<Vec<f32>, ModelError> {
    let src = source_for(&spec.name).ok_or_else(|| {
        ModelError::invalid(path, format!("no source for tensor '{}'", spec.name))
    })?;
    let all = model.weight_f32(&src.var, path)?;
    let want: u64 = spec.ne.iter().product();
    if all.len() as u64 != want * src.parts as u64 {
        return Err(ModelError::invalid(
            path,
            format!(
                "'{}' has {} values, expected {} for '{}'",
                src.var,
                all.len(),
                want * src.parts as u64,
                spec.name
            ),
        ));
    }
    let n = want as usize;
    Ok(all[src.part * n..(src.part + 1) * n].to_vec())
}

fn source_type(model: &ct2::Model) -> String {
    model
        .get("decoder/embeddings/weight")
        .map(|v| format!("{:?}", v.dtype).to_lowercase())
        .unwrap_or_default()
}

/// Imports `src_dir` into `out`, written atomically (a temporary file in the same directory,
/// renamed into place), so a reader never sees half a file and concurrent imports both succeed.
pub fn import_dir(src_dir: &Path, out: &Path) -> Result<ImportReport, ModelError> {
    import_dir_as(src_dir, out, WeightType::F16)
}

/// `import_dir` storing the large matrices as `weights` (q8_0 quantises them on the way).
pub fn import_dir_as(
    src_dir: &Path,
    out: &Path,
    weights: WeightType,
) -> Result<ImportReport, ModelError> {
    import_dir_reporting(src_dir, out, weights, &mut |_, _| {})
}

/// `import_dir_as`, calling `progress(tensors written, tensors in all)` after each tensor.
pub fn import_dir_reporting(
    src_dir: &Path,
    out: &Path,
    weights: WeightType,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport, ModelError> {
    let source = SourceDir::read(src_dir, weights)?;
    write_atomically(out, |tmp| source.write(tmp, progress))?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(ImportReport {
        output: out.to_path_buf(),
        hparams: source.hp,
        source_type: source_type(&source.model),
        bytes,
    })
}

/// Writes a model to `out` through `write` (given a temporary path beside it), checks it as
/// whisper.cpp will read it, and renames it into place: a reader never sees half a file, and
/// concurrent writers both succeed.
pub(super) fn write_atomically(
    out: &Path,
    write: impl FnOnce(&Path) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, &e))?;
    let tmp = tempfile_in(dir, out);
    // Check what was written before anything can load it.
    let written = write(&tmp).and_then(|()| ggml::inspect(&tmp).map(|_| ()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(|e| ModelError::io(out, &e))
}

/// A faster-whisper directory, read and checked: its model, the ggml hyper-parameters it
/// becomes, and its vocabulary as bytes.
struct SourceDir {
    model: ct2::Model,
    model_path: PathBuf,
    hp: Hparams,
    token_bytes: Vec<Vec<u8>>,
}

impl SourceDir {
    fn read(src_dir: &Path, weights: WeightType) -> Result<SourceDir, ModelError> {
        if !src_dir.is_dir() {
            return Err(ModelError::invalid(src_dir, "not a directory"));
        }
        let model_path = src_dir.join("model.bin");
        if !model_path.is_file() {
            return Err(ModelError::invalid(
                src_dir,
                "faster-whisper model directory has no model.bin",
            ));
        }
        let (vocab_path, tokens) = vocab::read_tokens(src_dir)?;
        let model = ct2::Model::read(&model_path)?;
        if model.spec != "WhisperSpec" {
            let what = format!(
                "is a CTranslate2 '{}' model, not a Whisper model",
                model.spec
            );
            return Err(ModelError::invalid(&model_path, what));
        }
        let hp = Hparams {
            ftype: weights.ftype(),
            ..hparams(&model, &model_path)?
        };
        let n_regular = hp.regular_tokens();
        if tokens.len() < n_regular {
            let what = format!("has {} tokens, the model needs {n_regular}", tokens.len());
            return Err(ModelError::invalid(&vocab_path, what));
        }
        let token_bytes = tokens[..n_regular]
            .iter()
            .enumerate()
            .map(|(i, t)| {
                vocab::decode_token(t).ok_or_else(|| {
                    ModelError::invalid(&vocab_path, format!("token {i} is not a GPT-2 byte token"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SourceDir {
            model,
            model_path,
            hp,
            token_bytes,
        })
    }

    /// Writes the ggml file to `path`, synced to disk.
    fn write(&self, path: &Path, progress: &mut dyn FnMut(usize, usize)) -> Result<(), ModelError> {
        let io = |e: std::io::Error| ModelError::io(path, &e);
        let file = std::fs::File::create(path).map_err(io)?;
        let filters = mel::filters(self.hp.n_mels as usize);
        let mut w = ggml::Writer::new(file, &self.hp, &filters, &self.token_bytes).map_err(io)?;
        let specs = ggml::expected_tensors(&self.hp);
        for (i, spec) in specs.iter().enumerate() {
            let values = tensor_values(&self.model, spec, &self.model_path)?;
            w.tensor(spec, &values).map_err(io)?;
            progress(i + 1, specs.len());
        }
        w.finish().map_err(io)?.sync_all().map_err(io)
    }
}

fn tempfile_in(dir: &Path, out: &Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// A content digest of the files an import reads, so that an imported copy is reused exactly
/// while the source is unchanged, whatever its path.
fn content_digest(src_dir: &Path) -> Result<String, ModelError> {
    let mut h = Sha1::new();
    for name in ["model.bin", "vocabulary.txt", "vocabulary.json"] {
        let p = src_dir.join(name);
        if !p.is_file() {
            continue;
        }
        let mut f = std::fs::File::open(&p).map_err(|e| ModelError::io(&p, &e))?;
        h.update(name.as_bytes());
        std::io::copy(&mut f, &mut h).map_err(|e| ModelError::io(&p, &e))?;
    }
    Ok(hex_prefix(h, 10))
}

/// The first `bytes` bytes of `h`'s digest, in hex: the part of a digest a file name carries.
pub(super) fn hex_prefix(h: Sha1, bytes: usize) -> String {
    h.finalize()
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The ggml file for a CTranslate2 directory, importing it into `cache_dir` on first use.
/// In one process, an unchanged source (same size and modification time) is not even re-hashed.
pub fn imported(src_dir: &Path, cache_dir: &Path) -> Result<PathBuf, ModelError> {
    type Memo = HashMap<(PathBuf, u64, std::time::SystemTime), PathBuf>;
    static MEMO: once_cell::sync::Lazy<Mutex<Memo>> = once_cell::sync::Lazy::new(Default::default);
    let model_path = src_dir.join("model.bin");
    let meta = std::fs::metadata(&model_path).map_err(|e| ModelError::io(&model_path, &e))?;
    let memo_key = (
        src_dir
            .canonicalize()
            .map_err(|e| ModelError::io(src_dir, &e))?,
        meta.len(),
        meta.modified()
            .map_err(|e| ModelError::io(&model_path, &e))?,
    );
    if let Some(p) = MEMO.lock().unwrap().get(&memo_key).filter(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let out = cache_dir.join(format!("faster-whisper-{}.bin", content_digest(src_dir)?));
    if !out.is_file() {
        import_dir(src_dir, &out)?;
    }
    MEMO.lock().unwrap().insert(memo_key, out.clone());
    Ok(out)
}
