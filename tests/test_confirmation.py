"""The confirmation protocol: a chi-squared flag is confirmed on an independent seed at the same n
before a verdict says ``not lossless``; a portfolio is Holm-corrected at both stages.

Truths: each stage of a check equals a one-stage check run by hand at that stage's seed (the
confirmation seed is ``derive_seed(seed, "confirm")``); the two-stage rule by hand; the
portfolio rule against a brute-force restatement and its alpha^2 error rate by simulation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sst

from specoracle import stats
from specoracle.check import INCONCLUSIVE, LOSSLESS, NOT_LOSSLESS, check_lossless
from specoracle.errors import InvalidArgument
from specoracle.mutants import get as get_mutant
from specoracle.testing import assert_lossless


def _stage(p, alpha=0.01):
    return stats.Stage(n=100, seed=0, p_value=p, alpha=alpha)


def test_confirmation_seed_is_the_labelled_seed():
    assert stats.confirmation_seed(5) == stats.derive_seed(5, "confirm")
    assert len({stats.confirmation_seed(s) for s in range(100)} | set(range(100))) == 200
    with pytest.raises(InvalidArgument):
        stats.confirmation_seed(-1)


@pytest.mark.parametrize("stages,dtv,status,confirmation", [
    ((0.5,), 0.05, stats.PASS, None),                       # no flag, sees TV 0.05
    ((0.5,), 0.5, stats.INCONCLUSIVE, None),                # no flag, blind above the ceiling
    ((1e-3, 1e-4), 0.5, stats.FAIL, stats.CONFIRMED),       # a confirmed flag fails whatever the power
    ((1e-3, 0.2), 0.05, stats.INCONCLUSIVE, stats.UNCONFIRMED),
    ((1e-3,), 0.05, stats.FAIL, stats.UNTESTED),            # confirmation off: one stage decides
    ((0.01, 0.01), 0.05, stats.FAIL, stats.CONFIRMED),      # p == alpha rejects, as holm does
])
def test_two_stage_status_by_hand(stages, dtv, status, confirmation):
    st = tuple(_stage(p) for p in stages)
    assert stats.two_stage_status(st, dtv) == status
    assert stats.confirmation(st) == confirmation


def test_false_alarm_rate_is_the_product():
    assert stats.false_alarm_rate(0.01) == pytest.approx(1e-4)
    assert stats.false_alarm_rate(0.05, 0.01) == pytest.approx(5e-4)
    with pytest.raises(InvalidArgument):
        stats.false_alarm_rate(0.0)


def _family_brute_force(p1, p2, alpha):
    """Holm by its definition: reject p_(j) while p_(j) <= alpha / (m - j + 1), at both stages."""
    def holm_set(idx, p):
        out = set()
        for j, i in enumerate(sorted(idx, key=lambda i: p[i])):
            if p[i] > alpha / (len(idx) - j):
                break
            out.add(i)
        return out

    first = holm_set(list(range(len(p1))), p1)
    return holm_set(sorted(first), p2)


@pytest.mark.parametrize("seed", range(20))
def test_confirmed_family_equals_holm_twice(seed):
    g = np.random.default_rng(seed)
    m = int(g.integers(1, 8))
    p1 = g.uniform(0, 0.05, m) ** g.uniform(0.5, 2)
    p2 = g.uniform(0, 0.05, m)
    got = stats.confirmed_family(p1, p2, alpha=0.02)
    assert set(np.flatnonzero(got).tolist()) == _family_brute_force(p1, p2, 0.02)


def test_confirmed_family_needs_the_flagged_confirmations():
    with pytest.raises(InvalidArgument, match="no confirmation"):
        stats.confirmed_family([1e-5, 0.5], [None, None], alpha=0.01)
    assert stats.confirmed_family([0.5, 0.9], [None, None]).tolist() == [False, False]


def test_confirmed_family_error_rate_is_alpha_squared():
    """Under the complete null (uniform p-values, both stages independent) the chance that any of
    m = 5 checks is confirmed is <= alpha^2 = 0.01 at alpha 0.1: 8,000 simulated portfolios,
    one-sided binomial test (false-fail rate 1e-3)."""
    g = np.random.default_rng(7)
    trials, alpha = 8_000, 0.1
    p1, p2 = g.uniform(size=(trials, 5)), g.uniform(size=(trials, 5))
    hits = sum(stats.confirmed_family(a, b, alpha).any() for a, b in zip(p1, p2))
    assert sst.binomtest(hits, trials, alpha**2, alternative="greater").pvalue > 1e-3, hits
    assert hits > 0  # and the simulation is not vacuous: single-stage Holm alone would give ~0.1


def test_a_lossy_verifier_is_confirmed_and_each_stage_is_a_check_at_its_seed():
    """bonus_wrong_node (exact TV 0.153 on E5) at n = 600: both stages reject; each stage's
    p-value is that of a one-stage check run by hand at the stage's seed with the same n."""
    m = get_mutant("bonus_wrong_node")
    v = check_lossless(m.verify, "E5", "chain(2)", method="chi2", n=600, seed=3)
    assert v.status == NOT_LOSSLESS and v.confirmation == stats.CONFIRMED, v.summary()
    first, second = v.stages
    assert (first.n, first.seed, second.n, second.seed) == (600, 3, 600, stats.confirmation_seed(3))
    for st in v.stages:
        alone = check_lossless(m.verify, "E5", "chain(2)", method="chi2", n=600, seed=st.seed, confirm=False)
        assert alone.p_value == st.p_value and len(alone.stages) == 1
    assert [t.seed for t in v.tests] == [3, stats.confirmation_seed(3)]
    assert "confirmation (confirmed)" in v.summary()


def test_an_unconfirmed_flag_is_inconclusive():
    """naive is lossless; at seed 9 (found by a scan of seeds 0-199 at n = 200) its first stage
    rejects (p ~ 0.0014) and the confirmation does not (p ~ 0.12): inconclusive, not a failure;
    with confirm=False the same first stage says not lossless."""
    v = check_lossless("naive", "E1", "chain(1)", method="chi2", n=200, seed=9)
    assert v.words.startswith("INCONCLUSIVE (chi2, n = 200: a flag (p = ") and "not confirmed" in v.words
    assert v.status == INCONCLUSIVE and v.confirmation == stats.UNCONFIRMED, v.summary()
    assert v.stages[0].rejected and not v.stages[1].rejected
    assert "rerun with a larger n" in v.summary()
    single = check_lossless("naive", "E1", "chain(1)", method="chi2", n=200, seed=9, confirm=False)
    assert single.status == NOT_LOSSLESS and single.confirmation == stats.UNTESTED
    assert single.p_value == v.p_value
    with pytest.raises(AssertionError, match="confirmation"):
        assert_lossless("naive", "E1", "chain(1)", method="chi2", n=200, seed=9)


def test_no_flag_runs_one_stage_and_exact_runs_none():
    v = check_lossless("naive", "E1", "chain(1)", method="chi2", n=3000, seed=2)
    assert v.status == LOSSLESS and len(v.stages) == 1 and v.confirmation is None
    assert check_lossless("naive", "E1", "chain(1)", method="exact").stages == ()
