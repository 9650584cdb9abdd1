"""Statistics with stated power: chi-squared goodness of fit, power analysis, Holm, projections.

- :func:`chi2_gof`: Pearson test against EXACT expected probabilities. Cells are pooled from the
  expected law only (never from observed counts): cells are sorted by expected probability and
  the smallest are merged until every pooled cell expects at least ``min_expected`` counts.
- :func:`sample_size` / :func:`detectable_tv`: the number of draws that detects a stated total
  variation error with a stated power at level ``alpha`` (noncentral chi-squared, statsmodels),
  and its inverse. :func:`holm` shares one error budget across a family of tests.
- Projections (:func:`project`, :func:`block_law_cells`, :func:`position_marginals`): few-cell
  views of a law that stay exactly computable for large ``V``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from .errors import InvalidArgument

__all__ = [
    "Chi2Result",
    "chi2_gof",
    "pool_cells",
    "chi2_power",
    "sample_size",
    "detectable_tv",
    "cohen_w",
    "tv_distance",
    "pooled",
    "HolmResult",
    "holm",
    "PROJECTIONS",
    "project",
    "block_law_cells",
    "position_marginals",
    "sample_extensions",
    "sample_size_for",
]


@dataclass(frozen=True)
class Chi2Result:
    """Outcome of one chi-squared goodness-of-fit test."""

    statistic: float
    dof: int
    p_value: float
    n: int
    cells: int
    observed: np.ndarray
    expected: np.ndarray

    def table(self) -> str:
        """Pooled cells: observed, expected, contribution to the statistic."""
        rows = ["cell  observed  expected  contribution"]
        for i, (o, e) in enumerate(zip(self.observed, self.expected)):
            rows.append(f"{i:4d}  {o:8.0f}  {e:8.1f}  {(o - e) ** 2 / e:10.3f}")
        return "\n".join(rows)


def pool_cells(expected_probs: np.ndarray, n: int, min_expected: float = 5.0) -> list[np.ndarray]:
    """Groups of cell indices such that every group expects >= ``min_expected`` counts.

    Zero-probability cells form their own group (any count there is an error by itself).
    """
    probs = np.asarray(expected_probs, dtype=np.float64).reshape(-1)
    pos = np.flatnonzero(probs > 0)
    order = pos[np.argsort(probs[pos], kind="stable")]
    groups: list[list[int]] = []
    cur: list[int] = []
    for idx in order:
        cur.append(int(idx))
        if probs[cur].sum() * n >= min_expected:
            groups.append(cur)
            cur = []
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


def chi2_gof(counts, expected_probs, *, min_expected: float = 5.0) -> Chi2Result:
    """Pearson chi-squared test of ``counts`` against ``expected_probs`` (same flat cell order).

    Observed mass in a zero-probability cell gives p-value 0 at once.
    """
    c = np.asarray(counts, dtype=np.float64).reshape(-1)
    p = np.asarray(expected_probs, dtype=np.float64).reshape(-1)
    if c.shape != p.shape:
        raise InvalidArgument(f"counts {c.shape} and expected_probs {p.shape} differ in shape")
    n = int(round(c.sum()))
    if n <= 0:
        raise InvalidArgument("chi2_gof needs at least one observation")
    groups = pool_cells(p, n, min_expected)
    obs = np.array([c[g].sum() for g in groups])
    exp = np.array([p[g].sum() * n for g in groups])
    if np.any((exp <= 0) & (obs > 0)):
        return Chi2Result(float("inf"), max(len(groups) - 1, 1), 0.0, n, len(groups), obs, exp)
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    dof = max(len(obs) - 1, 1)
    stat = float(((obs - exp) ** 2 / exp).sum())
    return Chi2Result(stat, dof, float(_st.chi2.sf(stat, dof)), n, len(obs), obs, exp)


# --- power analysis ----------------------------------------------------------------------------
# Design of a goodness-of-fit test with stated power (TensorFlow Probability's statistical_testing
# style). Under an alternative law ``p1`` the Pearson statistic on ``n`` draws is approximately
# noncentral chi-squared with ``dof = cells - 1`` and noncentrality ``n w^2``, where Cohen's
# ``w^2 = sum (p1 - p0)^2 / p0``. Cauchy-Schwarz gives ``(sum |p1 - p0|)^2 <= w^2 sum p0``, i.e.
# ``w >= 2 TV(p0, p1)`` for EVERY alternative, with equality when ``|p1 - p0|`` is proportional to
# ``p0`` (a mass-1/2 half of the cells raised by the factor ``1 + 2 tv``, the other half lowered).
# So a sample size computed at ``w = 2 tv`` gives at least the stated power against every
# alternative at TV distance >= tv on the tested cells, whatever the expected law.


def _check_level(name: str, x: float) -> float:
    x = float(x)
    if not 0.0 < x < 1.0:
        raise InvalidArgument(f"{name} must lie strictly between 0 and 1, got {x}")
    return x


def _check_cells(cells) -> int:
    if not isinstance(cells, (int, np.integer)) or isinstance(cells, bool) or cells < 2:
        raise InvalidArgument(f"cells must be an int >= 2 (a test needs two cells), got {cells!r}")
    return int(cells)


def chi2_power(w: float, n: int, *, cells: int, alpha: float) -> float:
    """Power of the level-``alpha`` Pearson test on ``cells`` cells against Cohen effect ``w``.

    ``power = Pr[ncx2(dof=cells-1, nc=n w^2) > chi2.isf(alpha, cells-1)]`` (statsmodels
    ``GofChisquarePower``; asymptotic, accurate when every cell expects >= 5 counts).
    """
    from statsmodels.stats.power import GofChisquarePower

    cells = _check_cells(cells)
    return float(GofChisquarePower().power(effect_size=float(w), nobs=int(n), alpha=_check_level("alpha", alpha), n_bins=cells))


def sample_size(tv: float, *, cells: int, alpha: float = 0.01, power: float = 0.99) -> int:
    """Smallest ``n`` whose chi-squared test detects every alternative at TV >= ``tv`` with ``power``.

    Parameters
    ----------
    tv : total-variation distance to detect on the tested cells, in (0, 1).
    cells : number of cells of the test (``dof = cells - 1``; an upper bound is conservative).
    alpha : level (false-fail rate) of the test.
    power : required probability of rejecting an alternative at TV ``tv``.

    Returns ``ceil(n)`` with ``n (2 tv)^2 = lambda``, where ``lambda`` is the noncentrality at which
    ``ncx2(cells-1, lambda)`` exceeds the level-``alpha`` critical value with probability ``power``
    (solved by statsmodels ``GofChisquarePower.solve_power``).

    Examples
    --------
    >>> sample_size(0.01, cells=4, alpha=0.01, power=0.99)
    74564
    """
    from statsmodels.stats.power import GofChisquarePower

    tv = _check_level("tv", tv)
    cells = _check_cells(cells)
    n = GofChisquarePower().solve_power(
        effect_size=2.0 * tv, nobs=None, alpha=_check_level("alpha", alpha), power=_check_level("power", power), n_bins=cells
    )
    n = int(np.ceil(float(np.squeeze(n)) - 1e-9))
    while chi2_power(2.0 * tv, n, cells=cells, alpha=alpha) < power:  # guard the root finder's tolerance
        n += 1
    return n


def detectable_tv(n: int, *, cells: int, alpha: float = 0.01, power: float = 0.99) -> float:
    """Smallest TV error that ``n`` draws detect with ``power`` at level ``alpha`` (inverse of
    :func:`sample_size`): ``sqrt(lambda / n) / 2`` with ``lambda`` as there.

    >>> round(detectable_tv(74564, cells=4, alpha=0.01, power=0.99), 6)
    0.01
    """
    from scipy import optimize

    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidArgument(f"n must be a positive int, got {n!r}")
    cells = _check_cells(cells)
    alpha, power = _check_level("alpha", alpha), _check_level("power", power)
    dof = cells - 1
    crit = _st.chi2.isf(alpha, dof)
    hi = 1.0
    while _st.ncx2.sf(crit, dof, hi) < power:
        hi *= 2
    lam = optimize.brentq(lambda x: _st.ncx2.sf(crit, dof, x) - power, 1e-12, hi, xtol=1e-12, rtol=1e-12)
    return float(np.sqrt(lam / n) / 2.0)


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


def pooled(law, groups: list[np.ndarray]) -> np.ndarray:
    """A law summed over the groups of :func:`pool_cells` (the cells the test actually sees)."""
    law = np.asarray(law, dtype=np.float64).reshape(-1)
    return np.array([law[g].sum() for g in groups])


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
    alpha = _check_level("alpha", alpha)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise InvalidArgument(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adj_sorted
    return HolmResult(rejected=adjusted <= alpha, adjusted=adjusted, alpha=alpha)


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
    from .errors import unknown_name

    raise unknown_name("projection", projection, PROJECTIONS)


def block_law_cells(block_law: dict, V: int, L: int, projection: str, *, position: int = 0) -> np.ndarray:
    """Exact law of the cells of :func:`project` under a block law ``{tokens tuple: prob}``.

    ``full`` and ``positions`` need blocks of one length ``L + 1`` (use an extended law instead).
    """
    ncell = {"first_token": V, "positions": V, "length_first": (L + 1) * V, "full": V ** (L + 1)}
    if projection not in ncell:
        from .errors import unknown_name

        raise unknown_name("projection", projection, PROJECTIONS)
    out = np.zeros(ncell[projection])
    for block, pr in block_law.items():
        row = np.full((1, L + 1), -1, dtype=np.int64)
        row[0, : len(block)] = block
        out[project(row, V, projection, position=position)[0]] += float(pr)
    return out


def position_marginals(model, length: int, *, context_order: int | None = None) -> np.ndarray:
    """Per-position marginals of the target law, shape [length, V]: ``out[i, t] = Pr_P[x_{i+1} = t]``.

    Forward recursion over prefixes. For an n-gram model whose laws depend only on the last
    ``context_order`` tokens (``order - 1`` for :func:`specoracle.models.ngram_pair` with an empty
    prompt), prefixes are merged by that suffix, so the cost is ``O(length V^(context_order+1))``
    instead of ``O(V^length)``. ``context_order=None`` keeps whole prefixes (exact for any model).
    """
    V = model.V
    states: dict[tuple, float] = {(): 1.0}
    out = np.zeros((length, V))
    for i in range(length):
        nxt: dict[tuple, float] = {}
        for u, w in states.items():
            row = np.asarray(model.p(u), dtype=np.float64) * w
            out[i] += row
            for t in range(V):
                if row[t] > 0:
                    v = u + (t,)
                    if context_order is not None:
                        v = v[-context_order:] if context_order > 0 else ()
                    nxt[v] = nxt.get(v, 0.0) + row[t]
        states = nxt
    return out


def sample_extensions(blocks, model, length: int, gen: np.random.Generator) -> np.ndarray:
    """Complete -1-padded blocks [n, M] to [n, length] by sampling from the target ``model.p``.

    Rows are grouped by prefix so that each distinct prefix costs one vectorised draw. Tokens
    beyond ``length`` are cut.
    """
    b = np.asarray(blocks, dtype=np.int64)
    n = b.shape[0]
    seq = np.full((n, length), -1, dtype=np.int64)
    m = min(length, b.shape[1])
    seq[:, :m] = b[:, :m]
    V = model.V
    codes = np.zeros(n, dtype=np.int64)  # base-V code of each row's prefix seq[:, :j]
    for j in range(length):
        need = seq[:, j] < 0
        if need.any():
            for code in np.unique(codes[need]):
                rows = np.flatnonzero(need & (codes == code))
                prefix = tuple(seq[rows[0], :j].tolist())
                p = np.asarray(model.p(prefix), dtype=np.float64)
                seq[rows, j] = gen.choice(V, size=len(rows), p=p / p.sum())
        codes = codes * V + seq[:, j]
    return seq


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
