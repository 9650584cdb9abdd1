"""Known verifier bug classes, written as small departures from correct verifiers.

Every module of this package exposes ``MUTANTS``, a list of :class:`Mutant`; the suite must flag
every one. ``TRUE_NEGATIVES`` (correct-but-unusual verifiers) must never be flagged.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from specoracle.errors import unknown_name

__all__ = ["Mutant", "catalog", "get", "true_negatives"]


@dataclass(frozen=True)
class Mutant:
    """A buggy (or, for true negatives, correct-but-unusual) verifier.

    Attributes
    ----------
    name : catalog name.
    verify : ``verify(instance, rng) -> Outcome`` (the bug lives here).
    schemes : drafting-scheme kinds it runs on.
    description : one line: the real failure it models and where it shipped.
    model : name of an example model (``specoracle.examples``) on which the exact check catches it.
    scheme : scheme string (``specoracle.drafting.parse_scheme``) on which it is caught.
    lossless : False for bugs; True for true negatives.
    """

    name: str
    verify: Callable
    schemes: frozenset
    description: str
    model: str = "E5"
    scheme: str = "chain(2)"
    lossless: bool = False


_ALL: dict[str, Mutant] = {}


def _load() -> dict[str, Mutant]:
    if not _ALL:
        pkg = importlib.import_module(__name__)
        for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if mod.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__name__}.{mod.name}")
            for m in list(getattr(module, "MUTANTS", ())) + list(getattr(module, "TRUE_NEGATIVES", ())):
                _ALL[m.name] = m
    return _ALL


def catalog() -> list[Mutant]:
    """Every bug mutant (lossless=False)."""
    return [m for m in _load().values() if not m.lossless]


def true_negatives() -> list[Mutant]:
    """Correct-but-unusual verifiers that must pass every check."""
    return [m for m in _load().values() if m.lossless]


def get(name: str) -> Mutant:
    """A mutant or true negative by name."""
    table = _load()
    if name not in table:
        raise unknown_name("mutant", name, table)
    return table[name]
