#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then tests against the real engine and the real
# tiny.en model. Two tiers (docs/reliability.md):
#   scripts/test.sh          everything: the whole suite, the installed plugin as users see it,
#                            transcriberbin and the caption elements, the Debian package's round
#                            trip, the doctests, fuzzing, and the reliability summary (what CI runs)
#   scripts/test.sh --quick  the working loop: format, clippy, unit tests and one fast
#                            end-to-end test per element and feature area (QUICK_TESTS)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
case "${1:-}" in
  --quick) quick=true ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac

# The quick tier's end-to-end tests, as test binary and test name: one per element and per
# feature area, each chosen for taking seconds, not minutes.
QUICK_TESTS=(
  "elements whispertranscribe_pushes_timed_text_and_posts_matching_messages" # whispertranscribe
  "elements a_wrong_model_path_is_an_error_naming_it_and_the_process_carries_on" # whispersink
  "elements state_changes_never_wait_for_a_model_load"        # loads never block a state change
  "sharing eight_pipelines_share_one_model_then_release_it"   # the shared cache, idle release
  "cache a_failed_load_reaches_every_waiter_and_is_not_cached"
  "streaming shared_live_partials_precede_finals_and_finals_match_file_mode" # live partial/final
  "streaming silence_and_noise_cost_no_inference"             # the voice detector
  "corpus pocketsphinx_recordings_wer_at_most_0_25"           # file mode, accuracy
  "bad_input out_of_range_property_values_are_refused_by_glib_and_the_old_value_stays"
  "bad_input nan_and_infinite_samples_inside_speech_leave_the_words_and_times"
  "input formats_it_cannot_take_fail_to_link_or_negotiate"
  "subtitles subtitles_parse_back_in_order_with_the_spoken_text"
  "robustness rejections_name_why_and_where"                  # what the detector drops
  "docs the_property_reference_is_generated_from_the_elements"
)

scripts/setup.sh
filter=()
if [ ! -f ../shared/corpus/manifest.tsv ]; then
  echo "== ../shared/corpus is missing: leaving out the shared_* tests (JFK word for word, the 32-clip corpus);" >&2
  echo "   the pocketsphinx-testdata recordings stand in for them" >&2
  filter=(--skip shared_)
fi

if $quick; then
  echo "== quick tier: cargo fmt, clippy, unit tests, ${#QUICK_TESTS[@]} end-to-end tests" >&2
  cargo fmt --check
  cargo clippy --release --all-targets --features fault-injection -- -D warnings
  binaries=() names=()
  for entry in "${QUICK_TESTS[@]}"; do
    read -r binary name <<<"$entry"
    binaries+=(--test "$binary") names+=("$name")
  done
  cargo test --release --features fault-injection --lib
  # One cargo call: each binary runs the named tests it has (libtest's filters are ORed).
  cargo test --release --features fault-injection --no-fail-fast "${binaries[@]}" -- \
    "${names[@]}" --exact "${filter[@]}"
  echo "== quick tier passed; scripts/test.sh runs everything" >&2
  exit 0
fi

echo "== gst-inspect-1.0 finds the installed plugin (no GST_PLUGIN_PATH)" >&2
env -u GST_PLUGIN_PATH gst-inspect-1.0 whisperstt | grep -E '^\s+whisper(sink|transcribe):'
rm -f target/reliability/summary.jsonl
echo "== cargo test (with the faults the reliability tests arm: --features fault-injection)" >&2
status=0
# cargo test does not leave the examples' binaries where tests/examples.rs runs them from.
cargo build --release --examples --features fault-injection
cargo test --release --all-targets --features fault-injection --no-run
# tests/realtime.rs plays 5.8 minutes in real time and spends most of them waiting, so the
# test binaries whose outcome does not depend on time run beside it; those that measure time
# (latencies, delays, real-time pacing) run after it, one binary at a time.
CLOCK_TESTS=(delay faults live load nice scheduling streaming stress voice_server)
realtime_log=target/reliability/realtime.log
mkdir -p target/reliability
cargo test --release --features fault-injection --test realtime -- --nocapture "${filter[@]}" \
  >"$realtime_log" 2>&1 &
realtime=$!
beside=() after=()
for file in tests/*.rs; do
  name=$(basename "$file" .rs)
  if [ "$name" = realtime ]; then continue; fi
  if [[ " ${CLOCK_TESTS[*]} " == *" $name "* ]]; then after+=(--test "$name"); else beside+=(--test "$name"); fi
done
cargo test --release --lib --bins --examples "${beside[@]}" --no-fail-fast --features fault-injection \
  -- "${filter[@]}" || status=$?
wait "$realtime" || status=$?
echo "== tests/realtime.rs (ran beside the others; its output: $realtime_log)" >&2
grep -E '^(live:|test |test result)' "$realtime_log" >&2 || true
cargo test --release "${after[@]}" --no-fail-fast --features fault-injection -- "${filter[@]}" || status=$?
# whisperstt inside gst-plugins-rs's transcriberbin and caption elements, built from crates.io
# in a crate of their own (docs/transcriberbin.md); it measures caption delays, so it runs last.
echo "== tests/caption-chain: transcriberbin, tttocea608/708, cea608tott" >&2
(cd tests/caption-chain &&
  CARGO_TARGET_DIR=../../target/caption-chain cargo fmt --check &&
  CARGO_TARGET_DIR=../../target/caption-chain cargo clippy --release --all-targets -- -D warnings &&
  CARGO_TARGET_DIR=../../target/caption-chain cargo test --release -- --nocapture --test-threads=1) \
  || status=$?
# The Debian package: built with dpkg-buildpackage, installed, used, purged (docs/building.md).
scripts/deb.sh --round-trip || status=$?
# --all-targets leaves out the documentation's examples (the embedding API in src/lib.rs).
cargo test --release --doc --features fault-injection || status=$?
# Bounded fuzzing of the model-file parsers (a minute each, going on from the corpus earlier
# runs grew, plus a 3-minute first build).
scripts/fuzz.sh "${WHISPERSTT_FUZZ_SECONDS:-60}" || status=$?
scripts/reliability_summary.py "$status" || status=$?
exit "$status"
