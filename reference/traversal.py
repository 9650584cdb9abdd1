"""Traversal Verification (Weng et al. 2025, arXiv 2505.12398), strict post-order recursive form.

Reconstruction note: the paper body could not be read. The procedure is the one implemented by the
GBV authors' ``traversal_verify`` (ALGORITHMS.md §4.2), rewritten in the equivalent recursive form
of §4.3 (equal to the loop form to 1e-15, checked in ``tests/test_traversal.py``). Losslessness on
chain, i.i.d., delayed and without-replacement trees is established by the exact engine, not
assumed.

Unified view (§4.3): at node ``u`` traversal runs recursive rejection sampling without replacement
against the augmented target ``p~_u = (w_u p^_u on V, 1 - w_u on ⊥)``; the accept test of child
``x`` is realised by verifying the child's subtree with weight ``min(1, w_u p^_u(x) / q^_u(x))``.
A subtree entered with weight ``w`` returns non-⊥ with probability exactly ``w`` averaged over its
draft (§4.4), which is what makes the lifting lossless.
"""
from __future__ import annotations

import numpy as np

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource, node_keys
from specoracle.registry import Entry
from specoracle.tree import Tree

from ._common import positive_part

__all__ = ["traversal", "traversal_from", "traversal_update", "child_weight", "traversal_keys", "ENTRIES"]


def traversal_update(w, p_hat: np.ndarray, q_hat: np.ndarray, x: int):
    """State of a node after its child token ``x`` (whole subtree) was rejected.

    ``S = sum_y (w p^(y) - q^(y))_+``; if ``S > 0``: ``p^ <- (w p^ - q^)_+ / S`` and
    ``w <- S / (S + 1 - w)``, else ``w <- 0`` (the node can no longer be accepted, ``p^`` kept);
    then ``q^(x) <- 0`` and ``q^`` is renormalised (the rejected token is removed, w/o replacement).

    Parameters
    ----------
    w : weight of the node (float or Fraction), in [0, 1].
    p_hat, q_hat : [V] current target and draft laws of the node.
    x : rejected child token.

    Returns
    -------
    (w, p_hat, q_hat) : the new state (fresh arrays).
    """
    resid = positive_part(w * p_hat - q_hat)
    S = resid.sum()
    if S > 0:
        p_hat = resid / S
        w = S / (S + (1 - w))  # (1 - w) first: w == 1 gives exactly 1
    else:
        w = w * 0
    q_hat = q_hat.copy()
    q_hat[x] = q_hat[x] * 0
    mass = q_hat.sum()
    if mass > 0:
        q_hat = q_hat / mass
    return w, p_hat, q_hat


def child_weight(w, p_hat, q_hat, x):
    """``min(1, w p^(x) / q^(x))``; ``q^(x) > 0`` for every drafted, not yet rejected token."""
    r = w * p_hat[x] / q_hat[x]
    return r if r < 1 else r * 0 + 1


def traversal_from(instance: Instance, rng: RandomSource, node: int = 0, weight=1) -> Outcome | None:
    """Verify the subtree of ``node`` entered with ``weight``; ``None`` means ⊥ (fully rejected).

    Strict post-order: child ``c = u + x`` (children in first-appearance order) is verified with
    weight ``min(1, w p^(x) / q^(x))``; its subtree is finished before the next sibling is touched.
    After all children are rejected the node itself is accepted with probability ``w`` (key
    ``("accept", node)``; no coin when ``w == 1``, e.g. at the root, whose weight stays exactly 1:
    ``S / (S + (1 - 1)) = 1``) and emits
    ``y ~ p^`` (key ``("residual", node)``), the residual-updated target.

    Invariant (§4.4, tested): averaged over the subtree's draft, ``Pr[result is not None] = weight``.
    """
    tree = instance.tree
    w = weight
    p_hat, q_hat = instance.p[node], instance.q[node]
    for c in tree.children[node]:
        x = tree.tokens[c]
        r = traversal_from(instance, rng, c, child_weight(w, p_hat, q_hat, x))
        if r is not None:
            return r
        w, p_hat, q_hat = traversal_update(w, p_hat, q_hat, x)
    if w < 1 and not rng.bernoulli(w, ("accept", node)):  # weight 1 (always at the root): no coin
        return None
    return Outcome(node, rng.categorical(p_hat, ("residual", node)))


def traversal(instance: Instance, rng: RandomSource) -> Outcome:
    """Traversal Verification of a whole draft tree (post-order, residual and weight updates).

    Uses the distinct children ``tree.children[u]`` in first-appearance order; works on chain,
    i.i.d. (merged duplicates), delayed and without-replacement trees, in float64 or Fraction mode.
    Keys: ``("accept", node)`` (node accepted once all its children failed) and
    ``("residual", node)`` (correction/bonus token), each at most once.

    Reductions (tested): on a chain it equals BV; on a depth-1 tree it equals RRS without
    replacement. ALGORITHMS.md §11, E1 (L=2): ``E[tau] = 11/9, 115/81, 1136/729`` for K = 1, 2, 3.

    Examples
    --------
    >>> from specoracle import examples, exact, drafting
    >>> exact.evaluate("traversal", examples.E1(rational=True), drafting.iid(2, 2),
    ...                rational=True).expected_accepted
    Fraction(115, 81)
    """
    return traversal_from(instance, rng, 0, instance.p[0][0] * 0 + 1)  # the root never returns ⊥


def traversal_keys(tree: Tree) -> tuple:
    """Coupled layout: accept coins for nodes 1..N-1, then residual draws 0..N-1."""
    return node_keys(tree.size, "accept")


ENTRIES = [
    Entry(
        name="traversal",
        reference=traversal,
        keys=traversal_keys,
        schemes=frozenset({"chain", "iid", "delayed", "without_replacement"}),
        family="traversal",
        terminal_draws=True,
        description=(
            "Traversal Verification (Weng et al. 2025), strict post-order; reconstructed from the GBV "
            "authors' traversal_verify (paper body unread)"
        ),
    ),
]
