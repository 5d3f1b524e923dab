//! The ggml checks (`src/model/ggml.rs`) on arbitrary bytes: a Whisper model (`inspect`, and its
//! header alone with `read_hparams`) and a Silero VAD model (`inspect_silero`). Whatever the
//! input, each must answer Ok or a `ModelError`, without panicking, hanging or allocating more
//! than the input's size.

#![no_main]

use gstwhisperstt::model::{ggml, ModelError};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.bin");
    let named = |e: &ModelError| assert_eq!(e.path(), Some(path), "{e}");
    let header = ggml::read_hparams_bytes(data, path);
    if let Err(e) = &header {
        named(e);
    }
    match ggml::inspect_bytes(data, path) {
        Ok(info) => {
            // A file that passes the full check has a header that passes the header check.
            assert_eq!(header.as_ref().ok(), Some(&info.hparams));
            assert_eq!(info.file_size, data.len() as u64);
        }
        Err(e) => named(&e),
    }
    match ggml::inspect_silero_bytes(data, path) {
        Ok(info) => assert_eq!(info.file_size, data.len() as u64),
        Err(e) => named(&e),
    }
});
