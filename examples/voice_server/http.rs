//! The HTTP side: the page, WHIP-style signalling, and the figures.

use crate::session::{Refused, Sessions};
use gstwhisperstt::model::cache;
use std::io::Read;
use std::sync::Arc;
use tiny_http::{Header, Method, Request, Response, Server};

/// An offer larger than this is refused (a browser's is a few kB).
const MAX_OFFER: usize = 64 * 1024;
const PAGE: &str = include_str!("page.html");

pub fn serve(addr: &str, sessions: Arc<Sessions>) -> Result<(), String> {
    let server = Server::http(addr).map_err(|e| format!("{addr}: {e}"))?;
    eprintln!("voice_server: listening on http://{addr}/");
    for request in server.incoming_requests() {
        let sessions = Arc::clone(&sessions);
        std::thread::spawn(move || route(request, &sessions));
    }
    Ok(())
}

type Reply = Response<std::io::Cursor<Vec<u8>>>;

fn route(mut request: Request, sessions: &Arc<Sessions>) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let reply = match (request.method(), path.as_str()) {
        (Method::Get, "/") => text(200, PAGE, "text/html; charset=utf-8"),
        (Method::Get, "/health") => json(200, health(sessions)),
        (Method::Get, "/stats") => json(200, stats(sessions)),
        (Method::Post, "/whip") => offer(&mut request, sessions),
        (Method::Delete, p) if p.starts_with("/sessions/") => {
            match p["/sessions/".len()..].parse::<u64>() {
                Ok(id) if sessions.close(id, "the browser ended it") => text(204, "", "text/plain"),
                _ => text(404, "no such session\n", "text/plain"),
            }
        }
        _ => text(404, "not found\n", "text/plain"),
    };
    let _ = request.respond(reply);
}

/// `POST /whip`: the SDP offer in, the answer out (201), or why not.
fn offer(request: &mut Request, sessions: &Arc<Sessions>) -> Reply {
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(MAX_OFFER as u64 + 1)
        .read_to_end(&mut body);
    if read.is_err() || body.len() > MAX_OFFER {
        return text(
            413,
            &format!("the offer is over {MAX_OFFER} bytes\n"),
            "text/plain",
        );
    }
    let Ok(offer) = String::from_utf8(body) else {
        return text(400, "the offer is not UTF-8 text\n", "text/plain");
    };
    match sessions.open(&offer) {
        Ok((session, answer)) => {
            eprintln!(
                "voice_server: session {} answered; {} sessions; {}",
                session.id,
                sessions.count(),
                model_line()
            );
            text(201, &answer, "application/sdp")
                .with_header(header("Location", &format!("/sessions/{}", session.id)))
        }
        Err(Refused::Full(max)) => text(
            503,
            &format!("{max} sessions are running, the most this server takes (--max-sessions)\n"),
            "text/plain",
        )
        .with_header(header("Retry-After", "5")),
        Err(Refused::BadOffer(why)) => text(400, &format!("{why}\n"), "text/plain"),
        Err(Refused::Failed(why)) => text(500, &format!("{why}\n"), "text/plain"),
    }
}

/// The model's identity and load count, for the log of every connection.
fn model_line() -> String {
    let stats = cache::global().stats();
    let models: Vec<String> = stats
        .models
        .iter()
        .map(|m| {
            format!(
                "{} ({:?}, {} handles, {} loads)",
                m.key.path.display(),
                m.state,
                m.live_handles,
                m.loads
            )
        })
        .collect();
    format!("model cache: {} loads: {}", stats.loads, models.join(", "))
}

fn health(sessions: &Sessions) -> serde_json::Value {
    let stats = cache::global().stats();
    serde_json::json!({
        "status": "ok",
        "sessions": sessions.count(),
        "loads": stats.loads,
        "models": stats.models.len(),
    })
}

fn stats(sessions: &Sessions) -> serde_json::Value {
    let stats = cache::global().stats();
    let models: Vec<serde_json::Value> = stats
        .models
        .iter()
        .map(|m| {
            serde_json::json!({
                "path": m.key.path.display().to_string(),
                "state": format!("{:?}", m.state),
                "bytes": m.bytes,
                "live-handles": m.live_handles,
                "loads": m.loads,
            })
        })
        .collect();
    serde_json::json!({
        "loads": stats.loads,
        "failed-loads": stats.failed_loads,
        "releases": stats.releases,
        "models": models,
        "sessions-ended": sessions.ended.load(std::sync::atomic::Ordering::Relaxed),
        "sessions": sessions.stats(),
    })
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn text(status: u16, body: &str, content_type: &str) -> Reply {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
}

fn json(status: u16, value: serde_json::Value) -> Reply {
    text(status, &format!("{value}\n"), "application/json")
}
