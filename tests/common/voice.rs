//! examples/voice_server driven from outside, as its users drive it: the server as a child
//! process on a free port, plain HTTP to it, and Chromium pages (tests/browser/voice.mjs)
//! whose fake microphone plays a recording. tests/voice_server.rs and `bench voice` share it.

use gst::prelude::*;
use gst_webrtc::{WebRTCDataChannel, WebRTCSDPType};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../../examples/voice_server/sdp.rs"]
mod sdp;

/// The example, started on a free port; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// Starts target/<profile>/examples/voice_server with `args` and waits for `/health`.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// As `start`, with `env` set for the server.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        // Tests run from target/<profile>/deps, the bench from target/<profile>/examples.
        let exe: PathBuf = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples/voice_server");
        assert!(
            exe.is_file(),
            "{}: cargo build --release --examples",
            exe.display()
        );
        let child = Command::new(exe)
            .args(["--addr", &addr])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.get("/health").is_err() {
            assert!(Instant::now() < deadline, "the server did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// One HTTP request: (status, Location header, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, String, String)> {
        let mut s = TcpStream::connect(&self.addr)?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let location = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("Location: ")
                    .or_else(|| l.strip_prefix("location: "))
            })
            .unwrap_or("")
            .to_string();
        Ok((status, location, body.to_string()))
    }

    pub fn get(&self, path: &str) -> std::io::Result<serde_json::Value> {
        let (_, _, body) = self.request("GET", path, "")?;
        serde_json::from_str(&body).map_err(std::io::Error::other)
    }

    /// The server's resident memory, from /proc.
    pub fn rss_mb(&self) -> f64 {
        self.proc_status("VmRSS:") / 1024.0
    }

    /// The server's peak resident memory so far, from /proc.
    pub fn peak_rss_mb(&self) -> f64 {
        self.proc_status("VmHWM:") / 1024.0
    }

    fn proc_status(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    /// CPU seconds the server has used (user and system), from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // The fields after the command name, which may hold spaces: utime and stime are the
        // 12th and 13th of them.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let ticks: f64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|t| t.parse::<f64>().unwrap())
            .sum();
        ticks / clock_ticks_per_second()
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser: speech from a live source, Opus over WebRTC, transcripts from the data channel.
pub struct Peer {
    pub pipeline: gst::Pipeline,
    pub messages: Arc<Mutex<Vec<serde_json::Value>>>,
    pub location: String,
}

impl Peer {
    /// Offers to `server`; returns the peer and the server's HTTP status (201 when answered).
    pub fn connect(server: &Server) -> (Peer, u16, String) {
        super::pipeline::init();
        let pipeline = gst::parse::launch(
            "appsrc name=src is-live=true format=time do-timestamp=true \
               caps=audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved \
             ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 \
             ! webrtcbin name=webrtc bundle-policy=max-bundle",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let webrtc = pipeline.by_name("webrtc").unwrap();
        // The offer is made before any audio flows: the codec comes from here, as a browser's
        // comes from its capabilities.
        let transceiver =
            webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>("get-transceiver", &[&0i32]);
        let opus = gst::Caps::from_str(
            "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000",
        )
        .unwrap();
        transceiver.set_property("codec-preferences", &opus);
        transceiver.set_property(
            "direction",
            gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly,
        );
        let channel = webrtc.emit_by_name::<WebRTCDataChannel>(
            "create-data-channel",
            &[&"transcripts", &None::<gst::Structure>],
        );
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = Arc::clone(&messages);
        channel.connect_on_message_string(move |_, text| {
            if let Some(v) = text.and_then(|t| serde_json::from_str(t).ok()) {
                m.lock().unwrap().push(v);
            }
        });
        let offer =
            sdp::local_description(&webrtc, "create-offer", Duration::from_secs(5)).unwrap();
        let (status, location, body) = server.request("POST", "/whip", &offer).unwrap();
        if status == 201 {
            let sdp = gst_sdp::SDPMessage::parse_buffer(body.as_bytes()).unwrap();
            let answer = gst_webrtc::WebRTCSessionDescription::new(WebRTCSDPType::Answer, sdp);
            webrtc.emit_by_name::<()>("set-remote-description", &[&answer, &None::<gst::Promise>]);
        }
        (
            Peer {
                pipeline,
                messages,
                location,
            },
            status,
            body,
        )
    }

    /// Plays `samples` in real time, then a second of silence.
    pub fn speak(&self, samples: &[f32]) {
        let src = self
            .pipeline
            .by_name("src")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        let started = Instant::now();
        let silence = vec![0.0f32; 16_000];
        for (i, chunk) in samples.chunks(1600).chain(silence.chunks(1600)).enumerate() {
            if let Some(wait) = Duration::from_millis(100 * i as u64).checked_sub(started.elapsed())
            {
                std::thread::sleep(wait);
            }
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            let _ = src.push_buffer(gst::Buffer::from_slice(bytes));
        }
    }

    /// The transcripts so far, once `finals` finals came or `limit` passed.
    pub fn wait_for(&self, finals: usize, limit: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.messages.lock().unwrap().clone();
            let n = got.iter().filter(|m| m["is-final"] == true).count();
            if n >= finals || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Two LibriVox sentences (pocketsphinx-testdata) with a second's pause between, and what
/// was said.
/// The text of a session's finals (data-channel messages), in order.
pub fn finals_text(messages: &[serde_json::Value]) -> String {
    let finals = messages.iter().filter(|m| m["is-final"] == true);
    finals
        .filter_map(|m| m["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn speech() -> (Vec<f32>, String) {
    let (a, ta) = super::pocketsphinx_clip("-0870.wav");
    let (b, tb) = super::pocketsphinx_clip("-0930.wav");
    let mut samples = super::read_audio(&a);
    samples.extend(std::iter::repeat_n(0.0, 16_000));
    samples.extend(super::read_audio(&b));
    (samples, format!("{ta} {tb}"))
}

/// `samples` (16 kHz mono) as a 16-bit WAV file: Chromium's fake microphone plays it.
pub fn wav_file(samples: &[f32]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".wav").tempfile().unwrap();
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut header = Vec::new();
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 0x0001_0001, 16_000, 32_000, 0x0010_0002] {
        header.extend_from_slice(&v.to_le_bytes());
    }
    header.extend_from_slice(b"data");
    header.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.write_all(&header).unwrap();
    f.write_all(&data).unwrap();
    f
}

/// What a run of Chromium pages showed, and what it cost the browser.
pub struct Browsed {
    /// Per page: status, finals, partials, stable, messages (tests/browser/voice.mjs).
    pub pages: Vec<serde_json::Value>,
    /// The server's /stats just before the pages stopped.
    pub stats: serde_json::Value,
    /// CPU seconds Node and Chromium used.
    pub browser_cpu_seconds: f64,
}

/// How tests/browser/voice.mjs runs its pages.
pub struct Pages<'a> {
    pub count: usize,
    /// How long the pages listen after the last one started.
    pub seconds: u32,
    /// Page i presses Start i * this after the first (0: all at once).
    pub stagger_ms: u32,
    /// Where to save the first page as an image.
    pub screenshot: Option<&'a str>,
}

/// Runs tests/browser/voice.mjs: Chromium pages on `server`'s page, each hearing `audio`.
pub fn browse(server: &Server, audio: &Path, pages: &Pages) -> Browsed {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").is_file(),
        "Chromium or playwright-core missing: run scripts/setup.sh"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("voice.mjs"))
        .args(["--url", &format!("http://{}/", server.addr)])
        .args(["--audio", audio.to_str().unwrap()])
        .args(["--pages", &pages.count.to_string()])
        .args(["--seconds", &pages.seconds.to_string()])
        .args(["--stagger", &pages.stagger_ms.to_string()]);
    if let Some(path) = pages.screenshot {
        cmd.args(["--screenshot", path]);
    }
    let cpu_before = children_cpu_seconds();
    let out = cmd.output().unwrap();
    let browser_cpu_seconds = children_cpu_seconds() - cpu_before;
    // What the pages logged (errors and warnings), for when a page did not connect.
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tests/browser/voice.mjs failed");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Browsed {
        pages: report["pages"].as_array().unwrap().clone(),
        stats: report["stats"].clone(),
        browser_cpu_seconds,
    }
}

/// CPU seconds of this process's children that have ended (and theirs, waited for).
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
