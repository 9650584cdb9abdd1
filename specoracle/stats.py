"""Chi-squared goodness of fit against exact expected counts, with deterministic pooling.

Cells are pooled from the EXPECTED law only (never from observed counts): cells are sorted by
expected probability and the smallest are merged until every pooled cell expects at least
``min_expected`` counts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from .errors import InvalidArgument

__all__ = ["Chi2Result", "chi2_gof", "pool_cells"]


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
