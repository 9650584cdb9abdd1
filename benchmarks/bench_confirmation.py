"""The confirmation protocol's false-alarm rate, measured, and its power on real bugs.

:func:`specoracle.check.check_lossless` calls a verifier ``not lossless`` only when a chi-squared
rejection is confirmed on an independent seed at the same ``n`` (:mod:`specoracle.stats`, the
confirmation protocol). For a lossless verifier the two stages reject independently with
probability ``alpha`` each, so a confirmed false alarm has probability ``alpha^2``.

Part 1 (false alarms). Every registered lossless one-step verifier x the models ``E1``-``E5``,
``HSDTOY`` and ``random:3:7`` x ``--seeds`` seeds (13 x 7 x 3 = 273 checks by default), each a
chi-squared check of ``--n`` samples (small: under H0 the p-value is uniform whatever ``n``). Run at
``alpha = 0.1`` (the largest level tabulated), which also records the confirmation p-value of every
check that any smaller level flags, so one run gives the rates at ``alpha`` = 0.1, 0.05 and 0.01:
first-stage flags (expected ``alpha``), confirmed flags (expected ``alpha^2``).

Part 2 (power). Mutants of :mod:`specoracle.mutants` whose exact TV from the target law is at least
``--min-tv``, each checked at the design ``tv`` = its exact TV (power 0.99 per stage, so >= 0.98
confirmed) on ``--mutant-seeds`` seeds: how many are confirmed ``not lossless``.

Usage::

    python benchmarks/bench_confirmation.py                 # about 5 minutes on 2 shared cores
    python benchmarks/bench_confirmation.py --seeds 1 --n 500 --mutant-seeds 1

Prints both tables and writes ``confirmation.json`` to ``--out`` (default benchmarks/out/confirmation).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from specoracle import examples, exact, mutants, registry, stats
from specoracle.check import NOT_LOSSLESS, check_lossless
from specoracle.drafting import parse_scheme
from specoracle.reports import parse_model

__all__ = ["MODELS", "LEVELS", "scheme_for", "false_alarms", "mutant_power", "main"]

MODELS = ("E1", "E2", "E3", "E4", "E5", "HSDTOY", "random:3:7")
LEVELS = (0.1, 0.05, 0.01)


def scheme_for(entry: registry.Entry) -> str:
    """A small scheme the verifier accepts: chain(2), else wor(2,1) for without-replacement
    verifiers, else iid(2,1)."""
    if entry.schemes == {"chain"}:
        return "chain(2)"
    return "wor(2,1)" if "without_replacement" in entry.schemes else "iid(2,1)"


def false_alarms(seeds: int, n: int) -> list[dict]:
    """One row per lossless check: verifier, model, scheme, seed, both stages' p-values (the
    confirmation's only where the first stage rejected at ``max(LEVELS)``)."""
    rows = []
    verifiers = [e for e in registry.entries() if e.lossless and not e.stateful]
    for e in verifiers:
        for model in MODELS:
            for s in range(seeds):
                seed = stats.derive_seed(s, "bench_confirmation", e.name, model)
                v = check_lossless(e.name, parse_model(model), scheme_for(e), method="chi2", n=n,
                                   alpha=max(LEVELS), seed=seed)
                rows.append({"verifier": e.name, "model": model, "scheme": scheme_for(e), "seed": seed, "n": n,
                             "p_first": v.stages[0].p_value,
                             "p_confirm": v.stages[1].p_value if len(v.stages) > 1 else None})
    return rows


def rates(rows: list[dict], alpha: float) -> dict:
    """First-stage and confirmed flags among ``rows`` at level ``alpha``."""
    first = [r for r in rows if r["p_first"] <= alpha]
    confirmed = [r for r in first if r["p_confirm"] <= alpha]
    m = len(rows)
    return {"alpha": alpha, "checks": m, "first_stage_flags": len(first), "first_stage_rate": len(first) / m,
            "confirmed_flags": len(confirmed), "confirmed_rate": len(confirmed) / m,
            "expected_first": alpha, "expected_confirmed": stats.false_alarm_rate(alpha),
            "confirmed": [f"{r['verifier']} {r['model']} seed {r['seed']}" for r in confirmed]}


def mutant_power(min_tv: float, seeds: int) -> list[dict]:
    """One row per mutant check: exact TV, n, both stages, confirmed or not."""
    rows = []
    for m in mutants.catalog():
        model, scheme = examples.get(m.model), parse_scheme(m.scheme)
        r = exact.evaluate(m.verify, model, scheme)
        tv = stats.tv_distance(np.asarray(r.extended_law, float), np.asarray(r.target_law, float))
        if tv < min_tv:
            continue
        for s in range(seeds):
            v = check_lossless(m.verify, model, scheme, method="chi2", tv=min(tv, 0.5), seed=s)
            rows.append({"mutant": m.name, "model": m.model, "scheme": m.scheme, "exact_tv": tv, "n": v.n, "seed": s,
                         "p_first": v.stages[0].p_value,
                         "p_confirm": v.stages[1].p_value if len(v.stages) > 1 else None,
                         "status": v.status, "confirmed": v.status == NOT_LOSSLESS})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds per verifier x model (default 3)")
    ap.add_argument("--n", type=int, default=1000, help="samples per lossless check (default 1000)")
    ap.add_argument("--min-tv", type=float, default=0.04, help="mutants with at least this exact TV")
    ap.add_argument("--mutant-seeds", type=int, default=2, help="seeds per mutant (default 2)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/confirmation"))
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    rows = false_alarms(args.seeds, args.n)
    t1 = time.perf_counter()
    table = [rates(rows, a) for a in LEVELS]
    print(f"False alarms: {len(rows)} lossless checks (registered lossless verifiers x {len(MODELS)} models x "
          f"{args.seeds} seeds, n = {args.n}), {t1 - t0:.0f} s")
    print(f"{'alpha':>6} {'checks':>7} {'1st-stage flags':>16} {'rate':>7} {'expected':>9} "
          f"{'confirmed':>10} {'rate':>8} {'expected':>9}")
    for t in table:
        print(f"{t['alpha']:>6} {t['checks']:>7} {t['first_stage_flags']:>16} {t['first_stage_rate']:>7.3f} "
              f"{t['expected_first']:>9.3g} {t['confirmed_flags']:>10} {t['confirmed_rate']:>8.4f} "
              f"{t['expected_confirmed']:>9.3g}")
    for t in table:
        if t["confirmed"]:
            print(f"  confirmed at alpha {t['alpha']}: {', '.join(t['confirmed'])}")

    power = mutant_power(args.min_tv, args.mutant_seeds)
    t2 = time.perf_counter()
    hit = sum(r["confirmed"] for r in power)
    print(f"\nReal bugs: {len(power)} checks of {len({r['mutant'] for r in power})} mutants (exact TV >= "
          f"{args.min_tv}, designed at their TV, alpha 0.01, power 0.99 per stage), {t2 - t1:.0f} s")
    print(f"{'mutant':<30} {'model':<6} {'scheme':<15} {'TV':>6} {'n':>6} {'seed':>4} {'p first':>10} "
          f"{'p confirm':>10}  status")
    for r in power:
        pc = "-" if r["p_confirm"] is None else f"{r['p_confirm']:.3g}"
        print(f"{r['mutant']:<30} {r['model']:<6} {r['scheme']:<15} {r['exact_tv']:>6.3f} {r['n']:>6} {r['seed']:>4} "
              f"{r['p_first']:>10.3g} {pc:>10}  {r['status']}")
    print(f"confirmed not lossless: {hit}/{len(power)} (expected >= 0.98 each)")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "confirmation.json").write_text(json.dumps(
        {"command": "python benchmarks/bench_confirmation.py", "args": {k: str(v) for k, v in vars(args).items()},
         "false_alarms": table, "checks": rows, "mutants": power,
         "seconds": {"false_alarms": t1 - t0, "mutants": t2 - t1}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
