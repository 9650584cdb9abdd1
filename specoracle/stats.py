"""The statistics layer: chi-squared tests with stated power, their design, Holm, projections.

Every sampled check of specoracle (:func:`specoracle.check.check_lossless`, the torch twins'
:func:`specoracle.gpu.checks.chi2_twin`, the report) goes through this module:

- :func:`chi2_rows`: the one chi-squared test on rows of token sequences. Cells are the support of
  the EXACT expected law (plus one cell for anything outside it), pooled deterministically from
  the expected law only (never from observed counts): cells sorted by expected probability, the
  smallest merged until every pooled cell expects at least ``min_expected`` counts.
  :func:`chi2_gof` is the same Pearson test on counts already binned; :func:`chi2_table` is
  :func:`chi2_rows` on a :func:`count_rows` table (tables of disjoint samples add up).
- :class:`Chi2Result`: the one result type (``verifier``, ``n``, ``statistic``, ``p_value``,
  ``detectable_tv``, ...), with a :attr:`~Chi2Result.status` among :data:`STATUSES`: a test that
  does not reject but could only see a TV above ``tv_ceiling`` is ``inconclusive``, never a pass.
- :func:`sample_size` / :func:`detectable_tv`: the design. The number of draws that detects every
  alternative at total variation ``tv`` with probability ``power`` at level ``alpha``, and its
  inverse; both read one noncentrality (:func:`noncentrality`). :func:`holm` shares one error
  budget across a family of tests; :func:`derive_seed` gives every sampled quantity its own seed
  from a base seed and labels.
- The confirmation protocol (:class:`Stage`, :func:`two_stage_status`, :func:`confirmed_family`):
  a rejection is rerun on an independent seed (:func:`confirmation_seed`) at the same ``n`` before
  anything is called lossy; a lossless verifier is then called lossy with probability
  ``alpha_1 alpha_2`` (:func:`false_alarm_rate`), and a portfolio of checks is Holm-corrected at
  both stages.
- Projections (:func:`project`, :func:`block_law_cells`, :func:`position_marginals`): few-cell
  views of a law that stay exactly computable for large ``V``; :func:`marginal_prefixes` is the
  work :func:`position_marginals` will do, known before it starts.
"""
from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats as sst

from .errors import BudgetExceeded, InvalidArgument, unknown_name

__all__ = [
    "TV_CEILING",
    "PASS",
    "FAIL",
    "INCONCLUSIVE",
    "STATUSES",
    "check_level",
    "check_count",
    "derive_seed",
    "judge",
    "Cell",
    "Chi2Result",
    "chi2_gof",
    "chi2_rows",
    "chi2_table",
    "count_rows",
    "law_cells",
    "pool_cells",
    "pooled",
    "noncentrality",
    "chi2_power",
    "sample_size",
    "detectable_tv",
    "sample_size_for",
    "cohen_w",
    "tv_distance",
    "HolmResult",
    "holm",
    "CONFIRM_LABEL",
    "CONFIRMED",
    "UNCONFIRMED",
    "UNTESTED",
    "confirmation_seed",
    "Stage",
    "two_stage_status",
    "confirmation",
    "false_alarm_rate",
    "confirmed_family",
    "PROJECTIONS",
    "project",
    "block_law_cells",
    "MAX_PREFIXES",
    "marginal_prefixes",
    "position_marginals",
    "sample_extensions",
]

TV_CEILING = 0.1
"""Largest detectable TV a passing test may have: a test that does not reject but cannot see a TV
error of 0.1 says ``inconclusive``, not ``pass``."""

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
STATUSES = (PASS, FAIL, INCONCLUSIVE)


def check_level(name: str, x) -> float:
    """``x`` as a float strictly between 0 and 1 (a level, a power, a TV), or InvalidArgument."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{name} must be a number strictly between 0 and 1, got {x!r}") from None
    if not 0.0 < v < 1.0:
        raise InvalidArgument(f"{name} must lie strictly between 0 and 1, got {x!r}")
    return v


def check_count(name: str, x, lo: int = 1) -> int:
    """``x`` as an int ``>= lo`` (a sample size, a length, a seed), or InvalidArgument (bools and
    floats are refused, not rounded)."""
    if not isinstance(x, (int, np.integer)) or isinstance(x, bool) or x < lo:
        raise InvalidArgument(f"{name} must be an int >= {lo}, got {x!r}")
    return int(x)


def derive_seed(seed: int, *labels) -> int:
    """A 32-bit seed from the base ``seed`` and ``labels`` (stable across runs and machines): the
    seed of one sampled quantity, independent of the seeds of quantities with other labels.

    >>> derive_seed(0, "chi2", "naive") == derive_seed(0, "chi2", "naive")
    True
    """
    text = "\x1f".join([str(seed), *map(str, labels)])
    return zlib.crc32(text.encode("utf-8"))


def judge(p_value: float, alpha: float, detectable_tv: float, tv_ceiling: float = TV_CEILING) -> str:
    """The status of one test: ``fail`` when ``p_value <= alpha`` (rejected, as :func:`holm`
    rejects); otherwise ``inconclusive`` when the test could only detect a TV above ``tv_ceiling``,
    else ``pass``.

    >>> judge(0.5, 0.01, 3.65), judge(0.5, 0.01, 0.02), judge(1e-5, 0.01, 3.65)
    ('inconclusive', 'pass', 'fail')
    """
    if p_value <= alpha:
        return FAIL
    return INCONCLUSIVE if not detectable_tv <= tv_ceiling else PASS


@dataclass(frozen=True)
class Cell:
    """One cell of a test's table: ``observed`` (counts, or an exact law) vs ``expected``.

    ``contribution`` is the cell's chi-squared term (or ``|observed - expected|`` for an exact law).
    """

    label: str
    observed: float
    expected: float
    contribution: float


@dataclass(frozen=True)
class Chi2Result:
    """One chi-squared goodness-of-fit test (the result type of every sampled check).

    Attributes
    ----------
    statistic, dof, p_value : Pearson statistic, degrees of freedom, p-value (``inf`` and 0 when a
        draw falls in a cell of expected probability 0).
    n : number of draws. cells : pooled cells with positive expectation (``dof + 1``).
    observed, expected : pooled observed and expected counts.
    alpha, power : the level of the test and the power its design asks for.
    detectable_tv : smallest TV error (on the pooled cells) detected with ``power`` at ``alpha``
        with these ``n`` draws and ``cells`` (:func:`detectable_tv`).
    tv_ceiling : largest ``detectable_tv`` a pass may have (:data:`TV_CEILING`).
    outside_support : draws outside the expected law's support (any one fails the test).
    worst : the unpooled cells contributing most to the statistic, largest first.
    verifier, model, scheme, seed, device, dtype : what was tested, with which seed, where.
    """

    statistic: float
    dof: int
    p_value: float
    n: int
    cells: int
    observed: np.ndarray = field(repr=False)
    expected: np.ndarray = field(repr=False)
    alpha: float = 0.01
    power: float = 0.99
    detectable_tv: float = float("nan")
    tv_ceiling: float = TV_CEILING
    outside_support: int = 0
    worst: tuple = ()
    verifier: str = ""
    model: str = ""
    scheme: str = ""
    seed: int | None = None
    device: str = ""
    dtype: str = ""

    @property
    def status(self) -> str:
        """``pass``, ``fail`` or ``inconclusive`` (:func:`judge`)."""
        return judge(self.p_value, self.alpha, self.detectable_tv, self.tv_ceiling)

    @property
    def passed(self) -> bool:
        """Not rejected AND able to see TV ``tv_ceiling`` (an inconclusive test is not a pass)."""
        return self.status == PASS

    def labelled(self, **labels) -> "Chi2Result":
        """A copy with some of ``verifier``, ``model``, ``scheme``, ``seed``, ``device``, ``dtype`` set."""
        return replace(self, **labels)

    def table(self) -> str:
        """Pooled cells: observed, expected, contribution to the statistic."""
        rows = ["cell  observed  expected  contribution"]
        for i, (o, e) in enumerate(zip(self.observed, self.expected)):
            c = (o - e) ** 2 / e if e > 0 else (math.inf if o > 0 else 0.0)
            rows.append(f"{i:4d}  {o:8.0f}  {e:8.1f}  {c:10.3f}")
        return "\n".join(rows)


# --- the test ------------------------------------------------------------------------------------
def pool_cells(expected_probs: np.ndarray, n: int, min_expected: float = 5.0) -> list[np.ndarray]:
    """Groups of cell indices such that every group expects >= ``min_expected`` counts.

    Zero-probability cells form their own group (any count there is an error by itself).
    """
    probs = np.asarray(expected_probs, dtype=np.float64).reshape(-1)
    pos = np.flatnonzero(probs > 0)
    order = pos[np.argsort(probs[pos], kind="stable")]
    groups: list[list[int]] = []
    cur: list[int] = []
    acc = 0.0
    for idx in order:
        cur.append(int(idx))
        acc += probs[idx]
        if acc * n >= min_expected:
            groups.append(cur)
            cur, acc = [], 0.0
    if cur:
        if groups:
            groups[-1].extend(cur)
        else:
            groups.append(cur)
    zero = np.flatnonzero(probs <= 0)
    out = [np.array(sorted(g)) for g in groups]
    if len(zero):
        out.append(zero)
    return out


def chi2_gof(counts, expected_probs, *, alpha: float = 0.01, power: float = 0.99, min_expected: float = 5.0,
             tv_ceiling: float = TV_CEILING) -> Chi2Result:
    """Pearson chi-squared test of ``counts`` against ``expected_probs`` (same flat cell order).

    Observed mass in a zero-probability cell gives p-value 0 at once. ``alpha`` and ``power`` set
    the result's ``detectable_tv`` and ``status``; the statistic and p-value do not depend on them.

    >>> r = chi2_gof([50, 50], [0.5, 0.5])
    >>> r.statistic, r.p_value, r.dof
    (0.0, 1.0, 1)
    """
    c = np.asarray(counts, dtype=np.float64).reshape(-1)
    p = np.asarray(expected_probs, dtype=np.float64).reshape(-1)
    if c.shape != p.shape:
        raise InvalidArgument(f"counts {c.shape} and expected_probs {p.shape} differ in shape")
    if not (np.all(np.isfinite(p)) and np.all(p >= 0)):
        raise InvalidArgument("expected_probs must be finite and non-negative")
    if not (np.all(np.isfinite(c)) and np.all(c >= 0)):
        raise InvalidArgument("counts must be finite and non-negative")
    if not float(min_expected) > 0:
        raise InvalidArgument(f"min_expected must be a positive number of counts per pooled cell, got {min_expected!r}")
    n = int(round(c.sum()))
    if n <= 0:
        raise InvalidArgument("chi2_gof needs at least one observation")
    alpha, power = check_level("alpha", alpha), check_level("power", power)
    groups = pool_cells(p, n, min_expected)
    obs = np.array([c[g].sum() for g in groups])
    exp = np.array([p[g].sum() * n for g in groups])
    keep = exp > 0
    cells = int(keep.sum())
    dtv = detectable_tv(n, cells=max(cells, 2), alpha=alpha, power=power)
    common = dict(n=n, cells=cells, alpha=alpha, power=power, detectable_tv=dtv, tv_ceiling=tv_ceiling)
    if np.any(~keep & (obs > 0)):
        return Chi2Result(math.inf, max(cells - 1, 1), 0.0, observed=obs, expected=exp, **common)
    obs, exp = obs[keep], exp[keep]
    dof = max(cells - 1, 1)
    stat = float(((obs - exp) ** 2 / exp).sum())
    return Chi2Result(stat, dof, float(sst.chi2.sf(stat, dof)), observed=obs, expected=exp, **common)


def law_cells(law) -> tuple[list[tuple], np.ndarray]:
    """Cells of an exact law: the token tuples of positive probability and their probabilities.

    ``law`` is ``{tokens tuple: probability}`` (cells ordered by length, then tokens) or a dense
    array ``[V] * M`` (C order).

    >>> law_cells({(1,): 0.5, (0, 1): 0.5, (2,): 0.0})
    ([(1,), (0, 1)], array([0.5, 0.5]))
    """
    if isinstance(law, dict):
        cells = sorted((tuple(int(t) for t in k) for k, v in law.items() if float(v) > 0), key=lambda b: (len(b), b))
        probs = np.array([float(law[c]) for c in cells]) if cells else np.zeros(0)
    else:
        arr = np.asarray(law, dtype=np.float64)
        idx = np.argwhere(arr > 0)
        cells = [tuple(int(t) for t in row) for row in idx]
        probs = arr[tuple(idx.T)] if len(idx) else np.zeros(0)
    if not np.all(np.isfinite(probs)) or abs(float(probs.sum()) - 1.0) > 1e-6:
        raise InvalidArgument(f"the expected law must be finite and sum to 1, got total {float(probs.sum())!r}")
    return cells, probs / probs.sum()


def count_rows(rows, cells: list[tuple]) -> np.ndarray:
    """The count table of token sequences on the cells of :func:`law_cells`, shape ``[C + 1]``:
    ``counts[i]`` rows equal to ``cells[i]`` (``-1`` padding dropped), ``counts[C]`` rows outside.

    ``rows`` : int array [n, M] (or [n]). Tables of disjoint samples add up to the table of their
    union (what a sharded campaign merges, :mod:`specoracle.campaign`).

    >>> count_rows([[0, 1], [0, -1], [0, 1], [2, 2]], [(0,), (0, 1)]).tolist()
    [1, 2, 1]
    """
    r = np.asarray(rows)
    if r.size and not np.issubdtype(r.dtype, np.integer):
        raise InvalidArgument(f"rows must hold integer token ids, got dtype {r.dtype}")
    r = r.astype(np.int64)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2 or r.shape[0] < 1:
        raise InvalidArgument(f"rows must have shape [n, M] with n >= 1, got {np.shape(rows)}")
    index = {c: i for i, c in enumerate(cells)}
    counts = np.zeros(len(cells) + 1, dtype=np.int64)
    uniq, mult = np.unique(r, axis=0, return_counts=True)
    for row, m in zip(uniq, mult):
        counts[index.get(tuple(int(t) for t in row if t >= 0), len(cells))] += m
    return counts


def chi2_rows(rows, law, *, alpha: float = 0.01, power: float = 0.99, min_expected: float = 5.0,
              tv_ceiling: float = TV_CEILING, cell_label=str) -> Chi2Result:
    """Chi-squared test of sampled token sequences against an exact law.

    Parameters
    ----------
    rows : int array [n, M] (or [n]): one sequence per row, ``-1`` padding its tail (blocks shorter
        than ``M``). Rows are counted by their tokens without a ``V^M`` table.
    law : the exact law: ``{tokens tuple: probability}`` (blocks of any length) or a dense array of
        shape ``[V] * M`` (C order). Its support gives the cells; one more cell of expected
        probability 0 collects every row outside it.
    alpha, power, tv_ceiling : as in :func:`chi2_gof`.
    cell_label : ``cell tuple -> str`` for the worst cells.

    Returns
    -------
    Chi2Result with ``outside_support`` and the five ``worst`` cells (unpooled): the test of
    :func:`chi2_table` on the rows' :func:`count_rows` table.

    >>> r = chi2_rows([[0, 1], [0, -1], [0, 1], [1, 1]], {(0,): 0.25, (0, 1): 0.5, (1, 1): 0.25})
    >>> r.n, r.outside_support, r.p_value
    (4, 0, 1.0)
    """
    cells, _ = law_cells(law)
    return chi2_table(count_rows(rows, cells), law, alpha=alpha, power=power, min_expected=min_expected,
                      tv_ceiling=tv_ceiling, cell_label=cell_label)


def chi2_table(counts, law, *, alpha: float = 0.01, power: float = 0.99, min_expected: float = 5.0,
               tv_ceiling: float = TV_CEILING, cell_label=str) -> Chi2Result:
    """The test of :func:`chi2_rows` on a count table already made by :func:`count_rows` (e.g. the
    sum of the tables of a campaign's shards): ``counts [C + 1]`` on ``law``'s cells, then outside.

    >>> chi2_table([1, 2, 1, 0], {(0,): 0.25, (0, 1): 0.5, (1, 1): 0.25}).p_value
    1.0
    """
    cells, probs = law_cells(law)
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    if counts.shape != (len(cells) + 1,):
        raise InvalidArgument(f"counts must have one entry per cell of the law plus one outside, "
                              f"{len(cells) + 1}, got shape {counts.shape}")
    expected = np.append(probs, 0.0)
    res = chi2_gof(counts, expected, alpha=alpha, power=power, min_expected=min_expected, tv_ceiling=tv_ceiling)
    n = res.n
    contrib = np.where(expected > 0, (counts - expected * n) ** 2 / np.where(expected > 0, expected * n, 1.0), 0.0)
    contrib[-1] = math.inf if counts[-1] > 0 else 0.0
    worst = []
    for i in np.argsort(-contrib, kind="stable")[:5]:
        if contrib[i] > 0:
            label = "outside the support" if i == len(cells) else cell_label(cells[i])
            worst.append(Cell(label, float(counts[i]), float(expected[i] * n), float(contrib[i])))
    return replace(res, outside_support=int(counts[-1]), worst=tuple(worst))


def pooled(law, groups: list[np.ndarray]) -> np.ndarray:
    """A law summed over the groups of :func:`pool_cells` (the cells the test actually sees)."""
    law = np.asarray(law, dtype=np.float64).reshape(-1)
    return np.array([law[g].sum() for g in groups])


# --- design ----------------------------------------------------------------------------------------
# Design of a goodness-of-fit test with stated power (TensorFlow Probability's statistical_testing
# style). Under an alternative law ``p1`` the Pearson statistic on ``n`` draws is approximately
# noncentral chi-squared with ``dof = cells - 1`` and noncentrality ``n w^2``, where Cohen's
# ``w^2 = sum (p1 - p0)^2 / p0``. Cauchy-Schwarz gives ``(sum |p1 - p0|)^2 <= w^2 sum p0``, i.e.
# ``w >= 2 TV(p0, p1)`` for EVERY alternative, with equality when ``|p1 - p0|`` is proportional to
# ``p0`` (a mass-1/2 half of the cells raised by the factor ``1 + 2 tv``, the other half lowered).
# So a sample size computed at ``w = 2 tv`` gives at least the stated power against every
# alternative at TV distance >= tv on the tested cells, whatever the expected law.


def _check_cells(cells) -> int:
    return check_count("cells", cells, 2)


def chi2_power(w: float, n: int, *, cells: int, alpha: float) -> float:
    """Power of the level-``alpha`` Pearson test on ``cells`` cells against Cohen effect ``w``.

    ``power = Pr[ncx2(dof=cells-1, nc=n w^2) > chi2.isf(alpha, cells-1)]`` (statsmodels
    ``GofChisquarePower``; asymptotic, accurate when every cell expects >= 5 counts).
    """
    from statsmodels.stats.power import GofChisquarePower

    cells = _check_cells(cells)
    return float(GofChisquarePower().power(effect_size=float(w), nobs=int(n), alpha=check_level("alpha", alpha), n_bins=cells))


def noncentrality(*, cells: int, alpha: float, power: float) -> float:
    """The noncentrality ``lambda`` at which ``ncx2(cells - 1, lambda)`` exceeds the level-``alpha``
    critical value with probability ``power``; ``n`` draws detect TV ``sqrt(lambda / n) / 2``.

    >>> round(noncentrality(cells=2, alpha=0.05, power=0.5), 3)   # ~1.96^2: |Z + sqrt(lambda)| > 1.96 half the time
    3.841
    """
    return _noncentrality(_check_cells(cells), check_level("alpha", alpha), check_level("power", power))


@functools.lru_cache(maxsize=1024)
def _noncentrality(cells: int, alpha: float, power: float) -> float:
    from scipy import optimize

    dof = cells - 1
    crit = sst.chi2.isf(alpha, dof)
    hi = 1.0
    while sst.ncx2.sf(crit, dof, hi) < power:
        hi *= 2
    return float(optimize.brentq(lambda x: sst.ncx2.sf(crit, dof, x) - power, 1e-12, hi, xtol=1e-12, rtol=1e-12))


def sample_size(tv: float, *, cells: int, alpha: float = 0.01, power: float = 0.99) -> int:
    """Smallest ``n`` whose chi-squared test detects every alternative at TV >= ``tv`` with ``power``.

    Parameters
    ----------
    tv : total-variation distance to detect on the tested cells, in (0, 1).
    cells : number of cells of the test (``dof = cells - 1``; an upper bound is conservative).
    alpha : level (false-fail rate) of the test.
    power : required probability of rejecting an alternative at TV ``tv``.

    Returns the least integer ``n`` with ``n (2 tv)^2 >= lambda`` (:func:`noncentrality`), checked
    against the power function (:func:`chi2_power`).

    Examples
    --------
    >>> sample_size(0.01, cells=4, alpha=0.01, power=0.99)
    74564
    """
    tv = check_level("tv", tv)
    lam = noncentrality(cells=cells, alpha=alpha, power=power)
    x = lam / (2.0 * tv) / (2.0 * tv)
    if not x < 1e250:
        raise InvalidArgument(f"tv={tv!r} is too small: detecting it would take about {x:.3g} samples")
    n = max(1, math.ceil(x - 1e-9))
    if n < 10**12:  # guard the root finder's tolerance where the power function can be evaluated
        while chi2_power(2.0 * tv, n, cells=cells, alpha=alpha) < power:
            n += 1
        while n > 1 and chi2_power(2.0 * tv, n - 1, cells=cells, alpha=alpha) >= power:
            n -= 1
    return n


def detectable_tv(n: int, *, cells: int, alpha: float = 0.01, power: float = 0.99) -> float:
    """Smallest TV error that ``n`` draws detect with ``power`` at level ``alpha`` (inverse of
    :func:`sample_size`): ``sqrt(lambda / n) / 2`` with ``lambda`` of :func:`noncentrality`.
    Above 1 (no TV is that large) the test can see nothing.

    >>> round(detectable_tv(74564, cells=4, alpha=0.01, power=0.99), 6)
    0.01
    """
    return float(math.sqrt(noncentrality(cells=cells, alpha=alpha, power=power) / check_count("n", n)) / 2.0)


def cohen_w(expected_probs, alternative_probs) -> float:
    """Cohen's effect size ``w = sqrt(sum (p1 - p0)^2 / p0)`` (``inf`` if ``p1`` puts mass where
    ``p0`` has none). Always ``>= 2 TV(p0, p1)``."""
    p0 = np.asarray(expected_probs, dtype=np.float64).reshape(-1)
    p1 = np.asarray(alternative_probs, dtype=np.float64).reshape(-1)
    if p0.shape != p1.shape:
        raise InvalidArgument(f"laws differ in shape: {p0.shape} vs {p1.shape}")
    zero = p0 <= 0
    if np.any(p1[zero] > 0):
        return float("inf")
    d = p1[~zero] - p0[~zero]
    return float(np.sqrt(np.sum(d * d / p0[~zero])))


def tv_distance(a, b) -> float:
    """Total variation ``0.5 sum |a - b|`` of two laws on the same cells."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise InvalidArgument(f"laws differ in shape: {a.shape} vs {b.shape}")
    return float(0.5 * np.abs(a - b).sum())


def sample_size_for(alternative, expected, *, alpha: float = 0.01, power: float = 0.99, min_expected: float = 5.0) -> int:
    """Design a test against a KNOWN alternative law (e.g. a mutant's exact law): the sample size
    :func:`sample_size` asks for at the alternative's TV on the cells the test sees after pooling.

    Pooling depends on ``n``, so ``n`` is recomputed on the pooled cells until it stops growing.
    Raises if the two laws coincide on the pooled cells (no sample size detects that).
    """
    a = np.asarray(alternative, dtype=np.float64).reshape(-1)
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    cells = max(2, int((e > 0).sum()))
    tv = tv_distance(a, e)
    if tv <= 1e-12:
        raise InvalidArgument("the alternative equals the expected law on these cells; nothing to detect")
    n = sample_size(min(tv, 0.999), cells=cells, alpha=alpha, power=power)
    for _ in range(20):
        g = pool_cells(e, n, min_expected)
        tvp = tv_distance(pooled(a, g), pooled(e, g))
        if tvp <= 1e-12:
            raise InvalidArgument(f"pooling at n={n} hides the difference; lower min_expected")
        n2 = sample_size(min(tvp, 0.999), cells=cells, alpha=alpha, power=power)
        if n2 <= n:
            return n
        n = n2
    return n


# --- Holm ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HolmResult:
    """Holm step-down correction over a family of ``m`` tests.

    ``rejected[i]`` is True when test ``i`` is rejected at family-wise level ``alpha``;
    ``adjusted[i]`` is its Holm-adjusted p-value ``max_{j <= rank(i)} min(1, (m - j) p_(j))``.
    """

    rejected: np.ndarray
    adjusted: np.ndarray
    alpha: float

    @property
    def any(self) -> bool:
        """True when at least one member of the family is rejected."""
        return bool(self.rejected.any())


def holm(pvalues, alpha: float = 0.01) -> HolmResult:
    """Holm (1979) step-down: sort ``p_(1) <= ... <= p_(m)``, reject while ``p_(j) <= alpha/(m-j+1)``.

    Controls the family-wise error rate at ``alpha`` under any dependence.

    >>> holm([0.01, 0.04, 0.03], alpha=0.05).rejected.tolist()
    [True, False, False]
    """
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    alpha = check_level("alpha", alpha)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise InvalidArgument(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adj_sorted
    return HolmResult(rejected=adjusted <= alpha, adjusted=adjusted, alpha=alpha)


# --- the confirmation protocol --------------------------------------------------------------------
# One chi-squared test at level alpha flags a lossless verifier with probability alpha (1 in 100 at
# the default 0.01: two such flags appeared among 34 lossless third-party checks). A flag is
# therefore a hypothesis, not a verdict: the same test is rerun on fresh samples (an independent
# seed, the same n) and the verifier is called lossy only when BOTH stages reject. The stages are
# independent, so a lossless verifier is called lossy with probability alpha_1 alpha_2 (1e-4 at
# 0.01 each), and an alternative that each stage detects with probability >= power is confirmed
# with probability >= power^2 (0.98 at 0.99). A first stage that rejects and a confirmation that
# does not is an UNCONFIRMED flag: neither a pass nor a fail, reported as ``inconclusive`` with
# both p-values (rerun with a larger n to decide).

CONFIRM_LABEL = "confirm"
"""The label :func:`confirmation_seed` mixes into the base seed."""

CONFIRMED, UNCONFIRMED, UNTESTED = "confirmed", "unconfirmed", "not confirmed (confirmation off)"


def confirmation_seed(seed: int) -> int:
    """Seed of the confirmation stage of a check drawn with ``seed``: ``derive_seed(seed, "confirm")``
    (independent of the first stage's samples and of every other label's).

    >>> confirmation_seed(0) == derive_seed(0, "confirm") != 0
    True
    """
    return derive_seed(check_count("seed", seed, 0), CONFIRM_LABEL)


@dataclass(frozen=True)
class Stage:
    """One stage of a (possibly confirmed) chi-squared check.

    Attributes
    ----------
    n : draws of this stage. seed : the seed they were drawn with.
    p_value : the stage's p-value (for a family of tests in one check, e.g. one per position, the
        Holm-adjusted minimum over the family). alpha : the level it is judged at.
    statistic, dof : chi-squared statistic and degrees of freedom of the test behind ``p_value``.
    """

    n: int
    seed: int
    p_value: float
    alpha: float
    statistic: float = float("nan")
    dof: int = 0

    @property
    def rejected(self) -> bool:
        """``p_value <= alpha`` (as :func:`judge` and :func:`holm` reject)."""
        return self.p_value <= self.alpha


def confirmation(stages) -> str | None:
    """What became of a flag: None (the first stage did not reject), :data:`CONFIRMED` (the
    confirmation rejected too), :data:`UNCONFIRMED` (it did not), or :data:`UNTESTED` (no
    confirmation was run)."""
    stages = tuple(stages)
    if not stages or not stages[0].rejected:
        return None
    if len(stages) < 2:
        return UNTESTED
    return CONFIRMED if stages[1].rejected else UNCONFIRMED


def two_stage_status(stages, detectable_tv: float, tv_ceiling: float = TV_CEILING) -> str:
    """The status of a confirmed check from its stages (first, then the confirmation if it ran).

    ``fail`` when every stage run rejects (a single stage that rejects is a fail only when no
    confirmation was run); ``inconclusive`` for an unconfirmed flag or a test that could only see
    a TV above ``tv_ceiling``; else ``pass``.

    >>> s = lambda p: Stage(n=100, seed=0, p_value=p, alpha=0.01)
    >>> [two_stage_status(st, 0.05) for st in [(s(0.3),), (s(1e-4), s(1e-3)), (s(1e-4), s(0.4)), (s(1e-4),)]]
    ['pass', 'fail', 'inconclusive', 'fail']
    """
    stages = tuple(stages)
    if not stages:
        raise InvalidArgument("a check has at least one stage")
    if stages[0].rejected:
        return FAIL if all(s.rejected for s in stages) else INCONCLUSIVE
    return INCONCLUSIVE if not detectable_tv <= tv_ceiling else PASS


def false_alarm_rate(alpha: float, alpha_confirm: float | None = None) -> float:
    """Probability that a confirmed check calls a lossless verifier lossy: ``alpha_1 alpha_2``
    (independent stages; ``alpha_2`` defaults to ``alpha_1``).

    >>> false_alarm_rate(0.01)
    0.0001
    """
    a1 = check_level("alpha", alpha)
    a2 = a1 if alpha_confirm is None else check_level("alpha_confirm", alpha_confirm)
    return a1 * a2


def confirmed_family(first_p, confirm_p, alpha: float = 0.01) -> np.ndarray:
    """Which checks of a portfolio (``m`` checks, one verdict each) are confirmed failures, with
    Holm at both stages: Holm at family-wise level ``alpha`` over the ``m`` first-stage p-values,
    then Holm at ``alpha`` over the confirmation p-values of the checks rejected there.

    ``confirm_p[i]`` may be None (or NaN) where no confirmation ran; every check rejected by the
    first Holm step must have one (a check at level ``alpha`` confirms every p-value ``<= alpha``,
    a superset). Returns a bool array [m].

    Error rate: the chance that any lossless check of the portfolio is called lossy is at most
    ``alpha^2`` (the first Holm step flags some true null with probability <= alpha; the
    confirmations are independent of which, and their Holm step rejects a true null with
    probability <= alpha).

    >>> confirmed_family([1e-4, 0.3, 0.004], [1e-5, None, 0.2], alpha=0.01).tolist()
    [True, False, False]
    """
    p1 = np.asarray(first_p, dtype=np.float64).reshape(-1)
    p2 = np.array([np.nan if x is None else float(x) for x in confirm_p], dtype=np.float64).reshape(-1)
    if p1.shape != p2.shape:
        raise InvalidArgument(f"first_p ({p1.size}) and confirm_p ({p2.size}) must have one entry per check")
    out = np.zeros(p1.size, dtype=bool)
    if not p1.size:
        return out
    flagged = np.flatnonzero(holm(p1, alpha).rejected)
    if np.any(np.isnan(p2[flagged])):
        missing = [int(i) for i in flagged if np.isnan(p2[i])]
        raise InvalidArgument(f"checks {missing} were flagged by the first Holm step but have no confirmation p-value")
    if flagged.size:
        out[flagged] = holm(p2[flagged], alpha).rejected
    return out


# --- exactly computable projections --------------------------------------------------------------
# A lossless step makes "block followed by target sampling" a draw from the target law P on
# V^(L+1). For large V the full law has too many cells; these projections have few cells and an
# exactly computable law. ``length_first`` is a projection of the BLOCK law (it is not fixed by P)
# and serves to compare a sampled implementation with an exact reference block law.

PROJECTIONS = ("full", "first_token", "positions", "length_first")


def project(sequences, V: int, projection: str, *, position: int = 0) -> np.ndarray:
    """Cell index of every sequence, shape [n].

    Parameters
    ----------
    sequences : int array [n, M], padded with -1 (blocks) or full (extended sequences).
    V : vocabulary size.
    projection : ``full`` (flat C-order index of the whole row; rows must be complete),
        ``first_token`` (``x_1``), ``positions`` (``x_{position+1}``), ``length_first``
        (``tau * V + x_1`` with ``tau`` = number of non-padding tokens minus one).
    """
    s = np.asarray(sequences, dtype=np.int64)
    if s.ndim != 2 or s.shape[1] < 1:
        raise InvalidArgument(f"sequences must have shape [n, M] with M >= 1, got {s.shape}")
    if projection == "full":
        if np.any(s < 0):
            raise InvalidArgument("projection 'full' needs complete rows (no -1 padding); extend blocks first")
        return np.ravel_multi_index(tuple(s.T), (V,) * s.shape[1])
    if projection == "first_token":
        return s[:, 0].copy()
    if projection == "positions":
        return s[:, position].copy()
    if projection == "length_first":
        tau = (s >= 0).sum(axis=1) - 1
        return tau * V + s[:, 0]
    raise unknown_name("projection", projection, PROJECTIONS)


def block_law_cells(block_law: dict, V: int, L: int, projection: str, *, position: int = 0) -> np.ndarray:
    """Exact law of the cells of :func:`project` under a block law ``{tokens tuple: prob}``.

    ``full`` and ``positions`` need blocks of one length ``L + 1`` (use an extended law instead).
    """
    ncell = {"first_token": V, "positions": V, "length_first": (L + 1) * V, "full": V ** (L + 1)}
    if projection not in ncell:
        raise unknown_name("projection", projection, PROJECTIONS)
    out = np.zeros(ncell[projection])
    for block, pr in block_law.items():
        row = np.full((1, L + 1), -1, dtype=np.int64)
        row[0, : len(block)] = block
        out[project(row, V, projection, position=position)[0]] += float(pr)
    return out


MAX_PREFIXES = 1_000_000
"""Default limit on the prefixes :func:`position_marginals` visits (about a minute of model calls)."""


def marginal_prefixes(V: int, length: int, context_order: int | None = None) -> float:
    """Upper bound on the prefixes :func:`position_marginals` visits: ``sum_{i < length} V^i``, or
    with ``context_order = c`` at most ``V^min(i, c)`` per position (``inf`` beyond the float range).

    >>> marginal_prefixes(50, 7), marginal_prefixes(50, 7, context_order=1)
    (15943877551, 301)
    """
    length = check_count("length", length, 0)
    if context_order is not None:
        context_order = check_count("context_order", context_order, 0)
    if length < 1:
        return 0
    c = length - 1 if context_order is None else min(context_order, length - 1)
    if c * math.log(max(V, 2)) > 700:
        return math.inf
    return sum(V**i for i in range(c + 1)) + (length - 1 - c) * V**c


def position_marginals(model, length: int, *, context_order: int | None = None,
                       max_prefixes: int = MAX_PREFIXES) -> np.ndarray:
    """Per-position marginals of the target law, shape [length, V]: ``out[i, t] = Pr_P[x_{i+1} = t]``.

    Forward recursion over prefixes of positive probability. For an n-gram model whose laws depend
    only on the last ``context_order`` tokens (``order - 1`` for
    :func:`specoracle.models.ngram_pair` with an empty prompt), prefixes are merged by that suffix,
    so the cost is ``O(length V^(context_order+1))`` instead of ``O(V^length)``.
    ``context_order=None`` keeps whole prefixes (exact for any model). The prefixes of the last
    position are never stored; more than ``max_prefixes`` prefixes raise
    :class:`~specoracle.errors.BudgetExceeded` (the bound :func:`marginal_prefixes` tells it
    before the work starts).
    """
    V = model.V
    need = marginal_prefixes(V, length, context_order)  # validates length and context_order
    states: dict[tuple, float] = {(): 1.0}
    out = np.zeros((length, V))
    visited = 0
    for i in range(length):
        last = i == length - 1
        visited += len(states)
        # this level's rows, and at most V children each for the next level: refuse before the work
        children = len(states) * V if context_order is None else min(len(states) * V, V**context_order)
        if visited + (0 if last else children) > max_prefixes:
            raise BudgetExceeded(
                f"the marginals of {length} positions at V={V} visit up to {need:,} prefixes, above the limit of "
                f"{max_prefixes:,}; test fewer positions (projection 'first_token'), give context_order for an "
                f"n-gram model, or raise max_prefixes"
            )
        nxt: dict[tuple, float] = {}
        for u, w in states.items():
            row = np.asarray(model.p(u), dtype=np.float64) * w
            out[i] += row
            if last:
                continue
            for t in np.flatnonzero(row > 0).tolist():
                v = u + (t,)
                if context_order is not None:
                    v = v[-context_order:] if context_order > 0 else ()
                nxt[v] = nxt.get(v, 0.0) + row[t]
        states = nxt
    return out


def sample_extensions(blocks, model, length: int, gen: np.random.Generator) -> np.ndarray:
    """Complete -1-padded blocks [n, M] to [n, length] by sampling from the target ``model.p``.

    Rows are grouped by prefix (group ids, never a ``V^length`` code) so that each distinct prefix
    costs one vectorised draw, in lexicographic order of the prefixes. Tokens beyond ``length``
    are cut.
    """
    b = np.asarray(blocks, dtype=np.int64)
    n = b.shape[0]
    seq = np.full((n, length), -1, dtype=np.int64)
    m = min(length, b.shape[1])
    seq[:, :m] = b[:, :m]
    V = model.V
    group = np.zeros(n, dtype=np.int64)  # rows with equal prefixes seq[:, :j] share a group id
    for j in range(length):
        need = np.flatnonzero(seq[:, j] < 0)
        if len(need):
            need = need[np.argsort(group[need], kind="stable")]
            _, starts = np.unique(group[need], return_index=True)
            for rows in np.split(need, starts[1:]):
                p = np.asarray(model.p(tuple(seq[rows[0], :j].tolist())), dtype=np.float64)
                seq[rows, j] = gen.choice(V, size=len(rows), p=p / p.sum())
        _, group = np.unique(np.stack([group, seq[:, j]], axis=1), axis=0, return_inverse=True)
        group = group.reshape(-1)
    return seq
