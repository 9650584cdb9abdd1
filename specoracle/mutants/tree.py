"""Multi-path (tree) mutants of traversal verification and GBV (ALGORITHMS.md §4.6, §5.4, §12.2).

Each mutant is one small departure from :mod:`specoracle.reference.traversal` or
:mod:`specoracle.reference.gbv`; the exact engine flags every one (error > 1e-9 on the model and
scheme given in its entry; values measured in ``tests/test_traversal.py`` / ``tests/test_gbv.py``).
The true negative ``traversal_loop_form`` is the authors' loop form of traversal (first remaining
leaf in DFS pre-order), which must equal the recursive reference exactly.
"""
from __future__ import annotations

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource
from specoracle.reference._common import positive_part
from specoracle.reference.bv_core import bv_finish, bv_stop_probs, bv_weights
from specoracle.reference.gbv import gbv_skewed_q, token_keys
from specoracle.reference.traversal import child_weight, traversal_update

from . import Mutant

__all__ = ["MUTANTS", "TRUE_NEGATIVES"]

TREES = frozenset({"chain", "iid", "delayed", "without_replacement"})
IID_TREES = frozenset({"chain", "iid", "delayed"})


def _traversal_loop(instance: Instance, rng: RandomSource, pick) -> Outcome:
    """Loop form of traversal (ALGORITHMS.md §4.2); ``pick(remaining_leaves)`` chooses the next leaf."""
    tree = instance.tree
    n = tree.size
    remaining = [list(c) for c in tree.children]
    alive = [True] * n
    w = [None] * n
    p_hat = [instance.p[i] for i in range(n)]
    q_hat = [instance.q[i] for i in range(n)]
    w[0] = instance.p[0][0] * 0 + 1

    def reweigh(u):
        for c in remaining[u]:
            w[c] = child_weight(w[u], p_hat[u], q_hat[u], tree.tokens[c])
            reweigh(c)

    reweigh(0)
    while True:
        leaves = [i for i in range(n) if alive[i] and not remaining[i]]
        v = pick(tree, leaves)
        if v == 0:
            return Outcome(0, rng.categorical(p_hat[0], ("residual", 0)))
        if rng.bernoulli(w[v], ("accept", v)):
            return Outcome(v, rng.categorical(p_hat[v], ("residual", v)))
        u = tree.parents[v]
        w[u], p_hat[u], q_hat[u] = traversal_update(w[u], p_hat[u], q_hat[u], tree.tokens[v])
        remaining[u].remove(v)
        alive[v] = False
        reweigh(u)


def traversal_loop_form(instance: Instance, rng: RandomSource) -> Outcome:
    """True negative: the loop form (first remaining leaf in DFS pre-order) == the recursive form."""
    return _traversal_loop(instance, rng, lambda tree, leaves: min(leaves))


def traversal_deepest_leaf_first(instance: Instance, rng: RandomSource) -> Outcome:
    """Traversal that visits the deepest remaining leaf first (ties: first in pre-order).

    A third-party port's order (ALGORITHMS.md §4.6.1): not strict post-order, so a node's state is
    updated by rejections that happen after a sibling subtree was entered. Documented errors: E2
    i.i.d. K=2 0.0235, E3 K=2 0.0180.
    """
    return _traversal_loop(instance, rng, lambda tree, leaves: min(leaves, key=lambda i: (-tree.depths[i], i)))


def _traversal_variant(instance, rng, node, weight, *, remove_token=True, stale_bonus=False):
    tree = instance.tree
    w = weight
    p_hat, q_hat = instance.p[node], instance.q[node]
    for c in tree.children[node]:
        x = tree.tokens[c]
        r = _traversal_variant(instance, rng, c, child_weight(w, p_hat, q_hat, x),
                               remove_token=remove_token, stale_bonus=stale_bonus)
        if r is not None:
            return r
        if remove_token:
            w, p_hat, q_hat = traversal_update(w, p_hat, q_hat, x)
        else:
            resid = positive_part(w * p_hat - q_hat)
            S = resid.sum()
            if S > 0:
                p_hat, w = resid / S, S / (S + (1 - w))
            else:
                w = w * 0
    if w < 1 and not rng.bernoulli(w, ("accept", node)):
        return None
    law = instance.p[node] if stale_bonus else p_hat
    return Outcome(node, rng.categorical(law, ("residual", node)))


def traversal_keep_rejected_in_q(instance: Instance, rng: RandomSource) -> Outcome:
    """Traversal whose residual update keeps the rejected token in ``q^`` (with-replacement rule)."""
    return _traversal_variant(instance, rng, 0, instance.p[0][0] * 0 + 1, remove_token=False)


def traversal_stale_bonus(instance: Instance, rng: RandomSource) -> Outcome:
    """Traversal emitting the token at an accepted node from the original ``p_v``, not ``p^_v``."""
    return _traversal_variant(instance, rng, 0, instance.p[0][0] * 0 + 1, stale_bonus=True)


def gbv_first_child_on_ties(instance: Instance, rng: RandomSource) -> Outcome:
    """GBV whose path choice takes the FIRST child with a strictly larger ratio (ties: earliest child)
    while the skewed law ranks tied tokens by index (the authors' repo, ALGORITHMS.md §5.4)."""
    tree = instance.tree
    nodes = [0]
    while tree.children[nodes[-1]]:
        u = nodes[-1]
        best, best_ratio = None, None
        for c in tree.children[u]:
            ratio = token_keys(instance.p[u], instance.q[u])[tree.tokens[c]][0]
            if best is None or ratio > best_ratio:
                best, best_ratio = c, ratio
        nodes.append(best)
    qs = gbv_skewed_q(instance, nodes)
    w = bv_weights(instance, nodes, q=qs)
    h = bv_stop_probs(instance, nodes, w, q=qs)
    return bv_finish(instance, rng, nodes, w, h, qs)


MUTANTS = [
    Mutant("traversal_deepest_leaf_first", traversal_deepest_leaf_first, TREES,
           "traversal visiting the deepest remaining leaf first, not strict post-order (third-party "
           "port; ALGORITHMS.md §4.6: E2 iid K=2 err 0.0235)",
           model="E2", scheme="iid(2,2)"),
    Mutant("traversal_keep_rejected_in_q", traversal_keep_rejected_in_q, TREES,
           "traversal residual update that does not remove the rejected token from q (with-replacement "
           "residual on without-replacement siblings)",
           model="E5", scheme="iid(2,2)"),
    Mutant("traversal_stale_bonus", traversal_stale_bonus, TREES,
           "traversal emitting the token at an accepted node from the un-updated p_v instead of the "
           "residual-updated p^_v",
           model="E5", scheme="iid(2,2)"),
    Mutant("gbv_first_child_on_ties", gbv_first_child_on_ties, IID_TREES,
           "GBV with an inconsistent tie rule: path choice keeps the first tied child, the skewed law "
           "ranks ties by token index (authors' repo)",
           model="E2", scheme="iid(2,2)"),
]

TRUE_NEGATIVES = [
    Mutant("traversal_loop_form", traversal_loop_form, TREES,
           "true negative: traversal's loop form (first remaining leaf in pre-order), equal to the "
           "recursive reference",
           model="E2", scheme="iid(2,2)", lossless=True),
]
