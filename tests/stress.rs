//! Stress: 32 pipelines starting and stopping at random for 30 s over two models, with a
//! short idle time-out so models are released and loaded again under the churn. A watchdog
//! fails the test if any pipeline stops making progress (a deadlock); every pipeline that was
//! let run to its end must deliver its final; loads stay bounded by releases.

mod common;

use common::report::{record, Outcome};
use gst::prelude::*;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PIPELINES: usize = 32;
/// 30 s: about 450 start/stop cycles here (60 s gave 921). The cache's single flight and
/// release racing a new request, and the queue's flush, drain and stop, are also unit tested
/// (src/model/cache.rs, src/queue.rs) in milliseconds; this is the end-to-end churn.
const RUN_FOR: Duration = Duration::from_secs(30);
/// No pipeline may go this long without finishing a start/stop cycle.
const WATCHDOG: Duration = Duration::from_secs(120);

/// A small xorshift generator: reproducible per pipeline without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Tally {
    cycles: AtomicUsize,
    completed: AtomicUsize,
    stopped_early: AtomicUsize,
    finals_lost: AtomicUsize,
}

#[test]
fn thirty_two_pipelines_churning_over_two_models() {
    common::pipeline::init();
    let (clip, reference) = common::pocketsphinx_clips().into_iter().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let second = dir.path().join("second-model.bin");
    std::fs::copy(common::model_path(), &second).unwrap();
    let models = [common::model_path(), second];
    let cache = gstwhisperstt::model::cache::global();
    let before = cache.stats();

    let started = Instant::now();
    let tally = Arc::new(Tally::default());
    // Milliseconds since `started` at each pipeline's last finished cycle.
    let progress: Arc<Vec<AtomicU64>> =
        Arc::new((0..PIPELINES).map(|_| AtomicU64::new(0)).collect());
    let workers: Vec<_> = (0..PIPELINES)
        .map(|i| {
            let (tally, progress) = (tally.clone(), progress.clone());
            let (clip, reference, models) = (clip.clone(), reference.clone(), models.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x2545_F491));
                while started.elapsed() < RUN_FOR {
                    let model = &models[rng.below(2) as usize];
                    let pipeline = common::pipeline::launch(&format!(
                        "{} ! whispersink name=stress{i} threads=1 model-idle-timeout=1 model=\"{}\"",
                        common::pipeline::source(&clip),
                        model.display()
                    ));
                    // A third of the pipelines are stopped at a random moment; the rest run
                    // to their end and must deliver their final.
                    if rng.below(3) == 0 {
                        pipeline.set_state(gst::State::Playing).unwrap();
                        std::thread::sleep(Duration::from_millis(rng.below(1500)));
                        tally.stopped_early.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let run = common::pipeline::play(&pipeline, WATCHDOG);
                        assert!(run.errors.is_empty(), "stress{i}: {:?}", run.errors);
                        let wer = common::wer(&reference, &run.text());
                        if run.transcripts.is_empty() || wer > 0.25 {
                            eprintln!("stress{i}: final lost or wrong: {:?}", run.text());
                            tally.finals_lost.fetch_add(1, Ordering::Relaxed);
                        }
                        tally.completed.fetch_add(1, Ordering::Relaxed);
                    }
                    pipeline.set_state(gst::State::Null).unwrap();
                    tally.cycles.fetch_add(1, Ordering::Relaxed);
                    progress[i].store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // The watchdog: every pipeline finishes a cycle within WATCHDOG, and all stop in time.
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = started.elapsed().as_millis() as u64;
        for (i, p) in progress.iter().enumerate() {
            let last = p.load(Ordering::Relaxed);
            assert!(
                now - last < WATCHDOG.as_millis() as u64,
                "stress{i} made no progress for {} s: a deadlock",
                (now - last) / 1000
            );
        }
        if workers.iter().all(|w| w.is_finished()) {
            break;
        }
    }
    for w in workers {
        w.join().expect("a stress pipeline's thread failed");
    }
    let seconds = started.elapsed().as_secs_f64();

    let after = cache.stats();
    let loads = after.loads - before.loads;
    let releases = after.releases - before.releases;
    let cycles = tally.cycles.load(Ordering::Relaxed);
    let completed = tally.completed.load(Ordering::Relaxed);
    let lost = tally.finals_lost.load(Ordering::Relaxed);
    eprintln!(
        "{cycles} cycles in {seconds:.0} s ({completed} to the end, {} stopped early), \
         {loads} loads, {releases} releases, {lost} finals lost",
        tally.stopped_early.load(Ordering::Relaxed)
    );
    assert_eq!(lost, 0, "finals lost");
    assert!(
        completed >= PIPELINES,
        "only {completed} pipelines ran to their end"
    );
    // Each load after the first of each model follows a release of it.
    assert!(
        loads <= models.len() as u64 + releases,
        "{loads} loads for {releases} releases"
    );
    assert_eq!(after.failed_loads, before.failed_loads);
    // Nothing is held once every pipeline stopped.
    assert_eq!(after.live_handles(), 0, "{after:?}");
    record(Outcome {
        category: "load",
        name: "stress: 32 pipelines churning over 2 models for 30 s",
        tried: cycles as u64,
        transcripts_expected: completed as u64,
        transcripts_lost: lost as u64,
        figures: serde_json::json!({
            "loads": loads, "releases": releases, "seconds": seconds,
            "stopped_early": tally.stopped_early.load(Ordering::Relaxed),
        }),
    });
}
