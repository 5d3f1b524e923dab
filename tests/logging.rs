//! What `GST_DEBUG=whisperstt*:5` shows: whisper.cpp's own log (in `whisperstt-engine`, not on
//! stderr), the model cache's loads (`whisperstt-model`) and each decode's timing and
//! scheduling (the element's category). Its own binary, so the model is loaded here, fresh.

mod common;

use common::pipeline;
use gst::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn debug_categories_show_loads_scheduling_and_decode_timings() {
    pipeline::init();
    let lines: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = lines.clone();
    gst::log::remove_default_log_function();
    gst::log::set_threshold_for_name("whisperstt*", gst::DebugLevel::Debug);
    gst::log::add_log_function(
        move |cat, _level, _file, _function, _line, _object, message| {
            if cat.name().starts_with("whisperstt") {
                let text = message.get().map(|m| m.to_string()).unwrap_or_default();
                sink.lock().unwrap().push((cat.name().to_string(), text));
            }
        },
    );
    let (clip, reference) = common::pocketsphinx_clips().remove(0);
    let p = pipeline::launch(&format!(
        "{} ! whispersink name=stt",
        pipeline::source(&clip)
    ));
    let run = pipeline::play(&p, Duration::from_secs(60));
    p.set_state(gst::State::Null).unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert!(
        common::wer(&reference, &run.text()) <= 0.15,
        "{}",
        run.text()
    );

    let lines = lines.lock().unwrap();
    let in_category = |name: &str, what: &str| {
        lines
            .iter()
            .filter(|(cat, text)| cat == name && text.contains(what))
            .count()
    };
    assert!(
        in_category("whisperstt-engine", "whisper_model_load") >= 1,
        "whisper.cpp's load log is missing: {lines:?}"
    );
    assert_eq!(
        in_category("whisperstt-model", "loaded "),
        1,
        "one load: {lines:?}"
    );
    assert_eq!(
        in_category("whisperstt-sink", "decoded in"),
        run.transcripts.len(),
        "a timing line per result: {lines:?}"
    );
    assert!(in_category("whisperstt-sink", "waiting for them") >= 1);
    // The build's kernels, once: .cargo/config.toml turns on llamafile's matrix kernels
    // (a build without them is about 1.35x slower on x86: the benchmark's whisper-rs rows).
    assert_eq!(
        in_category("whisperstt-engine", "whisper.cpp build:"),
        1,
        "{lines:?}"
    );
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        in_category("whisperstt-engine", "LLAMAFILE = 1"),
        1,
        "whisper.cpp built without llamafile's kernels: {lines:?}"
    );
}
