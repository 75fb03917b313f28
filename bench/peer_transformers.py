#!/usr/bin/env python3
"""Peer measurement for the speed/memory benchmark: one transformers forward on CPU.

    python bench/peer_transformers.py --model DIR --tokens 2048 [--attentions]
        [--threads 2] [--dtype bf16|f32|both] [--logits all|last] [--seed 0]

Loads DIR with attn_implementation="eager", sets torch.set_num_threads, runs
ONE forward over N random token ids (seeded) under torch.no_grad(), with
output_attentions=True when --attentions, and prints one JSON line per dtype:

    {"tool":"transformers","tokens":N,"attentions":bool,"dtype":"bf16",
     "seconds":<forward wall time>,"load_seconds":..,"peak_rss_gb":..,...}

Other processes on the machine skew "seconds": loadavg_1m_before is recorded
so a contended run can be spotted (re-run when the machine is idle).

Honest memory: each measurement runs in a fresh child process (this script
with --child); the parent reaps it with os.wait4 and reports that child's own
ru_maxrss (peak resident set, loading included).  peak_rss_gb is in 1e9
bytes; peak_rss_gib in 2^30 bytes.

--dtype bf16 computes in the checkpoint's bf16 as loaded; f32 upcasts every
weight to float32 at load time (and so the logits and attention maps are f32);
"both" (the default) runs bf16 then f32, each in its own child.  On a CPU
without AVX512-BF16/AMX (e.g. the 2-core AMD EPYC dev box) torch's bf16 path
is ~15x slower than f32 (2048 tokens: ~625 s bf16 vs ~40 s f32), so compare
an engine's f32 numbers with the f32 line.
--logits all (default, what model(ids) does) materialises [N, vocab] logits;
"last" passes logits_to_keep=1.
"""
import argparse
import json
import os
import subprocess
import sys
import time

DTYPES = {"bf16": "bfloat16", "f32": "float32"}


def child(args) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, DTYPES[args.dtype])
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, attn_implementation="eager", dtype=dtype)
    model.eval()
    load_s = time.perf_counter() - t0
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, vocab, (1, args.tokens), generator=g)
    kw = {"output_attentions": args.attentions, "use_cache": False}
    if args.logits == "last":
        kw["logits_to_keep"] = 1
    with torch.no_grad():
        t1 = time.perf_counter()
        out = model(ids, **kw)
        secs = time.perf_counter() - t1
    n_attn = len(out.attentions) if args.attentions else 0
    attn_shape = list(out.attentions[0].shape) if n_attn else None
    finite = bool(torch.isfinite(out.logits[0, -1]).all())
    print(json.dumps({
        "forward_seconds": secs, "load_seconds": load_s, "attn_layers": n_attn, "attn_shape": attn_shape,
        "attn_dtype": str(out.attentions[0].dtype).replace("torch.", "") if n_attn else None,
        "logits_shape": list(out.logits.shape), "logits_finite": finite,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }), flush=True)


def measure(args, dtype: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--model", args.model, "--tokens", str(args.tokens),
           "--threads", str(args.threads), "--dtype", dtype, "--logits", args.logits, "--seed", str(args.seed)]
    if args.attentions:
        cmd.append("--attentions")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               TRANSFORMERS_VERBOSITY="error", HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    stdout = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    peak = ru.ru_maxrss * 1024  # Linux: KiB
    rec = {"tool": "transformers", "tokens": args.tokens, "attentions": args.attentions, "dtype": dtype,
           "seconds": None, "peak_rss_gb": round(peak / 1e9, 2), "peak_rss_gib": round(peak / 2**30, 2),
           "threads": args.threads, "logits": args.logits, "attn_implementation": "eager",
           "process_wall_seconds": round(wall, 1),
           "process_cpu_seconds": round(ru.ru_utime + ru.ru_stime, 1),
           "loadavg_1m_before": round(load_before, 2), "rc": rc}
    if rc == 0:
        info = json.loads(stdout.decode().strip().splitlines()[-1])
        rec["seconds"] = round(info.pop("forward_seconds"), 2)
        rec["load_seconds"] = round(info.pop("load_seconds"), 2)
        rec.update(info)
    import transformers
    rec["transformers"] = transformers.__version__
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, required=True)
    ap.add_argument("--attentions", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["bf16", "f32", "both"], default="both")
    ap.add_argument("--logits", choices=["all", "last"], default="all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    rc = 0
    for dt in (["bf16", "f32"] if args.dtype == "both" else [args.dtype]):
        rec = measure(args, dt)
        print(json.dumps(rec), flush=True)
        rc = rc or rec["rc"]
    return rc


if __name__ == "__main__":
    sys.exit(main())
