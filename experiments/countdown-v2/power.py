"""Power calculation of the Countdown v2 experiment (docs/experiments/countdown-v2.md).

Reads the published per-run numbers of the first experiment
(docs/experiments/countdown/summary.json), estimates the spread of a
method's paired difference from plain GRPO across seeds, and prints the power
of the primary test (two-sided paired t-test over seeds, alpha 0.05) for a
range of seed counts, effects and spreads. Pure numpy, Monte Carlo (the null
distribution too, so no t table is needed); a fixed seed makes it exact to
rerun:

    python3 experiments/countdown-v2/power.py
"""

import json
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIMS = 200_000
ALPHA = 0.05


def published_spread():
    """Pooled SD (points) of per-seed differences from `none`, and its df."""
    s = json.loads((ROOT / "docs/experiments/countdown/summary.json").read_text())
    acc = {m["method"]: {r["seed"]: r["final_eval"] for r in m["runs"]} for m in s["methods"]}
    none = acc.pop("none")
    resid, df, means = [], 0, {}
    for method, runs in acc.items():
        d = np.array([runs[k] - none[k] for k in sorted(runs)]) * 100
        means[method] = (d.mean(), d.std(ddof=1))
        resid.append(d - d.mean())
        df += len(d) - 1
    r = np.concatenate(resid)
    return float(np.sqrt((r**2).sum() / df)), df, means


def power(n, effect, sd, rng):
    """P(reject) of the two-sided paired t-test with n seeds (Monte Carlo)."""
    def t_stats(mu):
        d = rng.normal(mu, sd, size=(SIMS, n))
        return d.mean(1) / (d.std(1, ddof=1) / np.sqrt(n))

    crit = np.quantile(np.abs(t_stats(0.0)), 1 - ALPHA)
    return float((np.abs(t_stats(effect)) > crit).mean()), float(crit)


def main():
    rng = np.random.default_rng(20261201)
    sd, df, means = published_spread()
    print(f"v1 per-seed differences from none (final test acc, points; mean, sd over 3 seeds):")
    for m, (mu, s) in means.items():
        print(f"  {m:15s} {mu:+.2f}  sd {s:.2f}")
    # One-sided 80% upper bound of the pooled SD: sd * sqrt(df / chi2_{0.2, df}),
    # chi2 quantile by Monte Carlo.
    chi2_q = np.quantile(rng.chisquare(df, size=SIMS), 0.2)
    upper = sd * np.sqrt(df / chi2_q)
    print(f"pooled sd {sd:.2f} points (df {df}); 80% upper bound {upper:.2f}")
    print()
    sds = [round(sd, 2), round(upper, 2), 1.5]
    effects = [1.0, 1.5]
    print("power of the paired t-test, alpha 0.05 two-sided (rows: seeds n)")
    header = "   n " + "".join(f"  d={e:.1f},sd={s:.2f}" for e in effects for s in sds)
    print(header)
    for n in [3, 5, 6, 8, 10, 12, 14, 16]:
        row = f"{n:4d} "
        for e in effects:
            for s in sds:
                p, _ = power(n, e, s, rng)
                row += f"  {p:15.2f}"
        print(row)


if __name__ == "__main__":
    main()
