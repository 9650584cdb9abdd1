"""check_lossless and assert_lossless: verdicts against independent truths (worked numbers of
ALGORITHMS-2.md §11, closed forms), method selection by the work estimate, the inconclusive state,
budgets, input validation, and the type-I error of the chi-squared path over 200 seeds."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sst

import specoracle
from specoracle import models
from specoracle.check import AUTO_EXACT_SECONDS, Verdict, check_lossless, enumeration_size, estimate_exact, exact_work
from specoracle.drafting import chain, iid, parse_scheme, without_replacement
from specoracle.errors import BudgetExceeded, InvalidArgument, InvalidInstance, UnknownName
from specoracle.reports import parse_model
from specoracle.instance import Instance, Outcome
from specoracle.mutants import get as get_mutant
from specoracle.testing import assert_lossless, assert_not_lossless
from specoracle.tree import Tree


def test_reexport_is_lazy_and_light():
    code = (
        "import sys, specoracle; f = specoracle.check_lossless; "
        "print(f.__module__, 'torch' in sys.modules, 'cvxpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["specoracle.check", "False", "False"]
    assert specoracle.check_lossless is check_lossless


@pytest.mark.parametrize("name", ["naive", "bv"])
@pytest.mark.parametrize("model", ["E1", "E3", "E5"])
def test_exact_verdict_on_correct_verifiers(name, model):
    v = check_lossless(name, model, "chain(2)")
    assert isinstance(v, Verdict) and v.method == "exact" and v.lossless
    assert v.max_error <= 1e-12 and v.n == 0 and v.status == "lossless"


def test_exact_verdict_reproduces_worked_numbers():
    # ALGORITHMS-2.md §11: M1 on E1, L=2: err 0.0741 (= 2/27); naive E[tau] on E1 L=2 = 10/9
    v = check_lossless(get_mutant("sps_resample_target").verify, "E1", "chain(2)", method="exact")
    assert not v.lossless and abs(v.max_error - 2 / 27) < 1e-12
    assert abs(check_lossless("naive", "E1", "chain(2)").block_efficiency - 19 / 9) < 1e-12
    # the worst cell is reported with its law and target probabilities
    c = v.worst_cells[0]
    assert abs(abs(c.observed - c.expected) - v.max_error) < 1e-15


def test_auto_uses_chi2_when_the_exact_work_is_large():
    m = parse_model("E5")
    assert estimate_exact(m, chain(7)).seconds <= AUTO_EXACT_SECONDS < estimate_exact(m, chain(8)).seconds
    v = check_lossless("naive", "E5", "chain(1)", projection="first_token", n=500)  # small: exact
    assert v.method == "exact"
    big = check_lossless(get_mutant("sample_target_only").verify, m, chain(8), n=1000, seed=0)
    assert big.method == "chi2" and big.projection == "positions" and big.n == 1000
    assert len(big.tests) == 9 and big.lossless, big.summary()


def test_exact_work_by_hand():
    # trees x (nodes + 1) x V: iid(2,2) on V=4 drafts 4^4 sequences of a 5-node tree
    assert exact_work(models.context_free([0.5, 0.5], [0.5, 0.5]), chain(1)) == 2 * 3 * 2
    assert exact_work(parse_model("E5"), iid(2, 2)) == 4**4 * 6 * 4
    # stateful: one call per context of up to 2L tokens (1 + V + V^2 for L = 1)
    assert exact_work(parse_model("E1"), chain(1), stateful=True) == 2 * 3 * 2 * (1 + 2 + 4)


def test_enumeration_size_by_hand():
    assert enumeration_size(chain(2), 3) == 9
    assert enumeration_size(iid(2, 2), 4) == 256
    assert enumeration_size(parse_scheme("delayed(2,1,1)"), 3) == 27
    # wor(2,1) on V=4: root draws 4*3 ordered pairs; each of the 2 children draws 4
    assert enumeration_size(without_replacement((2, 1)), 4) == 12 * 4**2


def test_exact_refused_for_hidden_randomness():
    def verify(instance, rng):
        return Outcome(0, int(rng.gen.integers(instance.V)))

    verify.enumerable = False
    with pytest.raises(InvalidArgument, match="chi2"):
        check_lossless(verify, "E1", "chain(1)", method="exact")
    v = check_lossless(verify, "E1", "chain(1)", n=400)  # auto -> chi2; uniform != (2/3, 1/3)
    assert v.method == "chi2" and not v.lossless


def test_stateful_verifier_exact_and_chi2():
    def naive_with_state(instance, rng, state):
        from specoracle.reference.chain import naive

        return naive(instance, rng), (state or 0) + 1

    naive_with_state.stateful = True
    v = check_lossless(naive_with_state, "E3", "chain(1)", method="exact")
    assert v.lossless and v.projection == "full"
    w = check_lossless(naive_with_state, "E3", "chain(1)", method="chi2", n=3000, seed=4)
    assert w.lossless, w.summary()


def test_chi2_verdict_reports_its_design():
    v = check_lossless("naive", "E5", "chain(1)", method="chi2", tv=0.05, seed=11)
    assert v.lossless
    assert v.n == specoracle.stats.sample_size(0.05, cells=16, alpha=0.01, power=0.99)
    assert abs(v.detectable_tv - 0.05) < 1e-4
    text = v.summary()
    for piece in (f"n = {v.n}", "seed 11", "power 0.99", "p ="):
        assert piece in text


@pytest.mark.parametrize("bad", ["nan", "unnormalised", "negative"])
def test_bad_model_gives_the_instance_validation_error(bad):
    row = {"nan": [0.5, float("nan")], "unnormalised": [0.7, 0.5], "negative": [1.2, -0.2]}[bad]
    good = [0.5, 0.5]
    m = models.ToyModel(2, lambda u: row if len(u) == 1 else good, lambda u: good, name="bad")
    with pytest.raises(InvalidInstance) as from_check:
        check_lossless("naive", m, "chain(1)")
    with pytest.raises(InvalidInstance) as from_instance:
        Instance(Tree.from_paths([(0,)]), [good, row], [good, good])
    a, b = str(from_check.value), str(from_instance.value)
    # same rule, token and value; only the location label differs (prefix vs node)
    cut = " sums to" if bad == "unnormalised" else ": token"
    assert a[a.index(cut):] == b[b.index(cut):]
    assert "prefix=(0,)" in a


def test_bad_shape_is_rejected():
    m = models.ToyModel(3, lambda u: [0.5, 0.5], lambda u: [1 / 3] * 3)
    with pytest.raises(InvalidInstance, match=r"shape \(2,\), expected \(3,\)"):
        check_lossless("naive", m, "chain(1)")


def test_bad_arguments():
    with pytest.raises(UnknownName, match="exact"):
        check_lossless("naive", "E1", "chain(1)", method="exakt")
    with pytest.raises(UnknownName, match="positions"):
        check_lossless("naive", "E1", "chain(1)", projection="position")
    with pytest.raises(InvalidArgument, match="does not accept"):
        check_lossless("naive", "E1", "iid(2,1)")
    with pytest.raises(InvalidArgument):
        check_lossless("naive", "E1", "chain(1)", alpha=1.5)
    with pytest.raises(UnknownName, match="E5"):
        check_lossless("naive", "E6", "chain(1)")


def test_verifier_output_contract():
    def out_of_range(instance, rng):
        return Outcome(0, instance.V)

    with pytest.raises(InvalidInstance, match="outside the tree"):
        check_lossless(out_of_range, "E1", "chain(1)", method="chi2", n=10)


def test_type_one_error_over_200_seeds():
    """A correct verifier's first stage rejects at rate alpha, and is confirmed (not lossless) at
    rate alpha^2: binomial tests on 200 seeds (false-fail rate of each 1e-3; each seed: naive, E1,
    L=1, 4 cells, n=200)."""
    alpha = 0.05
    verdicts = [check_lossless("naive", "E1", "chain(1)", method="chi2", n=200, alpha=alpha, seed=s) for s in range(200)]
    flagged = sum(v.stages[0].rejected for v in verdicts)
    confirmed = sum(v.status == "not lossless" for v in verdicts)
    assert sst.binomtest(flagged, 200, alpha).pvalue > 1e-3, flagged
    assert sst.binomtest(confirmed, 200, alpha**2, alternative="greater").pvalue > 1e-3, confirmed


@pytest.mark.parametrize("tv", [0.05, pytest.param(0.01, marks=pytest.mark.slow)])
def test_power_against_a_verifier_at_stated_tv(tv):
    """A lossy verifier whose law is at TV exactly ``tv`` from P (least-favourable direction) is
    flagged at the designed n with the designed power: over 40 seeds at power 0.9 the first-stage
    rejections are consistent with 0.9, and the confirmed ones (two independent stages) with 0.81
    (two-sided binomial tests, false-fail rate 1e-3 each)."""
    p = np.array([0.3, 0.2, 0.4, 0.1])
    q = np.array([0.4, 0.4, 0.15, 0.05])
    tilt = p * np.array([1 + 2 * tv, 1 + 2 * tv, 1 - 2 * tv, 1 - 2 * tv])  # TV(p, tilt) = tv, w = 2 tv
    overlap = np.minimum(p, q)
    r = (tilt - overlap) / (1 - overlap.sum())  # rejection law that makes the first token ~ tilt
    assert r.min() >= 0

    def lossy(instance, rng):
        x = instance.tree.tokens[1]
        if rng.bernoulli(min(1.0, p[x] / q[x]), ("accept", 1)):
            return Outcome(1, rng.categorical(p, ("residual", 1)))
        return Outcome(0, rng.categorical(r, ("residual", 0)))

    m = models.context_free(p, q)
    exact_v = check_lossless(lossy, m, "chain(1)", method="exact")
    assert abs(exact_v.tv_error - tv) < 1e-12  # the second token is an exact target draw
    n = specoracle.stats.sample_size(tv, cells=4, alpha=0.01, power=0.9)
    verdicts = [check_lossless(lossy, m, "chain(1)", method="chi2", projection="first_token", n=n, seed=s)
                for s in range(40)]
    hits = sum(v.stages[0].rejected for v in verdicts)
    confirmed = sum(v.status == "not lossless" for v in verdicts)
    assert sst.binomtest(hits, 40, 0.9).pvalue > 1e-3, (hits, n)
    assert sst.binomtest(confirmed, 40, 0.81).pvalue > 1e-3, (confirmed, n)


def test_assert_lossless_passes_and_fails_with_a_table():
    v = assert_lossless("bv", "E5", "chain(2)")
    assert v.lossless
    with pytest.raises(AssertionError) as err:
        assert_lossless(get_mutant("bonus_wrong_node").verify, "E5", "chain(2)", method="chi2", n=3000, seed=0)
    msg = str(err.value)
    for piece in ("not lossless", "p =", "n = 3000", "seed 0", "worst cells", "observed vs expected", "detects TV"):
        assert piece in msg, piece
    assert_not_lossless(get_mutant("bonus_wrong_node").verify, "E5", "chain(2)")
    with pytest.raises(AssertionError, match="expected a lossy verifier"):
        assert_not_lossless("naive", "E5", "chain(2)")


def test_block_sampler_contract_is_checked():
    class Sampler:
        name = "bad_sampler"

        def __init__(self, rows):
            self.rows = np.array(rows)

        def sample_blocks(self, model, scheme, n, *, seed=0):
            return np.repeat(self.rows, n, axis=0)[:n]

    with pytest.raises(InvalidInstance, match="outside"):
        check_lossless(Sampler([[0, 2]]), "E1", "chain(1)", n=10)
    with pytest.raises(InvalidInstance, match="after -1 padding"):
        check_lossless(Sampler([[0, -1, 1]]), "E1", "chain(2)", n=10)
    with pytest.raises(InvalidInstance, match="shape"):
        check_lossless(Sampler([[0]]), "E1", "chain(2)", n=10)
    with pytest.raises(InvalidArgument, match="chi2"):
        check_lossless(Sampler([[0, 1]]), "E1", "chain(1)", method="exact")


@pytest.mark.parametrize("n,status", [(1, "inconclusive"), (40, "inconclusive"), (3000, "lossless")])
def test_too_few_samples_is_inconclusive_never_lossless(n, status):
    """detectable TV = sqrt(lambda / n) / 2 (noncentral chi-squared, scipy) decides against the 0.1
    ceiling: n = 1 and 40 cannot see TV 0.1 on E1 chain(1)'s 4 cells, 3000 can."""
    v = check_lossless("naive", "E1", "chain(1)", method="chi2", n=n, seed=2)
    lam_dof = sst.ncx2.sf(sst.chi2.isf(0.01, v.dof), v.dof, 4 * n * 0.1**2)  # power at TV 0.1
    assert v.status == status and (lam_dof >= 0.99) == (status == "lossless"), (v.summary(), lam_dof)
    assert not v.lossless or status == "lossless"


def test_a_rejection_is_not_inconclusive():
    """A test that rejects is a finding at level alpha whatever its power: 400 draws of a uniform
    token against (2/3, 1/3) reject (p ~ 1e-11) though they cannot see TV 0.1 on 4 cells."""
    def verify(instance, rng):
        return Outcome(0, int(rng.gen.integers(instance.V)))

    verify.enumerable = False
    v = check_lossless(verify, "E1", "chain(1)", n=400, tv_ceiling=0.01)
    assert v.status == "not lossless" and v.detectable_tv > 0.01


def test_budgets_refuse_before_work():
    with pytest.raises(BudgetExceeded, match="max_seconds"):
        check_lossless("naive", parse_model("random:50:0"), "chain(6)", method="exact")
    with pytest.raises(BudgetExceeded, match="max_memory_gb"):
        check_lossless("naive", "E2", "chain(2)", method="chi2", tv=1e-6)
    with pytest.raises(BudgetExceeded, match="positions"):
        check_lossless("naive", parse_model("random:50:0"), "chain(6)", method="chi2", projection="positions")
    # auto falls back to the first-token projection when the marginals are out of budget
    v = check_lossless("naive", parse_model("random:60:1"), "chain(4)", method="chi2", n=200)
    assert v.projection == "first_token" and v.status == "inconclusive"


@pytest.mark.parametrize("kw", [dict(seed=-1), dict(seed=1.5), dict(n=0), dict(max_seconds=0), dict(tv_ceiling=-1),
                                dict(max_memory_gb="x")], ids=str)
def test_bad_design_arguments(kw):
    with pytest.raises(InvalidArgument):
        check_lossless("naive", "E1", "chain(1)", method="chi2", **kw)


def test_progress_states_the_expected_time(capsys):
    check_lossless("naive", "E1", "chain(1)", method="chi2", n=50, progress=True)
    assert "50 samples, expected time" in capsys.readouterr().err


def test_verdict_table_lists_every_test_of_the_family():
    v = check_lossless("naive", "E5", "chain(1)", method="chi2", projection="positions", n=400)
    assert len(v.tests) == 2 and v.table().count("cell  observed") == 2
    assert all(t.verifier == "naive" and t.seed == 0 for t in v.tests)


def test_verdict_words_exact_and_statistical():
    """Exact passes say LOSSLESS with their evidence; sampled passes say what TV they could see."""
    v = check_lossless("naive", "E1", "chain(1)", method="exact")
    assert v.kind == "exact" and v.words == f"LOSSLESS (exact, max error {v.max_error:.2g}, 1 case)"
    w = check_lossless("naive", "E1", "chain(1)", method="chi2", n=5000, seed=2)
    assert w.kind == "statistical" and w.lossless
    assert w.words == f"NO LOSS DETECTED (chi2, n = 5,000: detects TV >= {w.detectable_tv:.2g} with power 0.99)"
    assert "LOSSLESS" not in w.summary().replace("NO LOSS", "")
    bad = check_lossless(get_mutant("bv_forward_scan").verify, "E1", "chain(2)", method="exact")
    assert bad.words.startswith("NOT LOSSLESS (exact, max error 0.15, TV ")  # 4/27 (ALGORITHMS-2 §11 M3)
