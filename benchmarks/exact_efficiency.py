"""Exact block efficiency ``E[tau] + 1`` of every registered verifier on small models and schemes.

Loops over :func:`specoracle.registry.entries` (so every reference module's verifiers appear) and
evaluates each with the exact engine on E2 and E3 under ``iid(2,2)``, ``iid(3,2)``,
``delayed(2,1,1)``, ``delayed(3,1,1)``, ``wor(2,1)``, ``wor(2,2)``. A verifier that does not
accept a scheme gets "–". Cells are exact (enumeration of all draft trees and verifier coins), so
no seeds are involved. Cells whose extended law is off by more than 1e-12 are marked ``!`` (not
iteration-wise lossless); stateful verifiers are evaluated per iteration from the initial state
and marked ``*`` (no ``!``; their per-iteration error is in the JSON) (their per-iteration value is not comparable with memoryless verifiers; judge them
with ``specoracle.exact.sequence_law``).

Usage::

    python benchmarks/exact_efficiency.py --out benchmarks/out/exact_efficiency
    python benchmarks/exact_efficiency.py --models E2 --schemes "iid(2,2)" --verifiers traversal gbv

Writes ``exact_efficiency.md`` and ``exact_efficiency.json`` to ``--out`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from specoracle import drafting, examples, exact, registry

__all__ = ["DEFAULT_MODELS", "DEFAULT_SCHEMES", "compute", "to_markdown", "main"]

DEFAULT_MODELS = ("E2", "E3")
DEFAULT_SCHEMES = ("iid(2,2)", "iid(3,2)", "delayed(2,1,1)", "delayed(3,1,1)", "wor(2,1)", "wor(2,2)")
DASH = "–"


def compute(models=DEFAULT_MODELS, schemes=DEFAULT_SCHEMES, verifiers=None, *, progress=None) -> dict:
    """Exact results for every (verifier, model, scheme) cell.

    Returns a JSON-ready dict: ``{"models", "schemes", "rows": [{"verifier", "stateful",
    "claimed_lossless", "cells": {"E2|iid(2,2)": {"block_efficiency", "max_error", "seconds"} or
    None}}]}``.
    """
    entries = registry.entries()
    if verifiers:
        entries = [registry.get(v) for v in verifiers]
    rows = []
    for entry in entries:
        cells = {}
        for m_name in models:
            model = examples.get(m_name)
            for s_text in schemes:
                scheme = drafting.parse_scheme(s_text)
                key = f"{m_name}|{scheme.name}"
                if not entry.accepts(scheme):
                    cells[key] = None
                    continue
                t0 = time.perf_counter()
                try:
                    res = exact.evaluate(entry, model, scheme)
                except Exception as exc:  # a broken verifier must not hide the others' numbers
                    cells[key] = {"error": f"{type(exc).__name__}: {exc}"}
                    continue
                cells[key] = {
                    "block_efficiency": float(res.block_efficiency),
                    "max_error": float(res.max_error),
                    "seconds": round(time.perf_counter() - t0, 3),
                }
                if progress:
                    progress(f"{entry.name:>22s} {key:>22s} BE={float(res.block_efficiency):.6f} "
                             f"err={float(res.max_error):.1e}")
        rows.append({
            "verifier": entry.name,
            "family": entry.family,
            "stateful": entry.stateful,
            "claimed_lossless": entry.lossless,
            "cells": cells,
        })
    return {"models": list(models), "schemes": [drafting.parse_scheme(s).name for s in schemes], "rows": rows}


def _cell_text(cell, stateful: bool) -> str:
    if cell is None:
        return DASH
    if "error" in cell:
        return "error"
    text = f"{cell['block_efficiency']:.6f}"
    if stateful:  # greedy per-iteration laws are off by design; the criterion is the sequence law
        return text + " *"
    if cell["max_error"] > 1e-12:
        text += " !"
    return text


def to_markdown(table: dict) -> str:
    """The table as GitHub markdown: one row per verifier, one column per (model, scheme)."""
    cols = [f"{m}|{s}" for m in table["models"] for s in table["schemes"]]
    head = "| verifier | " + " | ".join(c.replace("|", " ") for c in cols) + " |"
    sep = "|---|" + "---|" * len(cols)
    lines = [
        "# Exact block efficiency E[tau] + 1",
        "",
        "Exact enumeration over all draft trees and verifier coins (no sampling). "
        f"{DASH} = scheme not accepted; ! = extended-law error > 1e-12 (not iteration-wise lossless); "
        "* = stateful, first iteration only: E[tau] + 1 of one call from the initial state; its "
        "per-iteration law is not the criterion (judge with sequence_law; spectr_gbv is lossy there, "
        "spectr_gbv_lossless is not).",
        "",
        head,
        sep,
    ]
    for row in table["rows"]:
        lines.append(f"| {row['verifier']} | " + " | ".join(_cell_text(row["cells"].get(c), row["stateful"])
                                                           for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=False).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv=None) -> int:
    """CLI entry point (see module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/exact_efficiency"))
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--schemes", nargs="+", default=list(DEFAULT_SCHEMES))
    ap.add_argument("--verifiers", nargs="+", default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    table = compute(args.models, args.schemes, args.verifiers,
                    progress=None if args.quiet else (lambda s: print(s, file=sys.stderr)))
    table["config"] = {
        "models": args.models, "schemes": args.schemes, "verifiers": args.verifiers,
        "commit": _commit(), "python": platform.python_version(),
        "seconds": round(time.perf_counter() - t0, 2), "seed": None,
    }
    md = to_markdown(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "exact_efficiency.md").write_text(md)
    (args.out / "exact_efficiency.json").write_text(json.dumps(table, indent=2))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
