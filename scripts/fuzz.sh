#!/usr/bin/env bash
# Fuzzes the model-file parsers with cargo-fuzz (libFuzzer and AddressSanitizer): the ggml
# checks (Whisper and Silero VAD files) and the CTranslate2 model.bin parser. Each target runs for
# a bounded time from the committed seed corpus (fuzz/corpus/) plus what every earlier run on
# this machine found (~/.cache/whisperstt/fuzz-corpus/, from any clone: each run goes on where
# the last one stopped); a crash, a hang over 10 s, or an allocation over 64 MB fails the run and
# leaves the input in fuzz/artifacts/. Each finished target adds a line to the reliability
# summary (target/reliability/summary.jsonl).
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET ...]
# Reproduce a failure: RUSTC_BOOTSTRAP=1 cargo fuzz run -O TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ggml_header ct2_model)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); the stable toolchain accepts them
# with RUSTC_BOOTSTRAP, so CI needs no second toolchain.
export RUSTC_BOOTSTRAP=1
# The fuzz build and the corpus the runs grow are kept per user outside the clone (the build
# includes whisper.cpp with AddressSanitizer): a later run, from any clone, rebuilds only what
# changed and starts from everything found before.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/whisperstt"
fuzz_target="$cache/fuzz-target"
echo "== cargo fuzz build (first build: about 3 minutes, whisper.cpp included; then cached in $fuzz_target)" >&2
cargo fuzz build -O --target-dir "$fuzz_target"

mkdir -p target/reliability
status=0
for target in "${targets[@]}"; do
  scratch=$cache/fuzz-corpus/$target
  log=fuzz/artifacts/$target.log
  mkdir -p "$scratch" "fuzz/artifacts/$target"
  echo "== fuzzing $target for ${seconds} s" >&2
  # New inputs go to the first corpus directory, so the committed seeds stay as they are.
  if cargo fuzz run -O --target-dir "$fuzz_target" "$target" "$scratch" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=64 \
      -print_final_stats=1 2>"$log"; then
    python3 - "$target" "$seconds" "$log" "$scratch" <<'EOF'
import json, os, re, sys
target, seconds, log, scratch = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
text = open(log, errors="replace").read()
stat = lambda name: int(re.search(rf"stat::{name}:\s+(\d+)", text).group(1))
coverage = [int(c) for c in re.findall(r"cov: (\d+)", text)]
seeds = len(os.listdir(f"fuzz/corpus/{target}"))
row = {"category": "fuzz", "name": f"{target} (cargo-fuzz, {seconds} s)",
       "tried": stat("number_of_executed_units"), "transcripts_expected": 0, "transcripts_lost": 0,
       "figures": {"coverage_edges": max(coverage, default=0), "seeds": seeds,
                   "corpus": len(os.listdir(scratch)) + seeds, "peak_rss_mb": stat("peak_rss_mb")}}
with open("target/reliability/summary.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
print(f"   {row['tried']} inputs, {row['figures']['coverage_edges']} edges covered, no failure", file=sys.stderr)
EOF
  else
    status=1
    echo "!! $target failed; the input that did it is in fuzz/artifacts/$target/:" >&2
    tail -n 40 "$log" >&2
  fi
done
exit "$status"
