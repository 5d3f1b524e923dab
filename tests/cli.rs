//! The whisperstt-model command line tool.

mod common;

use std::process::Command;

fn cli(args: &[&str], env: &[(&str, &std::path::Path)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_whisperstt-model"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn info_describes_the_default_model() {
    let model = common::model_path();
    let (ok, text) = cli(&["info", model.to_str().unwrap()], &[]);
    assert!(ok, "{text}");
    for line in [
        "model:         tiny.en (English-only)",
        "weights:       f16",
        "encoder:       4 layers, width 384, 6 heads, 1500 positions, 80 mel bands",
        "tensors:       167",
    ] {
        assert!(text.contains(line), "missing '{line}' in:\n{text}");
    }
}

#[test]
fn import_then_list_shows_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ggml-mini.bin");
    let (ok, text) = cli(
        &[
            "import",
            common::ct2_source().to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{text}");
    assert!(text.contains("tiny English-only, f16 source"), "{text}");
    let (ok, text) = cli(&["list"], &[("WHISPERSTT_MODEL_DIR", tmp.path())]);
    assert!(ok, "{text}");
    assert!(
        text.contains("mini") && text.contains("tiny.en f16 77.7 MB"),
        "{text}"
    );
}

#[test]
fn errors_exit_non_zero_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, text) = cli(
        &["import", tmp.path().to_str().unwrap(), "/tmp/never.bin"],
        &[],
    );
    assert!(!ok);
    assert!(text.contains("has no model.bin"), "{text}");
    let (ok, text) = cli(&["fetch", "tiny.xx"], &[]);
    assert!(!ok && text.contains("unknown model 'tiny.xx'"), "{text}");
    let (ok, text) = cli(
        &["info", "no-such-model"],
        &[("WHISPERSTT_MODEL_DIR", tmp.path())],
    );
    assert!(
        !ok && text.contains("model 'no-such-model' not found"),
        "{text}"
    );
    let (ok, _) = cli(&["bogus"], &[]);
    assert!(!ok);
}
