"""The top-down driver shared by every OT node-solver family (:mod:`.topdown`, :mod:`.rrs`, mutants).

At node ``u`` with the ``k_u`` child tokens ``d = (X_1..X_k)`` drawn there, a node solver
``f(p_u, q_u, d)`` outputs a token ``t`` whose law is ``p_u`` whenever ``d`` holds ``k_u`` draws
from ``q_u`` of the tree's kind. If ``t`` is a drafted child the walk continues there (OT /
"continue on member" semantics), otherwise ``Outcome(u, t)`` is emitted; at a leaf
``Outcome(u, y ~ p_u)`` (key ``("residual", u)``). Losslessness follows by induction because the
draws below a child are, given its multiplicity, i.i.d. from the child's draft law and
independent of the coins used above it (ALGORITHMS.md §8.2).

Coupled layout (:func:`layout`): the solver's decision keys of every internal node in node order,
then ``("residual", u)`` for every node ``u = 0..N-1``.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from specoracle.errors import InvalidInstance
from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource
from specoracle.tree import Tree

__all__ = [
    "IID_KINDS",
    "ALL_KINDS",
    "NodeSolver",
    "node_tokens",
    "check_kind",
    "walk",
    "layout",
    "zeros_like",
    "normalize_or",
]

IID_KINDS = frozenset({"chain", "iid", "delayed"})
"""Drafting kinds whose siblings are i.i.d. draws (a trunk node has a single draw)."""
ALL_KINDS = frozenset({"chain", "iid", "delayed", "without_replacement"})
"""Every drafting kind."""


@dataclass(frozen=True)
class NodeSolver:
    """One OT node solver.

    Attributes
    ----------
    name : method name.
    sample : ``sample(p, q, d, rng, u, sampling) -> token`` (``p, q`` [V]; ``d`` the draft tokens;
        ``sampling`` the tree's ``"iid"`` / ``"without_replacement"``).
    law : ``law(p, q, d, sampling) -> array [V]`` with ``Pr[f(d) = t]`` (DDTE Eq. 3).
    node_keys : ``node_keys(u, k) -> tuple`` of the decision keys used at an internal node.
    children : ``"draws"`` (the multiset, draw order) or ``"children"`` (distinct, first appearance).
    kinds : drafting kinds on which the solver is lossless.
    """

    name: str
    sample: Callable
    law: Callable
    node_keys: Callable[[int, int], tuple]
    children: str = "draws"
    kinds: frozenset = IID_KINDS


def node_tokens(tree: Tree, u: int, which: str) -> tuple[int, ...]:
    """Tokens of the draws (``which="draws"``) or distinct children (``"children"``) of ``u``."""
    nodes = tree.draws[u] if which == "draws" else tree.children[u]
    return tuple(tree.tokens[c] for c in nodes)


def check_kind(instance: Instance, solver: NodeSolver) -> None:
    """Raise unless ``solver`` is lossless on the instance's sibling law."""
    tree = instance.tree
    if tree.sampling == "without_replacement" and "without_replacement" not in solver.kinds:
        raise InvalidInstance(
            f"{solver.name} assumes i.i.d. sibling draws (it is not lossless on without-replacement "
            "trees); use rrs_wor or ot_optimal there"
        )


def walk(instance: Instance, rng: RandomSource, solver: NodeSolver) -> Outcome:
    """Run ``solver`` top-down from the root (see module docstring)."""
    tree, p, q = instance.tree, instance.p, instance.q
    u = 0
    while True:
        d = node_tokens(tree, u, solver.children)
        if not d:
            return Outcome(u, rng.categorical(p[u], ("residual", u)))
        t = solver.sample(p[u], q[u], d, rng, u, tree.sampling)
        child = tree.child(u, t)
        if child is None:
            return Outcome(u, t)
        u = child


def layout(tree: Tree, solver: NodeSolver) -> tuple[Hashable, ...]:
    """Coupled layout: decision keys of every internal node (node order), then residual keys."""
    keys: list[Hashable] = []
    for u in range(tree.size):
        k = len(node_tokens(tree, u, solver.children))
        if k:
            keys.extend(solver.node_keys(u, k))
    keys.extend(("residual", u) for u in range(tree.size))
    return tuple(keys)


def zeros_like(p: np.ndarray) -> np.ndarray:
    """A zero vector in the arithmetic of ``p`` (float64 or Fraction)."""
    return p * 0


def normalize_or(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``norm(v)``, or ``fallback`` for a zero-mass ``v`` (only reached with probability 0)."""
    total = v.sum()
    return v / total if total > 0 else fallback
