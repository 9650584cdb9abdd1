"""naive and bv: exact losslessness, closed forms, rational numbers, sampling and Coupled replay.

Truths used: the extended-law criterion (ALGORITHMS.md §1.3) against ``P`` computed by the model;
closed forms E[tau_naive] = sum_i sum_x prod min(p, q) and E[tau_BV] = sum_i sum_x Q(x) w(x)
computed here by brute force over prefixes (independent of the verifier code); worked numbers
of ALGORITHMS.md §2.2 and ALGORITHMS-2.md §2.
"""
from fractions import Fraction as F
from itertools import product

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specoracle import Instance, Tree, drafting, examples, exact, models
from specoracle.randomness import Coupled, Fixed, Sampling
from specoracle.reference.chain import bv, bv_keys, naive, naive_keys
from specoracle.stats import chi2_gof

CHAIN_VERIFIERS = {"naive": naive, "bv": bv}


def _closed_form_naive(model, L):
    """sum_{i<=L} sum_{x in V^i} prod_j min(p, q)(x_j | x_<j) (ALGORITHMS-2.md §2)."""
    total = 0.0
    for i in range(1, L + 1):
        for x in product(range(model.V), repeat=i):
            a = 1.0
            for j in range(i):
                a *= min(model.p(x[:j])[x[j]], model.q(x[:j])[x[j]])
            total += a
    return total


def _closed_form_bv(model, L):
    """sum_{i<=L} sum_{x in V^i} Q(x) w(x), w(x) = R_i / max_{j<=i} R_j (ALGORITHMS.md §2.2)."""
    total = 0.0
    for i in range(1, L + 1):
        for x in product(range(model.V), repeat=i):
            Q = model.Q(x)
            if Q == 0:
                continue
            R = [model.P(x[:j]) / model.Q(x[:j]) for j in range(i + 1)]
            total += Q * R[i] / max(R)
    return total


@pytest.mark.parametrize("name", CHAIN_VERIFIERS)
@pytest.mark.parametrize("model_name", ["E1", "E2", "E3", "E4", "E5"])
@pytest.mark.parametrize("L", [1, 2, 3])
def test_lossless_on_named_models(name, model_name, L):
    res = exact.evaluate(name, examples.get(model_name), drafting.chain(L))
    assert res.max_error < 1e-12, res.max_error
    assert res.fallback_mass == 0


@pytest.mark.parametrize("name", CHAIN_VERIFIERS)
def test_rational_e1_is_exactly_lossless(name):
    res = exact.evaluate(name, examples.E1(rational=True), drafting.chain(2), rational=True)
    assert res.max_error == 0


def test_e1_block_efficiencies_are_exact():
    # BV paper toy (ALGORITHMS.md §2.2): naive 10/9, BV 11/9 accepted tokens at L = 2.
    e1 = examples.E1(rational=True)
    assert exact.evaluate("naive", e1, drafting.chain(2), rational=True).block_efficiency == 1 + F(10, 9)
    assert exact.evaluate("bv", e1, drafting.chain(2), rational=True).block_efficiency == 1 + F(11, 9)


@pytest.mark.parametrize(
    "model_name, naive_tau, bv_tau",
    [("E2", 1.30, 1.38), ("E3", 1.19, 1.31), ("E5", 1.39, 1.445)],  # ALGORITHMS §2.2, -2 §2
)
def test_documented_expected_lengths(model_name, naive_tau, bv_tau):
    m = examples.get(model_name)
    assert exact.evaluate("naive", m, drafting.chain(2)).expected_accepted == pytest.approx(naive_tau, abs=1e-12)
    assert exact.evaluate("bv", m, drafting.chain(2)).expected_accepted == pytest.approx(bv_tau, abs=1e-12)


def test_hsdtoy_l10_closed_forms():
    # ALGORITHMS.md §2.2: HSDTOY (L = 10) naive 1.9653169402, BV 3.4593473217 accepted tokens.
    m = examples.HSDTOY()
    assert _closed_form_naive(m, 10) == pytest.approx(1.9653169402, abs=1e-9)
    assert _closed_form_bv(m, 10) == pytest.approx(3.4593473217, abs=1e-9)


random_models = st.builds(
    lambda V, seed, div: models.random_model(V, seed, divergence=div, smoothing=0.05),
    V=st.integers(2, 4),
    seed=st.integers(0, 10_000),
    div=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
)


@settings(max_examples=15)
@given(model=random_models, L=st.integers(1, 3))
def test_efficiencies_equal_closed_forms(model, L):
    if model.V ** L > 27:
        L = 2
    assert exact.evaluate("bv", model, drafting.chain(L)).block_efficiency == pytest.approx(
        1 + _closed_form_bv(model, L), abs=1e-12
    )
    assert exact.evaluate("naive", model, drafting.chain(L)).block_efficiency == pytest.approx(
        1 + _closed_form_naive(model, L), abs=1e-12
    )


def test_bv_dominates_naive_and_l1_equality():
    # BV is optimal among single-path verifiers; at L = 1 both are the maximal coupling.
    for seed in range(5):
        m = models.random_model(3, seed)
        e_naive = exact.evaluate("naive", m, drafting.chain(1)).block_efficiency
        assert exact.evaluate("bv", m, drafting.chain(1)).block_efficiency == pytest.approx(e_naive, abs=1e-12)
        assert exact.evaluate("bv", m, drafting.chain(3)).block_efficiency >= exact.evaluate(
            "naive", m, drafting.chain(3)
        ).block_efficiency - 1e-12


def test_bv_worked_example_e2_path_10():
    # ALGORITHMS.md §2.2: E2 path (1, 0): ((1,0), y) w.p. .2 p(.|10); ((1), 1) w.p. 2/15; ((), 0) w.p. 2/3.
    m = examples.E2(rational=True)
    inst = Instance.from_model(m, Tree.from_paths([(1, 0)]))
    law = exact.tree_law("bv", inst)
    blocks = {inst.block(o): pr for o, pr in law.items()}
    assert blocks == {
        (1, 0, 0): F(8, 100), (1, 0, 1): F(6, 100), (1, 0, 2): F(6, 100),
        (1, 1): F(2, 15), (0,): F(2, 3),
    }


def test_p_equals_q_accepts_everything():
    m = models.random_model(3, 7, divergence=0.0)
    for name in CHAIN_VERIFIERS:
        assert exact.evaluate(name, m, drafting.chain(3)).block_efficiency == pytest.approx(4.0, abs=1e-12)


def test_one_hot_target_row():
    # Boundary case: p is a point mass; the draft sometimes proposes a p == 0 token.
    p = np.array([1.0, 0.0, 0.0])
    m = models.context_free(p, [0.5, 0.25, 0.25])
    for name in CHAIN_VERIFIERS:
        res = exact.evaluate(name, m, drafting.chain(2))
        assert res.max_error < 1e-12
        assert res.block_efficiency == pytest.approx(1 + 0.5 + 0.25, abs=1e-12)  # sum_i 0.5^i + 1


def test_zero_probability_draft_is_never_accepted_at_u_zero():
    # FIELD-BUGS: u <= ratio with u == 0 accepts p == 0 tokens. Our rule is u < ratio.
    t = Tree.from_paths([(1,)])
    inst = Instance(t, [[1.0, 0.0], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]])
    out = naive(inst, Coupled([0.0, 0.0, 0.0], naive_keys(t)))
    assert out.node == 0 and out.token == 0


def test_fixed_decisions_follow_the_algorithm():
    m = examples.E2()
    t = Tree.from_paths([(1, 0)])
    inst = Instance.from_model(m, t)
    # Force: x_1 accepted, x_2 rejected -> residual at node 1 = norm((p(.|1) - q(.|1))_+) = one-hot on 1.
    out = naive(inst, Fixed({("accept", 1): True, ("accept", 2): False, ("residual", 1): 1}))
    assert (out.node, out.token) == (1, 1)
    with pytest.raises(Exception, match="probability 0"):
        naive(inst, Fixed({("accept", 1): True, ("accept", 2): False, ("residual", 1): 0}))


class _Recorder(Sampling):
    """Sampling that remembers the uniform behind every key, for Coupled replay."""

    def __init__(self, seed):
        super().__init__(seed)
        self.seen = {}

    def bernoulli(self, prob, key):
        u = self.gen.random()
        self.seen[key] = u
        return bool(u < float(prob))

    def categorical(self, probs, key):
        from specoracle.randomness import categorical_from_uniform

        u = self.gen.random()
        self.seen[key] = u
        return categorical_from_uniform(u, probs)


@pytest.mark.parametrize("name, keys", [("naive", naive_keys), ("bv", bv_keys)])
def test_coupled_replays_sampling(name, keys):
    m = examples.E5()
    scheme = drafting.chain(3)
    gen = np.random.default_rng(11)
    verify = CHAIN_VERIFIERS[name]
    for i in range(300):
        tree = scheme.sample(m, gen)
        inst = Instance.from_model(m, tree)
        rec = _Recorder(i)
        first = verify(inst, rec)
        layout = keys(tree)
        u = np.array([rec.seen.get(k, 0.5) for k in layout])
        again = verify(inst, Coupled(u, layout))
        assert again == first


@pytest.mark.parametrize("name", CHAIN_VERIFIERS)
def test_sampled_block_lengths_match_exact_law(name):
    """200k sampled steps vs the exact law of tau, chi-squared at alpha = 1e-3 (fixed seed 2024).

    With 4 cells the test detects a TV error of about 0.006 with power 0.99.
    """
    m, scheme, n = examples.E2(), drafting.chain(3), 200_000
    exact_law = exact.evaluate(name, m, scheme).length_law
    rng = Sampling(2024)
    cache: dict = {}
    counts = np.zeros(scheme.depth + 1)
    verify = CHAIN_VERIFIERS[name]
    for _ in range(n):
        tree = scheme.draft(m, rng)
        inst = cache.get(tree)
        if inst is None:
            inst = cache[tree] = Instance.from_model(m, tree)
        counts[inst.tree.depths[verify(inst, rng).node]] += 1
    expected = np.array([exact_law.get(t, 0.0) for t in range(scheme.depth + 1)])
    res = chi2_gof(counts, expected)
    assert res.p_value > 1e-3, f"seed 2024, n={n}\n{res.table()}"


def test_chi2_detects_a_wrong_law():
    # Negative control for the test above: the same samples against BV's law when drawn from naive.
    m, scheme = examples.E2(), drafting.chain(2)
    rng = Sampling(5)
    counts = np.zeros(3)
    for _ in range(20_000):
        inst = Instance.from_model(m, scheme.draft(m, rng))
        counts[inst.tree.depths[naive(inst, rng).node]] += 1
    wrong = exact.evaluate("bv", m, scheme).length_law
    assert chi2_gof(counts, [wrong[t] for t in range(3)]).p_value < 1e-6


def test_non_chain_tree_is_rejected():
    inst = Instance.from_model(examples.E2(), Tree.from_paths([(0, 1), (1, 0)]))
    for verify in CHAIN_VERIFIERS.values():
        with pytest.raises(ValueError, match="branches"):
            verify(inst, Sampling(0))
