//! Soak: 150 pipelines one after another in one process (create, PLAYING, transcribe a clip,
//! NULL, dispose), with the model kept between them and with it released after each (idle
//! time-out 0). Memory must level off, every handle must be given back, and every cycle's
//! transcript must be the first one's.

mod common;

use common::report::{record, Outcome};
use gst::prelude::*;
use std::time::{Duration, Instant};

/// Enough to measure a memory slope: after the warm-up, 100 cycles put a leak of 0.1 MB per
/// cycle (the bound) at 10 MB of growth, while the slope's error from RSS jitter of a few MB is
/// under 0.01 MB per cycle. (500 cycles measured slopes of 0.0001 and -0.005 MB per cycle.)
/// The other checks (identical transcripts, handles given back, loads) hold or fail on any
/// cycle.
const CYCLES: usize = 150;
/// Cycles before memory is expected to level off (allocator pools, caches, the first load).
const WARM_UP: usize = 50;

/// The process's resident memory in MB, once the allocator has given back what it keeps of
/// freed memory: with the model loaded and freed every cycle, what glibc kept varied enough
/// to move the slope between -0.29 and +0.25 MB per cycle from run to run.
fn rss_mb() -> f64 {
    // SAFETY: malloc_trim only returns free heap memory to the OS.
    unsafe { libc::malloc_trim(0) };
    common::pipeline::rss_bytes() as f64 / 1e6
}

/// Least-squares slope of `ys` against their index.
fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in ys.iter().enumerate() {
        num += (x as f64 - mean_x) * (y - mean_y);
        den += (x as f64 - mean_x).powi(2);
    }
    num / den
}

/// Runs the cycles with `model-idle-timeout={idle_timeout}`; returns (RSS slope after warm-up
/// in MB per cycle, loads, seconds).
fn cycles(idle_timeout: i32) -> (f64, u64, f64) {
    let (path, reference) = common::pocketsphinx_clips().into_iter().next().unwrap();
    let description = format!(
        "{} ! whispersink model-idle-timeout={idle_timeout}",
        common::pipeline::source(&path)
    );
    let cache = gstwhisperstt::model::cache::global();
    let loads_before = cache.stats().loads;
    let started = Instant::now();
    let mut first_text = None;
    let mut rss = Vec::with_capacity(CYCLES);
    for cycle in 0..CYCLES {
        let pipeline = common::pipeline::launch(&description);
        let run = common::pipeline::play(&pipeline, Duration::from_secs(60));
        pipeline.set_state(gst::State::Null).unwrap();
        drop(pipeline);
        assert!(run.errors.is_empty(), "cycle {cycle}: {:?}", run.errors);
        let text = run.text();
        let first = first_text.get_or_insert_with(|| {
            let wer = common::wer(&reference, &text);
            assert!(wer <= 0.25, "WER {wer:.3}: {text}");
            text.clone()
        });
        assert_eq!(&text, first, "cycle {cycle} heard something else");
        let stats = cache.stats();
        assert_eq!(stats.live_handles(), 0, "cycle {cycle}: {stats:?}");
        rss.push(rss_mb());
    }
    let loads = cache.stats().loads - loads_before;
    (
        slope(&rss[WARM_UP..]),
        loads,
        started.elapsed().as_secs_f64(),
    )
}

#[test]
fn a_hundred_and_fifty_pipelines_leave_nothing_behind() {
    common::pipeline::init();
    // One after the other: both measure this process's memory.
    for (idle_timeout, expected_loads) in [(i32::MAX, 1), (0, CYCLES as u64)] {
        let (slope, loads, seconds) = cycles(idle_timeout);
        eprintln!(
            "idle time-out {idle_timeout}: {CYCLES} cycles in {seconds:.0} s, {loads} loads, \
             RSS slope after warm-up {slope:.4} MB per cycle"
        );
        // Kept: loaded once (or already loaded by an earlier test); released each time:
        // loaded every cycle (but the first, which finds the copy the kept cycles left).
        assert!(loads <= expected_loads, "{loads} loads");
        if idle_timeout == 0 {
            assert!(loads >= expected_loads - 1, "{loads} loads");
        }
        assert!(slope < 0.1, "RSS grows {slope:.3} MB per cycle");
        record(Outcome {
            category: "load",
            name: if idle_timeout == 0 {
                "soak: 150 cycles, model released after each"
            } else {
                "soak: 150 cycles, model kept"
            },
            tried: CYCLES as u64,
            transcripts_expected: CYCLES as u64,
            transcripts_lost: 0,
            figures: serde_json::json!({
                "rss_slope_mb_per_cycle": slope, "loads": loads, "seconds": seconds,
            }),
        });
    }
}
