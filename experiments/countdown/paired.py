#!/usr/bin/env python3
"""Paired per-instance comparison of final checkpoints on the same 512 test
instances: for each method against plain GRPO (`none`), how many instances
only one of the two solves, and the exact two-sided McNemar (sign) test.

    python3 experiments/countdown/paired.py DIR

DIR holds one `rhythm eval --json` output per method, named METHOD.json
(docs/experiments/countdown.md gives the commands). Only the standard library.
"""
import json
import math
import sys
from pathlib import Path


def solved(path):
    doc = json.load(open(path))
    return {i["index"]: i["greedy"]["reward"] >= 1.0 for i in doc["instances"]}, doc["pass_at_1"]


def mcnemar_p(b, c):
    """Exact two-sided p of b successes in b + c fair coin flips."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def main():
    d = Path(sys.argv[1])
    base, base_acc = solved(d / "none.json")
    print("| method | test acc (%) | solved only by it | solved only by `none` | McNemar p |")
    print("|---|---:|---:|---:|---:|")
    print(f"| none | {100 * base_acc:.1f} | | | |")
    for m in ["random", "entropy", "local", "global", "coupled", "coupled-bottom"]:
        f = d / f"{m}.json"
        if not f.exists():
            continue
        s, acc = solved(f)
        assert s.keys() == base.keys(), f"{f}: other instances than none.json"
        b = sum(s[i] and not base[i] for i in s)
        c = sum(base[i] and not s[i] for i in s)
        print(f"| {m} | {100 * acc:.1f} | {b} | {c} | {mcnemar_p(b, c):.2f} |")


if __name__ == "__main__":
    main()
