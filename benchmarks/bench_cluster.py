"""Sharded chi-squared campaigns: samples/s on 1 and 2 workers, and the time to a verdict on a
TV 2e-4 bug extrapolated to N workers.

Measured, in one run on this machine: a campaign (:class:`specoracle.campaign.Campaign`) of
``--samples`` samples of ``--verifier`` on ``--model`` / ``--scheme`` (default: BV on E5,
chain(2): 64 cells of the full law on V^3) in shards of ``--shard-size``, on 1 and on 2 local
worker processes (``--ray``: also on a local Ray cluster of 2 CPUs). The merged tables of the runs
are checked to be identical (the table does not depend on the number of workers).

Extrapolated, NOT measured: the samples a chi-squared test needs to detect TV ``--tv`` (default
2e-4, a float16 acceptance ratio or 8-bit uniforms) with power 0.99 at level 0.01 on those cells
come from the design of :func:`specoracle.stats.sample_size`; the time to the verdict on ``N``
workers is that ``n`` over ``N x (1-worker samples/s) x e``, where the parallel efficiency ``e`` is
the measured 2-worker rate over twice the 1-worker rate (capped at 1), assumed to hold at every
``N`` (it does not account for the driver merging tables, the network, or stragglers).

Usage::

    python benchmarks/bench_cluster.py --out benchmarks/out/bench_cluster
    python benchmarks/bench_cluster.py --samples 100000 --ray

Writes ``bench_cluster.md`` and ``bench_cluster.json`` to ``--out`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from specoracle import stats
from specoracle.campaign import Campaign
from specoracle.drafting import parse_scheme
from specoracle.execution import available_cpus
from specoracle.reports import parse_model

__all__ = ["measure", "extrapolate", "to_markdown", "main"]

WORKERS_EXTRAPOLATED = (1, 2, 8, 32, 128, 512, 2048)


def measure(verifier: str, model_name: str, scheme_name: str, n: int, shard_size: int, seed: int,
            backends: list[str]) -> dict:
    """One campaign per backend on the full law's cells: samples/s, shards, workers; the merged
    tables must agree."""
    model, scheme = parse_model(model_name), parse_scheme(scheme_name)
    length = scheme.depth + 1
    law = np.asarray(model.target_law(length), float)
    rows, tables = [], []
    for backend in backends:
        t = Campaign(backend, shard_size).tables(verifier, model, scheme, [law], [slice(None)], length=length, n=n,
                                                 seed=seed, name=verifier)
        tables.append(t.counts[0])
        rows.append({"backend": backend, "workers": t.workers, "shards": t.shards, "samples": t.n,
                     "seconds": round(t.seconds, 3), "samples_per_second": round(t.samples_per_second, 1)})
        print(f"  {backend:<8} {t.workers} workers: {t.samples_per_second:,.0f} samples/s "
              f"({t.n:,} samples, {t.shards} shards, {t.seconds:.1f} s)", file=sys.stderr, flush=True)
    same = all(np.array_equal(tables[0], x) for x in tables[1:])
    chi2 = stats.chi2_table(tables[0], law)
    return {"runs": rows, "tables_identical": same, "cells": int((law > 0).sum()), "p_value": chi2.p_value}


def extrapolate(rate_1: float, rate_2: float, *, cells: int, tv: float, power: float, alpha: float) -> dict:
    """The designed sample size for ``tv`` and the time to the verdict on N workers (an
    extrapolation: ``n / (N rate_1 e)``, ``e = min(1, rate_2 / (2 rate_1))``)."""
    n = stats.sample_size(tv, cells=cells, alpha=alpha, power=power)
    eff = min(1.0, rate_2 / (2 * rate_1))
    return {"tv": tv, "power": power, "alpha": alpha, "cells": cells, "samples_needed": n,
            "parallel_efficiency": round(eff, 3),
            "hours_to_verdict": {w: round(n / (w * rate_1 * eff) / 3600, 3) if w > 1 else round(n / rate_1 / 3600, 3)
                                 for w in WORKERS_EXTRAPOLATED}}


def to_markdown(res: dict) -> str:
    m, x = res["measured"], res["extrapolated"]
    lines = [f"# Sharded chi-squared campaigns: {res['verifier']} on {res['model']}, {res['scheme']}", "",
             f"Machine: {res['machine']['cpus']} CPUs ({res['machine']['platform']}), load average "
             f"{res['machine']['load_average']} at the start (shared machine: rates are noisy).", "",
             "## Measured", "", "| backend | workers | shards | samples | seconds | samples/s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['workers']} | {r['shards']} | {r['samples']:,} | {r['seconds']} | "
              f"{r['samples_per_second']:,.0f} |" for r in m["runs"]]
    lines += ["", f"Merged tables identical across backends and worker counts: {m['tables_identical']}; "
              f"chi-squared p-value of the merged table: {m['p_value']:.3g}.", "",
              "## Extrapolated (not measured)", "",
              f"Detecting TV {x['tv']} with power {x['power']} at level {x['alpha']} on {x['cells']} cells needs "
              f"n = {x['samples_needed']:,} samples (specoracle.stats.sample_size). Time to the verdict on N workers = "
              f"n / (N x 1-worker rate x e), with the parallel efficiency e = {x['parallel_efficiency']} measured "
              f"from 1 to 2 workers and ASSUMED constant in N:", "",
              "| workers N | hours to verdict |", "|---|---|"]
    lines += [f"| {w} | {h:,.3g} |" for w, h in x["hours_to_verdict"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--verifier", default="bv")
    ap.add_argument("--model", default="E5")
    ap.add_argument("--scheme", default="chain(2)")
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--shard-size", type=int, default=25_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tv", type=float, default=2e-4)
    ap.add_argument("--ray", action="store_true", help="also run on a local Ray cluster of 2 CPUs")
    ap.add_argument("--out", default="benchmarks/out/bench_cluster")
    args = ap.parse_args(argv)
    backends = ["local:1", "local:2"]
    if args.ray:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        backends.append("ray")
    machine = {"cpus": available_cpus(), "platform": platform.platform(),
               "load_average": [round(x, 2) for x in os.getloadavg()]}
    measured = measure(args.verifier, args.model, args.scheme, args.samples, args.shard_size, args.seed, backends)
    rate = {r["backend"]: r["samples_per_second"] for r in measured["runs"]}
    res = {"verifier": args.verifier, "model": args.model, "scheme": args.scheme, "machine": machine,
           "measured": measured,
           "extrapolated": extrapolate(rate["local:1"], rate["local:2"], cells=measured["cells"], tv=args.tv,
                                       power=0.99, alpha=0.01)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_cluster.json").write_text(json.dumps(res, indent=1))
    (out / "bench_cluster.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0 if measured["tables_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
