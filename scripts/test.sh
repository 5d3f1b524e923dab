#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the whole test suite against the real
# engine and the real tiny.en model, checks the installed plugin as users see it, and prints
# the reliability summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== gst-inspect-1.0 finds the installed plugin (no GST_PLUGIN_PATH)" >&2
env -u GST_PLUGIN_PATH gst-inspect-1.0 whisperstt | grep -E '^\s+whisper(sink|transcribe):'
filter=()
if [ ! -f ../shared/corpus/manifest.tsv ]; then
  echo "== ../shared/corpus is missing: leaving out the shared_* tests (JFK word for word, the 32-clip corpus);" >&2
  echo "   the pocketsphinx-testdata recordings stand in for them" >&2
  filter=(--skip shared_)
fi
rm -f target/reliability/summary.jsonl
echo "== cargo test (with the faults the reliability tests arm: --features fault-injection)" >&2
status=0
# cargo test does not leave the examples' binaries where tests/examples.rs runs them from.
cargo build --release --examples --features fault-injection
cargo test --release --all-targets --no-fail-fast --features fault-injection -- "${filter[@]}" || status=$?
# --all-targets leaves out the documentation's examples (the embedding API in src/lib.rs).
cargo test --release --doc --features fault-injection || status=$?
# Bounded fuzzing of the model-file parsers (about 2 minutes each, plus a 3-minute first build).
scripts/fuzz.sh "${WHISPERSTT_FUZZ_SECONDS:-120}" || status=$?
scripts/reliability_summary.py "$status" || status=$?
exit "$status"
