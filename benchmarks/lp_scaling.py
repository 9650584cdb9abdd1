"""How far the universal LP (ALGORITHMS.md §10.4) scales: sizes and seconds per instance.

Runs ``specoracle.lp.universal_bound`` on random context-dependent models
(``random_model(V, 0, divergence=0.9, smoothing=0.2)``) for growing i.i.d. schemes, each in a
subprocess with a wall-clock budget (default 60 s), and prints trees enumerated, merged node sets,
variables, constraints, enumeration seconds, total seconds, solver and E[tau]. The last instance
that finishes within the budget is the "largest instance solved within 60 s on this machine".

Usage::

    python benchmarks/lp_scaling.py [--budget 60] [--solvers HIGHS,CLARABEL] [--stop-after-fail 2]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

INSTANCES = [
    (3, "iid(2,2)"),
    (2, "iid(3,3)"),
    (3, "iid(3,2)"),
    (3, "iid(2,3)"),
    (4, "iid(2,2)"),
    (2, "iid(4,3)"),
    (3, "delayed(3,1,2)"),
    (4, "iid(3,2)"),
    (5, "iid(2,2)"),
    (2, "iid(3,4)"),
    (3, "iid(4,2)"),
    (4, "iid(2,3)"),
    (5, "iid(3,2)"),
    (3, "iid(3,3)"),
    (3, "iid(2,4)"),
    (4, "iid(4,2)"),
    (5, "iid(2,3)"),
    (6, "iid(3,2)"),
    (4, "iid(3,3)"),
]

_CHILD = r"""
import json, sys, time
from specoracle import models
from specoracle.drafting import parse_scheme
from specoracle.lp import bounds
V, name, solvers = int(sys.argv[1]), sys.argv[2], tuple(sys.argv[3].split(","))
m = models.random_model(V, 0, divergence=0.9, smoothing=0.2)
s = parse_scheme(name)
t = time.perf_counter(); groups, n = bounds.tree_groups(m, s); te = time.perf_counter() - t
orig = bounds.solve
if solvers != ("default",):
    bounds.solve = lambda lp: orig(lp, solvers=solvers)
t = time.perf_counter(); b = bounds.universal_bound(m, s); tb = time.perf_counter() - t
print(json.dumps(dict(V=V, scheme=name, trees=n, node_sets=len(groups), variables=b.n_variables,
    constraints=b.n_constraints, enum_s=te, total_s=tb, solver=b.solver, expected_accepted=b.expected_accepted,
    gap=b.certificate.gap, residual=b.certificate.primal_residual)))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per instance (default 60)")
    ap.add_argument("--solvers", default="default",
                    help="solver order, e.g. HIGHS,CLARABEL (default: the library's size-based order)")
    ap.add_argument("--skip", type=int, default=0, help="skip the first N instances of the list")
    ap.add_argument("--stop-after-fail", type=int, default=2, help="stop after this many timeouts in a row")
    args = ap.parse_args(argv)
    print(f"{'V':>2} {'scheme':>15} {'trees':>8} {'sets':>7} {'vars':>8} {'rows':>6} {'enum s':>7} {'total s':>8} "
          f"{'solver':>8} {'E[tau]':>12} {'gap':>9}")
    largest, fails = None, 0
    for V, name in INSTANCES[args.skip:]:
        t0 = time.perf_counter()
        try:
            out = subprocess.run([sys.executable, "-c", _CHILD, str(V), name, args.solvers], capture_output=True,
                                 text=True, timeout=args.budget)
        except subprocess.TimeoutExpired:
            print(f"{V:>2} {name:>15}  -- not finished within {args.budget:.0f} s")
            fails += 1
            if fails >= args.stop_after_fail:
                break
            continue
        if out.returncode != 0:
            print(f"{V:>2} {name:>15}  -- failed: {out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}")
            continue
        fails = 0
        r = json.loads(out.stdout.strip().splitlines()[-1])
        wall = time.perf_counter() - t0
        print(f"{V:>2} {name:>15} {r['trees']:>8} {r['node_sets']:>7} {r['variables']:>8} {r['constraints']:>6} "
              f"{r['enum_s']:>7.2f} {r['total_s']:>8.2f} {r['solver']:>8} {r['expected_accepted']:>12.9f} "
              f"{r['gap']:>9.1e}  (wall {wall:.1f} s incl. imports)", flush=True)
        if largest is None or r["variables"] > largest[2]:
            largest = (V, name, r["variables"], r["total_s"])
    if largest:
        print(f"largest instance (by variables) within {args.budget:.0f} s: V={largest[0]} {largest[1]} "
              f"({largest[2]} variables, {largest[3]:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
