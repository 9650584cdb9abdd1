"""CPU (or CUDA) benchmark of the torch twins against the memory roofline measured in the same run.

Default configuration of issue 5: B = 64 trees, V = 32,000, float32, schemes iid(4,4) and
delayed(4,2,2); verifiers that accept no such trees on chain(4). Prints, per verifier and scheme, the twin's time
per batch, its ratio to one pass that reads p and q once (the roofline), and the speed-up over the
NumPy reference loop (timed on a few instances, scaled to B). Target: ratio <= 3 for naive, bv,
specinfer and traversal.

    .venv/bin/python benchmarks/bench_gpu.py [--device cuda] [--B 64] [--V 32000] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import torch

from specoracle.gpu.timing import bench

TARGET = {"naive": 3.0, "bv": 3.0, "specinfer": 3.0, "traversal": 3.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--B", type=int, default=64)
    ap.add_argument("--V", type=int, default=32_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--schemes", nargs="+", default=["iid(4,4)", "delayed(4,2,2)"])
    ap.add_argument("--names", nargs="*", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reference-instances", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch.set_num_threads (default 1: stable timings on a shared machine; 0 = torch's)")
    ap.add_argument("--no-malloc-tuning", action="store_true",
                    help="keep glibc's default malloc trimming (by default the script re-executes itself with "
                         "MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised so freed [B, V] buffers are reused "
                         "instead of being page-faulted in again, as a CPU PyTorch deployment would)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if not args.no_malloc_tuning and "MALLOC_MMAP_THRESHOLD_" not in os.environ and argv is None:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="4294967296", MALLOC_TRIM_THRESHOLD_="68719476736")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    print(f"# bench_gpu  B={args.B} V={args.V} dtype={args.dtype} device={args.device} "
          f"threads={torch.get_num_threads()} malloc_tuning={'MALLOC_MMAP_THRESHOLD_' in os.environ} torch={torch.__version__} python={platform.python_version()} "
          f"commit={commit} date={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
    rows = bench(args.names, B=args.B, V=args.V, schemes=args.schemes, dtype=args.dtype, device=args.device,
                 repeats=args.repeats, reference_instances=args.reference_instances,
                 progress=lambda s: print(f"  ... {s}", file=sys.stderr, flush=True))
    print(f"{'verifier':<20} {'scheme':<15} {'N':>3} {'twin ms':>9} {'roof ms':>9} {'ratio':>6} "
          f"{'ref ms':>10} {'speedup':>8}  note")
    misses = []
    for r in rows:
        if r.twin_s != r.twin_s:  # nan: skipped
            print(f"{r.name:<20} {r.scheme:<15} {r.N:>3} {'-':>9} {r.roofline_s * 1e3:9.2f} {'-':>6} {'-':>10} {'-':>8}  {r.note}")
            continue
        ref = f"{r.reference_s * 1e3:10.1f}" if r.reference_s is not None else f"{'-':>10}"
        sp = f"{r.speedup:8.1f}" if r.speedup is not None else f"{'-':>8}"
        flag = ""
        if r.name in TARGET and r.ratio > TARGET[r.name]:
            flag = f" MISSES target {TARGET[r.name]}x"
            misses.append(r)
        print(f"{r.name:<20} {r.scheme:<15} {r.N:>3} {r.twin_s * 1e3:9.2f} {r.roofline_s * 1e3:9.2f} {r.ratio:6.2f} "
              f"{ref} {sp}  {r.note}{flag}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([r.__dict__ | {"ratio": r.ratio if r.twin_s == r.twin_s else None, "speedup": r.speedup}
                       for r in rows], fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
