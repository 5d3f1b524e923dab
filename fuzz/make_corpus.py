#!/usr/bin/env python3
"""Writes the committed seed corpus (fuzz/corpus/<target>/) from the real model files.

Seeds are small, so each fuzzing run starts deep in the formats: real headers, a real section
layout, and complete small files each parser accepts. Run it again only when a format changes:
    python3 fuzz/make_corpus.py WHISPER_GGML SILERO_GGML FASTER_WHISPER_MODEL_BIN
(for instance ~/.local/share/whisperstt/models/ggml-tiny.en.bin,
../shared/models/ggml-silero-v6.2.0.bin and
~/.local/share/whisperstt/models/faster-whisper-tiny.en/model.bin).
"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = 4096


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def whisper_seeds(model):
    """A Whisper ggml file's start, and its sections up to the first tensors' records (whose
    data a seed cannot hold: the smallest tensor of the smallest model is 30 KB)."""
    write("ggml_header", "whisper-head", model[:PREFIX])
    n_mels, n_fft = struct.unpack_from("<2i", model, 48)
    o = 56 + n_mels * n_fft * 4
    n_tokens = struct.unpack_from("<i", model, o)[0]
    vocab, t = [], o + 4
    for _ in range(n_tokens):
        n = struct.unpack_from("<i", model, t)[0]
        vocab.append(model[t : t + 4 + n])
        t += 4 + n
    # Three tokens instead of 50 000: the count is checked against the header, not the file.
    sections = model[:o] + struct.pack("<i", 3) + b"".join(vocab[:3])
    # The first tensor record, its data cut short.
    n_dims, name_len = struct.unpack_from("<2i", model, t)
    record = 12 + 4 * n_dims + name_len
    write("ggml_header", "whisper-sections", sections + model[t : t + record + 64])


def silero_seeds(model):
    """The Silero file's start, and a complete file with its real header and two tiny
    tensors (which the check accepts: it verifies layout, not the network)."""
    write("ggml_header", "silero-head", model[:PREFIX])
    type_len = struct.unpack_from("<i", model, 4)[0]
    o = 8 + type_len + 20
    layers = struct.unpack_from("<i", model, o)[0]
    o += 4 + 4 * (layers * 3 + 4)
    tensors = b""
    for name, type_id, dims in ((b"bias", 0, (3,)), (b"weight", 1, (2, 2))):
        tensors += struct.pack("<3i", len(dims), len(name), type_id)
        tensors += struct.pack("<%di" % len(dims), *dims) + name
        count = 1
        for d in dims:
            count *= d
        tensors += bytes(count * (4 if type_id == 0 else 2))
    write("ggml_header", "silero-small", model[:o] + tensors)


def ct2_string(s):
    b = s.encode() + b"\0"
    return struct.pack("<H", len(b)) + b


def ct2_seeds(model):
    """A faster-whisper model.bin's start, and a complete small model.bin with a variable of
    every data type, an int8 weight with its scales, and an alias."""
    write("ct2_model", "tiny-en-head", model[:PREFIX])
    variables = [
        ("decoder/scale_embeddings", [], 0, struct.pack("<f", 1.0)),
        ("encoder/conv1/bias", [4], 4, bytes(8)),
        ("encoder/layer_0/ffn/linear_0/weight", [2, 3], 1, bytes([1, 2, 3, 255, 254, 253])),
        ("encoder/layer_0/ffn/linear_0/weight_scale", [2], 0, struct.pack("<2f", 127.0, 63.5)),
        ("encoder/layer_0/ffn/linear_1/weight", [2, 2], 5, bytes(8)),
        ("encoder/num_heads", [], 3, struct.pack("<i", 6)),
        ("encoder/position_encodings", [1, 2], 2, bytes(4)),
    ]
    out = struct.pack("<I", 6) + ct2_string("WhisperSpec") + struct.pack("<2I", 3, len(variables))
    for name, dims, dtype, data in variables:
        out += ct2_string(name) + struct.pack("<B", len(dims))
        out += struct.pack("<%dI" % len(dims), *dims) + struct.pack("<BI", dtype, len(data)) + data
    out += struct.pack("<I", 1) + ct2_string("decoder/embeddings/weight")
    out += ct2_string("encoder/conv1/bias")
    write("ct2_model", "small", out)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    whisper, silero, ct2 = (open(p, "rb").read() for p in sys.argv[1:])
    whisper_seeds(whisper)
    silero_seeds(silero)
    ct2_seeds(ct2)


if __name__ == "__main__":
    main()
