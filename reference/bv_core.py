"""Block-verification core shared by every verifier that runs BV along one path.

Block verification (Sun et al., ICLR 2025; ALGORITHMS.md §2.2) on the nodes ``nodes = (u_0 = root,
u_1, ..., u_L)`` of one path, tokens ``x_i = token(u_i)``, against the target rows ``p[u]`` and a
draft law ``q`` (the instance's own, or any autoregressive law the path was sampled from: GBV's
skewed best-of-K law, a selection law):

- weights ``w_0 = 1``, ``w_i = min(1, w_{i-1} p_{i-1}(x_i) / q_{i-1}(x_i))``;
- stop probabilities ``h_i = S_i / (S_i + 1 - w_i)`` with ``S_i = sum_y (w_i p_i(y) - q_i(y))_+``
  (``i < L``; ``0/0 := 1``), ``h_L = w_L``;
- ``tau = max{i : coin_i}`` over independent coins (key ``("stop", u_i)``, ``h_0 = 1`` needs none);
- token at ``u_tau``: bonus ``y ~ p_L`` if ``tau = L``, else ``y ~ norm((w_tau p_tau - q_tau)_+)``
  (key ``("residual", u_tau)``).

``Pr[tau >= i | x_{1:i}] = w_i``, so ``E[tau] = sum_i sum_x Q(x_{1:i}) w(x_{1:i})``. Users:
:mod:`.chain` (``bv``), :mod:`.gbv`, :mod:`.rsbv` and :mod:`specoracle.mutants`. Every function
works on float64 and Fraction tables.
"""
from __future__ import annotations

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource

from ._common import positive_part, residual_or_fallback

__all__ = ["bv_weights", "bv_stop_probs", "bv_finish", "bv_emit"]


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


def bv_finish(instance: Instance, rng: RandomSource, nodes: list[int], w: list, h: list, q) -> Outcome:
    """Backward scan for ``tau`` (keys ``("stop", node)``) and the token at ``nodes[tau]``."""
    tau = 0
    for i in range(len(nodes) - 1, 0, -1):
        if rng.bernoulli(h[i], ("stop", nodes[i])):
            tau = i
            break
    return bv_emit(instance, rng, nodes, w, tau, q)


def bv_emit(instance: Instance, rng: RandomSource, nodes: list[int], w: list, tau: int, q) -> Outcome:
    """Token at stop ``tau``: bonus ``p_L`` if ``tau = L``, else ``norm((w_tau p_tau - q_tau)_+)``."""
    node = nodes[tau]
    key = ("residual", node)
    p = instance.p
    if tau == len(nodes) - 1:
        return Outcome(node, rng.categorical(p[node], key))
    law = residual_or_fallback(positive_part(w[tau] * p[node] - q[node]), p[node], rng, key)
    return Outcome(node, rng.categorical(law, key))
