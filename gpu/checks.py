"""Twin-versus-reference checks: shared-randomness parity and chi-squared tests of sampled laws.

- :func:`parity`: draw ``n`` trees from a scheme (reference drafting), give every instance a row
  of uniforms in the reference's :class:`~specoracle.randomness.Coupled` layout
  (``entry.keys(tree)``), run the reference instance by instance and the twin once on the whole
  batch with the same uniforms, and count instances whose ``(node, token)`` differ. For every
  mismatch the smallest distance ``|u - threshold|`` over the reference's decisions is recorded
  (Bernoulli: ``|u - prob|``; categorical: distance from ``u`` to the nearest CDF boundary); in
  float32 a mismatch is a *near tie* when that distance is below ``1e-6``.
- :func:`sample_blocks`: independent randomness end to end in torch: draft with
  :func:`gpu.drafting.draft` from a :class:`~gpu.drafting.TableModel`, verify with the twin.
- :func:`chi2_extended`: extend every sampled block by target sampling to ``L + 1`` tokens (in
  torch) and test the counts on ``V^(L+1)`` against the exact extended law of
  :func:`specoracle.exact.evaluate` with :func:`specoracle.stats.chi2_gof`. The sample size comes
  from a power analysis (:func:`sample_size`).
- Stateful verifiers are judged on whole sequences (their state carries over between calls):
  :func:`parity_sequences` runs both sides call after call on the same contexts and uniforms,
  :func:`sample_sequences` generates sequences in torch (drafting at each context, the twin's
  state handed on), and :func:`chi2_sequences` tests the first ``length`` tokens against
  :func:`specoracle.exact.sequence_law`.
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats as _st

from specoracle import exact, registry
from specoracle.drafting import Scheme
from specoracle.exact import judged_length
from specoracle.errors import InvalidArgument
from specoracle.instance import Instance, Outcome
from specoracle.models import ToyModel
from specoracle.randomness import Coupled
from specoracle.stats import chi2_gof

from .batch import coupled_uniforms, from_instances, resolve_dtype
from .drafting import TableModel, draft, extend_blocks

__all__ = ["ParityResult", "Chi2Check", "parity", "sample_blocks", "chi2_extended", "sample_size", "NEAR_TIE",
           "parity_sequences", "sample_sequences", "chi2_sequences"]

NEAR_TIE = 1e-6


@dataclass(frozen=True)
class ParityResult:
    """Shared-randomness comparison of a twin with its reference.

    Attributes
    ----------
    name, model, scheme : what was compared.
    n : number of instances (:func:`parity_sequences`: of sequences).
    mismatches : instances whose accepted node or token differ (sequences: in any call).
    near_ties : mismatches whose reference run had a decision with ``|u - threshold| < 1e-6``.
    device, dtype : where and in which precision the twin ran.
    largest_gap : largest (over mismatches) of the smallest ``|u - threshold|``; 0 if none.
    examples : up to five mismatches ``(index, reference (node, token), twin (node, token), gap)``
        (sequences: the first differing call's outcomes).
    calls : verifier calls compared (``n`` for single-call parity).
    """

    name: str
    model: str
    scheme: str
    n: int
    mismatches: int
    near_ties: int
    device: str
    dtype: str
    largest_gap: float
    examples: tuple
    calls: int = 0

    @property
    def rate(self) -> float:
        """Mismatch rate."""
        return self.mismatches / self.n

    @property
    def all_near_ties(self) -> bool:
        """Every mismatch is a near tie."""
        return self.near_ties == self.mismatches


@dataclass(frozen=True)
class Chi2Check:
    """Chi-squared test of a twin's sampled extended law against the exact one.

    ``detectable_tv`` is the TV distance (on the pooled cells) detected with probability
    ``power`` at level ``alpha`` with ``n`` samples.
    """

    name: str
    model: str
    scheme: str
    n: int
    statistic: float
    dof: int
    p_value: float
    cells: int
    alpha: float
    power: float
    detectable_tv: float
    seed: int
    device: str
    dtype: str
    table: str

    @property
    def passed(self) -> bool:
        return self.p_value >= self.alpha


class _Recorder(Coupled):
    """A Coupled source that also records the smallest ``|u - threshold|`` of the run."""

    def __init__(self, uniforms, layout) -> None:
        super().__init__(uniforms, layout)
        self.gap = float("inf")

    def bernoulli(self, prob, key: Hashable) -> bool:
        u = self.uniforms[self.column[key]] if key in self.column else float("nan")
        out = super().bernoulli(prob, key)
        self.gap = min(self.gap, abs(u - float(prob)))
        return out

    def categorical(self, probs, key: Hashable) -> int:
        u = self.uniforms[self.column[key]] if key in self.column else float("nan")
        out = super().categorical(probs, key)
        c = np.cumsum(np.asarray(probs, dtype=np.float64))
        self.gap = min(self.gap, float(np.min(np.abs(c - u))))
        return out


@dataclass(frozen=True)
class _Call:
    """One reference call under Coupled uniforms: the instance, its key layout and uniforms, the
    reference's ``(node, token)`` and the smallest ``|u - threshold|`` of its decisions."""

    inst: Instance
    keys: tuple
    u: np.ndarray
    out: tuple
    gap: float


def _reference_call(entry, model: ToyModel, scheme: Scheme, rng: np.random.Generator, state=None):
    """Draft a tree from ``model``, draw its uniforms and run the reference (with ``state`` if it is
    stateful). Returns ``(_Call, next state)``."""
    inst = Instance.from_model(model, scheme.sample(model, rng))
    keys = entry.keys(inst.tree)
    u = rng.random(len(keys))
    rec = _Recorder(u, keys)
    if entry.stateful:
        out, state = entry.reference(inst, rec, state)
    else:
        out = entry.reference(inst, rec)
    return _Call(inst, keys, u, (out.node, int(out.token)), rec.gap), state


def _twin_calls(tw, calls: list, device, dtype, state=None):
    """The twin on the batch of ``calls`` with their uniforms: ``([(node, token)], TwinResult)``."""
    batch = from_instances([c.inst for c in calls], device=device, dtype=dtype)
    U = coupled_uniforms(tw.keys(batch), [c.keys for c in calls], [c.u for c in calls], device=device, dtype=dtype)
    res = tw(batch, uniforms=U, state=state)
    return list(zip(res.node.cpu().tolist(), res.token.cpu().tolist())), res


def parity(name: str, model: ToyModel, scheme: Scheme, *, n_instances: int = 10_000,
           dtype=torch.float64, device="cpu", seed: int = 0, batch_size: int = 4096,
           use_twin=None) -> ParityResult:
    """Run twin and reference on ``n_instances`` random trees with the same uniforms.

    Parameters
    ----------
    name : registry name (must have a twin).
    model : float ToyModel; scheme : drafting scheme accepted by the verifier.
    dtype : twin precision (uniforms are rounded to it too); device : torch device.
    seed : numpy seed of trees and uniforms.
    batch_size : instances per twin call.
    use_twin : a :class:`~gpu.batch.Twin` to compare instead of the registered one (tests use it
        to show that a wrong twin is caught).
    """
    from . import twin as _twin

    entry = registry.resolve(name, scheme).entry
    tw = _twin(name) if use_twin is None else use_twin
    dtype = resolve_dtype(dtype)
    rng = np.random.default_rng(seed)
    calls = [_reference_call(entry, model, scheme, rng)[0] for _ in range(n_instances)]
    got: list[tuple[int, int]] = []
    for s in range(0, n_instances, batch_size):
        got.extend(_twin_calls(tw, calls[s : s + batch_size], device, dtype)[0])
    bad = [i for i in range(n_instances) if calls[i].out != got[i]]
    near = sum(1 for i in bad if calls[i].gap < NEAR_TIE)
    return ParityResult(
        name=name,
        model=model.name,
        scheme=scheme.name,
        n=n_instances,
        mismatches=len(bad),
        near_ties=near,
        device=str(device),
        dtype=str(dtype).replace("torch.", ""),
        largest_gap=max((calls[i].gap for i in bad), default=0.0),
        examples=tuple((i, calls[i].out, got[i], calls[i].gap) for i in bad[:5]),
        calls=n_instances,
    )


def sample_blocks(name: str, model, scheme: Scheme, n: int, *, device="cpu", dtype=torch.float64,
                  seed: int = 0, table: TableModel | None = None, use_twin=None) -> torch.Tensor:
    """``n`` emitted blocks, drafted and verified in torch with fresh randomness.

    Parameters
    ----------
    model : ToyModel (tabulated to depth ``L``) or a batched model (``TableModel``/``HashModel``).
    seed : seeds the drafting ``torch.Generator`` (on ``device``); the twin's uniforms use ``seed + 1``.

    Returns
    -------
    LongTensor [n, L+1]: accepted prefix + correction/bonus token, padded with ``-1``.
    """
    from . import twin as _twin

    tw = _twin(name) if use_twin is None else use_twin
    dtype = resolve_dtype(dtype)
    if table is None:
        table = TableModel(model, scheme.depth, device=device, dtype=torch.float64) if isinstance(model, ToyModel) else model
    batch = _drafted(model, table, scheme, n, seed, dtype)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) + 1)
    res = tw(batch, generator=gen)
    return res.tokens


_DRAFT_CACHE: dict = {}


def _drafted(model, table, scheme: Scheme, n: int, seed: int, dtype):
    """Trees drafted with ``torch.Generator(seed)``; the last few batches are cached by
    ``(model, scheme, n, seed, dtype)`` so that a family of twins is tested on the same trees."""
    key = (id(model), scheme, n, int(seed), str(table.device), dtype)
    hit = _DRAFT_CACHE.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    gen = torch.Generator(device=table.device)
    gen.manual_seed(int(seed))
    batch = draft(table, scheme, n, generator=gen, dtype=dtype)
    if len(_DRAFT_CACHE) >= 4:
        _DRAFT_CACHE.pop(next(iter(_DRAFT_CACHE)))
    _DRAFT_CACHE[key] = (model, batch)
    return batch


def sample_size(tv: float, *, cells: int, alpha: float, power: float) -> int:
    """Samples for a chi-squared test on ``cells`` cells to detect TV ``tv`` with ``power``.

    Worst case over deviations of total variation ``tv``: the noncentrality ``n sum (p1-p0)^2/p0``
    is at least ``n (2 tv)^2`` (Cauchy-Schwarz), so ``n`` is the least integer with
    ``P[ncx2(cells-1, 4 n tv^2) > chi2.ppf(1-alpha, cells-1)] >= power``.
    Uses :func:`specoracle.stats.sample_size` when it exists.
    """
    try:
        from specoracle.stats import sample_size as _shared  # type: ignore[attr-defined]
    except ImportError:
        _shared = None
    if _shared is not None:
        return int(_shared(tv, cells=cells, alpha=alpha, power=power))
    df = max(cells - 1, 1)
    crit = _st.chi2.ppf(1 - alpha, df)
    lo, hi = 1, 1
    while _st.ncx2.sf(crit, df, 4 * hi * tv * tv) < power:
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if _st.ncx2.sf(crit, df, 4 * mid * tv * tv) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _detectable_tv(n: int, *, cells: int, alpha: float, power: float) -> float:
    df = max(cells - 1, 1)
    crit = _st.chi2.ppf(1 - alpha, df)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _st.ncx2.sf(crit, df, 4 * n * mid * mid) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def chi2_extended(name: str, model: ToyModel, scheme: Scheme, *, n: int | None = None, alpha: float = 1e-3,
                  tv: float = 0.01, power: float = 0.99, seed: int = 0, device="cpu",
                  dtype=torch.float64, use_twin=None) -> Chi2Check:
    """Chi-squared test of the twin's extended law (blocks continued by target sampling) on
    ``V^(L+1)`` against the exact extended law.

    ``n`` defaults to :func:`sample_size` for ``tv``/``alpha``/``power`` on the cells with
    positive exact probability (a conservative count: pooling only lowers the degrees of freedom).
    """
    ex = exact.evaluate(name, model, scheme)
    probs = np.asarray(ex.extended_law, dtype=np.float64).reshape(-1)
    cells = int((probs > 0).sum())
    if n is None:
        n = sample_size(tv, cells=cells, alpha=alpha, power=power)
    L = scheme.depth
    table = TableModel(model, L + 1, device=device, dtype=torch.float64)
    blocks = sample_blocks(name, model, scheme, n, device=device, dtype=dtype, seed=seed, table=table,
                           use_twin=use_twin)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) + 7919)
    ext = extend_blocks(table, blocks, L + 1, generator=gen)
    return _chi2_check(name, model, scheme.name, ext, probs, alpha, power, seed, device, dtype)


def _chi2_check(name, model, scheme_name, rows, probs, alpha, power, seed, device, dtype) -> Chi2Check:
    """Counts of the token sequences ``rows`` [n, length] on ``V^length`` (C order) against
    ``probs`` (the flat exact law)."""
    n, length = rows.shape
    idx = torch.zeros(n, dtype=torch.long, device=rows.device)
    for i in range(length):
        idx = idx * model.V + rows[:, i]
    counts = torch.bincount(idx, minlength=probs.size).cpu().numpy()
    res = chi2_gof(counts, probs)
    return Chi2Check(
        name=name,
        model=model.name,
        scheme=scheme_name,
        n=n,
        statistic=res.statistic,
        dof=res.dof,
        p_value=res.p_value,
        cells=res.cells,
        alpha=alpha,
        power=power,
        detectable_tv=_detectable_tv(n, cells=res.cells, alpha=alpha, power=power),
        seed=seed,
        device=str(device),
        dtype=str(resolve_dtype(dtype)).replace("torch.", ""),
        table=res.table(),
    )


# --- stateful verifiers: whole sequences ----------------------------------------------------------
def _default_length(scheme: Scheme, length: int | None) -> int:
    length = judged_length(scheme, stateful=True) if length is None else int(length)
    if length < 1:
        raise InvalidArgument(f"length must be >= 1, got {length}")
    return length


def _stateful_pair(name: str, use_twin):
    from . import twin as _twin

    entry = registry.get(name)
    tw = _twin(name) if use_twin is None else use_twin
    if not (entry.stateful and tw.stateful):
        raise InvalidArgument(f"{name!r} is not stateful; use parity / chi2_extended")
    return entry, tw


def parity_sequences(name: str, model: ToyModel, scheme: Scheme, *, n_sequences: int = 1000,
                     length: int | None = None, dtype=torch.float64, device="cpu", seed: int = 0,
                     batch_size: int = 4096, use_twin=None) -> ParityResult:
    """Shared-randomness parity of a stateful twin over whole sequences.

    Each of ``n_sequences`` sequences is generated by the reference, call after call, until it has
    ``length`` tokens (default ``2L + 1``): the tree of a call is drafted (NumPy) from the model
    shifted by the tokens emitted so far and verified with fresh Coupled uniforms and the state of
    the previous call. The twin then runs the same calls, batched across sequences, on the same
    instances and uniforms, handing its own state on. A sequence mismatches when any call's
    ``(node, token)`` differs; its gap is the smallest ``|u - threshold|`` of the reference's
    decisions up to that call.
    """
    entry, tw = _stateful_pair(name, use_twin)
    entry.require(scheme)
    length = _default_length(scheme, length)
    dtype = resolve_dtype(dtype)
    rng = np.random.default_rng(seed)
    seqs = []  # per sequence: its list of _Call
    for _ in range(n_sequences):
        context, state, calls = (), None, []
        while len(context) < length:
            call, state = _reference_call(entry, exact.shifted(model, context), scheme, rng, state)
            calls.append(call)
            context += call.inst.block(Outcome(*call.out))
        seqs.append(calls)
    first_bad: dict[int, tuple] = {}
    for s0 in range(0, n_sequences, batch_size):
        group = list(range(s0, min(s0 + batch_size, n_sequences)))
        state, c = None, 0
        while group:
            calls = [seqs[i][c] for i in group]
            got, res = _twin_calls(tw, calls, device, dtype, state)
            for i, x, g in zip(group, calls, got):
                if x.out != g and i not in first_bad:
                    first_bad[i] = (c, x.out, g, min(y.gap for y in seqs[i][: c + 1]))
            keep = [j for j, i in enumerate(group) if len(seqs[i]) > c + 1]
            state = res.state.take(torch.as_tensor(keep, dtype=torch.long, device=res.node.device))
            group = [group[j] for j in keep]
            c += 1
    bad = sorted(first_bad)
    gaps = [first_bad[i][3] for i in bad]
    return ParityResult(
        name=name,
        model=model.name,
        scheme=f"{scheme.name}, sequences of {length}",
        n=n_sequences,
        mismatches=len(bad),
        near_ties=sum(1 for g in gaps if g < NEAR_TIE),
        device=str(device),
        dtype=str(dtype).replace("torch.", ""),
        largest_gap=max(gaps, default=0.0),
        examples=tuple((i, first_bad[i][1], first_bad[i][2], first_bad[i][3]) for i in bad[:5]),
        calls=sum(len(c) for c in seqs),
    )


def sample_sequences(name: str, model, scheme: Scheme, n: int, length: int, *, device="cpu",
                     dtype=torch.float64, seed: int = 0, table=None, use_twin=None) -> torch.Tensor:
    """``n`` sequences of ``length`` tokens from repeated calls of a stateful twin, in torch.

    Every call drafts the trees of the unfinished sequences at their contexts
    (:func:`gpu.drafting.draft` with ``context``), verifies them with the state of the previous
    call and appends the emitted blocks. ``model``: ToyModel (tabulated to depth
    ``length - 1 + L``) or a batched model; ``seed`` seeds drafting, ``seed + 1`` the twin.

    Returns
    -------
    LongTensor [n, length].
    """
    _, tw = _stateful_pair(name, use_twin)
    dtype = resolve_dtype(dtype)
    L = scheme.depth
    if table is None:
        table = TableModel(model, length - 1 + L, device=device) if isinstance(model, ToyModel) else model
    dev = table.device
    g_draft, g_verify = torch.Generator(device=dev), torch.Generator(device=dev)
    g_draft.manual_seed(int(seed))
    g_verify.manual_seed(int(seed) + 1)
    seq = torch.full((n, length + L), -1, dtype=torch.long, device=dev)
    filled = torch.zeros(n, dtype=torch.long, device=dev)
    active = torch.arange(n, device=dev)
    state = None
    while active.numel():
        batch = draft(table, scheme, int(active.numel()), generator=g_draft, context=seq[active, : length - 1],
                      dtype=dtype)
        res = tw(batch, generator=g_verify, state=state)
        at = filled[active]
        for j in range(res.tokens.shape[1]):
            tok = res.tokens[:, j]
            put = tok >= 0
            seq[active[put], at[put] + j] = tok[put]
        filled[active] = at + (res.tokens >= 0).sum(1)
        keep = (filled[active] < length).nonzero()[:, 0]
        state = res.state.take(keep)
        active = active[keep]
    return seq[:, :length]


def chi2_sequences(name: str, model: ToyModel, scheme: Scheme, *, length: int | None = None, n: int | None = None,
                   alpha: float = 1e-3, tv: float = 0.01, power: float = 0.99, seed: int = 0, device="cpu",
                   dtype=torch.float64, use_twin=None) -> Chi2Check:
    """Chi-squared test of a stateful twin's law of the first ``length`` tokens (default
    ``2L + 1``) on ``V^length`` against :func:`specoracle.exact.sequence_law` of the reference.

    ``n`` defaults to :func:`sample_size` for ``tv``/``alpha``/``power`` on the cells with positive
    exact probability.
    """
    length = _default_length(scheme, length)
    ex = exact.sequence_law(name, model, scheme, length)
    probs = np.asarray(ex.law, dtype=np.float64).reshape(-1)
    cells = int((probs > 0).sum())
    if n is None:
        n = sample_size(tv, cells=cells, alpha=alpha, power=power)
    seqs = sample_sequences(name, model, scheme, n, length, device=device, dtype=dtype, seed=seed, use_twin=use_twin)
    return _chi2_check(name, model, f"{scheme.name}, sequences of {length}", seqs, probs, alpha, power, seed,
                       device, dtype)
