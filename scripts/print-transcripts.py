"""Prints the whisperstt-transcript messages of `gst-launch-1.0 -m` output as lines of text,
and passes errors through."""
import re
import sys

FIELD = r'{}=\((?:string|guint64)\)("(?:[^"\\]|\\.)*"|[^,;]+)'


def field(line, name):
    m = re.search(FIELD.format(re.escape(name)), line)
    if not m:
        return None
    value = m.group(1)
    if value.startswith('"'):
        value = value[1:-1]
    return re.sub(r'\\(.)', r'\1', value)


status = 0
for line in sys.stdin:
    if "whisperstt-transcript" in line:
        start, end = int(field(line, "start")) / 1e9, int(field(line, "end")) / 1e9
        print(f"[{start:7.2f} - {end:7.2f}] {field(line, 'text')}", flush=True)
    elif line.startswith("ERROR") or "error" in line.split(":")[0].lower():
        print(line.rstrip(), file=sys.stderr)
        status = 1
sys.exit(status)
