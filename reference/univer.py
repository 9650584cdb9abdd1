"""UniVer-style conditional-OT tree verification (after Weng, Hu, Yairi, arXiv 2605.04543).

Reconstruction note: only UniVer's abstract could be read ("tree verification as conditional OT;
prefix acceptance probabilities as dynamic scaling factors; local OT plans composed under prefix
constraints; lossless"). Everything below is OUR construction on the template of ALGORITHMS.md
§7.1-7.2; it is not claimed to be the paper's algorithm.

Construction. A node ``u`` is entered with a weight ``w`` (root: 1). Its augmented target is
``p~_u = (w p_u on V, 1 - w on ⊥)``. Let ``d`` be the tuple of draws at ``u`` (``tree.draws[u]``,
in draw order: i.i.d. from ``q_u`` for chain/i.i.d./delayed trees, without replacement for
w/o-replacement trees) and ``D`` its law. A local plan ``f[d, y] >= 0`` (``y`` a member of ``d``) is
a MAXIMUM flow of the network source -> d (capacity ``D(d)``) -> y in d -> sink (capacity
``w p_u(y)``), i.e. an optimal solution of the compact conditional-OT LP of ALGORITHMS-2.md §8.2 with
the augmented target (``⊥`` is never drafted, so the acceptance is ``alpha* = min_H [w p_u(H) +
Pr(some draw not in H)] <= w``). It is computed exactly (Edmonds-Karp in the array's own
arithmetic, Fractions in rational mode) and is a deterministic function of ``(w, p_u, q_u, k)``.
Among the many maximum flows we take the one obtained by augmenting traversal's own local flow
(RRS without replacement against ``w p_u``): a first version that augmented from zero was lossless
too but passed weaker weights to children and lost to traversal on E2 wor(3,1) (2.66 vs 2.70);
from the traversal start univer >= traversal >= rrs_wor on every E2/E3/E5 case we measured.

Lifting (§7.1). Given ``d``, accept member ``x`` with probability ``a(x) = f[d, x] / D(d)``,
realised sequentially over the distinct children in first-appearance order: the subtree of child
``x`` is verified recursively with weight ``a(x) / (1 - sum of a over earlier children)``. A subtree
entered with weight ``b`` returns non-⊥ with probability exactly ``b`` averaged over its draft and
then emits a target-distributed continuation (induction, as for traversal), so the sequence of
subtree calls realises the plan. If every child fails, draw from the global residual
``norm(p~_u - m)`` on ``V ∪ {⊥}`` with ``m(y) = sum_d f[d, y]`` (key ``("residual", u)``): ``⊥``
returns ⊥ to the parent, a token ``y`` ends the call with ``Outcome(u, y)``. By the generic lemma
(ALGORITHMS-2.md §1.4) the node's output is ``p~_u``-distributed, hence lossless; the exact engine
confirms it (``tests/test_univer.py``).

On chains the plan is ``min(q, w p)`` and univer equals BV (= traversal). On depth-1 trees it is
the optimal multi-draft verifier for the draft law; deeper, each node maximises its own acceptance
given its weight (greedy across levels, not the multi-step optimum of ALGORITHMS.md §10.4).
"""
from __future__ import annotations

from collections import deque
from itertools import permutations, product

import numpy as np

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource, node_keys
from specoracle.registry import Entry
from specoracle.tree import Tree

from ._common import residual_or_fallback
from .traversal import child_weight, traversal_update

__all__ = ["univer", "univer_from", "local_plan", "draw_law", "univer_keys", "ENTRIES"]

_PLANS: dict = {}


def draw_law(q: np.ndarray, k: int, replacement: bool) -> dict:
    """Law of the ordered tuple of ``k`` draws from ``q`` (i.i.d. or without replacement)."""
    support = [t for t in range(len(q)) if q[t] > 0]
    law = {}
    if replacement:
        for d in product(support, repeat=k):
            pr = q[0] * 0 + 1
            for t in d:
                pr = pr * q[t]
            law[d] = pr
        return law
    for d in permutations(support, min(k, len(support))):
        pr, left = q[0] * 0 + 1, q[0] * 0 + 1
        for t in d:
            pr = pr * q[t] / left
            left = left - q[t]
        law[d] = pr
    return law


def _rrs_start(law: dict, w, p: np.ndarray, q: np.ndarray) -> dict:
    """Traversal's local flow (RRS without replacement against ``w p``): ``{d: {y: D(d) Pr[accept y | d]}}``.

    Distinct members in first-appearance order; child ``x`` passes w.p. ``min(1, w p^(x) / q^(x))``;
    on failure ``(w, p^) <- ((w p^ - q^)_+ / (S + 1 - w) scaled)``, ``q^(x) <- 0`` (ALGORITHMS.md §4.3).
    Used as the initial feasible flow, so the plan accepts at least what traversal accepts locally.
    """
    out = {}
    for d, Dd in law.items():
        seen, fd, alive = [], {}, Dd
        wh, ph, qh = w, p, q
        for x in d:
            if x in seen:
                continue
            seen.append(x)
            a = child_weight(wh, ph, qh, x) if wh > 0 else wh * 0
            if a > 0:
                fd[x] = alive * a
            alive = alive * (1 - a)
            wh, ph, qh = traversal_update(wh, ph, qh, x)
        out[d] = fd
    return out


def _max_flow(law: dict, cap_y: list, start: dict | None = None) -> dict:
    """Edmonds-Karp on source -> tuple d (cap law[d]) -> member y (inf) -> sink (cap_y[y]).

    ``start`` ({d: {y: f}}) is a feasible initial flow that augmentation extends. Returns
    ``{d: {y: flow}}``. Exact in Fraction arithmetic; deterministic (BFS in fixed order).
    """
    tuples = list(law)
    V = len(cap_y)
    zero = cap_y[0] * 0
    n_t = len(tuples)
    S, T = 0, 1 + n_t + V  # node ids: 0 source, 1..n_t tuples, then tokens, then sink
    cap: dict = {}
    adj: dict = {i: [] for i in range(T + 1)}

    def add(a, b, c):
        if (a, b) not in cap:
            adj[a].append(b)
            adj[b].append(a)
            cap[(a, b)] = zero
            cap.setdefault((b, a), zero)
        cap[(a, b)] = cap[(a, b)] + c

    big = zero + 2  # larger than any path capacity (all capacities <= 1)
    for i, d in enumerate(tuples):
        add(S, 1 + i, law[d])
        for y in sorted(set(d)):
            add(1 + i, 1 + n_t + y, big)
    for y in range(V):
        add(1 + n_t + y, T, cap_y[y])
    flow = {key: zero for key in cap}
    for i, d in enumerate(tuples):
        for y, f in (start or {}).get(d, {}).items():
            a, b = 1 + i, 1 + n_t + y
            for u, v in ((S, a), (a, b), (b, T)):
                flow[(u, v)] = flow[(u, v)] + f
                flow[(v, u)] = flow[(v, u)] - f
    while True:
        parent = {S: None}
        queue = deque([S])
        while queue and T not in parent:
            a = queue.popleft()
            for b in adj[a]:
                if b not in parent and cap[(a, b)] - flow[(a, b)] > 0:
                    parent[b] = a
                    queue.append(b)
        if T not in parent:
            break
        push, b = big, T
        while parent[b] is not None:
            a = parent[b]
            push = min(push, cap[(a, b)] - flow[(a, b)])
            b = a
        b = T
        while parent[b] is not None:
            a = parent[b]
            flow[(a, b)] = flow[(a, b)] + push
            flow[(b, a)] = flow[(b, a)] - push
            b = a
    out = {}
    for i, d in enumerate(tuples):
        out[d] = {y: flow[(1 + i, 1 + n_t + y)] for y in sorted(set(d)) if flow[(1 + i, 1 + n_t + y)] > 0}
    return out


def local_plan(w, p: np.ndarray, q: np.ndarray, k: int, replacement: bool):
    """Optimal local conditional-OT plan at one node (see module docstring).

    Parameters
    ----------
    w : node weight (float or Fraction) in [0, 1].
    p, q : [V] target and draft laws at the node.
    k : number of draws at the node.
    replacement : True for i.i.d. draws, False for without replacement.

    Returns
    -------
    (law, flow, m) : ``law[d] = D(d)`` over ordered draw tuples; ``flow[d][y] = f[d, y]``;
    ``m`` [V] accepted mass per token (``m <= w p``; ``sum m = alpha*``).
    """
    key = (w, tuple(p), tuple(q), k, replacement)
    hit = _PLANS.get(key)
    if hit is None:
        law = draw_law(q, k, replacement)
        flow = _max_flow(law, [w * x for x in p], _rrs_start(law, w, p, q))
        m = np.array([p[0] * 0] * len(p), dtype=p.dtype)
        for fd in flow.values():
            for y, f in fd.items():
                m[y] = m[y] + f
        hit = _PLANS[key] = (law, flow, m)
        if len(_PLANS) > 200_000:
            _PLANS.clear()
    return hit


def univer_from(instance: Instance, rng: RandomSource, node: int = 0, weight=1) -> Outcome | None:
    """Verify the subtree of ``node`` entered with ``weight``; ``None`` is ⊥ (probability ``1 - weight``
    averaged over the subtree's draft)."""
    tree = instance.tree
    p, q = instance.p[node], instance.q[node]
    one = p[0] * 0 + 1
    draws = tree.draws[node]
    if draws:
        d = tuple(tree.tokens[c] for c in draws)
        law, flow, m = local_plan(weight, p, q, len(d), tree.sampling == "iid")
        fd, Dd = flow[d], law[d]
        left = one
        for c in tree.children[node]:
            a = fd.get(tree.tokens[c], one * 0) / Dd
            if a > 0:
                r = univer_from(instance, rng, c, a / left if a < left else one)
                if r is not None:
                    return r
            left = left - a
    else:
        m = p * 0
    resid = [weight * p[y] - m[y] for y in range(len(p))] + [one - weight]
    resid = np.array([x if x > 0 else x * 0 for x in resid], dtype=p.dtype)
    key = ("residual", node)
    fallback = np.concatenate([p * weight, np.array([one - weight], dtype=p.dtype)])
    law = residual_or_fallback(resid, fallback, rng, key)
    y = rng.categorical(law, key)
    return None if y == len(p) else Outcome(node, y)


def univer(instance: Instance, rng: RandomSource) -> Outcome:
    """Conditional-OT tree verification (our UniVer-style construction; see module docstring).

    Keys: ``("residual", node)`` only (child tests are the children's own subtree calls).
    Schemes: chain, iid, delayed, without_replacement; rational mode is exact.
    """
    return univer_from(instance, rng, 0, instance.p[0][0] * 0 + 1)  # weight 1: never ⊥


def univer_keys(tree: Tree) -> tuple:
    """Coupled layout: residual draws (over ``V`` tokens then ⊥) for nodes 0..N-1."""
    return node_keys(tree.size)


ENTRIES = [
    Entry(
        name="univer",
        reference=univer,
        keys=univer_keys,
        schemes=frozenset({"chain", "iid", "delayed", "without_replacement"}),
        family="univer",
        optimal_within="per-node acceptance given the node weight (local conditional OT, max-flow)",
        description=(
            "conditional-OT tree verification: augmented target (w p, 1 - w on ⊥), exact max-flow local "
            "plan lifted through subtree acceptance; our construction after UniVer (paper unread)"
        ),
    ),
]
