//! The reliability suite's summary: each soak, stress, fault and bad-input test records what it
//! tried and what came of it as a JSON line in `target/reliability/summary.jsonl`;
//! `scripts/reliability_summary.py` (run by scripts/test.sh after the tests) prints the totals.

use std::io::Write;
use std::path::PathBuf;

fn summary_file() -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/reliability");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("summary.jsonl")
}

/// What one reliability check did. `category` is one of "load", "fault", "bad-input", "fuzz".
pub struct Outcome<'a> {
    pub category: &'a str,
    pub name: &'a str,
    /// Inputs, cycles or faults tried.
    pub tried: u64,
    /// Finals expected and finals that never came (must be 0).
    pub transcripts_expected: u64,
    pub transcripts_lost: u64,
    /// Free-form figures worth showing (RSS slope, loads, ...).
    pub figures: serde_json::Value,
}

/// Appends `outcome` to the summary. Called only once a check has passed its assertions, so a
/// failed test leaves no line and the summary's "passed" count tells.
pub fn record(outcome: Outcome) {
    let line = serde_json::json!({
        "category": outcome.category,
        "name": outcome.name,
        "tried": outcome.tried,
        "transcripts_expected": outcome.transcripts_expected,
        "transcripts_lost": outcome.transcripts_lost,
        "figures": outcome.figures,
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(summary_file())
        .unwrap();
    writeln!(f, "{line}").unwrap();
}
