"""lp.bounds and lp.plans: multi-step bounds and the verifiers that execute LP solutions.

Truths used: the exact engine (``specoracle.exact.evaluate``) on block verification and on every
lossless registered verifier; the worked numbers of ALGORITHMS.md §5.5, §10.4, §11 (LP E1 K=2
131/81, K=3 1351/729; E2 K=2 LP 1.76 vs coverage 1.81, E2 K=3 1.8694); the closed form
``E[tau_BV] = sum_x Q(x) w(x)`` (ALGORITHMS.md §2.2) computed here by brute force; weak duality
(certificate gap). Executors are checked lossless by the exact engine, never by the LP itself.
"""
from fractions import Fraction as F
from functools import lru_cache
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specoracle import drafting, examples, exact, models, registry
from specoracle.errors import InvalidArgument, InvalidInstance
from specoracle.lp import (
    conditional_verifier,
    coverage_bound,
    level_plans,
    path_selection_bound,
    plan_verifier,
    single_path_bound,
    tree_groups,
    universal_bound,
    universal_verifier,
)

TOL = 1e-8


def _random(V, seed):
    # divergence .9 keeps the bounds away from the trivial value L; smoothing keeps masses >= 0.2/V
    return models.random_model(V, seed, divergence=0.9, smoothing=0.2, name=f"rand(V={V},s={seed})")


MODELS = {
    "E1": examples.E1,
    "E2": examples.E2,
    "E3": examples.E3,
    "rand3": lambda: _random(3, 7),
}
SCHEMES = {
    "chain(2)": drafting.chain(2),
    "iid(2,2)": drafting.iid(2, 2),
    "delayed(2,1,1)": drafting.delayed(2, 1, 1),
    "wor(2,1)": drafting.without_replacement((2, 1)),
}


@lru_cache(maxsize=None)
def _model(name):
    return MODELS[name]()


@lru_cache(maxsize=None)
def _universal(model_name, scheme_name):
    return universal_bound(_model(model_name), SCHEMES[scheme_name])


def _closed_form_bv(model, L):
    """sum_{i<=L} sum_{x in V^i} Q(x) w(x), w = R_i / max_{j<=i} R_j (brute force)."""
    total = 0.0
    for i in range(1, L + 1):
        for x in product(range(model.V), repeat=i):
            Q = float(model.Q(x))
            if Q == 0:
                continue
            R = [float(model.P(x[:j])) / float(model.Q(x[:j])) for j in range(i + 1)]
            total += Q * R[i] / max(R)
    return total


# --- single path ---------------------------------------------------------------------------
@settings(max_examples=12)
@given(V=st.integers(2, 3), L=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_single_path_bound_equals_bv(V, L, seed):
    """Information-agnostic LP optimum == exact BV efficiency (ALGORITHMS.md §5.1)."""
    m = models.random_model(V, seed, divergence=0.9)
    b = single_path_bound(m, L)
    ex = exact.evaluate("bv", m, drafting.chain(L))
    assert abs(b.block_efficiency - ex.block_efficiency) < TOL
    assert abs(b.expected_accepted - _closed_form_bv(m, L)) < TOL
    assert b.status == "optimal" and abs(b.certificate.gap) < 1e-7


# --- worked numbers ------------------------------------------------------------------------
WORKED = [
    ("E1", drafting.chain(2), 11 / 9),
    ("E1", drafting.iid(1, 2), 11 / 9),
    ("E1", drafting.iid(2, 2), 131 / 81),
    ("E1", drafting.iid(3, 2), 1351 / 729),
    ("E2", drafting.chain(2), 1.38),
    ("E2", drafting.iid(2, 2), 1.76),
    ("E2", drafting.iid(3, 2), 1.869416),
    ("E3", drafting.chain(2), 1.31),
]


@pytest.mark.parametrize("model_name,scheme,value", WORKED, ids=[f"{m}-{s.name}" for m, s, _ in WORKED])
def test_universal_worked_numbers(model_name, scheme, value):
    b = universal_bound(_model(model_name), scheme)
    assert abs(b.expected_accepted - value) < TOL
    assert abs(b.block_efficiency - (value + 1)) < TOL
    assert b.certificate.gap < 1e-7 and b.certificate.primal_residual < 1e-8


def test_coverage_relaxation_is_loose_on_e2():
    """ALGORITHMS.md §10.4: coverage 1.81 vs exact LP 1.76 on E2, K=2 (E[tau])."""
    m, s = _model("E2"), drafting.iid(2, 2)
    assert abs(coverage_bound(m, s).expected_accepted - 1.81) < TOL
    assert abs(path_selection_bound(m, s).expected_accepted - 1.76) < TOL


def test_rational_model_is_accepted():
    b = universal_bound(examples.E1(rational=True), drafting.iid(2, 2))
    assert abs(b.expected_accepted - float(F(131, 81))) < TOL


# --- every lossless registered verifier is below the universal bound ----------------------
def _verifier_cases():
    cases = []
    for entry in registry.entries():
        if entry.stateful or not entry.lossless:
            continue
        for sname, scheme in SCHEMES.items():
            if not entry.accepts(scheme):
                continue
            for mname in MODELS:
                cases.append(pytest.param(entry.name, mname, sname, id=f"{entry.name}-{mname}-{sname}"))
    return cases


@pytest.mark.parametrize("name,model_name,scheme_name", _verifier_cases())
def test_registered_verifier_below_universal_bound(name, model_name, scheme_name):
    """Exact BE of every iteration-wise lossless verifier <= universal LP (ALGORITHMS.md §12.5).
    A failure here is a FINDING about that verifier (lossy, or a wrong efficiency)."""
    m, s = _model(model_name), SCHEMES[scheme_name]
    ex = exact.evaluate(name, m, s)
    bound = _universal(model_name, scheme_name)
    assert ex.block_efficiency <= bound.block_efficiency + TOL, (
        f"{name} on {model_name}/{scheme_name}: BE {ex.block_efficiency} above the LP bound "
        f"{bound.block_efficiency} (lossless error {ex.max_error})"
    )
    entry = registry.get(name)
    if entry.bound == "single_path_bound" and s.kind == "chain":  # claimed optimal: equality
        assert abs(ex.block_efficiency - single_path_bound(m, s.depth).block_efficiency) < TOL


@pytest.mark.parametrize("model_name", list(MODELS))
def test_universal_equals_bv_on_chains(model_name):
    m = _model(model_name)
    for L in (1, 2, 3):
        b = universal_bound(m, drafting.chain(L))
        assert abs(b.block_efficiency - exact.evaluate("bv", m, drafting.chain(L)).block_efficiency) < TOL


@pytest.mark.parametrize("model_name", ["E1", "E2", "E3", "rand3"])
def test_universal_non_decreasing_in_k(model_name):
    m = _model(model_name)
    for family in (lambda k: drafting.iid(k, 2), lambda k: drafting.delayed(k, 1, 1)):
        values = [universal_bound(m, family(k)).expected_accepted for k in (1, 2, 3)]
        assert values[0] <= values[1] + TOL and values[1] <= values[2] + TOL, values


# --- path selection == universal <= coverage -----------------------------------------------
PS_SCHEMES = [drafting.iid(2, 2), drafting.iid(3, 2), drafting.delayed(2, 1, 1), drafting.delayed(3, 1, 1),
              drafting.without_replacement((2, 1)), drafting.iid(2, 3)]


PS_MODELS = {"E1": 2, "E2": 3, "E3": 2, "rand2": 2, "rand3": 3}  # name -> V
PS_CASES = [
    pytest.param(mname, scheme, id=f"{mname}-{scheme.name}")
    for mname, V in PS_MODELS.items()
    for scheme in PS_SCHEMES
    if V ** scheme.depth <= 9  # 2^(V^L) coverage rows; larger cases run in the slow sweep
]


@pytest.mark.parametrize("model_name,scheme", PS_CASES)
def test_path_selection_equals_universal(model_name, scheme):
    """§5.2 finding: 'select one path, then BV' loses nothing vs all lossless verifiers.
    A difference is a finding (report it); coverage is always an upper bound."""
    m = _random(2, 3) if model_name == "rand2" else _model(model_name)
    assert m.V == PS_MODELS[model_name]
    u = universal_bound(m, scheme)
    ps = path_selection_bound(m, scheme)
    cov = coverage_bound(m, scheme)
    assert abs(u.expected_accepted - ps.expected_accepted) < TOL, (u.expected_accepted, ps.expected_accepted)
    assert cov.expected_accepted >= u.expected_accepted - TOL
    assert abs(ps.certificate.gap) < 1e-7 and abs(cov.certificate.gap) < 1e-7
    assert abs(sum(ps.solution["selection"].values()) - 1) < 1e-8


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_path_selection_equals_universal_sweep(seed):
    V = 2 + seed % 2
    m = _random(V, 100 + seed)
    for scheme in PS_SCHEMES + [drafting.without_replacement((2, 2)), drafting.delayed(2, 1, 2)]:
        if m.V ** scheme.depth > 16:
            continue
        u = universal_bound(m, scheme).expected_accepted
        assert abs(u - path_selection_bound(m, scheme).expected_accepted) < TOL
        assert coverage_bound(m, scheme).expected_accepted >= u - TOL


def test_coverage_limit_raises():
    with pytest.raises(InvalidInstance, match="max_paths"):
        path_selection_bound(examples.E2(), drafting.iid(2, 2), max_paths=4)


def test_bad_arguments():
    with pytest.raises(InvalidArgument):
        universal_bound("E1", drafting.iid(2, 2))
    with pytest.raises(InvalidArgument):
        single_path_bound(examples.E1(), -1)


# --- executors: lossless by the exact engine, efficiency as promised ----------------------
EXEC_SCHEMES = ["iid(2,2)", "delayed(2,1,1)", "wor(2,1)", "chain(2)"]


@pytest.mark.parametrize("scheme_name", EXEC_SCHEMES)
@pytest.mark.parametrize("model_name", ["E2", "E5"])
def test_plan_executors_are_lossless(model_name, scheme_name):
    m = examples.E5() if model_name == "E5" else _model(model_name)
    s = SCHEMES[scheme_name]
    u = universal_bound(m, s)
    # the optimal universal plan, executed: lossless and attaining the LP value
    uv = universal_verifier(m, s, u)
    ex_u = exact.evaluate(uv, m, s)
    assert ex_u.max_error < 1e-12 and ex_u.fallback_mass < 1e-12  # rounding-level only
    assert abs(ex_u.expected_accepted - u.expected_accepted) < 1e-7
    # top-down optimal OT plans: lossless; efficiency as computed by level_plans
    lp = level_plans(m, s)
    ex_t = exact.evaluate(plan_verifier(lp), m, s)
    assert ex_t.max_error < 1e-12 and ex_t.fallback_mass < 1e-12
    assert abs(ex_t.expected_accepted - lp.expected_accepted) < 1e-9
    assert ex_t.expected_accepted <= u.expected_accepted + TOL
    # lifted conditional OT plans (prefix acceptance probabilities as weights)
    ex_c = exact.evaluate(conditional_verifier(m, s), m, s)
    assert ex_c.max_error < 1e-12
    assert ex_c.expected_accepted <= u.expected_accepted + TOL
    if s.kind == "chain":  # conditional OT on a chain = TV on a chain = BV
        assert abs(ex_c.expected_accepted - u.expected_accepted) < 1e-7


def test_level_plans_local_values():
    """Each node plan attains alpha*(p_u, q_u, m) = min_H [p(H) + 1 - q(H)^m] (ALGORITHMS.md §10.1)."""
    m = _model("E2")
    plans = level_plans(m, drafting.iid(2, 2))
    root = plans.get((), 2)
    assert abs(root.value - 1.0) < 1e-9  # §7.2: E2 root, k = 2
    for (u, k), plan in plans.plans.items():
        p, q = m.p(u), m.q(u)
        best = min(
            sum(p[i] for i in range(3) if H >> i & 1) + 1 - sum(q[i] for i in range(3) if H >> i & 1) ** k
            for H in range(8)
        )
        assert abs(plan.value - best) < 1e-8


def test_universal_solve_time_and_size():
    """Issue 4: universal_bound for V=3, iid k=2, L=2 under 5 s."""
    b = universal_bound(_random(3, 1), drafting.iid(2, 2))
    assert b.seconds < 5.0
    assert b.n_variables > 0 and b.n_constraints > 0 and b.solver in ("HIGHS", "CLARABEL")


def test_tiny_probabilities_do_not_break_the_solver():
    """ALGORITHMS.md §10.4 pitfall: tree probabilities ~1e-12 must not produce 'infeasible'."""
    m = models.context_free([0.5, 0.5 - 1e-6, 1e-6], [1e-6, 0.5, 0.5 - 1e-6], name="tiny")
    s = drafting.iid(2, 2)
    b = universal_bound(m, s)
    assert b.status == "optimal"
    assert b.certificate.primal_residual < 1e-7
    assert b.block_efficiency >= exact.evaluate("bv", m, drafting.chain(2)).block_efficiency - 1e-7
    assert b.expected_accepted <= coverage_bound(m, s).expected_accepted + 1e-7


# --- the bound as an alarm: lossy rules often beat it (FIELD-BUGS.md "efficiency ABOVE the LP") ----
def _mutant_cases():
    from specoracle import mutants

    return [pytest.param(m.name, id=m.name) for m in list(mutants.catalog()) + list(mutants.true_negatives())]


@pytest.mark.parametrize("name", _mutant_cases())
def test_mutants_against_universal_bound(name):
    """No lossless rule may exceed the bound; a rule that does is necessarily lossy."""
    from specoracle import mutants
    from specoracle.drafting import parse_scheme

    mut = mutants.get(name)
    from specoracle.examples import parse_model

    model, scheme = parse_model(mut.model), parse_scheme(mut.scheme)
    ex = exact.evaluate(mut.verify, model, scheme)
    bound = universal_bound(model, scheme)
    if ex.block_efficiency > bound.block_efficiency + TOL:
        assert ex.max_error > 1e-9, f"{name}: above the LP bound yet lossless -> the bound is wrong"
    if mut.lossless:
        assert ex.block_efficiency <= bound.block_efficiency + TOL


def test_cumprod_block_verification_exceeds_the_bound():
    """ALGORITHMS-2.md §11 M4: BV without the clamp reaches E[tau] = G = 12/9 > 11/9 on E1, L=2:
    the LP alone flags it, with no sampling and no lossless check."""
    from specoracle import mutants

    mut = mutants.get("bv_cumprod")
    ex = exact.evaluate(mut.verify, examples.E1(), drafting.chain(2))
    assert abs(ex.expected_accepted - 12 / 9) < 1e-12
    assert ex.expected_accepted > universal_bound(examples.E1(), drafting.chain(2)).expected_accepted + 0.1


@pytest.mark.parametrize("K", [1, 2, 3])
def test_coverage_probabilities_match_iid_closed_form(K):
    """Pr[some of K i.i.d. drafted paths in S] = 1 - (1 - Q(S))^K for every set S of paths (§5.2),
    from the scheme's enumerated tree law (the general code path used for every scheme)."""
    from specoracle.lp.bounds import _hit_probabilities, _items_at

    m = _model("E2")
    groups, n_trees = tree_groups(m, drafting.iid(K, 2))
    assert n_trees == 9**K and abs(sum(pr for _, pr in groups) - 1) < 1e-12
    paths = _items_at(groups, 2)
    assert len(paths) == 9
    hit = _hit_probabilities(groups, paths, 2)
    for mask in range(2 ** len(paths)):
        QS = sum(float(m.Q(s)) for i, s in enumerate(paths) if mask >> i & 1)
        assert abs(hit[mask] - (1 - (1 - QS) ** K)) < 1e-12
