"""RSBV against the universal LP, next to GBV, UniVer and spectr_gbv_lossless, for K = 1..4.

For each model (E1-E5 and the README's character n-gram model ``ngram:4``: trigram target,
unigram draft, V = 4) and ``iid(K, L)`` with ``L = 2``, prints the block efficiency ``E[tau] + 1``
of each verifier and its percentage of the universal LP bound (:func:`specoracle.lp.universal_bound`,
the best any iteration-wise lossless verifier can do with the same drafts). Every number is exact:
RSBV and GBV from their closed forms (:func:`specoracle.reference.rsbv.expected_accepted`,
:func:`specoracle.reference.gbv.expected_accepted`, both tested against the exact engine), UniVer by
the exact engine. ``spectr_gbv_lossless`` is stateful (greedy, with a modified target), so its
column is a different quantity: exact tokens per target call over whole 5-token sequences
(:func:`specoracle.exact.sequence_law`), computed where one call has at most ``--max-trees`` draft
trees ("–" otherwise); it can exceed the LP, which bounds memoryless verifiers only.

Usage::

    python benchmarks/rsbv_lp.py --out benchmarks/out/rsbv_lp
    python benchmarks/rsbv_lp.py --models E1 E2 --ks 1 2 3

Writes ``rsbv_lp.md`` and ``rsbv_lp.json`` to ``--out`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from specoracle import drafting, examples, exact
from specoracle.lp import universal_bound
from specoracle.reference import gbv, rsbv

__all__ = ["MODELS", "compute", "to_markdown", "main"]

MODELS = ("E1", "E2", "E3", "E4", "E5", "ngram:4")
DASH = "–"


def _model(name: str):
    if name.startswith("ngram:"):
        from specoracle.models import ngram_pair

        return ngram_pair(vocab=int(name.split(":")[1]), target_order=3, draft_order=1, name=name)
    return examples.get(name)


def compute(models=MODELS, ks=(1, 2, 3, 4), L: int = 2, *, max_trees: int = 256, progress=None) -> dict:
    """Rows ``{"model", "K", "lp", "rsbv", "gbv", "univer", "spectr_gbv_lossless", "seconds"}`` (block
    efficiencies; ``spectr_gbv_lossless``: tokens per call over 5-token sequences, or None)."""
    rows = []
    for name in models:
        m = _model(name)
        for K in ks:
            t0 = time.perf_counter()
            s = drafting.iid(K, L)
            row = {
                "model": name, "K": K, "L": L,
                "lp": float(universal_bound(m, s).block_efficiency),
                "rsbv": float(rsbv.expected_accepted(m, s)) + 1,
                "gbv": float(gbv.expected_accepted(m, s)) + 1,
                "univer": float(exact.evaluate("univer", m, s).block_efficiency),
                "spectr_gbv_lossless": (float(exact.sequence_law("spectr_gbv_lossless", m, s, 5).tokens_per_call)
                                        if m.V ** (K * L) <= max_trees else None),
            }
            row["seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            if progress:
                progress(f"{name} K={K}: " + ", ".join(f"{k}={v:.4f}" for k, v in row.items()
                                                       if isinstance(v, float) and k != "seconds"))
    return {"rows": rows}


def _pct(x, lp) -> str:
    return DASH if x is None else f"{x:.4f} ({100 * x / lp:.1f}%)"


def to_markdown(table: dict) -> str:
    """One row per (model, K): LP, then each verifier with its % of the LP."""
    lines = [
        "# RSBV against the universal LP (iid(K, 2), block efficiency E[tau] + 1, % of the LP)",
        "",
        "Exact values. spectr_gbv_lossless: tokens per call over 5-token sequences, a different quantity "
        "(stateful; no % of the per-call LP, which bounds memoryless verifiers); "
        f"{DASH} where the exact sequence enumeration is too large.",
        "",
        "| model | K | universal LP | rsbv | gbv | univer | spectr_gbv_lossless |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table["rows"]:
        greedy = r["spectr_gbv_lossless"]
        lines.append(f"| {r['model']} | {r['K']} | {r['lp']:.4f} | " + " | ".join(
            _pct(r[k], r["lp"]) for k in ("rsbv", "gbv", "univer"))
            + f" | {DASH if greedy is None else f'{greedy:.4f}'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """CLI entry point (see module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/rsbv_lp"))
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--ks", nargs="+", type=int, default=[1, 2, 3, 4])
    ap.add_argument("--max-trees", type=int, default=256)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    table = compute(args.models, tuple(args.ks), max_trees=args.max_trees,
                    progress=None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True)))
    table["config"] = {"models": args.models, "ks": args.ks, "L": 2, "max_trees": args.max_trees,
                       "python": platform.python_version(), "seconds": round(time.perf_counter() - t0, 1)}
    md = to_markdown(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rsbv_lp.md").write_text(md)
    (args.out / "rsbv_lp.json").write_text(json.dumps(table, indent=2))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
