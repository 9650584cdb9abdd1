"""Realistic verifier bugs seen in serving engines and libraries (FIELD-BUGS.md), as mutants.

Each mutant is a small departure from token-level speculative sampling (SpS, the ``naive``
reference): the same keys (``("accept", node)``, ``("residual", node)``), one changed line of
arithmetic. Where the real bug lives outside the verifier (a kernel's sampler, the drafter, the
logits processors), the mutant reproduces its effect on the verifier's output law:

- an inverse-CDF kernel fed an unclamped or unnormalised residual is modelled by the exact law such
  a kernel samples from (first index ``i`` with ``u < cumsum(w)[i]``, the tail mass going to the
  last index with positive weight, as :func:`specoracle.randomness.categorical_from_uniform` does);
- "q reported is not the q the drafts came from" is a verifier that transforms ``instance.q`` (or
  ``instance.p``) before running the correct algorithm;
- deterministic drafts are a verifier + scheme pair: on a full depth-1 tree (``wor(V)``, every
  token drafted once) the verifier picks the argmax-``q`` child, i.e. the greedy draft, and then
  tests it as if it had been sampled from ``q``.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource
from specoracle.reference._common import accept_ratio, chain_nodes, positive_part, residual_or_fallback

from . import Mutant

__all__ = [
    "MUTANTS",
    "bf16_round",
    "inverse_cdf_law",
    "residual_unclamped",
    "residual_unnormalised",
    "topk_verifier_only",
    "bf16_ratio",
    "bonus_wrong_node",
    "greedy_drafts_as_sampled",
    "temperature_draft_only",
    "bonus_without_temperature",
    "shared_uniform",
]

CHAIN = frozenset({"chain"})
TOPK = 2  # top-k the verifier applies to its copy of q
TEMPERATURE = 0.5  # requested sampling temperature in the temperature mutants


# --- helpers -------------------------------------------------------------------------------------
def bf16_round(x) -> np.ndarray:
    """Round to bfloat16 (8 significant bits, round-to-nearest-even) without torch.

    float64 -> float32 -> keep the top 16 bits of the float32 pattern with RNE on the low 16 bits.

    >>> float(bf16_round(0.1))
    0.10009765625
    """
    a = np.atleast_1d(np.asarray(x, dtype=np.float32))
    bits = a.view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32).astype(np.float64)
    return out.reshape(np.shape(x))


def inverse_cdf_law(weights) -> np.ndarray:
    """Law of ``first i with u < cumsum(weights)[i]`` for ``u ~ U[0, 1)``, unnormalised weights allowed.

    ``law_i = (M_i - M_{i-1})_+`` with ``M_i = max(0, c_0..c_i)`` the running maximum of the
    cumulative sum ``c``; the mass ``1 - M_{V-1}`` of uniforms above every partial sum goes to the
    last index with positive weight. Works on float and Fraction vectors.
    """
    w = list(weights)
    zero = w[0] * 0
    law, c, M = [], zero, zero
    for x in w:
        c = c + x
        newM = c if c > M else M
        law.append(newM - M)
        M = newM
    pos = [i for i, x in enumerate(w) if x > 0]
    if pos:
        law[pos[-1]] = law[pos[-1]] + (1 - M)
    dtype = object if isinstance(zero, Fraction) else np.float64
    return np.array(law, dtype=dtype)


def _sps(instance: Instance, rng: RandomSource, *, p=None, q=None, ratio=None, residual=None, bonus=None) -> Outcome:
    """SpS along a chain with hooks: tables ``p``/``q`` the verifier uses, ``ratio(p_x, q_x)``,
    ``residual(p_row, q_row) -> law``, ``bonus(nodes, p) -> law``."""
    nodes = chain_nodes(instance, "sps")
    p = instance.p if p is None else p
    q = instance.q if q is None else q
    tokens = instance.tree.tokens
    for parent, child in zip(nodes, nodes[1:]):
        x = tokens[child]
        r = accept_ratio(p[parent][x], q[parent][x]) if ratio is None else ratio(p[parent][x], q[parent][x])
        if not rng.bernoulli(r, ("accept", child)):
            key = ("residual", parent)
            if residual is None:
                law = residual_or_fallback(positive_part(p[parent] - q[parent]), p[parent], rng, key)
            else:
                law = residual(p[parent], q[parent])
            return Outcome(parent, rng.categorical(law, key))
    last = nodes[-1]
    law = p[last] if bonus is None else bonus(nodes, p)
    return Outcome(last, rng.categorical(law, ("residual", last)))


def _normalise(v):
    return v / v.sum()


def _retemper(row, T: float) -> np.ndarray:
    """``row^T / Z``: the T=1 law whose temperature-``T`` version is ``row``."""
    v = np.asarray(row, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logits = np.log(v) * T
    logits -= logits.max()
    w = np.exp(logits)
    return w / w.sum()


def _top_k_row(row, k: int):
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]
    out = row * 0
    for i in order:
        out[i] = row[i]
    return out / out.sum()


def _safe_ratio(p_x, q_x):
    """``min(1, p/q)`` with ``p/0 = inf -> 1`` (what a float kernel computes)."""
    if q_x == 0:
        return p_x * 0 + 1
    return accept_ratio(p_x, q_x)


# --- mutants ------------------------------------------------------------------------------------
def residual_unclamped(instance: Instance, rng: RandomSource) -> Outcome:
    """The residual ``p - q`` is divided by its positive mass but never clamped: an inverse-CDF
    kernel then walks a cumulative sum that goes down at tokens where ``q > p``."""
    def residual(p_row, q_row):
        d = p_row - q_row
        return inverse_cdf_law(d / positive_part(d).sum())

    return _sps(instance, rng, residual=residual)


def residual_unnormalised(instance: Instance, rng: RandomSource) -> Outcome:
    """The clamped residual ``(p - q)_+`` goes to an inverse-CDF sampler without dividing by its
    mass ``1 - beta``; uniforms above the mass fall to the last token with positive residual."""
    return _sps(instance, rng, residual=lambda p_row, q_row: inverse_cdf_law(positive_part(p_row - q_row)))


def topk_verifier_only(instance: Instance, rng: RandomSource) -> Outcome:
    """Drafts sampled from the full ``q``; the verifier's copy of ``q`` went through top-k (k=2)."""
    q = np.stack([_top_k_row(row, TOPK) for row in instance.q])

    def residual(p_row, q_row):
        w = positive_part(p_row - q_row)
        return w / w.sum() if w.sum() > 0 else p_row

    return _sps(instance, rng, q=q, ratio=_safe_ratio, residual=residual)


def bf16_ratio(instance: Instance, rng: RandomSource) -> Outcome:
    """The acceptance ratio is computed on bfloat16-rounded probabilities (and rounded again),
    while drafting and the residual use float32/64 laws (DeepSpec #31's dtype split)."""
    def ratio(p_x, q_x):
        r = float(bf16_round(float(bf16_round(float(p_x))) / float(bf16_round(float(q_x)))))
        return min(r, 1.0)

    return _sps(instance, rng, ratio=ratio)


def bonus_wrong_node(instance: Instance, rng: RandomSource) -> Outcome:
    """After every draft is accepted, the bonus token is sampled from the row of the LAST DRAFT's
    parent (``p[L-1]``) instead of ``p[L]`` (off-by-one on the bonus row of an [L+1, V] layout)."""
    return _sps(instance, rng, bonus=lambda nodes, p: p[nodes[max(len(nodes) - 2, 0)]])


def greedy_drafts_as_sampled(instance: Instance, rng: RandomSource) -> Outcome:
    """Deterministic drafts verified as if sampled: at each node take the child with the largest
    ``q`` (the greedy/beam draft; on a full ``wor(V)`` tree this is ``argmax q``), accept it with
    ``min(1, p/q)``, else sample ``norm((p - q)_+)``; bonus ``p`` at a leaf."""
    tree, p, q = instance.tree, instance.p, instance.q
    node = 0
    while tree.children[node]:
        child = max(tree.children[node], key=lambda c: (q[node][tree.tokens[c]], -tree.tokens[c]))
        x = tree.tokens[child]
        if not rng.bernoulli(accept_ratio(p[node][x], q[node][x]), ("accept", child)):
            key = ("residual", node)
            law = residual_or_fallback(positive_part(p[node] - q[node]), p[node], rng, key)
            return Outcome(node, rng.categorical(law, key))
        node = child
    return Outcome(node, rng.categorical(p[node], ("residual", node)))


def temperature_draft_only(instance: Instance, rng: RandomSource) -> Outcome:
    """Temperature T=0.5 applied to the draft logits only: the verifier's target rows stay at T=1
    (``p^T / Z`` of the requested law ``p``), so the output follows the untempered target."""
    p = np.stack([_retemper(row, TEMPERATURE) for row in instance.p])
    return _sps(instance, rng, p=p)


def bonus_without_temperature(instance: Instance, rng: RandomSource) -> Outcome:
    """Corrections use the tempered target, but the bonus token is sampled from the T=1 target
    (EAGLE 1.2.1 on PyPI: bonus token sampled without temperature / top-p)."""
    return _sps(instance, rng, bonus=lambda nodes, p: _retemper(p[nodes[-1]], TEMPERATURE))


def shared_uniform(instance: Instance, rng: RandomSource) -> Outcome:
    """One uniform shared by every acceptance test of the block: ``x_1..x_i`` accepted iff
    ``u < min(r_1..r_i)``. Written as conditional coins ``m_i / m_{i-1}`` (``m_i`` the running
    minimum of the ratios), which has the same law."""
    nodes = chain_nodes(instance, "sps")
    p, q, tokens = instance.p, instance.q, instance.tree.tokens
    m_prev = p[0][0] * 0 + 1
    for parent, child in zip(nodes, nodes[1:]):
        x = tokens[child]
        r = accept_ratio(p[parent][x], q[parent][x])
        m = r if r < m_prev else m_prev
        cond = m / m_prev if m_prev > 0 else m * 0
        if not rng.bernoulli(cond, ("accept", child)):
            key = ("residual", parent)
            law = residual_or_fallback(positive_part(p[parent] - q[parent]), p[parent], rng, key)
            return Outcome(parent, rng.categorical(law, key))
        m_prev = m
    last = nodes[-1]
    return Outcome(last, rng.categorical(p[last], ("residual", last)))


MUTANTS = [
    Mutant("residual_unclamped", residual_unclamped, CHAIN,
           "residual p - q normalised but not clamped at 0; an inverse-CDF kernel walks a non-monotone cumsum",
           model="E5", scheme="chain(2)"),
    Mutant("residual_unnormalised", residual_unnormalised, CHAIN,
           "residual (p - q)_+ sampled by inverse CDF without dividing by its mass; the tail goes to the last token",
           model="E5", scheme="chain(2)"),
    Mutant("topk_verifier_only", topk_verifier_only, CHAIN,
           "drafts sampled from the full q, verifier's q top-k processed (processed vs raw logits, HF #32867)",
           model="E5", scheme="chain(2)"),
    Mutant("bf16_ratio", bf16_ratio, CHAIN,
           "acceptance ratio from bfloat16-rounded probabilities, sampling in float (DeepSpec #31 dtype split)",
           model="E3", scheme="chain(1)"),  # TV 0.002 on E3; only 1.7e-4 on E5 (bf16 errors are ~2^-9 relative)
    Mutant("bonus_wrong_node", bonus_wrong_node, CHAIN,
           "bonus token sampled from the last draft's parent row p[L-1] instead of p[L] (off-by-one bonus row)",
           model="E5", scheme="chain(2)"),
    Mutant("greedy_drafts_as_sampled", greedy_drafts_as_sampled, frozenset({"without_replacement", "iid"}),
           "argmax/beam drafts verified with the sampled-draft rule min(1, p/q) (forced-greedy assistant, HF #47932)",
           model="E5", scheme="wor(4)"),
    Mutant("temperature_draft_only", temperature_draft_only, CHAIN,
           "sampling temperature applied to the draft logits only; the target rows stay at T=1",
           model="E5", scheme="chain(2)"),
    Mutant("bonus_without_temperature", bonus_without_temperature, CHAIN,
           "bonus token sampled from the T=1 target while corrections use the tempered one (EAGLE 1.2.1)",
           model="E5", scheme="chain(2)"),
    Mutant("shared_uniform", shared_uniform, CHAIN,
           "one uniform shared by all acceptance tests of a block (an automated review 'fix' of a BV patch)",
           model="E5", scheme="chain(2)"),
]
