//! The CTranslate2 `model.bin` parser (`src/model/ct2.rs`) on arbitrary bytes, with the
//! accessors and the conversion the importer (`src/model/import.rs`) runs on a parsed model.
//! Whatever the input, each must answer Ok or a `ModelError`, without panicking, hanging or
//! allocating more than the input's size.

#![no_main]

use gstwhisperstt::model::ct2::Model;
use gstwhisperstt::model::{ggml, import};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("model.bin");
    let model = match Model::parse(data, path) {
        Ok(model) => model,
        Err(e) => {
            assert_eq!(e.path(), Some(path), "{e}");
            return;
        }
    };
    for (name, v) in &model.variables {
        assert_eq!(v.data.len(), v.len() * v.dtype.size(), "{name}");
        assert!(model.get(name).is_some());
        let _ = model.scalar(name);
        if let Err(e) = model.weight_f32(name, path) {
            assert_eq!(e.path(), Some(path), "{e}");
        }
    }
    // The import's conversion, tensor by tensor, as `import_dir` runs it before writing.
    match import::hparams(&model, path) {
        Ok(hp) => {
            for spec in ggml::expected_tensors(&hp) {
                if let Err(e) = import::tensor_values(&model, &spec, path) {
                    assert_eq!(e.path(), Some(path), "{e}");
                }
            }
        }
        Err(e) => assert_eq!(e.path(), Some(path), "{e}"),
    }
    // The writer the tests and the seed corpus use reads back as the same model.
    assert_eq!(Model::parse(&model.to_bytes(), path).as_ref(), Ok(&model));
});
