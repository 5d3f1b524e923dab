//! The HTTP side: the page, WHIP-style signalling, and the figures. axum on a small tokio
//! runtime; an offer is answered on a blocking thread, as it waits on webrtcbin.

use crate::session::{Refused, Sessions};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use gstwhisperstt::model::cache;
use std::sync::Arc;

/// An offer larger than this is refused (a browser's is a few kB).
const MAX_OFFER: usize = 64 * 1024;
const PAGE: &str = include_str!("page.html");

pub fn serve(addr: &str, sessions: Arc<Sessions>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("voice-http")
        .enable_io()
        .build()
        .map_err(|e| format!("the HTTP runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        eprintln!("voice_server: listening on http://{addr}/");
        axum::serve(listener, routes(sessions))
            .await
            .map_err(|e| format!("{addr}: {e}"))
    })
}

fn routes(sessions: Arc<Sessions>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { text(200, PAGE, "text/html; charset=utf-8") }),
        )
        .route(
            "/health",
            get(|State(s): State<Arc<Sessions>>| async move { json(health(&s)) }),
        )
        .route(
            "/stats",
            get(|State(s): State<Arc<Sessions>>| async move { json(stats(&s)) }),
        )
        .route("/whip", post(offer))
        .route("/sessions/{id}", delete(end))
        .fallback(|| async { text(404, "not found\n", "text/plain") })
        .with_state(sessions)
}

/// `DELETE /sessions/ID`: the browser ends its session.
async fn end(State(sessions): State<Arc<Sessions>>, Path(id): Path<String>) -> Response {
    match id.parse::<u64>() {
        Ok(id) if sessions.close(id, "the browser ended it") => text(204, "", "text/plain"),
        _ => text(404, "no such session\n", "text/plain"),
    }
}

/// `POST /whip`: the SDP offer in, the answer out (201), or why not.
async fn offer(State(sessions): State<Arc<Sessions>>, body: Body) -> Response {
    let Ok(body) = axum::body::to_bytes(body, MAX_OFFER).await else {
        let why = format!("the offer is over {MAX_OFFER} bytes\n");
        return text(413, &why, "text/plain");
    };
    let Ok(offer) = String::from_utf8(body.to_vec()) else {
        return text(400, "the offer is not UTF-8 text\n", "text/plain");
    };
    let opened = tokio::task::spawn_blocking(move || {
        let opened = sessions.open(&offer);
        if let Ok((session, _)) = &opened {
            eprintln!(
                "voice_server: session {} answered in {} ms; {} sessions; {}",
                session.id,
                session.answer_ms(),
                sessions.count(),
                model_line()
            );
        }
        opened
    })
    .await;
    match opened {
        Ok(Ok((session, answer))) => {
            let location = format!("/sessions/{}", session.id);
            with_header(text(201, &answer, "application/sdp"), "location", &location)
        }
        Ok(Err(Refused::Full(max))) => with_header(
            text(
                503,
                &format!(
                    "{max} sessions are running, the most this server takes (--max-sessions)\n"
                ),
                "text/plain",
            ),
            "retry-after",
            "5",
        ),
        Ok(Err(Refused::BadOffer(why))) => text(400, &format!("{why}\n"), "text/plain"),
        Ok(Err(Refused::Failed(why))) => text(500, &format!("{why}\n"), "text/plain"),
        Err(e) => text(
            500,
            &format!("the session could not open: {e}\n"),
            "text/plain",
        ),
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

fn text(status: u16, body: &str, content_type: &'static str) -> Response {
    let status = StatusCode::from_u16(status).expect("a valid status");
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        body.to_string(),
    )
        .into_response()
}

fn with_header(mut response: Response, name: &'static str, value: &str) -> Response {
    let value = HeaderValue::from_str(value).expect("a valid header value");
    response.headers_mut().insert(name, value);
    response
}

fn json(value: serde_json::Value) -> Response {
    text(200, &format!("{value}\n"), "application/json")
}
