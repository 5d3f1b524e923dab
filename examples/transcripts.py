#!/usr/bin/env python3
"""Transcribes a file or URI with whisperstt and prints every result as it comes.

    python3 examples/transcripts.py FILE_OR_URI [--model M] [--language-code xx-XX]

The pipeline is `uridecodebin ! audioconvert ! audioresample ! whispersink`; the results are
`whisperstt-transcript` element messages on the bus (README: Messages), read here from a GLib
main loop as a GUI or server application would. Partials (only from live sources: the
utterance in progress, decoded about once a second) are marked "partial"; each utterance ends
with its "final", whose text never changes. Exits 0 at the end of the stream, 1 with the error
text on an ERROR message.

Needs Debian's python3-gi and gir1.2-gstreamer-1.0, so run it with the system's python3
(/usr/bin/python3): a pyenv or venv interpreter does not see them.
"""
import argparse
import math
import signal
import sys
import warnings

try:
    import gi
except ImportError:
    sys.exit(f"{sys.executable}: no PyGObject here; install python3-gi and "
             "gir1.2-gstreamer-1.0, and run this with /usr/bin/python3")

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

SECOND = Gst.SECOND  # message times are nanoseconds (guint64)


def uint64(s, name):
    # Gst.Structure's typed getters return (found, value) in Python.
    found, value = s.get_uint64(name)
    return value if found else None


def double(s, name):
    found, value = s.get_double(name)
    return value if found else None


def words_of(s):
    """The `words` field, a list of `word` structures (text, start, end, probability).

    It is a GstValueList, which PyGObject cannot convert with get_value() unless gst-python's
    overrides are installed; get_list() hands it over as a GValueArray on every setup."""
    found, array = s.get_list("words")
    if not found or array is None:
        return []
    words = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # GValueArray is deprecated in GLib
        for i in range(array.n_values):
            w = array.get_nth(i)
            words.append((w.get_string("text"), uint64(w, "start"), uint64(w, "end"),
                          double(w, "probability")))
    return words


def print_transcript(s):
    """Prints one whisperstt-transcript message."""
    text = s.get_string("text")
    start, end = uint64(s, "start") / SECOND, uint64(s, "end") / SECOND
    _, is_final = s.get_boolean("is-final")
    if not is_final:
        # A partial: the text may still change; stable-text is the part two decodes agreed on.
        print(f"partial [{start:7.2f} - {end:7.2f}]  {text}  "
              f"(stable: {s.get_string('stable-text')})", flush=True)
        return
    avg_logprob = double(s, "avg-logprob")
    print(f"final   [{start:7.2f} - {end:7.2f}]  {text}")
    # avg-logprob is the mean log-probability of the tokens: exp() of it is the mean token
    # probability, a 0..1 confidence. no-speech-prob is whisper.cpp's estimate that the audio
    # held no speech at all.
    print(f"        utterance {uint64(s, 'utterance-id')}, language {s.get_string('language')}, "
          f"confidence {math.exp(avg_logprob):.2f} (avg-logprob {avg_logprob:.3f}), "
          f"no-speech {double(s, 'no-speech-prob'):.2f}")
    words = words_of(s)
    if words:
        print("        words: " + " ".join(
            f"{w}[{ws / SECOND:.2f}-{we / SECOND:.2f} p={p:.2f}]" for w, ws, we, p in words))
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", metavar="FILE_OR_URI",
                        help="a file name, or a URI such as file:///x.ogg or https://...")
    parser.add_argument("--model", help="model name or path (default: the element's, tiny.en)")
    parser.add_argument("--language-code", help="BCP-47 language tag, e.g. en-US (default auto)")
    args = parser.parse_args()

    Gst.init(None)
    uri = args.source if Gst.uri_is_valid(args.source) else Gst.filename_to_uri(args.source)

    # Built element by element rather than from a launch string, so that nothing in the URI or
    # the options needs quoting.
    pipeline = Gst.Pipeline.new("transcripts")
    source = Gst.ElementFactory.make("uridecodebin")
    convert = Gst.ElementFactory.make("audioconvert")
    resample = Gst.ElementFactory.make("audioresample")
    sink = Gst.ElementFactory.make("whispersink")
    if sink is None:
        sys.exit("error: no whispersink element: is the whisperstt plugin installed? "
                 "(gst-inspect-1.0 whisperstt)")
    source.set_property("uri", uri)
    source.set_property("caps", Gst.Caps.from_string("audio/x-raw"))  # only the sound
    sink.set_property("word-timestamps", True)  # fills `words`; it is empty otherwise
    if args.model:
        sink.set_property("model", args.model)
    if args.language_code:
        sink.set_property("language-code", args.language_code)
    for element in (source, convert, resample, sink):
        pipeline.add(element)
    convert.link(resample)
    resample.link(sink)

    # uridecodebin's pads come once it has looked at the stream.
    def on_pad_added(_element, pad):
        if pad.query_caps(None).to_string().startswith("audio/"):
            pad.link(convert.get_static_pad("sink"))
    source.connect("pad-added", on_pad_added)

    loop = GLib.MainLoop()
    status = 0

    def on_message(_bus, message):
        nonlocal status
        if message.type == Gst.MessageType.ELEMENT:
            s = message.get_structure()
            if s.get_name() == "whisperstt-transcript":
                print_transcript(s)
            elif s.get_name() == "whisperstt-model" and s.get_string("action") != "released":
                print(f"model {s.get_string('action')}: {s.get_string('model')}",
                      file=sys.stderr)
        elif message.type == Gst.MessageType.WARNING:
            err, _ = message.parse_warning()
            print(f"warning from {message.src.get_name()}: {err.message}", file=sys.stderr)
        elif message.type == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            print(f"error from {message.src.get_name()}: {err.message}", file=sys.stderr)
            if debug:
                print(f"  ({debug})", file=sys.stderr)
            status = 1
            loop.quit()
        elif message.type == Gst.MessageType.EOS:
            # The pipeline's EOS comes after whispersink's last final: nothing is lost here.
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)

    # Ctrl-C (a live stream never ends by itself): send EOS, so the utterance in progress
    # still gets its final before the loop ends.
    def on_interrupt():
        pipeline.send_event(Gst.Event.new_eos())
        return GLib.SOURCE_REMOVE  # a second Ctrl-C kills the script
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, on_interrupt)

    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        # The ERROR message that says why is on the bus: let the loop print it, then stop
        # (idle callbacks run after the bus's pending messages).
        status = 1
        GLib.idle_add(loop.quit)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    bus.remove_signal_watch()
    return status


if __name__ == "__main__":
    sys.exit(main())
