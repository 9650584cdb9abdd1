"""Greedy multi-path block verification (GBV; Thomas & Pal 2026, arXiv 2602.16961).

Reconstruction note: the paper body could not be read; the procedure is the authors' reference
code (``gbv_verify`` + ``compute_skew``, ALGORITHMS.md §5.3) with ONE strict total order on tokens
(key ``(p/q ratio, token)`` ascending) used both to pick the path and to compute its law — the
repo's own child choice and CDF disagree on ties (§5.4; the inconsistent rule is a mutant in
:mod:`specoracle.mutants.tree`).

1. Select the lexicographic maximum of the ``K`` drafted paths: from the branch node down, step to
   the child whose token has the largest key at the current node.
2. Its law is ``Q_skew(u) = (A(u) + Qm(u))^K - A(u)^K`` (``A(u)``: draft mass of full paths ranked
   strictly below the prefix ``u``, ``Qm(u)`` its draft probability), i.e. the autoregressive
   ``q_skew(t | u) = [(A + Qm cdf_u(t))^K - (A + Qm (cdf_u(t) - q_u(t)))^K] / [(A + Qm)^K - A^K]``.
3. Run block verification on the selected path with ``q`` replaced by ``q_skew``. Lossless because
   the selected path is an exact sample of ``Q_skew`` and BV is lossless for any autoregressive
   draft law; ``E[tau] = sum_u Q_skew(u) w_skew(u)``.

Delayed trees ``(K, trunk, branch)``: the trunk is a single draw per edge, so the skew starts at
the branch node (``A = 0``, ``Qm = 1`` there) and the trunk uses the plain ``q``.
"""
from __future__ import annotations

import numpy as np

from specoracle.errors import InvalidInstance
from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource
from specoracle.registry import Entry
from specoracle.tree import Tree

from .bv_core import bv_finish, bv_stop_probs, bv_weights
from .chain import bv_keys

__all__ = ["gbv", "gbv_path", "gbv_skewed_q", "skew_law", "token_keys", "expected_accepted", "ENTRIES"]


def token_keys(p: np.ndarray, q: np.ndarray) -> list:
    """Sort key ``(p(t)/q(t), t)`` of every token (``q(t) = 0``: ratio ``+inf``; never drafted)."""
    return [(p[t] / q[t] if q[t] > 0 else float("inf"), t) for t in range(len(p))]


def skew_law(q: np.ndarray, keys: list, A, Qm, K: int) -> np.ndarray:
    """Conditional law ``q_skew(. | u)`` [V] of the next token of the best of ``K`` i.i.d. paths.

    ``cdf(t) = sum of q over tokens whose key is <= key(t)``. Written with the factorisation
    ``a^K - b^K = (a - b) sum_i a^i b^(K-1-i)`` (numerator ``a - b = Qm q(t)``, denominator
    ``(A + Qm) - A = Qm``) so that no cancellation occurs, then normalised (the numerators
    telescope to the denominator exactly).
    """
    order = sorted(range(len(q)), key=lambda t: keys[t])
    out = np.array([q[0] * 0] * len(q), dtype=object if q.dtype == object else np.float64)
    below = q[0] * 0
    for t in order:
        a = A + Qm * (below + q[t])
        b = A + Qm * below
        out[t] = q[t] * sum(a**i * b ** (K - 1 - i) for i in range(K))
        below = below + q[t]
    return out / out.sum()


def gbv_path(instance: Instance) -> list[int]:
    """Node ids (root first) of the selected path: the lexicographic maximum under the token keys."""
    tree = instance.tree
    nodes = [0]
    while tree.children[nodes[-1]]:
        u = nodes[-1]
        keys = token_keys(instance.p[u], instance.q[u])
        nodes.append(max(tree.children[u], key=lambda c: keys[tree.tokens[c]]))
    return nodes


def gbv_skewed_q(instance: Instance, nodes: list[int]) -> np.ndarray:
    """Draft table [N, V] with the rows of the selected path below the branch node skewed.

    ``K = tree.n_paths``; rows above depth ``tree.trunk`` (the single-draw trunk) keep ``q``.
    """
    tree = instance.tree
    K = tree.n_paths
    qs = instance.q.copy()
    one = instance.p[0][0] * 0 + 1
    A, Qm = one * 0, one
    for u, c in zip(nodes, nodes[1:]):
        if tree.depths[u] < tree.trunk:
            continue
        keys = token_keys(instance.p[u], instance.q[u])
        qs[u] = skew_law(instance.q[u], keys, A, Qm, K)
        x = tree.tokens[c]
        below = sum((instance.q[u][t] for t in range(instance.V) if keys[t] < keys[x]), one * 0)
        A, Qm = A + Qm * below, Qm * instance.q[u][x]
    return qs


def gbv(instance: Instance, rng: RandomSource) -> Outcome:
    """Greedy multi-path block verification: best-of-K path, skewed draft law, block verification.

    Works on chains (``K = 1``: identical to ``bv``), i.i.d. trees and delayed trees, in float64 or
    Fraction mode. Keys as :func:`specoracle.reference.chain.bv`: ``("stop", node)`` along the
    selected path and ``("residual", node)``.

    ALGORITHMS.md §5.5, E1 (L=2): ``E[tau] = 131/81`` (K=2, the LP optimum), ``1289/729`` (K=3).

    Examples
    --------
    >>> from specoracle import examples, exact, drafting
    >>> exact.evaluate("gbv", examples.E1(rational=True), drafting.iid(2, 2),
    ...                rational=True).expected_accepted
    Fraction(131, 81)
    """
    if instance.tree.sampling != "iid":
        raise InvalidInstance("gbv skews the draft law of the best of K i.i.d. paths; this tree is "
                              f"{instance.tree.sampling}")
    nodes = gbv_path(instance)
    qs = gbv_skewed_q(instance, nodes)
    w = bv_weights(instance, nodes, q=qs)
    h = bv_stop_probs(instance, nodes, w, q=qs)
    return bv_finish(instance, rng, nodes, w, h, qs)


def expected_accepted(model, scheme):
    """Closed-form ``E[tau] = sum_u Q_skew(u) w_skew(u)`` of GBV on ``scheme`` (chain, iid, delayed).

    Walks every prefix ``u`` of length ``1..L`` with the skewed conditional law of
    :func:`skew_law` below the trunk (plain ``q`` on it) and BV's weight ``w(u x) = min(1, w(u)
    p(x|u) / q_skew(x|u))``; no tree is enumerated. Fraction for rational models.

    >>> from specoracle import examples, drafting
    >>> expected_accepted(examples.E1(rational=True), drafting.iid(2, 2))
    Fraction(131, 81)
    """
    K, L, trunk = scheme.k, scheme.depth, scheme.trunk
    one = model.p(())[0] * 0 + 1
    total = one * 0
    stack = [((), one, one, one * 0, one)]  # prefix, Q_skew(u), w(u), A(u), Qm(u) (below the trunk)
    while stack:
        u, G, w, A, Qm = stack.pop()
        if u:
            total = total + G * w
        if len(u) == L:
            continue
        p, q = model.p(u), model.q(u)
        if len(u) < trunk:
            law, keys = q, None
        else:
            keys = token_keys(p, q)
            law = skew_law(q, keys, A, Qm, K)
        for x in range(model.V):
            if law[x] > 0:
                A2, Qm2 = A, Qm
                if keys is not None:
                    A2 = A + Qm * sum((q[t] for t in range(model.V) if keys[t] < keys[x]), one * 0)
                    Qm2 = Qm * q[x]
                stack.append((u + (x,), G * law[x], min(one, w * p[x] / law[x]), A2, Qm2))
    return total


def gbv_keys(tree: Tree) -> tuple:
    """Coupled layout (same as BV): stop coins for nodes 1..N-1, then residual draws 0..N-1."""
    return bv_keys(tree)


ENTRIES = [
    Entry(
        name="gbv",
        reference=gbv,
        keys=gbv_keys,
        schemes=frozenset({"chain", "iid", "delayed"}),
        family="gbv",
        draw_order_invariant=True,
        terminal_draws=True,
        optimal_within="single-path verifiers given the selected path (BV on the best-of-K law)",
        description=(
            "greedy multi-path block verification (Thomas & Pal 2026): lexicographic best path by "
            "(p/q, token), skewed best-of-K draft law, BV; from the authors' code (paper unread)"
        ),
    ),
]
