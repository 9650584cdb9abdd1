"""Old (reference) vs new (fast) exact engine, measured in the same run (issue 16).

For every registered verifier: wall time of ``exact.evaluate`` with ``engine="reference"`` and
``engine="fast"`` and their ratio, on ``random_model(4, seed=1)`` with ``iid(3,3)`` and
``delayed(3,1,2)`` (``chain(4)`` for chain-only verifiers), then the largest case of a ladder the
fast engine solves within ``--ladder-timeout`` seconds. Stateful verifiers are also timed on
``exact.sequence_law`` (E2, ``iid(3,2)``, length 5). Every measurement runs in its own process
under a timeout, so a slow old-engine run is killed, not waited for (``> T`` in the table).

    python benchmarks/bench_exact.py                      # everything (long on 2 cores)
    python benchmarks/bench_exact.py --only specinfer,bv --old-timeout 60 --no-ladder
    python benchmarks/bench_exact.py --cases '3:iid(3,2)' --no-ladder   # a case the old engine finishes
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CASES = ((4, "iid(3,3)"), (4, "delayed(3,1,2)"))
CHAIN_CASE = "chain(4)"
LADDER = ((5, "iid(3,3)"), (6, "iid(3,3)"), (8, "iid(3,3)"), (5, "iid(4,3)"), (6, "iid(4,3)"), (10, "iid(3,3)"))
CHAIN_LADDER = ((5, "chain(4)"), (6, "chain(4)"), (8, "chain(4)"), (6, "chain(5)"), (10, "chain(5)"))

_CODE = """
import json, time
from specoracle import exact, models, examples, drafting
kind, name, V, scheme, engine, workers = {args!r}
t = time.perf_counter()
if kind == "evaluate":
    r = exact.evaluate(name, models.random_model(V, seed=1), drafting.parse_scheme(scheme), engine=engine,
                       **({{"workers": workers}} if workers else {{}}))
else:
    r = exact.sequence_law(name, examples.E2(), drafting.parse_scheme(scheme), 5, engine=engine)
print(json.dumps({{"seconds": time.perf_counter() - t, "max_error": float(r.max_error)}}))
"""


def measure(kind: str, name: str, V: int, scheme: str, engine: str, timeout: float, workers: int | None = None):
    """Seconds of one run in a fresh process, or None past ``timeout``."""
    code = _CODE.format(args=(kind, name, V, scheme, engine, workers))
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        raise RuntimeError(f"{name} {scheme} {engine}: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]


def _fmt(seconds, timeout) -> str:
    return f"> {timeout:g}" if seconds is None else f"{seconds:.2f}"


def _ratio(old, new, old_timeout) -> str:
    if new is None:
        return "-"
    return f"> {old_timeout / new:.1f}x" if old is None else f"{old / new:.1f}x"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated verifier names (default: all)")
    ap.add_argument("--old-timeout", type=float, default=120.0, help="seconds before an old-engine run is killed")
    ap.add_argument("--new-timeout", type=float, default=120.0, help="seconds before a new-engine run is killed")
    ap.add_argument("--ladder-timeout", type=float, default=60.0, help="the 'largest case within' budget")
    ap.add_argument("--no-ladder", action="store_true", help="skip the largest-case ladder")
    ap.add_argument("--no-old", action="store_true", help="time the new engine only")
    ap.add_argument("--workers", type=int, default=None, help="worker processes of the new engine's per-tree path")
    ap.add_argument("--cases", default="", help="cases 'V:scheme;V:scheme', e.g. '3:iid(3,2);4:delayed(3,1,2)' (default: "
                                                "4:iid(3,3);4:delayed(3,1,2); chain-only verifiers: chain(L+1))")
    args = ap.parse_args(argv)
    from specoracle import drafting, registry

    names = [n for n in args.only.split(",") if n] or registry.names()
    cases_all = CASES
    if args.cases:
        cases_all = tuple((int(c.split(":")[0]), c.split(":", 1)[1]) for c in args.cases.split(";") if c)
    print(f"{'verifier':22s} {'case':22s} {'old s':>9s} {'new s':>9s} {'ratio':>9s}", flush=True)
    for name in names:
        entry = registry.get(name)
        cases = [(V, c) for V, c in cases_all if entry.accepts(c.split("(")[0])]
        if not cases:  # chain-only: a chain as deep as the largest tree case
            cases = [(V, f"chain({drafting.parse_scheme(c).depth + 1})") for V, c in cases_all[:1]]
        for V, scheme in cases:
            new = measure("evaluate", name, V, scheme, "fast", args.new_timeout, args.workers)
            old = None if args.no_old else measure("evaluate", name, V, scheme, "reference", args.old_timeout)
            print(f"{name:22s} {f'V={V} ' + scheme:22s} {_fmt(old, args.old_timeout) if not args.no_old else '-':>9s} "
                  f"{_fmt(new, args.new_timeout):>9s} {_ratio(old, new, args.old_timeout) if not args.no_old else '-':>9s}",
                  flush=True)
        if entry.stateful:
            new = measure("sequence", name, 3, "iid(3,2)", "fast", args.new_timeout)
            old = None if args.no_old else measure("sequence", name, 3, "iid(3,2)", "reference", args.old_timeout)
            print(f"{name:22s} {'E2 iid(3,2) seq len 5':22s} {_fmt(old, args.old_timeout) if not args.no_old else '-':>9s} "
                  f"{_fmt(new, args.new_timeout):>9s} {_ratio(old, new, args.old_timeout) if not args.no_old else '-':>9s}",
                  flush=True)
        if args.no_ladder:
            continue
        ladder = LADDER if entry.accepts("iid") else CHAIN_LADDER
        best = None
        for V, scheme in ladder:
            t0 = time.perf_counter()
            s = measure("evaluate", name, V, scheme, "fast", args.ladder_timeout, args.workers)
            if s is None:
                break
            best = (V, scheme, s, time.perf_counter() - t0)
        label = "none" if best is None else f"V={best[0]} {best[1]} in {best[2]:.1f} s"
        print(f"{name:22s} largest case within {args.ladder_timeout:g} s: {label}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
