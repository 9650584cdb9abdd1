"""Fan independent work out over an executor: a portfolio of cases, exact results, LP solves,
report sections.

A *case* is any triple ``(verifier, model, scheme)`` (a tuple, or an object with those three
attributes, such as a portfolio row): registry or mutant names, example or command-line model
names (``"E2"``, ``"random:8:0"``, ``"ngram:4"``, parsed on the worker by
:func:`specoracle.reports.parse_model`) and scheme names (``"iid(2,2)"``) travel as text; objects
travel pickled (Ray: cloudpickled). :func:`map_cases` runs ``fn(verifier, model, scheme,
**options)`` once per case on the executor and returns the results in the order of the cases; a
case that raises stops the run with :class:`~specoracle.execution.TaskFailed` naming it.

- :func:`check_cases`: :func:`specoracle.check.check_lossless` per case (the detection portfolio);
- :func:`exact_cases`: :func:`specoracle.exact.evaluate` per case;
- :func:`bound_cases`: LP bounds of :mod:`specoracle.lp`, cases ``(bound, model, scheme)``;
- :func:`run_sections`: the report's sections, one task each (figures come back as PNG bytes).

>>> [v.status for v in check_cases([("naive", "E1", "chain(2)"), ("bv", "E5", "chain(2)")], executor="local:1")]
['lossless', 'lossless']
"""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence

from .execution import get_executor

__all__ = ["as_case", "case_label", "map_cases", "check_cases", "exact_cases", "BOUNDS", "bound_cases",
           "run_sections", "PngFigure"]


def as_case(case) -> tuple:
    """``(verifier, model, scheme)`` of a tuple or of an object with those attributes."""
    if all(hasattr(case, a) for a in ("verifier", "model", "scheme")):
        return case.verifier, case.model, case.scheme
    from .errors import InvalidArgument

    try:
        verifier, model, scheme = case
    except (TypeError, ValueError):
        raise InvalidArgument(f"a case is (verifier, model, scheme) or has those attributes, got {case!r}") from None
    return verifier, model, scheme


def _name(x) -> str:
    return x if isinstance(x, str) else getattr(x, "name", None) or getattr(x, "__name__", None) or type(x).__name__


def case_label(case) -> str:
    """``"case (bv, E2, chain(2))"``: how errors and progress name a case."""
    return "case (" + ", ".join(_name(x) for x in as_case(case)) + ")"


def _objects(verifier, model, scheme) -> tuple:
    """Names made objects on the worker: models by :func:`specoracle.reports.parse_model`, schemes
    by :func:`specoracle.drafting.parse_scheme` (verifier names are resolved by the callee)."""
    from .drafting import parse_scheme
    from .reports import parse_model

    return verifier, parse_model(model) if isinstance(model, str) else model, \
        parse_scheme(scheme) if isinstance(scheme, str) else scheme


def _run_case(shared, case):
    fn, options = shared
    return fn(*_objects(*as_case(case)), **options)


def map_cases(fn: Callable, cases: Sequence, *, executor="local", progress: bool = False, **options) -> list:
    """``[fn(verifier, model, scheme, **options) for each case]``, run on ``executor``.

    Parameters
    ----------
    fn : a module-level function (it is sent to the workers).
    cases : triples ``(verifier, model, scheme)`` or objects with those attributes.
    executor : an :class:`~specoracle.execution.Executor` or its name (``"local"``, ``"ray"``, ...).
    progress : a bar on stderr counting finished cases.
    """
    cases = list(cases)
    for c in cases:
        as_case(c)  # refuse a malformed case before any work
    ex = get_executor(executor)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cases), desc=f"{getattr(fn, '__name__', 'cases')} on {ex.workers} {ex.name} workers",
                   unit="cases", file=sys.stderr, leave=False, dynamic_ncols=True)
    try:
        return ex.map(_run_case, (fn, options), cases, label=case_label,
                      on_result=None if bar is None else (lambda i, r: bar.update(1)))
    finally:
        if bar is not None:
            bar.close()


def _check(verifier, model, scheme, **options):
    from .check import check_lossless

    return check_lossless(verifier, model, scheme, **options)


def check_cases(cases: Sequence, *, executor="local", progress: bool = False, **check_options) -> list:
    """:func:`specoracle.check.check_lossless` on every case (one task each; a case's own samples
    are drawn in its task), Verdicts in the order of the cases. ``check_options`` as there
    (``method``, ``n``, ``seed``, ``tv``, ...; ``progress`` here is the bar over cases)."""
    return map_cases(_check, cases, executor=executor, progress=progress, **check_options)


def _exact(verifier, model, scheme, **options):
    from .exact import evaluate

    return evaluate(verifier, model, scheme, **options)


def exact_cases(cases: Sequence, *, executor="local", progress: bool = False, **options) -> list:
    """:func:`specoracle.exact.evaluate` on every case, ExactResults in the order of the cases."""
    return map_cases(_exact, cases, executor=executor, progress=progress, **options)


BOUNDS = ("universal_bound", "path_selection_bound", "coverage_bound", "single_path_bound")
"""LP bounds :func:`bound_cases` solves (functions of :mod:`specoracle.lp`)."""


def _bound(bound, model, scheme, **options):
    from . import lp
    from .errors import unknown_name

    if bound not in BOUNDS:
        raise unknown_name("bound", bound, BOUNDS)
    if bound == "single_path_bound":
        return lp.single_path_bound(model, scheme.depth, **options)
    return getattr(lp, bound)(model, scheme, **options)


def bound_cases(cases: Sequence, *, executor="local", progress: bool = False, **options) -> list:
    """A batch of LP solves: cases ``(bound, model, scheme)`` with ``bound`` in :data:`BOUNDS`
    (``single_path_bound`` takes the scheme's depth), Bounds in the order of the cases."""
    return map_cases(_bound, cases, executor=executor, progress=progress, **options)


# --- report sections ---------------------------------------------------------------------------
class PngFigure:
    """A figure drawn on a worker, carried back as PNG bytes: ``draw(path)`` writes them."""

    def __init__(self, png: bytes) -> None:
        self.png = png

    def __call__(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(self.png)


def _section(cfg, item):
    from dataclasses import replace

    from .reports.sections import SECTIONS, Context, run_section

    number, key, title, fn = next(s for s in SECTIONS if s[1] == item)
    sec = run_section(Context(cfg), number, key, title, fn)
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for fig in sec.figures:
            path = os.path.join(tmp, fig.filename)
            fig.draw(path)
            with open(path, "rb") as f:
                figures.append(replace(fig, draw=PngFigure(f.read())))
    return replace(sec, figures=tuple(figures))


def run_sections(cfg, *, only: Sequence[str] | None = None, executor="local") -> tuple:
    """The report's sections (those whose key is in ``only``, or all), one task each on
    ``executor``, in report order: what :func:`specoracle.reports.build_report` computes one after
    the other. Each task has its own :class:`~specoracle.reports.sections.Context` (its own caches);
    figures are drawn on the worker and come back as :class:`PngFigure` bytes."""
    from .reports.sections import SECTIONS

    keys = [k for _, k, _, _ in SECTIONS if only is None or k in only]
    return tuple(get_executor(executor).map(_section, cfg, keys, label=lambda k: f"report section {k!r}"))
