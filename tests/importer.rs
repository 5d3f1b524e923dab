//! The faster-whisper importer and the ggml checker, on the real tiny.en weights.

mod common;

use gstwhisperstt::model::cache::ModelCache;
use gstwhisperstt::model::ct2::{self, DType, Variable};
use gstwhisperstt::model::{ggml, import, locate, ModelError};
use gstwhisperstt::model::{ContextOptions, Device, ModelKey};
use std::path::{Path, PathBuf};

fn copy_vocabulary(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("vocabulary.txt"), to.join("vocabulary.txt")).unwrap();
}

/// CTranslate2's int8 scheme: per output row, scale = 127 / max|w|, q = round(w * scale).
fn quantize_int8(model: &mut ct2::Model) {
    let names: Vec<String> = model
        .variables
        .iter()
        .filter(|(n, v)| n.ends_with("/weight") && v.dims.len() == 2)
        .map(|(n, _)| n.clone())
        .collect();
    for name in names {
        let v = &model.variables[&name];
        let rows = v.dims[0];
        let values = v.to_f32();
        let cols = values.len() / rows;
        let (mut q, mut scales) = (
            Vec::with_capacity(values.len()),
            Vec::with_capacity(rows * 4),
        );
        for row in values.chunks(cols) {
            let max = row.iter().fold(0f32, |m, w| m.max(w.abs())).max(1e-8);
            let scale = 127.0 / max;
            q.extend(
                row.iter()
                    .map(|w| (w * scale).round().clamp(-127.0, 127.0) as i8 as u8),
            );
            scales.extend_from_slice(&scale.to_le_bytes());
        }
        let dims = v.dims.clone();
        model.variables.insert(
            name.clone(),
            Variable {
                dims,
                dtype: DType::I8,
                data: q,
            },
        );
        model.variables.insert(
            format!("{name}_scale"),
            Variable {
                dims: vec![rows],
                dtype: DType::F32,
                data: scales,
            },
        );
    }
}

fn to_float32(model: &mut ct2::Model) {
    for v in model.variables.values_mut() {
        if v.dtype == DType::F16 {
            v.data = v.to_f32().iter().flat_map(|f| f.to_le_bytes()).collect();
            v.dtype = DType::F32;
        }
    }
}

fn write_source(dir: &Path, model: &ct2::Model) {
    copy_vocabulary(&common::ct2_source(), dir);
    std::fs::write(dir.join("model.bin"), model.to_bytes()).unwrap();
}

fn source_model() -> ct2::Model {
    ct2::Model::read(&common::ct2_source().join("model.bin")).unwrap()
}

#[test]
fn float32_source_imports_to_the_same_file_as_float16() {
    let tmp = tempfile::tempdir().unwrap();
    let f16_out = tmp.path().join("f16.bin");
    import::import_dir(&common::ct2_source(), &f16_out).unwrap();

    let mut model = source_model();
    to_float32(&mut model);
    let src = tmp.path().join("f32-src");
    write_source(&src, &model);
    let report = import::import_dir(&src, &tmp.path().join("f32.bin")).unwrap();
    assert_eq!(report.source_type, "f32");
    assert!(std::fs::read(&f16_out).unwrap() == std::fs::read(tmp.path().join("f32.bin")).unwrap());
}

#[test]
fn int8_source_imports_and_transcribes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model = source_model();
    quantize_int8(&mut model);
    assert_eq!(
        model.get("decoder/embeddings/weight").unwrap().dtype,
        DType::I8
    );
    let src = tmp.path().join("int8-src");
    write_source(&src, &model);
    let out = tmp.path().join("int8.bin");
    let report = import::import_dir(&src, &out).unwrap();
    assert_eq!(report.source_type, "i8");
    assert_eq!(ggml::inspect(&out).unwrap().hparams.size_name(), "tiny");

    let wer = common::transcriber_wer(&out, &common::reference_speech());
    assert!(wer <= 0.10, "int8 import WER {wer:.3}");
}

/// Every weight type the importer writes loads in whisper.cpp, has the size its blocks
/// give, and transcribes within its bound of f16 (measured on the corpus: docs/models.md).
#[test]
fn every_weight_type_imports_to_its_size_and_accuracy() {
    use ggml::WeightType;
    // Type, ftype, bytes per weight in the matrices, WER allowed above f16 here.
    let table = [
        (WeightType::Bf16, 24, 2.0, 0.02),
        (WeightType::Q8_0, 2007, 34.0 / 32.0, 0.02),
        (WeightType::Q5_0, 2008, 22.0 / 32.0, 0.05),
        (WeightType::Q4_0, 2002, 18.0 / 32.0, 0.15),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let f16 = common::model_path();
    let f16_size = std::fs::metadata(&f16).unwrap().len() as f64;
    let speech = common::reference_speech();
    let wer_f16 = common::transcriber_wer(&f16, &speech);
    for (weights, ftype, bytes, allowed) in table {
        let out = tmp.path().join(format!("{}.bin", weights.name()));
        import::import_dir_as(&common::ct2_source(), &out, weights).unwrap();
        let info = ggml::inspect(&out).unwrap();
        assert_eq!(info.hparams.weight_type(), weights.name());
        assert_eq!(info.hparams.ftype, ftype);
        // The matrices are nearly all of the file (the rest stays f16 and f32): it shrinks
        // with them.
        let ratio = info.file_size as f64 / f16_size;
        let matrices = bytes / 2.0;
        assert!(
            (matrices..=matrices + 0.05).contains(&ratio),
            "{}: {ratio:.3} of f16's size",
            weights.name()
        );
        let wer = common::transcriber_wer(&out, &speech);
        eprintln!(
            "{}: WER {wer:.3} (f16 {wer_f16:.3}), {ratio:.3} of the size",
            weights.name()
        );
        assert!(
            wer <= wer_f16 + allowed,
            "{} WER {wer:.3}, f16 {wer_f16:.3}",
            weights.name()
        );
    }
}

#[test]
fn imported_models_are_cached_by_content() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    copy_vocabulary(&common::ct2_source(), &src);
    std::fs::copy(
        common::ct2_source().join("model.bin"),
        src.join("model.bin"),
    )
    .unwrap();
    let cache_dir = tmp.path().join("cache");
    let first = import::imported(&src, &cache_dir).unwrap();
    let modified = std::fs::metadata(&first).unwrap().modified().unwrap();
    // A copy elsewhere with the same content maps to the same imported file, not a new import.
    let copy = tmp.path().join("copy");
    copy_vocabulary(&src, &copy);
    std::fs::copy(src.join("model.bin"), copy.join("model.bin")).unwrap();
    let second = import::imported(&copy, &cache_dir).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        std::fs::metadata(&second).unwrap().modified().unwrap(),
        modified
    );
    assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 1);
}

#[test]
fn concurrent_imports_of_one_source_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("same.bin");
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let out = out.clone();
            std::thread::spawn(move || import::import_dir(&common::ct2_source(), &out))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    ggml::inspect(&out).unwrap();
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

/// Asserts that `path` is refused by the checker and by the cache with an error naming the
/// file and saying `what`.
fn assert_refused(path: &Path, what: &str) {
    let err = ggml::inspect(path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(what), "expected '{what}' in: {text}");
    let key = ModelKey::new(path, Device::Cpu, ContextOptions::default()).unwrap();
    let cache_err = ModelCache::new().acquire(&key, None).unwrap_err();
    assert_eq!(cache_err, err);
}

fn ggml_bytes() -> Vec<u8> {
    std::fs::read(common::model_path()).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn damaged_ggml_files_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let good = ggml_bytes();
    let len = good.len();
    let mel_end = 48 + 8 + 80 * 201 * 4;
    // Where the first tensor starts: after the vocabulary.
    let mut pos = mel_end + 4;
    for _ in 0..50256 {
        pos += 4 + i32::from_le_bytes(good[pos..pos + 4].try_into().unwrap()) as usize;
    }
    let first_tensor = pos;

    assert_refused(&write(tmp.path(), "empty.bin", &[]), "file is empty");
    for (name, cut, what) in [
        ("in-header.bin", 10, "truncated in the header"),
        ("in-mel.bin", 48 + 8 + 1000, "truncated in the mel filters"),
        (
            "in-vocab.bin",
            mel_end + 5000,
            "truncated in the vocabulary",
        ),
        (
            "in-tensor-header.bin",
            first_tensor + 6,
            "truncated in the tensor data",
        ),
        ("in-tensor-data.bin", len / 2, "truncated"),
        ("last-byte.bin", len - 1, "truncated in the tensor data"),
    ] {
        assert_refused(&write(tmp.path(), name, &good[..cut]), what);
    }

    let patched = |offset: usize, value: i32| {
        let mut b = good.clone();
        b[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        b
    };
    assert_refused(
        &write(tmp.path(), "magic.bin", &patched(0, 0x46464952)),
        "not a whisper.cpp ggml model",
    );
    assert_refused(
        &write(tmp.path(), "vocab.bin", &patched(4, 1 << 30)),
        "n_vocab = 1073741824 is outside",
    );
    assert_refused(
        &write(tmp.path(), "layers.bin", &patched(20, 100_000)),
        "n_audio_layer = 100000 is outside",
    );
    assert_refused(
        &write(tmp.path(), "mels.bin", &patched(40, 7)),
        "n_mels = 7",
    );
    assert_refused(
        &write(tmp.path(), "ftype.bin", &patched(44, 99)),
        "unknown ftype 99",
    );
    // whisper.cpp loads an f32 model, then aborts the process in its first encoder pass.
    assert_refused(
        &write(tmp.path(), "f32.bin", &patched(44, 0)),
        "f32 weights, which whisper.cpp cannot run",
    );
    assert_refused(
        &write(tmp.path(), "tokens.bin", &patched(mel_end, -5)),
        "vocabulary count -5",
    );
    // A tensor whose name was damaged is one whisper.cpp does not know.
    let mut renamed = good.clone();
    let name_len = i32::from_le_bytes(good[first_tensor + 4..first_tensor + 8].try_into().unwrap());
    let n_dims = i32::from_le_bytes(good[first_tensor..first_tensor + 4].try_into().unwrap());
    let name_at = first_tensor + 12 + 4 * n_dims as usize;
    renamed[name_at] = b'X';
    assert!(name_len > 0);
    assert_refused(
        &write(tmp.path(), "renamed.bin", &renamed),
        "unexpected or repeated tensor",
    );
    // A tensor with a wrong shape.
    assert_refused(
        &write(tmp.path(), "shape.bin", &patched(first_tensor + 12, 7)),
        "has shape",
    );
}

#[test]
fn damaged_faster_whisper_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let source = common::ct2_source();
    let bytes = std::fs::read(source.join("model.bin")).unwrap();
    let out = tmp.path().join("out.bin");
    let import_err = |dir: &Path| import::import_dir(dir, &out).unwrap_err().to_string();

    let no_model = tmp.path().join("no-model");
    copy_vocabulary(&source, &no_model);
    assert!(import_err(&no_model).contains("has no model.bin"));
    let e = locate::resolve(no_model.to_str().unwrap()).unwrap_err();
    assert!(e.to_string().contains("without model.bin"), "{e}");

    let no_vocab = tmp.path().join("no-vocab");
    std::fs::create_dir_all(&no_vocab).unwrap();
    std::fs::copy(source.join("model.bin"), no_vocab.join("model.bin")).unwrap();
    assert!(import_err(&no_vocab).contains("no vocabulary.txt or vocabulary.json"));

    let case = |name: &str, model_bin: &[u8], what: &str| {
        let dir = tmp.path().join(name);
        copy_vocabulary(&source, &dir);
        std::fs::write(dir.join("model.bin"), model_bin).unwrap();
        let e = import_err(&dir);
        assert!(e.contains(what), "{name}: expected '{what}' in: {e}");
        assert!(e.contains(&dir.display().to_string()), "{e}");
    };
    case("empty", &[], "model.bin is empty");
    for cut in [3, 20, 1000, bytes.len() / 2, bytes.len() - 1] {
        case(&format!("cut-{cut}"), &bytes[..cut], "truncated");
    }
    let mut version = bytes.clone();
    version[0] = 2;
    case("version", &version, "binary version 6 (found 2)");

    let mut model = source_model();
    model.spec = "TransformerSpec".into();
    case("spec", &model.to_bytes(), "not a Whisper model");
    let mut model = source_model();
    model
        .variables
        .remove("decoder/layer_0/ffn/linear_1/weight");
    case(
        "missing-variable",
        &model.to_bytes(),
        "no variable 'decoder/layer_0/ffn/linear_1/weight'",
    );
    // Shapes no Whisper model has are refused before they size anything: a zero dimension
    // lets the declared mel count be anything without a byte of data.
    let mut model = source_model();
    let conv1 = model.variables.get_mut("encoder/conv1/weight").unwrap();
    (conv1.dims, conv1.data) = (vec![384, u32::MAX as usize, 0], Vec::new());
    case(
        "absurd-mels",
        &model.to_bytes(),
        "n_mels = 2147483647 (Whisper uses 80 or 128)",
    );
    let mut model = source_model();
    model.variables.insert(
        "encoder/num_heads".into(),
        Variable {
            dims: vec![],
            dtype: DType::I32,
            data: 5i32.to_le_bytes().to_vec(),
        },
    );
    case(
        "heads",
        &model.to_bytes(),
        "attention width is not a multiple of the head count",
    );
    assert!(!out.exists());
}

#[test]
fn missing_models_name_what_was_searched() {
    let e = locate::resolve("/nonexistent/ggml-x.bin").unwrap_err();
    assert!(matches!(e, ModelError::Io { .. }));
    assert_eq!(
        e.to_string(),
        "/nonexistent/ggml-x.bin: no such file or directory"
    );
    let e = locate::resolve("no-such-model").unwrap_err();
    assert!(
        e.to_string().contains("model 'no-such-model' not found"),
        "{e}"
    );
    assert!(e.to_string().contains("ggml-no-such-model.bin"), "{e}");
}

/// The committed fuzzing seeds (fuzz/make_corpus.py) must keep reaching deep into the formats:
/// complete small files the checks accept, and real file starts refused where they end. If a
/// format change moves these answers, the seeds need making again or fuzzing starts shallow.
#[test]
fn fuzz_seeds_reach_the_sections_they_were_made_for() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let seed = |target: &str, name: &str| std::fs::read(corpus.join(target).join(name)).unwrap();
    let path = Path::new("seed");
    let refusal = |e: ModelError| e.to_string();

    let silero = ggml::inspect_silero_bytes(&seed("ggml_header", "silero-small"), path).unwrap();
    assert_eq!((silero.version.as_str(), silero.window), ("6.2.0", 512));
    let head = ggml::inspect_silero_bytes(&seed("ggml_header", "silero-head"), path);
    assert!(refusal(head.unwrap_err()).contains("truncated in the tensor data"));

    let whisper = seed("ggml_header", "whisper-sections");
    assert_eq!(
        ggml::read_hparams_bytes(&whisper, path)
            .unwrap()
            .size_name(),
        "tiny"
    );
    let sections = refusal(ggml::inspect_bytes(&whisper, path).unwrap_err());
    assert!(
        sections.contains("truncated in the tensor data"),
        "{sections}"
    );
    let head =
        refusal(ggml::inspect_bytes(&seed("ggml_header", "whisper-head"), path).unwrap_err());
    assert!(head.contains("truncated in the mel filters"), "{head}");

    let small = ct2::Model::parse(&seed("ct2_model", "small"), path).unwrap();
    assert_eq!((small.variables.len(), small.aliases.len()), (7, 1));
    let int8 = small
        .weight_f32("encoder/layer_0/ffn/linear_0/weight", path)
        .unwrap();
    assert_eq!(int8[..3], [1.0 / 127.0, 2.0 / 127.0, 3.0 / 127.0]);
    assert_eq!(small.to_bytes(), seed("ct2_model", "small"));
    let head = refusal(ct2::Model::parse(&seed("ct2_model", "tiny-en-head"), path).unwrap_err());
    assert!(
        head.contains("model.bin is truncated in variable"),
        "{head}"
    );
}

#[test]
fn import_reports_progress_tensor_by_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny.bin");
    let mut seen = Vec::new();
    import::import_dir_reporting(
        &common::ct2_source(),
        &out,
        ggml::WeightType::F16,
        &mut |done, total| seen.push((done, total)),
    )
    .unwrap();
    let tensors = ggml::inspect(&out).unwrap().n_tensors;
    assert_eq!(seen.len(), tensors);
    assert!(seen.iter().enumerate().all(|(i, &p)| p == (i + 1, tensors)));
}

/// A compute type converts the model once, into the first directory that takes it: the
/// converted file has the type asked for and transcribes as well; asked again, the same file
/// is reused; a quantised model cannot be converted, and the error says so.
#[test]
fn a_compute_type_converts_the_model_once() {
    use gstwhisperstt::model::compute::{model_file_in, ComputeType};
    use gstwhisperstt::model::Device;
    let tmp = tempfile::tempdir().unwrap();
    let f16 = common::model_path();
    let bf16 = ComputeType::Weights(ggml::WeightType::Bf16);
    // The first directory cannot be made (a file is in the way): the next one takes it.
    std::fs::write(tmp.path().join("a-file"), b"").unwrap();
    let dirs = [tmp.path().join("a-file/sub"), tmp.path().to_path_buf()];
    let converted = model_file_in(&f16, bf16, Device::Cpu, &dirs).unwrap();
    assert_eq!(converted.parent(), Some(tmp.path()));
    assert_eq!(
        ggml::inspect(&converted).unwrap().hparams.weight_type(),
        "bf16"
    );
    let written = std::fs::metadata(&converted).unwrap().modified().unwrap();
    let again = model_file_in(&f16, bf16, Device::Cpu, &dirs).unwrap();
    assert_eq!(again, converted);
    assert_eq!(
        std::fs::metadata(&again).unwrap().modified().unwrap(),
        written
    );
    let stored = model_file_in(&f16, ComputeType::Stored, Device::Cpu, &dirs).unwrap();
    assert_eq!(stored, f16);

    let speech = common::reference_speech();
    let (wer_bf16, wer_f16) = (
        common::transcriber_wer(&converted, &speech),
        common::transcriber_wer(&f16, &speech),
    );
    assert!(
        wer_bf16 <= wer_f16 + 0.02,
        "bf16 {wer_bf16:.3}, f16 {wer_f16:.3}"
    );

    let q8 = ComputeType::Weights(ggml::WeightType::Q8_0);
    let q8_file = model_file_in(&f16, q8, Device::Cpu, &dirs).unwrap();
    let q5 = ComputeType::Weights(ggml::WeightType::Q5_0);
    let err = model_file_in(&q8_file, q5, Device::Cpu, &dirs).unwrap_err();
    assert!(err.to_string().contains("quantised"), "{err}");
    let tmp_files = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(tmp_files, 0, "a failed conversion leaves no temporary file");
}
