//! Live captions in the terminal from the microphone: the words appear while you speak
//! (partials, rewritten in place) and settle into a line when you pause (the final).
//!
//!     cargo run --release --example live_captions -- [--model M] [--source "LAUNCH FRAGMENT"]
//!
//! The source defaults to `autoaudiosrc`; any gst-launch fragment that produces audio works, e.g.
//! `--source "pulsesrc device=..."` or `--source "filesrc location=talk.wav ! decodebin"`.
//! Press Enter to stop: the element gets EOS, so the utterance in progress still gets its final.
//! The pipeline also ends by itself when the source does.

use gst::prelude::*;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut source = "autoaudiosrc".to_string();
    let mut model = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--source", Some(v)) => source = v,
            ("--model", Some(v)) => model = Some(v),
            _ => {
                eprintln!("usage: live_captions [--model M] [--source \"LAUNCH FRAGMENT\"]");
                return ExitCode::from(2);
            }
        }
    }
    match run(&source, model.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nlive_captions: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(source: &str, model: Option<&str>) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    // The plugin built with this example; an application using the installed plugin needs
    // only gst::init().
    gstwhisperstt::plugin_register_static().map_err(|e| e.to_string())?;
    let pipeline = gst::parse::launch(&format!(
        "{source} ! audioconvert ! audioresample ! whispersink name=stt"
    ))
    .map_err(|e| format!("{source}: {e}"))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "the source must be a launch fragment, not a whole pipeline".to_string())?;
    if let Some(model) = model {
        let stt = pipeline.by_name("stt").expect("named in the launch line");
        stt.set_property_from_str("model", model);
    }

    // Enter stops; end of input (stdin closed or not a terminal) does not.
    let stopper = pipeline.downgrade();
    std::thread::spawn(move || {
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(p) = stopper.upgrade() {
                p.send_event(gst::event::Eos::new());
            }
        }
    });

    let _ = pipeline.set_state(gst::State::Playing);
    if std::io::stdin().is_terminal() {
        eprintln!("listening; press Enter to stop");
    }
    let result = captions(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn captions(pipeline: &gst::Pipeline) -> Result<(), String> {
    // Partials rewrite the current line; only a terminal can do that.
    let terminal = std::io::stdout().is_terminal();
    let mut out = std::io::stdout();
    let bus = pipeline.bus().expect("pipelines have a bus");
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => return Err(e.error().to_string()),
            gst::MessageView::Warning(w) => eprintln!("\nwarning: {}", w.error()),
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { continue };
                if s.name() != "whisperstt-transcript" {
                    continue;
                }
                let text = s.get::<&str>("text").unwrap_or_default().trim();
                // "\r\x1b[2K": back to the start of the line and clear it.
                if s.get::<bool>("is-final") == Ok(true) {
                    let start = gst::ClockTime::from_nseconds(s.get::<u64>("start").unwrap_or(0));
                    if terminal {
                        write!(out, "\r\x1b[2K").ok();
                    }
                    writeln!(out, "[{:.1}] {text}", start.display()).ok();
                } else if terminal {
                    write!(out, "\r\x1b[2K... {text}").ok();
                }
                out.flush().ok();
            }
            _ => {}
        }
    }
    Err("the bus closed before the end of the stream".into())
}
