#!/usr/bin/env bash
# Called by meson: builds the crate with cargo and copies the artefacts into meson's build dir.
set -euo pipefail
src=$1 out=$2
cargo build --release --manifest-path "$src/Cargo.toml" --lib --bins
target=${CARGO_TARGET_DIR:-$src/target}
cp "$target/release/libgstwhisperstt.so" "$target/release/whisperstt-model" "$out/"
