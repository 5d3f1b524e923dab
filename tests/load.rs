//! Beside other work: decodes fit the CPU that is really free. A decode's threads follow the
//! affinity of the thread that runs it and the CPU other processes take, and a live stream's
//! finals keep their latency while a normal-priority busy process holds a core. Real time and
//! real load, so the tests take turns.

mod common;

use common::load::Neighbours;
use common::pipeline;
use std::time::Duration;

/// Limits the calling thread (and every thread it starts from now on) to one core.
fn pin_to_one_core() {
    // SAFETY: a zeroed cpu_set_t with one core set, applied to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(
            libc::sched_setaffinity(0, size, &set),
            0,
            "sched_setaffinity"
        );
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The threads each transcript says its decode ran on.
fn threads(transcripts: &[gst::Structure]) -> Vec<u32> {
    transcripts
        .iter()
        .map(|s| s.get::<u32>("threads").unwrap())
        .collect()
}

#[test]
fn a_decode_uses_one_thread_on_a_one_core_affinity() {
    let _turn = common::one_at_a_time();
    let (path, reference) = common::pocketsphinx_clip("-0870.wav");
    let description = format!("{} ! whispersink threads=2", pipeline::source(&path));
    // The process has decoded on all its cores before (the budget exists), as a server has
    // when one of its pipelines is pinned later.
    let before = pipeline::run(&description);
    assert!(before.errors.is_empty(), "{:?}", before.errors);
    // The pipeline's threads, and so the element's worker, start from the pinned thread.
    let run = std::thread::spawn(move || {
        pin_to_one_core();
        pipeline::run(&description)
    })
    .join()
    .unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let threads = threads(&run.transcripts);
    assert!(!threads.is_empty(), "no transcript");
    assert!(
        threads.iter().all(|&t| t == 1),
        "decodes on {threads:?} threads with an affinity of one core"
    );
    let wer = common::wer(&reference, &run.text());
    assert!(wer <= 0.15, "WER {wer:.3}: {}", run.text());
}

/// The LibriVox clips of pocketsphinx-testdata (25 s of speech), each followed by 1.5 s of
/// silence so the detector ends every utterance on a pause, and their transcript.
fn librivox() -> (Vec<f32>, String) {
    let mut audio = Vec::new();
    let mut text = Vec::new();
    for (path, t) in common::pocketsphinx_clips()
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("librivox"))
    {
        audio.extend(common::read_audio(&path));
        audio.extend(std::iter::repeat_n(0.0, 24_000));
        text.push(t);
    }
    (audio, text.join(" "))
}

/// What one live run gave: final delays, final text, each decode's threads.
struct LiveRun {
    delays: Vec<Duration>,
    text: String,
    threads: Vec<u32>,
}

fn live_run(audio: &[f32]) -> LiveRun {
    // Two threads asked for: what a decode gets is the scheduler's choice.
    let messages = pipeline::play_live(audio, "whispersink name=live threads=2");
    let transcripts: Vec<gst::Structure> = messages.iter().map(|(_, s)| s.clone()).collect();
    let finals: Vec<&str> = transcripts
        .iter()
        .filter(|s| s.get::<bool>("is-final").unwrap())
        .map(|s| s.get::<&str>("text").unwrap())
        .collect();
    LiveRun {
        delays: pipeline::final_delays(&messages),
        text: finals.join(" "),
        threads: threads(&transcripts),
    }
}

#[test]
fn live_finals_keep_their_latency_beside_a_busy_process() {
    let _turn = common::one_at_a_time();
    assert!(
        cores() >= 2,
        "needs two cores: one for the busy process, one for us"
    );
    let (audio, reference) = librivox();
    let quiet = live_run(&audio);
    let busy = Neighbours::busy_loops(cores() - 1);
    let loaded = live_run(&audio);
    let busy_cores = busy.cores_used();
    drop(busy);
    let worst = |r: &LiveRun| r.delays.iter().max().copied().unwrap_or_default();
    eprintln!(
        "quiet: finals after {:?}, threads {:?}\nbeside {busy_cores:.2} busy cores: finals after {:?}, threads {:?}",
        quiet.delays, quiet.threads, loaded.delays, loaded.threads
    );
    assert!(
        busy_cores >= (cores() - 1) as f64 * 0.5,
        "the busy loops ran on {busy_cores:.2} cores"
    );
    // Every final delivered, as accurate as without the load.
    assert_eq!(
        loaded.delays.len(),
        quiet.delays.len(),
        "finals lost under load"
    );
    let (quiet_wer, loaded_wer) = (
        common::wer(&reference, &quiet.text),
        common::wer(&reference, &loaded.text),
    );
    assert!(quiet_wer <= 0.15, "WER {quiet_wer:.3}: {}", quiet.text);
    assert!(
        loaded_wer <= quiet_wer + 0.05,
        "WER {loaded_wer:.3} under load, {quiet_wer:.3} without: {}",
        loaded.text
    );
    // Decodes fit the free core: one thread each while the busy process holds the others.
    assert!(
        loaded.threads.iter().all(|&t| t == 1),
        "decodes beside the busy process on {:?} threads",
        loaded.threads
    );
    // The latency bound holds: the slowest final at most twice the quiet run's slowest (and
    // 0.3 s of slack for a quiet run whose slowest is very fast). Spinning two-thread decodes
    // made it 4-8 times slower.
    let bound = (worst(&quiet) * 2).max(worst(&quiet) + Duration::from_millis(300));
    assert!(
        worst(&loaded) <= bound,
        "slowest final {:?} after its end under load, {:?} without (bound {bound:?})",
        worst(&loaded),
        worst(&quiet)
    );
}
