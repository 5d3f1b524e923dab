//! gst-plugins-rs's caption and text elements (built from crates.io) registered in this process,
//! and whisperstt loaded from the plugin file the main crate built, so the tests can run
//! whisperstt inside them as a user of both would.

use gst::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whisperstt plugin file under test: `$WHISPERSTT_PLUGIN`, else the main crate's release
/// build (scripts/test.sh builds it first).
pub fn whisperstt_plugin_file() -> PathBuf {
    std::env::var_os("WHISPERSTT_PLUGIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/libgstwhisperstt.so")
        })
}

/// Registers closedcaption (transcriberbin, tttocea608, tttocea708, cea608tott, ...),
/// textaccumulate and textwrap, and loads whisperstt from its file. Once per process.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstrsclosedcaption::plugin_register_static().unwrap();
        gsttextaccumulate::plugin_register_static().unwrap();
        gsttextwrap::plugin_register_static().unwrap();
        let file = whisperstt_plugin_file();
        let plugin = gst::Plugin::load_file(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (build it first: cargo build --release)",
                file.display()
            )
        });
        let factory = gst::ElementFactory::find("whispertranscribe").unwrap();
        assert_eq!(
            factory.plugin().and_then(|p| p.filename()),
            plugin.filename(),
            "whispertranscribe must come from the file under test"
        );
    });
}

/// transcriberbin 0.15 builds `awstranscriber` when it is constructed and cannot start without
/// it (it has nothing to link); the `transcriber` property only replaces it later. With no AWS
/// plugin, whispertranscribe is registered under that name in this process (rank NONE), so the
/// bin's default transcriber is whisperstt (docs/transcriberbin.md).
pub fn whisperstt_as_default_transcriber() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    init();
    ONCE.call_once(|| {
        if gst::ElementFactory::find("awstranscriber").is_some() {
            return;
        }
        let whisper = gst::ElementFactory::find("whispertranscribe")
            .unwrap()
            .load()
            .unwrap();
        gst::Element::register(
            None,
            "awstranscriber",
            gst::Rank::NONE,
            whisper.element_type(),
        )
        .unwrap();
    });
}

const TESTDATA: &str = "/usr/share/pocketsphinx/test/data/librivox";

/// The five LibriVox recordings of pocketsphinx-testdata, read one after another with a second's
/// pause between: 16 kHz mono samples, the reference text, and where each recording lies.
pub struct Speech {
    pub samples: Vec<i16>,
    pub texts: Vec<String>,
    pub clips: Vec<(Duration, Duration)>,
}

pub fn librivox_speech() -> Speech {
    let transcription = std::fs::read_to_string(format!("{TESTDATA}/transcription"))
        .unwrap_or_else(|e| panic!("{TESTDATA}: {e}: install pocketsphinx-testdata"));
    let pause = vec![0i16; 16_000];
    let (mut samples, mut texts, mut clips) = (pause.clone(), Vec::new(), Vec::new());
    let at = |samples: &Vec<i16>| Duration::from_secs_f64(samples.len() as f64 / 16_000.0);
    for line in transcription.lines() {
        let (words, id) = line.rsplit_once('(').unwrap();
        let file = format!("{TESTDATA}/{}.wav", id.trim_end_matches(')'));
        let start = at(&samples);
        samples.extend(read_wav_s16(file.as_ref()));
        clips.push((start, at(&samples)));
        samples.extend_from_slice(&pause);
        texts.push(
            words
                .replace("<s>", "")
                .replace("</s>", "")
                .trim()
                .to_string(),
        );
    }
    Speech {
        samples,
        texts,
        clips,
    }
}

impl Speech {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / 16_000.0)
    }

    /// The first `n` recordings only.
    pub fn first(&self, n: usize) -> Speech {
        let end = self.clips[n - 1].1 + Duration::from_secs(1);
        Speech {
            samples: self.samples[..(end.as_secs_f64() * 16_000.0) as usize].to_vec(),
            texts: self.texts[..n].to_vec(),
            clips: self.clips[..n].to_vec(),
        }
    }

    pub fn text(&self) -> String {
        self.texts.join(" ")
    }
}

/// Reads a 16-bit PCM WAV file's samples (the pocketsphinx-testdata recordings are 16 kHz mono).
pub fn read_wav_s16(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if &bytes[at..at + 4] == b"data" {
            let end = (at + 8 + size).min(bytes.len());
            return bytes[at + 8..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
        }
        at += 8 + size + (size & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// Lower-case words for word error rate: punctuation and hyphens split words, as the main
/// crate's tests normalise (tests/common/mod.rs), titles spelled out.
pub fn words(text: &str) -> Vec<String> {
    let cleaned: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    cleaned
        .split_whitespace()
        .map(|w| match w.trim_matches('\'') {
            "mr" => "mister".to_string(),
            "mrs" => "missus".to_string(),
            w => w.to_string(),
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate of `hypothesis` against `reference` (Levenshtein over words).
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(rw != hw)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}

// gst-plugin-closedcaption 0.15 links two GStreamer 1.24 functions, both for its ST-2038
// elements, which transcriberbin does not use; bookworm's 1.22 lacks them, so the test binaries
// would not link. The meta API type is registered here as 1.24 registers it; adding the meta is
// refused loudly, so an ST-2038 element that runs anyway stops the test rather than misbehave.

/// `gst_ancillary_meta_api_get_type` (GStreamer 1.24), registered as 1.24 does.
#[no_mangle]
pub extern "C" fn gst_ancillary_meta_api_get_type() -> gst::glib::ffi::GType {
    static TYPE: std::sync::OnceLock<gst::glib::ffi::GType> = std::sync::OnceLock::new();
    *TYPE.get_or_init(|| {
        let tags = [std::ptr::null::<std::ffi::c_char>()];
        // SAFETY: a static name and a NULL-terminated (empty) tag list, as GStreamer expects.
        unsafe {
            gst::ffi::gst_meta_api_type_register(
                c"GstAncillaryMetaAPI".as_ptr(),
                tags.as_ptr() as *mut _,
            )
        }
    })
}

/// `gst_buffer_add_ancillary_meta` (GStreamer 1.24): not available on 1.22.
#[no_mangle]
pub extern "C" fn gst_buffer_add_ancillary_meta(
    _buffer: *mut gst::ffi::GstBuffer,
) -> *mut std::ffi::c_void {
    eprintln!("gst_buffer_add_ancillary_meta needs GStreamer 1.24: an ST-2038 element ran");
    std::process::abort()
}
