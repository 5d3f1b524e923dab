#!/bin/sh
# One command, one run: whisperstt against faster-whisper (int8, float32) and plain
# whisper-rs in file mode, then 1..16 live pipelines on one shared model against one model
# per pipeline. Prints markdown tables; writes target/bench/results.json and live.png.
# Needs ../shared/corpus (the speech corpus). `scripts/bench.sh --quick`: shorter live runs;
# `scripts/bench.sh files [SYSTEM...]`: the file-mode table only; `scripts/bench.sh load
# [--quick]`: file mode and 1, 4, 8 live streams beside competing load (busy loops, a video
# encode, one core); `scripts/bench.sh noise [--quick]`: speech in noise, quiet and
# reverberant, and noise alone, with and without each system's voice detector;
# `scripts/bench.sh languages`: the multilingual corpus on Whisper base (language=auto);
# `scripts/bench.sh detector`: the built-in voice detector's own CPU cost;
# `scripts/bench.sh voice`: examples/voice_server with 1, 4, 8 and 10 Chromium pages at once
# (pocketsphinx-testdata speech; it does not need ../shared);
# `scripts/bench.sh live-accuracy`: live finals against file mode, recording by recording
# (pocketsphinx-testdata, and with ../shared the corpus and the long reading); with
# --engine-only, without the real-time runs through whispersink; with --realtime N, only the
# real-time runs of N streams (1 or 8).
# WHISPERSTT_BENCH_PROPS adds whisperstt element properties (to try settings side by side).
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
case "${1:-}" in
voice)
    cargo build --release --example bench --example voice_server >&2
    exec target/release/examples/bench voice ;;
live-accuracy)
    cargo build --release --example bench >&2
    shift
    exec target/release/examples/bench live-accuracy "$@" ;;
esac
if [ ! -f ../shared/corpus/manifest.tsv ]; then
    echo "bench: ../shared/corpus is missing (the benchmark's speech corpus)" >&2
    exit 1
fi
VENV="$HOME/.cache/whisperstt/bench-venv"
if ! "$VENV/bin/python" -c "import faster_whisper, matplotlib" 2>/dev/null; then
    python3 -m venv "$VENV" 2>/dev/null || {
        sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
        $sudo_cmd apt-get install -y python3-venv >&2
        python3 -m venv "$VENV"
    }
    "$VENV/bin/pip" install -q faster-whisper matplotlib >&2
fi
cargo build --release --example bench >&2
WHISPERSTT_BENCH_PYTHON="$VENV/bin/python" exec target/release/examples/bench "$@"
