"""Train and evaluate the delay-and-branch selector (issue 8; ALGORITHMS.md §8.4).

Usage::

    python benchmarks/train_selector.py                 # train on the shipped data, evaluate
    python benchmarks/train_selector.py --regenerate    # rebuild the data first (8-18 min on 2 busy cores)
    python benchmarks/train_selector.py --save          # also overwrite the shipped checkpoint
                                                        # (and the data when regenerated)

Prints held-out throughput and block efficiency of the selector, the best static action, the
best static action per temperature, the per-context oracle and traversal with its best static
action, the margin over the best static action and the gap to the oracle, training time and data
size. Throughput is in tokens per unit of draft-step time under the latency model.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

from specoracle import selector as S
from specoracle.selector import data as SD


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regenerate", action="store_true", help="rebuild the training data")
    ap.add_argument("--contexts", type=int, default=SD.DataConfig().n_contexts)
    ap.add_argument("--samples", type=int, default=SD.DataConfig().samples)
    ap.add_argument("--verifier", default=SD.DataConfig().verifier, help="top-down method name (registry)")
    ap.add_argument("--no-traversal", action="store_true", help="skip scoring traversal on the same trees")
    ap.add_argument("--epochs", type=int, default=S.TrainConfig().epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--t-target", type=float, default=S.LatencyModel().t_target,
                    help="target call cost in units of one draft step (evaluation latency)")
    ap.add_argument("--save", action="store_true", help="overwrite specoracle/data/selector{.pt,_data.npz}")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)

    if args.regenerate:
        cfg = SD.DataConfig(n_contexts=args.contexts, samples=args.samples, verifier=args.verifier,
                            traversal=None if args.no_traversal else "traversal", seed=args.seed)
        t0 = time.perf_counter()
        data = SD.generate(cfg, progress=True)
        print(f"data: {len(data.be)} roots in {time.perf_counter() - t0:.1f} s; {data.describe()}")
        if args.save:
            data.save(S.DEFAULT_DATA)
            print(f"saved {S.DEFAULT_DATA} ({S.DEFAULT_DATA.stat().st_size / 1e6:.2f} MB)")
    else:
        data = SD.load_default()
        print(f"data: shipped {S.DEFAULT_DATA} ({S.DEFAULT_DATA.stat().st_size / 1e6:.2f} MB); {data.describe()}")

    cfg = S.TrainConfig(epochs=args.epochs, seed=args.seed)
    res = S.train(data, cfg)
    sel = res.selector
    print(f"training: {res.seconds:.1f} s, {res.steps} steps, best epoch {res.best_epoch + 1}/{args.epochs}")
    if args.save:
        S.save_checkpoint(sel, S.DEFAULT_CHECKPOINT)
        print(f"saved {S.DEFAULT_CHECKPOINT} ({S.DEFAULT_CHECKPOINT.stat().st_size / 1e3:.0f} kB)")

    lat = replace(sel.latency, t_target=args.t_target)
    ev = S.evaluate(sel, data, latency=lat)
    if args.json:
        out = ev.as_dict()
        out.update(train_seconds=res.seconds, data=data.describe())
        print(json.dumps(out, indent=1))
        return 0
    print(f"\nheld-out roots: {ev.n_contexts}  verifier: {ev.verifier}  latency: {lat}")
    print(f"{'policy':<28}{'TPS':>9}{'agg TPS':>9}{'BE':>8}{'T(a)':>8}  action (most used) / #distinct")
    rows = [ev.selector, ev.best_static, ev.static_per_temperature, ev.oracle] + ([ev.traversal] if ev.traversal else [])
    for r in rows:
        print(f"{r.name:<28}{r.throughput:9.4f}{r.aggregate_throughput:9.4f}{r.block_efficiency:8.3f}"
              f"{r.latency:8.2f}  {r.action} / {r.n_distinct}")
    print(f"\nmargin over best static (TPS): {100 * ev.margin:+.2f} %")
    print(f"gap to per-context oracle (TPS): {100 * ev.oracle_gap:.2f} %")
    if ev.traversal:
        print(f"selector vs traversal best static (TPS): {100 * (ev.selector.throughput / ev.traversal.throughput - 1):+.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
