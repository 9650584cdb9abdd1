"""The zero-configuration portfolio over the whole mutant catalog: per-mutant time and verdict.

Every mutant of ``specoracle.mutants.catalog()`` must be flagged (NOT LOSSLESS) and every true
negative must pass, each by ``check_lossless(mutant)`` with no model and no scheme, under the
default budget (issue 14: the whole run under 10 minutes on 2 cores). Prints one line per mutant
(seconds, cases run, verdict, worst case), the total, and the misses; exit status 1 on a miss.

    .venv/bin/python benchmarks/bench_portfolio.py [--budget 60] [--only NAME,...] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from specoracle import mutants
from specoracle.check import check_lossless
from specoracle.portfolio import BUDGET_SECONDS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=BUDGET_SECONDS, help="budget_seconds per mutant")
    ap.add_argument("--only", default=None, help="comma-separated mutant names")
    ap.add_argument("--json", default=None, help="write the rows to this file")
    args = ap.parse_args(argv)
    table = mutants.catalog() + mutants.true_negatives()
    if args.only:
        keep = set(args.only.split(","))
        table = [m for m in table if m.name in keep]
    rows, t_all = [], time.perf_counter()
    for m in table:
        t0 = time.perf_counter()
        v = check_lossless(m, budget_seconds=args.budget)
        dt = time.perf_counter() - t0
        ok = v.lossless == m.lossless and v.conclusive
        rows.append({"mutant": m.name, "expected": "lossless" if m.lossless else "lossy", "seconds": round(dt, 2),
                     "cases": len(v.cases), "verdict": v.words, "worst": v.worst, "ok": ok,
                     "minimal_case": v.minimal_case})
        print(f"{m.name:<34} {'TN' if m.lossless else 'bug':<4} {dt:7.1f} s {len(v.cases):4d} cases  "
              f"{'ok  ' if ok else 'MISS'} {v.words}", flush=True)
    total = time.perf_counter() - t_all
    misses = [r["mutant"] for r in rows if not r["ok"]]
    print(f"total {total:.1f} s for {len(rows)} verifiers ({sum(not r['ok'] for r in rows)} misses"
          f"{': ' + ', '.join(misses) if misses else ''})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"budget_seconds": args.budget, "total_seconds": total, "rows": rows}, f, indent=1)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
