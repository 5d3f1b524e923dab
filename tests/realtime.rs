//! Live input in real time: partials before finals, finals within the latency, accuracy.
//! Alone in its test binary, so nothing else competes for the CPU while the clock runs.
//!
//! Why all 5.8 minutes (839 words): on the first 2 minutes (16 sentences, 276 words) live
//! finals measured WER 0.047 against 0.029 in file mode, a gap one word short of the 0.02
//! bound, where the whole recording measured 0.057 against 0.048. Shorter audio would fail on
//! where a speaker happens to pause, until live finals match file mode.

mod common;

use common::pipeline::{self, clock};
use std::time::Duration;

#[test]
fn shared_long_recording_live_in_real_time() {
    let (path, reference, _) = common::long_recording();
    let audio = common::read_wav(&path);
    let latency = Duration::from_millis(3000);
    let messages = pipeline::play_live(&audio, "whispersink name=live latency=3000");

    let finals: Vec<&(Duration, gst::Structure)> = messages
        .iter()
        .filter(|(_, s)| s.get::<bool>("is-final").unwrap())
        .collect();
    let text: Vec<&str> = finals
        .iter()
        .map(|(_, s)| s.get::<&str>("text").unwrap())
        .collect();
    let live_wer = common::wer(&reference, &text.join(" "));
    let file = pipeline::run(&format!("{} ! whispersink", pipeline::source(&path)));
    let file_wer = common::wer(&reference, &file.text());

    for (arrived, m) in &messages {
        eprintln!(
            "{:>7.2} s {} {:>6.2}..{:>6.2} inference {:>5.0} ms: {}",
            arrived.as_secs_f64(),
            if m.get::<bool>("is-final").unwrap() {
                "final  "
            } else {
                "partial"
            },
            clock(m, "start").seconds_f64(),
            clock(m, "end").seconds_f64(),
            clock(m, "inference-time").mseconds() as f64,
            m.get::<&str>("text").unwrap()
        );
    }
    let mut worst = Duration::ZERO;
    for (arrived, f) in &finals {
        let id = f.get::<u64>("utterance-id").unwrap();
        let end = Duration::from_nanos(clock(f, "end").nseconds());
        let start = Duration::from_nanos(clock(f, "start").nseconds());
        let delay = arrived.saturating_sub(end);
        worst = worst.max(delay);
        assert!(
            delay <= latency + Duration::from_millis(500),
            "final {id} came {delay:?} after its end: {}",
            f.get::<&str>("text").unwrap()
        );
        let partials = messages
            .iter()
            .filter(|(t, s)| {
                t < arrived
                    && !s.get::<bool>("is-final").unwrap()
                    && s.get::<u64>("utterance-id").unwrap() == id
            })
            .count();
        if end - start > Duration::from_millis(2500) {
            assert!(partials >= 1, "no partial before final {id}");
        }
        assert_eq!(f.get::<&str>("element").unwrap(), "live");
    }
    eprintln!(
        "live: {} finals, {} partials, worst final delay {worst:?}; WER live {live_wer:.4}, file {file_wer:.4}",
        finals.len(),
        messages.len() - finals.len()
    );
    assert!(
        live_wer <= file_wer + 0.02,
        "live WER {live_wer:.4}, file {file_wer:.4}"
    );
}
