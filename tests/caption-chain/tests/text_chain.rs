//! whispertranscribe's text into gst-plugins-rs's text elements, as their users chain them.

use gst::prelude::*;
use std::sync::{Arc, Mutex};
use whisperstt_caption_chain as chain;

/// What came out of a run: the appsink's buffers' text, the finals' text (bus), and the
/// final-transcript events that went downstream.
struct Out {
    texts: Vec<String>,
    finals: Vec<String>,
    final_events: usize,
}

/// Pushes the five LibriVox recordings (not live) through `whispertranscribe
/// output-granularity=word ! {downstream} ! appsink`.
fn transcribe_into(downstream: &str) -> Out {
    chain::init();
    let p = gst::parse::launch(&format!(
        "appsrc name=src format=time \
           caps=audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved \
         ! whispertranscribe name=w output-granularity=word ! {downstream} \
         ! appsink name=out sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = p
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let collected = Arc::clone(&out);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let text = sample.buffer().unwrap().map_readable().unwrap().to_vec();
                collected
                    .lock()
                    .unwrap()
                    .push(String::from_utf8(text).unwrap());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let events = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&events);
    let w_src = p.by_name("w").unwrap().static_pad("src").unwrap();
    w_src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let name = info
            .event()
            .and_then(|e| e.structure())
            .map(|s| s.name().to_string());
        if name.as_deref() == Some("rstranscribe/final-transcript") {
            *counted.lock().unwrap() += 1;
        }
        gst::PadProbeReturn::Ok
    });
    let src = p
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let speech = chain::librivox_speech();
    let bytes: Vec<u8> = speech
        .samples
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let mut buffer = gst::Buffer::from_slice(bytes);
    buffer.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    src.push_buffer(buffer).unwrap();
    src.end_of_stream().unwrap();
    let mut finals = Vec::new();
    let bus = p.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap();
                if s.name() == "whisperstt-transcript" && s.get::<bool>("is-final").unwrap() {
                    finals.push(s.get::<String>("text").unwrap());
                }
            }
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    let texts = out.lock().unwrap().clone();
    let final_events = *events.lock().unwrap();
    Out {
        texts,
        finals,
        final_events,
    }
}

/// Where each text of `texts` ends, counted in words from the first.
fn word_ends(texts: &[String]) -> Vec<usize> {
    texts
        .iter()
        .scan(0, |n, t| {
            *n += chain::words(t).len();
            Some(*n)
        })
        .collect()
}

/// textaccumulate drains on each `rstranscribe/final-transcript` event (and at sentence
/// terminators, "Mr." among them): every word once, in order, and no buffer holds words of
/// two finals.
#[test]
fn textaccumulate_drains_on_each_final() {
    let Out {
        texts: out,
        finals,
        final_events,
    } = transcribe_into("textaccumulate");
    eprintln!("textaccumulate: {out:?}\nfinals: {finals:?}");
    assert_eq!(
        final_events,
        finals.len(),
        "a final-transcript event after each final"
    );
    let accumulated: Vec<String> = out.iter().flat_map(|t| chain::words(t)).collect();
    let spoken: Vec<String> = finals.iter().flat_map(|t| chain::words(t)).collect();
    assert_eq!(accumulated, spoken);
    let buffer_ends = word_ends(&out);
    for end in word_ends(&finals) {
        assert!(
            buffer_ends.contains(&end),
            "no buffer ends where a final does: {out:?}"
        );
    }
    assert!(
        finals.len() >= 2,
        "the test needs finals to drain on: {finals:?}"
    );
}

/// textwrap (what transcriberbin puts before its caption encoders) keeps every word, in order,
/// in lines of at most 32 columns.
#[test]
fn textwrap_keeps_every_word_in_32_columns() {
    let Out {
        texts: out, finals, ..
    } = transcribe_into("textwrap columns=32 lines=2");
    let wrapped: Vec<String> = out.iter().flat_map(|t| chain::words(t)).collect();
    let spoken: Vec<String> = finals.iter().flat_map(|t| chain::words(t)).collect();
    assert_eq!(wrapped, spoken);
    for line in out.iter().flat_map(|t| t.lines()) {
        assert!(line.chars().count() <= 32, "{line:?}");
    }
}
