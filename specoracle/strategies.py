"""Public hypothesis strategies for distributions, models, schemes, trees and instances.

Every strategy is keyword-only, valid by construction (what it draws passes
:class:`~specoracle.instance.Instance` validation) and shrinks towards the simplest case: small
``V``, uniform laws, context-free models, chains, depth 1. Near-degenerate cases are drawn on
purpose, because that is where verifiers break: one-hot laws, ``p == q``, tiny masses (``1e-12``
relative), zeros in ``q`` where ``p > 0``.

Laws are built from non-negative integer weights, so the same draw gives a float vector
(``w / w.sum()``) or an exact Fraction vector (``rational=True``).

Example
-------
>>> from hypothesis import given
>>> from specoracle import strategies as sst
>>> @given(sst.instances(V=3, max_depth=2))
... def test_naive_output_in_range(inst): ...
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

from .drafting import KINDS, Scheme, chain, delayed, iid, without_replacement
from .errors import InvalidArgument
from .instance import Instance
from .models import ToyModel, random_model
from .tree import Tree, TreeBuilder

__all__ = ["weights", "distributions", "distribution_pairs", "models", "random_models", "schemes", "trees", "instances",
           "TINY"]

TINY = 10**12  # a "tiny" mass is 1 part in 10^12 of the largest weight


def _vocab(V) -> st.SearchStrategy[int]:
    if isinstance(V, st.SearchStrategy):
        return V
    if isinstance(V, (int, np.integer)) and not isinstance(V, bool) and V >= 1:
        return st.just(int(V))
    raise InvalidArgument(f"V must be an int >= 1 or a strategy of ints, got {V!r}")


@st.composite
def weights(draw, *, V: int, near_degenerate: bool = True, allow_zero: bool = True) -> tuple[int, ...]:
    """Non-negative integer weights of length ``V`` with a positive sum.

    Shapes drawn: arbitrary small weights (shrinking to all-equal, i.e. uniform), and with
    ``near_degenerate`` a one-hot vector or one huge weight against tiny ones (``1 : 10^-12``).
    ``allow_zero=False`` keeps every weight positive (full support).
    """
    lo = 0 if allow_zero else 1
    # the plain weights are drawn first, so the shortest choice sequence (what hypothesis shrinks
    # to) is "plain, all weights equal": the uniform law
    w = draw(st.lists(st.integers(lo, 6), min_size=V, max_size=V).map(lambda xs: [6 - x if lo == 0 else x for x in xs]))
    kinds = ["plain"] + (["one_hot", "tiny"] if near_degenerate else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "one_hot" and allow_zero:
        hot = draw(st.integers(0, V - 1))
        return tuple(1 if i == hot else 0 for i in range(V))
    if kind in ("one_hot", "tiny"):
        big = draw(st.integers(0, V - 1))
        return tuple(TINY if i == big else 1 for i in range(V))
    if sum(w) == 0:
        w[0] = 1
    return tuple(w)


def _law(w, rational: bool):
    if rational:
        s = sum(w)
        return np.array([Fraction(x, s) for x in w], dtype=object)
    a = np.asarray(w, dtype=np.float64)
    return a / a.sum()


def distributions(*, V, rational: bool = False, near_degenerate: bool = True, full_support: bool = False):
    """Probability vectors [V] (float64 summing to 1 within 1e-15, or exact Fractions)."""
    return _vocab(V).flatmap(
        lambda v: weights(V=v, near_degenerate=near_degenerate, allow_zero=not full_support).map(lambda w: _law(w, rational))
    )


@st.composite
def distribution_pairs(draw, *, V, rational: bool = False, near_degenerate: bool = True):
    """``(p, q)`` pairs [V] each, including ``p == q``, one-hot sides, and ``q = 0`` where ``p > 0``.

    ``q`` always has at least one token with positive mass (drafts must be possible).
    """
    v = draw(_vocab(V))
    p = draw(distributions(V=v, rational=rational, near_degenerate=near_degenerate))
    if near_degenerate and draw(st.booleans()):
        return p, p.copy()
    q = draw(distributions(V=v, rational=rational, near_degenerate=near_degenerate))
    return p, q


@st.composite
def models(draw, *, V=st.integers(2, 4), rational: bool = False, near_degenerate: bool = True, max_rows: int = 3) -> ToyModel:
    """Context-dependent toy models: ``p(u) = P_rows[(a |u| + b sum(u)) % R]``, likewise ``q``.

    Shrinks to a context-free model (``a = b = 0`` or one row). Every ``q`` row may have zeros; the
    drafting schemes only draft tokens with ``q > 0``, so instances built from the model are valid.
    """
    v = draw(_vocab(V))
    R = draw(st.integers(1, max_rows))
    P = [draw(distributions(V=v, rational=rational, near_degenerate=near_degenerate)) for _ in range(R)]
    Q = [draw(distributions(V=v, rational=rational, near_degenerate=near_degenerate)) for _ in range(R)]
    a, b, c, d = (draw(st.integers(0, 3)) for _ in range(4))

    def pick(rows, x, y):
        return lambda u: rows[(x * len(u) + y * sum(u)) % len(rows)]

    return ToyModel(v, pick(P, a, b), pick(Q, c, d), rational=rational, name=f"hyp(V={v},R={R},{a}{b}{c}{d})")


def random_models(*, V=st.integers(2, 3), divergences=(0.0, 0.4, 0.8, 1.0), concentrations=(0.3, 1.0)):
    """:func:`specoracle.models.random_model` over seeds, divergences (0: ``p == q``) and Dirichlet
    concentrations (small: peaked, sparse-like rows). Shrinks to seed 0, the first divergence."""
    return st.builds(lambda v, seed, div, conc: random_model(v, seed, divergence=div, concentration=conc),
                     _vocab(V), st.integers(0, 10_000), st.sampled_from(list(divergences)),
                     st.sampled_from(list(concentrations)))


@st.composite
def schemes(draw, *, kinds=KINDS, max_depth: int = 2, max_k: int = 2) -> Scheme:
    """Drafting schemes of depth 1..``max_depth`` with at most ``max_k`` paths/siblings."""
    bad = set(kinds) - set(KINDS)
    if bad:
        raise InvalidArgument(f"unknown scheme kinds {sorted(bad)}; valid: {KINDS}")
    kind = draw(st.sampled_from(list(kinds)))
    L = draw(st.integers(1, max_depth))
    if kind == "chain":
        return chain(L)
    if kind == "iid":
        return iid(draw(st.integers(1, max_k)), L)
    if kind == "delayed":
        trunk = draw(st.integers(0, L))
        return delayed(draw(st.integers(1, max_k)), trunk, L - trunk)
    return without_replacement(tuple(draw(st.integers(1, max_k)) for _ in range(L)))


@st.composite
def trees(draw, *, V: int, max_depth: int = 2, max_k: int = 2, sampling: str | None = None) -> Tree:
    """Draft trees over tokens ``0..V-1``: i.i.d. paths (duplicates merged, counted in ``draws``)
    or without-replacement siblings. Shrinks to a single path of length 1."""
    samp = sampling or draw(st.sampled_from(["iid", "without_replacement"]))
    depth = draw(st.integers(1, max_depth))
    if samp == "iid":
        k = draw(st.integers(1, max_k))
        paths = [tuple(draw(st.lists(st.integers(0, V - 1), min_size=depth, max_size=depth))) for _ in range(k)]
        return Tree.from_paths(paths)
    b = TreeBuilder(sampling="without_replacement")

    def grow(node, d):
        if d >= depth:
            return
        kids = draw(st.lists(st.integers(0, V - 1), min_size=1, max_size=min(max_k, V), unique=True))
        for tok in kids:
            grow(b.draw(node, tok), d + 1)

    grow(0, 0)
    return b.build()


@st.composite
def instances(draw, *, V=st.integers(2, 4), max_depth: int = 2, max_k: int = 2, rational: bool = False,
              near_degenerate: bool = True, sampling: str | None = None) -> Instance:
    """Valid instances: a tree (from :func:`trees`), ``p`` rows anywhere, ``q`` rows positive on
    every drafted child (a zero elsewhere is allowed: ``q = 0`` where ``p > 0``)."""
    v = draw(_vocab(V))
    tree = draw(trees(V=v, max_depth=max_depth, max_k=max_k, sampling=sampling))
    p = [draw(distributions(V=v, rational=rational, near_degenerate=near_degenerate)) for _ in range(tree.size)]
    q = []
    for node in range(tree.size):
        kids = {tree.tokens[c] for c in tree.children[node]}
        w = list(draw(weights(V=v, near_degenerate=near_degenerate)))
        for t in kids:
            if w[t] == 0:
                w[t] = 1
        q.append(_law(w, rational))
    dtype = object if rational else np.float64
    return Instance(tree, np.array(p, dtype=dtype), np.array(q, dtype=dtype))
