//! The benchmark behind `scripts/bench.sh`: whisperstt against faster-whisper and plain
//! whisper-rs on the same audio and the same tiny.en weights, then many live pipelines on one
//! shared model against one model per pipeline. Each measurement runs in its own process (this
//! binary with a sub-command, or Python for faster-whisper), so peak memory is its own.
//!
//! `bench` runs everything and prints a markdown table, writing `target/bench/results.json`
//! and (with matplotlib) `target/bench/live.png`; what each system said, beside the reference,
//! goes to `target/bench/transcripts/`. `bench --quick` runs a shorter live part;
//! `bench files [SYSTEM...]` only the file-mode table (e.g. `bench files whisperstt`);
//! `bench load [--quick]` file mode and 1, 4, 8 live streams beside competing load;
//! `bench noise [--quick]` speech in noise, quiet and reverberant, and noise alone (noise.rs);
//! `bench languages` the multilingual corpus on Whisper base (languages.rs);
//! `bench live-accuracy` live finals against file mode, recording by recording
//! (live_accuracy.rs); `bench voice` the browser voice service with 1, 4, 8 and 10 Chromium pages (voice.rs).
//! `WHISPERSTT_BENCH_PROPS` adds element properties to whisperstt's pipelines, to try them.

#[path = "../../tests/common/mod.rs"]
mod common;
mod detector;
mod languages;
mod live_accuracy;
mod noise;
mod voice;

use common::load::Neighbours;
use gst::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Inference threads per stream for every system (the machine's cores here).
pub(crate) fn threads() -> u32 {
    std::env::var("WHISPERSTT_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Element properties to try, from `WHISPERSTT_BENCH_PROPS` (e.g. "carry-context=true").
fn extra_props() -> String {
    std::env::var("WHISPERSTT_BENCH_PROPS").unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let table = !matches!(args.first().map(String::as_str), Some("file" | "live"));
    if table {
        println!("{}\n", cpu_line());
    }
    let out = match args.first().map(String::as_str) {
        Some("file") => file_mode(&args[1], Path::new(&args[2])),
        Some("live") => live(
            args[1].parse().unwrap(),
            args[2] == "shared",
            args[3].parse().unwrap(),
            args.get(4).is_some_and(|a| a == "in-step"),
        ),
        Some("files") => {
            // Only the file-mode table, for the systems named (all without names).
            orchestrate(false, Some(&args[1..]));
            return;
        }
        Some("load") => {
            load_table(args.iter().any(|a| a == "--quick"));
            return;
        }
        Some("noise") => {
            noise::table(args.iter().any(|a| a == "--quick"));
            return;
        }
        Some("languages") => {
            languages::table();
            return;
        }
        Some("detector") => {
            detector::table();
            return;
        }
        Some("live-accuracy") => {
            let realtime = args
                .iter()
                .position(|a| a == "--realtime")
                .and_then(|i| args.get(i + 1)?.parse().ok());
            live_accuracy::table(args.iter().any(|a| a == "--engine-only"), realtime);
            return;
        }
        Some("voice") => {
            voice::table();
            return;
        }
        _ => {
            orchestrate(args.iter().any(|a| a == "--quick"), None);
            return;
        }
    };
    println!("{out}");
}

pub(crate) fn bench_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Peak resident memory of this process, from the kernel's high-water mark.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kb * 1024
}

fn mb(bytes: f64) -> f64 {
    bytes / 1e6
}

// ---------------------------------------------------------------------------------------------
// File mode

/// Transcribes each file of the JSON list with one system, timing only the transcription
/// (the model is loaded first, and that time reported apart).
fn file_mode(system: &str, list: &Path) -> Value {
    let files: Vec<String> = serde_json::from_str(&std::fs::read_to_string(list).unwrap()).unwrap();
    match system {
        "whisperstt" => file_mode_whisperstt(&files),
        "whisper-rs" => file_mode_whisper_rs(&files),
        other => panic!("unknown system {other}"),
    }
}

fn file_mode_whisperstt(files: &[String]) -> Value {
    common::pipeline::init();
    let started = Instant::now();
    // Held for the run: every pipeline below reuses it, as in a server.
    let _model = gstwhisperstt::model::cache::global()
        .preload(
            "tiny.en",
            Default::default(),
            Default::default(),
            Default::default(),
        )
        .unwrap();
    let load = started.elapsed();
    let started = Instant::now();
    let texts: Vec<String> = files
        .iter()
        .map(|f| {
            let run = common::pipeline::run(&format!(
                "filesrc location=\"{f}\" ! wavparse ! whispersink threads={} {}",
                threads(),
                extra_props()
            ));
            assert!(run.errors.is_empty(), "{f}: {:?}", run.errors);
            run.text()
        })
        .collect();
    json!({"load": load.as_secs_f64(), "seconds": started.elapsed().as_secs_f64(),
           "rss_peak": peak_rss(), "texts": texts})
}

fn file_mode_whisper_rs(files: &[String]) -> Value {
    use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};
    let model = common::model_path();
    let started = Instant::now();
    let mut params = WhisperContextParameters::default();
    params.use_gpu(false);
    let ctx = WhisperContext::new_with_params(model.to_str().unwrap(), params).unwrap();
    let mut state = ctx.create_state().unwrap();
    let load = started.elapsed();
    let mut full = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    full.set_n_threads(threads() as i32);
    full.set_language(Some("en"));
    full.set_print_progress(false);
    full.set_print_realtime(false);
    full.set_print_timestamps(false);
    let started = Instant::now();
    let texts: Vec<String> = files
        .iter()
        .map(|f| {
            let audio = common::read_audio(Path::new(f));
            state.full(full.clone(), &audio).unwrap();
            (0..state.full_n_segments())
                .filter_map(|i| state.get_segment(i))
                .filter_map(|s| s.to_str_lossy().ok().map(|t| t.trim().to_string()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    json!({"load": load.as_secs_f64(), "seconds": started.elapsed().as_secs_f64(),
           "rss_peak": peak_rss(), "texts": texts})
}

// ---------------------------------------------------------------------------------------------
// Live pipelines

/// What one live pipeline's bus said, with when it said it (pipeline running time).
#[derive(Default)]
pub(crate) struct LiveLog {
    /// Final latency: arrival minus the running time its utterance ended.
    pub final_delays: Vec<f64>,
    /// Each final's text, in order.
    pub final_texts: Vec<String>,
    /// Seconds between consecutive partials of one utterance.
    pub partial_gaps: Vec<f64>,
    /// Each final's decode: (whisper.cpp's time, time waiting for threads, speech decoded).
    pub final_decodes: Vec<(f64, f64, f64)>,
    pub max_lag: f64,
    overload_warnings: usize,
    late_warnings: usize,
    errors: Vec<String>,
}

/// N live pipelines, each fed its own part of the 2-minute recording in real time for
/// `seconds`, on one shared model (or one model each with `shared` false); `in_step`: all
/// fed the same part, so that every stream's utterances end at the same moments (the worst
/// case for finals).
fn live(n: usize, shared: bool, seconds: f64, in_step: bool) -> Value {
    common::pipeline::init();
    gstwhisperstt::model::cache::global().set_sharing(shared);
    let (long, _, _) = common::long_recording();
    let speech = common::read_audio(&long);
    let baseline_rss = current_rss();
    let pipelines = live_pipelines(n, &extra_props());
    let (ready, loads) = start_live(&pipelines);
    let samples = (seconds * 16_000.0) as usize;
    // Each stream starts somewhere else in the recording: different words.
    let streams = (0..n)
        .map(|i| {
            let offset = if in_step {
                0
            } else {
                (i * 7 * 16_000) % speech.len()
            };
            (0..samples)
                .map(|j| speech[(offset + j) % speech.len()])
                .collect()
        })
        .collect();
    let (logs, peak) = play_live(&pipelines, streams);
    let stats = gstwhisperstt::model::cache::global().stats();
    let all = |f: fn(&LiveLog) -> &Vec<f64>| -> Vec<f64> {
        logs.iter().flat_map(|l| f(l).iter().copied()).collect()
    };
    let decodes: Vec<(f64, f64, f64)> = logs
        .iter()
        .flat_map(|l| l.final_decodes.iter().copied())
        .collect();
    let inference: f64 = decodes.iter().map(|d| d.0).sum();
    let speech: f64 = decodes.iter().map(|d| d.2).sum();
    json!({
        "n": n, "shared": shared, "seconds": seconds,
        "final_delays": all(|l| &l.final_delays),
        "final_queue": decodes.iter().map(|d| d.1).collect::<Vec<_>>(),
        "final_decode_per_speech": inference / speech,
        "partial_gaps": all(|l| &l.partial_gaps),
        "max_lag": logs.iter().map(|l| l.max_lag).fold(0.0, f64::max),
        "overload_warnings": logs.iter().map(|l| l.overload_warnings).sum::<usize>(),
        "late_warnings": logs.iter().map(|l| l.late_warnings).sum::<usize>(),
        "errors": logs.iter().flat_map(|l| l.errors.clone()).collect::<Vec<_>>(),
        "rss_baseline": baseline_rss, "rss_peak": peak,
        "loads": loads, "cache_loads": stats.loads,
        "ready": ready,
    })
}

/// `n` pipelines of a live `appsrc` (F32 at 16 kHz, mono) into `whispersink props`.
pub(crate) fn live_pipelines(n: usize, props: &str) -> Vec<gst::Pipeline> {
    let caps = "audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved";
    (0..n)
        .map(|i| {
            common::pipeline::launch(&format!(
                "appsrc name=src is-live=true format=time do-timestamp=true caps={caps} ! \
                 whispersink name=stt{i} threads={} {props}",
                threads(),
            ))
        })
        .collect()
}

/// Starts each pipeline and waits for its model, one after another so that each start's
/// time to ready is its own. Returns those times and how many starts loaded a model.
pub(crate) fn start_live(pipelines: &[gst::Pipeline]) -> (Vec<f64>, usize) {
    let mut ready = Vec::new();
    let mut loads = 0;
    for p in pipelines {
        let bus = p.bus().unwrap();
        let started = Instant::now();
        p.set_state(gst::State::Playing).unwrap();
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(30),
                &[gst::MessageType::Element, gst::MessageType::Error],
            )
            .expect("no model message");
        let s = msg.structure().unwrap();
        assert_eq!(s.name(), "whisperstt-model", "{msg:?}");
        if s.get::<&str>("action").unwrap() == "loaded" {
            loads += 1;
        }
        ready.push(started.elapsed().as_secs_f64());
    }
    (ready, loads)
}

/// Plays each stream's audio into its started pipeline's `src` in real time, 100 ms at a
/// time, then ends it and stops the pipeline. Returns what each bus said, and the peak RSS.
pub(crate) fn play_live(
    pipelines: &[gst::Pipeline],
    streams: Vec<Vec<f32>>,
) -> (Vec<LiveLog>, u64) {
    let logs: Vec<Arc<Mutex<LiveLog>>> = pipelines.iter().map(|_| Arc::default()).collect();
    let watchers: Vec<_> = pipelines
        .iter()
        .zip(&logs)
        .map(|(p, log)| {
            let (p, log) = (p.clone(), log.clone());
            std::thread::spawn(move || watch(&p, &log))
        })
        .collect();
    let started = Instant::now();
    let feeders: Vec<_> = pipelines
        .iter()
        .zip(streams)
        .map(|(p, audio)| {
            let src: gst_app::AppSrc = p.by_name("src").unwrap().downcast().unwrap();
            std::thread::spawn(move || {
                for (k, chunk) in audio.chunks(1600).enumerate() {
                    let due = Duration::from_millis(100 * k as u64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    let bytes: Vec<u8> = chunk.iter().copied().flat_map(f32::to_le_bytes).collect();
                    if src.push_buffer(gst::Buffer::from_slice(bytes)).is_err() {
                        return;
                    }
                }
                let _ = src.end_of_stream();
            })
        })
        .collect();
    let mut peak = current_rss();
    while !feeders.iter().all(|f| f.is_finished()) {
        std::thread::sleep(Duration::from_millis(250));
        peak = peak.max(current_rss());
    }
    for w in watchers {
        w.join().unwrap();
        peak = peak.max(current_rss());
    }
    for p in pipelines {
        p.set_state(gst::State::Null).unwrap();
    }
    let logs = logs
        .into_iter()
        .map(|l| std::mem::take(&mut *l.lock().unwrap()))
        .collect();
    (logs, peak)
}

fn current_rss() -> u64 {
    common::pipeline::rss_bytes()
}

/// Reads one pipeline's bus until EOS or an error.
fn watch(p: &gst::Pipeline, log: &Mutex<LiveLog>) {
    let bus = p.bus().unwrap();
    let mut last_partial: Option<(u64, gst::ClockTime)> = None;
    loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(120)) else {
            log.lock().unwrap().errors.push("no EOS".into());
            return;
        };
        let now = p.current_running_time();
        let mut log = log.lock().unwrap();
        match msg.view() {
            gst::MessageView::Eos(_) => return,
            gst::MessageView::Error(e) => {
                log.errors.push(e.error().to_string());
                return;
            }
            gst::MessageView::Warning(w) => match w.details().map(|d| d.name().as_str()) {
                Some("whisperstt-overload") => log.overload_warnings += 1,
                Some("whisperstt-late") => log.late_warnings += 1,
                _ => {}
            },
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap();
                if s.name() != "whisperstt-transcript" {
                    continue;
                }
                let lag = s.get::<gst::ClockTime>("lag").unwrap();
                log.max_lag = log.max_lag.max(lag.seconds_f64());
                let Some(now) = now else { continue };
                let id = s.get::<u64>("utterance-id").unwrap();
                if s.get::<bool>("is-final").unwrap() {
                    log.final_texts
                        .push(s.get::<String>("text").unwrap_or_default());
                    if let Ok(rt) = s.get::<gst::ClockTime>("running-time") {
                        let end = rt + s.get::<gst::ClockTime>("duration").unwrap();
                        log.final_delays.push(now.seconds_f64() - end.seconds_f64());
                    }
                    let seconds = |k: &str| s.get::<u64>(k).unwrap_or(0) as f64 / 1e9;
                    let speech = s.get::<gst::ClockTime>("duration").unwrap_or_default();
                    log.final_decodes.push((
                        seconds("inference-time"),
                        seconds("queue-time"),
                        speech.seconds_f64(),
                    ));
                    last_partial = None;
                } else {
                    if let Some((last_id, at)) = last_partial {
                        if last_id == id {
                            log.partial_gaps.push((now - at).seconds_f64());
                        }
                    }
                    last_partial = Some((id, now));
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The whole run

struct AudioSet {
    name: &'static str,
    files: Vec<String>,
    references: Vec<String>,
    seconds: f64,
}

fn audio_sets() -> Vec<AudioSet> {
    let corpus = common::corpus_clips(&common::shared_corpus());
    let seconds = |clips: &[(PathBuf, String)]| -> f64 {
        clips
            .iter()
            .map(|(p, _)| common::read_audio(p).len() as f64 / 16_000.0)
            .sum()
    };
    let corpus_set = AudioSet {
        name: "corpus (32 clips)",
        files: corpus
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect(),
        references: corpus.iter().map(|(_, t)| t.clone()).collect(),
        seconds: seconds(&corpus),
    };
    // Ten minutes: the 2-minute recording and the clips, over and over, 0.8 s apart.
    let (long, long_text, _) = common::long_recording();
    let mut pieces = vec![(long, long_text)];
    pieces.extend(corpus);
    let mut audio: Vec<f32> = Vec::new();
    let mut text = Vec::new();
    for (path, t) in pieces.iter().cycle() {
        if audio.len() >= 600 * 16_000 {
            break;
        }
        audio.extend(common::read_audio(path));
        audio.extend(std::iter::repeat_n(0.0, 12_800));
        text.push(t.clone());
    }
    let ten = bench_dir().join("ten-minutes.wav");
    write_wav(&ten, &audio);
    vec![
        corpus_set,
        AudioSet {
            name: "10-minute recording",
            files: vec![ten.display().to_string()],
            references: vec![text.join(" ")],
            seconds: audio.len() as f64 / 16_000.0,
        },
    ]
}

/// What a system said beside what was said, file by file, to see where its errors are:
/// `target/bench/transcripts/<audio>/<system>.txt`.
fn write_transcripts(
    audio: &str,
    system: &str,
    references: &[String],
    texts: &[String],
    word_errors: &[(usize, usize)],
) {
    let slug = |s: &str| -> String {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    };
    let dir = bench_dir().join("transcripts").join(slug(audio));
    std::fs::create_dir_all(&dir).unwrap();
    let mut out = String::new();
    for ((reference, text), (errors, words)) in references.iter().zip(texts).zip(word_errors) {
        out += &format!(
            "# {errors} errors in {words} words\nreference: {reference}\n{system}: {text}\n\n"
        );
    }
    std::fs::write(dir.join(format!("{}.txt", slug(system))), out).unwrap();
}

pub(crate) fn write_wav(path: &Path, samples: &[f32]) {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend(b"RIFF");
    out.extend((36 + data.len() as u32).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16u32.to_le_bytes());
    out.extend(1u16.to_le_bytes()); // PCM
    out.extend(1u16.to_le_bytes()); // mono
    out.extend(16_000u32.to_le_bytes());
    out.extend(32_000u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(16u16.to_le_bytes());
    out.extend(b"data");
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

/// Runs a measuring process and reads the JSON it prints last.
pub(crate) fn measure(mut cmd: Command) -> Value {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| l.starts_with('{'));
    match (out.status.success(), last) {
        (true, Some(line)) => serde_json::from_str(line).unwrap(),
        _ => panic!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn this_binary(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(args);
    cmd
}

pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Builds the command that measures one system on a file list.
type SystemCommand<'a> = Box<dyn Fn(&Path) -> Command + 'a>;

/// The CPU's model and the features whisper.cpp's kernels can use, and what this build of
/// whisper.cpp uses: printed above each table, since the ratios depend on them.
pub(crate) fn cpu_line() -> String {
    use gstwhisperstt::model::compute::{ComputeType, CpuFeatures, CpuInfo};
    let cpu = CpuInfo::of_this_machine();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let auto = ComputeType::Auto
        .target(
            "f16",
            gstwhisperstt::model::Device::Cpu,
            CpuFeatures::of_this_machine(),
        )
        .map_or("f16", |w| w.name());
    format!(
        "CPU: {} ({cores} cores here; {}); compute-type auto: {auto} for an f16 model; whisper.cpp: {}",
        cpu.model,
        cpu.speed_flags.join(" "),
        whisper_rs::print_system_info()
            .trim()
            .trim_end_matches('|')
            .trim()
    )
}

fn orchestrate(quick: bool, files_only: Option<&[String]>) {
    let python = std::env::var("WHISPERSTT_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ct2 = gstwhisperstt::model::locate::models_dir().join("faster-whisper-tiny.en");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_faster_whisper.py");
    let systems: Vec<(&str, SystemCommand)> = vec![
        (
            "whisperstt",
            Box::new(|l: &Path| this_binary(&["file", "whisperstt", l.to_str().unwrap()])),
        ),
        (
            "faster-whisper int8",
            Box::new(|l: &Path| fw(&python, &script, &ct2, "int8", l)),
        ),
        (
            "faster-whisper float32",
            Box::new(|l: &Path| fw(&python, &script, &ct2, "float32", l)),
        ),
        (
            "whisper-rs full()",
            Box::new(|l: &Path| this_binary(&["file", "whisper-rs", l.to_str().unwrap()])),
        ),
    ];
    for name in files_only.unwrap_or_default() {
        if !systems.iter().any(|(s, _)| s == name) {
            let known: Vec<_> = systems.iter().map(|(s, _)| *s).collect();
            eprintln!("bench: no system {name:?}; the systems are {known:?}");
            std::process::exit(2);
        }
    }
    let systems: Vec<_> = systems
        .into_iter()
        .filter(|(name, _)| {
            files_only.is_none_or(|only| only.is_empty() || only.iter().any(|o| o == name))
        })
        .collect();
    let mut file_results = Vec::new();
    println!(
        "## File mode (tiny.en, greedy, {} threads, one process per system)\n",
        threads()
    );
    println!("| audio | system | load s | transcribe s | real-time factor | speed vs faster-whisper int8 | WER | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|");
    for set in audio_sets() {
        let list = bench_dir().join("files.json");
        std::fs::write(&list, serde_json::to_string(&set.files).unwrap()).unwrap();
        let mut rows = Vec::new();
        for (name, cmd) in &systems {
            eprintln!("file mode: {name} on {}", set.name);
            let r = measure(cmd(&list));
            let texts: Vec<String> = serde_json::from_value(r["texts"].clone()).unwrap();
            let counts: Vec<(usize, usize)> = set
                .references
                .iter()
                .zip(&texts)
                .map(|(reference, text)| common::word_errors(reference, text))
                .collect();
            write_transcripts(set.name, name, &set.references, &texts, &counts);
            let (errors, words) = counts
                .iter()
                .fold((0, 0), |(e, n), &(file_e, file_n)| (e + file_e, n + file_n));
            rows.push((name.to_string(), r, errors as f64 / words.max(1) as f64));
        }
        let fw_int8 = rows
            .iter()
            .find(|(name, ..)| name == "faster-whisper int8")
            .map_or(f64::NAN, |(_, r, _)| r["seconds"].as_f64().unwrap());
        for (name, r, wer) in &rows {
            let secs = r["seconds"].as_f64().unwrap();
            println!(
                "| {} | {name} | {:.2} | {secs:.2} | {:.3} | {:.2}x | {wer:.4} | {:.0} |",
                set.name,
                r["load"].as_f64().unwrap(),
                secs / set.seconds,
                fw_int8 / secs,
                mb(r["rss_peak"].as_f64().unwrap())
            );
            file_results.push(
                json!({"audio": set.name, "audio_seconds": set.seconds, "system": name,
                "load": r["load"], "seconds": secs, "wer": wer, "rss_peak": r["rss_peak"],
                "speed_vs_faster_whisper_int8": fw_int8 / secs}),
            );
        }
    }

    if files_only.is_some() {
        return;
    }
    let seconds = if quick { 30.0 } else { 60.0 };
    println!(
        "\n## Live: N pipelines fed speech in real time for {seconds} s (tiny.en, {} threads each)\n",
        threads()
    );
    println!("| N | model | finals | final latency p50 s | p95 s | final queued p95 s | final decode s per speech s | partial every s | max lag s | overload warnings | RSS MB | RSS per extra stream MB | loads | ready 2..N max ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut live_results = Vec::new();
    let runs = [
        (true, false, vec![1usize, 2, 4, 8, 16]),
        (false, false, vec![1, 2, 4, 8, 16]),
        (true, true, vec![8, 16]),
    ];
    for (shared, in_step, counts) in runs {
        let mut rss_one = None;
        for n in counts {
            eprintln!("live: {n} pipelines, shared {shared}, in step {in_step}");
            let r = measure(this_binary(&[
                "live",
                &n.to_string(),
                if shared { "shared" } else { "private" },
                &seconds.to_string(),
                if in_step { "in-step" } else { "staggered" },
            ]));
            let floats = |k: &str| -> Vec<f64> { serde_json::from_value(r[k].clone()).unwrap() };
            let delays = floats("final_delays");
            let queued = floats("final_queue");
            let decode_cost = r["final_decode_per_speech"].as_f64().unwrap_or(f64::NAN);
            let gaps = floats("partial_gaps");
            let ready = floats("ready");
            let rss = r["rss_peak"].as_f64().unwrap() - r["rss_baseline"].as_f64().unwrap();
            let rss_one = *rss_one.get_or_insert(rss);
            let per_extra = if n > 1 {
                (rss - rss_one) / (n - 1) as f64
            } else {
                f64::NAN
            };
            let ready_rest = ready.iter().skip(1).copied().fold(f64::NAN, f64::max);
            // NaN (printed "NaN"): every partial pass was shed.
            let cadence = gaps.iter().sum::<f64>() / gaps.len() as f64;
            let model = match (shared, in_step) {
                (true, true) => "shared, in step",
                (true, false) => "shared",
                (false, _) => "one per pipeline",
            };
            println!(
                "| {n} | {model} | {} | {:.2} | {:.2} | {:.2} | {decode_cost:.3} | {cadence:.2} | {:.2} | {} | {:.0} | {:.0} | {} | {:.0} |",
                delays.len(),
                percentile(&delays, 0.5),
                percentile(&delays, 0.95),
                percentile(&queued, 0.95),
                r["max_lag"].as_f64().unwrap(),
                r["overload_warnings"],
                mb(rss),
                mb(per_extra),
                r["loads"],
                ready_rest * 1e3,
            );
            let errors = r["errors"].as_array().unwrap();
            if !errors.is_empty() {
                println!("\n(errors: {errors:?})\n");
            }
            live_results.push(json!({"n": n, "shared": shared, "in_step": in_step, "finals": delays.len(),
                "latency_p50": percentile(&delays, 0.5), "latency_p95": percentile(&delays, 0.95),
                "queued_p95": percentile(&queued, 0.95), "final_decode_per_speech": decode_cost,
                "partial_cadence": cadence, "max_lag": r["max_lag"], "overload_warnings": r["overload_warnings"],
                "late_warnings": r["late_warnings"], "rss": rss, "rss_per_extra_stream": per_extra,
                "loads": r["loads"], "ready_ms": ready.iter().map(|s| s * 1e3).collect::<Vec<_>>()}));
        }
    }
    let results = json!({"file_mode": file_results, "live": live_results});
    let json_path = bench_dir().join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    let plot = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_plot.py");
    let png = bench_dir().join("live.png");
    let plotted = Command::new(&python)
        .args([plot.as_os_str(), json_path.as_os_str(), png.as_os_str()])
        .status()
        .is_ok_and(|s| s.success());
    println!(
        "\nJSON: {}{}",
        json_path.display(),
        if plotted {
            format!("\nPlot: {}", png.display())
        } else {
            " (no plot: matplotlib missing)".into()
        }
    );
}

pub(crate) fn fw(python: &str, script: &Path, ct2: &Path, compute: &str, list: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(ct2)
        .arg(compute)
        .arg(threads().to_string())
        .arg(list);
    cmd
}

// ---------------------------------------------------------------------------------------------
// Beside other work: the CPU shared with a media server's other processes

/// What runs beside the measured process.
#[derive(Clone, Copy, PartialEq)]
enum Load {
    None,
    /// One normal-priority busy loop per core, less one.
    BusyLoops,
    /// A second process encoding live 720p30 video with vp8enc, as a media server does.
    VideoEncode,
    /// The measured process itself limited to one core (`taskset -c 0`).
    OneCore,
}

impl Load {
    const ALL: [Load; 4] = [
        Load::None,
        Load::BusyLoops,
        Load::VideoEncode,
        Load::OneCore,
    ];

    fn name(self) -> &'static str {
        match self {
            Load::None => "none",
            Load::BusyLoops => "busy loop on cores-1",
            Load::VideoEncode => "vp8enc 720p30 live",
            Load::OneCore => "taskset -c 0",
        }
    }

    /// Starts the competing processes; they are killed when the guard drops.
    fn start(self) -> Neighbours {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match self {
            Load::None | Load::OneCore => Neighbours::none(),
            Load::BusyLoops => Neighbours::busy_loops(cores.max(2) - 1),
            Load::VideoEncode => Neighbours::process(
                "gst-launch-1.0",
                &[
                    "-q",
                    "videotestsrc",
                    "is-live=true",
                    "pattern=ball",
                    "!",
                    "video/x-raw,width=1280,height=720,framerate=30/1",
                    "!",
                    "vp8enc",
                    "deadline=1",
                    "cpu-used=8",
                    "threads=2",
                    "!",
                    "fakesink",
                ],
            ),
        }
    }

    /// A copy of `cmd` (program, arguments, environment) run under this load: only
    /// `OneCore` changes how it starts.
    fn wrap(self, cmd: &Command) -> Command {
        let mut wrapped = match self {
            Load::OneCore => {
                let mut c = Command::new("taskset");
                c.args(["-c", "0"]).arg(cmd.get_program());
                c
            }
            _ => Command::new(cmd.get_program()),
        };
        wrapped.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                wrapped.env(k, v);
            }
        }
        wrapped
    }
}

/// File mode and 1, 4, 8 live streams under each `Load`, with faster-whisper int8 and
/// whisperstt with its threads fixed (`WHISPERSTT_FOLLOW_LOAD=0`, as before threads followed
/// the load) under the same load.
fn load_table(quick: bool) {
    let python = std::env::var("WHISPERSTT_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ct2 = gstwhisperstt::model::locate::models_dir().join("faster-whisper-tiny.en");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_faster_whisper.py");
    let corpus = audio_sets().remove(0);
    let list = bench_dir().join("files.json");
    std::fs::write(&list, serde_json::to_string(&corpus.files).unwrap()).unwrap();
    let whisperstt = |fixed: bool| {
        let mut cmd = this_binary(&["file", "whisperstt", list.to_str().unwrap()]);
        if fixed {
            cmd.env(gstwhisperstt::cpu::FOLLOW_LOAD_ENV, "0");
        }
        cmd
    };
    let systems: Vec<(&str, Command)> = vec![
        ("whisperstt", whisperstt(false)),
        ("whisperstt, threads fixed", whisperstt(true)),
        (
            "faster-whisper int8",
            fw(&python, &script, &ct2, "int8", &list),
        ),
    ];
    let seconds = if quick { 30.0 } else { 60.0 };
    println!(
        "## Beside competing load (tiny.en, {} threads asked for)\n",
        threads()
    );
    println!(
        "File mode, {} ({:.0} s of audio):\n",
        corpus.name, corpus.seconds
    );
    println!("| load | neighbour cores | system | transcribe s | real-time factor | kept of idle speed | WER |");
    println!("|---|---|---|---|---|---|---|");
    let mut idle: Vec<f64> = Vec::new();
    let mut results = Vec::new();
    for load in Load::ALL {
        let neighbours = load.start();
        for (i, (name, cmd)) in systems.iter().enumerate() {
            eprintln!("load {}: file mode, {name}", load.name());
            let r = measure(load.wrap(cmd));
            let secs = r["seconds"].as_f64().unwrap();
            if load == Load::None {
                idle.push(secs);
            }
            let texts: Vec<String> = serde_json::from_value(r["texts"].clone()).unwrap();
            let (errors, words) =
                corpus
                    .references
                    .iter()
                    .zip(&texts)
                    .fold((0, 0), |(e, n), (r, t)| {
                        let (fe, fn_) = common::word_errors(r, t);
                        (e + fe, n + fn_)
                    });
            let wer = errors as f64 / words.max(1) as f64;
            println!(
                "| {} | {:.2} | {name} | {secs:.2} | {:.3} | {:.0} % | {wer:.4} |",
                load.name(),
                neighbours.cores_used(),
                secs / corpus.seconds,
                100.0 * idle[i] / secs,
            );
            results.push(json!({"load": load.name(), "mode": "file", "system": name,
                "seconds": secs, "rtf": secs / corpus.seconds, "wer": wer}));
        }
    }
    println!("\nLive: N pipelines fed speech in real time for {seconds} s, one shared model:\n");
    println!("| load | N | neighbour cores | finals | final latency p50 s | p95 s | partial every s | max lag s | overload warnings | errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for load in Load::ALL {
        for n in [1usize, 4, 8] {
            let neighbours = load.start();
            eprintln!("load {}: {n} live streams", load.name());
            let r = measure(load.wrap(&this_binary(&[
                "live",
                &n.to_string(),
                "shared",
                &seconds.to_string(),
            ])));
            let delays: Vec<f64> = serde_json::from_value(r["final_delays"].clone()).unwrap();
            let gaps: Vec<f64> = serde_json::from_value(r["partial_gaps"].clone()).unwrap();
            let cadence = gaps.iter().sum::<f64>() / gaps.len() as f64;
            println!(
                "| {} | {n} | {:.2} | {} | {:.2} | {:.2} | {cadence:.2} | {:.2} | {} | {} |",
                load.name(),
                neighbours.cores_used(),
                delays.len(),
                percentile(&delays, 0.5),
                percentile(&delays, 0.95),
                r["max_lag"].as_f64().unwrap(),
                r["overload_warnings"],
                r["errors"].as_array().map_or(0, Vec::len),
            );
            results.push(json!({"load": load.name(), "mode": "live", "n": n,
                "finals": delays.len(), "latency_p50": percentile(&delays, 0.5),
                "latency_p95": percentile(&delays, 0.95), "partial_cadence": cadence,
                "max_lag": r["max_lag"], "overload_warnings": r["overload_warnings"]}));
        }
    }
    let path = bench_dir().join("load.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("\nJSON: {}", path.display());
}
