//! Eight pipelines in one process share one model: one load, seen the same way by the bus and
//! the statistics API; the later pipelines never wait for a load; after they stop and the idle
//! time-out passes the model is released and its memory given back.
//!
//! Alone in its test binary so that the process's memory is this test's.

mod common;

use common::pipeline::{self, play};
use gst::prelude::*;
use gstwhisperstt::model::cache;
use gstwhisperstt::model::{ContextOptions, Device, ModelKey};
use std::time::Duration;

const PIPELINES: usize = 8;

#[test]
fn eight_pipelines_share_one_model_then_release_it() {
    pipeline::init();
    // A private copy: this test's key is loaded by no one else.
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("shared-tiny.en.bin");
    std::fs::copy(common::model_path(), &model).unwrap();
    let key = ModelKey::new(&model, Device::Cpu, ContextOptions::default()).unwrap();
    let (audio, reference) = common::reference_speech().into_iter().next().unwrap();
    let description = |i: usize| {
        format!(
            "{} ! whispersink name=stt{i} model={} compute-type=stored model-idle-timeout=1",
            pipeline::source(&audio),
            model.display()
        )
    };
    let rss_before = pipeline::rss_bytes();

    // Pipelines keep their bus messages in NULL (GstPipeline drops them by default), so the
    // release that comes after they stop can be read.
    let launch = |i| {
        let p = pipeline::launch(&description(i));
        p.set_auto_flush_bus(false);
        p
    };
    // Pipeline 1 loads the model.
    let first = launch(0);
    let first_run = play(&first, Duration::from_secs(120));
    assert_eq!(first_run.model_actions(), ["loaded"]);
    let load_time = common::pipeline::clock(&first_run.model_messages[0], "load-time");

    // Pipelines 2..8 start together while pipeline 1 still holds the model.
    let others: Vec<gst::Pipeline> = (1..PIPELINES).map(launch).collect();
    let threads: Vec<_> = others
        .iter()
        .cloned()
        .map(|p| std::thread::spawn(move || play(&p, Duration::from_secs(300))))
        .collect();
    let mut runs = vec![first_run];
    runs.extend(threads.into_iter().map(|t| t.join().unwrap()));
    let rss_loaded = pipeline::rss_bytes();

    // Exactly one load: the bus and the statistics API agree.
    let actions: Vec<String> = runs.iter().flat_map(|r| r.model_actions()).collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "loaded").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "reused").count(),
        PIPELINES - 1,
        "{actions:?}"
    );
    assert_eq!(cache::global().loads_of(&key), 1);
    let stats = cache::global().stats();
    assert_eq!(stats.model(&key).unwrap().live_handles, PIPELINES);
    let reported_loads: Vec<u64> = runs
        .iter()
        .map(|r| r.model_messages[0].get::<u64>("loads").unwrap())
        .collect();
    assert!(reported_loads.iter().all(|&n| n == 1), "{reported_loads:?}");

    // Pipelines 2..8 were ready without waiting for a load, and every one transcribed right.
    for (i, r) in runs.iter().enumerate() {
        assert!(r.errors.is_empty(), "pipeline {i}: {:?}", r.errors);
        let wer = common::wer(&reference, &r.text());
        assert!(wer <= 0.25, "pipeline {i}: WER {wer:.3}: {}", r.text());
        assert!(r
            .transcripts
            .iter()
            .all(|t| t.get::<&str>("element").unwrap() == format!("stt{i}")));
        if i > 0 {
            let ready = r.ready_after.unwrap();
            eprintln!(
                "pipeline {}: ready after {ready:?} (pipeline 1 loaded in {load_time})",
                i + 1
            );
        }
    }

    // All to NULL; after the 1 s idle time-out the model is released and a message says so.
    let mut all = vec![first];
    all.extend(others);
    for p in &all {
        p.set_state(gst::State::Null).unwrap();
    }
    let bus = all[0].bus().unwrap();
    let released = bus
        .iter_timed_filtered(
            gst::ClockTime::from_seconds(5),
            &[gst::MessageType::Element],
        )
        .find(|m| {
            m.structure().is_some_and(|s| {
                s.name() == "whisperstt-model" && s.get::<&str>("action").unwrap() == "released"
            })
        });
    assert!(released.is_some(), "no 'released' message within 5 s");
    let stats = cache::global().stats();
    assert!(stats.model(&key).is_none());
    assert_eq!(stats.live_handles(), 0);

    std::thread::sleep(Duration::from_millis(200));
    let rss_after = pipeline::rss_bytes();
    let mb = |b: u64| b as f64 / 1e6;
    eprintln!(
        "RSS: before {:.0} MB, with {PIPELINES} pipelines {:.0} MB, after release {:.0} MB; model {:.0} MB",
        mb(rss_before),
        mb(rss_loaded),
        mb(rss_after),
        mb(key.size)
    );
    // Most of the model's size (and the streams' buffers) went back to the system.
    assert!(
        rss_loaded.saturating_sub(rss_after) >= key.size * 3 / 4,
        "RSS dropped only {:.0} MB",
        mb(rss_loaded.saturating_sub(rss_after))
    );
}
