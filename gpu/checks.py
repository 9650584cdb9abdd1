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
- :func:`chi2_twin`: THE test of a twin in law. It samples the twin with independent randomness
  and tests the rows with :func:`specoracle.stats.chi2_rows` (sample size from
  :func:`specoracle.stats.sample_size`) against the reference's exact law
  (``against="reference"``: emitted blocks against :func:`specoracle.exact.evaluate`'s block law)
  or against the target (``against="target"``: blocks continued by target sampling to ``L + 1``
  tokens, against ``model.target_law``).
- Stateful verifiers are judged on whole sequences (their state carries over between calls):
  :func:`parity_sequences` runs both sides call after call on the same contexts and uniforms,
  :func:`sample_sequences` generates sequences in torch (drafting at each context, the twin's
  state handed on), and :func:`chi2_twin` tests the first ``2L + 1`` tokens against
  :func:`specoracle.exact.sequence_law` (or the target law).

Every sampled quantity draws its own seed from ``seed`` and a label
(:func:`specoracle.stats.derive_seed`: drafting, the twin's uniforms, the target extension).
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import torch

from specoracle import exact, registry
from specoracle.check import MAX_MEMORY_GB, Estimate
from specoracle.drafting import Scheme
from specoracle.errors import InvalidArgument, unknown_name
from specoracle.exact import judged_length
from specoracle.instance import Instance, Outcome
from specoracle.models import ToyModel
from specoracle.randomness import Coupled
from specoracle.stats import TV_CEILING, Chi2Result, check_count, chi2_rows, derive_seed, sample_size

from . import twin as registered_twin
from .batch import coupled_uniforms, from_instances, resolve_dtype
from .drafting import TableModel, draft, extend_blocks

__all__ = ["ParityResult", "parity", "sample_blocks", "chi2_twin", "AGAINST", "NEAR_TIE", "resolve_device",
           "parity_sequences", "sample_sequences"]

AGAINST = ("reference", "target")
NEAR_TIE = 1e-6


@dataclass(frozen=True)
class ParityResult:
    """Shared-randomness comparison of a twin with its reference.

    Attributes
    ----------
    verifier, model, scheme : what was compared.
    n : number of instances (:func:`parity_sequences`: of sequences).
    mismatches : instances whose accepted node or token differ (sequences: in any call).
    near_ties : mismatches whose reference run had a decision with ``|u - threshold| < 1e-6``.
    device, dtype : where and in which precision the twin ran.
    largest_gap : largest (over mismatches) of the smallest ``|u - threshold|``; 0 if none.
    examples : up to five mismatches ``(index, reference (node, token), twin (node, token), gap)``
        (sequences: the first differing call's outcomes).
    calls : verifier calls compared (``n`` for single-call parity).
    """

    verifier: str
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
    entry = registry.resolve(name, scheme).entry
    tw = registered_twin(name) if use_twin is None else use_twin
    n_instances, batch_size = check_count("n_instances", n_instances), check_count("batch_size", batch_size)
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    rng = np.random.default_rng(seed)
    calls = [_reference_call(entry, model, scheme, rng)[0] for _ in range(n_instances)]
    got: list[tuple[int, int]] = []
    for s in range(0, n_instances, batch_size):
        got.extend(_twin_calls(tw, calls[s : s + batch_size], device, dtype)[0])
    bad = [i for i in range(n_instances) if calls[i].out != got[i]]
    near = sum(1 for i in bad if calls[i].gap < NEAR_TIE)
    return ParityResult(
        verifier=name,
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
    seed : base seed: drafting and the twin's uniforms use ``derive_seed(seed, "draft")`` and
        ``derive_seed(seed, "verify")`` (``torch.Generator`` on ``device``).

    Returns
    -------
    LongTensor [n, L+1]: accepted prefix + correction/bonus token, padded with ``-1``.
    """
    tw = registered_twin(name) if use_twin is None else use_twin
    n, dtype, device = check_count("n", n), resolve_dtype(dtype), resolve_device(device)
    if table is None:
        table = TableModel(model, scheme.depth, device=device, dtype=torch.float64) if isinstance(model, ToyModel) else model
    batch = _drafted(model, table, scheme, n, derive_seed(seed, "draft"), dtype)
    return tw(batch, generator=_generator(device, seed, "verify")).tokens


_DRAFT_CACHE: dict = {}


def _drafted(model, table, scheme: Scheme, n: int, seed: int, dtype):
    """Trees drafted with ``torch.Generator(seed)``; the last few batches are cached by
    ``(model, scheme, n, seed, dtype)`` so that a family of twins is tested on the same trees."""
    key = (id(model), scheme, n, int(seed), str(table.device), dtype)
    hit = _DRAFT_CACHE.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    batch = draft(table, scheme, n, generator=torch.Generator(device=table.device).manual_seed(int(seed)), dtype=dtype)
    if len(_DRAFT_CACHE) >= 4:
        _DRAFT_CACHE.pop(next(iter(_DRAFT_CACHE)))
    _DRAFT_CACHE[key] = (model, batch)
    return batch


# --- stateful verifiers: whole sequences ----------------------------------------------------------
def _default_length(scheme: Scheme, length: int | None) -> int:
    return judged_length(scheme, stateful=True) if length is None else check_count("length", length)


def _stateful_pair(name: str, use_twin):
    entry = registry.get(name)
    tw = registered_twin(name) if use_twin is None else use_twin
    if not (entry.stateful and tw.stateful):
        raise InvalidArgument(f"{name!r} is not stateful; use parity / chi2_twin")
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
    n_sequences, batch_size = check_count("n_sequences", n_sequences), check_count("batch_size", batch_size)
    dtype, device = resolve_dtype(dtype), resolve_device(device)
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
        verifier=name,
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
    ``length - 1 + L``) or a batched model; ``seed``: base seed of drafting and of the twin's
    uniforms (labels ``"draft"``, ``"verify"``).

    Returns
    -------
    LongTensor [n, length].
    """
    _, tw = _stateful_pair(name, use_twin)
    n, length = check_count("n", n), check_count("length", length)
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    L = scheme.depth
    if table is None:
        table = TableModel(model, length - 1 + L, device=device) if isinstance(model, ToyModel) else model
    dev = table.device
    g_draft, g_verify = _generator(dev, seed, "draft"), _generator(dev, seed, "verify")
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


# --- the test in law --------------------------------------------------------------------------------
def chi2_twin(name: str, model: ToyModel, scheme: Scheme, *, against: str = "reference", n: int | None = None,
              law=None, length: int | None = None, alpha: float = 0.01, tv: float = 0.01, power: float = 0.99,
              tv_ceiling: float = TV_CEILING, seed: int = 0, device="cpu", dtype=torch.float64, use_twin=None,
              max_memory_gb: float = MAX_MEMORY_GB) -> Chi2Result:
    """Is the torch twin of ``name`` right in law? A chi-squared test of its samples (independent
    torch randomness) against an exact law.

    Parameters
    ----------
    against : ``"reference"``: one-step twins' emitted blocks against the reference's exact block
        law (:func:`specoracle.exact.evaluate`), stateful twins' sequences against
        :func:`specoracle.exact.sequence_law`; ``"target"``: losslessness by sampling alone,
        blocks continued by target sampling to ``L + 1`` tokens (stateful: whole sequences)
        against ``model.target_law``.
    n : samples (blocks or sequences); default :func:`specoracle.stats.sample_size` for ``tv`` at
        ``alpha`` and ``power`` on the cells of positive exact probability.
    law : the exact law to test against, when the caller already has it (a block-law dict, or a
        dense ``[V] * length`` array).
    length : tokens per stateful sequence (default ``2L + 1``).
    seed : base seed of drafting, the twin's uniforms and the extension (labels ``"draft"``,
        ``"verify"``, ``"extend"``).
    use_twin : a :class:`~gpu.batch.Twin` to test instead of the registered one.

    Returns
    -------
    Chi2Result (its ``status`` is ``inconclusive`` when ``n`` cannot see TV ``tv_ceiling``).
    """
    if against not in AGAINST:
        raise unknown_name("comparison", against, AGAINST)
    entry = registry.resolve(name, scheme).entry
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    stateful = entry.stateful
    length = _default_length(scheme, length) if stateful else scheme.depth + 1
    if law is None:
        if against == "target":
            law = model.target_law(length)
        elif stateful:
            law = exact.sequence_law(name, model, scheme, length).law
        else:
            law = exact.evaluate(name, model, scheme).block_law
    if n is None:
        cells = sum(1 for v in law.values() if float(v) > 0) if isinstance(law, dict) else int((np.asarray(law) > 0).sum())
        n = sample_size(tv, cells=max(cells, 2), alpha=alpha, power=power)
    n = check_count("n", n)
    Estimate(f"chi2 of the {name} twin: {n:,} samples of {length} tokens", None, n * length * 8 * 6 / 2**30,
             "raise tv, lower power, or give fewer samples (n, --samples)").require(max_memory_gb=max_memory_gb)
    if stateful:
        rows = sample_sequences(name, model, scheme, n, length, device=device, dtype=dtype, seed=seed,
                                use_twin=use_twin)
        label = f"{scheme.name}, sequences of {length}"
    else:
        table = TableModel(model, length, device=device, dtype=torch.float64)
        rows = sample_blocks(name, model, scheme, n, device=device, dtype=dtype, seed=seed, table=table,
                             use_twin=use_twin)
        label = scheme.name
        if against == "target":
            rows = extend_blocks(table, rows, length, generator=_generator(device, seed, "extend"))
            label = f"{scheme.name}, extended to {length}"
    res = chi2_rows(rows.cpu().numpy(), law, alpha=alpha, power=power, tv_ceiling=tv_ceiling)
    return res.labelled(verifier=name, model=model.name, scheme=label, seed=seed, device=str(device),
                        dtype=str(dtype).replace("torch.", ""))


# --- arguments ----------------------------------------------------------------------------------------
def _generator(device, seed: int, label: str) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(seed, label))


def resolve_device(device) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine, or InvalidArgument saying why
    (an unknown device string; CUDA asked for where ``torch.cuda.is_available()`` is False)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidArgument(f"device {device!r} is not a torch device ({exc}); use 'cpu' or 'cuda'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgument(f"device {device!r}: CUDA is not available on this machine "
                                  f"(torch.cuda.is_available() is False); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidArgument(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise InvalidArgument(f"device {device!r}: only 'cpu' and 'cuda' devices are supported")
    return dev
