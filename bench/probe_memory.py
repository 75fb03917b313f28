#!/usr/bin/env python3
"""Peak memory and time of the torch rhythm probe vs transformers, side by side, one run.

    python bench/make_qwen3_0p6b.py /tmp/qwen3-0.6b-random        # random weights, no download
    python bench/probe_memory.py --model /tmp/qwen3-0.6b-random --tokens 2048 8192

Cases, each in a fresh child process (this script with --child), over N
seeded random token ids, under torch.no_grad(), weights upcast to --dtype:

  load        load the model only (the floor every other case stands on)
  plain       model(ids): default attention (sdpa), full [N, vocab] logits
  plain-last  model(ids, logits_to_keep=1): the same without the logits
  eager-attn  model(ids, output_attentions=True), attn_implementation="eager":
              every layer's [heads, N, N] map (what a map-based probe needs)
  probe       rhythm.torch.probe(model, ids, N // 4): the streamed probe
              (sampled layers, per-head summaries, chunked entropies)
  probe-sampled  the same without entropies (stats=False): compare with plain-last
  probe-all   all layers probed, stats=False: compare with plain-last

The probe case needs the package installed (tools/test-python.sh, or
pip install ./bindings/python). "forward peak" is the resident-set high-water mark of the forward alone
(VmHWM, reset with /proc/self/clear_refs after loading; the weights stay
resident, so it includes them); "process peak" is the child's ru_maxrss
(loading included), read by the parent with os.wait4. Each child runs under RLIMIT_AS =
--mem-limit-gb, so a case that does not fit fails with an allocation error
(reported as "over limit") instead of waking the machine's OOM killer.
"seconds" is the forward's wall time (median over --repeats children).
Ratios are to "plain" at the same N, from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ["load", "plain", "plain-last", "eager-attn", "probe", "probe-sampled", "probe-all"]
DTYPES = {"f32": "float32", "bf16": "bfloat16"}


def _status_gib(field: str) -> float:
    """A /proc/self/status memory field (kB) in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) * 1024 / 2**30, 3)
    return float("nan")


def child(args: argparse.Namespace) -> None:
    if args.device == "cpu":  # CUDA reserves far more address space than it uses
        lim = int(args.mem_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    n_tok = args.tokens[0]
    attn = "eager" if args.case == "eager-attn" else "sdpa"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, DTYPES[args.dtype]), attn_implementation=attn)
    model.eval().to(args.device)
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, model.config.vocab_size, (1, n_tok), generator=g).to(args.device)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    info: dict = {"rss_before_gib": _status_gib("VmRSS")}
    # Reset the resident-set high-water mark (Linux clear_refs "5") so the
    # forward's own peak is seen apart from the loading transient.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        info["hwm_reset"] = True
    except OSError:
        info["hwm_reset"] = False
    with torch.no_grad():
        t0 = time.perf_counter()
        if args.case == "plain":
            out = model(ids, use_cache=False)
            info["logits_shape"] = list(out.logits.shape)
        elif args.case == "plain-last":
            out = model(ids, use_cache=False, logits_to_keep=1)
            info["logits_shape"] = list(out.logits.shape)
        elif args.case == "eager-attn":
            out = model(ids, use_cache=False, output_attentions=True)
            info["attn_layers"] = len(out.attentions)
        elif args.case == "probe":
            from rhythm.torch import probe

            s = probe(model, ids[0], n_tok // 4)
            info["layers"] = s["layers"]
            info["finite"] = all(bool(np.isfinite(s[k]).all()) for k in ("span_num", "waad", "fai_sum", "entropy"))
        elif args.case in ("probe-sampled", "probe-all"):
            from rhythm.torch import probe

            layers = "all" if args.case == "probe-all" else "sampled"
            s = probe(model, ids[0], n_tok // 4, layers=layers, stats=False)
            info["layers"] = s["layers"]
            info["finite"] = all(bool(np.isfinite(s[k]).all()) for k in ("span_num", "waad", "fai_sum", "vert_sum"))
        if cuda:
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
    info["forward_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else _status_gib("VmHWM")
    info.update(forward_seconds=secs, torch=torch.__version__, threads=torch.get_num_threads())
    print(json.dumps(info), flush=True)


def run_case(args: argparse.Namespace, case: str, tokens: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--case", case, "--model", args.model,
           "--tokens", str(tokens), "--threads", str(args.threads), "--dtype", args.dtype,
           "--mem-limit-gb", str(args.mem_limit_gb), "--seed", str(args.seed), "--device", args.device]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TRANSFORMERS_VERBOSITY="error",
               HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, env=env)
        out = proc.stdout.read()
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read()
    rec = {"case": case, "tokens": tokens, "dtype": args.dtype, "rc": rc, "process_wall_seconds": round(time.perf_counter() - t0, 1),
           "loadavg_1m_before": round(load, 2)}
    rec["peak_rss_gib"] = round(ru.ru_maxrss * 1024 / 2**30, 3)  # Linux: KiB
    if rc == 0:
        info = json.loads(out.decode().strip().splitlines()[-1])
        rec["seconds"] = round(info.pop("forward_seconds"), 2)
        rec.update(info)
    else:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        rec["error"] = tail[0][:300]
        rec["over_limit"] = any(s in tail[0] for s in ("alloc", "memory", "Memory", "MemoryError"))
    return rec


def measure(args: argparse.Namespace, case: str, tokens: int) -> dict:
    """One child per repeat (peak RSS needs a fresh process); medians of time and peak."""
    reps = [run_case(args, case, tokens) for _ in range(args.repeats if case != "load" else 1)]
    ok = [r for r in reps if r["rc"] == 0]
    if not ok:
        return reps[0]
    rec = dict(ok[0])
    if len(ok) > 1:
        for k in ("seconds", "peak_rss_gib", "forward_peak_gib"):
            rec[k] = round(statistics.median(r[k] for r in ok), 3)
        rec["repeats"] = len(ok)
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, nargs="+", default=[2048, 8192])
    ap.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    ap.add_argument("--dtype", choices=list(DTYPES), default="f32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--mem-limit-gb", type=float, default=16.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda; on cuda 'forward peak' is torch.cuda.max_memory_allocated")
    ap.add_argument("--json", type=Path, help="also write every record here (atomically)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    if not Path(args.model, "config.json").is_file():
        print(f"--model {args.model}: no config.json there (make one: python bench/make_qwen3_0p6b.py DIR)", file=sys.stderr)
        return 2
    records = []
    for n in args.tokens:
        for case in args.cases:
            rec = measure(args, case, n)
            records.append(rec)
            print(json.dumps(rec), flush=True)
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1) + "\n")
        tmp.replace(args.json)
    # Side-by-side table, ratios to "plain" and "plain-last" at the same N.
    print("\n| N | case | forward peak RSS GiB | x plain | x plain-last | process peak RSS GiB | forward s | x plain | x plain-last |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.tokens:
        base = next((r for r in records if r["tokens"] == n and r["case"] == "plain" and r["rc"] == 0), None)
        last = next((r for r in records if r["tokens"] == n and r["case"] == "plain-last" and r["rc"] == 0), None)
        for r in (r for r in records if r["tokens"] == n):
            if r["rc"] != 0:
                why = "over the limit" if r.get("over_limit") else f"failed (rc {r['rc']})"
                print(f"| {n} | {r['case']} | {why} ({args.mem_limit_gb:g} GiB address space) | | | | | | |")
                continue
            fp = r["forward_peak_gib"]
            pr = f"{fp / base['forward_peak_gib']:.2f}" if base else ""
            sec = r.get("seconds")
            tr = f"{sec / base['seconds']:.2f}" if base and sec and r["case"] != "load" else ""
            pl = f"{fp / last['forward_peak_gib']:.2f}" if last else ""
            tl = f"{sec / last['seconds']:.2f}" if last and sec and r["case"] != "load" else ""
            print(f"| {n} | {r['case']} | {fp:.2f} | {pr} | {pl} | {r['peak_rss_gib']:.2f} | {'' if r['case'] == 'load' else sec} | {tr} | {tl} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
