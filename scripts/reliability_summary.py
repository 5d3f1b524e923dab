#!/usr/bin/env python3
"""Prints the reliability suite's summary from target/reliability/summary.jsonl (one line per
check that passed: soak, stress, faults, bad input, fuzzing). Usage:
reliability_summary.py TEST_EXIT_STATUS"""
import json
import pathlib
import sys

status = int(sys.argv[1]) if len(sys.argv) > 1 else 0
path = pathlib.Path(__file__).resolve().parent.parent / "target/reliability/summary.jsonl"
rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

titles = {"load": "load held", "fault": "faults survived", "bad-input": "bad inputs tried", "fuzz": "fuzzing"}
print("\n== Reliability summary")
print("| check | tried | finals expected | finals lost | figures |")
print("|---|---|---|---|---|")
def flat(figures, prefix=""):
    """Nested figures as "name value" pairs, floats to 4 places."""
    for k, v in figures.items():
        if isinstance(v, dict):
            yield from flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k} {round(v, 4) if isinstance(v, float) else v}"


for r in rows:
    figures = ", ".join(flat(r["figures"])) if isinstance(r["figures"], dict) else ""
    print(f"| {r['category']}: {r['name']} | {r['tried']} | {r['transcripts_expected']} | {r['transcripts_lost']} | {figures} |")
print()
for category, title in titles.items():
    checks = [r for r in rows if r["category"] == category]
    print(f"{title}: {len(checks)} checks, {sum(r['tried'] for r in checks)} tried")
lost = sum(r["transcripts_lost"] for r in rows)
# A crash or a hang fails its test binary (every wait in the suite has a time-out), so the
# suite's exit status tells both.
print(f"crashes {0 if status == 0 else 'see the failed tests above'}, "
      f"hangs {0 if status == 0 else 'see the failed tests above'}, transcripts lost {lost}")
sys.exit(1 if lost else 0)
