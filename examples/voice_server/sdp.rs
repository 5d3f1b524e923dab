//! The one-request (non-trickle) SDP exchange both sides of webrtcbin do here: make an offer or
//! answer, set it, and wait for ICE gathering so the description carries the candidates.
//! Shared with tests/voice_server.rs, whose peer makes the offers.

use gst::prelude::*;
use gst_webrtc::{WebRTCICEGatheringState, WebRTCSessionDescription};
use std::time::{Duration, Instant};

/// Runs `create` ("create-offer" or "create-answer") on `webrtc`, sets the result as the local
/// description, and returns it as SDP text with the ICE candidates gathered within `limit`.
pub fn local_description(
    webrtc: &gst::Element,
    create: &str,
    limit: Duration,
) -> Result<String, String> {
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>(create, &[&None::<gst::Structure>, &promise]);
    promise.wait();
    let field = create.trim_start_matches("create-");
    let description = promise
        .get_reply()
        .and_then(|r| r.get::<WebRTCSessionDescription>(field).ok())
        .ok_or(format!("webrtcbin made no {field}"))?;
    webrtc.emit_by_name::<()>(
        "set-local-description",
        &[&description, &None::<gst::Promise>],
    );
    let deadline = Instant::now() + limit;
    while webrtc.property::<WebRTCICEGatheringState>("ice-gathering-state")
        != WebRTCICEGatheringState::Complete
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let local = webrtc
        .property::<Option<WebRTCSessionDescription>>("local-description")
        .ok_or("webrtcbin has no local description")?;
    local.sdp().as_text().map_err(|e| e.to_string())
}
