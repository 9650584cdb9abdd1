"""Chi-squared test of a torch twin's emitted blocks against the reference's exact block law.

The torch twin (``specoracle.gpu.sample_blocks``) draws ``n`` blocks with independent torch
randomness; the exact engine gives the reference verifier's block law. Cells are the blocks of
positive probability (pooled from the expected law only, :func:`specoracle.stats.chi2_gof`) plus
one zero-probability cell for any block outside the support. Since section 1 of the report proves
the reference lossless exactly, agreement in law makes the twin lossless up to the detectable TV.
Stateful twins are tested on whole sequences (:func:`twin_sequence_chi2`) against
:func:`specoracle.exact.sequence_law`.

The detectable TV at power ``1 - beta`` uses the worst case over alternatives at TV distance
``delta``: the noncentrality ``n sum (p1 - p0)^2 / p0 >= 4 n delta^2`` (Cauchy-Schwarz), so
``delta`` is the smallest value whose noncentral chi-squared power reaches ``1 - beta``
(``specoracle.stats.detectable_tv`` when the statistics module provides it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specoracle.exact import judged_length

__all__ = ["TwinChi2", "twin_chi2", "twin_sequence_chi2", "twin_target_chi2", "target_cells", "detectable_tv", "holm",
           "block_counts"]


@dataclass(frozen=True)
class TwinChi2:
    """One chi-squared test of a twin (fields as in the report's table 2)."""

    verifier: str
    model: str
    scheme: str
    device: str
    samples: int
    cells: int
    statistic: float
    dof: int
    p_value: float
    detectable_tv: float
    outside_support: int


def block_counts(blocks: np.ndarray, support: list[tuple]) -> tuple[np.ndarray, int]:
    """Counts per block of ``support`` (same order) and the number of blocks outside it.

    ``blocks`` is ``[n, L+1]`` int with ``-1`` padding after the emitted block.
    """
    index = {b: i for i, b in enumerate(support)}
    counts = np.zeros(len(support) + 1, dtype=np.int64)
    rows, mult = np.unique(np.asarray(blocks, dtype=np.int64).reshape(len(blocks), -1), axis=0, return_counts=True)
    for row, c in zip(rows, mult):
        b = tuple(int(t) for t in row if t >= 0)
        counts[index.get(b, len(support))] += int(c)
    return counts[:-1], int(counts[-1])


def detectable_tv(n: int, *, cells: int, alpha: float, power: float) -> float:
    """Smallest TV error detected with probability ``power`` by a level-``alpha`` test.

    Delegates to ``specoracle.stats.detectable_tv`` when present; otherwise solves
    ``ncx2.sf(chi2.isf(alpha, dof), dof, 4 n delta^2) = power`` for ``delta`` (worst-case
    alternative, see module docstring).
    """
    from specoracle import stats as st

    fn = getattr(st, "detectable_tv", None)
    if fn is not None:
        return float(fn(n, cells=cells, alpha=alpha, power=power))
    from scipy import optimize
    from scipy import stats as sst

    dof = max(cells - 1, 1)
    crit = sst.chi2.isf(alpha, dof)

    def gap(delta):
        return sst.ncx2.sf(crit, dof, 4.0 * n * delta * delta) - power

    if gap(1.0) < 0:
        return 1.0
    return float(optimize.brentq(gap, 1e-9, 1.0, xtol=1e-10))


def holm(pvalues, alpha: float) -> list[bool]:
    """Holm's step-down rejections for ``pvalues`` at family-wise level ``alpha``.

    Delegates to ``specoracle.stats.holm`` when present.

    >>> holm([0.001, 0.03, 0.04], 0.05)  # thresholds 0.05/3, 0.05/2, 0.05 in p order
    [True, False, False]
    """
    from specoracle import stats as st

    fn = getattr(st, "holm", None)
    if fn is not None:
        out = fn(list(pvalues), alpha)
        return [bool(x) for x in getattr(out, "rejected", out)]
    p = list(pvalues)
    m = len(p)
    reject = [False] * m
    for rank, i in enumerate(sorted(range(m), key=lambda j: p[j])):
        if p[i] <= alpha / (m - rank):
            reject[i] = True
        else:
            break
    return reject


def twin_chi2(
    name: str, model, scheme, n: int, *, device: str = "cpu", seed: int = 0, alpha: float = 0.01,
    power: float = 0.99, block_law: dict | None = None,
) -> TwinChi2:
    """Sample ``n`` blocks from the torch twin of ``name`` and test them against the exact law.

    Parameters
    ----------
    name : registry name with a torch twin.
    model, scheme : ToyModel and Scheme.
    n : number of sampled blocks B.
    block_law : the reference's exact block law (computed with ``exact.evaluate`` if None).
    """
    from specoracle import exact, gpu

    if block_law is None:
        block_law = exact.evaluate(name, model, scheme).block_law
    support = sorted(block_law, key=lambda b: (len(b), b))
    probs = np.array([float(block_law[b]) for b in support])
    probs = probs / probs.sum()
    blocks = gpu.sample_blocks(name, model, scheme, n, device=device, seed=seed)
    blocks = blocks.detach().cpu().numpy() if hasattr(blocks, "detach") else np.asarray(blocks)
    return _tested(name, model, scheme.name, device, blocks, support, probs, alpha, power)


def twin_sequence_chi2(
    name: str, model, scheme, n: int, *, length: int, sequence_law, device: str = "cpu", seed: int = 0,
    alpha: float = 0.01, power: float = 0.99,
) -> TwinChi2:
    """Stateful twins: ``n`` sequences of ``length`` tokens from repeated twin calls, the state
    handed on (``specoracle.gpu.sample_sequences``), against the reference's exact sequence law
    ``sequence_law`` (array of shape ``[V] * length``, ``exact.sequence_law(...).law``)."""
    from specoracle import gpu

    support, probs = _dense_support(sequence_law)
    seqs = gpu.sample_sequences(name, model, scheme, n, length, device=device, seed=seed).cpu().numpy()
    return _tested(name, model, f"{scheme.name}, sequences of {length}", device, seqs, support, probs, alpha, power)


def twin_target_chi2(
    name: str, model, scheme, n: int, *, device: str = "cpu", seed: int = 0, alpha: float = 0.01,
    power: float = 0.99,
) -> TwinChi2:
    """Losslessness of a torch twin by sampling alone: its extended law against the TARGET law.

    One-call twins: ``n`` blocks (``gpu.sample_blocks``) continued by target sampling to ``L + 1``
    tokens, on ``V^(L+1)``. Stateful twins: the first ``2L + 1`` tokens of ``n`` whole sequences
    (``gpu.sample_sequences``, the state handed on), on ``V^(2L+1)``. Expected: ``model.target_law``.
    """
    import torch

    from specoracle import gpu, registry
    from specoracle.gpu.drafting import TableModel, extend_blocks

    stateful = registry.get(name).stateful
    length = judged_length(scheme, stateful)
    if stateful:
        rows = gpu.sample_sequences(name, model, scheme, n, length, device=device, seed=seed)
        label = f"{scheme.name}, sequences of {length}"
    else:
        table = TableModel(model, length, device=device)
        blocks = gpu.sample_blocks(name, model, scheme, n, device=device, seed=seed, table=table)
        gen = torch.Generator(device=device).manual_seed(int(seed) + 7919)
        rows = extend_blocks(table, blocks, length, generator=gen)
        label = f"{scheme.name}, extended to {length}"
    support, probs = _dense_support(model.target_law(length))
    return _tested(name, model, label, device, rows.cpu().numpy(), support, probs, alpha, power)


def _dense_support(law) -> tuple[list[tuple], np.ndarray]:
    """The token sequences of positive probability of a dense law ``[V] * length`` (C order) and
    their probabilities, normalised."""
    law = np.asarray(law, dtype=np.float64)
    support = [tuple(int(t) for t in s) for s in zip(*np.nonzero(law > 0))]
    probs = np.array([law[s] for s in support])
    return support, probs / probs.sum()


def target_cells(model, scheme, stateful: bool) -> int:
    """Cells of positive target probability tested by :func:`twin_target_chi2`."""
    length = judged_length(scheme, stateful)
    return int((np.asarray(model.target_law(length), dtype=np.float64) > 0).sum())


def _tested(name, model, scheme_label, device, rows, support, probs, alpha, power) -> TwinChi2:
    """Chi-squared of the sampled ``rows`` (blocks or sequences) on ``support`` plus one cell outside."""
    from specoracle.stats import chi2_gof

    counts, outside = block_counts(rows, support)
    res = chi2_gof(np.append(counts, outside), np.append(probs, 0.0))
    n = len(rows)
    return TwinChi2(
        verifier=name,
        model=model.name,
        scheme=scheme_label,
        device=str(device),
        samples=int(n),
        cells=int(res.cells),
        statistic=float(res.statistic),
        dof=int(res.dof),
        p_value=float(res.p_value),
        detectable_tv=detectable_tv(n, cells=res.cells, alpha=alpha, power=power),
        outside_support=outside,
    )
