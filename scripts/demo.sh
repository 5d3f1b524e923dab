#!/usr/bin/env bash
# Sets everything up, then transcribes a recording with gst-launch-1.0 and whispersink,
# printing each transcript message as "[start - end] text".
# Usage: scripts/demo.sh [AUDIO_FILE]   (default: a LibriVox recording from pocketsphinx-testdata)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
FILE=${1:-/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav}
echo "== transcribing $FILE" >&2
gst-launch-1.0 -m filesrc location="$FILE" ! decodebin ! audioconvert ! audioresample ! \
  whispersink model=tiny.en 2>&1 | python3 scripts/print-transcripts.py
