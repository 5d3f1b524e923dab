#!/usr/bin/env bash
# Captions burned into video: whispertranscribe's timed text into textoverlay's text pad, with
# nothing but gst-launch-1.0 and the plugins of gst-plugins-base and -good.
#
#   examples/captions_video.sh VIDEO OUT.webm
#       VIDEO (any file with picture and speech that decodebin plays) re-encoded to WebM
#       (VP8 + Opus) with its speech drawn on the picture.
#   examples/captions_video.sh --demo SPEECH OUT.webm [SECONDS]
#       Colour bars SECONDS long (default 10) with the sound of SPEECH (any audio file) and its
#       captions.
#   examples/captions_video.sh --screenshot SPEECH AT OUT.png
#       One 640x360 frame of that demo, AT seconds in (decimals allowed), as PNG: the caption
#       shown at that moment, or none. docs/captions.png is made this way.
#
# MODEL=... sets whispertranscribe's model (default tiny.en). The captions are printed as they
# are made (scripts/print-transcripts.py reads gst-launch-1.0 -m's bus messages).
#
# How it fits together: each caption is one Whisper segment, a text buffer timed from its start
# to its end. textoverlay holds every video frame until it has the text for that frame's time,
# and a file's text comes only when its utterance is over (a 2 s pause, or the end). So the
# sound for whispertranscribe is read by a second decoder of its own: it runs ahead of the
# picture on its own, and the video needs no queue long enough to hold an utterance.
set -euo pipefail

here=$(dirname "$0")
usage() { sed -n '4,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Where the caption goes and how it looks; auto-resize (on by default) scales the font with
# the picture's width, so "Sans Bold 15" is the size at 640 pixels.
# (Pipeline fragments are arrays: one word per gst-launch-1.0 argument, spaces kept.)
overlay=(textoverlay name=overlay "font-desc=Sans Bold 15" valignment=bottom halignment=center
         line-alignment=center wrap-mode=word shaded-background=true)
transcriber=(whispertranscribe "model=${MODEL:-tiny.en}")
# The demo's picture: colour bars, 640x360 at 25 frames a second (smpte75 has no moving
# parts: every frame is the same picture, only the caption changes).
bars=(videotestsrc pattern=smpte75)
bars_caps=video/x-raw,width=640,height=360,framerate=25/1

# gst-launch-1.0 -m prints every bus message; print-transcripts.py keeps the transcripts (and
# passes errors on, failing with them).
run() { gst-launch-1.0 -m "$@" 2>&1 | python3 "$here/../scripts/print-transcripts.py"; }

case "${1:-}" in
--demo)
  [ $# -ge 3 ] || usage
  speech=$2 out=$3 seconds=${4:-10}
  # Bars + overlay -> VP8; the speech twice: once for the sound track, once for the captions.
  # videotestsrc never ends by itself: num-buffers makes it SECONDS long.
  run "${bars[@]}" num-buffers=$((seconds * 25)) ! "$bars_caps" ! \
        "${overlay[@]}" ! videoconvert ! vp8enc deadline=1 ! webmmux name=mux ! \
        filesink location="$out" \
      filesrc location="$speech" ! decodebin ! audioconvert ! audioresample ! opusenc ! mux. \
      filesrc location="$speech" ! decodebin ! audioconvert ! audioresample ! \
        "${transcriber[@]}" ! overlay.text_sink
  ;;
--screenshot)
  [ $# -eq 4 ] || usage
  speech=$2 at=$3 out=$4
  at_ns=$(awk -v s="$at" 'BEGIN { printf "%.0f", s * 1e9 }')
  # A single frame timestamped AT: textoverlay waits for the caption of that moment (dropping
  # the ones that ended before it), draws it, and pngenc writes the frame.
  run "${bars[@]}" num-buffers=1 timestamp-offset="$at_ns" ! "$bars_caps" ! \
        "${overlay[@]}" ! videoconvert ! pngenc snapshot=true ! filesink location="$out" \
      filesrc location="$speech" ! decodebin ! audioconvert ! audioresample ! \
        "${transcriber[@]}" ! overlay.text_sink
  ;;
-* | "") usage ;;
*)
  [ $# -eq 2 ] || usage
  video=$1 out=$2
  [ -f "$video" ] || { echo "captions_video.sh: $video: no such file" >&2; exit 1; }
  # The first decoder: picture (through the overlay) and sound, re-encoded and muxed. The
  # second: the sound for the captions (its pads other than audio stay unlinked: decodebin
  # drops what goes there).
  # -e: on Ctrl-C the file is still finished properly.
  run -e filesrc location="$video" ! decodebin name=av \
      av. ! queue ! videoconvert ! "${overlay[@]}" ! videoconvert ! vp8enc deadline=1 ! \
        webmmux name=mux ! filesink location="$out" \
      av. ! queue ! audioconvert ! audioresample ! opusenc ! mux. \
      filesrc location="$video" ! decodebin caps=audio/x-raw ! audioconvert ! audioresample ! \
        "${transcriber[@]}" ! overlay.text_sink
  ;;
esac
