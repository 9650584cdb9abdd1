"""Single-path verifiers: token-level speculative sampling and block verification.

Both take a chain instance (nodes ``0..L`` along one draft path ``x_1..x_L``; ``p[i]``, ``q[i]``
are the laws after ``x_{1:i}``, shape ``[L+1, V]``) and return an ``Outcome(node, token)``.
"""
from __future__ import annotations

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource
from specoracle.registry import Entry
from specoracle.tree import Tree

from ._common import accept_ratio, chain_nodes, positive_part, residual_or_fallback

__all__ = ["naive", "bv", "bv_weights", "bv_stop_probs", "naive_keys", "bv_keys", "ENTRIES"]


def naive(instance: Instance, rng: RandomSource) -> Outcome:
    """Token-level speculative sampling (Leviathan et al. 2023; Chen et al. 2023).

    Accept ``x_i`` iff ``u_i < p_{i-1}(x_i) / q_{i-1}(x_i)`` (key ``("accept", i)``), stop at the
    first rejection ``tau = i - 1`` and draw ``y ~ norm((p_tau - q_tau)_+)``; if all ``L`` pass,
    draw the bonus ``y ~ p_L`` (key ``("residual", tau)`` in both cases).

    Context-free closed form: ``E[tau] = sum_{i=1..L} beta^i`` with ``beta = sum min(p, q)``;
    E1 with L=2 gives 10/9.
    """
    nodes = chain_nodes(instance, "naive")
    p, q, tokens = instance.p, instance.q, instance.tree.tokens
    for parent, child in zip(nodes, nodes[1:]):
        x = tokens[child]
        if not rng.bernoulli(accept_ratio(p[parent][x], q[parent][x]), ("accept", child)):
            key = ("residual", parent)
            law = residual_or_fallback(positive_part(p[parent] - q[parent]), p[parent], rng, key)
            return Outcome(parent, rng.categorical(law, key))
    last = nodes[-1]
    return Outcome(last, rng.categorical(p[last], ("residual", last)))


def bv_weights(instance: Instance, nodes: list[int], q=None) -> list:
    """BV weights ``w_0 = 1``, ``w_i = min(1, w_{i-1} p_{i-1}(x_i) / q_{i-1}(x_i))`` along ``nodes``.

    ``q`` ([N, V]) overrides the instance's draft law (GBV runs BV against a skewed draft law).
    """
    q = instance.q if q is None else q
    p, tokens = instance.p, instance.tree.tokens
    w = [p[0][0] * 0 + 1]
    for parent, child in zip(nodes, nodes[1:]):
        x = tokens[child]
        w.append(min(w[-1] * p[parent][x] / q[parent][x], w[0]))
    return w


def bv_stop_probs(instance: Instance, nodes: list[int], w: list, q=None) -> list:
    """Stop probabilities ``h_i = S_i / (S_i + 1 - w_i)`` (``i < L``), ``h_L = w_L``, ``0/0 := 1``.

    ``S_i = sum_y (w_i p_i(y) - q_i(y))_+`` uses the laws AFTER ``x_{1:i}`` (row ``nodes[i]``).
    """
    q = instance.q if q is None else q
    p = instance.p
    L = len(nodes) - 1
    h = []
    for i, node in enumerate(nodes):
        if i == L:
            h.append(w[i])
            continue
        S = positive_part(w[i] * p[node] - q[node]).sum()
        den = S + 1 - w[i]
        h.append(S / den if den > 0 else den * 0 + 1)
    return h


def bv(instance: Instance, rng: RandomSource) -> Outcome:
    """Block verification (Sun et al., ICLR 2025), backward independent-coin form.

    ``tau = max{i : coin_i}`` with ``coin_i = u_i < h_i`` scanned from ``i = L`` down (keys
    ``("stop", node_i)``; ``h_0 = 1`` needs no coin); correction ``y ~ norm((w_tau p_tau -
    q_tau)_+)`` for ``tau < L``, bonus ``y ~ p_L`` otherwise (key ``("residual", node_tau)``).
    ``Pr[tau >= i | x_{1:i}] = w_i``, so ``E[tau] = sum_i sum_x Q(x_{1:i}) w(x_{1:i})``; optimal
    among iteration-wise lossless single-path verifiers. E1, L=2: ``E[tau] = 11/9``.
    """
    nodes = chain_nodes(instance, "bv")
    w = bv_weights(instance, nodes)
    h = bv_stop_probs(instance, nodes, w)
    return _bv_finish(instance, rng, nodes, w, h, instance.q)


def _bv_finish(instance, rng, nodes, w, h, q) -> Outcome:
    """Backward scan for ``tau`` and the correction draw (shared with GBV)."""
    tau = 0
    for i in range(len(nodes) - 1, 0, -1):
        if rng.bernoulli(h[i], ("stop", nodes[i])):
            tau = i
            break
    return _bv_emit(instance, rng, nodes, w, tau, q)


def _bv_emit(instance, rng, nodes, w, tau, q) -> Outcome:
    """Token at stop ``tau``: bonus ``p_L`` if ``tau = L``, else ``norm((w_tau p_tau - q_tau)_+)``."""
    node = nodes[tau]
    key = ("residual", node)
    p = instance.p
    if tau == len(nodes) - 1:
        return Outcome(node, rng.categorical(p[node], key))
    law = residual_or_fallback(positive_part(w[tau] * p[node] - q[node]), p[node], rng, key)
    return Outcome(node, rng.categorical(law, key))


def naive_keys(tree: Tree) -> tuple:
    """Coupled layout of :func:`naive`: accept coins for nodes 1..N-1, then residual draws 0..N-1."""
    return tuple(("accept", i) for i in range(1, tree.size)) + tuple(("residual", i) for i in range(tree.size))


def bv_keys(tree: Tree) -> tuple:
    """Coupled layout of :func:`bv`: stop coins for nodes 1..N-1, then residual draws 0..N-1."""
    return tuple(("stop", i) for i in range(1, tree.size)) + tuple(("residual", i) for i in range(tree.size))


ENTRIES = [
    Entry(
        name="naive",
        reference=naive,
        keys=naive_keys,
        schemes=frozenset({"chain"}),
        family="chain",
        optimal_within="single-token verifiers (L = 1): the maximal coupling",
        description="token-level speculative sampling (Leviathan et al. 2023, Chen et al. 2023)",
    ),
    Entry(
        name="bv",
        reference=bv,
        keys=bv_keys,
        schemes=frozenset({"chain"}),
        family="chain",
        optimal_within="iteration-wise lossless single-path verifiers (information-agnostic LP)",
        bound="single_path_bound",
        description="block verification (Sun et al., ICLR 2025), backward independent-coin form",
    ),
]
