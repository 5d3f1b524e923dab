//! Subtitle files written while transcripts arrive: SRT, WebVTT or JSON Lines.
//!
//! Every cue is formatted in full, written and flushed at once, so a crash loses at most the
//! cue being written and whatever is on disk stays a readable file. Times are kept in whole
//! milliseconds (what the formats can express) and never go backwards.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Map, Value};

mod layout;
pub use layout::{lay_out, spread_words, CueLimits, LaidCue, TimedWord};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubtitleFormat {
    Srt,
    WebVtt,
    JsonLines,
}

impl SubtitleFormat {
    /// From a file name's extension: `.srt`, `.vtt`, `.jsonl` or `.json` (any case).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "srt" => Some(Self::Srt),
            "vtt" => Some(Self::WebVtt),
            "jsonl" | "json" => Some(Self::JsonLines),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Srt => "srt",
            Self::WebVtt => "webvtt",
            Self::JsonLines => "jsonl",
        }
    }
}

/// A subtitle format name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown subtitle format {0:?} (expected srt, webvtt or jsonl)")]
pub struct UnknownSubtitleFormat(pub String);

impl FromStr for SubtitleFormat {
    type Err = UnknownSubtitleFormat;

    /// Accepts the `name()`s and the file extensions, in any case.
    fn from_str(s: &str) -> Result<Self, UnknownSubtitleFormat> {
        match s.to_ascii_lowercase().as_str() {
            "srt" => Ok(Self::Srt),
            "webvtt" | "vtt" => Ok(Self::WebVtt),
            "jsonl" | "json" => Ok(Self::JsonLines),
            _ => Err(UnknownSubtitleFormat(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Cue<'a> {
    pub start: Duration,
    pub end: Duration,
    pub text: &'a str,
    /// Extra fields for JSON Lines (used only if it is an object); ignored by SRT and WebVTT.
    pub json: Option<&'a Value>,
}

impl<'a> Cue<'a> {
    pub fn new(start: Duration, end: Duration, text: &'a str) -> Self {
        Cue {
            start,
            end,
            text,
            json: None,
        }
    }
}

#[derive(Debug)]
pub struct SubtitleWriter<W: Write> {
    out: BufWriter<W>,
    format: SubtitleFormat,
    cues: usize,
    /// End of the last cue written, in ms: later cues may not start before it.
    last_end: u64,
}

impl SubtitleWriter<File> {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path, format: SubtitleFormat) -> io::Result<Self> {
        Self::new(File::create(path)?, format)
    }
}

impl<W: Write> SubtitleWriter<W> {
    /// Writes the WebVTT header at once, so even a file without cues is valid.
    pub fn new(out: W, format: SubtitleFormat) -> io::Result<Self> {
        let mut out = BufWriter::new(out);
        if format == SubtitleFormat::WebVtt {
            out.write_all(b"WEBVTT\n\n")?;
            out.flush()?;
        }
        Ok(SubtitleWriter {
            out,
            format,
            cues: 0,
            last_end: 0,
        })
    }

    pub fn format(&self) -> SubtitleFormat {
        self.format
    }

    /// Writes one cue and flushes it. Blank text writes nothing; a cue starting before the
    /// previous one's end is moved to start there, and its end is never before its start.
    pub fn write(&mut self, cue: &Cue) -> io::Result<()> {
        let text = cue.text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let start = millis(cue.start).max(self.last_end);
        let end = millis(cue.end).max(start);
        let record = match self.format {
            SubtitleFormat::Srt => format!(
                "{}\n{} --> {}\n{}\n\n",
                self.cues + 1,
                timestamp(start, ','),
                timestamp(end, ','),
                srt_text(text)
            ),
            SubtitleFormat::WebVtt => format!(
                "{} --> {}\n{}\n\n",
                timestamp(start, '.'),
                timestamp(end, '.'),
                vtt_text(text)
            ),
            SubtitleFormat::JsonLines => {
                let mut object = match cue.json {
                    Some(Value::Object(extra)) => extra.clone(),
                    _ => Map::new(),
                };
                // Inserted last so the writer's own keys win over the extra fields.
                object.insert("start".into(), seconds(start).into());
                object.insert("end".into(), seconds(end).into());
                object.insert("text".into(), text.into());
                let mut line = Value::Object(object).to_string();
                line.push('\n');
                line
            }
        };
        self.out.write_all(record.as_bytes())?;
        self.out.flush()?;
        self.cues += 1;
        self.last_end = end;
        Ok(())
    }

    pub fn cues_written(&self) -> usize {
        self.cues
    }

    /// The underlying writer. Every cue was flushed by `write`, so nothing is lost unless a
    /// write failed (then its unflushed bytes are dropped rather than retried).
    pub fn into_inner(self) -> W {
        self.out.into_parts().0
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// `HH:MM:SS<sep>mmm`; the hours keep growing past 99 rather than wrap.
fn timestamp(ms: u64, sep: char) -> String {
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    format!("{h:02}:{m:02}:{s:02}{sep}{:03}", ms % 1000)
}

/// A cue's text: its lines (`\n` between them, from `lay_out`) with their spaces collapsed and
/// no blank line, which would end the cue early.
fn one_line(text: &str) -> String {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// SRT has no escapes; "-->" is shortened so lenient readers that look for the arrow to find
/// timing lines cannot take text for one (repeatedly: "--->" would become "-->" again).
fn srt_text(text: &str) -> String {
    let mut line = one_line(text);
    while line.contains("-->") {
        line = line.replace("-->", "->");
    }
    line
}

/// WebVTT markup characters escaped; escaping `>` also rules out "-->" with no loss of text.
fn vtt_text(text: &str) -> String {
    one_line(text).chars().fold(String::new(), |mut out, c| {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
        out
    })
}

/// Strict readers for the files the writer produces, for tests. Each returns the cues as
/// `(start, end, text)`, multi-line texts joined with `\n`; a cue without text is an error.
pub mod parse {
    use super::*;

    pub type Cues = Vec<(Duration, Duration, String)>;

    type Lines<'a> = std::iter::Peekable<std::iter::Enumerate<std::str::Lines<'a>>>;

    pub fn srt(s: &str) -> Result<Cues, String> {
        let mut lines = s
            .strip_prefix('\u{feff}')
            .unwrap_or(s)
            .lines()
            .enumerate()
            .peekable();
        let mut cues = Cues::new();
        loop {
            skip_blank(&mut lines);
            let Some((n, number)) = lines.next() else {
                return Ok(cues);
            };
            let expected = cues.len() + 1;
            if number.trim() != expected.to_string() {
                return Err(format!(
                    "line {}: expected cue number {expected}, got {number:?}",
                    n + 1
                ));
            }
            let (n, line) = lines
                .next()
                .ok_or(format!("cue {expected}: no timing line"))?;
            let (start, end) =
                timing(line, ',', false).map_err(|e| format!("line {}: {e}", n + 1))?;
            cues.push((start, end, text(&mut lines, n)?));
        }
    }

    pub fn webvtt(s: &str) -> Result<Cues, String> {
        let mut lines = s
            .strip_prefix('\u{feff}')
            .unwrap_or(s)
            .lines()
            .enumerate()
            .peekable();
        match lines.next() {
            Some((_, l))
                if l == "WEBVTT" || l.starts_with("WEBVTT ") || l.starts_with("WEBVTT\t") => {}
            _ => return Err("missing WEBVTT header".into()),
        }
        // The header block runs to the first blank line.
        while lines.next_if(|(_, l)| !l.trim().is_empty()).is_some() {}
        let mut cues = Cues::new();
        loop {
            skip_blank(&mut lines);
            let Some((n, first)) = lines.next() else {
                return Ok(cues);
            };
            let (n, line) = if first.contains("-->") {
                (n, first)
            } else if matches!(
                first.split_whitespace().next(),
                Some("NOTE" | "STYLE" | "REGION")
            ) {
                while lines.next_if(|(_, l)| !l.trim().is_empty()).is_some() {}
                continue;
            } else {
                // `first` was the cue identifier.
                lines
                    .next()
                    .ok_or(format!("line {}: cue without timing line", n + 1))?
            };
            let (start, end) =
                timing(line, '.', true).map_err(|e| format!("line {}: {e}", n + 1))?;
            let text = text(&mut lines, n)?
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            cues.push((start, end, text));
        }
    }

    pub fn json_lines(s: &str) -> Result<Cues, String> {
        s.lines()
            .enumerate()
            .map(|(n, line)| {
                let at = |e: &dyn std::fmt::Display| format!("line {}: {e}", n + 1);
                let value: Value = serde_json::from_str(line).map_err(|e| at(&e))?;
                let time = |key: &str| {
                    value
                        .get(key)
                        .and_then(Value::as_f64)
                        .filter(|t| t.is_finite() && *t >= 0.0)
                        .map(|t| Duration::from_millis((t * 1000.0).round() as u64))
                        .ok_or_else(|| at(&format!("missing or invalid {key:?}")))
                };
                let (start, end) = (time("start")?, time("end")?);
                if end < start {
                    return Err(at(&"end before start"));
                }
                let text = value.get("text").and_then(Value::as_str);
                match text.filter(|t| !t.trim().is_empty()) {
                    Some(text) => Ok((start, end, text.to_owned())),
                    None => Err(at(&"missing or empty \"text\"")),
                }
            })
            .collect()
    }

    fn skip_blank(lines: &mut Lines) {
        while lines.next_if(|(_, l)| l.trim().is_empty()).is_some() {}
    }

    /// The text lines up to the next blank line or the end.
    fn text(lines: &mut Lines, timing_line: usize) -> Result<String, String> {
        let mut text = String::new();
        while let Some((_, line)) = lines.next_if(|(_, l)| !l.trim().is_empty()) {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line);
        }
        if text.is_empty() {
            return Err(format!("line {}: cue without text", timing_line + 1));
        }
        Ok(text)
    }

    /// `start --> end`; WebVTT may omit the hours and put cue settings after the end.
    fn timing(line: &str, sep: char, vtt: bool) -> Result<(Duration, Duration), String> {
        let (start, rest) = line
            .split_once("-->")
            .ok_or(format!("not a timing line: {line:?}"))?;
        let end = if vtt {
            rest.split_whitespace().next().unwrap_or("")
        } else {
            rest.trim()
        };
        let (start, end) = (time(start.trim(), sep, vtt)?, time(end, sep, vtt)?);
        if end < start {
            return Err(format!("end before start: {line:?}"));
        }
        Ok((start, end))
    }

    /// `HH:MM:SS<sep>mmm` with two or more hour digits (optional if `hours_optional`).
    fn time(s: &str, sep: char, hours_optional: bool) -> Result<Duration, String> {
        let bad = || format!("malformed timestamp {s:?}");
        let number = |p: &str, len: usize, exact: bool| -> Result<u64, String> {
            let width_ok = p.len() == len || !exact && p.len() > len;
            if !width_ok || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let (clock, ms) = s.split_once(sep).ok_or_else(bad)?;
        let parts: Vec<&str> = clock.split(':').collect();
        let (h, m, sec) = match parts[..] {
            [h, m, sec] => (number(h, 2, false)?, m, sec),
            [m, sec] if hours_optional => (0, m, sec),
            _ => return Err(bad()),
        };
        let (m, sec, ms) = (
            number(m, 2, true)?,
            number(sec, 2, true)?,
            number(ms, 3, true)?,
        );
        if m >= 60 || sec >= 60 {
            return Err(bad());
        }
        Ok(Duration::from_millis(((h * 60 + m) * 60 + sec) * 1000 + ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Cues that exercise every rule: > 1 h and > 99 h, markup, arrows, newlines, overlaps.
    fn cues() -> Vec<(u64, u64, &'static str)> {
        vec![
            (1500, 3250, "hello world"),
            (3000, 4000, "  overlaps\n\nthe previous  "),
            (3100, 3200, "inside the previous one"),
            (10_000, 12_000, "<b>bold</b> & a --> b ----> c"),
            (3_723_456, 3_725_000, "after an hour"),
            (360_000_000, 360_001_001, "a hundred hours"),
        ]
    }

    /// What the cues look like after the writer's time rules.
    fn expected_times() -> Vec<(Duration, Duration)> {
        vec![
            (ms(1500), ms(3250)),
            (ms(3250), ms(4000)),
            (ms(4000), ms(4000)),
            (ms(10_000), ms(12_000)),
            (ms(3_723_456), ms(3_725_000)),
            (ms(360_000_000), ms(360_001_001)),
        ]
    }

    fn write_all(format: SubtitleFormat) -> String {
        let mut writer = SubtitleWriter::new(Vec::new(), format).unwrap();
        for (start, end, text) in cues() {
            writer.write(&Cue::new(ms(start), ms(end), text)).unwrap();
        }
        assert_eq!(writer.cues_written(), 6);
        String::from_utf8(writer.into_inner()).unwrap()
    }

    fn check(parsed: parse::Cues, texts: &[&str]) {
        let times: Vec<_> = parsed.iter().map(|c| (c.0, c.1)).collect();
        assert_eq!(times, expected_times());
        let parsed: Vec<_> = parsed.iter().map(|c| c.2.as_str()).collect();
        assert_eq!(parsed, texts);
    }

    #[test]
    fn srt_round_trip() {
        let out = write_all(SubtitleFormat::Srt);
        assert!(out.starts_with("1\n00:00:01,500 --> 00:00:03,250\nhello world\n\n2\n"));
        assert!(out.contains("\n5\n01:02:03,456 --> 01:02:05,000\nafter an hour\n\n"));
        assert!(out.contains("\n6\n100:00:00,000 --> 100:00:01,001\n"));
        let texts = [
            "hello world",
            "overlaps\nthe previous",
            "inside the previous one",
            "<b>bold</b> & a -> b -> c",
            "after an hour",
            "a hundred hours",
        ];
        check(parse::srt(&out).unwrap(), &texts);
    }

    #[test]
    fn webvtt_round_trip() {
        let out = write_all(SubtitleFormat::WebVtt);
        assert!(out.starts_with("WEBVTT\n\n00:00:01.500 --> 00:00:03.250\nhello world\n\n"));
        assert!(out.contains("\n&lt;b&gt;bold&lt;/b&gt; &amp; a --&gt; b ----&gt; c\n"));
        assert!(out.contains("\n100:00:00.000 --> 100:00:01.001\n"));
        // The arrow appears only on timing lines: one per cue.
        assert_eq!(out.matches("-->").count(), 6);
        let texts = [
            "hello world",
            "overlaps\nthe previous",
            "inside the previous one",
            "<b>bold</b> & a --> b ----> c",
            "after an hour",
            "a hundred hours",
        ];
        check(parse::webvtt(&out).unwrap(), &texts);
    }

    #[test]
    fn json_lines_round_trip() {
        let out = write_all(SubtitleFormat::JsonLines);
        assert_eq!(out.lines().count(), 6);
        let texts = [
            "hello world",
            "overlaps\n\nthe previous",
            "inside the previous one",
            "<b>bold</b> & a --> b ----> c",
            "after an hour",
            "a hundred hours",
        ];
        check(parse::json_lines(&out).unwrap(), &texts);
    }

    #[test]
    fn json_lines_extra_fields() {
        let extra =
            json!({"language": "en", "start": "ignored", "text": "ignored", "confidence": 0.5});
        let mut writer = SubtitleWriter::new(Vec::new(), SubtitleFormat::JsonLines).unwrap();
        let cue = Cue {
            json: Some(&extra),
            ..Cue::new(ms(250), ms(1000), "hi")
        };
        writer.write(&cue).unwrap();
        let not_object = json!([1, 2]);
        let cue = Cue {
            json: Some(&not_object),
            ..Cue::new(ms(2000), ms(3000), "there")
        };
        writer.write(&cue).unwrap();
        let out = String::from_utf8(writer.into_inner()).unwrap();
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            json!({"start": 0.25, "end": 1.0, "text": "hi", "language": "en", "confidence": 0.5})
        );
        assert_eq!(lines[1], json!({"start": 2.0, "end": 3.0, "text": "there"}));
    }

    #[test]
    fn webvtt_header_without_cues() {
        let writer = SubtitleWriter::new(Vec::new(), SubtitleFormat::WebVtt).unwrap();
        let out = String::from_utf8(writer.into_inner()).unwrap();
        assert_eq!(out, "WEBVTT\n\n");
        assert_eq!(parse::webvtt(&out).unwrap(), vec![]);
        let writer = SubtitleWriter::new(Vec::new(), SubtitleFormat::Srt).unwrap();
        assert!(writer.into_inner().is_empty());
    }

    #[test]
    fn blank_text_writes_nothing() {
        let mut writer = SubtitleWriter::new(Vec::new(), SubtitleFormat::Srt).unwrap();
        writer.write(&Cue::new(ms(0), ms(9000), " \n\t ")).unwrap();
        writer.write(&Cue::new(ms(1000), ms(2000), "")).unwrap();
        assert_eq!(writer.cues_written(), 0);
        // A skipped cue does not push later ones back, and numbering starts at 1.
        writer.write(&Cue::new(ms(1000), ms(2000), "x")).unwrap();
        assert_eq!(writer.cues_written(), 1);
        let out = String::from_utf8(writer.into_inner()).unwrap();
        assert_eq!(out, "1\n00:00:01,000 --> 00:00:02,000\nx\n\n");
    }

    #[test]
    fn every_cue_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for format in [
            SubtitleFormat::Srt,
            SubtitleFormat::WebVtt,
            SubtitleFormat::JsonLines,
        ] {
            let path = dir.path().join(format!("out.{}", format.name()));
            let mut writer = SubtitleWriter::create(&path, format).unwrap();
            for n in 1..=3u64 {
                writer
                    .write(&Cue::new(
                        Duration::from_secs(n),
                        Duration::from_secs(n + 1),
                        "cue",
                    ))
                    .unwrap();
                let on_disk = std::fs::read_to_string(&path).unwrap();
                let parsed = match format {
                    SubtitleFormat::Srt => parse::srt(&on_disk),
                    SubtitleFormat::WebVtt => parse::webvtt(&on_disk),
                    SubtitleFormat::JsonLines => parse::json_lines(&on_disk),
                };
                assert_eq!(parsed.unwrap().len() as u64, n, "{format:?}");
            }
            drop(writer);
        }
    }

    #[test]
    fn format_names() {
        let from_path = |p: &str| SubtitleFormat::from_path(Path::new(p));
        assert_eq!(from_path("a/b.srt"), Some(SubtitleFormat::Srt));
        assert_eq!(from_path("b.VTT"), Some(SubtitleFormat::WebVtt));
        assert_eq!(from_path("b.jsonl"), Some(SubtitleFormat::JsonLines));
        assert_eq!(from_path("b.Json"), Some(SubtitleFormat::JsonLines));
        assert_eq!(from_path("b.txt"), None);
        assert_eq!(from_path("srt"), None);
        for format in [
            SubtitleFormat::Srt,
            SubtitleFormat::WebVtt,
            SubtitleFormat::JsonLines,
        ] {
            assert_eq!(format.name().parse(), Ok(format));
        }
        assert_eq!("VTT".parse(), Ok(SubtitleFormat::WebVtt));
        assert_eq!("json".parse(), Ok(SubtitleFormat::JsonLines));
        assert!("ass".parse::<SubtitleFormat>().is_err());
    }

    #[test]
    fn parsers_are_strict() {
        let srt = |s: &str| parse::srt(s).map(|c| c.len());
        assert_eq!(
            srt("1\n00:00:01,000 --> 00:00:02,000\na\nb\n\n2\n00:00:02,000 --> 00:00:03,000\nc\n"),
            Ok(2)
        );
        assert!(srt("2\n00:00:01,000 --> 00:00:02,000\na\n").is_err()); // numbering
        assert!(srt(
            "1\n00:00:01,000 --> 00:00:02,000\na\n\n3\n00:00:02,000 --> 00:00:03,000\nb\n"
        )
        .is_err());
        assert!(srt("1\n00:00:01.000 --> 00:00:02,000\na\n").is_err()); // WebVTT separator
        assert!(srt("1\n00:60:01,000 --> 01:00:02,000\na\n").is_err()); // minutes
        assert!(srt("1\n00:00:1,000 --> 00:00:02,000\na\n").is_err()); // digits
        assert!(srt("1\n00:00:03,000 --> 00:00:02,000\na\n").is_err()); // end before start
        assert!(srt("1\n00:00:01,000 --> 00:00:02,000\n\n").is_err()); // no text

        let vtt = |s: &str| parse::webvtt(s).map(|c| c.len());
        assert_eq!(
            vtt("WEBVTT - title\n\nNOTE hi\nthere\n\nid\n01:02.500 --> 01:03.000 align:start\na\n"),
            Ok(1)
        );
        assert!(vtt("00:00:01.000 --> 00:00:02.000\na\n").is_err()); // header
        assert!(vtt("WEBVTTX\n\n00:00:01.000 --> 00:00:02.000\na\n").is_err());
        assert!(vtt("WEBVTT\n\n00:00:01,000 --> 00:00:02.000\na\n").is_err());
        assert!(vtt("WEBVTT\n\n00:00:01.00 --> 00:00:02.000\na\n").is_err());

        let jsonl = |s: &str| parse::json_lines(s).map(|c| c.len());
        assert_eq!(jsonl("{\"start\":1,\"end\":2.5,\"text\":\"a\"}\n"), Ok(1));
        assert!(jsonl("{\"end\":2.5,\"text\":\"a\"}\n").is_err());
        assert!(jsonl("{\"start\":-1,\"end\":2.5,\"text\":\"a\"}\n").is_err());
        assert!(jsonl("{\"start\":1,\"end\":2.5,\"text\":\"a\"}\n\n").is_err()); // blank line
        assert!(jsonl("[1,2]\n").is_err());
    }
}
