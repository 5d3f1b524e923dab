//! `bench voice`: examples/voice_server as its users meet it, each session hearing two
//! LibriVox sentences (pocketsphinx-testdata) over WebRTC.
//!
//! The clients share the server's two cores here, so the many-session rows use GStreamer's
//! webrtcbin as the browser (Opus over WebRTC, the data channel back: the same protocol, a
//! fraction of a browser's CPU); real Chromium pages (tests/browser/voice.mjs) give the 1 and 4
//! session rows. Sessions start all at once (every utterance ends at the same moment: the
//! worst case) or spread over the recording as independent users do. Then the spread case with
//! a model loaded per session (`WHISPERSTT_MODEL_SHARING=off`, no preload), as services that
//! load Whisper per connection do. The clients' CPU is in the table.

use crate::common::{self, voice};
use crate::{bench_dir, percentile};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Silence before the speech: the time a client takes to connect.
const LEAD_IN: usize = 24_000;
/// How long each Chromium page listens: the recording (14.9 s) and time for its last final.
const SECONDS: u32 = 17;
/// The recording's length: spread sessions start this far apart in all.
const SPREAD: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, PartialEq)]
enum Client {
    Chromium,
    Webrtcbin,
}

/// One round: `sessions` clients on a fresh server.
#[derive(Clone, Copy)]
struct Setup {
    client: Client,
    sessions: usize,
    shared: bool,
    spread: bool,
}

/// What the clients saw and the server said.
struct Outcome {
    /// Per session, the transcript messages its data channel brought.
    messages: Vec<Vec<Value>>,
    /// Per session, its entry in /stats while it was up.
    sessions: Vec<Value>,
    /// The model cache's loads.
    loads: u64,
}

/// The figures of one round.
struct Round {
    setup: Setup,
    connected: usize,
    connect_ms: Vec<f64>,
    /// Seconds from each utterance's start to its first partial: each session's first
    /// utterance apart (a stream's first partial waits for 2 s of audio to judge its speech by).
    first_partial_s: Vec<f64>,
    first_partial_later_s: Vec<f64>,
    final_s: Vec<f64>,
    wer: f64,
    idle_rss_mb: f64,
    peak_rss_mb: f64,
    loads: u64,
    server_cores: f64,
    client_cores: f64,
    overloads: u64,
    max_lag_ms: u64,
}

pub fn table() {
    common::pipeline::init();
    let (speech, reference) = voice::speech();
    let mut samples = vec![0.0f32; LEAD_IN];
    samples.extend(speech);
    samples.extend(std::iter::repeat_n(0.0, 32_000));
    println!("## Voice service: N sessions on examples/voice_server (tiny.en, 2 cores shared with the clients)\n");
    println!("| client | model | sessions | start | connected | connect ms p50 / max | first partial s: 1st utterance p50 / later p50 / max | final s p50 | final s p95 | WER | server RSS MB idle / peak | per extra session MB | loads | server cores | client cores | overload warnings | max lag ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!("| target (issue 29) | | 1 / 8 | | | <= 1000 | <= 1.5 | | <= 0.8 / <= 1.5 | | | <= 60 | 1 | | | | |");
    let plan: [(Client, bool, bool, &[usize]); 4] = [
        (Client::Chromium, true, false, &[1, 4]),
        (Client::Webrtcbin, true, false, &[1, 4, 8, 10]),
        (Client::Webrtcbin, true, true, &[4, 8, 10]),
        (Client::Webrtcbin, false, true, &[1, 4, 8, 10]),
    ];
    let mut results = Vec::new();
    // Each client and model's one-session peak, the base of "per extra session".
    let mut one_session_peak = std::collections::HashMap::new();
    for (client, shared, spread, counts) in plan {
        for &sessions in counts {
            let setup = Setup {
                client,
                sessions,
                shared,
                spread,
            };
            eprintln!(
                "voice: {sessions} sessions, {}",
                describe(&setup).join(", ")
            );
            let r = round(setup, &samples, &reference);
            let base = (client == Client::Chromium, shared);
            if sessions == 1 {
                one_session_peak.insert(base, r.peak_rss_mb);
            }
            let per_extra = one_session_peak
                .get(&base)
                .filter(|_| sessions > 1)
                .map(|one| (r.peak_rss_mb - one) / (sessions - 1) as f64);
            print_row(&r, per_extra);
            results.push(to_json(&r, per_extra));
        }
    }
    let path = bench_dir().join("voice.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("\nConnect: the offer's arrival to the session's first audio packet, at the server. First partial: after the utterance's speech began. Final: after it ended. WER: mean over the sessions' finals. Spread: session i starts i x {} s / N after the first. Client cores: the machine's busy time less the server's.\nJSON: {}", SPREAD.as_secs(), path.display());
}

fn describe(s: &Setup) -> [&'static str; 3] {
    [
        match s.client {
            Client::Chromium => "Chromium pages",
            Client::Webrtcbin => "webrtcbin peers",
        },
        if s.shared {
            "one, preloaded"
        } else {
            "one per session"
        },
        if s.spread { "spread" } else { "at once" },
    ]
}

fn round(setup: Setup, samples: &[f32], reference: &str) -> Round {
    let max = setup.sessions.to_string();
    let server = match setup.shared {
        true => voice::Server::start(&["--max-sessions", &max]),
        false => voice::Server::start_with_env(
            &["--max-sessions", &max, "--no-preload"],
            &[(gstwhisperstt::model::cache::SHARING_ENV, "off")],
        ),
    };
    let idle_rss_mb = server.rss_mb();
    let (server_cpu, machine_cpu, started) =
        (server.cpu_seconds(), machine_cpu_seconds(), Instant::now());
    let stagger = match setup.spread {
        true => SPREAD / setup.sessions as u32,
        false => Duration::ZERO,
    };
    let outcome = match setup.client {
        Client::Chromium => chromium(&server, samples, setup.sessions, stagger),
        Client::Webrtcbin => peers(&server, samples, setup.sessions, stagger),
    };
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = server.cpu_seconds() - server_cpu;
    let machine_cpu = machine_cpu_seconds() - machine_cpu;
    let live = &outcome.sessions;
    let all: Vec<&Value> = outcome.messages.iter().flatten().collect();
    let texts: Vec<String> = outcome
        .messages
        .iter()
        .map(|m| voice::finals_text(m))
        .collect();
    let (first_partial_s, first_partial_later_s) = first_partials(&outcome.messages);
    Round {
        setup,
        connected: live.len(),
        connect_ms: live
            .iter()
            .filter_map(|s| s["first-audio-ms"].as_f64())
            .collect(),
        first_partial_s,
        first_partial_later_s,
        final_s: all
            .iter()
            .filter(|m| m["is-final"] == true)
            .filter_map(|m| m["delay-ms"].as_f64())
            .map(|ms| ms / 1e3)
            .collect(),
        wer: texts.iter().map(|t| common::wer(reference, t)).sum::<f64>()
            / texts.len().max(1) as f64,
        idle_rss_mb,
        peak_rss_mb: server.peak_rss_mb(),
        loads: outcome.loads,
        server_cores: server_cpu / wall,
        client_cores: (machine_cpu - server_cpu).max(0.0) / wall,
        overloads: live
            .iter()
            .filter_map(|s| s["overload-warnings"].as_u64())
            .sum(),
        max_lag_ms: all
            .iter()
            .filter_map(|m| m["lag"].as_u64())
            .max()
            .unwrap_or(0)
            / 1_000_000,
    }
}

/// Chromium pages, their fake microphones playing `samples`.
fn chromium(server: &voice::Server, samples: &[f32], n: usize, stagger: Duration) -> Outcome {
    let audio = voice::wav_file(samples);
    let pages = voice::Pages {
        count: n,
        seconds: SECONDS,
        stagger_ms: stagger.as_millis() as u32,
        screenshot: None,
    };
    let shown = voice::browse(server, audio.path(), &pages);
    Outcome {
        messages: shown
            .pages
            .iter()
            .map(|p| p["messages"].as_array().cloned().unwrap_or_default())
            .collect(),
        sessions: shown.stats["sessions"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        loads: shown.stats["loads"].as_u64().unwrap_or(0),
    }
}

/// webrtcbin peers, each speaking `samples` in real time; each reads its session's entry in
/// /stats once it has its finals (or 5 s passed), before it hangs up.
fn peers(server: &voice::Server, samples: &[f32], n: usize, stagger: Duration) -> Outcome {
    let done: Vec<(Vec<Value>, Value)> = std::thread::scope(|scope| {
        let talks: Vec<_> = (0..n)
            .map(|i| {
                scope.spawn(move || {
                    std::thread::sleep(stagger * i as u32);
                    let (peer, status, body) = voice::Peer::connect(server);
                    assert_eq!(status, 201, "{body}");
                    peer.speak(samples);
                    let messages = peer.wait_for(2, Duration::from_secs(5));
                    let id: u64 = peer.location.rsplit('/').next().unwrap().parse().unwrap();
                    let stats = server.get("/stats").unwrap();
                    let sessions = stats["sessions"].as_array().cloned().unwrap_or_default();
                    let own = sessions.into_iter().find(|s| s["id"] == id);
                    (messages, own.unwrap_or(Value::Null))
                })
            })
            .collect();
        talks.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let loads = server.get("/stats").unwrap()["loads"].as_u64().unwrap_or(0);
    let (messages, sessions): (Vec<_>, Vec<_>) = done.into_iter().unzip();
    Outcome {
        messages,
        sessions: sessions.into_iter().filter(|s| !s.is_null()).collect(),
        loads,
    }
}

/// CPU seconds the whole machine has been busy, from /proc/stat.
fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let busy: f64 = ticks.iter().take(8).sum::<f64>() - ticks[3] - ticks[4];
    // SAFETY: sysconf only reads a configuration value.
    busy / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Seconds from each utterance's start to its first partial (the partial's delay after the
/// audio it covers, plus that audio's length): each session's first utterance, and the others.
fn first_partials(sessions: &[Vec<Value>]) -> (Vec<f64>, Vec<f64>) {
    let (mut first, mut later) = (Vec::new(), Vec::new());
    for messages in sessions {
        let mut seen = std::collections::HashSet::new();
        for m in messages {
            let (Some(id), Some(delay), Some(duration)) = (
                m["utterance-id"].as_u64(),
                m["delay-ms"].as_f64(),
                m["duration"].as_f64(),
            ) else {
                continue;
            };
            if m["is-final"] == false && seen.insert(id) {
                let to = if seen.len() == 1 {
                    &mut first
                } else {
                    &mut later
                };
                to.push(delay / 1e3 + duration / 1e9);
            }
        }
    }
    (first, later)
}

fn print_row(r: &Round, per_extra: Option<f64>) {
    let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    let [client, model, start] = describe(&r.setup);
    println!(
        "| {client} | {model} | {} | {start} | {} | {:.0} / {:.0} | {:.2} / {:.2} / {:.2} | {:.2} | {:.2} | {:.3} | {:.0} / {:.0} | {} | {} | {:.2} | {:.2} | {} | {} |",
        r.setup.sessions,
        r.connected,
        percentile(&r.connect_ms, 0.5),
        max(&r.connect_ms),
        percentile(&r.first_partial_s, 0.5),
        percentile(&r.first_partial_later_s, 0.5),
        max(&[r.first_partial_s.as_slice(), &r.first_partial_later_s].concat()),
        percentile(&r.final_s, 0.5),
        percentile(&r.final_s, 0.95),
        r.wer,
        r.idle_rss_mb,
        r.peak_rss_mb,
        per_extra.map_or(String::new(), |v| format!("{v:.0}")),
        r.loads,
        r.server_cores,
        r.client_cores,
        r.overloads,
        r.max_lag_ms,
    );
}

fn to_json(r: &Round, per_extra: Option<f64>) -> Value {
    let [client, model, start] = describe(&r.setup);
    json!({
        "client": client, "model": model, "start": start, "sessions": r.setup.sessions,
        "connected": r.connected, "connect_ms": r.connect_ms,
        "first_partial_first_utterance_s": r.first_partial_s,
        "first_partial_later_s": r.first_partial_later_s, "final_s": r.final_s,
        "final_p50_s": percentile(&r.final_s, 0.5), "final_p95_s": percentile(&r.final_s, 0.95),
        "wer": r.wer, "idle_rss_mb": r.idle_rss_mb, "peak_rss_mb": r.peak_rss_mb,
        "rss_per_extra_session_mb": per_extra, "loads": r.loads,
        "server_cores": r.server_cores, "client_cores": r.client_cores,
        "overload_warnings": r.overloads, "max_lag_ms": r.max_lag_ms,
    })
}
