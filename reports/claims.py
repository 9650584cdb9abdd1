"""Report section 8: the seed papers' headline claims next to the measured values.

A thin section over :func:`specoracle.claims.claim_rows` (which does every measurement): one table
row per claim (paper, claim, measured here, verdict, deciding case). The quick preset uses the
smaller case list of ``claim_rows(quick=True)``. Measured cost on the 2-core machine: 5.2 CPU
seconds (quick preset) and 11.2 CPU seconds (full preset; 28 s wall while the machine was shared),
a small part of the full report's 15-minute budget; the DDTE selector rows add the scoring of the
four shipped selector checkpoints on 744 held-out roots (about 5 s wall under load, plus the torch
import).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .document import Section, Table

__all__ = ["claims"]


def claims(ctx, extra_rows: Sequence = ()) -> Section:
    """The claims table (``extra_rows``: further :class:`specoracle.claims.Claim` rows)."""
    from specoracle.claims import VERDICTS, claim_rows

    rows = claim_rows(extra_rows, quick=ctx.cfg.preset == "quick")
    counts = Counter(r.verdict for r in rows)
    table = Table(("paper", "claim", "measured here", "verdict", "deciding case"),
                  tuple((r.paper, r.claim, r.measured, r.verdict, r.deciding_case) for r in rows),
                  "exact values (enumeration, closed forms checked against it, LP bounds); toy and n-gram models")
    summary = (f"{len(rows)} headline claims of the seed papers measured on toy and character n-gram models "
               "(a toy model is not a real LLM: a verdict says whether a claim holds on these models): "
               + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".")
    return Section("claims", 8, "The seed papers' claims, measured", "ok", summary, (table,),
                   data=[r.to_dict() for r in rows])
