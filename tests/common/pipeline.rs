//! Running real GStreamer pipelines with the plugin and collecting what they post.

use gst::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstwhisperstt::plugin_register_static().unwrap();
    });
}

/// A gst-launch fragment that decodes `path` to 16 kHz mono.
pub fn source(path: &Path) -> String {
    let loc = path.display();
    if path.extension().is_some_and(|e| e == "raw") {
        format!("filesrc location=\"{loc}\" ! rawaudioparse format=pcm pcm-format=s16le sample-rate=16000 num-channels=1")
    } else {
        format!("filesrc location=\"{loc}\" ! wavparse ! audioconvert ! audioresample")
    }
}

pub fn launch(description: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("{description}: {e}"))
        .downcast()
        .unwrap()
}

/// What one pipeline posted, in order, until EOS or an error.
#[derive(Debug, Default)]
pub struct Run {
    pub transcripts: Vec<gst::Structure>,
    pub model_messages: Vec<gst::Structure>,
    /// PROGRESS messages: (type, code, text).
    pub progress: Vec<(gst::ProgressType, String, String)>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// From PLAYING being requested to the element's first model message (ready or failed).
    pub ready_after: Option<Duration>,
    pub first_transcript_after: Option<Duration>,
    pub state_change_took: Duration,
}

impl Run {
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .transcripts
            .iter()
            .map(|s| s.get::<&str>("text").unwrap())
            .collect();
        texts.join(" ")
    }

    pub fn model_actions(&self) -> Vec<String> {
        self.model_messages
            .iter()
            .map(|s| s.get::<String>("action").unwrap())
            .collect()
    }
}

/// Plays `pipeline` until EOS or an error (failing the test after `timeout`), leaving it in
/// PLAYING/EOS; the caller sets it to NULL.
pub fn play(pipeline: &gst::Pipeline, timeout: Duration) -> Run {
    let bus = pipeline.bus().unwrap();
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut run = Run {
        state_change_took: started.elapsed(),
        ..Default::default()
    };
    loop {
        let left = timeout.checked_sub(started.elapsed()).unwrap_or_else(|| {
            panic!(
                "pipeline {} did not finish within {timeout:?}",
                pipeline.name()
            )
        });
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                run.errors.push(format!("{} ({:?})", e.error(), e.debug()));
                break;
            }
            gst::MessageView::Warning(w) => run.warnings.push(w.error().to_string()),
            gst::MessageView::Progress(p) => {
                let (kind, code, text) = p.get();
                run.progress
                    .push((kind, code.to_string(), text.to_string()));
            }
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap().to_owned();
                match s.name().as_str() {
                    "whisperstt-transcript" => {
                        run.first_transcript_after.get_or_insert(started.elapsed());
                        run.transcripts.push(s);
                    }
                    "whisperstt-model" => {
                        run.ready_after.get_or_insert(started.elapsed());
                        run.model_messages.push(s);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    run
}

/// Plays `description` to the end and stops it.
pub fn run(description: &str) -> Run {
    let pipeline = launch(description);
    let run = play(&pipeline, Duration::from_secs(120));
    pipeline.set_state(gst::State::Null).unwrap();
    run
}

/// The process's resident memory in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

pub fn clock(s: &gst::StructureRef, field: &str) -> gst::ClockTime {
    s.get::<gst::ClockTime>(field).unwrap()
}

/// Pushes `samples` through a `whispertranscribe` harness in 100 ms F32 buffers, after a
/// segment starting at `segment_start`; `timing(i)` gives buffer i's PTS and whether it is a
/// DISCONT. Returns the text buffers (PTS, text) after EOS.
pub fn harness_transcribe(
    samples: &[f32],
    segment_start: gst::ClockTime,
    timing: impl Fn(usize) -> (gst::ClockTime, bool),
) -> Vec<(gst::ClockTime, String)> {
    init();
    let mut h = gst_check::Harness::new("whispertranscribe");
    h.set_src_caps_str("audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved");
    h.play();
    let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
    segment.set_start(segment_start);
    segment.set_time(segment_start);
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    for (i, c) in samples.chunks(1600).enumerate() {
        let mut b =
            gst::Buffer::from_slice(c.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>());
        let (pts, discont) = timing(i);
        let b_mut = b.get_mut().unwrap();
        b_mut.set_pts(pts);
        if discont {
            b_mut.set_flags(gst::BufferFlags::DISCONT);
        }
        assert_eq!(h.push(b), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let mut out = Vec::new();
    while let Some(b) = h.try_pull() {
        out.push((
            b.pts().unwrap(),
            String::from_utf8(b.map_readable().unwrap().to_vec()).unwrap(),
        ));
    }
    out
}

/// Plays `samples` into `sink_description` from a live appsrc, in real time, in 100 ms buffers.
/// Returns every transcript message with the wall-clock time it arrived, measured from the
/// moment the first sample was due.
pub fn play_live(samples: &[f32], sink_description: &str) -> Vec<(Duration, gst::Structure)> {
    let p = launch(&format!(
        "appsrc name=src is-live=true format=time do-timestamp=false \
         caps=audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved ! {sink_description}"
    ));
    let src: gst_app::AppSrc = p.by_name("src").unwrap().downcast().unwrap();
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let started = Instant::now();
    let feeder = feed_in_real_time(src, samples.to_vec(), started);
    let mut out = Vec::new();
    let limit = Duration::from_secs_f64(samples.len() as f64 / 16_000.0 + 60.0);
    loop {
        let msg = bus.timed_pop(gst::ClockTime::from_mseconds(200));
        assert!(started.elapsed() < limit, "live pipeline did not finish");
        let Some(msg) = msg else { continue };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap();
                if s.name() == "whisperstt-transcript" {
                    out.push((started.elapsed(), s.to_owned()));
                }
            }
            _ => {}
        }
    }
    feeder.join().unwrap();
    p.set_state(gst::State::Null).unwrap();
    out
}

/// How long after its end each final of `play_live` arrived, in order.
pub fn final_delays(messages: &[(Duration, gst::Structure)]) -> Vec<Duration> {
    messages
        .iter()
        .filter(|(_, s)| s.get::<bool>("is-final").unwrap())
        .map(|(arrived, s)| {
            arrived.saturating_sub(Duration::from_nanos(clock(s, "end").nseconds()))
        })
        .collect()
}

/// Pushes `samples` into a live `appsrc` in 100 ms buffers, each when it is due from
/// `started` (real time), timestamped from 0; then ends the stream.
pub fn feed_in_real_time(
    src: gst_app::AppSrc,
    samples: Vec<f32>,
    started: Instant,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for (i, chunk) in samples.chunks(1600).enumerate() {
            let due = Duration::from_millis(100 * (i as u64 + 1));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let mut b = gst::Buffer::from_slice(
                chunk
                    .iter()
                    .flat_map(|s| s.to_le_bytes())
                    .collect::<Vec<u8>>(),
            );
            let b_mut = b.get_mut().unwrap();
            b_mut.set_pts(gst::ClockTime::from_mseconds(100 * i as u64));
            b_mut.set_duration(gst::ClockTime::from_mseconds(100));
            if src.push_buffer(b).is_err() {
                return;
            }
        }
        let _ = src.end_of_stream();
    })
}
