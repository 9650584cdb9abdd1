"""Further verifier bugs as engines write them (issue 14), and correct-but-unusual verifiers.

Each mutant is a small departure from a correct verifier, written the way a serving engine's
verifier is written (an ``[L+1, V]`` row layout, tiled vocabulary loops, residual buffers, fast
paths, float32 uniforms), not as a perturbation of the math. Several are invisible on the named
example models (V <= 4, divergences far from 0) on purpose:

- only at ``V >= 5``: ``residual_tile_tail`` (V = 5, 9, ...), ``residual_topk3``;
- only where ``p`` and ``q`` nearly agree: ``allclose_fast_accept``;
- only at depth ``>= 3``: ``draft_row_tile_index``;
- only with ``k >= 3`` siblings: ``specinfer_pingpong_residual``, ``rrs_q_removes_last_only``;
- only on context-dependent models: ``draft_row_tile_index``, ``tree_rows_by_depth``,
  ``bv_stop_prev_row``.

The ``model``/``scheme`` of every entry is a case where the exact engine flags it (model strings as
the CLI reads them: an example name or ``random:V:seed[:divergence]``).

``TRUE_NEGATIVES`` are lossless verifiers written unusually (other uses of randomness, reordered
draws, equivalent residual formulas); the exact engine must pass every one.
"""
from __future__ import annotations

import math

import numpy as np

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource
from specoracle.reference._common import accept_ratio, chain_nodes, positive_part, residual_or_fallback
from specoracle.reference.bv_core import bv_emit, bv_finish, bv_stop_probs, bv_weights
from specoracle.reference.rrs import without_token

from . import Mutant
from .realistic import inverse_cdf_law

__all__ = ["MUTANTS", "TRUE_NEGATIVES", "float32_le_accept", "TILE", "ALLCLOSE_ATOL", "RESIDUAL_TOPK", "RESIDUAL_EPS"]

CHAIN = frozenset({"chain"})
IID = frozenset({"iid", "delayed"})
IID_ALL = frozenset({"chain", "iid", "delayed"})
WOR = frozenset({"without_replacement"})

TILE = 4  # vocabulary tile of the tiled residual kernel
ALLCLOSE_ATOL = 1e-3  # the fast path's torch.allclose tolerance
RESIDUAL_TOPK = 3  # candidates the recovered-token sampler keeps
RESIDUAL_EPS = 1e-6  # epsilon added to the residual's normaliser
FLOAT32_UNIFORM_BITS = 24  # torch.rand(float32) returns multiples of 2^-24


# --- helpers ------------------------------------------------------------------------------------
def _safe_ratio(p_x, q_x):
    """``min(1, p/q)`` as a float kernel computes it: ``p/0 = inf -> 1``."""
    if q_x == 0:
        return p_x * 0 + 1
    return accept_ratio(p_x, q_x)


def _residual(p_row, q_row, rng, key):
    return residual_or_fallback(positive_part(p_row - q_row), p_row, rng, key)


def _sps(instance: Instance, rng: RandomSource, *, q_row=None, ratio=None, coin=None, residual=None,
         bonus=None, emit_all=None) -> Outcome:
    """Token-level speculative sampling along a chain, with hooks where engines go wrong.

    ``q_row(i, nodes) -> node`` whose ``q`` row step ``i`` reads (parent ``nodes[i]``);
    ``ratio(p_x, q_x)`` the acceptance probability; ``coin(p_row, q_row, x, rng, key) -> bool``
    replaces the whole acceptance test; ``residual(p_row, q_row, rng, key) -> law``;
    ``bonus(instance, nodes, rng, key) -> law``; ``emit_all(instance, nodes, rng) -> Outcome``
    replaces the all-accepted branch.
    """
    nodes = chain_nodes(instance, "sps")
    p, tokens = instance.p, instance.tree.tokens
    for i, (parent, child) in enumerate(zip(nodes, nodes[1:])):
        x = tokens[child]
        qr = instance.q[parent if q_row is None else q_row(i, nodes)]
        key = ("accept", child)
        if coin is not None:
            ok = coin(p[parent], qr, x, rng, key)
        else:
            ok = rng.bernoulli((_safe_ratio if ratio is None else ratio)(p[parent][x], qr[x]), key)
        if not ok:
            rkey = ("residual", parent)
            law = (_residual if residual is None else residual)(p[parent], qr, rng, rkey)
            return Outcome(parent, rng.categorical(law, rkey))
    if emit_all is not None:
        return emit_all(instance, nodes, rng)
    last = nodes[-1]
    key = ("residual", last)
    law = p[last] if bonus is None else bonus(instance, nodes, rng, key)
    return Outcome(last, rng.categorical(law, key))


def float32_le_accept(ratio) -> float:
    """``Pr[u <= ratio]`` for ``u`` uniform on the float32 grid ``{k 2^-24 : 0 <= k < 2^24}``.

    ``= min(1, (floor(ratio 2^24) + 1) / 2^24)``: above ``ratio`` by up to ``2^-24``, and
    ``2^-24`` (not 0) at ``ratio = 0``.

    >>> float32_le_accept(0.0) == 2.0**-24, float32_le_accept(0.5) == 0.5 + 2.0**-24
    (True, True)
    """
    n = 2**FLOAT32_UNIFORM_BITS
    return min(1.0, (math.floor(float(ratio) * n) + 1) / n)


# --- single path: the bonus token ---------------------------------------------------------------
def bonus_from_draft(instance: Instance, rng: RandomSource) -> Outcome:
    """All drafts accepted: the bonus token is drawn from the draft's row ``q[L]`` (the draft
    model's next-token law reused because the target's extra position was not computed)."""
    return _sps(instance, rng, bonus=lambda inst, nodes, rng, key: inst.q[nodes[-1]])


def bonus_overwrites_last_draft(instance: Instance, rng: RandomSource) -> Outcome:
    """All ``L`` drafts accepted: the bonus ``y ~ p[L]`` is written at position ``L - 1`` (an
    off-by-one in the bonus position), so the last accepted draft is replaced by it."""
    def emit_all(inst, nodes, rng):
        last = nodes[-1]
        return Outcome(nodes[-2], rng.categorical(inst.p[last], ("residual", last)))

    return _sps(instance, rng, emit_all=emit_all)


def residual_when_all_accepted(instance: Instance, rng: RandomSource) -> Outcome:
    """A unified recovery kernel samples every output position from ``norm((p - q)_+)``, the
    bonus position included: after ``L`` acceptances the bonus comes from the residual of row ``L``."""
    return _sps(instance, rng, bonus=lambda inst, nodes, rng, key: _residual(inst.p[nodes[-1]], inst.q[nodes[-1]], rng, key))


def accepted_count_not_prefix(instance: Instance, rng: RandomSource) -> Outcome:
    """Every position gets its own coin and the accepted length is the NUMBER of passed coins
    (``sum(accepted)``), not the length of the accepted prefix (FIELD-BUGS: "accepted counting
    independent acceptances vs the prefix")."""
    nodes = chain_nodes(instance, "accepted_count_not_prefix")
    p, q, tokens = instance.p, instance.q, instance.tree.tokens
    count = 0
    for parent, child in zip(nodes, nodes[1:]):
        x = tokens[child]
        count += rng.bernoulli(accept_ratio(p[parent][x], q[parent][x]), ("accept", child))
    node = nodes[count]
    key = ("residual", node)
    law = p[node] if count == len(nodes) - 1 else _residual(p[node], q[node], rng, key)
    return Outcome(node, rng.categorical(law, key))


# --- single path: rows, tiles and the residual --------------------------------------------------
def draft_row_tile_index(instance: Instance, rng: RandomSource) -> Outcome:
    """Draft positions processed in tiles of 2; the draft-probability row is read with the
    tile-local index ``i % 2``, so position 2 (depth 3) reads the root's ``q`` row. Invisible at
    ``L <= 2`` and on context-free models."""
    return _sps(instance, rng, q_row=lambda i, nodes: nodes[i % 2])


def residual_tile_tail(instance: Instance, rng: RandomSource) -> Outcome:
    """A tiled residual kernel (tile of 4 tokens) sums the residual mass over
    ``range(0, V - 1, 4)``: a last tile of one token (``V = 5, 9, ...``) is left out of the
    normaliser, while the inverse-CDF scan still walks it. Invisible at ``V <= 4``."""
    def residual(p_row, q_row, rng, key):
        w = positive_part(p_row - q_row)
        V = len(w)
        total = sum(w[s:s + TILE].sum() for s in range(0, V - 1, TILE))
        if total <= 0:
            return residual_or_fallback(w, p_row, rng, key)
        return inverse_cdf_law(w / total)

    return _sps(instance, rng, residual=residual)


def residual_topk3(instance: Instance, rng: RandomSource) -> Outcome:
    """The recovered token is drawn by the engine's top-k sampler (k = 3) applied to the residual
    ``(p - q)_+``: its 4th and later candidates are dropped. A residual has at most ``V - 1``
    positive entries, so this is invisible at ``V <= 4``."""
    def residual(p_row, q_row, rng, key):
        w = positive_part(p_row - q_row)
        keep = sorted(range(len(w)), key=lambda i: (-w[i], i))[:RESIDUAL_TOPK]
        top = w * 0
        for i in keep:
            top[i] = w[i]
        return residual_or_fallback(top, p_row, rng, key)

    return _sps(instance, rng, residual=residual)


def residual_eps_denominator(instance: Instance, rng: RandomSource) -> Outcome:
    """The residual is normalised as ``w / (sum(w) + 1e-6)`` (an epsilon against division by
    zero) and sampled by an inverse-CDF kernel: the missing mass goes to the last positive token."""
    def residual(p_row, q_row, rng, key):
        w = positive_part(p_row - q_row)
        if w.sum() <= 0:
            return residual_or_fallback(w, p_row, rng, key)
        return inverse_cdf_law(w / (w.sum() + RESIDUAL_EPS))

    return _sps(instance, rng, residual=residual)


def residual_on_logits(instance: Instance, rng: RandomSource) -> Outcome:
    """``max(p - q, 0)`` computed on the wrong side of the softmax: the residual weights are
    ``max(logit_p - logit_q, 0)`` (log-probabilities, floored at ``log 1e-30``), then normalised."""
    def residual(p_row, q_row, rng, key):
        lp = np.log(np.maximum(np.asarray(p_row, float), 1e-30))
        lq = np.log(np.maximum(np.asarray(q_row, float), 1e-30))
        return residual_or_fallback(np.maximum(lp - lq, 0.0), p_row, rng, key)

    return _sps(instance, rng, residual=residual)


# --- single path: the acceptance test -----------------------------------------------------------
def allclose_fast_accept(instance: Instance, rng: RandomSource) -> Outcome:
    """A fast path skips the acceptance coin when the target and draft rows agree to within
    ``torch.allclose(p, q, atol=1e-3)``: the draft is accepted outright. Exact when ``p == q``;
    wrong where ``p`` and ``q`` nearly agree, invisible on models whose rows differ more."""
    def coin(p_row, q_row, x, rng, key):
        if np.max(np.abs(np.asarray(p_row, float) - np.asarray(q_row, float))) <= ALLCLOSE_ATOL:
            return True
        return rng.bernoulli(accept_ratio(p_row[x], q_row[x]), key)

    return _sps(instance, rng, coin=coin)


def accept_le_float32_uniform(instance: Instance, rng: RandomSource) -> Outcome:
    """Accept iff ``u <= p/q`` with float32 uniforms (``k 2^-24``): the acceptance probability is
    ``(floor(r 2^24) + 1) 2^-24``, so a zero-probability draft is accepted at ``u == 0``
    (SGLang #35771; vLLM moved to float64 uniforms)."""
    return _sps(instance, rng, ratio=lambda p_x, q_x: float32_le_accept(float(p_x) / float(q_x)))


def ratio_float16(instance: Instance, rng: RandomSource) -> Outcome:
    """The acceptance ratio is computed in float16 (``p`` and ``q`` cast to half, divided in
    half), while drafting and the residual use float64 laws."""
    def ratio(p_x, q_x):
        r = np.float16(np.float16(float(p_x)) / np.float16(float(q_x)))
        return min(float(r), 1.0)

    return _sps(instance, rng, ratio=ratio)


# --- block verification ---------------------------------------------------------------------------
def bv_stop_prev_row(instance: Instance, rng: RandomSource) -> Outcome:
    """Block verification whose stop weight ``S_i = sum (w_i p_i - q_i)_+`` reads the previous
    position's rows ``p_{i-1}, q_{i-1}`` (FIELD-BUGS: a proposed upstream BV patch); exactly
    lossless on context-free models."""
    nodes = chain_nodes(instance, "bv_stop_prev_row")
    w = bv_weights(instance, nodes)
    p, q = instance.p, instance.q
    L = len(nodes) - 1
    h = [w[0]]
    for i in range(1, L + 1):
        if i == L:
            h.append(w[i])
            continue
        row = nodes[i - 1]
        S = positive_part(w[i] * p[row] - q[row]).sum()
        den = S + 1 - w[i]
        h.append(S / den if den > 0 else den * 0 + 1)
    return bv_finish(instance, rng, nodes, w, h, q)


def bv_last_stop_formula(instance: Instance, rng: RandomSource) -> Outcome:
    """Block verification whose stop-probability loop runs to ``i = L`` with the interior formula
    ``S_L / (S_L + 1 - w_L)`` instead of ``h_L = w_L`` (an off-by-one in the loop bound)."""
    nodes = chain_nodes(instance, "bv_last_stop_formula")
    w = bv_weights(instance, nodes)
    h = bv_stop_probs(instance, nodes, w)
    last = nodes[-1]
    S = positive_part(w[-1] * instance.p[last] - instance.q[last]).sum()
    den = S + 1 - w[-1]
    h[-1] = S / den if den > 0 else den * 0 + 1
    return bv_finish(instance, rng, nodes, w, h, instance.q)


# --- trees: SpecInfer and RRS without replacement -------------------------------------------------
def _topdown(instance: Instance, rng: RandomSource, solve, rows=None) -> Outcome:
    """Top-down walk: ``solve(p_row, q_row, tokens, rng, u) -> token`` at every internal node
    (i.i.d. draws in draw order), entering an accepted child; ``rows(u) -> node`` whose laws are
    read at ``u`` (default ``u``)."""
    tree = instance.tree
    u = 0
    while True:
        r = u if rows is None else rows(u)
        d = tuple(tree.tokens[c] for c in tree.draws[u])
        if not d:
            return Outcome(u, rng.categorical(instance.p[r], ("residual", u)))
        t = solve(instance.p[r], instance.q[r], d, rng, u)
        child = tree.child(u, t)
        if child is None:
            return Outcome(u, t)
        u = child


def _specinfer_pingpong(p, q, d, rng, u):
    buf = [p, p]
    for j, x in enumerate(d):
        cur = buf[j % 2]  # the read slot follows the sibling's parity ...
        key = ("accept", u, j)
        if rng.bernoulli(_safe_ratio(cur[x], q[x]), key):
            return x
        buf[1] = residual_or_fallback(positive_part(cur - q), cur, rng, key)  # ... writes always go to slot 1
    return rng.categorical(buf[1], ("residual", u))


def specinfer_pingpong_residual(instance: Instance, rng: RandomSource) -> Outcome:
    """SpecInfer with a two-slot residual buffer: sibling ``j`` reads slot ``j % 2`` but every
    update is written to slot 1, so the third sibling is tested against the stale target row.
    Exact for ``k <= 2`` drafts per node."""
    return _topdown(instance, rng, _specinfer_pingpong)


def _specinfer_unnormalised(p, q, d, rng, u):
    cur = p
    for j, x in enumerate(d):
        key = ("accept", u, j)
        if rng.bernoulli(_safe_ratio(cur[x], q[x]), key):
            return x
        cur = positive_part(cur - q)  # carried to the next sibling without dividing by its mass
        if cur.sum() <= 0:
            rng.fallback(key)
            cur = p
    return rng.categorical(cur / cur.sum(), ("residual", u))


def specinfer_residual_unnormalised(instance: Instance, rng: RandomSource) -> Outcome:
    """SpecInfer whose residual ``(r - q)_+`` is carried to the next sibling's test without
    renormalising (only the final draw normalises it): later siblings are accepted too rarely."""
    return _topdown(instance, rng, _specinfer_unnormalised)


def _specinfer(p, q, d, rng, u):
    cur = p
    for j, x in enumerate(d):
        key = ("accept", u, j)
        if rng.bernoulli(_safe_ratio(cur[x], q[x]), key):
            return x
        cur = residual_or_fallback(positive_part(cur - q), cur, rng, key)
    return rng.categorical(cur, ("residual", u))


def tree_rows_by_depth(instance: Instance, rng: RandomSource) -> Outcome:
    """SpecInfer on a tree whose target/draft rows are sliced by depth as for a chain (the first
    node at each depth): siblings' subtrees read another branch's logits (cf. TensorRT-LLM
    #15098, wrong logits slice in dynamic-tree rejection). Exact on chains and context-free models."""
    depths = instance.tree.depths
    first = {}
    for node, dep in enumerate(depths):
        first.setdefault(dep, node)
    return _topdown(instance, rng, _specinfer, rows=lambda u: first[depths[u]])


def _rrs(instance: Instance, rng: RandomSource, q_update) -> Outcome:
    """RRS without replacement over distinct children, ``q_update(q, cur_q, x) -> next q``."""
    tree, p, q = instance.tree, instance.p, instance.q
    u = 0
    while True:
        kids = tree.children[u]
        if not kids:
            return Outcome(u, rng.categorical(p[u], ("residual", u)))
        cur_p, cur_q = p[u], q[u]
        t = None
        for j, c in enumerate(kids):
            x = tree.tokens[c]
            key = ("accept", u, j)
            if rng.bernoulli(_safe_ratio(cur_p[x], cur_q[x]), key):
                t = x
                break
            cur_p = residual_or_fallback(positive_part(cur_p - cur_q), cur_p, rng, key)
            cur_q = q_update(q[u], cur_q, x)
        if t is None:
            return Outcome(u, rng.categorical(cur_p, ("residual", u)))
        u = tree.child(u, t)


def _zero_no_renorm(q0, cur_q, x):
    out = np.array(cur_q, copy=True)
    out[x] = out[x] * 0
    return out


def rrs_q_not_renormalised(instance: Instance, rng: RandomSource) -> Outcome:
    """RRS without replacement that zeroes the rejected sibling in ``q`` but does not renormalise
    ``q`` (sibling removal not updating the draft law)."""
    return _rrs(instance, rng, _zero_no_renorm)


def rrs_q_removes_last_only(instance: Instance, rng: RandomSource) -> Outcome:
    """RRS without replacement that rebuilds ``q`` from the ORIGINAL row minus the last rejected
    token (not minus all of them). Exact for ``k <= 2`` siblings; wrong from the third."""
    return _rrs(instance, rng, lambda q0, cur_q, x: without_token(q0, x))


# --- true negatives -------------------------------------------------------------------------------
def sps_rejection_coin(instance: Instance, rng: RandomSource) -> Outcome:
    """True negative: the coin decides REJECTION with probability ``1 - min(1, p/q)``."""
    def coin(p_row, q_row, x, rng, key):
        return not rng.bernoulli(1 - accept_ratio(p_row[x], q_row[x]), key)

    return _sps(instance, rng, coin=coin)


def sps_one_draw_per_position(instance: Instance, rng: RandomSource) -> Outcome:
    """True negative: one categorical draw per position over ``V + 1`` outcomes,
    ``(a, (1 - a) r_0, ..., (1 - a) r_{V-1})`` with ``a = min(1, p/q)``, ``r`` the residual:
    "accept" or the correction token, in one decision."""
    nodes = chain_nodes(instance, "sps_one_draw_per_position")
    p, q, tokens = instance.p, instance.q, instance.tree.tokens
    for parent, child in zip(nodes, nodes[1:]):
        x = tokens[child]
        a = accept_ratio(p[parent][x], q[parent][x])
        key = ("step", child)
        r = residual_or_fallback(positive_part(p[parent] - q[parent]), p[parent], rng, key)
        law = np.concatenate([np.array([a], dtype=p.dtype), (1 - a) * r])
        pick = rng.categorical(law, key)
        if pick > 0:
            return Outcome(parent, pick - 1)
    last = nodes[-1]
    return Outcome(last, rng.categorical(p[last], ("residual", last)))


def sps_coins_first(instance: Instance, rng: RandomSource) -> Outcome:
    """True negative: every acceptance coin is drawn up front (a vectorised kernel), then the
    first failure is located; coins after it are drawn and ignored."""
    nodes = chain_nodes(instance, "sps_coins_first")
    p, q, tokens = instance.p, instance.q, instance.tree.tokens
    coins = [rng.bernoulli(accept_ratio(p[a][tokens[b]], q[a][tokens[b]]), ("accept", b))
             for a, b in zip(nodes, nodes[1:])]
    tau = coins.index(False) if False in coins else len(coins)
    node = nodes[tau]
    key = ("residual", node)
    law = p[node] if tau == len(coins) else _residual(p[node], q[node], rng, key)
    return Outcome(node, rng.categorical(law, key))


def sps_min_form_sorted(instance: Instance, rng: RandomSource) -> Outcome:
    """True negative: the residual written as ``(p - min(p, q)) / (1 - sum min(p, q))`` and
    sampled by inverse CDF over the tokens sorted by decreasing residual."""
    def residual(p_row, q_row, rng, key):
        overlap = np.minimum(p_row, q_row) if p_row.dtype != object else np.array(
            [a if a < b else b for a, b in zip(p_row, q_row)], dtype=object)
        mass = 1 - overlap.sum()
        if mass <= 0:
            rng.fallback(key)
            return p_row
        return (p_row - overlap) / mass

    nodes = chain_nodes(instance, "sps_min_form_sorted")
    p, q, tokens = instance.p, instance.q, instance.tree.tokens
    for parent, child in zip(nodes, nodes[1:]):
        x = tokens[child]
        if not rng.bernoulli(accept_ratio(p[parent][x], q[parent][x]), ("accept", child)):
            key = ("residual", parent)
            law = residual(p[parent], q[parent], rng, key)
            order = sorted(range(len(law)), key=lambda i: (-law[i], i))
            return Outcome(parent, order[rng.categorical(law[order], key)])
    last = nodes[-1]
    return Outcome(last, rng.categorical(p[last], ("residual", last)))


def bv_tau_categorical(instance: Instance, rng: RandomSource) -> Outcome:
    """True negative: block verification drawing ``tau`` in ONE categorical,
    ``Pr[tau = i] = h_i prod_{j > i} (1 - h_j)`` (``h_0 = 1``), the law of the backward coin scan."""
    nodes = chain_nodes(instance, "bv_tau_categorical")
    w = bv_weights(instance, nodes)
    one = w[0]
    h = [x if x < one else one for x in bv_stop_probs(instance, nodes, w)]  # S/(S + 1 - w) may round above 1
    h[0] = one
    law, tail = [], one
    for i in range(len(nodes) - 1, -1, -1):
        law.append(tail * h[i])
        tail = tail * (1 - h[i])
    law = np.array(law[::-1], dtype=instance.p.dtype)
    tau = rng.categorical(law, ("tau", 0))
    return bv_emit(instance, rng, nodes, w, tau, instance.q)


def naive_tree_last_draw(instance: Instance, rng: RandomSource) -> Outcome:
    """True negative: on an i.i.d. tree, token-level SpS along the LAST draw at every node (any
    fixed draw index is a sample of ``q``)."""
    tree, p, q = instance.tree, instance.p, instance.q
    u = 0
    while tree.draws[u]:
        c = tree.draws[u][-1]
        x = tree.tokens[c]
        if not rng.bernoulli(accept_ratio(p[u][x], q[u][x]), ("accept", c)):
            key = ("residual", u)
            return Outcome(u, rng.categorical(_residual(p[u], q[u], rng, key), key))
        u = c
    return Outcome(u, rng.categorical(p[u], ("residual", u)))


def _shuffled(p, q, d, rng, u):
    rest, order = list(d), []
    while rest:
        j = rng.categorical(np.full(len(rest), 1.0 / len(rest)), ("perm", u, len(order))) if len(rest) > 1 else 0
        order.append(rest.pop(j))
    return _specinfer(p, q, tuple(order), rng, u)


def specinfer_shuffled_draws(instance: Instance, rng: RandomSource) -> Outcome:
    """True negative: SpecInfer testing the i.i.d. draws of each node in a uniformly random order
    (a shuffled i.i.d. sequence is i.i.d.), e.g. after a hash-ordered deduplication pass."""
    return _topdown(instance, rng, _shuffled)


MUTANTS = [
    Mutant("bonus_from_draft", bonus_from_draft, CHAIN,
           "bonus token drawn from the draft's row q[L]; could ship wherever the target's extra (L+1) row is skipped",
           model="E1", scheme="chain(1)"),
    Mutant("bonus_overwrites_last_draft", bonus_overwrites_last_draft, CHAIN,
           "all accepted: bonus written at position L-1 over the last draft; could ship in any output-buffer indexing",
           model="E1", scheme="chain(1)"),
    Mutant("residual_when_all_accepted", residual_when_all_accepted, CHAIN,
           "all accepted: bonus drawn from the residual (p_L - q_L)_+; could ship in a fused recovery+bonus kernel",
           model="E1", scheme="chain(1)"),
    Mutant("accepted_count_not_prefix", accepted_count_not_prefix, CHAIN,
           "accepted length = number of passed coins, not the accepted prefix (FIELD-BUGS: counting convention split)",
           model="E1", scheme="chain(2)"),
    Mutant("draft_row_tile_index", draft_row_tile_index, CHAIN,
           "draft-prob row read with a tile-local index i % 2 (could ship in a position-tiled kernel): depth >= 3 only",
           model="E5", scheme="chain(3)"),
    Mutant("residual_tile_tail", residual_tile_tail, CHAIN,
           "tiled residual normaliser over range(0, V - 1, 4) drops a 1-token tail tile (cf. GHSA-8wr5-jm2h-8r4f tails): V = 5 only",
           model="random:5:2", scheme="chain(1)"),
    Mutant("residual_topk3", residual_topk3, CHAIN,
           "recovered token drawn by the engine's top-k (k=3) sampler from the residual (could ship on sampler reuse): V >= 5",
           model="random:5:16", scheme="chain(1)"),
    Mutant("residual_eps_denominator", residual_eps_denominator, CHAIN,
           "residual normalised by sum + 1e-6 (a division-by-zero guard that could ship anywhere), inverse-CDF sampled",
           model="E4", scheme="chain(1)"),
    Mutant("residual_on_logits", residual_on_logits, CHAIN,
           "residual max(logit_p - logit_q, 0) on logits, not max(p - q, 0) (could ship where verifiers get logits)",
           model="E4", scheme="chain(1)"),
    Mutant("allclose_fast_accept", allclose_fast_accept, CHAIN,
           "early-exit fast path accepting without a coin when allclose(p, q, atol=1e-3) (could ship as an optimisation): p ~= q only",
           model="random:4:0:0.001", scheme="chain(1)"),
    Mutant("accept_le_float32_uniform", accept_le_float32_uniform, CHAIN,
           "accept iff u <= p/q with float32 uniforms: +2^-24 per test, p = 0 drafts accepted (SGLang #35771)",
           model="E1", scheme="chain(1)"),
    Mutant("ratio_float16", ratio_float16, CHAIN,
           "acceptance ratio computed in float16 while drafting and the residual use float64 (DeepSpec #31 dtype-split class)",
           model="E2", scheme="chain(1)"),
    Mutant("bv_stop_prev_row", bv_stop_prev_row, CHAIN,
           "block verification stop weight from the previous position's rows (FIELD-BUGS; context-dependent only)",
           model="E5", scheme="chain(2)"),
    Mutant("bv_last_stop_formula", bv_last_stop_formula, CHAIN,
           "block verification using the interior stop formula at i = L, not h_L = w_L (loop bound; could ship in any BV port)",
           model="E1", scheme="chain(1)"),
    Mutant("specinfer_pingpong_residual", specinfer_pingpong_residual, IID,
           "SpecInfer double-buffered residual read by sibling parity, written to slot 1 (could ship in a kernel): k >= 3 only",
           model="E5", scheme="iid(3,1)"),
    Mutant("specinfer_residual_unnormalised", specinfer_residual_unnormalised, IID,
           "SpecInfer residual carried to the next sibling's test without renormalising (tree residual reuse across siblings)",
           model="E2", scheme="iid(2,1)"),
    Mutant("tree_rows_by_depth", tree_rows_by_depth, IID,
           "tree rows sliced by depth as for a chain: branches read another branch's logits (cf. TRT-LLM #15098)",
           model="E5", scheme="iid(2,2)"),
    Mutant("rrs_q_not_renormalised", rrs_q_not_renormalised, WOR,
           "RRS without replacement zeroing the rejected sibling in q without renormalising q (sibling removal half done)",
           model="E4", scheme="wor(2)"),
    Mutant("rrs_q_removes_last_only", rrs_q_removes_last_only, WOR,
           "RRS w/o replacement rebuilding q from the original row minus only the last rejection (could ship in RSD ports): k >= 3",
           model="random:4:2:1.0", scheme="wor(3)"),
]

TRUE_NEGATIVES = [
    Mutant("sps_rejection_coin", sps_rejection_coin, CHAIN,
           "true negative: SpS whose coin decides rejection with probability 1 - min(1, p/q)",
           model="E5", scheme="chain(2)", lossless=True),
    Mutant("sps_one_draw_per_position", sps_one_draw_per_position, CHAIN,
           "true negative: SpS with one (V+1)-way draw per position: accept, or the correction token",
           model="E5", scheme="chain(2)", lossless=True),
    Mutant("sps_coins_first", sps_coins_first, CHAIN,
           "true negative: SpS drawing every coin up front, then locating the first failure",
           model="E5", scheme="chain(2)", lossless=True),
    Mutant("sps_min_form_sorted", sps_min_form_sorted, CHAIN,
           "true negative: residual (p - min(p,q)) / (1 - sum min(p,q)) sampled over tokens sorted by mass",
           model="E5", scheme="chain(2)", lossless=True),
    Mutant("bv_tau_categorical", bv_tau_categorical, CHAIN,
           "true negative: block verification drawing tau in one categorical (law of the backward scan)",
           model="E5", scheme="chain(2)", lossless=True),
    Mutant("naive_tree_last_draw", naive_tree_last_draw, IID_ALL,
           "true negative: token-level SpS along the last i.i.d. draw at every node of a tree",
           model="E5", scheme="iid(2,2)", lossless=True),
    Mutant("specinfer_shuffled_draws", specinfer_shuffled_draws, IID,
           "true negative: SpecInfer testing each node's i.i.d. draws in a uniformly random order",
           model="E2", scheme="iid(2,2)", lossless=True),
]
