//! Live input in real time: how long after its utterance ends each final comes, against the
//! latency the element promises: `max-observed-delay`, its notifications, and the
//! `whisperstt-late` warnings past latency + lateness. Real time, so one short recording per
//! test, and the tests take turns rather than compete for the CPU.

mod common;

use common::pipeline::{self, clock};
use gst::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A LibriVox sentence (7.1 s, with short pauses) followed by 2 s of silence, so the voice
/// detector ends the utterance on silence before EOS does.
fn recording() -> Vec<f32> {
    let (path, _) = common::pocketsphinx_clips()
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().ends_with("-0870.wav"))
        .unwrap();
    let mut audio = common::read_audio(&path);
    audio.extend(std::iter::repeat_n(0.0, 2 * 16_000));
    audio
}

/// What one live run posted, and what `max-observed-delay` said.
struct Live {
    /// Final transcripts, each with the pipeline's running time when it reached the bus.
    finals: Vec<(gst::ClockTime, gst::Structure)>,
    /// Warnings: (text, details), in bus order, each with the number of finals before it.
    warnings: Vec<(usize, String, Option<gst::Structure>)>,
    /// The property's value in each notify::max-observed-delay, in order.
    notified: Vec<u32>,
    /// The property after EOS.
    max_observed: u32,
}

impl Live {
    /// The running time the final ended at: where the element measures its delay from.
    fn end(s: &gst::StructureRef) -> gst::ClockTime {
        s.get::<gst::ClockTime>("running-time").unwrap()
            + s.get::<gst::ClockTime>("duration").unwrap()
    }

    fn late(&self) -> Vec<&gst::Structure> {
        self.warnings
            .iter()
            .filter_map(|(_, _, d)| d.as_ref())
            .filter(|d| d.name() == "whisperstt-late")
            .collect()
    }
}

/// Plays `samples` from a live appsrc, in real time in 100 ms buffers, into
/// `whispersink name=sink threads=1 {properties}` (as tests/realtime.rs does).
///
/// One inference thread keeps the delays meaningful when other test binaries run alongside:
/// whisper.cpp's threads spin-wait on each other, so with another whisper process on the two
/// cores a two-thread final decode of this sentence took 14 s instead of 1.2 s; one thread
/// takes about 2.1 s alone and 2.5 s beside that process.
fn play_live(samples: &[f32], properties: &str) -> Live {
    // The tests of this binary run one at a time: each one's delays are its own.
    let _turn = common::one_at_a_time();
    let p = pipeline::launch(&format!(
        "appsrc name=src is-live=true format=time do-timestamp=false \
         caps=audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved ! \
         whispersink name=sink threads=1 {properties}"
    ));
    let sink = p.by_name("sink").unwrap();
    let notified = Arc::new(Mutex::new(Vec::new()));
    {
        let notified = notified.clone();
        sink.connect_notify(Some("max-observed-delay"), move |sink, _| {
            notified
                .lock()
                .unwrap()
                .push(sink.property::<u32>("max-observed-delay"));
        });
    }
    let src: gst_app::AppSrc = p.by_name("src").unwrap().downcast().unwrap();
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let started = Instant::now();
    let feeder = pipeline::feed_in_real_time(src, samples.to_vec(), started);
    let mut live = Live {
        finals: Vec::new(),
        warnings: Vec::new(),
        notified: Vec::new(),
        max_observed: 0,
    };
    let limit = Duration::from_secs_f64(samples.len() as f64 / 16_000.0 + 60.0);
    loop {
        assert!(started.elapsed() < limit, "live pipeline did not finish");
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Warning(w) => {
                let details = w.details().map(|d| d.to_owned());
                eprintln!("warning: {} {details:?}", w.error());
                live.warnings
                    .push((live.finals.len(), w.error().to_string(), details));
            }
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap();
                if s.name() == "whisperstt-transcript" && s.get::<bool>("is-final").unwrap() {
                    let now = p.current_running_time().unwrap();
                    eprintln!(
                        "final {} ends {} reached the bus at {now} (inference {} ms): {}",
                        s.get::<u64>("utterance-id").unwrap(),
                        Live::end(s),
                        s.get::<gst::ClockTime>("inference-time")
                            .unwrap()
                            .mseconds(),
                        s.get::<&str>("text").unwrap()
                    );
                    live.finals.push((now, s.to_owned()));
                }
            }
            _ => {}
        }
    }
    feeder.join().unwrap();
    live.max_observed = sink.property::<u32>("max-observed-delay");
    p.set_state(gst::State::Null).unwrap();
    live.notified = notified.lock().unwrap().clone();
    eprintln!(
        "max-observed-delay {} ms, notified {:?}",
        live.max_observed, live.notified
    );
    live
}

/// Checks what holds whatever the delays were: the property only grows, each growth is
/// notified, and no delay it records exceeds the time its final took to reach the bus.
fn check_observed(live: &Live) {
    assert!(!live.finals.is_empty());
    assert!(
        !live.notified.is_empty(),
        "notify::max-observed-delay never fired"
    );
    assert!(
        live.notified.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        live.notified
    );
    assert_eq!(*live.notified.last().unwrap(), live.max_observed);
    // The element measures each delay before it posts the final, so the delay with which
    // finals reached the bus bounds it.
    let seen = live
        .finals
        .iter()
        .map(|(at, s)| at.saturating_sub(Live::end(s)).mseconds())
        .max()
        .unwrap();
    assert!(
        live.max_observed as u64 <= seen,
        "max-observed-delay {} ms, but every final reached the bus within {seen} ms",
        live.max_observed
    );
}

#[test]
fn finals_later_than_the_latency_are_warned_about() {
    // An utterance ends after vad-min-silence of silence, and keeps only vad-padding (300 ms)
    // of it: a final on silence comes at least 900 ms after its end however fast the CPU,
    // well past latency 500 ms.
    let live = play_live(&recording(), "latency=500 lateness=0 vad-min-silence=1200");
    check_observed(&live);
    let late = live.late();
    assert!(!late.is_empty(), "no whisperstt-late warning");
    let mut largest = gst::ClockTime::ZERO;
    let mut warned = Vec::new();
    for (before, text, details) in &live.warnings {
        let d = details
            .as_ref()
            .filter(|d| d.name() == "whisperstt-late")
            .unwrap_or_else(|| panic!("unexpected warning: {text}"));
        let delay = clock(d, "delay");
        let id = d.get::<u64>("utterance-id").unwrap();
        assert!(!warned.contains(&id), "two warnings for utterance {id}");
        warned.push(id);
        assert!(delay > gst::ClockTime::from_mseconds(500), "{d:?}");
        assert_eq!(clock(d, "latency"), gst::ClockTime::from_mseconds(500));
        assert_eq!(clock(d, "lateness"), gst::ClockTime::ZERO);
        assert_eq!(
            text,
            &format!(
                "Final transcript {} ms after its utterance ended: over latency 500 ms + lateness 0 ms",
                delay.mseconds()
            )
        );
        // Posted just before that final, which then took at least as long to reach us.
        let (at, last) = live
            .finals
            .get(*before)
            .unwrap_or_else(|| panic!("no final after the warning for utterance {id}"));
        assert_eq!(last.get::<u64>("utterance-id").unwrap(), id);
        assert!(
            delay <= at.saturating_sub(Live::end(last)),
            "{d:?} {last:?}"
        );
        largest = largest.max(delay);
    }
    // Warned finals are the ones over 500 ms, so the largest delay of all was warned about.
    assert!(live.max_observed > 0);
    assert_eq!(live.max_observed as u64, largest.mseconds());
}

#[test]
fn finals_within_latency_and_lateness_are_not_warned_about() {
    let live = play_live(&recording(), "lateness=2000");
    check_observed(&live);
    assert!(live.late().is_empty(), "late finals: {:?}", live.late());
    // Default latency 3000 ms + lateness 2000 ms; a final cannot come instantly.
    assert!(
        (1..=5000).contains(&live.max_observed),
        "max-observed-delay {} ms",
        live.max_observed
    );
}

/// Each text buffer `whispertranscribe {properties}` pushed for `samples` played live: when
/// it came (running time) and its PTS and text; and how many final-transcript events came.
fn transcribe_live(
    samples: &[f32],
    properties: &str,
) -> (Vec<(gst::ClockTime, gst::ClockTime, String)>, usize) {
    let _turn = common::one_at_a_time();
    let p = pipeline::launch(&format!(
        "appsrc name=src is-live=true format=time do-timestamp=false \
         caps=audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved ! \
         whispertranscribe name=t threads=1 {properties} ! appsink name=out sync=false async=false"
    ));
    let texts = Arc::new(Mutex::new(Vec::new()));
    let finals = Arc::new(Mutex::new(0usize));
    let weak = p.downgrade();
    let (t, f) = (texts.clone(), finals.clone());
    let out: gst_app::AppSink = p.by_name("out").unwrap().downcast().unwrap();
    out.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let b = sample.buffer().unwrap();
                let now = weak
                    .upgrade()
                    .and_then(|p| p.current_running_time())
                    .unwrap();
                let text = String::from_utf8(b.map_readable().unwrap().to_vec()).unwrap();
                t.lock().unwrap().push((now, b.pts().unwrap(), text));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    out.static_pad("sink").unwrap().add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            if let Some(gst::PadProbeData::Event(e)) = &info.data {
                if e.structure()
                    .is_some_and(|s| s.name() == "rstranscribe/final-transcript")
                {
                    *f.lock().unwrap() += 1;
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
    let src: gst_app::AppSrc = p.by_name("src").unwrap().downcast().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let feeder = pipeline::feed_in_real_time(src, samples.to_vec(), Instant::now());
    let bus = p.bus().unwrap();
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    feeder.join().unwrap();
    p.set_state(gst::State::Null).unwrap();
    assert!(
        matches!(msg.map(|m| m.type_()), Some(gst::MessageType::Eos)),
        "no EOS"
    );
    let texts = texts.lock().unwrap().clone();
    let finals = *finals.lock().unwrap();
    (texts, finals)
}

/// With `stable-partials`, the words two partials agreed on go downstream at once: the first
/// words of a 7.1 s sentence come within the element's latency of their timestamps (a
/// caption encoder can place them), where a final alone brings them 7 s after; the text is
/// the same sentence, each word once (a leading word the partials missed stays missing).
#[test]
fn stable_partials_bring_a_long_utterance_s_first_words_within_the_latency() {
    let (_, reference) = common::pocketsphinx_clip("-0870.wav");
    // transcriberbin's default latency.
    let latency = gst::ClockTime::from_seconds(4);
    let properties = "latency=4000 output-granularity=word";
    let (early, early_finals) =
        transcribe_live(&recording(), &format!("{properties} stable-partials=true"));
    let (whole, whole_finals) = transcribe_live(&recording(), properties);
    let late = |texts: &[(gst::ClockTime, gst::ClockTime, String)]| {
        texts
            .iter()
            .filter(|(came, pts, _)| *came > *pts + latency)
            .count()
    };
    let text = |texts: &[(gst::ClockTime, gst::ClockTime, String)]| {
        texts
            .iter()
            .map(|t| t.2.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first_delay = |texts: &[(gst::ClockTime, gst::ClockTime, String)]| texts[0].0 - texts[0].1;
    eprintln!(
        "stable partials: {} of {} words past the latency, first word after {}, WER {:.3}; \
         finals only: {} of {} past, first after {}, WER {:.3}",
        late(&early),
        early.len(),
        first_delay(&early),
        common::wer(&reference, &text(&early)),
        late(&whole),
        whole.len(),
        first_delay(&whole),
        common::wer(&reference, &text(&whole)),
    );
    // Measured (one thread, alone): the first word 3.4 s after its start, words 0.4-3.4 s;
    // finals alone: the first word 7.3 s after, 9-12 of 22 past the latency.
    assert!(
        first_delay(&whole) >= gst::ClockTime::from_seconds(6),
        "finals come at the end"
    );
    assert!(
        late(&early) * 10 <= early.len(),
        "stable partials: at most a tenth late"
    );
    assert!(
        first_delay(&early) <= latency,
        "first word {}",
        first_delay(&early)
    );
    assert!(common::wer(&reference, &text(&early)) <= common::wer(&reference, &text(&whole)) + 0.1);
    assert_eq!(
        (early_finals, whole_finals),
        (1, 1),
        "one final-transcript event each"
    );
    let pts: Vec<gst::ClockTime> = early.iter().map(|t| t.1).collect();
    assert!(
        pts.windows(2).all(|w| w[0] <= w[1]),
        "text never goes back in time: {pts:?}"
    );
}
