//! `WHISPERSTT_NICE`: a media server runs transcription below its video path. The threads
//! that decode (each element's worker and the threads whisper.cpp starts from it) take the
//! nice value; the rest of the process keeps its own. Its own test binary: the variable is
//! read once per process.

mod common;

use common::pipeline;
use std::collections::HashMap;
use std::time::Duration;

/// Each thread of this process: its name and nice value.
fn threads_and_nice() -> Vec<(String, i32)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // After the command name: state (field 3) ... nice (field 19).
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some((name.trim().to_string(), fields.get(16)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn decode_threads_run_at_the_nice_value_and_the_rest_do_not() {
    // SAFETY: set before anything else in this binary starts a thread that reads it.
    std::env::set_var(gstwhisperstt::cpu::NICE_ENV, "10");
    let (path, reference) = common::pocketsphinx_clip("-0870.wav");
    let description = format!("{} ! whispersink name=s", pipeline::source(&path));
    let running = std::thread::spawn(move || pipeline::run(&description));
    // Watch the threads while the pipeline runs: the worker is named after its element.
    let mut seen: HashMap<String, i32> = HashMap::new();
    while !running.is_finished() {
        for (name, nice) in threads_and_nice() {
            if name.starts_with("whisperstt-s") {
                seen.insert(name, nice);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let run = running.join().unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let wer = common::wer(&reference, &run.text());
    assert!(wer <= 0.15, "WER {wer:.3}: {}", run.text());
    assert!(!seen.is_empty(), "no decode thread seen");
    assert!(
        seen.values().all(|&nice| nice == 10),
        "decode threads' nice values: {seen:?}"
    );
    // This thread (as the streaming and application threads) is untouched.
    // SAFETY: getpriority on the calling thread has no preconditions.
    let own = unsafe {
        libc::getpriority(
            libc::PRIO_PROCESS,
            libc::syscall(libc::SYS_gettid) as libc::id_t,
        )
    };
    assert_eq!(own, 0, "the test thread was reniced");
}
