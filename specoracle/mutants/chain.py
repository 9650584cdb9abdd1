"""Single-path mutants (ALGORITHMS-2.md §11, M1-M5) and single-path true negatives."""
from __future__ import annotations

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource
from specoracle.reference._common import accept_ratio, chain_nodes, positive_part, residual_or_fallback
from specoracle.reference.bv_core import bv_emit, bv_finish, bv_stop_probs, bv_weights

from . import Mutant

__all__ = ["MUTANTS", "TRUE_NEGATIVES"]

CHAIN = frozenset({"chain"})


def _sps(instance: Instance, rng: RandomSource, residual_row_offset: int = 0, resample_target: bool = False) -> Outcome:
    nodes = chain_nodes(instance, "sps")
    p, q, tokens = instance.p, instance.q, instance.tree.tokens
    for i, (parent, child) in enumerate(zip(nodes, nodes[1:])):
        x = tokens[child]
        if not rng.bernoulli(accept_ratio(p[parent][x], q[parent][x]), ("accept", child)):
            key = ("residual", parent)
            if resample_target:
                return Outcome(parent, rng.categorical(p[parent], key))
            row = nodes[min(i + residual_row_offset, len(nodes) - 1)]
            law = residual_or_fallback(positive_part(p[row] - q[row]), p[row], rng, key)
            return Outcome(parent, rng.categorical(law, key))
    return Outcome(nodes[-1], rng.categorical(p[nodes[-1]], ("residual", nodes[-1])))


def sps_resample_target(instance: Instance, rng: RandomSource) -> Outcome:
    """M1: after a rejection, resample from p instead of the residual (p - q)_+."""
    return _sps(instance, rng, resample_target=True)


def sps_residual_next_row(instance: Instance, rng: RandomSource) -> Outcome:
    """M2: residual built from the next position's row (off-by-one in an [L+1, V] layout)."""
    return _sps(instance, rng, residual_row_offset=1)


def bv_forward_scan(instance: Instance, rng: RandomSource) -> Outcome:
    """M3: BV stopping at the first failed coin (forward scan) instead of the last success."""
    nodes = chain_nodes(instance, "bv")
    w = bv_weights(instance, nodes)
    h = bv_stop_probs(instance, nodes, w)
    tau = len(nodes) - 1
    for i in range(1, len(nodes)):
        if not rng.bernoulli(h[i], ("stop", nodes[i])):
            tau = i - 1
            break
    return bv_emit(instance, rng, nodes, w, tau, instance.q)


def bv_cumprod(instance: Instance, rng: RandomSource) -> Outcome:
    """M4: BV weights as the unclamped cumulative product of p/q (vllm-ascend's rule)."""
    nodes = chain_nodes(instance, "bv")
    p, q, tokens = instance.p, instance.q, instance.tree.tokens
    w = [p[0][0] * 0 + 1]
    for parent, child in zip(nodes, nodes[1:]):
        x = tokens[child]
        w.append(w[-1] * p[parent][x] / q[parent][x])
    wc = [min(x, w[0]) for x in w]
    h = bv_stop_probs(instance, nodes, wc)
    h = [min(x, w[0]) for x in h]
    return bv_finish(instance, rng, nodes, wc, h, q)


def bv_token_residual(instance: Instance, rng: RandomSource) -> Outcome:
    """M5: BV with the token-level residual (p - q)_+ instead of (w p - q)_+."""
    nodes = chain_nodes(instance, "bv")
    w = bv_weights(instance, nodes)
    h = bv_stop_probs(instance, nodes, w)
    return bv_finish(instance, rng, nodes, [w[0]] * len(w), h, instance.q)


def accept_if_target_sample_matches(instance: Instance, rng: RandomSource) -> Outcome:
    """True negative: accept x_i iff a fresh target sample equals it; else emit that sample.

    Lossless (each emitted token is a target sample) with low acceptance ``sum_y p(y)^2``-like.
    """
    nodes = chain_nodes(instance, "match")
    p, tokens = instance.p, instance.tree.tokens
    for parent, child in zip(nodes, nodes[1:]):
        y = rng.categorical(p[parent], ("residual", parent))
        if y != tokens[child]:
            return Outcome(parent, y)
    return Outcome(nodes[-1], rng.categorical(p[nodes[-1]], ("residual", nodes[-1])))


def sample_target_only(instance: Instance, rng: RandomSource) -> Outcome:
    """True negative: ignore the drafts and emit one target sample (tau = 0)."""
    return Outcome(0, rng.categorical(instance.p[0], ("residual", 0)))


MUTANTS = [
    Mutant("sps_resample_target", sps_resample_target, CHAIN,
           "M1: resample from p after a rejection instead of the residual (E1 L2 err 0.0741)",
           model="E1", scheme="chain(2)"),
    Mutant("sps_residual_next_row", sps_residual_next_row, CHAIN,
           "M2: residual read from the next position's row; invisible on context-free models (E3 err 0.1275)",
           model="E3", scheme="chain(2)"),
    Mutant("bv_forward_scan", bv_forward_scan, CHAIN,
           "M3: block verification stopping at the first failed coin (E1 L2 err 0.148)",
           model="E1", scheme="chain(2)"),
    Mutant("bv_cumprod", bv_cumprod, CHAIN,
           "M4: block verification with an unclamped cumulative-product rule (vllm-ascend, reverted fix)",
           model="E1", scheme="chain(2)"),
    Mutant("bv_token_residual", bv_token_residual, CHAIN,
           "M5: block verification with the token-level residual; hidden on V <= 3 (E5 L2 err 0.004)",
           model="E5", scheme="chain(2)"),
]

TRUE_NEGATIVES = [
    Mutant("accept_if_target_sample_matches", accept_if_target_sample_matches, CHAIN,
           "true negative: accept iff a fresh target sample equals the draft (lossless, low acceptance)",
           model="E5", scheme="chain(2)", lossless=True),
    Mutant("sample_target_only", sample_target_only, CHAIN,
           "true negative: ignore the drafts and sample the target (lossless, tau = 0)",
           model="E5", scheme="chain(2)", lossless=True),
]
