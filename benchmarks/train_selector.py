"""Train and evaluate the delay-and-branch selector (issues 8 and 17; ALGORITHMS.md §8.4).

Usage::

    python benchmarks/train_selector.py --kind joint --seed 0         # train on the shipped data, evaluate
    python benchmarks/train_selector.py --kind joint --seed 0 --save  # also overwrite the shipped checkpoint
    python benchmarks/train_selector.py --regenerate                   # rebuild the data first (16+ min on 2 busy cores)
    python benchmarks/train_selector.py --measure-costs                # re-time the twins (selector_costs.json)
    python benchmarks/train_selector.py --margins                      # the shipped checkpoints' margins only

``--kind specinfer``: the selector picks ``(K, L1, L2)`` for SpecInfer (DDTE's setting);
``--kind joint``: it also picks the verifier among ``--verifiers`` (default: specinfer, traversal).
Both train under the measured latency model (:meth:`specoracle.selector.LatencyModel.measured`:
every verifier pays its measured twin cost). Prints held-out throughput and block efficiency of
the selector, its best static joint action, the best static action per temperature, the
per-context oracle and every verifier at its best static action, and the margins.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from specoracle import selector as S
from specoracle.selector import costs
from specoracle.selector import data as SD
from specoracle.selector.policy import CHECKPOINTS

KINDS = {"specinfer": ("specinfer",), "joint": ("specinfer", "traversal")}


def measure_costs() -> None:
    from specoracle.gpu import bench

    torch.set_num_threads(1)
    schemes = ("chain(4)", "iid(2,2)", "delayed(2,1,2)", "iid(4,2)", "delayed(4,2,2)")
    rows = bench(["specinfer", "spectr", "traversal", "gbv", "khisti", "univer"], B=32, V=8192, schemes=schemes,
                 repeats=5, reference_instances=2)
    payload = json.loads(costs.COSTS_FILE.read_text()) if costs.COSTS_FILE.exists() else {}
    payload["rows"] = [dict(name=r.name, scheme=r.scheme, B=r.B, N=r.N, V=r.V, twin_s=None if r.twin_s != r.twin_s else r.twin_s,
                            roofline_s=r.roofline_s, reference_s=r.reference_s, note=r.note) for r in rows]
    costs.COSTS_FILE.write_text(json.dumps(payload, indent=1))
    print(json.dumps(payload["rows"], indent=1))


def print_margins() -> None:
    for m in S.margins():
        print(f"{m.kind:<9} seed {m.seed}: selector {m.selector:.4f}; over traversal best static "
              f"{100 * m.over_traversal:+.2f} %; over best static " + ", ".join(
                  f"{v} {100 * x:+.2f} % ({m.static[v]:.4f} at {m.static_action[v]})" for v, x in m.over_static.items())
              + "; verifiers chosen " + ", ".join(f"{v} {100 * x:.0f} %" for v, x in m.choices.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regenerate", action="store_true", help="rebuild the training data")
    ap.add_argument("--contexts", type=int, default=SD.DataConfig().n_contexts)
    ap.add_argument("--samples", type=int, default=SD.DataConfig().samples)
    ap.add_argument("--kind", choices=sorted(KINDS), default="joint")
    ap.add_argument("--epochs", type=int, default=S.TrainConfig().epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", action="store_true", help="overwrite the shipped checkpoint (and the data when regenerated)")
    ap.add_argument("--measure-costs", action="store_true", help="time the twins and rewrite selector_costs.json")
    ap.add_argument("--margins", action="store_true", help="print the shipped checkpoints' margins and exit")
    ap.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    args = ap.parse_args(argv)

    if args.measure_costs:
        measure_costs()
        return 0
    if args.margins:
        print_margins()
        return 0
    if args.regenerate:
        cfg = SD.DataConfig(n_contexts=args.contexts, samples=args.samples)
        t0 = time.perf_counter()
        data = SD.generate(cfg, progress=True)
        print(f"data: {len(data.be)} roots in {time.perf_counter() - t0:.1f} s; {data.describe()}")
        if args.save:
            data.save(SD.DEFAULT_DATA)
            print(f"saved {SD.DEFAULT_DATA} ({SD.DEFAULT_DATA.stat().st_size / 1e6:.2f} MB)")
    else:
        data = SD.load_default()
        print(f"data: shipped {SD.DEFAULT_DATA} ({SD.DEFAULT_DATA.stat().st_size / 1e6:.2f} MB); {data.describe()}")

    lat = S.LatencyModel.measured()
    cfg = S.TrainConfig(epochs=args.epochs, seed=args.seed, verifiers=KINDS[args.kind], latency=lat)
    res = S.train(data, cfg)
    sel = res.selector
    print(f"training: {res.seconds:.1f} s, {res.steps} steps, best epoch {res.best_epoch + 1}/{args.epochs}")
    if args.save:
        path = CHECKPOINTS[(args.kind, args.seed)]
        S.save_checkpoint(sel, path)
        print(f"saved {path} ({path.stat().st_size / 1e3:.0f} kB)")
    ev = S.evaluate(sel, data)
    if args.json:
        out = ev.as_dict()
        out.update(train_seconds=res.seconds, data=data.describe())
        print(json.dumps(out, indent=1))
        return 0
    print(f"\nheld-out roots: {ev.n_contexts}  verifiers: {ev.verifiers}  latency: {lat}")
    print(f"{'policy':<28}{'TPS':>9}{'agg TPS':>9}{'BE':>8}{'T(a)':>8}  verifier, action (most used) / #distinct")
    for r in [ev.selector, ev.best_static, ev.static_per_temperature, ev.oracle, *ev.static.values()]:
        print(f"{r.name:<28}{r.throughput:9.4f}{r.aggregate_throughput:9.4f}{r.block_efficiency:8.3f}"
              f"{r.latency:8.2f}  {r.verifier}, {r.action} / {r.n_distinct}")
    print(f"\nmargin over its best static (TPS): {100 * ev.margin:+.2f} %")
    print(f"gap to per-context oracle (TPS): {100 * ev.oracle_gap:.2f} %")
    for v, m in ev.margins.items():
        print(f"selector vs {v} best static (TPS): {100 * m:+.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
