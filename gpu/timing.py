"""Timing of the torch twins against a memory roofline measured in the same run.

:func:`bench` drafts one batch from a :class:`~gpu.drafting.HashModel` (large ``V``), then times,
for every requested verifier,

- the twin on the batch (best of ``repeats`` calls, fresh uniforms each call);
- the *roofline*: one pass that reads ``p`` and ``q`` once (``p.sum(-1)`` and ``q.sum(-1)``, best
  of ``repeats``) -- the least memory traffic any verifier that looks at every row must pay;
- the reference: the NumPy verifier looped over the instances of the batch (timed on the first
  ``reference_instances`` instances and scaled to ``B``).

Chain-only verifiers (naive, bv) are timed on chains of the scheme's depth (``B`` chains of ``L``
tokens) with their own roofline; so are the root-branching-only SpecTr-GBV twins on delayed
schemes. Stateful twins are timed on a call that receives the state of an earlier call (so the
cross-iteration target modification is part of the cost). Verifiers whose node plan is an LP over
the ``V^k`` draft tuples (khisti, ot_optimal) or a per-node max-flow plan (univer) are reported as
skipped above ``_LP_MAX_V`` with the largest ``V`` at which they were measured to run within 1 s
per batch of 64 (``_LP_AT_LARGE_V``), and so is a reference loop that cannot finish at this ``V``
(``_SLOW_REFERENCE``).

Largest ``V`` within 1 s per batch of 64 (``iid(4,4)``, float32, one thread; one twin call after drafting,
measured on the shared 2-core development machine at load ~14, so an upper bound):
khisti 16.7 s and ot_optimal 16.8 s already at ``V = 2`` (one CPU LP per visited node, about 250
LPs per batch at ~65 ms each: solver set-up, not ``V``, dominates), so no ``V`` fits; univer 1.6 s
at ``V = 2``, 1.1 s at ``V = 3``, 8.8 s at ``V = 4`` (about ``V = 3``). No ``V log V`` plan
construction is implemented: the LP has ``V^k`` variables per node.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from specoracle import registry
from specoracle.check import MAX_MEMORY_GB, Estimate
from specoracle.drafting import Scheme, chain, parse_scheme
from specoracle.stats import check_count
from specoracle.instance import Instance
from specoracle.randomness import Sampling

from .batch import TreeBatch, resolve_dtype, tree_of
from .drafting import HashModel, draft

__all__ = ["BenchRow", "bench", "roofline_seconds"]

_LP_MAX_V = 8  # above it the LP / max-flow twins are reported, not timed
_LP_AT_LARGE_V = {
    "khisti": "node LP over V^k draft tuples on CPU: 16.7 s per batch of 64 already at V=2; no V runs within 1 s",
    "ot_optimal": "node LP over V^k draft tuples on CPU: 16.8 s per batch of 64 already at V=2; no V runs within 1 s",
    "univer": "per-node max-flow plans on CPU: 1.1 s per batch of 64 at V=3, 8.8 s at V=4; largest V within 1 s ~ 3",
}
_SLOW_REFERENCE = {"spectr_gbv_lossless": "reference not timed: it ranks the V tokens pairwise (O(V^2) Python per node)"}


@dataclass(frozen=True)
class BenchRow:
    """One timing: seconds per batch of the twin, the roofline and the reference loop."""

    name: str
    scheme: str
    B: int
    N: int
    V: int
    dtype: str
    device: str
    twin_s: float
    roofline_s: float
    reference_s: float | None
    note: str = ""

    @property
    def ratio(self) -> float:
        """Twin time / roofline time."""
        return self.twin_s / self.roofline_s

    @property
    def speedup(self) -> float | None:
        """Reference loop time / twin time."""
        return None if self.reference_s is None else self.reference_s / self.twin_s


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _best(fn, repeats: int, device) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def roofline_seconds(batch: TreeBatch, repeats: int = 5) -> float:
    """Best time of one pass reading ``p`` and ``q`` once (row sums)."""
    p, q = batch.p, batch.q
    return _best(lambda: (p.sum(-1), q.sum(-1)), repeats, batch.device)


def _instances(batch64: TreeBatch, count: int) -> list[Instance]:
    out = []
    for b in range(min(count, batch64.B)):
        n = int(batch64.valid[b].sum())
        tree = tree_of(batch64, b)
        p = batch64.p[b, :n].cpu().numpy().astype(np.float64)
        q = batch64.q[b, :n].cpu().numpy().astype(np.float64)
        out.append(Instance(tree, p / p.sum(1, keepdims=True), q / q.sum(1, keepdims=True)))
    return out


def bench(names=None, *, B: int = 64, V: int = 32_000, schemes=("iid(4,4)", "delayed(4,2,2)"),
          dtype=torch.float32, device="cpu", repeats: int = 5, reference_instances: int = 8,
          seed: int = 0, progress=None, max_memory_gb: float = MAX_MEMORY_GB) -> list[BenchRow]:
    """Time every twin (or ``names``) on ``B`` trees of each scheme at vocabulary ``V``.

    Returns one :class:`BenchRow` per (verifier, scheme) that ran; skipped ones carry a note and
    ``twin_s = nan``. ``B``, ``repeats`` and ``reference_instances`` must be >= 1 and ``V`` >= 2
    (InvalidArgument otherwise), ``device`` one that exists here; a batch whose laws ``[B, N, V]``
    would need more than ``max_memory_gb`` is refused before any allocation (BudgetExceeded).
    """
    from . import TWINS
    from .checks import resolve_device

    for what, value, lo in (("B", B, 1), ("V", V, 2), ("repeats", repeats, 1),
                            ("reference_instances", reference_instances, 1)):
        check_count(what, value, lo)
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    schemes = [parse_scheme(s) if isinstance(s, str) else s for s in schemes]
    N = max(1 + s.draws for s in schemes)
    # p and q of the batch in float64 (drafting) and in dtype, plus the drafting model's rows
    Estimate(f"bench batch of B={B} trees x N={N} nodes x V={V}", None, 6 * 8 * B * N * V / 2**30,
             "lower --batch or --vocab").require(max_memory_gb=max_memory_gb)

    names = list(names) if names is not None else registry.names()
    model = HashModel(V, seed, dtype=torch.float64, device=device)
    rows: list[BenchRow] = []
    for scheme in schemes:
        batches: dict[str, tuple[TreeBatch, TreeBatch, list]] = {}
        for name in names:
            entry = registry.get(name)
            if progress:
                progress(f"{name} {scheme.name}")
            use: Scheme = scheme if entry.accepts(scheme) else chain(scheme.depth)
            skip = ""
            if name in _LP_AT_LARGE_V and V > _LP_MAX_V:
                skip = f"not timed at V={V}: {_LP_AT_LARGE_V[name]}"
            elif name not in TWINS:
                skip = "no twin"
            if use.name not in batches:
                gen = torch.Generator(device=device).manual_seed(seed)
                b64 = draft(model, use, B, generator=gen)
                b32 = b64.to(dtype=dtype)
                batches[use.name] = (b64, b32, _instances(b64, reference_instances))
            b64, bt, insts = batches[use.name]
            if skip:
                roof = roofline_seconds(bt, repeats)
                rows.append(BenchRow(name, use.name, B, bt.N, V, str(dtype), str(device), float("nan"), roof, None, skip))
                continue
            tw = TWINS[name]
            gen = torch.Generator(device=device).manual_seed(seed + 1)
            state = tw(bt, generator=gen).state  # warm-up (and, if stateful, the earlier call's state)
            # interleave roofline and twin so both see the same machine load; keep the best of each
            t_twin, roof = float("inf"), float("inf")
            for _ in range(repeats):
                roof = min(roof, roofline_seconds(bt, 1))
                t_twin = min(t_twin, _best(lambda: tw(bt, generator=gen, state=state), 1, device))
            notes = [] if use is scheme else [f"timed on {use.name} (accepts no {scheme.kind} trees)"]
            if entry.stateful:
                notes.append("call with the state of an earlier call")
            t_ref = None
            if name in _SLOW_REFERENCE:
                notes.append(_SLOW_REFERENCE[name])
            else:
                rng = Sampling(seed)
                t0 = time.perf_counter()
                for inst in insts:
                    entry.reference(inst, rng)  # a stateful reference: its first call (state None)
                t_ref = (time.perf_counter() - t0) * B / max(len(insts), 1)
            rows.append(BenchRow(name, use.name, B, bt.N, V, str(dtype), str(device), t_twin, roof, t_ref,
                                 "; ".join(notes)))
    return rows
