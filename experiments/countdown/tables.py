#!/usr/bin/env python3
"""Prints the per-run table and the seed-paired differences from plain GRPO
that docs/experiments/countdown.md shows, from the summary that
`bash experiments/countdown/publish.sh` writes:

    python3 experiments/countdown/tables.py [docs/experiments/countdown/summary.json]

Only the standard library; a developer's helper for the docs (users and CI
never need Python).
"""
import json
import math
import statistics
import sys

# Two-sided 95% Student t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def pct(x):
    return f"{100 * x:.1f}"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "docs/experiments/countdown/summary.json"
    doc = json.load(open(path))
    methods = doc["methods"]
    seeds = sorted({r["seed"] for m in methods for r in m["runs"]})
    print("Per run, final / peak test accuracy in percent (start "
          f"{pct(doc['start_accuracy'])}):\n")
    print("| method | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("|---|" + "---|" * len(seeds))
    by = {}
    for m in methods:
        runs = {r["seed"]: r for r in m["runs"]}
        by[m["method"]] = runs
        cells = [f"{pct(runs[s]['final_eval'])} / {pct(runs[s]['peak_eval'])}" if s in runs else "-"
                 for s in seeds]
        print(f"| {m['method']} | " + " | ".join(cells) + " |")
    base = by.get("none")
    if not base:
        return
    print("\nDifference from plain GRPO (`none`) of the same seed, in points: mean and 95% "
          "confidence interval (Student t over seeds), and the number of seeds where the "
          "method is ahead:\n")
    print("| method | final: mean [95% CI] | ahead | peak: mean [95% CI] | ahead |")
    print("|---|---|---|---|---|")
    for m in methods:
        name = m["method"]
        if name == "none":
            continue
        row = [name]
        for key in ("final_eval", "peak_eval"):
            d = [100 * (by[name][s][key] - base[s][key]) for s in seeds if s in by[name] and s in base]
            mean = statistics.mean(d)
            if len(d) > 1:
                half = T95.get(len(d) - 1, 1.96) * statistics.stdev(d) / math.sqrt(len(d))
                row.append(f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]")
            else:
                row.append(f"{mean:+.1f}")
            row.append(f"{sum(x > 0 for x in d)} of {len(d)}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
