//! The whisper.cpp ggml model file: reading and fully checking its structure (so that a damaged
//! or foreign file is refused with a clear error instead of reaching whisper.cpp, which may crash
//! on it), and writing it (for the importer).

use super::ModelError;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub const MAGIC: u32 = 0x6767_6d6c;
/// The mel filter bank always covers n_fft / 2 + 1 = 201 frequency bins (16 kHz, n_fft 400).
pub const MEL_BINS: usize = 201;
/// whisper.cpp encodes the quantisation version into ftype as `ftype + 1000 * version`.
const QNT_VERSION_FACTOR: i32 = 1000;
/// Special tokens start at 50256 (`.en`) or 50257 (multilingual); whisper.cpp needs room for them.
const MIN_VOCAB: i32 = 51864;

/// The hyper-parameters in a ggml file's header, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl Hparams {
    fn as_array(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    fn from_array(a: [i32; 11]) -> Self {
        Hparams {
            n_vocab: a[0],
            n_audio_ctx: a[1],
            n_audio_state: a[2],
            n_audio_head: a[3],
            n_audio_layer: a[4],
            n_text_ctx: a[5],
            n_text_state: a[6],
            n_text_head: a[7],
            n_text_layer: a[8],
            n_mels: a[9],
            ftype: a[10],
        }
    }

    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }

    /// How many ordinary (non-special) tokens the vocabulary section holds.
    pub fn regular_tokens(&self) -> usize {
        if self.is_multilingual() {
            50257
        } else {
            50256
        }
    }

    /// The Whisper size name, from the encoder depth (as whisper.cpp names it).
    pub fn size_name(&self) -> &'static str {
        match self.n_audio_layer {
            4 => "tiny",
            6 => "base",
            12 => "small",
            24 => "medium",
            32 => "large",
            _ => "unknown",
        }
    }

    /// The weight type named by ftype (without the quantisation version).
    pub fn weight_type(&self) -> &'static str {
        match self.ftype % QNT_VERSION_FACTOR {
            0 => "f32",
            1 => "f16",
            2 => "q4_0",
            3 => "q4_1",
            7 => "q8_0",
            8 => "q5_0",
            9 => "q5_1",
            10 => "q2_k",
            11 => "q3_k",
            12 => "q4_k",
            13 => "q5_k",
            14 => "q6_k",
            24 => "bf16",
            _ => "unknown",
        }
    }

    /// Refuses hyper-parameters no Whisper model has: they would make whisper.cpp allocate
    /// absurd buffers or index out of bounds.
    pub(crate) fn check(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::invalid(path, what));
        let in_range = |name: &str, v: i32, lo: i32, hi: i32| -> Result<(), ModelError> {
            if v < lo || v > hi {
                bad(format!("{name} = {v} is outside {lo}..={hi}"))
            } else {
                Ok(())
            }
        };
        in_range("n_vocab", self.n_vocab, MIN_VOCAB, 52_000)?;
        in_range("n_audio_ctx", self.n_audio_ctx, 1, 1500)?;
        in_range("n_audio_state", self.n_audio_state, 64, 8192)?;
        in_range("n_audio_head", self.n_audio_head, 1, 128)?;
        in_range("n_audio_layer", self.n_audio_layer, 1, 128)?;
        in_range("n_text_ctx", self.n_text_ctx, 1, 448)?;
        in_range("n_text_state", self.n_text_state, 64, 8192)?;
        in_range("n_text_head", self.n_text_head, 1, 128)?;
        in_range("n_text_layer", self.n_text_layer, 1, 128)?;
        if self.n_mels != 80 && self.n_mels != 128 {
            return bad(format!("n_mels = {} (Whisper uses 80 or 128)", self.n_mels));
        }
        if self.n_audio_state % self.n_audio_head != 0 || self.n_text_state % self.n_text_head != 0
        {
            return bad("attention width is not a multiple of the head count".into());
        }
        if self.ftype < 0 || self.weight_type() == "unknown" {
            return bad(format!("unknown ftype {}", self.ftype));
        }
        if self.weight_type() == "f32" {
            // An f32 model loads, then aborts the process on its first decode: whisper.cpp's
            // encoder convolution only takes f16 kernels (ggml-org/whisper.cpp#2557).
            return bad(
                "f32 weights, which whisper.cpp cannot run (it aborts in the encoder's \
                 convolution); use an f16 or quantised model"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The ggml tensor types whisper.cpp can read, with their block geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    Quant { id: u32, block: u64, bytes: u64 },
}

impl TensorType {
    pub fn id(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
            TensorType::Quant { id, .. } => id,
        }
    }

    fn from_id(id: u32) -> Option<Self> {
        let q = |block, bytes| Some(TensorType::Quant { id, block, bytes });
        match id {
            0 => Some(TensorType::F32),
            1 => Some(TensorType::F16),
            2 => q(32, 18),     // q4_0
            3 => q(32, 20),     // q4_1
            6 => q(32, 22),     // q5_0
            7 => q(32, 24),     // q5_1
            8 => q(32, 34),     // q8_0
            10 => q(256, 84),   // q2_k
            11 => q(256, 110),  // q3_k
            12 => q(256, 144),  // q4_k
            13 => q(256, 176),  // q5_k
            14 => q(256, 210),  // q6_k
            BF16_ID => q(1, 2), // bf16
            _ => None,
        }
    }

    /// Bytes for a tensor whose innermost dimension is `ne0` with `n` elements in all.
    fn data_size(self, ne0: u64, n: u64) -> Option<u64> {
        match self {
            TensorType::F32 => n.checked_mul(4),
            TensorType::F16 => n.checked_mul(2),
            TensorType::Quant { block, bytes, .. } => {
                ne0.is_multiple_of(block).then(|| n / block * bytes)
            }
        }
    }
}

/// One tensor as whisper.cpp names it, with its shape in ggml order (innermost first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub ne: Vec<u64>,
}

impl TensorSpec {
    /// whisper.cpp keeps 1-D tensors, convolution biases and positional embeddings in f32 and
    /// everything else in the model's weight type.
    pub fn stored_as_f32(&self) -> bool {
        self.ne.len() < 2
            || self.name.ends_with("conv1.bias")
            || self.name.ends_with("conv2.bias")
            || self.name.ends_with("positional_embedding")
    }
}

/// Every tensor a Whisper model with these hyper-parameters must contain, with its shape.
/// The importer writes exactly these; the checker demands exactly these.
pub fn expected_tensors(hp: &Hparams) -> Vec<TensorSpec> {
    let t = |name: String, ne: &[i32]| TensorSpec {
        name,
        ne: ne.iter().map(|&d| d as u64).collect(),
    };
    let (s, n_mels) = (hp.n_audio_state, hp.n_mels);
    let mut v = vec![
        t("encoder.positional_embedding".into(), &[s, hp.n_audio_ctx]),
        t("encoder.conv1.weight".into(), &[3, n_mels, s]),
        t("encoder.conv1.bias".into(), &[1, s]),
        t("encoder.conv2.weight".into(), &[3, s, s]),
        t("encoder.conv2.bias".into(), &[1, s]),
        t("encoder.ln_post.weight".into(), &[s]),
        t("encoder.ln_post.bias".into(), &[s]),
    ];
    let block = |v: &mut Vec<TensorSpec>, prefix: &str, w: i32, cross: bool| {
        let mut lin = |name: &str, n_in: i32, n_out: i32, bias: bool| {
            v.push(t(format!("{prefix}.{name}.weight"), &[n_in, n_out]));
            if bias {
                v.push(t(format!("{prefix}.{name}.bias"), &[n_out]));
            }
        };
        lin("mlp.0", w, 4 * w, true);
        lin("mlp.2", 4 * w, w, true);
        for attn in std::iter::once("attn").chain(cross.then_some("cross_attn")) {
            lin(&format!("{attn}.query"), w, w, true);
            lin(&format!("{attn}.key"), w, w, false);
            lin(&format!("{attn}.value"), w, w, true);
            lin(&format!("{attn}.out"), w, w, true);
        }
        let norms: &[&str] = if cross {
            &["mlp_ln", "attn_ln", "cross_attn_ln"]
        } else {
            &["mlp_ln", "attn_ln"]
        };
        for ln in norms {
            v.push(t(format!("{prefix}.{ln}.weight"), &[w]));
            v.push(t(format!("{prefix}.{ln}.bias"), &[w]));
        }
    };
    for i in 0..hp.n_audio_layer {
        block(&mut v, &format!("encoder.blocks.{i}"), s, false);
    }
    let d = hp.n_text_state;
    v.push(t(
        "decoder.positional_embedding".into(),
        &[d, hp.n_text_ctx],
    ));
    v.push(t("decoder.token_embedding.weight".into(), &[d, hp.n_vocab]));
    v.push(t("decoder.ln.weight".into(), &[d]));
    v.push(t("decoder.ln.bias".into(), &[d]));
    for i in 0..hp.n_text_layer {
        block(&mut v, &format!("decoder.blocks.{i}"), d, true);
    }
    v
}

/// What `inspect` learnt about a ggml model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub hparams: Hparams,
    pub file_size: u64,
    pub n_tensors: usize,
    pub vocab_size: usize,
}

/// Bounds-checked little-endian reads that name the file and the section being read.
struct Reader<R> {
    inner: R,
    path: std::path::PathBuf,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Reader<R> {
    /// The file is not what it should be: `what` says how.
    fn bad(&self, what: String) -> ModelError {
        ModelError::invalid(&self.path, what)
    }

    fn truncated(&self, section: &str) -> ModelError {
        ModelError::invalid(
            &self.path,
            format!(
                "file is truncated in the {section} (at byte {} of {})",
                self.pos, self.len
            ),
        )
    }

    fn bytes(&mut self, n: u64, section: &str) -> Result<Vec<u8>, ModelError> {
        if self.len - self.pos < n {
            return Err(self.truncated(section));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| ModelError::io(&self.path, &e))?;
        self.pos += n;
        Ok(buf)
    }

    fn i32(&mut self, section: &str) -> Result<i32, ModelError> {
        let b = self.bytes(4, section)?;
        Ok(i32::from_le_bytes(b.try_into().unwrap()))
    }

    fn skip(&mut self, n: u64, section: &str) -> Result<(), ModelError> {
        if self.len - self.pos < n {
            return Err(self.truncated(section));
        }
        self.pos += n;
        self.inner
            .seek(SeekFrom::Start(self.pos))
            .map_err(|e| ModelError::io(&self.path, &e))?;
        Ok(())
    }
}

impl<R: Read + Seek> Reader<R> {
    /// A reader over `len` bytes of `inner`; `path` only names the file in errors.
    fn new(inner: R, len: u64, path: &Path) -> Result<Self, ModelError> {
        if len == 0 {
            return Err(ModelError::invalid(path, "file is empty"));
        }
        Ok(Reader {
            inner,
            path: path.to_path_buf(),
            pos: 0,
            len,
        })
    }
}

fn open(path: &Path) -> Result<Reader<BufReader<File>>, ModelError> {
    let file = File::open(path).map_err(|e| ModelError::io(path, &e))?;
    let meta = file.metadata().map_err(|e| ModelError::io(path, &e))?;
    if meta.is_dir() {
        return Err(ModelError::invalid(
            path,
            "is a directory without model.bin (neither a ggml file nor a faster-whisper model)",
        ));
    }
    Reader::new(BufReader::new(file), meta.len(), path)
}

/// A reader over a file's contents already in memory (the fuzz targets use this).
fn over_bytes<'a>(data: &'a [u8], path: &Path) -> Result<Reader<io::Cursor<&'a [u8]>>, ModelError> {
    Reader::new(io::Cursor::new(data), data.len() as u64, path)
}

/// Reads only the header (magic and hyper-parameters), checking them.
pub fn read_hparams(path: &Path) -> Result<Hparams, ModelError> {
    header(&mut open(path)?)
}

/// `read_hparams` on a file's contents; `path` only names the file in errors.
pub fn read_hparams_bytes(data: &[u8], path: &Path) -> Result<Hparams, ModelError> {
    header(&mut over_bytes(data, path)?)
}

fn header<R: Read + Seek>(r: &mut Reader<R>) -> Result<Hparams, ModelError> {
    let magic = r.i32("header")? as u32;
    if magic != MAGIC {
        return Err(ModelError::invalid(
            &r.path,
            format!("not a whisper.cpp ggml model (magic 0x{magic:08x}, expected 0x{MAGIC:08x})"),
        ));
    }
    let mut a = [0i32; 11];
    for v in a.iter_mut() {
        *v = r.i32("header")?;
    }
    let hp = Hparams::from_array(a);
    hp.check(&r.path)?;
    Ok(hp)
}

/// Checks the whole file: header, mel filters, vocabulary, and that every tensor whisper.cpp
/// expects is present exactly once with the right shape and a size that fits in the file.
pub fn inspect(path: &Path) -> Result<ModelInfo, ModelError> {
    check_model(open(path)?)
}

/// `inspect` on a file's contents; `path` only names the file in errors.
pub fn inspect_bytes(data: &[u8], path: &Path) -> Result<ModelInfo, ModelError> {
    check_model(over_bytes(data, path)?)
}

fn check_model<R: Read + Seek>(mut r: Reader<R>) -> Result<ModelInfo, ModelError> {
    let hp = header(&mut r)?;
    mel_filters(&mut r, &hp)?;
    let n_tokens = vocabulary(&mut r, &hp)?.len();
    let n_tensors = walk_tensors(&mut r, &hp, |r, _, _, size| r.skip(size, "tensor data"))?;
    Ok(ModelInfo {
        hparams: hp,
        file_size: r.len,
        n_tensors,
        vocab_size: n_tokens,
    })
}

fn mel_filters<R: Read + Seek>(r: &mut Reader<R>, hp: &Hparams) -> Result<Vec<f32>, ModelError> {
    let (n_mel, n_fft) = (r.i32("mel filters")?, r.i32("mel filters")?);
    if n_mel != hp.n_mels || n_fft as usize != MEL_BINS {
        return Err(r.bad(format!(
            "mel filter bank is {n_mel} x {n_fft}, expected {} x {MEL_BINS}",
            hp.n_mels
        )));
    }
    let bytes = r.bytes(n_mel as u64 * n_fft as u64 * 4, "mel filters")?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect())
}

/// The tokens, each checked for its length.
fn vocabulary<R: Read + Seek>(r: &mut Reader<R>, hp: &Hparams) -> Result<Vec<Vec<u8>>, ModelError> {
    let n_tokens = r.i32("vocabulary")?;
    if n_tokens <= 0 || n_tokens > hp.n_vocab {
        return Err(r.bad(format!(
            "vocabulary count {n_tokens} is outside 1..={}",
            hp.n_vocab
        )));
    }
    (0..n_tokens)
        .map(|i| {
            let len = r.i32("vocabulary")?;
            if !(0..=1024).contains(&len) {
                return Err(r.bad(format!("token {i} has length {len}")));
            }
            r.bytes(len as u64, "vocabulary")
        })
        .collect()
}

/// Reads every tensor header to the end of the file, handing each tensor's data (of `size`
/// bytes, next in `r`) to `each`: each must be one a model of this size has, once, with its
/// shape, and fit the file. Returns how many there are.
fn walk_tensors<R: Read + Seek>(
    r: &mut Reader<R>,
    hp: &Hparams,
    mut each: impl FnMut(&mut Reader<R>, TensorSpec, TensorType, u64) -> Result<(), ModelError>,
) -> Result<usize, ModelError> {
    let mut expected: std::collections::HashMap<String, Vec<u64>> = expected_tensors(hp)
        .into_iter()
        .map(|t| (t.name, t.ne))
        .collect();
    let n_expected = expected.len();
    let mut n_tensors = 0;
    while r.pos < r.len {
        let (name, ne, type_id) = tensor_header(r, n_tensors)?;
        let Some(want) = expected.remove(&name) else {
            return Err(r.bad(format!(
                "unexpected or repeated tensor '{name}' for a model of this size"
            )));
        };
        if want != ne {
            return Err(r.bad(format!(
                "tensor '{name}' has shape {ne:?}, expected {want:?}"
            )));
        }
        let ttype = TensorType::from_id(type_id as u32)
            .ok_or_else(|| r.bad(format!("tensor '{name}' has unknown type {type_id}")))?;
        let size = ttype.data_size(ne[0], ne.iter().product()).ok_or_else(|| {
            r.bad(format!(
                "tensor '{name}' does not fit its type's block size"
            ))
        })?;
        each(r, TensorSpec { name, ne }, ttype, size)?;
        n_tensors += 1;
    }
    if !expected.is_empty() {
        let mut missing: Vec<_> = expected.into_keys().collect();
        missing.sort();
        return Err(r.bad(format!(
            "file is truncated or incomplete: {} of {n_expected} tensors missing (first: {})",
            missing.len(),
            missing[0]
        )));
    }
    Ok(n_tensors)
}

/// Writes the Whisper model `src` to `out` with its matrices as `weights`: the vocabulary and
/// mel filters as they are, each tensor by the importer's rules. The source's matrices must
/// be f16, bf16 or f32 (a quantised file cannot give the weights back).
pub fn retype<W: Write>(src: &Path, out: W, weights: WeightType) -> Result<W, ModelError> {
    let mut r = open(src)?;
    let hp = header(&mut r)?;
    let filters = mel_filters(&mut r, &hp)?;
    let tokens = vocabulary(&mut r, &hp)?;
    let hp = Hparams {
        ftype: weights.ftype(),
        ..hp
    };
    let mut w = Writer::new(out, &hp, &filters, &tokens).map_err(|e| ModelError::io(src, &e))?;
    walk_tensors(&mut r, &hp, |r, spec, ttype, size| {
        let data = r.bytes(size, "tensor data")?;
        let values = values_of(ttype, &data).ok_or_else(|| {
            r.bad(format!(
                "tensor '{}' is quantised (type {}): convert from an f16 model",
                spec.name,
                ttype.id()
            ))
        })?;
        w.tensor(&spec, &values)
            .map_err(|e| ModelError::io(src, &e))
    })?;
    w.finish().map_err(|e| ModelError::io(src, &e))
}

/// A tensor's values from its f32, f16 or bf16 data; `None` for a quantised type.
fn values_of(ttype: TensorType, data: &[u8]) -> Option<Vec<f32>> {
    let pairs = || data.chunks_exact(2).map(|b| [b[0], b[1]]);
    match ttype {
        TensorType::F32 => Some(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        ),
        TensorType::F16 => Some(
            pairs()
                .map(|b| half::f16::from_le_bytes(b).to_f32())
                .collect(),
        ),
        TensorType::Quant { id: BF16_ID, .. } => Some(
            pairs()
                .map(|b| half::bf16::from_le_bytes(b).to_f32())
                .collect(),
        ),
        TensorType::Quant { .. } => None,
    }
}

/// ggml's type id for bf16.
const BF16_ID: u32 = 30;

/// Tensor `index`'s name, shape and type id.
fn tensor_header<R: Read + Seek>(
    r: &mut Reader<R>,
    index: usize,
) -> Result<(String, Vec<u64>, i32), ModelError> {
    let section = "tensor data";
    let n_dims = r.i32(section)?;
    let name_len = r.i32(section)?;
    let type_id = r.i32(section)?;
    if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
        return Err(r.bad(format!(
            "tensor {index} has {n_dims} dimensions and a {name_len}-byte name"
        )));
    }
    let mut ne = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let d = r.i32(section)?;
        if d <= 0 {
            return Err(r.bad(format!("tensor {index} has dimension {d}")));
        }
        ne.push(d as u64);
    }
    let name = String::from_utf8(r.bytes(name_len as u64, section)?)
        .map_err(|_| r.bad(format!("tensor {index} has a name that is not UTF-8")))?;
    Ok((name, ne, type_id))
}

/// What `inspect_silero` learnt about a ggml Silero VAD file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SileroInfo {
    pub version: String,
    /// Samples per speech probability.
    pub window: usize,
    pub file_size: u64,
}

/// Checks a whisper.cpp ggml Silero VAD file the way whisper.cpp will read it (header,
/// layer sizes, then tensors that fit the file), so a damaged or wrong file is an error
/// instead of a crash inside whisper.cpp.
pub fn inspect_silero(path: &Path) -> Result<SileroInfo, ModelError> {
    check_silero(open(path)?)
}

/// `inspect_silero` on a file's contents; `path` only names the file in errors.
pub fn inspect_silero_bytes(data: &[u8], path: &Path) -> Result<SileroInfo, ModelError> {
    check_silero(over_bytes(data, path)?)
}

fn check_silero<R: Read + Seek>(mut r: Reader<R>) -> Result<SileroInfo, ModelError> {
    let (version, window) = silero_header(&mut r)?;
    if skip_silero_tensors(&mut r)? == 0 {
        return Err(r.bad("no tensors: the file is truncated".into()));
    }
    Ok(SileroInfo {
        version,
        window,
        file_size: r.len,
    })
}

/// The model's version and window, having checked the header and the layer sizes.
fn silero_header<R: Read + Seek>(r: &mut Reader<R>) -> Result<(String, usize), ModelError> {
    let magic = r.i32("header")? as u32;
    let type_len = r.i32("header")?;
    let model_type = if magic == MAGIC && (1..=64).contains(&type_len) {
        String::from_utf8(r.bytes(type_len as u64, "header")?).unwrap_or_default()
    } else {
        String::new()
    };
    if !model_type.starts_with("silero") {
        return Err(r.bad("not a ggml Silero VAD model (such as ggml-silero-v6.2.0.bin)".into()));
    }
    let version: Vec<String> = (0..3)
        .map(|_| r.i32("header").map(|v| v.to_string()))
        .collect::<Result<_, _>>()?;
    let (window, context) = (r.i32("header")?, r.i32("header")?);
    if !(64..=8192).contains(&window) || !(0..=8192).contains(&context) {
        return Err(r.bad(format!(
            "window {window} and context {context} are not a Silero model's"
        )));
    }
    let layers = r.i32("hyper-parameters")?;
    if !(1..=16).contains(&layers) {
        return Err(r.bad(format!("{layers} encoder layers")));
    }
    for _ in 0..(layers * 3 + 4) {
        let v = r.i32("hyper-parameters")?;
        if !(1..=65_536).contains(&v) {
            return Err(r.bad(format!("layer size {v}")));
        }
    }
    Ok((version.join("."), window as usize))
}

/// Skips the tensors to the end of the file, each checked to fit it; returns how many.
fn skip_silero_tensors<R: Read + Seek>(r: &mut Reader<R>) -> Result<usize, ModelError> {
    let mut n_tensors = 0;
    while r.pos < r.len {
        let section = "tensor data";
        let (n_dims, name_len, type_id) = (r.i32(section)?, r.i32(section)?, r.i32(section)?);
        if !(0..=4).contains(&n_dims)
            || !(1..=256).contains(&name_len)
            || !(0..=1).contains(&type_id)
        {
            return Err(r.bad(format!(
                "tensor {n_tensors} has {n_dims} dimensions, a {name_len}-byte name and type {type_id}"
            )));
        }
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            let d = r.i32(section)?;
            if !(1..=1 << 24).contains(&d) {
                return Err(r.bad(format!("tensor {n_tensors} has dimension {d}")));
            }
            elements = elements.saturating_mul(d as u64);
        }
        r.skip(name_len as u64, section)?;
        let bytes = elements.saturating_mul(if type_id == 0 { 4 } else { 2 });
        r.skip(bytes, section)?;
        n_tensors += 1;
    }
    Ok(n_tensors)
}

/// How an imported model stores its large matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightType {
    /// 16-bit floats: the weights as published.
    #[default]
    F16,
    /// bfloat16: the f16 weights' top bits, for CPUs with bf16 dot products (AVX512-BF16).
    Bf16,
    /// 8-bit blocks of 32 with a 16-bit scale each (ggml's q8_0): half the size, and faster
    /// matrix products on CPUs with 8-bit dot products.
    Q8_0,
    /// 5-bit blocks of 32 with a 16-bit scale each (ggml's q5_0).
    Q5_0,
    /// 4-bit blocks of 32 with a 16-bit scale each (ggml's q4_0).
    Q4_0,
}

/// Each weight type: its name, the header's ftype and the matrices' ggml tensor type.
const WEIGHT_TYPES: [(WeightType, &str, i32, u32); 5] = [
    (WeightType::F16, "f16", 1, 1),
    (WeightType::Bf16, "bf16", 24, 30),
    (WeightType::Q8_0, "q8_0", 7, 8),
    (WeightType::Q5_0, "q5_0", 8, 6),
    (WeightType::Q4_0, "q4_0", 2, 2),
];

impl WeightType {
    pub const ALL: [WeightType; 5] = [
        WeightType::F16,
        WeightType::Bf16,
        WeightType::Q8_0,
        WeightType::Q5_0,
        WeightType::Q4_0,
    ];

    fn row(self) -> (WeightType, &'static str, i32, u32) {
        WEIGHT_TYPES.into_iter().find(|r| r.0 == self).unwrap()
    }

    /// The header's ftype: the type, plus ggml's quantisation version for quantised types.
    pub fn ftype(self) -> i32 {
        let ftype = self.row().2;
        match self.is_quantised() {
            true => ftype + GGML_QNT_VERSION * QNT_VERSION_FACTOR,
            false => ftype,
        }
    }

    pub fn name(self) -> &'static str {
        self.row().1
    }

    fn is_quantised(self) -> bool {
        !matches!(self, WeightType::F16 | WeightType::Bf16)
    }

    /// The weight type a header's ftype names, if the importer writes it.
    fn from_ftype(ftype: i32) -> Option<Self> {
        let base = ftype % QNT_VERSION_FACTOR;
        WEIGHT_TYPES.into_iter().find(|r| r.2 == base).map(|r| r.0)
    }

    fn tensor_type(self) -> TensorType {
        TensorType::from_id(self.row().3).unwrap()
    }

    /// `values` (a multiple of 32 for the quantised types) in this type's layout.
    fn encode(self, values: &[f32], out: &mut Vec<u8>) {
        match self {
            WeightType::F16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
            WeightType::Bf16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes())),
            WeightType::Q8_0 => quantize_q8_0(values, out),
            WeightType::Q5_0 => quantize_q5_0(values, out),
            WeightType::Q4_0 => quantize_q4_0(values, out),
        }
    }
}

impl std::str::FromStr for WeightType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        let s = match s.as_str() {
            "none" => "f16",
            "q8" => "q8_0",
            other => other,
        };
        WEIGHT_TYPES
            .into_iter()
            .find(|r| r.1 == s)
            .map(|r| r.0)
            .ok_or_else(|| {
                let names: Vec<&str> = WEIGHT_TYPES.iter().map(|r| r.1).collect();
                format!("unknown weight type '{s}' ({})", names.join(", "))
            })
    }
}

/// ggml's q8_0 blocks of `values` (a multiple of 32): per block, the scale as f16, then 32
/// signed bytes.
fn quantize_q8_0(values: &[f32], out: &mut Vec<u8>) {
    for block in values.chunks_exact(Q_BLOCK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(scale).to_le_bytes());
        out.extend(block.iter().map(|v| (v * inverse).round() as i8 as u8));
    }
}

/// A block's scale for `levels` signed levels, as ggml's reference quantisers choose it: the
/// value of largest magnitude maps to -levels/2. Returns the scale and its inverse.
fn block_scale(block: &[f32], levels: f32) -> (f32, f32) {
    let max = block
        .iter()
        .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
    let scale = max / -(levels / 2.0);
    let inverse = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    (scale, inverse)
}

/// ggml's q4_0 blocks: the scale as f16, then 16 bytes of two 4-bit values (value j in the
/// low nibble of byte j, value j + 16 in its high nibble), each offset by 8.
fn quantize_q4_0(values: &[f32], out: &mut Vec<u8>) {
    for block in values.chunks_exact(Q_BLOCK) {
        let (scale, inverse) = block_scale(block, 16.0);
        let q = |v: f32| ((v * inverse + 8.5) as i8).min(15) as u8;
        out.extend_from_slice(&half::f16::from_f32(scale).to_le_bytes());
        let (low, high) = block.split_at(Q_BLOCK / 2);
        out.extend(low.iter().zip(high).map(|(&a, &b)| q(a) | (q(b) << 4)));
    }
}

/// ggml's q5_0 blocks: the scale as f16, the 32 fifth bits as a little-endian u32, then the
/// low four bits as q4_0 packs them; each value offset by 16.
fn quantize_q5_0(values: &[f32], out: &mut Vec<u8>) {
    for block in values.chunks_exact(Q_BLOCK) {
        let (scale, inverse) = block_scale(block, 32.0);
        let q: Vec<u8> = block
            .iter()
            .map(|&v| ((v * inverse + 16.5) as i8).min(31) as u8)
            .collect();
        let fifth_bits = q
            .iter()
            .enumerate()
            .fold(0u32, |bits, (j, &v)| bits | (u32::from(v >> 4) << j));
        out.extend_from_slice(&half::f16::from_f32(scale).to_le_bytes());
        out.extend_from_slice(&fifth_bits.to_le_bytes());
        let (low, high) = q.split_at(Q_BLOCK / 2);
        out.extend(
            low.iter()
                .zip(high)
                .map(|(&a, &b)| (a & 15) | ((b & 15) << 4)),
        );
    }
}

const Q_BLOCK: usize = 32;
/// ggml's GGML_QNT_VERSION, written into quantised files' ftype.
const GGML_QNT_VERSION: i32 = 2;

/// Writes a ggml model file section by section, in the order whisper.cpp reads it.
pub struct Writer<W: Write> {
    out: BufWriter<W>,
    weights: WeightType,
}

impl<W: Write> Writer<W> {
    pub fn new(
        inner: W,
        hp: &Hparams,
        mel_filters: &[f32],
        tokens: &[Vec<u8>],
    ) -> std::io::Result<Self> {
        assert_eq!(mel_filters.len(), hp.n_mels as usize * MEL_BINS);
        let mut out = BufWriter::with_capacity(1 << 20, inner);
        out.write_all(&MAGIC.to_le_bytes())?;
        for v in hp.as_array() {
            out.write_all(&v.to_le_bytes())?;
        }
        out.write_all(&hp.n_mels.to_le_bytes())?;
        out.write_all(&(MEL_BINS as i32).to_le_bytes())?;
        for f in mel_filters {
            out.write_all(&f.to_le_bytes())?;
        }
        out.write_all(&(tokens.len() as i32).to_le_bytes())?;
        for tok in tokens {
            out.write_all(&(tok.len() as i32).to_le_bytes())?;
            out.write_all(tok)?;
        }
        let weights = WeightType::from_ftype(hp.ftype).unwrap_or_default();
        Ok(Writer { out, weights })
    }

    /// Writes one tensor from f32 values, by whisper.cpp's convention: small tensors f32,
    /// convolutions f16, the matrices in the file's weight type.
    pub fn tensor(&mut self, spec: &TensorSpec, values: &[f32]) -> std::io::Result<()> {
        let n: u64 = spec.ne.iter().product();
        assert_eq!(n as usize, values.len(), "tensor {}", spec.name);
        let ttype = if spec.stored_as_f32() {
            TensorType::F32
        } else if spec.ne.len() == 2 {
            self.weights.tensor_type()
        } else {
            TensorType::F16
        };
        self.out.write_all(&(spec.ne.len() as i32).to_le_bytes())?;
        self.out
            .write_all(&(spec.name.len() as i32).to_le_bytes())?;
        self.out.write_all(&(ttype.id() as i32).to_le_bytes())?;
        for d in &spec.ne {
            self.out.write_all(&(*d as i32).to_le_bytes())?;
        }
        self.out.write_all(spec.name.as_bytes())?;
        let mut buf = Vec::with_capacity(values.len() * 4);
        match ttype {
            TensorType::F32 => values
                .iter()
                .for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
            TensorType::F16 => WeightType::F16.encode(values, &mut buf),
            TensorType::Quant { .. } => self.weights.encode(values, &mut buf),
        }
        self.out.write_all(&buf)
    }

    pub fn finish(self) -> std::io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}
