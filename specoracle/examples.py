"""The named test models of ALGORITHMS.md §1.5 and ALGORITHMS-2.md §1.5 (E1-E5, HSDTOY).

Each factory returns a fresh :class:`~specoracle.models.ToyModel`; ``rational=True`` gives exact
Fraction tables (E1-E5 have rational entries).
"""
from __future__ import annotations

from fractions import Fraction as F

import numpy as np

from .errors import unknown_name
from .models import ToyModel, context_free

__all__ = ["E1", "E1b", "E2", "E3", "E4", "E5", "HSDTOY", "MODELS", "get"]


def _vec(values, rational: bool):
    if rational:
        return np.array([F(str(v)) if not isinstance(v, F) else v for v in values], dtype=object)
    return np.array([float(v) for v in values])


def E1(rational: bool = False) -> ToyModel:
    """Context-free V=2: p = (2/3, 1/3), q = (1/3, 2/3). BV paper toy: naive 10/9, BV 11/9 (L=2)."""
    if rational:
        return context_free([F(2, 3), F(1, 3)], [F(1, 3), F(2, 3)], name="E1")
    return context_free([2 / 3, 1 / 3], [1 / 3, 2 / 3], name="E1")


def E1b(rational: bool = False) -> ToyModel:
    """E1 with tokens swapped: p = (1/3, 2/3), q = (2/3, 1/3)."""
    if rational:
        return context_free([F(1, 3), F(2, 3)], [F(2, 3), F(1, 3)], name="E1b")
    return context_free([1 / 3, 2 / 3], [2 / 3, 1 / 3], name="E1b")


def _table_model(name, V, table_p, table_q, default_p, default_q, rational):
    def law(table, default):
        def f(u):
            return _vec(table.get(tuple(u), default), rational)
        return f
    return ToyModel(V, law(table_p, default_p), law(table_q, default_q), rational=rational, name=name)


def E2(rational: bool = False) -> ToyModel:
    """V=3 context-dependent (ALGORITHMS.md §1.5); depth >= 2 contexts: p = (.4,.3,.3), q uniform."""
    tp = {(): (".5", ".3", ".2"), (0,): (".6", ".2", ".2"), (1,): (".1", ".8", ".1"), (2,): (".3", ".3", ".4")}
    tq = {(): (".3", ".5", ".2"), (0,): (".2", ".6", ".2"), (1,): (".3", ".4", ".3"), (2,): (".6", ".2", ".2")}
    third = F(1, 3) if rational else 1 / 3
    return _table_model("E2", 3, tp, tq, (".4", ".3", ".3"), (third, third, third), rational)


def E3(rational: bool = False) -> ToyModel:
    """V=2 context-dependent (ALGORITHMS.md §1.5); depth >= 2 contexts: p = q = (.5, .5)."""
    tp = {(): (".6", ".4"), (0,): (".7", ".3"), (1,): (".2", ".8")}
    tq = {(): (".3", ".7"), (0,): (".4", ".6"), (1,): (".5", ".5")}
    return _table_model("E3", 2, tp, tq, (".5", ".5"), (".5", ".5"), rational)


def E4(rational: bool = False) -> ToyModel:
    """Context-free V=4: p = (.4,.3,.2,.1), q = (.1,.2,.3,.4)."""
    return _table_model("E4", 4, {}, {}, (".4", ".3", ".2", ".1"), (".1", ".2", ".3", ".4"), rational)


def E5(rational: bool = False) -> ToyModel:
    """V=4 context-dependent: p(.|u) = roll((.4,.3,.2,.1), sum(u) % 4),
    q(.|u) = roll((.25,.4,.15,.2), (|u| + 2 sum(u)) % 4). Catches every mutant of ALGORITHMS-2 §11."""
    base_p = _vec((".4", ".3", ".2", ".1"), rational)
    base_q = _vec((".25", ".4", ".15", ".2"), rational)
    return ToyModel(
        4,
        lambda u: np.roll(base_p, sum(u) % 4),
        lambda u: np.roll(base_q, (len(u) + 2 * sum(u)) % 4),
        rational=rational,
        name="E5",
    )


def HSDTOY(rational: bool = False) -> ToyModel:
    """HSD repo toy: context-free V=2, q = (2/3, 1/3), p = (1/3, 2/3) (draft length 10 there)."""
    m = E1b(rational)
    m.name = "HSDTOY"
    return m


MODELS = {"E1": E1, "E1b": E1b, "E2": E2, "E3": E3, "E4": E4, "E5": E5, "HSDTOY": HSDTOY}


def get(name: str, rational: bool = False) -> ToyModel:
    """A named example model; unknown names raise with the valid ones."""
    if name not in MODELS:
        raise unknown_name("example model", name, MODELS)
    return MODELS[name](rational)
