"""The report's building blocks: tables, figures, sections and the whole report (frozen results).

A section function returns a :class:`Section`: its tables (rendered to Markdown and HTML), its
figures (PNG files drawn with matplotlib by a ``draw(path)`` callable) and its ``data``, the
JSON-ready numbers that go into ``results.json``. ``status`` is one of :data:`STATUSES`:

- ``ok``: everything computed and every claim held;
- ``fail``: computed, and at least one claim did not hold (a verifier, twin or bound failed);
- ``inconclusive``: nothing failed, but a sampled test could not see the TV error it must see
  (its detectable TV is above :data:`specoracle.stats.TV_CEILING`);
- ``error``: the section raised; the message is in ``notes``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["Table", "Figure", "Section", "Report", "STATUSES", "jsonable", "nonfinite_paths"]

STATUSES = ("ok", "fail", "inconclusive", "error")


@dataclass(frozen=True)
class Table:
    """A table: ``columns`` names and ``rows`` of plain values (str, int, float, bool, None)."""

    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    caption: str = ""
    collapsed: bool = False  # long detail tables: folded (<details>) in HTML and Markdown

    def to_dict(self) -> dict:
        return {"caption": self.caption, "columns": list(self.columns), "rows": [list(r) for r in self.rows]}


@dataclass(frozen=True)
class Figure:
    """A PNG figure: ``draw(path)`` writes it to ``path`` (``filename`` inside the report dir)."""

    filename: str
    caption: str
    draw: Callable[[str], None] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Section:
    """One numbered section of the report (see module docstring for ``status``)."""

    key: str
    number: int
    title: str
    status: str
    summary: str
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    notes: tuple[str, ...] = ()
    data: Any = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "number": self.number,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "notes": list(self.notes),
            "tables": [t.to_dict() for t in self.tables],
            "figures": [f.filename for f in self.figures],
            "data": jsonable(self.data),
        }


@dataclass(frozen=True)
class Report:
    """A finished report: header metadata plus its sections in order."""

    meta: dict
    sections: tuple[Section, ...]

    def section(self, key: str) -> Section:
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(key)

    def to_dict(self) -> dict:
        return {
            "meta": jsonable(self.meta),
            "sections": {s.key: s.to_dict() for s in self.sections},
            "timing": {s.key: {"wall_s": round(s.seconds, 3), "cpu_s": round(s.cpu_seconds, 3)}
                       for s in self.sections},
        }


def jsonable(x):
    """Convert numpy scalars/arrays, Fractions and tuples to JSON types; non-finite floats to None.

    A non-finite number (an infinite chi-squared statistic when a sample falls in a
    zero-probability cell) is written as ``null``; the section records why next to it.
    """
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating, Fraction)):
        f = float(x)
        return f if math.isfinite(f) else None
    if x is None or isinstance(x, str):
        return x
    return str(x)


def nonfinite_paths(obj, path: str = "$") -> list[str]:
    """JSON paths of numbers in ``obj`` that are not finite (for tests and sanity checks)."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += nonfinite_paths(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += nonfinite_paths(v, f"{path}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        out.append(path)
    return out
