"""Recursive rejection sampling WITHOUT replacement (Jeon et al. RSD 2024; Yang et al. MCSD 2024).

One node (ALGORITHMS-2 §5.1), children ``X_1..X_k`` drawn one after another without replacement
from ``q``: ``p_1 = p``, ``q_1 = q``; for ``j = 1..k`` accept ``X_j`` w.p.
``min(1, p_j(X_j) / q_j(X_j))``; on rejection ``p_{j+1} = norm((p_j - q_j)_+)`` (residual against
the law ``X_j`` was drawn from) and THEN ``q_{j+1} = norm(q_j with X_j set to 0)``. If all fail,
``y ~ p_{k+1}``. Run top-down (RSD-C, §5.2): an accepted child is entered, the residual ends the
call (it never lands on a rejected child, since ``p_{j+1}(X_j) = 0``); at a leaf ``y ~ p_u``.

The solver reads the DISTINCT children of a node in first-appearance order (``tree.children``),
so it is also lossless on i.i.d. and delayed trees with merged duplicates: the first-appearance
sequence of distinct values of i.i.d. draws is a without-replacement sequence stopped at a
draw-dependent length (ALGORITHMS-2 §4.3, row 2). With one child per node it is token-level SpS.

Random keys (``Coupled`` layout): ``("accept", u, j)`` for the ``j``-th distinct child of every
internal node ``u`` (node order), then ``("residual", u)`` for ``u = 0..N-1``. Rational mode works
(Fractions only).
"""
from __future__ import annotations

import numpy as np

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource
from specoracle.registry import Entry
from specoracle.tree import Tree

from ._common import accept_ratio, positive_part, residual_or_fallback
from .topdown_driver import ALL_KINDS, NodeSolver, check_kind, layout, normalize_or, walk, zeros_like

__all__ = ["rrs_wor", "rrs_wor_keys", "without_token", "RRS_WOR", "ENTRIES"]


def without_token(q: np.ndarray, x: int) -> np.ndarray:
    """``norm(q with entry x set to 0)`` (``q`` unchanged if nothing is left)."""
    out = np.array(q, copy=True)
    out[x] = out[x] * 0
    total = out.sum()
    return out / total if total > 0 else out


def _rrs_sample(p, q, d, rng, u, sampling):
    cur_p, cur_q = p, q
    for j, x in enumerate(d):
        key = ("accept", u, j)
        if rng.bernoulli(accept_ratio(cur_p[x], cur_q[x]), key):
            return x
        cur_p = residual_or_fallback(positive_part(cur_p - cur_q), cur_p, rng, key)
        cur_q = without_token(cur_q, x)
    return rng.categorical(cur_p, ("residual", u))


def _rrs_law(p, q, d, sampling):
    out, alive, cur_p, cur_q = zeros_like(p), p[0] * 0 + 1, p, q
    for x in d:
        a = accept_ratio(cur_p[x], cur_q[x])
        out[x] += alive * a
        alive = alive * (1 - a)
        cur_p = normalize_or(positive_part(cur_p - cur_q), cur_p)
        cur_q = without_token(cur_q, x)
    return out + alive * cur_p


RRS_WOR = NodeSolver(
    "rrs_wor",
    _rrs_sample,
    _rrs_law,
    lambda u, k: tuple(("accept", u, j) for j in range(k)),
    children="children",
    kinds=ALL_KINDS,
)


def rrs_wor(instance: Instance, rng: RandomSource) -> Outcome:
    """Recursive rejection sampling without replacement, top-down over distinct children.

    Keys: ``("accept", u, j)``, ``("residual", u)``. One node, case B ``p = (.5,.3,.2)``,
    ``q = (.3,.5,.2)``, two w/o-replacement drafts: ``alpha = 23/25``; E2 wor(2,2):
    ``E[tau] = 5931/3500``.
    """
    check_kind(instance, RRS_WOR)
    return walk(instance, rng, RRS_WOR)


def rrs_wor_keys(tree: Tree) -> tuple:
    """Coupled layout of :func:`rrs_wor`: accept keys per distinct child (node order), then residuals."""
    return layout(tree, RRS_WOR)


ENTRIES = [
    Entry(
        "rrs_wor",
        rrs_wor,
        rrs_wor_keys,
        ALL_KINDS,
        "rrs",
        top_down=True,
        description="recursive rejection sampling without replacement (RSD/MCSD), top-down over "
        "distinct children in first-appearance order",
    ),
]
