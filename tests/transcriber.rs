//! The streaming transcriber on the real engine, without GStreamer.

mod common;

use gstwhisperstt::model::cache::{ContextOptions, Device, ModelCache, ModelKey};
use gstwhisperstt::transcriber::{DecodeOptions, StreamOptions, Transcriber};

fn transcriber() -> Transcriber {
    let cache = ModelCache::new();
    let key = ModelKey::new(
        &common::model_path(),
        Device::Cpu,
        ContextOptions::default(),
    )
    .unwrap();
    let handle = cache.acquire(&key, None).unwrap();
    Transcriber::new(handle, &DecodeOptions::default(), StreamOptions::default()).unwrap()
}

#[test]
fn shared_jfk_word_for_word() {
    let wav = common::jfk_wav();
    let mut t = transcriber();
    let mut out = t.push(&common::read_wav(&wav)).unwrap();
    out.extend(t.finish().unwrap());
    let text: Vec<&str> = out.iter().map(|s| s.text.as_str()).collect();
    let text = text.join(" ");
    assert_eq!(
        common::normalize(&text),
        common::normalize(common::JFK_TEXT),
        "{text}"
    );
    // File mode: the 1 s pause after "for you" does not end the utterance; one decode.
    assert_eq!(out.len(), 1);
    assert_eq!(t.inference_calls(), 1);
    assert!(out.iter().all(|s| s.is_final));
}
