//! What a media server does with whisperstt: many pipelines at once in one process, each
//! transcribing its own stream, all on one loaded model.
//!
//!     cargo run --release --example media_server -- [--streams N] [--model M] FILE_OR_URI...
//!
//! Each input (a file or any URI uridecodebin plays: http, rtsp, ...) becomes `--streams`
//! pipelines (default 1) of `uridecodebin ! audioconvert ! audioresample ! whispersink`, all
//! started together. Finals are printed as `[stream K] start - end  text` as they come; at the
//! end, what each pipeline's `whisperstt-model` message said (the first loaded the model, the
//! others joined that load or reused it) and the model cache's own statistics.

use gst::prelude::*;
use gstwhisperstt::model::cache;
use std::process::ExitCode;
use std::sync::Mutex;

fn main() -> ExitCode {
    let mut streams = 1;
    let mut model = None;
    let mut inputs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--streams" => match args.next().and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n > 0 => streams = n,
                _ => return usage("--streams needs a positive number"),
            },
            "--model" => match args.next() {
                Some(m) => model = Some(m),
                None => return usage("--model needs a value"),
            },
            _ => inputs.push(arg),
        }
    }
    if inputs.is_empty() {
        return usage("no input");
    }
    match run(&inputs, streams, model.as_deref()) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("media_server: {failed} streams failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("media_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(what: &str) -> ExitCode {
    eprintln!("media_server: {what}\nusage: media_server [--streams N] [--model M] FILE_OR_URI...");
    ExitCode::from(2)
}

/// One stream's outcome, as its bus told it.
#[derive(Default)]
struct Outcome {
    finals: usize,
    model_action: String,
    load_ms: Option<u64>,
    error: Option<String>,
}

fn run(inputs: &[String], streams: usize, model: Option<&str>) -> Result<usize, String> {
    gst::init().map_err(|e| e.to_string())?;
    // The plugin built with this example; an application using the installed plugin needs
    // only gst::init().
    gstwhisperstt::plugin_register_static().map_err(|e| e.to_string())?;

    let mut pipelines = Vec::new();
    for k in 0..inputs.len() * streams {
        let input = &inputs[k % inputs.len()];
        let uri = if input.contains("://") {
            input.clone()
        } else {
            let path = std::fs::canonicalize(input).map_err(|e| format!("{input}: {e}"))?;
            gst::glib::filename_to_uri(path, None)
                .map_err(|e| e.to_string())?
                .to_string()
        };
        let pipeline = gst::parse::launch(&format!(
            "uridecodebin uri=\"{uri}\" ! audioconvert ! audioresample ! whispersink name=stt"
        ))
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .expect("a launch line with several elements is a pipeline");
        if let Some(model) = model {
            let stt = pipeline.by_name("stt").expect("named in the launch line");
            stt.set_property_from_str("model", model);
        }
        pipelines.push(pipeline);
    }

    // Every pipeline starts at once: the first to need the model loads it, the others wait
    // for that load (never a second one) without blocking their state changes.
    let print = Mutex::new(());
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let watchers: Vec<_> = pipelines
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let _ = p.set_state(gst::State::Playing);
                let print = &print;
                s.spawn(move || watch(k, p, print))
            })
            .collect();
        watchers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for p in &pipelines {
        let _ = p.set_state(gst::State::Null);
    }

    println!("\n{} streams:", outcomes.len());
    for (k, o) in outcomes.iter().enumerate() {
        let load = o
            .load_ms
            .map(|ms| format!(" in {ms} ms"))
            .unwrap_or_default();
        match &o.error {
            None => println!(
                "  stream {k}: {} finals, model {}{load}",
                o.finals, o.model_action
            ),
            Some(e) => println!("  stream {k}: failed: {e}"),
        }
    }
    let stats = cache::global().stats();
    println!(
        "model cache: {} loads, {} failed, {} released; models held now: {}",
        stats.loads,
        stats.failed_loads,
        stats.releases,
        stats.models.len()
    );
    Ok(outcomes.iter().filter(|o| o.error.is_some()).count())
}

/// Follows one pipeline's bus to its end, printing its finals.
fn watch(k: usize, pipeline: &gst::Pipeline, print: &Mutex<()>) -> Outcome {
    let bus = pipeline.bus().expect("pipelines have a bus");
    let mut out = Outcome::default();
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                out.error = Some(e.error().to_string());
                break;
            }
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { continue };
                match s.name().as_str() {
                    "whisperstt-transcript" if s.get::<bool>("is-final") == Ok(true) => {
                        let at =
                            |field| gst::ClockTime::from_nseconds(s.get::<u64>(field).unwrap_or(0));
                        let text = s.get::<&str>("text").unwrap_or_default();
                        let _line = print.lock().unwrap();
                        println!(
                            "[stream {k}] {:.1} - {:.1}  {text}",
                            at("start").display(),
                            at("end").display()
                        );
                        out.finals += 1;
                    }
                    "whisperstt-model" => {
                        let action = s.get::<String>("action").unwrap_or_default();
                        // A pipeline's first model message says how it got the model.
                        if out.model_action.is_empty() && action != "loading" {
                            out.model_action = action;
                            out.load_ms = s.get::<u64>("load-time").ok().map(|ns| ns / 1_000_000);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    out
}
