#!/usr/bin/env python3
"""Tables and tests of the Countdown v2 experiment, from its finished cells.

    python3 experiments/countdown-v2/analyze.py [--json OUT]

Reads experiments/countdown-v2/results/*/eval.json (and metrics.jsonl, cost.tsv)
and prints, in markdown, what docs/experiments/countdown-v2.md fixed in advance:
the learning-rate probe, the per-cell table, the primary test (coupled vs none,
paired t over seeds, two-sided), the secondary comparisons (Holm over the five
methods against none), the per-instance paired tests (exact McNemar per seed,
Cochran-Mantel-Haenszel pooled over seeds) and the cost. Only the test
instances (512..3071) enter the tests. With cells still missing it reports
what is there and says what is missing. Only the standard library.
"""
import json
import math
import pathlib
import statistics
import sys

EXP = pathlib.Path(__file__).resolve().parent
RES = EXP / "results"
VAL = 512
METHODS = ["none", "coupled", "entropy", "global", "random", "local", "coupled-bottom"]
PRIMARY_SEEDS = list(range(12))
SECONDARY_SEEDS = list(range(5))


# ---------------------------------------------------------------- numerics
def _betacf(a, b, x):
    """Continued fraction of the regularized incomplete beta (Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
                    -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t, df):
    """P(|T| >= |t|) for Student t with df degrees of freedom."""
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile_975(df):
    """The 0.975 quantile of Student t (bisection on the CDF)."""
    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_two_sided_p(mid, df) > 0.05:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def paired_t(d):
    """Mean, 95% CI half-width, p (two-sided) of paired differences d."""
    n = len(d)
    mean = statistics.mean(d)
    if n < 2:
        return mean, float("nan"), float("nan")
    sd = statistics.stdev(d)
    if sd == 0:
        return mean, 0.0, 0.0 if mean != 0 else 1.0
    se = sd / math.sqrt(n)
    return mean, t_quantile_975(n - 1) * se, t_two_sided_p(mean / se, n - 1)


def mcnemar_p(b, c):
    """Exact two-sided McNemar (sign) test of b vs c discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def cmh(tables):
    """Cochran-Mantel-Haenszel chi-square (1 df, no continuity correction)
    for pairs matched by instance, stratified by seed. Each stratum is given
    by its discordant counts (b, c); for matched pairs the statistic reduces
    to (sum of b - c)^2 / (sum of b + c). Returns (chi2, p)."""
    num = sum(b - c for b, c in tables)
    var = sum(b + c for b, c in tables)
    if var == 0:
        return 0.0, 1.0
    chi2 = num * num / var
    return chi2, math.erfc(math.sqrt(chi2 / 2))


def holm(ps):
    """Holm-adjusted p-values, in the order given."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adj, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adj[i] = running
    return adj


# ---------------------------------------------------------------- data
def load():
    cells = {}
    for d in sorted(RES.iterdir()):
        f = d / "eval.json"
        if not f.is_file():
            continue
        e = json.loads(f.read_text())
        m = d / "metrics.jsonl"
        e["metrics"] = [json.loads(l) for l in m.read_text().splitlines() if l.strip()] if m.is_file() else []
        cost = d / "cost.tsv"
        e["cost"] = [l.split() for l in cost.read_text().splitlines()] if cost.is_file() else []
        cells[d.name] = e
    return cells


def test_correct(cell):
    return [ch == "1" for ch in cell["correct"][VAL:]]


def pct(x):
    return f"{100 * x:.1f}"


def main():
    cells = load()
    base = cells.get("base")
    # Per-instance pairing needs every cell scored on the same instances.
    digests = {c["instances_sha256"] for c in cells.values()}
    if len(digests) > 1:
        sys.exit("analyze.py: the cells scored different instance sets (instances_sha256): "
                 + ", ".join(f"{n} {c['instances_sha256'][:12]}" for n, c in cells.items()))
    out = {}

    probe = {n: c for n, c in cells.items() if "-lr" in n}
    if probe:
        print("## Learning-rate probe (`none`, seed 100; validation accuracy at step 96)\n")
        # The test split is not shown: the choice is made on validation only.
        print("| learning rate | validation acc (%) |")
        print("|---|---:|")
        for n, c in sorted(probe.items(), key=lambda kv: kv[1]["lr"]):
            print(f"| {c['lr']:g} | {pct(c['validation_acc'])} |")
        chosen = (EXP / "lr").read_text().strip() if (EXP / "lr").exists() else "not chosen yet"
        print(f"\nChosen: {chosen}.\n")

    runs = {}
    for m in METHODS:
        for s in PRIMARY_SEEDS:
            c = cells.get(f"{m}-s{s}")
            if c:
                runs[(m, s)] = c
    if not runs:
        print("No experiment cell is finished yet.")
        return
    seeds = sorted({s for _, s in runs})
    print("## Test accuracy per cell (%; 2,560 held-out instances, step 96)\n")
    print("Means and sds are over each method's finished seeds (n), which differ "
          "between methods; compare methods only through the paired differences below.\n")
    if base:
        print(f"Before RL: test {pct(base['test_acc'])}, validation {pct(base['validation_acc'])}.\n")
    print("| method | n | mean ± sd | " + " | ".join(f"s{s}" for s in seeds) + " |")
    print("|---|---:|---:|" + "---:|" * len(seeds))
    out["cells"] = {}
    for m in METHODS:
        acc = {s: runs[(m, s)]["test_acc"] for s in seeds if (m, s) in runs}
        if not acc:
            continue
        v = list(acc.values())
        sd = f" ± {100 * statistics.stdev(v):.1f}" if len(v) > 1 else ""
        print(f"| {m} | {len(v)} | {pct(statistics.mean(v))}{sd} | "
              + " | ".join(pct(acc[s]) if s in acc else "-" for s in seeds) + " |")
        out["cells"][m] = acc

    def diffs(a, b, seed_list):
        return [100 * (runs[(a, s)]["test_acc"] - runs[(b, s)]["test_acc"])
                for s in seed_list if (a, s) in runs and (b, s) in runs]

    d = diffs("coupled", "none", PRIMARY_SEEDS)
    done = len(d)
    complete = done == len(PRIMARY_SEEDS)
    if complete:
        print("\n## Primary: coupled vs none (paired t over seeds 0..11, two-sided)\n")
    else:
        print(f"\n## Interim, not the primary test: coupled vs none on {done} of "
              f"{len(PRIMARY_SEEDS)} seeds\n")
        print("The pre-registered test is read only once all 24 cells are finished; "
              "these numbers are a progress report, not a result.\n")
    if done >= 2:
        mean, half, p = paired_t(d)
        sd = statistics.stdev(d)
        dz = mean / sd if sd > 0 else float("nan")
        ahead = sum(x > 0 for x in d)
        print(f"{done} of {len(PRIMARY_SEEDS)} seeds: mean {mean:+.2f} points, 95% CI "
              f"[{mean - half:+.2f}, {mean + half:+.2f}], sd {sd:.2f}, d_z {dz:+.2f}, p = {p:.3g}, "
              f"coupled ahead on {ahead} of {done}.")
        print("\nPer seed (coupled - none, points): "
              + ", ".join(f"s{s} {x:+.2f}" for s, x in zip(
                  [s for s in PRIMARY_SEEDS if ("coupled", s) in runs and ("none", s) in runs], d)) + ".")
        out["primary"] = {"complete": complete, "seeds": done, "mean": mean,
                          "ci95": [mean - half, mean + half], "sd": sd, "d_z": dz, "p": p,
                          "differences": d}

    print("\n## Secondary (seeds 0..4; Holm over the five methods against none)\n")
    family = ["random", "entropy", "local", "global", "coupled-bottom"]
    short = [m for m in family + ["coupled"]
             if len(diffs(m, "none", SECONDARY_SEEDS)) < len(SECONDARY_SEEDS)]
    if short:
        print(f"*Interim: {', '.join(short)} not yet on all of seeds 0..4; "
              "Holm runs over the comparisons that exist.*\n")
    rows, ps = [], []
    for m in family:
        d = diffs(m, "none", SECONDARY_SEEDS)
        if len(d) >= 2:
            mean, half, p = paired_t(d)
            rows.append((f"{m} - none", d, mean, half, p))
            ps.append(p)
    adj = holm(ps) if ps else []
    extra = []
    for a, b in [("coupled", "entropy"), ("coupled", "global"), ("coupled", "coupled-bottom")]:
        d = diffs(a, b, SECONDARY_SEEDS)
        if len(d) >= 2:
            mean, half, p = paired_t(d)
            extra.append((f"{a} - {b}", d, mean, half, p))
    if rows or extra:
        print("| comparison | seeds | mean [95% CI] (points) | d_z | p | Holm p | ahead |")
        print("|---|---:|---|---:|---:|---:|---:|")
        out["secondary"] = []
        for (name, d, mean, half, p), h in list(zip(rows, adj)) + [(e, None) for e in extra]:
            hs = f"{h:.3g}" if h is not None else ""
            sd = statistics.stdev(d)
            dz = mean / sd if sd > 0 else float("nan")
            print(f"| {name} | {len(d)} | {mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}] | "
                  f"{dz:+.2f} | {p:.3g} | {hs} | {sum(x > 0 for x in d)} of {len(d)} |")
            out["secondary"].append({"comparison": name, "seeds": len(d), "mean": mean,
                                     "ci95": [mean - half, mean + half], "d_z": dz, "p": p,
                                     "holm_p": h})
    else:
        print("Not enough seeds yet.")

    print("\n## Per-instance paired tests: coupled vs none (test instances)\n")
    tables = []
    print("| seed | only coupled | only none | exact McNemar p |")
    print("|---:|---:|---:|---:|")
    for s in PRIMARY_SEEDS:
        if ("coupled", s) in runs and ("none", s) in runs:
            a, b = test_correct(runs[("coupled", s)]), test_correct(runs[("none", s)])
            only_a = sum(x and not y for x, y in zip(a, b))
            only_b = sum(y and not x for x, y in zip(a, b))
            tables.append((only_a, only_b))
            out.setdefault("mcnemar", []).append({"seed": s, "only_coupled": only_a, "only_none": only_b,
                                                  "p": mcnemar_p(only_a, only_b)})
            print(f"| {s} | {only_a} | {only_b} | {mcnemar_p(only_a, only_b):.3g} |")
    if tables:
        chi2, p = cmh(tables)
        print(f"\nPooled over {len(tables)} seeds (Cochran-Mantel-Haenszel, 1 df): "
              f"chi2 = {chi2:.2f}, p = {p:.3g}.")
        out["cmh"] = {"seeds": len(tables), "chi2": chi2, "p": p}

    print("\n## Training (every finished seed of each method, mean over seeds)\n")
    print("Rollout accuracy is the training reward (Countdown's reward is 1 for a correct "
          "answer, else 0); response length is in tokens, over all 96 steps. Curves: "
          "`rhythm curves` (docs/experiments/countdown-v2.md).\n")
    print("| method | seeds | rollout acc, last 10 steps (%) | response tokens | clip frac: mean / max | steps with clipping | cell cost: wall / CPU (min) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    out["training"] = {}
    for m in METHODS:
        got = [runs[(m, s)] for s in PRIMARY_SEEDS if (m, s) in runs and runs[(m, s)]["metrics"]]
        if not got:
            continue
        last = [statistics.mean(r["accuracy"] for r in c["metrics"][-10:]) for c in got]
        rl = [statistics.mean(r["response_len"] for r in c["metrics"]) for c in got]
        cf = [statistics.mean(r["clip_frac"] for r in c["metrics"]) for c in got]
        cf_max = max(r["clip_frac"] for c in got for r in c["metrics"])
        clipped = sum(r["clip_frac"] > 0 for c in got for r in c["metrics"])
        steps = sum(len(c["metrics"]) for c in got)
        wall = [sum(float(x[1]) for x in c["cost"]) / 60 for c in got if c["cost"]]
        cpu = [sum(float(x[2]) + float(x[3]) for x in c["cost"]) / 60 for c in got if c["cost"]]
        print(f"| {m} | {len(got)} | {pct(statistics.mean(last))} | {statistics.mean(rl):.0f} | "
              f"{statistics.mean(cf):.2g} / {cf_max:.2g} | {clipped} of {steps} | "
              f"{statistics.mean(wall):.1f} / {statistics.mean(cpu):.1f} |")
        out["training"][m] = {"seeds": len(got), "clip_frac_max": cf_max, "steps_clipped": clipped,
                              "steps": steps, "cpu_min_mean": statistics.mean(cpu) if cpu else None,
                              "wall_min_mean": statistics.mean(wall) if wall else None}
    costed = {n: c["cost"] for n, c in cells.items() if c["cost"]}
    total_cpu = sum(float(x[2]) + float(x[3]) for cost in costed.values() for x in cost) / 3600
    total_wall = sum(float(x[1]) for cost in costed.values() for x in cost) / 3600
    print(f"\nCost of the {len(costed)} finished cells (the learning-rate probe's 3 included): "
          f"{total_wall:.1f} h wall, {total_cpu:.1f} h CPU (user + system; from each cost.tsv).")
    out["cost_hours"] = {"cells": len(costed), "wall": total_wall, "cpu": total_cpu}

    print("\n## Cost of every cell (seconds, from cost.tsv: training + final evaluation)\n")
    print("| cell | wall | user | system |")
    print("|---|---:|---:|---:|")
    out["cost"] = {}
    for n, cost in costed.items():
        w, u, sy = (sum(float(x[i]) for x in cost) for i in (1, 2, 3))
        print(f"| {n} | {w:.0f} | {u:.0f} | {sy:.0f} |")
        out["cost"][n] = {"wall_s": w, "user_s": u, "system_s": sy}

    if len(sys.argv) == 3 and sys.argv[1] == "--json":
        tmp = pathlib.Path(sys.argv[2] + ".tmp")
        tmp.write_text(json.dumps(out, indent=1) + "\n")
        tmp.replace(sys.argv[2])


if __name__ == "__main__":
    main()
