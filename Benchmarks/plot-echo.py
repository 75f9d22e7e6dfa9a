#!/usr/bin/env python3
"""Draws the ratio table of Benchmarks/run-echo.sh (its $OUT/table.tsv) as a bar chart.

    python3 Benchmarks/plot-echo.py /tmp/run-echo.XXXXXX/table.tsv Benchmarks/RESULTS-echo.png

Needs matplotlib (e.g. python3 -m venv /tmp/venv && /tmp/venv/bin/pip install matplotlib).
One group of bars per workload; for each server that is not the baseline, the median of the
per-round ratios to the baseline (wall-clock rate, and work per server CPU-second), with the range
over the rounds as an error bar, and a line at 1 (the baseline). For W4 (bytes per idle
connection) the ratio is inverted (baseline / server), so that in every group taller is better.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "W1": "W1: 32 B,\n1 in flight",
    "W2": "W2: 32 B,\n16 in flight",
    "W3": "W3: 1 MiB,\n1 in flight",
    "W4": "W4: bytes per idle\nconn (inverted)",
}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    baseline = sys.argv[3] if len(sys.argv) > 3 else "nio-echo"
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    servers = [s for s in dict.fromkeys(r["server"] for r in rows) if s != baseline]
    series = [(s, key) for s in servers for key in ("ratio", "cpu_ratio")]

    fig, ax = plt.subplots(figsize=(8, 3.8), dpi=100)
    width = 0.8 / max(1, len(series))
    for k, (s, key) in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for i, w in enumerate(workloads):
            r = next((r for r in rows if r["workload"] == w and r["server"] == s), None)
            if r is None:
                continue
            med, rmin, rmax = (float(r[key]), float(r[key + "_min"]), float(r[key + "_max"]))
            if med != med:  # no CPU figure for W4
                continue
            if w == "W4":
                med, rmin, rmax = 1 / med, 1 / rmax, 1 / rmin
            xs.append(i + (k - (len(series) - 1) / 2) * width)
            ys.append(med)
            lo.append(med - rmin)
            hi.append(rmax - med)
        label = f"{s}: " + ("rate (wall clock)" if key == "ratio" else "per server CPU-second")
        bars = ax.bar(xs, ys, width * 0.9, yerr=[lo, hi], capsize=3, label=label,
                      hatch=None if key == "ratio" else "//")
        for b, y in zip(bars, ys):
            ax.annotate(f"{y:.2f}x", (b.get_x() + b.get_width() / 2, 0), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=7,
                        bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none"))
    ax.axhline(1, color="black", linewidth=0.8)
    ax.margins(y=0.15)
    ax.set_xticks(range(len(workloads)), [LABELS.get(w, w) for w in workloads], fontsize=8)
    ax.set_ylabel(f"ratio to {baseline} (higher is better)", fontsize=8)
    ax.set_title(f"Echo servers against {baseline} (line at 1): median of per-round ratios, "
                 "range as error bars", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
