"""lp.coupling: the one-node coupling LP against independent truths.

Truths used: the closed form ``alpha* = min_H [p(H) + 1 - D(all drafts in H)]`` (ALGORITHMS-2.md §7.1)
evaluated HERE by brute force over subsets and over draft tuples (independent of lp/coupling.py);
the worked values of ALGORITHMS-2.md §10.1 (cases A-F); the sorted-prefix formula for i.i.d.
drafts (§7.2, proven there) for vocabularies beyond the subset-enumeration limit; the §1.4
lemma (member plan + global residual) for the executable node plan; weak duality for the
certificate.
"""
from fractions import Fraction as F
from itertools import combinations, permutations, product

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from specoracle.errors import InvalidArgument, InvalidInstance
from specoracle.lp import LPError, augment, coupling, coupling_value, node_plan
from specoracle.lp._solve import build, solve


# --- independent brute force ---------------------------------------------------------------
def _tuple_law(q, k, replacement):
    """{ordered draft tuple: probability}, written from the definition (no shared code)."""
    V = len(q)
    law = {}
    if replacement:
        for d in product(range(V), repeat=k):
            pr = float(np.prod([q[t] for t in d]))
            if pr > 0:
                law[d] = pr
        return law
    support = [t for t in range(V) if q[t] > 0]
    m = min(k, len(support))
    for d in permutations(support, m):
        pr, used = 1.0, 0.0
        for t in d:
            pr *= q[t] / (1.0 - used)
            used += q[t]
        law[d] = pr
    return law


def _alpha_star(p, q, k, replacement, w=1.0):
    """min over ALL subsets H of V of [w p(H) + 1 - D(all drafts in H)]."""
    V = len(q)
    law = _tuple_law(q, k, replacement)
    best = np.inf
    for r in range(V + 1):
        for H in combinations(range(V), r):
            Hs = set(H)
            inside = sum(pr for d, pr in law.items() if set(d) <= Hs)
            best = min(best, w * sum(p[i] for i in H) + 1.0 - inside)
    return best


@st.composite
def _pair(draw, vmin=2, vmax=5):
    V = draw(st.integers(vmin, vmax))
    def vec(zero_ok):
        lo = 0 if zero_ok else 1
        xs = draw(st.lists(st.integers(lo, 10), min_size=V, max_size=V).filter(lambda v: sum(v) > 0))
        a = np.array(xs, dtype=np.float64)
        return a / a.sum()
    return vec(True), vec(True)


# --- LP == closed form, marginals ----------------------------------------------------------
@settings(max_examples=25)
@given(pq=_pair(), k=st.integers(1, 4), replacement=st.booleans())
def test_coupling_lp_equals_closed_form_and_marginals(pq, k, replacement):
    p, q = pq
    if replacement and len(q) ** k > 256:  # keep each example small (V^k tuples x V variables)
        k = 2
    c = coupling(p, q, k, replacement=replacement)
    truth = _alpha_star(p, q, k, replacement)
    assert c.status == "optimal"
    assert abs(c.value - truth) < 1e-9, (c.value, truth)
    assert abs(coupling_value(p, q, k, replacement) - truth) < 1e-12
    law = _tuple_law(q, k, replacement)
    assert set(c.tuples) == set(law)
    rows = c.plan.sum(axis=1)
    assert max(abs(rows[i] - law[d]) for i, d in enumerate(c.tuples)) < 1e-9
    assert np.max(np.abs(c.plan.sum(axis=0) - p)) < 1e-9
    assert c.plan.min() >= -1e-12
    # membership mass of the plan recomputed here = the LP value
    member = sum(c.plan[i, y] for i, d in enumerate(c.tuples) for y in set(d))
    assert abs(member - c.value) < 1e-9
    # certificate: weak-duality bound at the optimum
    assert c.certificate.gap < 1e-7 and c.certificate.gap > -1e-7
    assert c.certificate.primal_residual < 1e-8


# ALGORITHMS-2.md §10.1 table (OPT i.i.d. / OPT w/o replacement), exact rationals
CASES = {
    "A": ((F(1, 3), F(2, 3)), (F(2, 3), F(1, 3))),
    "C": ((F(6, 10), F(2, 10), F(2, 10)), (F(2, 10), F(6, 10), F(2, 10))),
    "D": ((F(1, 2), F(1, 2)), (F(9, 10), F(1, 10))),
    "E": ((F(4, 10), F(3, 10), F(2, 10), F(1, 10)), (F(1, 10), F(2, 10), F(3, 10), F(4, 10))),
    "F": ((F(5, 10), F(3, 10), F(2, 10)), (F(6, 10), F(4, 10), F(0))),  # q = 0 on a target token
}
TABLE = [
    ("A", 2, True, F(8, 9)), ("A", 3, True, F(1)), ("A", 2, False, F(1)),
    ("C", 2, True, F(19, 25)), ("C", 3, True, F(111, 125)), ("C", 2, False, F(19, 20)),
    ("D", 2, True, F(69, 100)), ("D", 3, True, F(771, 1000)), ("D", 2, False, F(1)),
    ("E", 1, True, F(3, 5)), ("E", 2, True, F(79, 100)), ("E", 3, True, F(871, 1000)),
    ("E", 2, False, F(701, 840)), ("E", 3, False, F(1)),
    ("F", 2, True, F(4, 5)), ("F", 3, True, F(4, 5)), ("F", 2, False, F(4, 5)),
]


@pytest.mark.parametrize("case,k,replacement,value", TABLE, ids=[f"{c}-k{k}-{'iid' if r else 'wor'}" for c, k, r, _ in TABLE])
def test_worked_values(case, k, replacement, value):
    p, q = (np.array([float(x) for x in v]) for v in CASES[case])
    assert abs(coupling(p, q, k, replacement).value - float(value)) < 1e-9
    assert abs(coupling_value(p, q, k, replacement) - float(value)) < 1e-12


def test_e1_k2_is_eight_ninths():
    """E1 (p = (2/3, 1/3), q = (1/3, 2/3)), two i.i.d. drafts: 8/9 (ALGORITHMS.md §3.4)."""
    c = coupling([2 / 3, 1 / 3], [1 / 3, 2 / 3], 2)
    assert abs(c.value - 8 / 9) < 1e-12
    assert c.n_variables == 4 * 2 and c.n_constraints == 4 + 2 and c.seconds >= 0


@settings(max_examples=15)
@given(pq=_pair(vmax=4), k=st.integers(1, 3), w=st.floats(0.0, 1.0))
def test_augmented_target_is_conditional_ot(pq, k, w):
    """With (w p, 1 - w): alpha* = min_H [w p(H) + 1 - D(all in H)] <= w (ALGORITHMS.md §7.2)."""
    p, q = pq
    for replacement in (True, False):
        truth = _alpha_star(p, q, k, replacement, w=w)
        c = coupling(augment(p, w), q, k, replacement)
        assert abs(c.value - truth) < 1e-9
        assert abs(coupling_value(augment(p, w), q, k, replacement) - truth) < 1e-12
        assert c.value <= w + 1e-9
        assert c.plan.shape[1] == len(p) + 1
        assert abs(c.plan[:, -1].sum() - (1 - w)) < 1e-9  # the reject column carries 1 - w


def test_e2_root_conditional_value():
    """ALGORITHMS.md §7.2: E2 root, w = 1, k = 2: optimum 1.0 with and without replacement."""
    p, q = [0.5, 0.3, 0.2], [0.3, 0.5, 0.2]
    assert abs(coupling(augment(p, 1.0), q, 2, False).value - 1.0) < 1e-9
    assert abs(coupling(p, q, 2, True).value - 1.0) < 1e-9


@settings(max_examples=20)
@given(pq=_pair(vmax=5), k=st.integers(2, 3))
def test_without_replacement_dominates(pq, k):
    """OPT_wor >= OPT_iid (ALGORITHMS-2.md §7.2: D_wor(all in H) <= q(H)^k)."""
    p, q = pq
    assert coupling_value(p, q, k, False) >= coupling_value(p, q, k, True) - 1e-12


@pytest.mark.parametrize("seed", [0, 1])
def test_large_vocabulary_uses_lp(seed):
    """V = 18 > 16: the LP path equals the sorted-prefix formula min_r [P_r + 1 - Q_r^k] (§7.2)."""
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(18)), rng.dirichlet(np.ones(18))
    order = np.argsort(p / q)
    P = np.concatenate([[0.0], np.cumsum(p[order])])
    Q = np.concatenate([[0.0], np.cumsum(q[order])])
    truth = float(np.min(P + 1 - Q**2))
    assert abs(coupling_value(p, q, 2) - truth) < 1e-8


@settings(max_examples=15)
@given(pq=_pair(vmax=4), k=st.integers(1, 3), replacement=st.booleans(), w=st.sampled_from([1.0, 0.7, 0.25]))
def test_node_plan_is_lossless_by_construction(pq, k, replacement, w):
    """Executing the node plan (member part + ONE global residual) outputs exactly (w p, 1 - w)."""
    p, q = pq
    plan = node_plan(p, q, k, weight=w, replacement=replacement)
    law = _tuple_law(q, k, replacement)
    out = np.zeros(len(p) + 1)
    for i, d in enumerate(plan.tuples):
        D = law[d]
        out[: len(p)] += plan.members[i]
        out += (D - plan.members[i].sum()) * plan.residual
    target = np.append(w * p, 1 - w)
    assert np.max(np.abs(out - target)) < 1e-12
    assert abs(plan.value - _alpha_star(p, q, k, replacement, w=w)) < 1e-8


def test_input_errors():
    with pytest.raises(InvalidInstance, match="sums to"):
        coupling([0.5, 0.6], [0.5, 0.5], 2)
    with pytest.raises(InvalidInstance, match="entries"):
        coupling([0.5, 0.25, 0.25], [1.0], 1)
    with pytest.raises(InvalidArgument, match="k must be"):
        coupling_value([0.5, 0.5], [0.5, 0.5], 0)
    with pytest.raises(InvalidInstance, match="weight"):
        augment([0.5, 0.5], 1.5)


def test_non_optimal_status_raises():
    """Any status but optimal is an error carrying the status (STYLE §13)."""
    A = sp.csr_matrix(np.array([[1.0], [1.0]]))
    lp = build("infeasible", np.array([1.0]), A_eq=A, b_eq=np.array([1.0, 2.0]), upper=np.array([5.0]))
    with pytest.raises(LPError) as err:
        solve(lp)
    assert "infeasible" in str(err.value)
