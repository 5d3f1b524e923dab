//! Many streams on one model: whisper states follow the decodes running at once, not the
//! streams; an overloaded device is reported while finals are kept; sharing can be turned off
//! to measure what it saves. (Earliest-deadline-first order: the scheduler's unit test.)

mod common;

use common::pipeline;
use gst::prelude::*;
use gstwhisperstt::model::cache::ModelCache;
use gstwhisperstt::model::{ContextOptions, Device, ModelKey};
use gstwhisperstt::scheduler;
use gstwhisperstt::scheduler::DecodeSlot;
use gstwhisperstt::transcriber::{DecodeOptions, PartialDecodes, StreamOptions, Transcriber};

fn key() -> ModelKey {
    ModelKey::new(
        &common::model_path(),
        Device::Cpu,
        ContextOptions::default(),
    )
    .unwrap()
}

/// The LibriVox clips of pocketsphinx-testdata, 1 s apart, and their transcript.
fn librivox() -> (Vec<f32>, String) {
    let mut audio = Vec::new();
    let mut text = Vec::new();
    for (path, t) in common::pocketsphinx_clips().into_iter().skip(6) {
        audio.extend(common::read_audio(&path));
        audio.extend(std::iter::repeat_n(0.0, 16_000));
        text.push(t);
    }
    (audio, text.join(" "))
}

#[test]
fn whisper_states_follow_concurrent_decodes_not_streams() {
    let cache = ModelCache::new();
    let (audio, reference) = librivox();
    let options = DecodeOptions {
        threads: 1,
        ..DecodeOptions::default()
    };
    // The streams start together, as a server's do: the first decode's state is made once
    // between them, not once by each.
    let start = std::sync::Barrier::new(8);
    let texts: Vec<String> = std::thread::scope(|s| {
        let running: Vec<_> = (0..8)
            .map(|_| {
                let (audio, options, cache, start) = (&audio, &options, &cache, &start);
                s.spawn(move || {
                    start.wait();
                    let model = cache.acquire(&key(), None).unwrap();
                    let slot = DecodeSlot::for_device(Device::Cpu);
                    let mut t =
                        Transcriber::new(model, options, StreamOptions::default(), slot).unwrap();
                    let mut out = Vec::new();
                    for chunk in audio.chunks(1600) {
                        out.extend(t.push(chunk, PartialDecodes::Allowed).unwrap());
                    }
                    out.extend(t.finish().unwrap());
                    out.into_iter()
                        .map(|t| t.text)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
            })
            .collect();
        running.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for text in &texts {
        let wer = common::wer(&reference, text);
        assert!(wer <= 0.15, "WER {wer:.3}: {text}");
        assert_eq!(text, &texts[0], "streams on one model differ");
    }
    // One-thread decodes: at most as many at once as the budget has threads.
    let model = cache.acquire(&key(), None).unwrap();
    let budget = scheduler::for_device(Device::Cpu).capacity() as usize;
    let states = model.states_created();
    assert!(
        (1..=budget).contains(&states),
        "{states} states for a budget of {budget}"
    );
}

#[test]
fn sharing_can_be_turned_off_for_comparison() {
    let cache = ModelCache::new();
    cache.set_sharing(false);
    let private: Vec<_> = (0..2)
        .map(|_| cache.acquire(&key(), None).unwrap())
        .collect();
    assert_eq!(cache.stats().loads, 2);
    assert!(!std::sync::Arc::ptr_eq(
        private[0].model(),
        private[1].model()
    ));
    cache.set_sharing(true);
    let shared: Vec<_> = (0..2)
        .map(|_| cache.acquire(&key(), None).unwrap())
        .collect();
    assert_eq!(cache.stats().loads, 3);
    assert!(std::sync::Arc::ptr_eq(shared[0].model(), shared[1].model()));
}

#[test]
fn an_overloaded_model_is_reported_and_finals_are_kept() {
    pipeline::init();
    let (once, reference) = librivox();
    // Three times over, so the backlog outlasts the 5 s an overload must last to be reported.
    let audio: Vec<f32> = once.iter().copied().cycle().take(3 * once.len()).collect();
    let reference = [reference.as_str(); 3].join(" ");
    // Four live streams whose whole audio arrives at once: far more than real time.
    let pipelines: Vec<gst::Pipeline> = (0..4)
        .map(|i| {
            pipeline::launch(&format!(
                "appsrc name=src is-live=true format=time \
                 caps=audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved ! \
                 whispersink name=s{i} latency=1000"
            ))
        })
        .collect();
    let runs: Vec<_> = pipelines
        .iter()
        .map(|p| {
            let p = p.clone();
            let audio = audio.clone();
            std::thread::spawn(move || {
                let bus = p.bus().unwrap();
                p.set_state(gst::State::Playing).unwrap();
                let src: gst_app::AppSrc = p.by_name("src").unwrap().downcast().unwrap();
                for (i, chunk) in audio.chunks(1600).enumerate() {
                    let mut b = gst::Buffer::from_slice(
                        chunk
                            .iter()
                            .flat_map(|s| s.to_le_bytes())
                            .collect::<Vec<u8>>(),
                    );
                    b.get_mut()
                        .unwrap()
                        .set_pts(gst::ClockTime::from_mseconds(100 * i as u64));
                    src.push_buffer(b).unwrap();
                }
                src.end_of_stream().unwrap();
                let (mut finals, mut partials, mut warnings, mut max_lag) =
                    (Vec::new(), 0, Vec::new(), gst::ClockTime::ZERO);
                loop {
                    let msg = bus
                        .timed_pop(gst::ClockTime::from_seconds(120))
                        .expect("stream did not finish");
                    match msg.view() {
                        gst::MessageView::Eos(_) => break,
                        gst::MessageView::Error(e) => panic!("{}", e.error()),
                        gst::MessageView::Warning(w) => {
                            if let Some(d) = w.details() {
                                warnings.push(d.to_owned());
                            }
                        }
                        gst::MessageView::Element(e) => {
                            let s = e.structure().unwrap();
                            if s.name() != "whisperstt-transcript" {
                                continue;
                            }
                            max_lag = max_lag.max(s.get::<gst::ClockTime>("lag").unwrap());
                            if s.get::<bool>("is-final").unwrap() {
                                finals.push(s.get::<String>("text").unwrap());
                            } else {
                                partials += 1;
                            }
                        }
                        _ => {}
                    }
                }
                p.set_state(gst::State::Null).unwrap();
                (finals, partials, warnings, max_lag)
            })
        })
        .collect();
    // The file the streams load: the model in the compute type `auto` chooses here.
    let model = gstwhisperstt::model::compute::model_file(
        &common::model_path(),
        gstwhisperstt::model::compute::ComputeType::Auto,
        gstwhisperstt::model::Device::Cpu,
    )
    .unwrap()
    .canonicalize()
    .unwrap();
    let mut overloads = 0;
    for run in runs {
        let (finals, partials, warnings, max_lag) = run.join().unwrap();
        // Finals are never dropped, even far behind.
        let wer = common::wer(&reference, &finals.join(" "));
        assert!(wer <= 0.15, "WER {wer:.3}: {finals:?}");
        // Partials are shed while behind.
        assert!(
            partials <= finals.len(),
            "{partials} partials, {} finals",
            finals.len()
        );
        assert!(max_lag > gst::ClockTime::from_seconds(5), "lag {max_lag}");
        for w in warnings
            .iter()
            .filter(|w| w.name() == "whisperstt-overload")
        {
            assert_eq!(w.get::<String>("model").unwrap(), model.to_string_lossy());
            assert!(w.get::<gst::ClockTime>("lag").unwrap() > gst::ClockTime::from_seconds(1));
            overloads += 1;
        }
    }
    assert!(overloads >= 1, "no whisperstt-overload warning");
}
