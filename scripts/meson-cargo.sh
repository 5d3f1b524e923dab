#!/usr/bin/env bash
# Called by meson: builds the crate with cargo and copies the artefacts into meson's build dir.
set -euo pipefail
src=$1 out=$(cd "$2" && pwd)
# From the source tree, so cargo reads its .cargo/config.toml (whisper.cpp build settings).
cd "$src"
cargo build --release --lib --bins
target=${CARGO_TARGET_DIR:-$src/target}
cp "$target/release/libgstwhisperstt.so" "$target/release/whisperstt-model" "$out/"
