"""Compacts `rhythm eval --json` of a final checkpoint into a cell's eval.json.

    python3 experiments/countdown-v2/compact.py FINAL_EVAL_JSON CELL LR > eval.json

Keeps, per instance of the generated test stream (0..511 validation,
512..3071 test), whether the greedy answer was right (a string of 0/1) and the
response length in characters, plus a digest of the instances themselves so
that two cells can only be paired on the same instances. Standard library
only.
"""

import hashlib
import json
import sys

VALIDATION = 512


def main():
    path, cell, lr = sys.argv[1:4]
    with open(path) as f:
        d = json.load(f)
    inst = d["instances"]
    if [i["index"] for i in inst] != list(range(len(inst))) or len(inst) <= VALIDATION:
        sys.exit(f"compact.py: {path}: expected instances 0..N-1 with N > {VALIDATION}")
    correct = "".join("1" if i["greedy"]["reward"] == 1.0 else "0" for i in inst)
    keys = json.dumps([[i["task"]["nums"], i["task"]["target"]] for i in inst])
    val, test = correct[:VALIDATION], correct[VALIDATION:]
    out = {
        "cell": cell,
        "lr": float(lr),
        "model": d["model"],
        "instances_sha256": hashlib.sha256(keys.encode()).hexdigest(),
        "validation_n": len(val),
        "validation_acc": val.count("1") / len(val),
        "test_n": len(test),
        "test_acc": test.count("1") / len(test),
        "correct": correct,
        "response_chars": [len(i["greedy"]["response"]) for i in inst],
    }
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
