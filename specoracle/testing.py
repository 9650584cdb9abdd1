"""Assertions for users' own test suites.

>>> from specoracle.testing import assert_lossless
>>> verdict = assert_lossless("naive", "E5", "chain(2)")   # exact: passes silently

On failure an ``AssertionError`` carries the whole verdict: method, max error or chi-squared
statistic, p-value, sample size, seed, the TV the test detects with its power, and the worst
cells (observed vs expected), so the failing distribution can be read from the test log.
"""
from __future__ import annotations

from .check import INCONCLUSIVE, NOT_LOSSLESS, Verdict, check_lossless
from .stats import UNCONFIRMED

__all__ = ["assert_lossless", "assert_not_lossless"]


def assert_lossless(verifier, model, scheme, method: str = "auto", **options) -> Verdict:
    """Assert that ``verifier`` is lossless on ``model`` / ``scheme``; return the verdict.

    ``options`` are those of :func:`specoracle.check.check_lossless` (``alpha``, ``tv``, ``power``,
    ``seed``, ``n``, ``projection``, ``tol``...). With ``method="chi2"`` a lossless verifier fails
    at rate ``alpha`` (default 0.01) for a fixed seed: confirmed (``alpha^2``) or unconfirmed flags
    (inconclusive); keep seeds fixed in CI.
    """
    __tracebackhide__ = True  # pytest: show the caller's line
    verdict = check_lossless(verifier, model, scheme, method, **options)
    if verdict.confirmation == UNCONFIRMED:
        first, second = verdict.stages
        raise AssertionError(f"the check is inconclusive: the first stage rejected (p = {first.p_value:.3g}), its "
                             f"confirmation on seed {second.seed} did not (p = {second.p_value:.3g}); raise n\n"
                             f"{verdict.summary()}")
    if verdict.status == INCONCLUSIVE:
        raise AssertionError(f"the check is inconclusive: n = {verdict.n} samples detect only TV >= "
                             f"{verdict.detectable_tv:.3g} (ceiling {verdict.tv_ceiling}); raise n\n{verdict.summary()}")
    if not verdict.lossless:
        if verdict.method == "exact":
            why = f"max |law - P| = {verdict.max_error:.3g} > tol"
        else:
            why = f"chi-squared p = {verdict.p_value:.3g} <= alpha = {verdict.alpha} with n = {verdict.n} samples"
        raise AssertionError(f"verifier is not lossless ({why})\n{verdict.summary()}\n{verdict.table()}".rstrip())
    return verdict


def assert_not_lossless(verifier, model, scheme, method: str = "auto", **options) -> Verdict:
    """Assert that the check FLAGS ``verifier`` (for negative controls / known-bad verifiers)."""
    __tracebackhide__ = True
    verdict = check_lossless(verifier, model, scheme, method, **options)
    if verdict.status != NOT_LOSSLESS:
        raise AssertionError(
            f"expected a lossy verifier to be flagged, but the check says {verdict.status} "
            f"(it detects TV >= {verdict.detectable_tv:.3g} with power {verdict.power})\n{verdict.summary()}"
        )
    return verdict
