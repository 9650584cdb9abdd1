"""Top-down multi-draft mutants (ALGORITHMS-2.md §11, M6-M11; ALGORITHMS.md §12.2).

Each mutant is one small departure from a correct node solver of
:mod:`specoracle.reference.topdown` / :mod:`specoracle.reference.rrs`, run with the same top-down
driver. The ``model``/``scheme`` of each entry is where the exact engine catches it; the error in
the description is the max abs error of the extended law measured with this package's engine.
"""
from __future__ import annotations

import numpy as np

from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource
from specoracle.reference._common import accept_ratio, positive_part, residual_or_fallback
from specoracle.reference.rrs import RRS_WOR, without_token
from specoracle.reference.topdown import METHODS
from specoracle.reference.topdown_driver import NodeSolver, walk

from . import Mutant

__all__ = ["MUTANTS"]

IID = frozenset({"iid", "delayed"})
_SPECINFER = METHODS["specinfer"].sample  # the correct node solvers the mutants depart from
_SPECTR = METHODS["spectr"].sample
_RRS = RRS_WOR.sample
WOR = frozenset({"without_replacement"})


def _no_law(*args):  # mutants are judged by the exact engine, not by DDTE Eq. 3
    raise NotImplementedError


def _solver(name, sample, children="draws"):
    return NodeSolver(name, sample, _no_law, lambda u, k: (), children=children)


# --- M6: SpecInfer rule (q unchanged) on merged (distinct) children -------------------------------
_M6 = _solver("specinfer_merged_children", _SPECINFER, children="children")


def specinfer_merged_children(instance: Instance, rng: RandomSource) -> Outcome:
    """M6: SpecInfer's with-replacement rule applied to the distinct children of each node."""
    return walk(instance, rng, _M6)


# --- M7: without-replacement rule (q zeroed) on the i.i.d. multiset, duplicates kept --------------
def _wor_rule_on_multiset(p, q, d, rng, u, sampling):
    cur_p, cur_q = p, q
    for j, x in enumerate(d):
        key = ("accept", u, j)
        # a repeated token was zeroed in cur_q: 0/0 is taken as "accept" (ALGORITHMS-2 §4.3)
        a = accept_ratio(cur_p[x], cur_q[x]) if cur_q[x] > 0 else p[0] * 0 + 1
        if rng.bernoulli(a, key):
            return x
        cur_p = residual_or_fallback(positive_part(cur_p - cur_q), cur_p, rng, key)
        cur_q = without_token(cur_q, x)
    return rng.categorical(cur_p, ("residual", u))


_M7 = _solver("wor_rule_on_multiset", _wor_rule_on_multiset)


def wor_rule_on_multiset(instance: Instance, rng: RandomSource) -> Outcome:
    """M7: RRS-without-replacement updates on an i.i.d. draw multiset without merging duplicates."""
    return walk(instance, rng, _M7)


# --- M8: SpecInfer rule on without-replacement drafts ---------------------------------------------
_M8 = _solver("specinfer_on_wor", _SPECINFER)


def specinfer_on_wor(instance: Instance, rng: RandomSource) -> Outcome:
    """M8: SpecInfer's residual rule (q unchanged) on siblings drawn without replacement."""
    return walk(instance, rng, _M8)


# --- M9: RRS-w/o zeroing X_j in q before forming the residual -------------------------------------
def _rrs_zero_first(p, q, d, rng, u, sampling):
    cur_p, cur_q = p, q
    for j, x in enumerate(d):
        key = ("accept", u, j)
        if rng.bernoulli(accept_ratio(cur_p[x], cur_q[x]), key):
            return x
        cur_q = without_token(cur_q, x)
        cur_p = residual_or_fallback(positive_part(cur_p - cur_q), cur_p, rng, key)
    return rng.categorical(cur_p, ("residual", u))


_M9 = _solver("rrs_zero_before_residual", _rrs_zero_first, children="children")


def rrs_zero_before_residual(instance: Instance, rng: RandomSource) -> Outcome:
    """M9: RRS without replacement removing X_j from q BEFORE the residual (p_j - q_{j+1})_+."""
    return walk(instance, rng, _M9)


# --- M10: K-SEQ with rho = 1 < rho* ----------------------------------------------------------------
def _kseq_rho_one(p, q, d, rng, u, sampling):
    k = len(d)
    b = np.minimum(q, p).sum()
    gamma = (1 - (1 - b) ** k) / b if b > 0 else 0.0
    for j, x in enumerate(d):
        if rng.bernoulli(accept_ratio(p[x], q[x]), ("accept", u, j)):
            return x
    key = ("residual", u)
    law = residual_or_fallback(positive_part(p - gamma * np.minimum(q, p)), p, rng, key)
    return rng.categorical(law, key)


_M10 = _solver("kseq_rho_one", _kseq_rho_one)


def kseq_rho_one(instance: Instance, rng: RandomSource) -> Outcome:
    """M10: SpecTr K-SEQ with rho = 1 (sequential naive tests), below the feasible rho*."""
    return walk(instance, rng, _M10)


# --- M11: drafts reordered by q before the sequential tests ----------------------------------------
def _sorted_by_q(sample):
    def run(p, q, d, rng, u, sampling):
        order = sorted(d, key=lambda x: -float(q[x]))  # value-dependent order: the bug
        return sample(p, q, tuple(order), rng, u, sampling)

    return run


_M11_SI = _solver("specinfer_sorted_by_q", _sorted_by_q(_SPECINFER))
_M11_KSEQ = _solver("spectr_sorted_by_q", _sorted_by_q(_SPECTR))
_M11_RRS = _solver("rrs_sorted_by_q", _sorted_by_q(_RRS), children="children")


def specinfer_sorted_by_q(instance: Instance, rng: RandomSource) -> Outcome:
    """M11: SpecInfer testing the drafts in decreasing-q order (top-k listing order)."""
    return walk(instance, rng, _M11_SI)


def spectr_sorted_by_q(instance: Instance, rng: RandomSource) -> Outcome:
    """M11: K-SEQ testing the drafts in decreasing-q order."""
    return walk(instance, rng, _M11_KSEQ)


def rrs_sorted_by_q(instance: Instance, rng: RandomSource) -> Outcome:
    """M11: RRS without replacement testing the siblings in decreasing-q order."""
    return walk(instance, rng, _M11_RRS)


# --- SpecTr on a delayed tree with trunk multiplicity K -------------------------------------------
def spectr_trunk_multiplicity(instance: Instance, rng: RandomSource) -> Outcome:
    """SpecTr on a delayed tree whose trunk child lists carry multiplicity K (built from K path
    copies): the K-draft rho* is applied to what is one draw (ALGORITHMS.md §8.2)."""
    tree, p, q = instance.tree, instance.p, instance.q
    K = tree.n_paths
    u = 0
    while True:
        d = tuple(tree.tokens[c] for c in tree.draws[u])
        if not d:
            return Outcome(u, rng.categorical(p[u], ("residual", u)))
        if tree.depths[u] < tree.trunk:
            d = d * K
        t = _SPECTR(p[u], q[u], d, rng, u, tree.sampling)
        child = tree.child(u, t)
        if child is None:
            return Outcome(u, t)
        u = child


MUTANTS = [
    Mutant("specinfer_merged_children", specinfer_merged_children, IID,
           "M6: SpecInfer rule (q unchanged) on merged distinct children; hidden on V <= 3 one-step "
           "cases (E5 iid(2,2) err 1.2e-3)",
           model="E5", scheme="iid(2,2)"),
    Mutant("wor_rule_on_multiset", wor_rule_on_multiset, IID,
           "M7: without-replacement rule (q zeroed) on an i.i.d. multiset with duplicates kept "
           "(E5 iid(2,2) err 0.0093)",
           model="E5", scheme="iid(2,2)"),
    Mutant("specinfer_on_wor", specinfer_on_wor, WOR,
           "M8: SpecInfer residual rule on without-replacement siblings; hidden on E2 [2], [2,1], "
           "[3,1] (E5 wor(2,2) err 0.0049)",
           model="E5", scheme="wor(2,2)"),
    Mutant("rrs_zero_before_residual", rrs_zero_before_residual, WOR,
           "M9: RRS w/o replacement zeroing X_j in q before the residual (E5 wor(2,1) err 0.0323)",
           model="E5", scheme="wor(2,1)"),
    Mutant("kseq_rho_one", kseq_rho_one, IID,
           "M10: SpecTr K-SEQ with rho = 1 < rho* (E5 iid(2,2) err 0.0129)",
           model="E5", scheme="iid(2,2)"),
    Mutant("specinfer_sorted_by_q", specinfer_sorted_by_q, IID,
           "M11: SpecInfer tests drafts in decreasing-q order (E5 iid(2,2) err 0.0275)",
           model="E5", scheme="iid(2,2)"),
    Mutant("spectr_sorted_by_q", spectr_sorted_by_q, IID,
           "M11: K-SEQ tests drafts in decreasing-q order (E5 iid(2,2) err 0.0145)",
           model="E5", scheme="iid(2,2)"),
    Mutant("rrs_sorted_by_q", rrs_sorted_by_q, WOR,
           "M11: RRS w/o replacement tests siblings in decreasing-q order (E5 wor(2,1) err 0.0365)",
           model="E5", scheme="wor(2,1)"),
    Mutant("spectr_trunk_multiplicity", spectr_trunk_multiplicity, frozenset({"delayed"}),
           "SpecTr on a delayed tree with trunk multiplicity K (E3 delayed(2,1,1) err 0.0202)",
           model="E3", scheme="delayed(2,1,1)"),
]
