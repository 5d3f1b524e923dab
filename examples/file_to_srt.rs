//! A media file to subtitles: `uridecodebin ! audioconvert ! whispersink location=OUTPUT`.
//!
//!     cargo run --release --example file_to_srt -- INPUT OUTPUT.srt [MODEL]
//!
//! OUTPUT's extension chooses the format: `.srt`, `.vtt` (WebVTT) or `.jsonl` (JSON Lines).
//! whispersink writes and flushes each cue as its final comes, so OUTPUT is readable while the
//! file is still being transcribed. MODEL is a name (`tiny.en`, the default), a ggml file or a
//! faster-whisper directory. Prints each final as it comes, then how many there were.

use gst::prelude::*;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, rest @ ..] = args.as_slice() else {
        eprintln!("usage: file_to_srt INPUT OUTPUT.srt|.vtt|.jsonl [MODEL]");
        return ExitCode::from(2);
    };
    match run(Path::new(input), output, rest.first().map(String::as_str)) {
        Ok(finals) => {
            println!("{finals} finals; subtitles in {output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("file_to_srt: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &Path, output: &str, model: Option<&str>) -> Result<usize, String> {
    gst::init().map_err(|e| e.to_string())?;
    // The plugin built with this example; an application using the installed plugin needs
    // only gst::init().
    gstwhisperstt::plugin_register_static().map_err(|e| e.to_string())?;

    let uri = gst::glib::filename_to_uri(
        std::fs::canonicalize(input).map_err(|e| format!("{}: {e}", input.display()))?,
        None,
    )
    .map_err(|e| e.to_string())?;
    let pipeline = gst::parse::launch(&format!(
        "uridecodebin uri=\"{uri}\" ! audioconvert ! audioresample ! whispersink name=stt"
    ))
    .map_err(|e| e.to_string())?
    .downcast::<gst::Pipeline>()
    .expect("a launch line with several elements is a pipeline");
    let stt = pipeline.by_name("stt").expect("named in the launch line");
    // Properties are checked when set: a bad value is an error here, not later.
    stt.set_property_from_str("location", output);
    if let Some(model) = model {
        stt.set_property_from_str("model", model);
    }

    // A failed start posts its reason on the bus, which wait() reports.
    let _ = pipeline.set_state(gst::State::Playing);
    let result = wait(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Prints finals until EOS; returns how many there were, or the first error.
fn wait(pipeline: &gst::Pipeline) -> Result<usize, String> {
    let bus = pipeline.bus().expect("pipelines have a bus");
    let mut finals = 0;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(finals),
            gst::MessageView::Error(e) => return Err(describe(e)),
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { continue };
                if s.name() == "whisperstt-transcript" && s.get::<bool>("is-final") == Ok(true) {
                    let start = s.get::<u64>("start").unwrap_or(0);
                    let end = s.get::<u64>("end").unwrap_or(0);
                    let text = s.get::<&str>("text").unwrap_or_default();
                    println!("{} --> {}  {text}", clock(start), clock(end));
                    finals += 1;
                }
            }
            _ => {}
        }
    }
    Err("the bus closed before the end of the stream".into())
}

fn describe(e: &gst::message::Error) -> String {
    let from = e
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_default();
    match e.debug() {
        Some(debug) => format!("{from}: {}\n({debug})", e.error()),
        None => format!("{from}: {}", e.error()),
    }
}

fn clock(ns: u64) -> String {
    gst::ClockTime::from_nseconds(ns).display().to_string()
}
