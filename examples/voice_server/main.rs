//! A browser voice service on whisperstt: WebRTC in, live transcripts out, every session on the
//! one model loaded at start.
//!
//!     cargo run --release --example voice_server -- [--addr 127.0.0.1:8080] [--model tiny.en]
//!         [--max-sessions 10] [--no-preload]
//!
//! Open http://127.0.0.1:8080/ and press Start. Signalling is one HTTP request, WHIP-style:
//! `POST /whip` with the browser's SDP offer (`application/sdp`, ICE candidates included)
//! answers `201 Created` with the SDP answer and `Location: /sessions/ID`; `DELETE
//! /sessions/ID` ends the session. Each session is one pipeline, `webrtcbin ! rtpopusdepay !
//! opusdec ! audioconvert ! audioresample ! whispersink`, and each `whisperstt-transcript`
//! message goes back to its browser as JSON over the WebRTC data channel the offer opened.
//! `GET /health` and `GET /stats` report the model cache and the sessions.

mod http;
mod json;
mod sdp;
mod session;

use gstwhisperstt::model::cache;
use std::process::ExitCode;
use std::sync::Arc;

/// The command line.
pub struct Config {
    pub addr: String,
    pub model: String,
    pub max_sessions: usize,
    pub preload: bool,
}

impl Config {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
        let mut c = Config {
            addr: "127.0.0.1:8080".into(),
            model: "tiny.en".into(),
            max_sessions: 10,
            preload: true,
        };
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--addr" => c.addr = value("--addr")?,
                "--model" => c.model = value("--model")?,
                "--max-sessions" => {
                    c.max_sessions = value("--max-sessions")?
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or("--max-sessions needs a positive number")?
                }
                "--no-preload" => c.preload = false,
                "--preload" => c.preload = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(c)
    }
}

fn main() -> ExitCode {
    let config = match Config::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "voice_server: {e}\nusage: voice_server [--addr HOST:PORT] [--model M] \
                 [--max-sessions N] [--no-preload]"
            );
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voice_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    // The plugin built with this example; with the installed plugin gst::init() is enough.
    gstwhisperstt::plugin_register_static().map_err(|e| e.to_string())?;
    for element in ["webrtcbin", "nicesrc", "rtpopusdepay", "opusdec"] {
        if gst::ElementFactory::find(element).is_none() {
            return Err(format!(
                "GStreamer element {element} is missing (Debian: gstreamer1.0-plugins-bad, \
                 gstreamer1.0-nice, gstreamer1.0-plugins-good, gstreamer1.0-plugins-base)"
            ));
        }
    }
    // Loaded once, here; every session's whispersink shares it while this handle lives.
    let _model = match config.preload {
        true => {
            let started = std::time::Instant::now();
            let handle = cache::global()
                .preload(
                    &config.model,
                    Default::default(),
                    Default::default(),
                    Default::default(),
                )
                .map_err(|e| e.to_string())?;
            let stats = cache::global().stats();
            eprintln!(
                "voice_server: model {} loaded in {} ms (loads in this process: {})",
                config.model,
                started.elapsed().as_millis(),
                stats.loads
            );
            Some(handle)
        }
        false => None,
    };
    let sessions = Arc::new(session::Sessions::new(
        config.model.clone(),
        config.max_sessions,
    ));
    http::serve(&config.addr, sessions)
}
