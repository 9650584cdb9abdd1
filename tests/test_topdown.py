"""Top-down OT verifiers (nss, naive_tree, specinfer, spectr, khisti, ot_optimal) and their mutants.

Truths used: closed forms of ALGORITHMS.md §3.2 / ALGORITHMS-2.md §4-§9 (recomputed here from
p and q), brute-force minima over subsets for alpha*, an independent root finder for rho*, the
worked numbers of ALGORITHMS.md §3.4, §4.7, §8.3, §11 and ALGORITHMS-2.md §10, and the exact
engine's enumeration of the verifiers' own coins (for DDTE Eq. 3).
"""
from __future__ import annotations

import doctest
import itertools
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specoracle import drafting, examples, exact, mutants, registry
from specoracle.drafting import delayed, iid, parse_scheme, without_replacement
from specoracle.errors import InvalidInstance
from specoracle.instance import Instance
from specoracle.models import context_free, random_model
from specoracle.randomness import Coupled
from specoracle.reference import rrs, topdown
from specoracle.tree import Tree

TOPDOWN = ["nss", "naive_tree", "specinfer", "spectr", "khisti", "ot_optimal"]
RATIONAL = ["nss", "naive_tree", "specinfer"]
# methods that reduce to token-level SpS when every node has one draw (ALGORITHMS.md §12.3)
REDUCE_TO_NAIVE = ["naive_tree", "specinfer", "spectr", "khisti", "ot_optimal"]
LP_METHODS = {"khisti", "ot_optimal"}  # their plans come from HiGHS: equalities hold to ~1e-9

# one-step cases of ALGORITHMS-2.md §1.5 (A..F); A equals E1 with tokens swapped
CASES = {
    "A": ((F(1, 3), F(2, 3)), (F(2, 3), F(1, 3))),
    "A1": ((F(2, 3), F(1, 3)), (F(1, 3), F(2, 3))),  # = E1, the orientation of ALGORITHMS.md §3.4
    "B": ((F(1, 2), F(3, 10), F(1, 5)), (F(3, 10), F(1, 2), F(1, 5))),
    "C": ((F(3, 5), F(1, 5), F(1, 5)), (F(1, 5), F(3, 5), F(1, 5))),
    "D": ((F(1, 2), F(1, 2)), (F(9, 10), F(1, 10))),
    "E": ((F(2, 5), F(3, 10), F(1, 5), F(1, 10)), (F(1, 10), F(1, 5), F(3, 10), F(2, 5))),
    "F": ((F(1, 2), F(3, 10), F(1, 5)), (F(3, 5), F(2, 5), F(0))),
}


def _case(name, rational=False):
    p, q = CASES[name]
    if rational:
        return context_free(list(p), list(q), name=name)
    return context_free([float(x) for x in p], [float(x) for x in q], name=name)


# --- independent closed forms (ALGORITHMS.md §3.2, ALGORITHMS-2.md §4.1, §6, §7.1, §9) ----------
def _alpha_nss(p, q, k):
    return sum(pi * (1 - (1 - qi) ** k) for pi, qi in zip(p, q))


def _alpha_naive(p, q, k):
    return sum(min(pi, qi) for pi, qi in zip(p, q)) + sum(
        max(pi - qi, 0) * (1 - (1 - qi) ** (k - 1)) for pi, qi in zip(p, q)
    )


def _alpha_specinfer(p, q, k):
    cur, rej = list(p), 1
    for _ in range(k):
        beta = sum(min(a, b) for a, b in zip(cur, q))
        rej *= 1 - beta
        res = [max(a - b, 0) for a, b in zip(cur, q)]
        s = sum(res)
        cur = [x / s for x in res] if s > 0 else cur
    return 1 - rej


def _rho_star_brentq(p, q, k):
    from scipy.optimize import brentq

    p, q = np.asarray(p, float), np.asarray(q, float)

    def g(rho):
        b = np.minimum(q, p / rho).sum()
        return 1 - (1 - b) ** k - rho * b

    if k == 1 or g(1.0) <= 0:
        return 1.0
    return brentq(g, 1.0, float(k), xtol=1e-15, rtol=1e-15)


def _alpha_kseq(p, q, k):
    rho = _rho_star_brentq(p, q, k)
    b = np.minimum(np.asarray(q, float), np.asarray(p, float) / rho).sum()
    return 1 - (1 - b) ** k


def _all_in_wor(q, k, H):
    """Pr[k draws without replacement from q all land in H], by brute force over ordered tuples."""
    support = [y for y in range(len(q)) if q[y] > 0]
    total = 0
    for d in itertools.permutations(support, k):
        pr, used = 1, 0
        for y in d:
            pr = pr * q[y] / (1 - used)
            used += q[y]
        if all(y in H for y in d):
            total += pr
    return total


def _alpha_star(p, q, k, law="iid"):
    """min_H [p(H) + 1 - D(all drafts in H)] over all 2^V subsets (ALGORITHMS-2.md §7.1)."""
    V = len(p)
    best = None
    for r in range(V + 1):
        for H in itertools.combinations(range(V), r):
            qh = sum(q[y] for y in H)
            all_in = qh**k if law == "iid" else _all_in_wor(q, k, set(H))
            val = sum(p[y] for y in H) + 1 - all_in
            best = val if best is None or val < best else best
    return best


CLOSED = {"nss": _alpha_nss, "naive_tree": _alpha_naive, "specinfer": _alpha_specinfer, "spectr": _alpha_kseq}


# --- losslessness ---------------------------------------------------------------------------------
NAMED_SCHEMES = ["chain(2)", "iid(1,2)", "iid(2,1)", "iid(2,2)", "iid(3,1)", "delayed(2,1,1)", "delayed(3,1,1)",
                 "delayed(2,0,2)"]


@pytest.mark.parametrize("scheme", NAMED_SCHEMES)
@pytest.mark.parametrize("model", ["E1", "E2", "E3"])
@pytest.mark.parametrize("name", TOPDOWN)
def test_lossless_on_named_models(name, model, scheme):
    res = exact.evaluate(name, examples.get(model), parse_scheme(scheme))
    assert res.max_error < 1e-12, f"{name} on {model} {scheme}: error {res.max_error}"
    assert res.fallback_mass < 1e-12


@pytest.mark.parametrize("name", TOPDOWN)
def test_lossless_with_three_draws_depth_two(name):
    """iid(3,2) on V=3 (729 trees) and V=2 (64 trees): the largest shape of the issue."""
    for model in ("E2", "E3"):
        res = exact.evaluate(name, examples.get(model), iid(3, 2))
        assert res.max_error < 1e-12, f"{name} on {model}: {res.max_error}"


def test_ot_optimal_lossless_without_replacement():
    for model in ("E1", "E2", "E3", "E5"):
        for b in [(2,), (2, 1), (2, 2), (3, 1)]:
            if model in ("E1", "E3") and b[0] > 2:
                continue  # V = 2 has only two tokens to draw without replacement
            res = exact.evaluate("ot_optimal", examples.get(model), without_replacement(b))
            assert res.max_error < 1e-12, f"ot_optimal on {model} wor{b}: {res.max_error}"


SHAPES = [iid(1, 1), iid(2, 1), iid(3, 1), iid(1, 2), iid(2, 2), delayed(1, 1, 1), delayed(2, 1, 1),
          delayed(3, 1, 1), delayed(2, 0, 2)]


@st.composite
def random_cases(draw):
    V = draw(st.integers(2, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    divergence = draw(st.sampled_from([0.3, 0.7, 1.0]))
    scheme = draw(st.sampled_from(SHAPES))
    return random_model(V, seed, divergence=divergence, smoothing=0.1), scheme


@pytest.mark.parametrize("name", TOPDOWN)
@settings(max_examples=20)
@given(case=random_cases())
def test_lossless_on_random_models(name, case):
    model, scheme = case
    res = exact.evaluate(name, model, scheme)
    assert res.max_error < 1e-12, f"{name} on {model.name} {scheme}: {res.max_error}"


@settings(max_examples=15)
@given(V=st.integers(2, 3), seed=st.integers(0, 2**31 - 1), b1=st.integers(1, 3), b2=st.integers(0, 2))
def test_ot_optimal_lossless_on_random_without_replacement_trees(V, seed, b1, b2):
    model = random_model(V, seed, divergence=1.0, smoothing=0.1)
    scheme = without_replacement([min(b1, V)] + ([b2] if b2 else []))
    res = exact.evaluate("ot_optimal", model, scheme)
    assert res.max_error < 1e-12, (model.name, scheme.name, res.max_error)
    assert abs(topdown.scheme_block_efficiency("ot_optimal", model, scheme) - res.block_efficiency) < 1e-12


@pytest.mark.parametrize("name", RATIONAL)
def test_lossless_exactly_in_rational_mode(name):
    for model in ("E2", "E5"):
        for scheme in (iid(2, 2), delayed(2, 1, 1)):
            res = exact.evaluate(name, examples.get(model, rational=True), scheme, rational=True)
            assert res.max_error == 0 and res.fallback_mass == 0, (name, model, scheme.name)


@pytest.mark.parametrize("name", ["nss", "naive_tree", "specinfer", "spectr", "khisti"])
def test_iid_methods_refuse_without_replacement_trees(name):
    tree = Tree.from_paths([(0,), (1,)], sampling="without_replacement")
    inst = Instance(tree, [[.5, .5]] * 3, [[.5, .5]] * 3)
    with pytest.raises(InvalidInstance, match="without-replacement"):
        exact.tree_law(name, inst)
    assert "without_replacement" not in registry.get(name).schemes


# --- reductions (ALGORITHMS.md §12.3) --------------------------------------------------------------
def _same_law(a, b, tol):
    keys = set(a) | set(b)
    return max(abs(a.get(k, 0) - b.get(k, 0)) for k in keys) <= tol


@pytest.mark.parametrize("name", REDUCE_TO_NAIVE)
def test_single_draft_reduces_to_naive(name):
    """K = 1: SpecTr == SpecInfer == NaiveTree == Khisti == OT-optimal == Naive (exact laws)."""
    tol = 1e-9 if name in LP_METHODS else 1e-15
    for model in ("E2", "E3", "E5"):
        m = examples.get(model)
        for L in (1, 2, 3):
            ref = exact.evaluate("naive", m, drafting.chain(L)).block_law
            got = exact.evaluate(name, m, drafting.chain(L)).block_law
            assert _same_law(ref, got, tol), (name, model, L)


@pytest.mark.parametrize("name", ["naive_tree", "specinfer"])
def test_single_draft_reduction_is_exact_in_rational_mode(name):
    m = examples.E5(rational=True)
    ref = exact.evaluate("naive", m, drafting.chain(2), rational=True).block_law
    got = exact.evaluate(name, m, drafting.chain(2), rational=True).block_law
    assert ref == got


def test_nss_does_not_reduce_to_naive():
    """NSS at k = 1 has acceptance sum p q, not sum min(p, q) (ALGORITHMS.md §3.2)."""
    m = examples.E1(rational=True)
    assert exact.evaluate("nss", m, iid(1, 1), rational=True).expected_accepted == F(4, 9)


# --- local acceptance (one node, depth 1) ----------------------------------------------------------
ALPHA_TABLE = [  # ALGORITHMS.md §3.4 (p ; q = case, k): NSS, Naive, SpecInfer, SpecTr, OPT
    ("A1", 2, 0.6666666667, 0.7777777778, 0.7777777778, 0.8114195153, 8 / 9),
    ("A1", 3, 0.7901234568, 0.8518518519, 0.8518518519, 0.8965764760, 1.0),
    ("B", 2, 0.552, 0.86, 0.86, 0.8965097170, 1.0),
    ("C", 2, 0.456, 0.68, 0.68, 0.7080624847, 0.76),
    ("C", 3, 0.5776, 0.744, 0.744, 0.7896736089, 0.888),
    ("D", 2, 0.59, 0.64, 0.64, 0.6584428877, 0.69),
    ("D", 3, 0.635, 0.676, 0.676, 0.7100030787, 0.771),
]


@pytest.mark.parametrize("row", ALPHA_TABLE, ids=lambda r: f"{r[0]}-k{r[1]}")
def test_local_acceptance_matches_documented_table(row):
    case, k, *alphas = row
    m = _case(case)
    for name, want in zip(["nss", "naive_tree", "specinfer", "spectr", "ot_optimal"], alphas):
        got = exact.evaluate(name, m, iid(k, 1)).expected_accepted
        assert abs(got - want) < 5e-10, (name, case, k, got, want)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("k", [1, 2, 3])
def test_local_acceptance_matches_closed_forms(case, k):
    """Engine E[tau] at depth 1 (= membership rate) vs closed forms recomputed from p, q."""
    p, q = (np.array([float(x) for x in v]) for v in CASES[case])
    m = _case(case)
    for name, alpha in CLOSED.items():
        got = exact.evaluate(name, m, iid(k, 1)).expected_accepted
        assert abs(got - alpha(p, q, k)) < 1e-12, (name, got, alpha(p, q, k))
    star = _alpha_star(p, q, k)
    for name in ("ot_optimal", "khisti"):
        got = exact.evaluate(name, m, iid(k, 1)).expected_accepted
        assert abs(got - star) < 1e-9, (name, got, star)
    for name in CLOSED:  # every lossless node solver is below alpha*
        assert exact.evaluate(name, m, iid(k, 1)).expected_accepted <= star + 1e-12


@pytest.mark.parametrize("name", RATIONAL)
@pytest.mark.parametrize("case", ["A", "B", "C", "E"])
def test_local_acceptance_exact_in_rational_mode(name, case):
    p, q = CASES[case]
    got = exact.evaluate(name, _case(case, rational=True), iid(2, 1), rational=True).expected_accepted
    assert got == CLOSED[name](p, q, 2)


KHISTI_ALPHA2 = {"A": F(8, 9), "B": F(1), "C": F(19, 25), "D": F(69, 100), "E": F(79, 100), "F": F(4, 5)}


@pytest.mark.parametrize("case", list(KHISTI_ALPHA2))
def test_khisti_selection_reaches_alpha_star_for_two_drafts(case):
    """ALGORITHMS-2.md §10.1: the optimal IS selection attains alpha* (k = 2)."""
    p, q = CASES[case]
    sel = topdown.khisti_selection([float(x) for x in p], [float(x) for x in q], 2)
    assert abs(sel.acceptance - float(KHISTI_ALPHA2[case])) < 1e-9
    # the induced law is a probability vector and each selection stays inside its tuple
    assert abs(sel.q_is.sum() - 1) < 1e-12
    for d, row in sel.sigma.items():
        assert abs(row.sum() - 1) < 1e-12 and set(np.flatnonzero(row > 0)) <= set(d)


# without replacement needs k <= |supp q|: V = 2 cases (A, A1, D) and F (one q = 0) stop at k = 2
PLAN_CASES = [(c, k, law) for c in CASES for k in (1, 2, 3) for law in ("iid", "without_replacement")
              if law == "iid" or k <= sum(1 for x in CASES[c][1] if x > 0)]


@pytest.mark.parametrize("case, k, law", PLAN_CASES)
def test_ot_plan_acceptance_equals_subset_closed_form(case, k, law):
    p, q = (np.array([float(x) for x in v]) for v in CASES[case])
    plan = topdown.ot_plan(p, q, k, law)
    assert abs(plan.acceptance - _alpha_star(p, q, k, law)) < 1e-9
    assert np.all(plan.accepted <= p + 1e-15)  # m <= p: the lemma's condition, whatever HiGHS did


OPT_WOR = {("A", 2): 1, ("B", 2): 1, ("C", 2): F(19, 20), ("D", 2): 1, ("E", 2): F(701, 840), ("E", 3): 1,
           ("C", 3): 1, ("B", 3): 1}


@pytest.mark.parametrize("key", list(OPT_WOR), ids=lambda k: f"{k[0]}-k{k[1]}")
def test_ot_optimal_without_replacement_documented_values(key):
    """ALGORITHMS-2.md §10.1 column 'OPT w/o' through the engine on wor(k) trees."""
    case, k = key
    got = exact.evaluate("ot_optimal", _case(case), without_replacement([k])).expected_accepted
    assert abs(got - float(OPT_WOR[key])) < 1e-9


def test_kseq_rho_star():
    """Case A: rho* = (5 + sqrt 13)/6; k = 2 identity rho* = 2 - beta(rho*); feasibility gamma <= rho."""
    assert abs(topdown.kseq_rho([1 / 3, 2 / 3], [2 / 3, 1 / 3], 2) - (5 + 13**0.5) / 6) < 1e-14
    rng = np.random.default_rng(7)
    for _ in range(20):
        V, k = int(rng.integers(2, 6)), int(rng.integers(2, 5))
        p, q = rng.dirichlet(np.ones(V)), rng.dirichlet(np.ones(V))
        rho = topdown.kseq_rho(p, q, k)
        beta = np.minimum(q, p / rho).sum()
        assert 1 - (1 - beta) ** k <= rho * beta + 1e-15  # feasible end of the bisection
        assert abs(rho - _rho_star_brentq(p, q, k)) < 1e-12
        if k == 2:
            assert abs(rho - (2 - beta)) < 1e-12


# --- tree numbers -----------------------------------------------------------------------------------
E1_ROW = {  # ALGORITHMS.md §11, E[tau] for K = 1, 2, 3 (L = 2)
    "nss": (F(52, 81), F(82, 81), F(8200, 6561)),
    "naive_tree": (F(10, 9), F(4, 3), F(1087, 729)),
    "specinfer": (F(10, 9), F(4, 3), F(1087, 729)),
    "spectr": (10 / 9, 1.4054865457, 1.5933063621),
}


@pytest.mark.parametrize("name", list(E1_ROW))
def test_e1_master_table_row(name):
    rational = name in RATIONAL
    m = examples.E1(rational=rational)
    for K, want in zip((1, 2, 3), E1_ROW[name]):
        got = exact.evaluate(name, m, iid(K, 2), rational=rational).expected_accepted
        if rational:
            assert got == want, (name, K, got)
        else:
            assert abs(got - want) < 5e-11, (name, K, got)


TREE_TABLE = {  # ALGORITHMS-2.md §10.2 (E[tau], K = 2, L = 2)
    "E3": {"nss": 1.05472, "naive_tree": 1.3958, "specinfer": 1.3958, "spectr": 1.4724329605},
    "E2": {"nss": 0.758882, "naive_tree": 1.4296, "specinfer": 1.432, "spectr": 1.5024256356},
    "E4": {"nss": 0.4275, "naive_tree": 1.0475, "specinfer": 1.17, "spectr": 1469 / 1200},
    "E5": {"nss": 0.5810905, "naive_tree": 1.4810875, "specinfer": 1.55605625, "spectr": 1.6292707905},
}


@pytest.mark.parametrize("model", list(TREE_TABLE))
def test_tree_averaged_values(model):
    for name, want in TREE_TABLE[model].items():
        got = exact.evaluate(name, examples.get(model), iid(2, 2)).expected_accepted
        assert abs(got - want) < 5e-11, (name, model, got, want)


def test_delayed_versus_root_branching_documented():
    """ALGORITHMS.md §8.3: SpecInfer (2,0,2) vs (3,1,1): E3 1.3958 vs 1.3376, E2 1.432 vs 1.4584."""
    for model, a, b in (("E3", 1.3958, 1.3376), ("E2", 1.432, 1.4584)):
        m = examples.get(model)
        assert abs(exact.evaluate("specinfer", m, delayed(2, 0, 2)).expected_accepted - a) < 1e-12
        assert abs(exact.evaluate("specinfer", m, delayed(3, 1, 1)).expected_accepted - b) < 1e-12


PER_TREE = {  # ALGORITHMS.md §4.7, E[tau + 1 | T] on E2 (NSS, NaiveTree, SpecTr)
    ((0, 1), (2, 0)): (1.86, 7 / 3, 7 / 3),
    ((0, 1), (0, 0)): (1.90, 3.0, 3.0),
    ((1, 0), (1, 0)): (1.33, 1.8, 1.985171),
    ((1, 0),): (1.33, 1.8, 1.8),
}


@pytest.mark.parametrize("paths", list(PER_TREE))
def test_per_tree_block_efficiency(paths):
    inst = Instance.from_model(examples.E2(), Tree.from_paths(paths))
    for name, want in zip(("nss", "naive_tree", "spectr"), PER_TREE[paths]):
        assert abs(topdown.tree_block_efficiency(name, inst) - want) < 1e-6, name


def test_specinfer_per_tree_uses_draw_order():
    """The doc's per-tree 2.416667 for [(0,1),(2,0)] averages SpecInfer over a uniformly random
    child order; in draw order the root always accepts draft 0 (p/q = 5/3), so the value is
    1 + 1 + 1/3, and the average over both orders is the documented one."""
    m = examples.E2(rational=True)
    a = topdown.tree_block_efficiency("specinfer", Instance.from_model(m, Tree.from_paths([(0, 1), (2, 0)])))
    b = topdown.tree_block_efficiency("specinfer", Instance.from_model(m, Tree.from_paths([(2, 0), (0, 1)])))
    assert a == F(7, 3) and (a + b) / 2 == F(29, 12)


# --- DDTE Eq. 3 ---------------------------------------------------------------------------------------
def _enumerated_efficiency(name, inst):
    law = exact.tree_law(name, inst)
    return sum(pr * (inst.tree.depths[o.node] + 1) for o, pr in law.items())


@pytest.mark.parametrize("name", TOPDOWN)
def test_eq3_equals_enumeration_per_tree(name):
    m = examples.E5()
    for scheme in (iid(2, 2), iid(3, 1), delayed(2, 1, 1)):
        for seed in range(4):
            inst = Instance.from_model(m, scheme.sample(m, seed))
            eq3 = topdown.tree_block_efficiency(name, inst)
            assert abs(eq3 - _enumerated_efficiency(name, inst)) < 1e-12, (name, scheme.name, seed)


@pytest.mark.parametrize("name", TOPDOWN)
@settings(max_examples=8)
@given(case=random_cases())
def test_eq3_equals_enumeration_over_scheme(name, case):
    model, scheme = case
    full = exact.evaluate(name, model, scheme).block_efficiency
    assert abs(topdown.scheme_block_efficiency(name, model, scheme) - full) < 1e-12


@pytest.mark.parametrize("name", RATIONAL)
def test_eq3_exact_in_rational_mode(name):
    m = examples.E2(rational=True)
    full = exact.evaluate(name, m, iid(2, 2), rational=True).block_efficiency
    assert topdown.scheme_block_efficiency(name, m, iid(2, 2)) == full


def test_node_law_is_a_distribution_with_target_mean():
    """Averaged over k i.i.d. drafts, every node law is exactly p (the OTLP solver definition)."""
    p, q = np.array([.4, .3, .2, .1]), np.array([.1, .2, .3, .4])
    for name in TOPDOWN:
        for k in (1, 2, 3):
            mean = sum(np.prod(q[list(d)]) * topdown.node_law(name, p, q, d)
                       for d in itertools.product(range(4), repeat=k))
            assert np.max(np.abs(mean - p)) < 1e-12, (name, k)


# --- randomness layout ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", TOPDOWN)
def test_coupled_layout_covers_every_decision(name):
    """Run with Coupled uniforms laid out by entry.keys(tree): no missing or reused key, and the
    outcome has positive exact probability."""
    entry = registry.get(name)
    m = examples.E5()
    gen = np.random.default_rng(3)
    for scheme in (iid(3, 2), delayed(2, 1, 1)):
        for seed in range(5):
            tree = scheme.sample(m, seed)
            inst = Instance.from_model(m, tree)
            layout = entry.keys(tree)
            law = exact.tree_law(name, inst)
            for _ in range(5):
                out = entry.reference(inst, Coupled(gen.random(len(layout)), layout))
                assert law.get(out, 0) > 0


# --- mutants ----------------------------------------------------------------------------------------
TOPDOWN_MUTANTS = {  # name -> (model, scheme, documented error, relative tolerance)
    "specinfer_merged_children": ("E5", "iid(2,2)", 1.2e-3, 0.1),
    "wor_rule_on_multiset": ("E5", "iid(2,2)", 0.0093, 0.05),
    "specinfer_on_wor": ("E5", "wor(2,2)", 0.0049, 0.05),
    "rrs_zero_before_residual": ("E5", "wor(2,1)", 0.0323, 0.05),
    "kseq_rho_one": ("E5", "iid(2,2)", 0.0129, 0.05),
    "specinfer_sorted_by_q": ("E5", "iid(2,2)", 0.0275, 0.05),
    "spectr_sorted_by_q": ("E5", "iid(2,2)", 0.0145, 0.05),
    "rrs_sorted_by_q": ("E5", "wor(2,1)", 0.0365, 0.05),
    "spectr_trunk_multiplicity": ("E3", "delayed(2,1,1)", 0.0202, 0.05),
}


@pytest.mark.parametrize("name", list(TOPDOWN_MUTANTS))
def test_mutant_is_caught_with_documented_error(name):
    mut = mutants.get(name)
    model, scheme, err, rel = TOPDOWN_MUTANTS[name]
    assert (mut.model, mut.scheme) == (model, scheme)
    res = exact.evaluate(mut.verify, examples.get(model), parse_scheme(scheme))
    assert res.max_error > 1e-9
    assert abs(res.max_error - err) <= rel * err, (name, res.max_error)


def test_mutants_hide_where_documented():
    """ALGORITHMS-2.md §11: M6 is invisible on V <= 2 (E1, E3); M8 on E2 wor(2) and wor(2,1) — the
    §11.3 dispute: our engine agrees with ALGORITHMS-2 (0), not with ALGORITHMS.md §12.2."""
    m6 = mutants.get("specinfer_merged_children").verify
    m8 = mutants.get("specinfer_on_wor").verify
    assert exact.evaluate(m6, examples.E3(), iid(2, 2)).max_error < 1e-12
    for b in ((2,), (2, 1), (3, 1)):
        assert exact.evaluate(m8, examples.E2(), without_replacement(b)).max_error < 1e-12
    assert exact.evaluate(m8, examples.E2(), without_replacement((2, 2))).max_error > 1e-3


def test_unmerged_multiset_error_on_e2():
    """§11.3 dispute on M7's magnitude: with the 'accept when q_j(x) = 0' convention, E2 K=2 gives
    0.0326 (ALGORITHMS-2's 0.033), not ALGORITHMS.md's 9.6e-4."""
    res = exact.evaluate(mutants.get("wor_rule_on_multiset").verify, examples.E2(), iid(2, 2))
    assert abs(res.max_error - 0.03264) < 1e-5


def test_docstring_examples():
    for module in (topdown, rrs):
        failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert failures == 0, module.__name__


# --- long sweep (not in CI) ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", TOPDOWN + ["rrs_wor"])
@pytest.mark.parametrize("model", ["E4", "E5"])
def test_lossless_sweep_v4(name, model):
    """V = 4 context-dependent and context-free models, three drafts, depth two (4096 trees)."""
    m = examples.get(model)
    for scheme in (iid(3, 2), delayed(3, 1, 1), delayed(2, 1, 2), without_replacement((3, 2))):
        if not registry.get(name).accepts(scheme):
            continue
        res = exact.evaluate(name, m, scheme)
        assert res.max_error < 1e-12, (name, model, scheme.name, res.max_error)
        assert abs(topdown.scheme_block_efficiency(name, m, scheme) - res.block_efficiency) < 1e-12
