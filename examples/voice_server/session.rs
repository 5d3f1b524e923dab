//! One browser connection: a pipeline from webrtcbin to whispersink, its transcripts sent back
//! over the data channel the browser opened; and the set of them, bounded.

use gst::prelude::*;
use gst_webrtc::{WebRTCDataChannel, WebRTCSDPType};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long ICE candidates are gathered before the answer goes out with what there is.
const GATHERING_LIMIT: Duration = Duration::from_secs(5);
/// A session that has had no media this long after its answer is ended.
const MEDIA_LIMIT: Duration = Duration::from_secs(15);
/// A session whose media stopped this long ago is ended: its browser went away without a
/// DELETE (a closed tab, a lost network). A live source's packets keep coming through silence.
const GONE_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum Refused {
    /// `--max-sessions` are running.
    Full(usize),
    /// The offer is not SDP, or has no audio.
    BadOffer(String),
    /// The pipeline could not be built or answer.
    Failed(String),
}

/// What `/stats` shows of one session.
#[derive(Default)]
struct Counters {
    partials: AtomicU64,
    finals: AtomicU64,
    warnings: AtomicU64,
    /// Milliseconds from the offer to the answer.
    answer_ms: AtomicU64,
    /// Milliseconds from the offer to the first audio packet, once there was one.
    first_audio_ms: AtomicU64,
    /// Milliseconds from the offer to the latest audio packet.
    last_audio_ms: AtomicU64,
    /// `whisperstt-overload` warnings, and how far behind real time the last one said it was.
    overloads: AtomicU64,
    overload_lag_ms: AtomicU64,
    /// How far behind real time the transcriber was at its latest transcript.
    lag_ms: AtomicU64,
}

pub struct Session {
    pub id: u64,
    pipeline: gst::Pipeline,
    created: Instant,
    counters: Counters,
    channel: Mutex<Option<WebRTCDataChannel>>,
    /// Transcripts that came before the data channel opened.
    backlog: Mutex<Vec<String>>,
    sessions: Weak<Sessions>,
}

pub struct Sessions {
    model: String,
    max: usize,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Session>>>,
    pub ended: AtomicUsize,
}

impl Sessions {
    pub fn new(model: String, max: usize) -> Sessions {
        Sessions {
            model,
            max,
            next_id: AtomicU64::new(1),
            live: Mutex::new(HashMap::new()),
            ended: AtomicUsize::new(0),
        }
    }

    /// A session for `offer`: its pipeline playing, and the SDP answer.
    pub fn open(self: &Arc<Self>, offer: &str) -> Result<(Arc<Session>, String), Refused> {
        let sdp = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
            .map_err(|_| Refused::BadOffer("the body is not an SDP offer".into()))?;
        if !sdp.medias().any(|m| m.media() == Some("audio")) {
            return Err(Refused::BadOffer("the offer has no audio".into()));
        }
        let session = {
            let mut live = self.live.lock().unwrap();
            if live.len() >= self.max {
                return Err(Refused::Full(self.max));
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let session =
                Session::build(id, &self.model, Arc::downgrade(self)).map_err(Refused::Failed)?;
            live.insert(id, Arc::clone(&session));
            session
        };
        match session.answer(sdp) {
            Ok(answer) => {
                let ms = session.created.elapsed().as_millis() as u64;
                session.counters.answer_ms.store(ms, Ordering::Relaxed);
                Ok((session, answer))
            }
            Err(e) => {
                self.close(session.id, &e);
                Err(Refused::Failed(e))
            }
        }
    }

    /// Ends session `id` (its pipeline stops on another thread: this may be called from one
    /// of its own). Returns whether there was one.
    pub fn close(&self, id: u64, why: &str) -> bool {
        let Some(session) = self.live.lock().unwrap().remove(&id) else {
            return false;
        };
        self.ended.fetch_add(1, Ordering::Relaxed);
        eprintln!("voice_server: session {id} ends: {why}");
        std::thread::spawn(move || {
            let _ = session.pipeline.set_state(gst::State::Null);
        });
        true
    }

    pub fn count(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    /// Each session's figures, for `/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let live = self.live.lock().unwrap();
        let mut sessions: Vec<&Arc<Session>> = live.values().collect();
        sessions.sort_by_key(|s| s.id);
        serde_json::Value::Array(sessions.iter().map(|s| s.stats()).collect())
    }
}

impl Session {
    fn build(id: u64, model: &str, sessions: Weak<Sessions>) -> Result<Arc<Session>, String> {
        let pipeline = gst::Pipeline::with_name(&format!("session-{id}"));
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name("webrtc")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .map_err(|e| e.to_string())?;
        pipeline.add(&webrtc).map_err(|e| e.to_string())?;
        // UPnP port mapping is for a peer behind a home router; a server has no use for it,
        // and each agent's UPnP discovery holds up its gathering (measured: answers 0.6 s
        // for one offer, 4.4 s for ten at once, with it on).
        let ice: gst::glib::Object = webrtc.property("ice-agent");
        let agent: gst::glib::Object = ice.property("agent");
        agent.set_property("upnp", false);
        let session = Arc::new(Session {
            id,
            pipeline,
            created: Instant::now(),
            counters: Counters::default(),
            channel: Mutex::new(None),
            backlog: Mutex::new(Vec::new()),
            sessions,
        });
        session.connect_media(&webrtc, model);
        session.connect_channel(&webrtc);
        session.watch_bus();
        session.watch_ice(&webrtc);
        session
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("session {id}: the pipeline does not start: {e}"))?;
        Ok(session)
    }

    /// The browser's audio, once webrtcbin has it, into whispersink; other media nowhere.
    fn connect_media(self: &Arc<Self>, webrtc: &gst::Element, model: &str) {
        let weak = Arc::downgrade(self);
        let model = model.to_string();
        webrtc.connect_pad_added(move |_, pad| {
            let Some(session) = weak.upgrade() else {
                return;
            };
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            if let Err(e) = session.link_audio(pad, &model) {
                session.end(&e);
            }
        });
    }

    fn link_audio(self: &Arc<Self>, pad: &gst::Pad, model: &str) -> Result<(), String> {
        let caps = pad.current_caps().ok_or("a pad without caps")?;
        let media = caps.structure(0).and_then(|s| s.get::<&str>("media").ok());
        let description = match media {
            Some("audio") => format!(
                "rtpopusdepay ! opusdec ! audioconvert ! audioresample ! \
                 whispersink name=sink model={model}"
            ),
            _ => "fakesink".to_string(),
        };
        let bin = gst::parse::bin_from_description(&description, true)
            .map_err(|e| format!("{description}: {e}"))?;
        self.pipeline.add(&bin).map_err(|e| e.to_string())?;
        bin.sync_state_with_parent().map_err(|e| e.to_string())?;
        pad.link(&bin.static_pad("sink").unwrap())
            .map_err(|e| e.to_string())?;
        let weak = Arc::downgrade(self);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let Some(s) = weak.upgrade() else {
                return gst::PadProbeReturn::Remove;
            };
            let ms = (s.created.elapsed().as_millis() as u64).max(1);
            s.counters.last_audio_ms.store(ms, Ordering::Relaxed);
            if s.counters.first_audio_ms.load(Ordering::Relaxed) == 0 {
                eprintln!(
                    "voice_server: session {} first audio {ms} ms after its offer",
                    s.id
                );
                s.counters.first_audio_ms.store(ms, Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
        Ok(())
    }

    /// The data channel the browser's offer opened: transcripts go back on it.
    fn connect_channel(self: &Arc<Self>, webrtc: &gst::Element) {
        let weak = Arc::downgrade(self);
        webrtc.connect("on-data-channel", false, move |values| {
            let channel = values[1].get::<WebRTCDataChannel>().ok()?;
            let session = weak.upgrade()?;
            let weak = Arc::downgrade(&session);
            channel.connect_on_open(move |channel| {
                let Some(session) = weak.upgrade() else {
                    return;
                };
                for text in session.backlog.lock().unwrap().drain(..) {
                    let _ = channel.send_string_full(Some(&text));
                }
            });
            *session.channel.lock().unwrap() = Some(channel);
            None
        });
    }

    /// Sends `text` to the browser, or keeps it until the data channel opens.
    fn send(&self, text: String) {
        let channel = self.channel.lock().unwrap();
        match channel.as_ref() {
            Some(c) if c.ready_state() == gst_webrtc::WebRTCDataChannelState::Open => {
                let _ = c.send_string_full(Some(&text));
            }
            _ => self.backlog.lock().unwrap().push(text),
        }
    }

    /// ICE that fails or closes ends the session; so does media that never comes or stops.
    fn watch_ice(self: &Arc<Self>, webrtc: &gst::Element) {
        let weak = Arc::downgrade(self);
        webrtc.connect_notify(Some("ice-connection-state"), move |webrtc, _| {
            let state =
                webrtc.property::<gst_webrtc::WebRTCICEConnectionState>("ice-connection-state");
            if matches!(
                state,
                gst_webrtc::WebRTCICEConnectionState::Failed
                    | gst_webrtc::WebRTCICEConnectionState::Closed
            ) {
                if let Some(s) = weak.upgrade() {
                    s.end(&format!("ICE {state:?}"));
                }
            }
        });
        let weak = Arc::downgrade(self);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let Some(s) = weak.upgrade() else { return };
            if !s.is_open() {
                return;
            }
            if let Some(why) = s.media_gone() {
                s.end(why);
                return;
            }
        });
    }

    /// Why the session should end for lack of media, if it should.
    fn media_gone(&self) -> Option<&'static str> {
        let now = self.created.elapsed().as_millis() as u64;
        match self.counters.last_audio_ms.load(Ordering::Relaxed) {
            0 if now > MEDIA_LIMIT.as_millis() as u64 => Some("no audio came"),
            0 => None,
            last if now - last > GONE_LIMIT.as_millis() as u64 => {
                Some("its audio stopped: the browser went away")
            }
            _ => None,
        }
    }

    /// Answers `offer`: the SDP answer with this side's ICE candidates in it.
    fn answer(&self, offer: gst_sdp::SDPMessage) -> Result<String, String> {
        let webrtc = self.pipeline.by_name("webrtc").unwrap();
        let offer = gst_webrtc::WebRTCSessionDescription::new(WebRTCSDPType::Offer, offer);
        let promise = gst::Promise::new();
        webrtc.emit_by_name::<()>("set-remote-description", &[&offer, &promise]);
        promise.wait();
        crate::sdp::local_description(&webrtc, "create-answer", GATHERING_LIMIT)
    }

    /// Transcripts to the browser; the model's loads, warnings and errors to the log.
    fn watch_bus(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let bus = self.pipeline.bus().unwrap();
        std::thread::spawn(move || loop {
            let msg = bus.timed_pop(gst::ClockTime::from_mseconds(200));
            let Some(session) = weak.upgrade() else {
                return;
            };
            if !session.is_open() {
                return;
            }
            if let Some(msg) = msg {
                session.handle(&msg);
            }
        });
    }

    fn handle(&self, msg: &gst::Message) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { return };
                match s.name().as_str() {
                    "whisperstt-transcript" => self.transcript(s),
                    "whisperstt-model" => eprintln!("voice_server: session {} model: {s}", self.id),
                    _ => {}
                }
            }
            gst::MessageView::Warning(w) => {
                self.counters.warnings.fetch_add(1, Ordering::Relaxed);
                let details = w.details();
                if let Some(d) = details.filter(|d| d.name() == "whisperstt-overload") {
                    let lag = d.get::<gst::ClockTime>("lag").map_or(0, |l| l.mseconds());
                    self.counters.overloads.fetch_add(1, Ordering::Relaxed);
                    self.counters.overload_lag_ms.store(lag, Ordering::Relaxed);
                }
                eprintln!("voice_server: session {} warning: {}", self.id, w.error());
            }
            gst::MessageView::Error(e) => self.end(&format!("error: {}", e.error())),
            gst::MessageView::Eos(_) => self.end("end of stream"),
            _ => {}
        }
    }

    /// A transcript as JSON: the message's fields, and how long after the end of the audio
    /// it covers it came (`delay-ms`, on the pipeline's clock; for a final, after the
    /// utterance's end).
    fn transcript(&self, s: &gst::StructureRef) {
        let is_final = s.get::<bool>("is-final").unwrap_or(false);
        let counter = match is_final {
            true => &self.counters.finals,
            false => &self.counters.partials,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(lag) = s.get::<gst::ClockTime>("lag") {
            self.counters
                .lag_ms
                .store(lag.mseconds(), Ordering::Relaxed);
        }
        let mut json = crate::json::structure(s);
        let end = s
            .get::<gst::ClockTime>("running-time")
            .ok()
            .zip(s.get::<gst::ClockTime>("duration").ok());
        if let (Some((start, duration)), Some(now)) = (end, self.pipeline.current_running_time()) {
            let delay = now.saturating_sub(start + duration);
            json["delay-ms"] = serde_json::Value::from(delay.mseconds());
        }
        json["session"] = serde_json::Value::from(self.id);
        self.send(json.to_string());
    }

    /// Milliseconds from the offer to the answer.
    pub fn answer_ms(&self) -> u64 {
        self.counters.answer_ms.load(Ordering::Relaxed)
    }

    fn is_open(&self) -> bool {
        self.sessions
            .upgrade()
            .is_some_and(|s| s.live.lock().unwrap().contains_key(&self.id))
    }

    fn end(&self, why: &str) {
        if let Some(sessions) = self.sessions.upgrade() {
            sessions.close(self.id, why);
        }
    }

    fn stats(&self) -> serde_json::Value {
        let sink = self.pipeline.by_name("sink");
        let delay = sink.map(|s| s.property::<u32>("max-observed-delay"));
        let first_audio = self.counters.first_audio_ms.load(Ordering::Relaxed);
        serde_json::json!({
            "id": self.id,
            "age-ms": self.created.elapsed().as_millis() as u64,
            "answer-ms": self.answer_ms(),
            "first-audio-ms": (first_audio > 0).then_some(first_audio),
            "partials": self.counters.partials.load(Ordering::Relaxed),
            "finals": self.counters.finals.load(Ordering::Relaxed),
            "warnings": self.counters.warnings.load(Ordering::Relaxed),
            "overload-warnings": self.counters.overloads.load(Ordering::Relaxed),
            "last-overload-lag-ms": self.counters.overload_lag_ms.load(Ordering::Relaxed),
            "lag-ms": self.counters.lag_ms.load(Ordering::Relaxed),
            "max-observed-delay-ms": delay,
        })
    }
}
