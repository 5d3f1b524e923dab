#!/usr/bin/env python3
"""faster-whisper's side of scripts/bench.sh: transcribes each file of a JSON list with the
same tiny.en weights (the CTranslate2 directory whisperstt imports from), greedy, and prints
one JSON line: load and transcription seconds, peak RSS, texts. After the file list, `vad`
turns on faster-whisper's own Silero voice filter (vad_filter=True), `auto` detects the
language (else English) and adds the languages found to the output, and `multilingual`
detects it on every 30 s window (faster-whisper's multilingual=True)."""
import json
import resource
import sys
import time

from faster_whisper import WhisperModel

model_dir, compute_type, threads, files_json = sys.argv[1:5]
flags = sys.argv[5:]
vad_filter = "vad" in flags
language = None if "auto" in flags or "multilingual" in flags else "en"
multilingual = "multilingual" in flags
files = json.load(open(files_json))

started = time.monotonic()
model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=int(threads))
load = time.monotonic() - started

started = time.monotonic()
texts = []
languages = []
for path in files:
    segments, info = model.transcribe(
        path, beam_size=1, language=language, vad_filter=vad_filter, multilingual=multilingual
    )
    texts.append(" ".join(s.text.strip() for s in segments))
    languages.append(info.language)
seconds = time.monotonic() - started

print(json.dumps({
    "load": load,
    "seconds": seconds,
    "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "texts": texts,
    "languages": languages,
}))
