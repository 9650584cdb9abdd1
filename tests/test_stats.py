"""The statistics layer, tested against independent truths (scipy's noncentral chi-squared,
statsmodels' Holm, brute-force sums, counts by hand, Monte Carlo with stated error rates)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from specoracle import examples, exact, models, stats
from specoracle import strategies as sos
from specoracle.drafting import chain
from specoracle.errors import BudgetExceeded, InvalidArgument, UnknownName


def _power_scipy(n, tv, cells, alpha):
    """Independent power formula: Pr[ncx2(cells-1, n (2 tv)^2) > chi2.isf(alpha, cells-1)]."""
    dof = cells - 1
    return sst.ncx2.sf(sst.chi2.isf(alpha, dof), dof, n * (2 * tv) ** 2)


@pytest.mark.parametrize(
    "tv,cells,alpha,power",
    [(0.01, 4, 0.01, 0.99), (0.01, 64, 0.01, 0.99), (0.05, 2, 0.05, 0.8), (0.002, 2, 0.01, 0.99), (0.1, 256, 0.001, 0.9)],
)
def test_sample_size_is_the_smallest_n_with_the_power(tv, cells, alpha, power):
    n = stats.sample_size(tv, cells=cells, alpha=alpha, power=power)
    assert _power_scipy(n, tv, cells, alpha) >= power
    assert _power_scipy(n - 1, tv, cells, alpha) < power


@pytest.mark.parametrize("n,cells", [(1000, 2), (74564, 4), (180997, 64)])
def test_detectable_tv_inverts_sample_size(n, cells):
    tv = stats.detectable_tv(n, cells=cells, alpha=0.01, power=0.99)
    assert abs(_power_scipy(n, tv, cells, 0.01) - 0.99) < 1e-8
    # the design round-trips: n buys tv, and tv needs at most n
    assert stats.sample_size(tv * (1 + 1e-9), cells=cells, alpha=0.01, power=0.99) <= n


def test_worked_number_tv001_four_cells():
    # ncx2(3, lambda) > chi2.isf(.01, 3) w.p. .99 at lambda = 29.826; n = lambda / (2 * .01)^2
    assert stats.sample_size(0.01, cells=4, alpha=0.01, power=0.99) == 74564


@settings(max_examples=25)
@given(sos.distribution_pairs(V=st.integers(2, 6)))
def test_cohen_w_is_at_least_twice_tv(pair):
    p0, p1 = pair
    w = stats.cohen_w(p0, p1)
    assert w >= 2 * stats.tv_distance(p0, p1) - 1e-9


def test_cohen_w_bound_is_attained_by_the_least_favourable_alternative():
    # a mass-1/2 half raised by (1 + 2 tv), the other lowered: w == 2 tv exactly
    p0 = np.array([0.3, 0.2, 0.4, 0.1])
    tv = 0.01
    p1 = p0 * np.array([1 + 2 * tv, 1 + 2 * tv, 1 - 2 * tv, 1 - 2 * tv])
    assert abs(stats.tv_distance(p0, p1) - tv) < 1e-15
    assert abs(stats.cohen_w(p0, p1) - 2 * tv) < 1e-15


@pytest.mark.parametrize("target_power", [0.5, 0.9])
def test_measured_power_matches_the_analysis(target_power):
    """Against the least-favourable alternative at TV 0.01, the rejection rate over R Monte-Carlo
    replications agrees with the designed power (two-sided binomial test, false-fail rate 1e-3)."""
    p0 = np.array([0.3, 0.2, 0.4, 0.1])
    p1 = p0 * np.array([1.02, 1.02, 0.98, 0.98])
    alpha = 0.01
    n = stats.sample_size(0.01, cells=4, alpha=alpha, power=target_power)
    gen = np.random.default_rng(12345)
    R = 400
    counts = gen.multinomial(n, p1, size=R)
    rejected = sum(stats.chi2_gof(c, p0).p_value < alpha for c in counts)
    assert sst.binomtest(int(rejected), R, target_power).pvalue > 1e-3, (rejected, R, n)


def test_measured_size_matches_alpha():
    """Under the null the rejection rate is alpha (binomial test, false-fail rate 1e-3)."""
    p0 = np.array([0.3, 0.2, 0.4, 0.1])
    gen = np.random.default_rng(7)
    R, alpha = 2000, 0.05
    counts = gen.multinomial(500, p0, size=R)
    rejected = sum(stats.chi2_gof(c, p0).p_value < alpha for c in counts)
    assert sst.binomtest(int(rejected), R, alpha).pvalue > 1e-3


@settings(max_examples=25)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.sampled_from([0.01, 0.05, 0.2]))
def test_holm_agrees_with_statsmodels(pvals, alpha):
    from statsmodels.stats.multitest import multipletests

    ours = stats.holm(pvals, alpha)
    rej, adj, _, _ = multipletests(pvals, alpha=alpha, method="holm")
    assert np.array_equal(ours.rejected, rej)
    assert np.max(np.abs(ours.adjusted - adj)) < 1e-12


def test_holm_by_hand():
    # sorted .01 <= .03 <= .04; thresholds .05/3, .05/2, .05: reject .01, stop at .03 > .025
    h = stats.holm([0.04, 0.01, 0.03], alpha=0.05)
    assert h.rejected.tolist() == [False, True, False]
    assert np.allclose(h.adjusted, [0.06, 0.03, 0.06], atol=1e-15, rtol=0)


@pytest.mark.parametrize("bad", [[0.5, float("nan")], [1.5], [-0.1]])
def test_holm_rejects_invalid_pvalues(bad):
    with pytest.raises(InvalidArgument):
        stats.holm(bad, 0.05)


@pytest.mark.parametrize("kw", [dict(tv=0.0), dict(tv=1.0), dict(alpha=0.0), dict(power=1.0)])
def test_design_rejects_invalid_levels(kw):
    args = dict(tv=0.01, alpha=0.01, power=0.99) | kw
    with pytest.raises(InvalidArgument):
        stats.sample_size(args["tv"], cells=4, alpha=args["alpha"], power=args["power"])


def test_design_rejects_one_cell():
    with pytest.raises(InvalidArgument, match="cells"):
        stats.sample_size(0.01, cells=1)


# --- projections ------------------------------------------------------------------------------------
def test_position_marginals_equal_brute_force_sums():
    m = examples.E5()
    law = m.target_law(3)
    marg = stats.position_marginals(m, 3)
    for i in range(3):
        axes = tuple(k for k in range(3) if k != i)
        assert np.max(np.abs(marg[i] - law.sum(axis=axes))) < 1e-15


def test_position_marginals_merge_ngram_states():
    # an order-2 n-gram (context of 1 token): merging prefixes by their last token is exact
    text = "abracadabra abracadabra cab bad dab " * 20
    m = models.ngram_pair(text, target_order=2, draft_order=1, vocab="abcd")
    full = stats.position_marginals(m, 5)
    merged = stats.position_marginals(m, 5, context_order=1)
    assert np.max(np.abs(full - merged)) < 1e-13


def test_length_first_projection_of_an_exact_block_law():
    # naive on E1, L=1 (closed form): tau=1 w.p. beta = sum min(p, q) = 2/3, first token then the
    # draft (q restricted to min(p, q)): Pr[tau=1, x1=0] = 1/3, Pr[tau=1, x1=1] = 1/3; tau=0 emits
    # the residual (p - q)_+ / (1 - beta) = token 0 w.p. 1/3
    r = exact.evaluate("naive", examples.E1(), chain(1))
    cells = stats.block_law_cells(r.block_law, 2, 1, "length_first")
    assert np.max(np.abs(cells - [1 / 3, 0, 1 / 3, 1 / 3])) < 1e-15


def test_project_rejects_unknown_and_padded():
    with pytest.raises(UnknownName, match="first_token"):
        stats.project(np.zeros((2, 2), int), 2, "first_tokn")
    with pytest.raises(InvalidArgument, match="padding"):
        stats.project(np.array([[0, -1]]), 2, "full")


def test_sample_extensions_keep_blocks_and_follow_the_target():
    m = examples.E5()
    gen = np.random.default_rng(0)
    blocks = np.array([[1, -1, -1]] * 20000 + [[2, 3, 0]] * 10)
    seq = stats.sample_extensions(blocks, m, 3, gen)
    assert np.array_equal(seq[:, 0], blocks[:, 0]) and np.array_equal(seq[-10:], blocks[-10:])
    # the continuation of prefix (1,) is a draw from P(. | 1): chi2 at alpha 1e-3
    cond = m.target_law(3)[1] / m.target_law(3)[1].sum()
    idx = seq[:20000, 1] * 4 + seq[:20000, 2]
    res = stats.chi2_gof(np.bincount(idx, minlength=16), cond.reshape(-1))
    assert res.p_value > 1e-3, res.table()


def test_sample_size_for_a_known_alternative():
    # without pooling it is sample_size at the alternative's TV
    p0 = np.array([0.25, 0.25, 0.25, 0.25])
    p1 = np.array([0.3, 0.2, 0.25, 0.25])
    assert stats.sample_size_for(p1, p0) == stats.sample_size(0.05, cells=4)
    with pytest.raises(InvalidArgument, match="nothing to detect"):
        stats.sample_size_for(p0, p0)


# --- the one chi-squared test on rows of tokens -----------------------------------------------------
def test_chi2_rows_counts_blocks_by_hand():
    """Five blocks of [n, 3] with -1 padding: cells (0,), (1,), (0, 1) and one outside the support."""
    rows = np.array([[0, -1, -1], [0, 1, -1], [0, -1, -1], [2, 2, 2], [1, -1, -1]])
    r = stats.chi2_rows(rows, {(0,): 0.5, (1,): 0.25, (0, 1): 0.25})
    assert r.n == 5 and r.outside_support == 1
    assert r.p_value == 0.0 and r.status == "fail" and r.worst[0].label == "outside the support"


def test_chi2_rows_equals_pearson_by_hand():
    # counts 30/20/50 against 0.25/0.25/0.5: statistic 5^2/25 + 5^2/25 + 0 = 2, dof 2, p = exp(-1)
    rows = [[0]] * 30 + [[1]] * 20 + [[2]] * 50
    r = stats.chi2_rows(rows, np.array([0.25, 0.25, 0.5]))
    assert abs(r.statistic - 2.0) < 1e-12 and r.dof == 2 and abs(r.p_value - np.exp(-1)) < 1e-12
    assert r.cells == 3 and r.outside_support == 0


def test_chi2_rows_dense_law_cells_in_c_order():
    # a dense [V] * 2 law: row (1, 0) is the cell of flat index 2
    law = np.array([[0.0, 0.5], [0.5, 0.0]])
    r = stats.chi2_rows([[0, 1], [1, 0], [1, 0], [0, 0]], law)
    assert r.outside_support == 1 and r.n == 4


def test_chi2_rows_rejects_an_unnormalised_law():
    with pytest.raises(InvalidArgument, match="sum to 1"):
        stats.chi2_rows([[0]], {(0,): 0.5})


def test_status_pass_fail_inconclusive():
    """judge: rejected -> fail; not rejected and detectable TV above the ceiling -> inconclusive."""
    p0 = np.array([0.3, 0.2, 0.4, 0.1])
    few = stats.chi2_gof([3, 2, 4, 1], p0)
    many = stats.chi2_gof([3000, 2000, 4000, 1000], p0)
    assert few.status == "inconclusive" and not few.passed and few.detectable_tv > stats.TV_CEILING
    assert many.status == "pass" and many.passed
    assert stats.chi2_gof([1000, 2000, 4000, 3000], p0).status == "fail"


def test_detectable_tv_scales_as_one_over_sqrt_n():
    # the worst-case noncentrality 4 n delta^2 depends on n delta^2 only: 4x samples halve delta
    d1 = stats.detectable_tv(1000, cells=10, alpha=0.01, power=0.99)
    d4 = stats.detectable_tv(4000, cells=10, alpha=0.01, power=0.99)
    assert abs(d1 / d4 - 2) < 1e-12


def test_derive_seed_is_stable_and_label_sensitive():
    import zlib

    # seeds printed in old reports must stay valid: crc32 of the labels joined by the unit separator
    assert stats.derive_seed(0, "chi2", "bv") == zlib.crc32(b"0\x1fchi2\x1fbv")
    assert stats.derive_seed(0, "chi2", "bv") != stats.derive_seed(1, "chi2", "bv")
    assert stats.derive_seed(0, "chi2", "bv") != stats.derive_seed(0, "chi2", "naive")


def test_position_marginals_refuse_beyond_their_budget():
    from specoracle.reports import parse_model

    m = parse_model("random:30:0")
    assert stats.marginal_prefixes(30, 4) == 1 + 30 + 900 + 27000
    with pytest.raises(BudgetExceeded, match="27,931"):
        stats.position_marginals(m, 4, max_prefixes=1000)
