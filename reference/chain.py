"""Single-path verifiers: token-level speculative sampling and block verification.

Both take a chain instance (nodes ``0..L`` along one draft path ``x_1..x_L``; ``p[i]``, ``q[i]``
are the laws after ``x_{1:i}``, shape ``[L+1, V]``) and return an ``Outcome(node, token)``.
"""
from __future__ import annotations

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource, node_keys
from specoracle.registry import Entry
from specoracle.tree import Tree

from ._common import accept_ratio, chain_nodes, positive_part, residual_or_fallback
from .bv_core import bv_finish, bv_stop_probs, bv_weights

__all__ = ["naive", "bv", "naive_keys", "bv_keys", "ENTRIES"]


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
    return bv_finish(instance, rng, nodes, w, h, instance.q)


def naive_keys(tree: Tree) -> tuple:
    """Coupled layout of :func:`naive`: accept coins for nodes 1..N-1, then residual draws 0..N-1."""
    return node_keys(tree.size, "accept")


def bv_keys(tree: Tree) -> tuple:
    """Coupled layout of :func:`bv`: stop coins for nodes 1..N-1, then residual draws 0..N-1."""
    return node_keys(tree.size, "stop")


ENTRIES = [
    Entry(
        name="naive",
        reference=naive,
        keys=naive_keys,
        schemes=frozenset({"chain"}),
        family="chain",
        top_down=True,
        terminal_draws=True,
        optimal_within="single-token verifiers (L = 1): the maximal coupling",
        description="token-level speculative sampling (Leviathan et al. 2023, Chen et al. 2023)",
    ),
    Entry(
        name="bv",
        reference=bv,
        keys=bv_keys,
        schemes=frozenset({"chain"}),
        family="chain",
        terminal_draws=True,
        optimal_within="iteration-wise lossless single-path verifiers (information-agnostic LP)",
        bound="single_path_bound",
        description="block verification (Sun et al., ICLR 2025), backward independent-coin form",
    ),
]
