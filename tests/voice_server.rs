//! examples/voice_server as a browser uses it: a WebRTC peer (GStreamer's own webrtcbin here,
//! sending Opus from a live source in real time) posts its offer, plays speech, and reads the
//! transcripts off the data channel. Several at once, and the offers a server must refuse.

mod common;

use common::voice::{self, browse, finals_text, speech, wav_file, Peer, Server};
use gst::prelude::*;
use std::time::{Duration, Instant};

#[test]
fn a_session_gets_partials_then_finals_over_the_data_channel_on_the_preloaded_model() {
    let _turn = common::one_at_a_time();
    let server = Server::start(&[]);
    let (peer, status, body) = Peer::connect(&server);
    assert_eq!(status, 201, "{body}");
    let (samples, reference) = speech();
    peer.speak(&samples);
    let messages = peer.wait_for(2, Duration::from_secs(10));
    let first_final = messages.iter().position(|m| m["is-final"] == true);
    assert!(
        first_final.is_some_and(|i| i > 0),
        "partials before the first final: {messages:?}"
    );
    let wer = common::wer(&reference, &finals_text(&messages));
    assert!(wer <= 0.15, "WER {wer:.3}: {}", finals_text(&messages));
    let stats = server.get("/stats").unwrap();
    eprintln!("stats: {stats}");
    assert_eq!(stats["loads"], 1, "one load, at start");
    // One session on two cores never falls behind real time.
    assert_eq!(stats["sessions"][0]["overload-warnings"], 0, "{stats}");
    // The 1 s connect target is the benchmark's to measure (0.80-1.02 s seen here); this
    // only checks that audio flows promptly at all.
    let first_audio = stats["sessions"][0]["first-audio-ms"].as_u64().unwrap();
    assert!(
        first_audio <= 3000,
        "first audio {first_audio} ms after the offer"
    );
    let (status, _, _) = server.request("DELETE", &peer.location, "").unwrap();
    assert_eq!(status, 204);
    assert_eq!(server.get("/health").unwrap()["sessions"], 0);
}

#[test]
fn eight_sessions_at_once_share_the_one_load() {
    let _turn = common::one_at_a_time();
    let server = Server::start(&["--max-sessions", "8"]);
    let (samples, reference) = speech();
    let results: Vec<(u16, Vec<serde_json::Value>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let (peer, status, _) = Peer::connect(&server);
                    peer.speak(&samples);
                    (status, peer.wait_for(2, Duration::from_secs(15)))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, messages) in &results {
        assert_eq!(*status, 201);
        let wer = common::wer(&reference, &finals_text(messages));
        assert!(wer <= 0.25, "WER {wer:.3}: {}", finals_text(messages));
    }
    assert_eq!(
        server.get("/stats").unwrap()["loads"],
        1,
        "one load for eight sessions"
    );
}

#[test]
fn offers_it_cannot_take_are_refused_with_the_reason() {
    let _turn = common::one_at_a_time();
    let server = Server::start(&["--max-sessions", "1"]);
    let (status, _, body) = server.request("POST", "/whip", "hello").unwrap();
    assert_eq!(status, 400, "{body}");
    let big = "v=0\r\n".repeat(20_000);
    let (status, _, _) = server.request("POST", "/whip", &big).unwrap();
    assert_eq!(status, 413);
    let (_first, status, body) = Peer::connect(&server);
    assert_eq!(status, 201, "{body}");
    let (_second, status, body) = Peer::connect(&server);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("--max-sessions"), "{body}");
}

/// Chromium, as a user's browser: its fake microphone plays the recording (after 1.5 s of
/// silence, the time to connect), the page shows partials with a stable part and then the
/// finals; one page, then eight at once, all on the one load. `WHISPERSTT_SCREENSHOT=PATH`
/// saves the first page as docs/voice.png is.
#[test]
fn chromium_pages_show_partials_then_the_finals() {
    let _turn = common::one_at_a_time();
    let server = Server::start(&["--max-sessions", "8"]);
    let (speech, reference) = speech();
    let mut samples = vec![0.0f32; 24_000];
    samples.extend(speech);
    samples.extend(std::iter::repeat_n(0.0, 32_000));
    let audio = wav_file(&samples);
    let screenshot = std::env::var("WHISPERSTT_SCREENSHOT").ok();
    for count in [1, 8] {
        let pages = voice::Pages {
            count,
            seconds: 17,
            stagger_ms: 0,
            screenshot: screenshot.as_deref().filter(|_| count == 1),
        };
        let mut shown = browse(&server, audio.path(), &pages);
        let mut with_partials = 0;
        for page in shown.pages.iter_mut() {
            page.as_object_mut().unwrap().remove("messages");
            let finals: Vec<&str> = page["finals"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["text"].as_str())
                .collect();
            let wer = common::wer(&reference, &finals.join(" "));
            eprintln!("{count} pages: {page}");
            assert!(
                page["status"].as_str().unwrap().starts_with("Connected"),
                "{page}"
            );
            // Eight pages and their browser share the server's two cores here: partials are
            // shed first (measured: finals 0.6-3.0 s after the speech, 0-8 partials a page,
            // 0-6 stable), so one page alone must show them and most of the eight.
            let stable = page["stable"].as_u64().unwrap();
            let partials = page["partials"].as_u64().unwrap();
            with_partials += usize::from(partials > 0);
            assert!(count > 1 || stable > 0, "{page}");
            assert!(wer <= 0.2, "WER {wer:.3}: {page}");
        }
        assert!(
            with_partials * 4 >= count * 3,
            "{with_partials} of {count} pages showed partials"
        );
        assert_eq!(
            server.get("/stats").unwrap()["loads"],
            1,
            "one load for every page"
        );
    }
}

/// Waits up to `limit` for the server to count `n` sessions.
fn sessions_become(server: &Server, n: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if server.get("/health").unwrap()["sessions"] == n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A browser that vanishes mid-sentence (no DELETE, no goodbye) ends its own session once its
/// audio stops; the session beside it carries on to its finals.
#[test]
fn a_peer_gone_mid_utterance_ends_only_its_own_session() {
    let _turn = common::one_at_a_time();
    let server = Server::start(&["--max-sessions", "2"]);
    let (samples, reference) = speech();
    let messages = std::thread::scope(|s| {
        let gone = s.spawn(|| {
            let (peer, status, _) = Peer::connect(&server);
            assert_eq!(status, 201);
            peer.speak(&samples[..3 * 16_000]);
            let _ = peer.pipeline.set_state(gst::State::Null);
        });
        let (peer, status, _) = Peer::connect(&server);
        assert_eq!(status, 201);
        peer.speak(&samples);
        gone.join().unwrap();
        peer.wait_for(2, Duration::from_secs(10))
    });
    let wer = common::wer(&reference, &finals_text(&messages));
    assert!(
        wer <= 0.15,
        "the other session: WER {wer:.3}: {}",
        finals_text(&messages)
    );
    let stats = server.get("/stats").unwrap();
    assert!(stats["sessions-ended"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["sessions"].as_array().unwrap().len(), 1, "{stats}");
}

/// A muted microphone: the session stays up and no text comes for the silence.
#[test]
fn a_silent_track_gets_no_text_and_stays_up() {
    let _turn = common::one_at_a_time();
    let server = Server::start(&[]);
    let (peer, status, _) = Peer::connect(&server);
    assert_eq!(status, 201);
    peer.speak(&vec![0.0; 8 * 16_000]);
    let messages = peer.wait_for(1, Duration::from_secs(2));
    assert!(messages.is_empty(), "{messages:?}");
    assert_eq!(server.get("/health").unwrap()["sessions"], 1);
}

/// 100 connections opened and ended: no session left, and the server's memory stays flat
/// after the first ten (measured: see the printed line).
#[test]
fn a_hundred_connects_and_disconnects_leave_nothing_behind() {
    let _turn = common::one_at_a_time();
    let server = Server::start(&[]);
    let mut warm = 0.0;
    let started = Instant::now();
    for i in 0..100 {
        let (peer, status, body) = Peer::connect(&server);
        assert_eq!(status, 201, "connection {i}: {body}");
        let (status, _, _) = server.request("DELETE", &peer.location, "").unwrap();
        assert_eq!(status, 204, "connection {i}");
        drop(peer);
        if i == 9 {
            assert!(sessions_become(&server, 0, Duration::from_secs(5)));
            warm = server.rss_mb();
        }
    }
    assert!(
        sessions_become(&server, 0, Duration::from_secs(5)),
        "sessions left"
    );
    let end = server.rss_mb();
    eprintln!(
        "100 connections in {:.1} s; server RSS {warm:.1} MB after 10, {end:.1} MB after 100",
        started.elapsed().as_secs_f64()
    );
    assert!(end - warm <= 30.0, "RSS grew from {warm:.1} to {end:.1} MB");
    assert_eq!(server.get("/stats").unwrap()["sessions-ended"], 100);
}
