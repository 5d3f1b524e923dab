//! `bench live-accuracy`: where live decoding loses words against file mode (issue 30). Each
//! recording goes through the engine as a file and as a live stream (fed as fast as it
//! decodes, so every partial runs), on one loaded model, in each live variant side by side.
//! Prints per set of recordings: words, file WER, each variant's live WER, finals and seconds
//! decoded per second of audio; writes every final, file and live, to
//! target/bench/live-accuracy/ for reading side by side.
//!
//! The sets: pocketsphinx-testdata's recordings one by one and its five LibriVox sentences one
//! after another 0.5 s apart (a reader's pause between sentences, over live's 400 ms and under
//! file mode's 2 s), and with ../shared the 32-clip corpus and the 5.8-minute LJ Speech reading.
//! A hesitant speaker pauses inside sentences too: the corpus clips are measured again with
//! 0.6 s of their own room tone at each comma, and pocketsphinx-testdata's also after "the",
//! "a", "of", "to" and "and" (placed by file mode's word timings).
//!
//! Then those short-pause recordings play through `appsrc ! whispersink` in real time, one
//! stream and eight at once, with and without the phrase hold: WER, final latency, partial
//! cadence and lag.

use crate::common;
use crate::common::degrade;
use gstwhisperstt::model::cache::ModelCache;
use gstwhisperstt::model::{Device, ModelKey};
use gstwhisperstt::scheduler::DecodeSlot;
use gstwhisperstt::transcriber::{DecodeOptions, StreamOptions, Transcriber};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A pause put at each comma of a recording (its own room tone): a hesitant speaker's, over
/// live's 400 ms.
const COMMA_PAUSE: usize = 9_600;

/// Recordings measured together, with what was said in each.
struct Set {
    name: String,
    recordings: Vec<(Vec<f32>, String)>,
    /// Pauses inside sentences: the recordings the real-time runs play.
    short_pauses: bool,
}

/// One way of hearing the recordings.
struct Variant {
    name: &'static str,
    live: bool,
    adjust: fn(&mut StreamOptions, &mut DecodeOptions),
}

const VARIANTS: [Variant; 4] = [
    Variant {
        name: "file",
        live: false,
        adjust: |_, _| {},
    },
    Variant {
        name: "live, no phrase hold",
        live: true,
        adjust: |s, _| s.phrase_silence = Duration::ZERO,
    },
    Variant {
        name: "live",
        live: true,
        adjust: |_, _| {},
    },
    Variant {
        name: "live, carry-context",
        live: true,
        adjust: |_, d| d.carry_context = true,
    },
];

/// What one variant made of one set.
struct Heard {
    errors: usize,
    words: usize,
    finals: usize,
    decoded_s: f64,
    audio_s: f64,
    texts: Vec<Vec<String>>,
}

/// With `engine_only`, without the real-time runs (8 of its 22 minutes); with `realtime`,
/// only the real-time runs of that many streams (to compare settings' latency quickly).
pub fn table(engine_only: bool, realtime: Option<usize>) {
    let cache = ModelCache::new();
    let key = common::model_key();
    // Held for the run: every transcriber below shares this load.
    let _model = cache.acquire(&key, None).unwrap();
    let sets = sets(&cache, &key);
    if realtime.is_none() {
        engine_table(&cache, &key, &sets);
    }
    if engine_only {
        return;
    }
    let short_pauses: Vec<(Vec<f32>, String)> = sets
        .iter()
        .filter(|s| s.short_pauses)
        .flat_map(|s| s.recordings.iter().cloned())
        .collect();
    realtime_table(&short_pauses, realtime);
}

/// Every set through the engine in each variant: a row per set; each final to
/// target/bench/live-accuracy/.
fn engine_table(cache: &ModelCache, key: &ModelKey, sets: &[Set]) {
    let dir = crate::bench_dir().join("live-accuracy");
    std::fs::create_dir_all(&dir).unwrap();
    println!("## Live against file mode (tiny.en, greedy, {} threads, the engine fed as fast as it decodes)\n", crate::threads());
    let names: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
    println!(
        "| recordings | audio s | words | {} WER | finals ({}) | decoded s per audio s ({}) |",
        names.join(" WER | "),
        names.join(" / "),
        names.join(" / ")
    );
    println!("|---|---|---|{}---|---|", "---|".repeat(VARIANTS.len()));
    for set in sets {
        eprintln!("live-accuracy: {}", set.name);
        let heard: Vec<Heard> = VARIANTS.iter().map(|v| hear(cache, key, set, v)).collect();
        print_row(set, &heard);
        write_texts(&dir, set, &heard);
    }
    println!("\nEach final, file and live: {}", dir.display());
}

/// Real-time runs of the short-pause recordings: streams at once, a name, whispersink's
/// properties.
const REALTIME: [(usize, &str, &str); 4] = [
    (1, "live, no phrase hold", "vad-phrase-silence=0"),
    (1, "live", ""),
    (8, "live, no phrase hold", "vad-phrase-silence=0"),
    (8, "live", ""),
];

/// Seconds of room tone between recordings in a real-time run: every utterance ends.
const REALTIME_GAP: usize = 2 * 16_000;

/// The short-pause recordings played through `whispersink` in real time, one stream and
/// eight at once (each starting at another recording), with and without the phrase hold.
fn realtime_table(recordings: &[(Vec<f32>, String)], only_streams: Option<usize>) {
    println!(
        "\n## The same in real time through whispersink: {} recordings with pauses inside sentences, {} s of room tone between\n",
        recordings.len(),
        REALTIME_GAP / 16_000
    );
    println!("| streams | variant | audio s per stream | WER | finals per stream | final latency p50 / p95 / max s | partial every (median s) | max lag s |");
    println!("|---|---|---|---|---|---|---|---|");
    let runs = REALTIME
        .into_iter()
        .filter(|(n, _, _)| only_streams.is_none_or(|o| o == *n));
    for (n, name, props) in runs {
        eprintln!("live-accuracy: real time, {n} streams, {name}");
        let streams: Vec<(Vec<f32>, String)> = (0..n)
            .map(|i| {
                let from = i * recordings.len() / n;
                let rotated = [&recordings[from..], &recordings[..from]].concat();
                joined(&rotated, REALTIME_GAP)
            })
            .collect();
        // The row's own properties go last: they win over WHISPERSTT_BENCH_PROPS.
        let pipelines = crate::live_pipelines(n, &format!("{} {props}", crate::extra_props()));
        crate::start_live(&pipelines);
        let audio = streams.iter().map(|(a, _)| a.clone()).collect();
        let (logs, _) = crate::play_live(&pipelines, audio);
        let (mut errors, mut words) = (0, 0);
        for (log, (_, reference)) in logs.iter().zip(&streams) {
            assert!(log.errors.is_empty(), "{name}: {:?}", log.errors);
            let (e, w) = common::word_errors(reference, &log.final_texts.join(" "));
            errors += e;
            words += w;
        }
        let all = |f: fn(&crate::LiveLog) -> &Vec<f64>| -> Vec<f64> {
            logs.iter().flat_map(|l| f(l).iter().copied()).collect()
        };
        let delays = all(|l| &l.final_delays);
        let finals: usize = logs.iter().map(|l| l.final_texts.len()).sum();
        println!(
            "| {n} | {name} | {:.0} | {:.4} | {:.1} | {:.2} / {:.2} / {:.2} | {:.2} | {:.2} |",
            streams[0].0.len() as f64 / 16_000.0,
            errors as f64 / words.max(1) as f64,
            finals as f64 / n as f64,
            crate::percentile(&delays, 0.5),
            crate::percentile(&delays, 0.95),
            delays.iter().copied().fold(0.0, f64::max),
            crate::percentile(&all(|l| &l.partial_gaps), 0.5),
            logs.iter().map(|l| l.max_lag).fold(0.0, f64::max),
        );
    }
}

fn sets(cache: &ModelCache, key: &ModelKey) -> Vec<Set> {
    let word_timer = || {
        let decode = DecodeOptions {
            threads: crate::threads(),
            word_timestamps: true,
            ..DecodeOptions::default()
        };
        let model = cache.acquire(key, None).unwrap();
        let slot = DecodeSlot::for_device(Device::Cpu);
        Transcriber::new(model, &decode, StreamOptions::default(), slot).unwrap()
    };
    let clips = common::pocketsphinx_clips();
    let load = |clips: &[(PathBuf, String)]| -> Vec<(Vec<f32>, String)> {
        clips
            .iter()
            .map(|(p, t)| (common::read_audio(p), t.clone()))
            .collect()
    };
    let mut sets = vec![Set {
        name: format!("pocketsphinx-testdata, {} recordings", clips.len()),
        recordings: load(&clips),
        short_pauses: false,
    }];
    let librivox: Vec<_> = clips
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains("librivox"))
        .cloned()
        .collect();
    sets.push(Set {
        name: format!("{} LibriVox sentences, 0.5 s apart", librivox.len()),
        recordings: vec![joined(&load(&librivox), 8_000)],
        short_pauses: true,
    });
    let paused = common::paused_inside_sentences(
        &word_timer,
        &load(&clips),
        COMMA_PAUSE,
        common::at_hesitation,
    );
    if !paused.is_empty() {
        sets.push(Set {
            name: format!(
                "pocketsphinx-testdata, {} with 0.6 s pauses at commas and after the/a/of/to/and",
                paused.len()
            ),
            recordings: paused,
            short_pauses: true,
        });
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/manifest.tsv");
    if shared.is_file() {
        let corpus = common::corpus_clips(&common::shared_corpus());
        sets.push(Set {
            name: format!("shared corpus, {} clips", corpus.len()),
            recordings: load(&corpus),
            short_pauses: false,
        });
        let paused = common::paused_inside_sentences(
            &word_timer,
            &load(&corpus),
            COMMA_PAUSE,
            common::at_comma,
        );
        sets.push(Set {
            name: format!(
                "shared corpus, {} clips with 0.6 s pauses at their commas",
                paused.len()
            ),
            recordings: paused,
            short_pauses: true,
        });
        let (long, text, _) = common::long_recording();
        sets.push(Set {
            name: "LJ Speech reading, 5.8 min".into(),
            recordings: vec![(common::read_audio(&long), text)],
            short_pauses: false,
        });
    } else {
        eprintln!("live-accuracy: ../shared/corpus is missing: only pocketsphinx-testdata");
    }
    sets
}

/// The recordings one after another, `gap` samples of each one's room tone after it, as one.
fn joined(recordings: &[(Vec<f32>, String)], gap: usize) -> (Vec<f32>, String) {
    let mut audio = Vec::new();
    let mut text = Vec::new();
    for (i, (a, t)) in recordings.iter().enumerate() {
        audio.extend_from_slice(a);
        audio.extend(degrade::room_tone(a, gap, i as u64));
        text.push(t.as_str());
    }
    (audio, text.join(" "))
}

fn hear(cache: &ModelCache, key: &ModelKey, set: &Set, variant: &Variant) -> Heard {
    let mut heard = Heard {
        errors: 0,
        words: 0,
        finals: 0,
        decoded_s: 0.0,
        audio_s: 0.0,
        texts: Vec::new(),
    };
    for (audio, reference) in &set.recordings {
        let mut stream = StreamOptions {
            live: variant.live,
            ..StreamOptions::default()
        };
        let mut decode = DecodeOptions {
            threads: crate::threads(),
            ..DecodeOptions::default()
        };
        (variant.adjust)(&mut stream, &mut decode);
        let slot = DecodeSlot::for_device(Device::Cpu);
        let model = cache.acquire(key, None).unwrap();
        let mut t = Transcriber::new(model, &decode, stream, slot).unwrap();
        let finals: Vec<String> = common::feed(&mut t, audio)
            .into_iter()
            .filter(|r| r.is_final)
            .map(|r| r.text)
            .collect();
        let (errors, words) = common::word_errors(reference, &finals.join(" "));
        heard.errors += errors;
        heard.words += words;
        heard.finals += finals.len();
        heard.decoded_s += t.decoded_audio().as_secs_f64();
        heard.audio_s += audio.len() as f64 / 16_000.0;
        heard.texts.push(finals);
    }
    heard
}

fn print_row(set: &Set, heard: &[Heard]) {
    let wer = |h: &Heard| format!("{:.4}", h.errors as f64 / h.words.max(1) as f64);
    let join = |f: &dyn Fn(&Heard) -> String| heard.iter().map(f).collect::<Vec<_>>().join(" / ");
    println!(
        "| {} | {:.0} | {} | {} | {} | {} |",
        set.name,
        heard[0].audio_s,
        heard[0].words,
        heard.iter().map(wer).collect::<Vec<_>>().join(" | "),
        join(&|h| h.finals.to_string()),
        join(&|h| format!("{:.2}", h.decoded_s / h.audio_s)),
    );
}

/// Every recording's reference and each variant's finals, one per line.
fn write_texts(dir: &Path, set: &Set, heard: &[Heard]) {
    let mut out = String::new();
    for (i, (_, reference)) in set.recordings.iter().enumerate() {
        writeln!(out, "## {i}\nreference: {reference}").unwrap();
        for (variant, h) in VARIANTS.iter().zip(heard) {
            for text in &h.texts[i] {
                writeln!(out, "{}: {text}", variant.name).unwrap();
            }
        }
        out.push('\n');
    }
    let file: String = set
        .name
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    std::fs::write(dir.join(format!("{file}.txt")), out).unwrap();
}
