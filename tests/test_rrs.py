"""Recursive rejection sampling without replacement (rrs_wor).

Truths: the worked numbers of ALGORITHMS-2.md §4.3, §5.1-§5.2 and §10.1 (exact Fractions where
the doc gives them), brute-force alpha* for the without-replacement law, token-level SpS at one
draft per node, and the exact engine's enumeration (losslessness, DDTE Eq. 3).
"""
from __future__ import annotations

import itertools
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specoracle import drafting, examples, exact, registry
from specoracle.drafting import delayed, iid, without_replacement
from specoracle.instance import Instance
from specoracle.models import context_free, random_model
from specoracle.randomness import Coupled
from specoracle.reference import topdown

ONE_STEP = {  # ALGORITHMS-2.md §1.5 cases as (p, q)
    "A": ((F(1, 3), F(2, 3)), (F(2, 3), F(1, 3))),
    "B": ((F(1, 2), F(3, 10), F(1, 5)), (F(3, 10), F(1, 2), F(1, 5))),
    "C": ((F(3, 5), F(1, 5), F(1, 5)), (F(1, 5), F(3, 5), F(1, 5))),
    "D": ((F(1, 2), F(1, 2)), (F(9, 10), F(1, 10))),
    "E": ((F(2, 5), F(3, 10), F(1, 5), F(1, 10)), (F(1, 10), F(1, 5), F(3, 10), F(2, 5))),
    "F": ((F(1, 2), F(3, 10), F(1, 5)), (F(3, 5), F(2, 5), F(0))),
}
# ALGORITHMS-2.md §10.1, column "RRS w/o" (k = 1 is beta = sum min(p, q))
RRS_ALPHA = {("A", 1): F(2, 3), ("A", 2): F(1), ("B", 2): F(23, 25), ("B", 3): F(1), ("C", 2): F(4, 5),
             ("C", 3): F(1), ("D", 2): F(1), ("E", 1): F(3, 5), ("E", 2): F(107, 140),
             ("E", 3): F(14117, 16800), ("F", 2): F(4, 5)}


def _model(case, rational=True):
    p, q = ONE_STEP[case]
    if rational:
        return context_free(list(p), list(q), name=case)
    return context_free([float(x) for x in p], [float(x) for x in q], name=case)


def _alpha_star_wor(p, q, k):
    """min_H [p(H) + 1 - Pr(k w/o-replacement draws all in H)] by brute force (ALGORITHMS-2 §7.1)."""
    support = [y for y in range(len(q)) if q[y] > 0]
    tuples = []
    for d in itertools.permutations(support, k):
        pr, used = F(1), F(0)
        for y in d:
            pr, used = pr * q[y] / (1 - used), used + q[y]
        tuples.append((set(d), pr))
    best = None
    for r in range(len(p) + 1):
        for H in itertools.combinations(range(len(p)), r):
            val = sum((p[y] for y in H), F(0)) + 1 - sum(pr for d, pr in tuples if d <= set(H))
            best = val if best is None else min(best, val)
    return best


# --- one node -------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(RRS_ALPHA), ids=lambda k: f"{k[0]}-k{k[1]}")
def test_one_step_acceptance_exact(key):
    case, k = key
    res = exact.evaluate("rrs_wor", _model(case), without_replacement([k]), rational=True)
    assert res.expected_accepted == RRS_ALPHA[key]
    assert res.max_error == 0
    p, q = ONE_STEP[case]
    assert res.expected_accepted <= _alpha_star_wor(p, q, k)  # lossless => below alpha*(p, D_wor)


def test_not_optimal_for_its_draft_law():
    """ALGORITHMS-2.md §5.1: optimum for the w/o law is B 1, C 19/20, E 701/840 (k = 2) > RRS."""
    for case, opt in (("B", F(1)), ("C", F(19, 20)), ("E", F(701, 840))):
        p, q = ONE_STEP[case]
        assert _alpha_star_wor(p, q, 2) == opt
        assert RRS_ALPHA[(case, 2)] < opt
        ot = exact.evaluate("ot_optimal", _model(case, rational=False), without_replacement([2]))
        assert abs(ot.expected_accepted - float(opt)) < 1e-9


# --- trees ------------------------------------------------------------------------------------------
RSD_C = {  # ALGORITHMS-2.md §5.2, E[tau]
    ("E2", (2,)): F(23, 25), ("E2", (2, 1)): F(1492, 1000), ("E2", (3, 1)): F(162, 100),
    ("E2", (2, 2)): F(5931, 3500), ("E4", (2, 1)): F(214, 175), ("E4", (2, 2)): F(26429, 19600),
}


@pytest.mark.parametrize("key", list(RSD_C), ids=lambda k: f"{k[0]}-{k[1]}")
def test_rsd_c_tree_values_exact(key):
    model, b = key
    res = exact.evaluate("rrs_wor", examples.get(model, rational=True), without_replacement(b), rational=True)
    assert res.expected_accepted == RSD_C[key]
    assert res.max_error == 0 and res.fallback_mass == 0


def test_rsd_c_tree_values_e5():
    for b, want in (((2, 1), 1.5985416667), ((2, 2), 1.7127077498)):
        res = exact.evaluate("rrs_wor", examples.E5(), without_replacement(b))
        assert abs(res.expected_accepted - want) < 5e-11
        assert res.max_error < 1e-12


MERGED = {("E2", 2): 1.4312, ("E2", 3): 1.52952, ("E4", 2): 1.139375, ("E5", 2): 1.5539339286}


@pytest.mark.parametrize("key", list(MERGED), ids=lambda k: f"{k[0]}-K{k[1]}")
def test_merged_children_on_iid_trees(key):
    """ALGORITHMS-2.md §4.3 row 2: the w/o rule on distinct children (first appearance) of i.i.d.
    trees is lossless, slightly below multiset SpecInfer (E2 K=2: 1.4312 vs 1.432)."""
    model, K = key
    res = exact.evaluate("rrs_wor", examples.get(model), iid(K, 2))
    assert abs(res.expected_accepted - MERGED[key]) < 5e-11
    assert res.max_error < 1e-12
    assert res.expected_accepted <= exact.evaluate("specinfer", examples.get(model), iid(K, 2)).expected_accepted


@pytest.mark.parametrize("scheme", ["chain(2)", "iid(2,2)", "iid(3,1)", "delayed(2,1,1)", "delayed(3,1,1)",
                                    "wor(2,1)", "wor(2,2)", "wor(3,1)"])
@pytest.mark.parametrize("model", ["E1", "E2", "E3", "E5"])
def test_lossless_on_named_models(model, scheme):
    s = drafting.parse_scheme(scheme)
    m = examples.get(model)
    if s.kind == "without_replacement" and max(s.branching) > m.V:
        s = without_replacement([min(b, m.V) for b in s.branching])  # V = 2: at most two siblings
    res = exact.evaluate("rrs_wor", m, s)
    assert res.max_error < 1e-12 and res.fallback_mass < 1e-12


@st.composite
def random_cases(draw):
    V = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    b1 = draw(st.integers(1, min(3, V)))
    shape = draw(st.sampled_from(["wor1", "wor2", "iid", "delayed"]))
    if shape == "wor1":
        scheme = without_replacement([b1])
    elif shape == "wor2":  # keep the tree small: at most 2 x 2 siblings below the root
        scheme = without_replacement([min(b1, 2), draw(st.integers(1, 2))])
    elif shape == "iid":
        scheme = iid(b1, draw(st.integers(1, 2)))
    else:
        scheme = delayed(b1, 1, 1)
    return random_model(V, seed, divergence=draw(st.sampled_from([0.3, 1.0])), smoothing=0.1), scheme


@settings(max_examples=20)
@given(case=random_cases())
def test_lossless_on_random_models(case):
    model, scheme = case
    res = exact.evaluate("rrs_wor", model, scheme)
    assert res.max_error < 1e-12, (model.name, scheme.name, res.max_error)
    assert abs(topdown.scheme_block_efficiency("rrs_wor", model, scheme) - res.block_efficiency) < 1e-12


# --- reductions --------------------------------------------------------------------------------------
def test_one_draft_per_node_is_token_level_sps():
    for model in ("E2", "E5"):
        m = examples.get(model, rational=True)
        for L in (1, 2):
            ref = exact.evaluate("naive", m, drafting.chain(L), rational=True).block_law
            assert exact.evaluate("rrs_wor", m, drafting.chain(L), rational=True).block_law == ref
            assert exact.evaluate("rrs_wor", m, without_replacement([1] * L), rational=True).block_law == ref


def test_depth_one_traversal_equals_rrs():
    """ALGORITHMS.md §12.3: depth-1 TV == RRSw (cross-check against the traversal reference)."""
    for model, b in (("E2", 2), ("E5", 2), ("E5", 3)):
        m = examples.get(model)
        a = exact.evaluate("rrs_wor", m, without_replacement([b])).block_law
        t = exact.evaluate("traversal", m, without_replacement([b])).block_law
        assert max(abs(a.get(k, 0) - t.get(k, 0)) for k in set(a) | set(t)) < 1e-12


# --- DDTE Eq. 3 and the random layout ----------------------------------------------------------------
def test_eq3_exact_on_without_replacement_trees():
    m = examples.E2(rational=True)
    full = exact.evaluate("rrs_wor", m, without_replacement((2, 2)), rational=True).block_efficiency
    assert topdown.scheme_block_efficiency("rrs_wor", m, without_replacement((2, 2))) == full == 1 + F(5931, 3500)


def test_coupled_layout_covers_every_decision():
    entry = registry.get("rrs_wor")
    m = examples.E5()
    gen = np.random.default_rng(11)
    for scheme in (without_replacement((3, 2)), iid(3, 2)):
        for seed in range(5):
            tree = scheme.sample(m, seed)
            inst = Instance.from_model(m, tree)
            layout = entry.keys(tree)
            law = exact.tree_law("rrs_wor", inst)
            for _ in range(5):
                assert law.get(entry.reference(inst, Coupled(gen.random(len(layout)), layout)), 0) > 0
