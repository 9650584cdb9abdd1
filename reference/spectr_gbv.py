"""SpecTr-GBV (Lin, Sheng, Cai, Zhou, arXiv 2604.25925): multi-draft GREEDY block verification.

"GBV" here is Sun et al.'s *greedy* block verification, not Thomas & Pal's GBV. Greedy schemes
accept more per iteration than any iteration-wise lossless verifier can (E1, K=1: ``E[tau] = 4/3``
vs BV's optimum ``11/9``) and stay lossless only because later iterations sample from a MODIFIED
target.

Provenance. The paper's algorithm text is unavailable (abstract and reviews only). The
per-iteration rule below is reconstructed from third-party code of unknown provenance (one
``src/engine.py`` found in public material; ALGORITHMS.md §6 transcribes its formulas). Nothing
here is the authors' algorithm; three verifiers make the reconstruction's parts explicit:

- ``spectr_gbv_as_found`` — the third-party per-iteration rule exactly as found, one iteration,
  no state. For a block prefix ``s`` with target mass ``M(s)`` and draft mass ``Q(s)``:
  ``g(s) = M(s) [1 - (1 - min(Q(s)/M(s), 1))^K]``, coverage ``D(s) = 1 - (1 - Q(s))^K``.
  Candidates ``j = 1..K`` (the drafted paths, in draw order) are scanned; within a candidate,
  positions ``i`` beyond the current accepted length are scanned forward and prefix ``x^i``
  (``i < L``) is accepted, overwriting the current best, w.p.
  ``h = [g(x^i) - sum_y g(x^i y)] / [D(x^i) - sum_y g(x^i y)]`` with a fresh coin per candidate and
  position (key ``("test", j, i)``, also when an earlier candidate's identical prefix was
  rejected); the full block is accepted w.p. ``g(x^L) / D(x^L)`` and ends the scan. Correction
  after ``x^n``, ``n < L``: ``y ~ norm_y(M(x^n y) [1 - min(Q/M, 1)(x^n y)^K])``; bonus
  ``y ~ p(. | x^L)``. Its first emitted token already has the wrong law for K >= 2, so no
  cross-iteration step can repair it (E1 iid(2,1): ``Pr[token 1] = 0.3625`` vs ``p(1) = 1/3``;
  E1 iid(2,2): ``Pr[token 0] = 0.6905`` vs ``2/3``; exact engine, ``tests/test_spectr_gbv.py``).
  Run alone, without a modified target, it is lossy at K = 1 too (greedy acceptance: 2/27 on E1
  chain(2)). Registered ``lossless=False``.
- ``spectr_gbv`` — that rule with ONE deviation of ours (a prefix already rejected for an earlier
  candidate is skipped, coin ``("test", node)``; E1 iid(2,2) first token 0 with probability
  0.7293) plus a cross-iteration "distribution modification" that is OUR derivation (the paper's
  Alg. 2 could not be read): if one iteration emits ``Z`` with the design law
  ``D_ext(s) = Pr[Z extends s] = A(s) + r(s[:-1]) c_{s[:-1]}(s[-1])`` (``A = g``;
  ``r(s) = A(s) - sum_y A(s y)``), the only memoryless way to keep the sequence law equal to ``M``
  is to continue from ``t`` (``Z`` a prefix of ``t``) with
  ``m'(x | t) = [M(t x) - D_ext(t x)] / [M(t) - A(t)]`` for ``|t| < L`` (``m' = m`` beyond),
  which needs ``D_ext <= M`` everywhere. The state is that modified target.
  Measured with the exact engine (``tests/test_spectr_gbv.py``): with K = 1 it is Sun et al.'s
  greedy block verification and lossless on whole sequences; with K >= 2 it is NOT. Whole-sequence
  max errors (5 tokens, L = 2): E1 iid(2,2) 0.0563, iid(3,2) 0.0737; E3 iid(2,2) 0.0130, iid(3,2)
  0.0168; (3 tokens, L = 1) E1 iid(2,1) 0.0779, E3 0.0405. The loss comes from the reconstructed
  per-iteration rule (with or without the skip): the scan does not realise ``A = g`` (E1 K=2
  per-iteration E[tau] = 1.3077, not the P-form 1.5833) and the correction weight
  ``1 - min^K`` exceeds the slack ``M (1 - min)^K``. Registered ``lossless=False``.
- ``spectr_gbv_lossless`` — the nearest lossless variant (our construction): select ONE of the K
  paths, the lexicographic maximum under the key ``(m/q ratio, token)`` (its law ``Q_skew`` is
  known in closed form, as in :mod:`specoracle.reference.gbv`), then run greedy block verification
  on it: ``A(s) = min(M(s), Q_skew(s))`` realised by independent coins
  ``h_i = [A(x^i) - sum_y A(x^i y)] / [Q_skew(x^i) - sum_y A(x^i y)]``, ``h_L = A/Q_skew``
  (key ``("stop", node)``), ``tau = max`` passing ``i``; correction ``~ norm(M(s y) - A(s y))``
  (the slack); same target modification. K = 1: both equal greedy block verification. It does
  not reach the paper's claims (tokens per call not monotone in K; below BV at K = 1 on E1);
  :mod:`specoracle.reference.rsbv` is the lossless multi-draft block verifier that is.

``spectr_gbv`` and ``spectr_gbv_lossless`` are stateful: ``verify(instance, rng, state) ->
(Outcome, state)``, judged with :func:`specoracle.exact.sequence_law` on whole sequences.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specoracle.errors import InvalidInstance
from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource, node_keys
from specoracle.registry import Entry
from specoracle.tree import Tree

from ._common import positive_part, residual_or_fallback

__all__ = [
    "spectr_gbv",
    "spectr_gbv_as_found",
    "spectr_gbv_lossless",
    "spectr_gbv_keys",
    "spectr_gbv_as_found_keys",
    "EffectiveTarget",
    "ENTRIES",
]


# --- paths of rows -------------------------------------------------------------------------------
# A path is (rows, toks): rows[i] = (p_row, q_row) [V] after toks[:i]; len(rows) == len(toks) + 1.


def _one(x):
    return x * 0 + 1


def _ratio_keys(m_row, q_row) -> list:
    return [(m_row[t] / q_row[t] if q_row[t] > 0 else float("inf"), t) for t in range(len(q_row))]


class EffectiveTarget:
    """The target law the current iteration must reproduce: ``cond(rows, toks)`` -> [V].

    The plain target is ``p`` itself (``rows[-1][0]``); :class:`_Modified` wraps it after an
    iteration emitted a block.
    """

    horizon = 0

    def cond(self, rows, toks) -> np.ndarray:
        """Next-token law after the path ``toks`` (relative to this target's context)."""
        return rows[-1][0]


_PLAIN = EffectiveTarget()


@dataclass(frozen=True)
class _Design:
    """Closed-form per-iteration law of one greedy multi-draft iteration.

    ``kind``: ``"g"`` (the third-party per-iteration rule) or ``"skew"`` (the lossless variant).
    Every method takes a path ``(rows, toks)`` relative to the iteration's context.
    """

    kind: str
    K: int
    L: int
    target: Any  # EffectiveTarget of that iteration
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def _memo(self, what, rows, toks, fn):
        # rows are a function of toks within one context, so toks identify the path
        key = (what, tuple(toks))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = fn(rows, toks)
        return hit

    def masses(self, rows, toks):
        """``M(s)``, ``Q(s)``, ``Q_skew(s)`` and (for the skew walk) ``A_below(s)`` along ``toks``."""
        return self._memo("masses", rows, toks, self._masses)

    def _masses(self, rows, toks):
        one = _one(rows[0][0][0])
        M, Q = one, one
        A_rank, Qm = one * 0, one
        for i, x in enumerate(toks):
            m_row = self.target.cond(rows[: i + 1], toks[:i])
            q_row = rows[i][1]
            M, Q = M * m_row[x], Q * q_row[x]
            if self.kind == "skew":
                keys = _ratio_keys(m_row, q_row)
                below = sum((q_row[t] for t in range(len(q_row)) if keys[t] < keys[x]), one * 0)
                A_rank, Qm = A_rank + Qm * below, Qm * q_row[x]
        Qs = (A_rank + Qm) ** self.K - A_rank**self.K if self.kind == "skew" else None
        return M, Q, Qs, (A_rank, Qm)

    def children(self, rows, toks):
        """Vectors [V] of ``M(s y)``, ``A(s y)`` and the correction weights at ``s`` (before norm)."""
        return self._memo("children", rows, toks, self._children)

    def _children(self, rows, toks):
        M, Q, Qs, (A_rank, Qm) = self.masses(rows, toks)
        m_row = self.target.cond(rows, toks)
        q_row = rows[-1][1]
        V = len(q_row)
        Mc = np.array([M * m_row[y] for y in range(V)], dtype=m_row.dtype)
        if len(toks) >= self.L:
            return Mc, Mc * 0, Mc  # nothing is accepted beyond L; bonus ~ m(.|s)
        if self.kind == "g":
            Ac = np.array([self._g(M * m_row[y], Q * q_row[y]) for y in range(V)], dtype=m_row.dtype)
            corr = np.array([_corr_g(M * m_row[y], Q * q_row[y], self.K) for y in range(V)], dtype=m_row.dtype)
            return Mc, Ac, corr
        keys = _ratio_keys(m_row, q_row)
        Ac = []
        for y in range(V):
            below = sum((q_row[t] for t in range(V) if keys[t] < keys[y]), M * 0)
            a, qm = A_rank + Qm * below, Qm * q_row[y]
            Ac.append(min(M * m_row[y], (a + qm) ** self.K - a**self.K))
        Ac = np.array(Ac, dtype=m_row.dtype)
        return Mc, Ac, Mc - Ac

    def _g(self, M, Q):
        if M <= 0:
            return M * 0
        mn = Q / M if Q < M else _one(M)
        return M * (1 - (1 - mn) ** self.K)

    def accepted_mass(self, rows, toks):
        """``A(s)``: probability that the accepted prefix extends ``s`` (1 at the root)."""
        if not toks:
            return _one(rows[0][0][0])
        M, Q, Qs, _ = self.masses(rows, toks)
        if len(toks) > self.L:
            return M * 0
        return self._g(M, Q) if self.kind == "g" else min(M, Qs)


def _corr_g(M, Q, K):
    """Correction weight of the third-party rule, ``M [1 - min(Q/M, 1)^K]`` (ALGORITHMS.md §6)."""
    if M <= 0:
        return M * 0
    mn = Q / M if Q < M else _one(M)
    return M * (1 - mn**K)


@dataclass(frozen=True)
class _Modified(EffectiveTarget):
    """Target after an iteration with law ``design`` emitted ``toks_z`` (rows known up to its
    accepted node): ``m'(x|t) = [M(t x) - D_ext(t x)] / [M(t) - A(t)]`` for ``|t| < L``."""

    design: _Design
    rows_z: tuple = field(compare=False)  # rows root .. accepted node (a function of toks_z)
    toks_z: tuple = ()  # accepted prefix + emitted token
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def cond(self, rows, toks):
        key = tuple(toks)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._cond(rows, toks)
        return hit

    def _cond(self, rows, toks):
        full_rows = list(self.rows_z) + list(rows)
        full_toks = tuple(self.toks_z) + tuple(toks)
        d = self.design
        if len(full_toks) >= d.L:
            return d.target.cond(full_rows, full_toks)
        A_t = d.accepted_mass(full_rows, full_toks)
        M_t = d.masses(full_rows, full_toks)[0]
        Mc, Ac, corr = d.children(full_rows, full_toks)
        r = A_t - Ac.sum()
        total = corr.sum()
        dext = Ac + (corr * (r / total) if total > 0 else corr * 0)
        num = positive_part(Mc - dext)  # (.)_+ only matters if D_ext > M (a lossy design)
        den = num.sum()
        if den <= 0 or M_t - A_t <= 0:
            return d.target.cond(full_rows, full_toks)  # probability-0 context
        return num / den


def _state_target(state) -> EffectiveTarget:
    return _PLAIN if state is None else state


def _path_rows(instance: Instance, node: int):
    tree = instance.tree
    path = tree.path(node)
    return [(instance.p[v], instance.q[v]) for v in path], tree.prefix(node)


def _candidates(tree: Tree) -> list[list[int]]:
    """The K drafted paths in draw order, as node lists (root excluded), recovered from ``draws``."""
    through = {0: list(range(tree.n_paths))}
    paths = [[] for _ in range(tree.n_paths)]
    stack = [0]
    while stack:
        u = stack.pop()
        for j, c in zip(through[u], tree.draws[u]):
            paths[j].append(c)
            through.setdefault(c, []).append(j)
        stack.extend(c for c in tree.children[u] if c in through)
    return paths


def _check(instance: Instance, who: str) -> None:
    tree = instance.tree
    if tree.sampling != "iid" or tree.trunk:
        raise InvalidInstance(f"{who} verifies K i.i.d. root-branching paths; got a {tree.sampling} tree "
                              f"with trunk {tree.trunk}")
    if any(tree.depths[leaf] != tree.depth for leaf in tree.leaves):
        raise InvalidInstance(f"{who}: every drafted path must have the full length L = {tree.depth}")


def _finish(instance, rng, design, node, target):
    """Correction/bonus draw at the accepted ``node`` and the next state."""
    rows, toks = _path_rows(instance, node)
    key = ("residual", node)
    Mc, Ac, corr = design.children(rows, toks)
    law = residual_or_fallback(corr, target.cond(rows, toks), rng, key)
    y = rng.categorical(law, key)
    return Outcome(node, y), _Modified(design, tuple(rows), tuple(toks) + (y,))


def _scan(instance: Instance, rng: RandomSource, design: _Design, skip_rejected: bool) -> int:
    """The third-party candidate scan; returns the accepted node (0: nothing accepted).

    ``skip_rejected``: our deviation (a prefix rejected for an earlier candidate is not tested
    again, coin ``("test", node)``); without it every candidate and position draws its own coin
    ``("test", j, i)``, as found.
    """
    K, L = design.K, design.L
    best, best_node, rejected = 0, 0, set()
    for j, path in enumerate(_candidates(instance.tree)):
        for i in range(best + 1, L + 1):
            node = path[i - 1]
            if skip_rejected and node in rejected:
                continue
            rows, toks = _path_rows(instance, node)
            M, Q, _, _ = design.masses(rows, toks)
            h = _stop_prob(design, rows, toks, i == L, design._g(M, Q), 1 - (1 - Q) ** K)
            if rng.bernoulli(h, ("test", node) if skip_rejected else ("test", j, i)):
                best, best_node = i, node
                if i == L:
                    return node
            else:
                rejected.add(node)
    return best_node


def spectr_gbv(instance: Instance, rng: RandomSource, state=None):
    """SpecTr-GBV as reconstructed from third-party code, with our duplicate skip and our derived
    cross-iteration target modification (see module docstring).

    NOT lossless for K >= 2 (registered ``lossless=False``).

    Parameters
    ----------
    instance : i.i.d. root-branching tree (K paths of length L; chains are K = 1).
    rng : random source; keys ``("test", node)``, ``("residual", node)``.
    state : ``None`` at the first call, then the returned state (the modified target).

    Returns
    -------
    (Outcome, state)
    """
    _check(instance, "spectr_gbv")
    tree = instance.tree
    target = _state_target(state)
    design = _Design("g", tree.n_paths, tree.depth, target)
    return _finish(instance, rng, design, _scan(instance, rng, design, True), target)


spectr_gbv.stateful = True


def spectr_gbv_as_found(instance: Instance, rng: RandomSource) -> Outcome:
    """The third-party SpecTr-GBV per-iteration rule exactly as found: one iteration, no state.

    Reconstructed from third-party code of unknown provenance (paper text unavailable); see the
    module docstring. Lossy: E1 iid(2,1) emits token 1 with probability 0.3625 (``p(1) = 1/3``).

    Parameters
    ----------
    instance : i.i.d. root-branching tree (K paths of length L; chains are K = 1).
    rng : random source; keys ``("test", j, i)`` (candidate ``j``, position ``i``) and
        ``("residual", node)``.
    """
    _check(instance, "spectr_gbv_as_found")
    tree = instance.tree
    design = _Design("g", tree.n_paths, tree.depth, _PLAIN)
    return _finish(instance, rng, design, _scan(instance, rng, design, False), _PLAIN)[0]


def _stop_prob(design, rows, toks, last: bool, accepted, cover):
    """Stop probability of a prefix: ``accepted / cover`` at full length, else
    ``(accepted - below) / (cover - below)`` with ``below`` the children's accepted mass (0/0 := 1)."""
    if last:
        return accepted / cover
    below = design.children(rows, toks)[1].sum()
    den = cover - below
    return (accepted - below) / den if den > 0 else _one(accepted)


def spectr_gbv_lossless(instance: Instance, rng: RandomSource, state=None):
    """Greedy block verification on the best-of-K path (nearest lossless variant of SpecTr-GBV).

    ``A(s) = min(M(s), Q_skew(s))`` with ``Q_skew`` the law of the lexicographic maximum of the K
    i.i.d. paths under ``(m/q, token)``; coins ``("stop", node)`` (independent, last success
    wins), correction ``~ norm(M(s y) - A(s y))`` (key ``("residual", node)``), then the target
    modification of the module docstring. Lossless on whole sequences (tested).
    """
    _check(instance, "spectr_gbv_lossless")
    tree = instance.tree
    target = _state_target(state)
    K, L = tree.n_paths, tree.depth
    design = _Design("skew", K, L, target)
    nodes = [0]
    while tree.children[nodes[-1]]:
        u = nodes[-1]
        rows, toks = _path_rows(instance, u)
        keys = _ratio_keys(target.cond(rows, toks), instance.q[u])
        nodes.append(max(tree.children[u], key=lambda c: keys[tree.tokens[c]]))
    tau = 0
    for i in range(L, 0, -1):
        node = nodes[i]
        rows, toks = _path_rows(instance, node)
        h = _stop_prob(design, rows, toks, i == L, design.accepted_mass(rows, toks), design.masses(rows, toks)[2])
        if rng.bernoulli(h, ("stop", node)):
            tau = i
            break
    return _finish(instance, rng, design, nodes[tau], target)


spectr_gbv_lossless.stateful = True


def spectr_gbv_keys(tree: Tree) -> tuple:
    """Coupled layout: test coins and stop coins for nodes 1..N-1, then residual draws 0..N-1."""
    return node_keys(tree.size, "test", "stop")


def spectr_gbv_as_found_keys(tree: Tree) -> tuple:
    """Coupled layout of :func:`spectr_gbv_as_found`: ``("test", j, i)`` for candidate ``j < K``
    and position ``i = 1..L`` (candidate-major), then residual draws for nodes 0..N-1."""
    return (tuple(("test", j, i) for j in range(tree.n_paths) for i in range(1, tree.depth + 1))
            + tuple(("residual", i) for i in range(tree.size)))


ENTRIES = [
    Entry(
        name="spectr_gbv_as_found",
        reference=spectr_gbv_as_found,
        keys=spectr_gbv_as_found_keys,
        schemes=frozenset({"chain", "iid"}),
        family="spectr_gbv",
        terminal_draws=True,
        lossless=False,
        description=(
            "SpecTr-GBV per-iteration rule exactly as found in third-party code of unknown provenance "
            "(paper text unavailable); one iteration, no state; lossy (E1 iid(2,1) first token)"
        ),
    ),
    Entry(
        name="spectr_gbv",
        reference=spectr_gbv,
        keys=spectr_gbv_keys,
        schemes=frozenset({"chain", "iid"}),
        family="spectr_gbv",
        lossless=False,
        stateful=True,
        description=(
            "SpecTr-GBV reconstructed from third-party code of unknown provenance (paper text "
            "unavailable), with our duplicate skip and our derived target modification; NOT lossless "
            "for K >= 2 (exact sequence law)"
        ),
    ),
    Entry(
        name="spectr_gbv_lossless",
        reference=spectr_gbv_lossless,
        keys=spectr_gbv_keys,
        schemes=frozenset({"chain", "iid"}),
        family="spectr_gbv",
        stateful=True,
        description=(
            "greedy block verification on the best-of-K path with a cross-iteration target "
            "modification (our lossless variant of SpecTr-GBV)"
        ),
    ),
]
