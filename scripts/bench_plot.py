#!/usr/bin/env python3
"""Plots the live part of scripts/bench.sh: final latency and memory against the number of
pipelines, shared model vs one model per pipeline."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

results = json.load(open(sys.argv[1]))["live"]
fig, (lat, mem) = plt.subplots(1, 2, figsize=(11, 4))
for shared, label in ((True, "whisperstt, one shared model"), (False, "one model per pipeline")):
    rows = [r for r in results if r["shared"] == shared and not r.get("in_step")]
    n = [r["n"] for r in rows]
    lat.plot(n, [r["latency_p95"] for r in rows], marker="o", label=label + " (p95)")
    lat.plot(n, [r["latency_p50"] for r in rows], marker=".", linestyle="--", label=label + " (p50)")
    mem.plot(n, [r["rss"] / 1e6 for r in rows], marker="o", label=label)
lat.set(xlabel="live pipelines", ylabel="final latency (s)", xscale="log", title="Final latency")
mem.set(xlabel="live pipelines", ylabel="resident memory (MB)", xscale="log", title="Memory")
for ax in (lat, mem):
    ax.set_xticks([1, 2, 4, 8, 16], labels=["1", "2", "4", "8", "16"])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=120)
