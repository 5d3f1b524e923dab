//! `bench detector`: what the built-in voice detector itself costs, apart from whisper.cpp.
//! It runs the frame detector over the corpus (every clip, 1 s of silence between them) and
//! the whole-utterance check as a live stream makes it: on each clip at every partial (each
//! second from 2 s on, with the 2 s before it) and once more for its final. Prints CPU time per
//! second of audio and the share of one core a real-time stream takes.

use crate::common;
use gstwhisperstt::vad::evidence::SpeechEvidence;
use gstwhisperstt::vad::{EnergyVad, VadConfig, FRAME_SAMPLES};
use std::time::Duration;

const RATE: usize = 16_000;

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The whole-utterance checks a live stream makes on `clip` (with `before` of the audio
/// that came before it): one per partial, one for the final.
fn live_checks(before: &[f32], clip: &[f32]) -> usize {
    let mut checks = 0;
    let mut heard = 2 * RATE;
    while heard < clip.len() {
        let audio = [before, &clip[..heard]].concat();
        let _ = std::hint::black_box(SpeechEvidence::of(&audio).verdict());
        checks += 1;
        heard += RATE;
    }
    let _ = std::hint::black_box(SpeechEvidence::of(clip).verdict());
    checks + 1
}

pub fn table() {
    let clips: Vec<Vec<f32>> = common::corpus_clips(&common::shared_corpus())
        .iter()
        .map(|(p, _)| common::read_audio(p))
        .collect();
    let mut stream = Vec::new();
    for clip in &clips {
        stream.extend(clip);
        stream.extend(std::iter::repeat_n(0.0, RATE));
    }
    let seconds = stream.len() as f64 / RATE as f64;

    let started = thread_cpu();
    let mut vad = EnergyVad::new(VadConfig::default());
    for frame in stream.chunks_exact(FRAME_SAMPLES) {
        std::hint::black_box(vad.process(frame));
    }
    let frames = thread_cpu() - started;

    let started = thread_cpu();
    let silence = vec![0.0; 2 * RATE];
    let checks: usize = clips.iter().map(|clip| live_checks(&silence, clip)).sum();
    let evidence = thread_cpu() - started;

    println!(
        "## The built-in detector's own cost ({} clips, {seconds:.0} s of audio, one thread)\n",
        clips.len()
    );
    println!("| part | CPU ms per s of audio | share of one core, real time |");
    println!("|---|---|---|");
    let row = |name: &str, cpu: Duration| {
        let per_second = cpu.as_secs_f64() * 1000.0 / seconds;
        println!("| {name} | {per_second:.2} | {:.2} % |", per_second / 10.0);
    };
    row("frame detector (every 30 ms frame)", frames);
    row(
        &format!("utterance checks ({checks}, as a live stream makes them)"),
        evidence,
    );
    row("both", frames + evidence);
}
