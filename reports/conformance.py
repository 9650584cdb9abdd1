"""Report section 9: real engines' conformance through the shipped adapters.

A thin section over :func:`specoracle.adapters.conformance.conformance` (which runs every case):
one table row per case (engine, case, expected, verdict, n, detectable TV, both stages' p-values,
version or install command). Engines that are not installed are rows marked ``skipped`` with the
install command, so the section is complete on any machine. The quick preset runs one cheap
lossless case per installed engine at design TV 0.1 (12.5 CPU seconds measured with transformers
and EAGLE, their imports included; 19 at TV 0.05); the full
preset every case (about a minute of CPU with transformers and EAGLE, plus vLLM's import when it
is installed).

Status: ``fail`` when a verdict differs from the expected one or an engine raised,
``inconclusive`` when a case could not decide, else ``ok`` (skipped engines do not count).
"""
from __future__ import annotations

from collections import Counter

from .document import Section, Table

__all__ = ["engines"]


def engines(ctx) -> Section:
    """The conformance table of every engine (section 9)."""
    from specoracle.adapters.conformance import ALPHA, conformance
    from specoracle.stats import derive_seed, false_alarm_rate

    quick = ctx.cfg.preset == "quick"
    rows = conformance(seed=derive_seed(ctx.cfg.seed, "engines"), quick=quick)

    def num(x, fmt):
        return "-" if x is None else format(x, fmt)

    table = Table(
        ("engine", "case", "expected", "verdict", "n", "detectable TV", "p", "p confirmation", "seconds",
         "version", "note"),
        tuple((r.engine, r.case, r.expected, r.verdict, num(r.n, "d"), num(r.detectable_tv, ".3f"),
               num(r.p_value, ".3g"), num(r.p_confirm, ".3g"), f"{r.seconds:.1f}", r.version or "-", r.note)
              for r in rows),
        f"specoracle.check.check_lossless (chi-squared, power 0.99 at the case's TV) through the shipped adapters; "
        f"one family: Holm at alpha {ALPHA} at both stages, a flag confirmed on an independent seed "
        f"(false alarm on a lossless table <= {false_alarm_rate(ALPHA):.0e})")
    counts = Counter(r.verdict for r in rows)
    bad = [f"{r.engine} {r.case}" for r in rows if r.agrees is False or r.verdict == "error"]
    status = "fail" if bad else ("inconclusive" if counts["inconclusive"] else "ok")
    ran = sorted({r.engine for r in rows if r.verdict != "skipped"})
    skipped = sorted({r.engine for r in rows if r.verdict == "skipped"})
    summary = (f"{len(rows)} {'quick ' if quick else ''}cases of real verification kernels through the shipped "
               f"adapters: " + ", ".join(f"{counts[v]} {v}" for v in sorted(counts)) + ". "
               + (f"Engines run: {', '.join(ran)}. " if ran else "No engine is installed. ")
               + (f"Not installed (skipped, see the install command): {', '.join(skipped)}. " if skipped else "")
               + (f"Differs from the expected verdict: {', '.join(bad)}." if bad else
                  "Every engine that ran behaved as expected (lossy cases are documented knobs or known bugs)."))
    return Section("engines", 9, "Real engines' conformance", status, summary, (table,),
                   data=[r.as_dict() for r in rows])
