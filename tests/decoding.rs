//! Decoding properties on the real engine: prompts, carried context, language tags,
//! output granularity, and changes while playing.

mod common;

use common::pipeline;
use gst::prelude::*;
use gstwhisperstt::transcriber::{
    language_for_bcp47, DecodeOptions, PartialDecodes, Transcript, MAX_BEAM_SIZE,
};
use std::time::{Duration, Instant};

fn transcribe_with(options: &DecodeOptions, audio: &[f32]) -> (Vec<Transcript>, Vec<usize>) {
    let mut t = common::transcriber(false);
    t.set_decode_options(options).unwrap();
    let mut out = Vec::new();
    let mut context = Vec::new();
    for chunk in audio.chunks(1600) {
        let finals = t.push(chunk, PartialDecodes::Allowed).unwrap();
        if !finals.is_empty() {
            context.push(t.carried_context_tokens());
        }
        out.extend(finals);
    }
    out.extend(t.finish().unwrap());
    context.push(t.carried_context_tokens());
    t.forget_stream();
    context.push(t.carried_context_tokens());
    (out, context)
}

#[test]
fn language_tags_map_to_whisper_languages() {
    for (tag, code) in [
        ("en-US", Some("en")),
        ("pt-BR", Some("pt")),
        ("zh-Hant-TW", Some("zh")),
        ("de_DE", Some("de")),
        ("iw", Some("he")),
        ("jv-ID", Some("jw")),
        ("nb-NO", Some("no")),
        ("fil", Some("tl")),
        ("", Some("auto")),
        ("auto", Some("auto")),
        ("xx-YY", None),
        ("klingon", None),
    ] {
        assert_eq!(language_for_bcp47(tag), code, "{tag}");
    }
}

#[test]
fn prompts_of_any_length_and_script_decode() {
    let (path, reference) = common::reference_speech().into_iter().next().unwrap();
    let audio = common::read_audio(&path);
    // One 20 000-letter word and 3 000 CJK characters without spaces used to overflow the
    // worker's stack in whisper.cpp's tokenizer (a crash of the whole process).
    for prompt in ["x".repeat(20_000), "字".repeat(3000), String::new()] {
        let options = DecodeOptions {
            initial_prompt: prompt.clone(),
            ..DecodeOptions::default()
        };
        let (out, _) = transcribe_with(&options, &audio);
        assert!(!out.is_empty(), "{} bytes of prompt", prompt.len());
        if prompt.is_empty() {
            let text: Vec<&str> = out.iter().map(|t| t.text.as_str()).collect();
            assert!(common::wer(&reference, &text.join(" ")) <= 0.2, "{text:?}");
        }
    }
}

#[test]
fn shared_initial_prompt_steers_the_style() {
    let audio = common::read_wav(&common::jfk_wav());
    let text = |prompt: &str| -> String {
        let options = DecodeOptions {
            initial_prompt: prompt.into(),
            ..DecodeOptions::default()
        };
        let (out, _) = transcribe_with(&options, &audio);
        out.iter()
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let plain = text("");
    // A lower-case prompt without punctuation: Whisper writes on in that style.
    let prompted = text("well here we are again welcome back everyone");
    // A prompt of 10 000 characters steers as well.
    let long = text(&format!(
        "{} well here we are again welcome back everyone",
        "and here we go again ".repeat(500)
    ));
    for t in [&plain, &prompted, &long] {
        assert_eq!(common::wer(common::JFK_TEXT, t), 0.0, "{t}");
    }
    assert!(
        plain.contains("Americans") && plain.contains('.'),
        "{plain}"
    );
    for t in [&prompted, &long] {
        assert!(t.starts_with("and") && !t.contains(['.', ',']), "{t}");
    }
}

#[test]
fn shared_context_is_carried_within_a_stream_only_when_asked() {
    let jfk = common::read_wav(&common::jfk_wav());
    let mut audio = jfk.clone();
    audio.extend(std::iter::repeat_n(0.0, 3 * 16_000));
    audio.extend(&jfk);
    for carry in [false, true] {
        let options = DecodeOptions {
            carry_context: carry,
            ..DecodeOptions::default()
        };
        let (out, context) = transcribe_with(&options, &audio);
        assert_eq!(out.len(), 2, "{out:?}");
        for t in &out {
            assert_eq!(common::wer(common::JFK_TEXT, &t.text), 0.0, "{}", t.text);
        }
        // After each final, then at the end, then after a reset (a flush).
        if carry {
            assert!(context[0] >= 15 && context[1] >= 15, "{context:?}");
            assert_eq!(*context.last().unwrap(), 0);
        } else {
            assert!(context.iter().all(|&n| n == 0), "{context:?}");
        }
    }
}

/// Pushes `audio` into the harness from `from` in 100 ms F32 buffers.
fn push_audio(h: &mut gst_check::Harness, audio: &[f32], from: gst::ClockTime) {
    for (i, c) in audio.chunks(1600).enumerate() {
        let mut b =
            gst::Buffer::from_slice(c.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>());
        b.get_mut()
            .unwrap()
            .set_pts(from + gst::ClockTime::from_mseconds(100 * i as u64));
        assert_eq!(h.push(b), Ok(gst::FlowSuccess::Ok));
    }
}

/// Waits for the next `rstranscribe/final-transcript` event, then takes the text buffers.
fn next_final(h: &mut gst_check::Harness) -> Vec<String> {
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(60), "no final");
        match h.try_pull_event() {
            Some(e)
                if e.structure()
                    .is_some_and(|s| s.name() == "rstranscribe/final-transcript") =>
            {
                break
            }
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    std::iter::from_fn(|| h.try_pull())
        .map(|b| String::from_utf8(b.map_readable().unwrap().to_vec()).unwrap())
        .collect()
}

#[test]
fn shared_granularity_and_decoding_change_while_playing() {
    pipeline::init();
    let jfk = common::read_wav(&common::jfk_wav());
    let mut audio = jfk.clone();
    audio.extend(std::iter::repeat_n(0.0, 2 * 16_000));
    // JFK's pauses are under a second: one utterance each time.
    let element = gst::ElementFactory::make("whispertranscribe")
        .property("vad-min-silence", 1500u32)
        .build()
        .unwrap();
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str("audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved");
    h.play();
    push_audio(&mut h, &audio, gst::ClockTime::ZERO);
    let segments = next_final(&mut h);
    assert!(!segments.is_empty() && segments.len() <= 3, "{segments:?}");
    assert_eq!(common::wer(common::JFK_TEXT, &segments.join(" ")), 0.0);

    // While playing: one buffer per word from the next utterance on.
    element.set_property_from_str("output-granularity", "word");
    push_audio(&mut h, &audio, gst::ClockTime::from_seconds(20));
    let words = next_final(&mut h);
    assert_eq!(
        words.len(),
        common::normalize(common::JFK_TEXT).len(),
        "{words:?}"
    );
    assert!(words.iter().all(|w| !w.trim().contains(' ')), "{words:?}");
    assert_eq!(common::wer(common::JFK_TEXT, &words.join(" ")), 0.0);

    element.set_property_from_str("output-granularity", "utterance");
    element.set_property(
        "initial-prompt",
        "well here we are again welcome back everyone",
    );
    push_audio(&mut h, &audio, gst::ClockTime::from_seconds(40));
    let whole = next_final(&mut h);
    assert_eq!(whole.len(), 1, "{whole:?}");
    assert!(
        whole[0].starts_with("and") && !whole[0].contains('.'),
        "{whole:?}"
    );
}

/// The widest beam the property accepts decodes (whisper.cpp refuses more than 8 decoders,
/// and the property once allowed 16: every decode failed with "error code -4"); a wider one
/// is refused when set, naming the limit.
#[test]
fn the_widest_beam_the_property_accepts_decodes_and_a_wider_one_is_refused() {
    pipeline::init();
    let element = gst::ElementFactory::make("whispersink").build().unwrap();
    let spec = element.find_property("beam-size").unwrap();
    let spec = spec.downcast_ref::<gst::glib::ParamSpecUInt>().unwrap();
    assert_eq!(spec.maximum(), MAX_BEAM_SIZE);

    // JFK where the shared corpus is, pocketsphinx's clip elsewhere (a fresh clone).
    let (path, reference) = common::reference_speech().into_iter().next().unwrap();
    let widest = DecodeOptions {
        beam_size: MAX_BEAM_SIZE,
        ..DecodeOptions::default()
    };
    let (finals, _) = transcribe_with(&widest, &common::read_audio(&path));
    let text: Vec<&str> = finals.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(common::wer(&reference, &text.join(" ")), 0.0, "{text:?}");

    let mut t = common::transcriber(false);
    let wider = DecodeOptions {
        beam_size: MAX_BEAM_SIZE + 1,
        ..DecodeOptions::default()
    };
    let e = t.set_decode_options(&wider).unwrap_err().to_string();
    assert!(
        e.contains("beam size 9 is more than whisper.cpp's 8 decoders"),
        "{e}"
    );
}

#[test]
fn unknown_languages_are_refused_when_set() {
    pipeline::init();
    let p = pipeline::launch("fakesrc num-buffers=0 ! whispersink name=s");
    let sink = p.by_name("s").unwrap();
    let bus = p.bus().unwrap();
    sink.set_property("language", "klingon");
    assert_eq!(sink.property::<String>("language"), "auto");
    let warning = bus
        .pop_filtered(&[gst::MessageType::Warning])
        .expect("a warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    assert!(w.error().to_string().contains("klingon"), "{}", w.error());

    sink.set_property("language-code", "de-DE");
    assert_eq!(sink.property::<String>("language"), "de");
    assert_eq!(sink.property::<String>("language-code"), "de-DE");
    sink.set_property("language-code", "xx-YY");
    assert_eq!(sink.property::<String>("language-code"), "de-DE");
    sink.set_property("language", "EN");
    assert_eq!(sink.property::<String>("language-code"), "en");
}
