"""Batch layout shared by every torch twin: padded trees, laws, uniforms and results.

A batch holds ``B`` draft trees padded to a common node count ``N`` (each tree keeps the node
numbering of its :class:`~specoracle.tree.Tree`, i.e. DFS pre-order; padding nodes come after the
real ones), their target and draft laws ``p, q`` of shape ``[B, N, V]``, and the draw lists
``draws`` ``[B, N, K]`` (child node ids in draw order, ``-1`` padded) that top-down OT verifiers
consume.

Randomness: a twin reads a uniform tensor ``U`` of shape ``[B, n_keys]`` whose column ``j`` serves
the key ``twin.keys(batch)[j]``. For a batch of equal-size trees with a layout that depends only
on the tree size (naive, bv, traversal) this is exactly the reference's
:class:`~specoracle.randomness.Coupled` layout ``entry.keys(tree)``; for mixed trees
:func:`coupled_uniforms` gathers every instance's Coupled uniforms into the twin's columns by key.

Decision rules (identical to :mod:`specoracle.randomness`): Bernoulli is ``u < prob``; a
categorical draw is the first index ``i`` with ``u < cumsum(probs)[i]`` (left-to-right cumulative
sum), and ``u >= sum(probs)`` (rounding) gives the last index with positive probability.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from specoracle.errors import InvalidArgument, InvalidInstance
from specoracle.instance import Instance

__all__ = [
    "TreeBatch",
    "TwinResult",
    "Twin",
    "from_instances",
    "coupled_uniforms",
    "bernoulli",
    "categorical",
    "normalize_or",
    "pos_part_sum",
    "emitted_tokens",
    "gather_rows",
    "stop_law",
    "resolve_dtype",
    "tree_of",
]


def resolve_dtype(dtype) -> torch.dtype:
    """``torch.float32`` / ``torch.float64`` from a dtype or its name."""
    if isinstance(dtype, str):
        table = {"float32": torch.float32, "float64": torch.float64, "float": torch.float32, "double": torch.float64}
        if dtype not in table:
            raise InvalidArgument(f"dtype must be float32 or float64, got {dtype!r}")
        return table[dtype]
    if dtype not in (torch.float32, torch.float64):
        raise InvalidArgument(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


@dataclass(frozen=True)
class TreeBatch:
    """``B`` padded draft trees with their laws.

    Attributes
    ----------
    tokens : LongTensor [B, N]; root and padding ``-1``.
    parents : LongTensor [B, N]; root and padding ``-1``.
    depth : LongTensor [B, N]; root 0, padding ``-1``.
    valid : BoolTensor [B, N]; real nodes.
    draws : LongTensor [B, N, K]; child ids of each node in draw order (with repeats), ``-1`` pad.
    multiplicity : LongTensor [B, N]; draws at the parent that produced the node (root 1, pad 0).
    p, q : Tensor [B, N, V]; target / draft law at every node (padding rows uniform).
    L : int, largest depth in the batch (emitted blocks have at most ``L + 1`` tokens).
    sampling : ``"iid"`` or ``"without_replacement"`` (one kind per batch).
    trunk : LongTensor [B] or None (zeros): depth where i.i.d. branching starts (delayed trees).
    p64, q64 : optional float64 CPU copies of ``p, q`` used by the per-node LP precomputations of
        ``khisti`` / ``ot_optimal`` (so that a float32 twin solves the same LPs as the reference).
    """

    tokens: torch.Tensor
    parents: torch.Tensor
    depth: torch.Tensor
    valid: torch.Tensor
    draws: torch.Tensor
    multiplicity: torch.Tensor
    p: torch.Tensor
    q: torch.Tensor
    L: int
    sampling: str = "iid"
    trunk: torch.Tensor | None = None
    p64: torch.Tensor | None = None
    q64: torch.Tensor | None = None

    @property
    def B(self) -> int:
        """Batch size."""
        return int(self.tokens.shape[0])

    @property
    def N(self) -> int:
        """Padded node count."""
        return int(self.tokens.shape[1])

    @property
    def V(self) -> int:
        """Vocabulary size."""
        return int(self.p.shape[-1])

    @property
    def K(self) -> int:
        """Largest number of draws at one node."""
        return int(self.draws.shape[2])

    @property
    def device(self) -> torch.device:
        return self.p.device

    @property
    def dtype(self) -> torch.dtype:
        return self.p.dtype

    def with_laws(self, p: torch.Tensor, q: torch.Tensor) -> "TreeBatch":
        """Same trees, other laws (e.g. cast to another dtype or device)."""
        dev = p.device
        return TreeBatch(
            self.tokens.to(dev), self.parents.to(dev), self.depth.to(dev),
            self.valid.to(dev), self.draws.to(dev), self.multiplicity.to(dev),
            p, q, self.L, self.sampling, self.trunks.to(dev), self.p64, self.q64,
        )

    @property
    def trunks(self) -> torch.Tensor:
        """``trunk`` per tree, LongTensor [B] (zeros when not given)."""
        if self.trunk is None:
            return torch.zeros(self.B, dtype=torch.long, device=self.device)
        return self.trunk

    def laws64(self) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 CPU laws for CPU precomputations (the originals when the batch carries them)."""
        if self.p64 is not None and self.q64 is not None:
            return self.p64, self.q64
        return self.p.detach().to("cpu", torch.float64), self.q.detach().to("cpu", torch.float64)

    def to(self, device=None, dtype=None) -> "TreeBatch":
        """Move to ``device`` and/or cast the laws to ``dtype``."""
        dtype = self.dtype if dtype is None else resolve_dtype(dtype)
        device = self.device if device is None else torch.device(device)
        return self.with_laws(self.p.to(device=device, dtype=dtype), self.q.to(device=device, dtype=dtype))


@dataclass(frozen=True)
class TwinResult:
    """Output of a batched verifier call.

    Attributes
    ----------
    node : LongTensor [B], accepted node.
    length : LongTensor [B], accepted length ``tau = depth(node)``.
    tokens : LongTensor [B, L+1], emitted block (accepted prefix + correction/bonus), ``-1`` padded.
    token : LongTensor [B], the correction/bonus token.
    """

    node: torch.Tensor
    length: torch.Tensor
    tokens: torch.Tensor
    token: torch.Tensor


@dataclass(frozen=True)
class Twin:
    """A batched torch verifier with its random-key layout.

    ``run(batch, U) -> (node [B], token [B])`` does the work; ``keys(batch)`` lists the keys of the
    columns of ``U`` ``[B, n_keys]``. Call ``twin(batch, uniforms=U)`` for shared randomness or
    ``twin(batch, generator=g)`` for fresh uniforms (``torch.rand`` in the batch dtype).
    ``schemes`` lists the drafting kinds the twin accepts (as in the registry); ``note`` says what
    runs outside torch, if anything.
    """

    name: str
    run: Callable[[TreeBatch, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    keys: Callable[[TreeBatch], list]
    schemes: frozenset
    note: str = ""

    def __call__(self, batch: TreeBatch, *, uniforms: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> TwinResult:
        keys = self.keys(batch)
        if uniforms is None:
            uniforms = torch.rand((batch.B, len(keys)), generator=generator, dtype=batch.dtype, device=batch.device)
        elif tuple(uniforms.shape) != (batch.B, len(keys)):
            raise InvalidArgument(
                f"twin {self.name!r} needs uniforms of shape [B, n_keys] = [{batch.B}, {len(keys)}], "
                f"got {tuple(uniforms.shape)}"
            )
        uniforms = uniforms.to(device=batch.device, dtype=batch.dtype)
        node, token = self.run(batch, uniforms)
        length = batch.depth.gather(1, node[:, None])[:, 0]
        return TwinResult(node, length, emitted_tokens(batch, node, token), token)


# --- building batches --------------------------------------------------------------------------
def from_instances(instances: Sequence[Instance], *, device="cpu", dtype=torch.float32) -> TreeBatch:
    """Pad a list of float instances into a :class:`TreeBatch` (no Python loop at verification time).

    Trees may differ in size; all must share the vocabulary and the sampling kind.
    """
    if not instances:
        raise InvalidArgument("from_instances needs at least one instance")
    dtype = resolve_dtype(dtype)
    V = instances[0].V
    sampling = instances[0].tree.sampling
    for inst in instances:
        if inst.V != V:
            raise InvalidInstance(f"all instances of a batch must share V; got {inst.V} and {V}")
        if inst.rational:
            raise InvalidInstance("torch twins run on float instances; got a rational (Fraction) instance")
        if inst.tree.sampling != sampling:
            raise InvalidInstance("all trees of a batch must share the sampling kind")
    B = len(instances)
    N = max(inst.N for inst in instances)
    K = max(1, max(max((len(d) for d in inst.tree.draws), default=0) for inst in instances))
    trunk = np.array([inst.tree.trunk for inst in instances], dtype=np.int64)
    tokens = np.full((B, N), -1, dtype=np.int64)
    parents = np.full((B, N), -1, dtype=np.int64)
    depth = np.full((B, N), -1, dtype=np.int64)
    mult = np.zeros((B, N), dtype=np.int64)
    draws = np.full((B, N, K), -1, dtype=np.int64)
    p = np.full((B, N, V), 1.0 / V)
    q = np.full((B, N, V), 1.0 / V)
    for b, inst in enumerate(instances):
        t = inst.tree
        n = t.size
        tokens[b, :n] = t.tokens
        parents[b, :n] = t.parents
        depth[b, :n] = t.depths
        mult[b, :n] = t.multiplicity
        for u, d in enumerate(t.draws):
            draws[b, u, : len(d)] = d
        p[b, :n] = inst.p
        q[b, :n] = inst.q
    dev = torch.device(device)
    as_long = lambda a: torch.as_tensor(a, device=dev)  # noqa: E731
    return TreeBatch(
        tokens=as_long(tokens),
        parents=as_long(parents),
        depth=as_long(depth),
        valid=as_long(depth >= 0),
        draws=as_long(draws),
        multiplicity=as_long(mult),
        p=torch.as_tensor(p, dtype=dtype, device=dev),
        q=torch.as_tensor(q, dtype=dtype, device=dev),
        L=int(depth.max()),
        sampling=sampling,
        trunk=as_long(trunk),
        p64=torch.as_tensor(p),
        q64=torch.as_tensor(q),
    )


def coupled_uniforms(
    twin_keys: Sequence[Hashable],
    layouts: Sequence[Sequence[Hashable]],
    uniforms: Sequence[np.ndarray],
    *,
    fill: float = 0.5,
    device="cpu",
    dtype=torch.float64,
) -> torch.Tensor:
    """Gather per-instance Coupled uniforms into the twin's ``[B, n_keys]`` layout, by key.

    ``layouts[b]`` is ``entry.keys(tree_b)`` and ``uniforms[b]`` the uniforms a
    :class:`~specoracle.randomness.Coupled` source reads for it. Twin keys absent from an
    instance's layout (padding nodes) get ``fill``; they are never read for that instance.
    """
    col = {k: j for j, k in enumerate(twin_keys)}
    out = np.full((len(layouts), len(twin_keys)), fill)
    for b, (lay, u) in enumerate(zip(layouts, uniforms)):
        if len(lay) != len(u):
            raise InvalidArgument(f"instance {b}: {len(u)} uniforms for {len(lay)} keys")
        missing = [k for k in lay if k not in col]
        if missing:
            raise InvalidArgument(f"instance {b}: reference keys {missing[:3]} have no column in the twin layout")
        idx = [col[k] for k in lay]
        out[b, idx] = u
    return torch.as_tensor(out, dtype=dtype, device=torch.device(device))


# --- decision primitives (shared by every twin) -------------------------------------------------
def bernoulli(u: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """``u < prob`` elementwise (a probability-0 event never fires)."""
    return u < prob


def normalize_or(weights: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """``weights / weights.sum(-1)`` per row; rows of zero mass take ``fallback`` (zero-mass residual).

    Shapes ``[..., V]``. Mirrors ``reference._common.residual_or_fallback``.
    """
    total = weights.sum(-1, keepdim=True)
    ok = total > 0
    return torch.where(ok, weights / torch.where(ok, total, torch.ones_like(total)), fallback)


_SEQUENTIAL_MAX_V = 4096


def _chunk_width(V: int) -> int:
    """Largest divisor of ``V`` in [256, 2048] (0 if none: use the sequential CDF)."""
    for c in range(2048, 255, -1):
        if V % c == 0:
            return c
    return 0


def categorical(u: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw per row: first ``i`` with ``u < cumsum(probs)[i]``; ``u >= total`` gives the
    last index with positive probability.

    Parameters
    ----------
    u : Tensor [R] of uniforms.
    probs : Tensor [R, V] (rows need not be exactly normalised).

    Returns
    -------
    LongTensor [R].

    For ``V <= 4096`` the CDF is the left-to-right cumulative sum (the reference's rule, same
    rounding as ``np.cumsum``). For larger ``V`` a two-level search is used (chunk sums, then the
    cumulative sum inside the one chunk that holds ``u``): the same rule, with partial sums that can
    differ from the sequential ones by rounding only (a decision can flip only when ``u`` is within
    a few ulps of a CDF boundary); it avoids a sequential pass over ``V`` per row.
    """
    R = probs.shape[0]
    if R == 0:
        return torch.zeros(0, dtype=torch.long, device=probs.device)
    V = probs.shape[-1]
    u = u.to(probs.dtype)
    C = _chunk_width(V) if V > _SEQUENTIAL_MAX_V else 0
    if C == 0:
        c = torch.cumsum(probs, dim=-1)
        idx = torch.searchsorted(c, u[:, None].contiguous(), right=True)[:, 0]
    else:
        nC = V // C
        blocks = probs.reshape(R, nC, C)
        csum = torch.cumsum(blocks.sum(-1), dim=-1)  # [R, nC]
        chunk = torch.searchsorted(csum, u[:, None].contiguous(), right=True)[:, 0].clamp_max(nC - 1)
        base = torch.where(chunk > 0, csum.gather(1, (chunk - 1).clamp_min(0)[:, None])[:, 0], torch.zeros_like(u))
        rows = torch.arange(R, device=probs.device)
        inner = torch.cumsum(blocks[rows, chunk], dim=-1) + base[:, None]
        pos = torch.searchsorted(inner, u[:, None].contiguous(), right=True)[:, 0]
        idx = torch.where(pos < C, chunk * C + pos, torch.full_like(pos, V))
    over = idx >= V
    if bool(over.any()):
        pos = probs[over] > 0
        last = V - 1 - torch.argmax(pos.flip(-1).to(torch.int8), dim=-1)
        idx = idx.clone()
        idx[over] = last
    return idx


def pos_part_sum(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor | None = None, *, chunk_bytes: int = 1 << 22) -> torch.Tensor:
    """``sum_y (w a - b)_+`` per row for ``a, b`` of shape [R, V] (``w`` [R] or None for 1).

    Computed in row chunks through one small reused buffer (no ``[R, V]`` temporaries); the
    elementwise rounding is the reference's (``w * a`` then ``- b``).
    """
    R, V = a.shape
    out = torch.empty(R, dtype=a.dtype, device=a.device)
    step = max(1, chunk_bytes // max(1, V * a.element_size()))
    buf = torch.empty((min(step, R), V), dtype=a.dtype, device=a.device)
    for s in range(0, R, step):
        e = min(R, s + step)
        t = buf[: e - s]
        if w is None:
            torch.sub(a[s:e], b[s:e], out=t)
        else:
            torch.mul(a[s:e], w[s:e, None], out=t)
            t.sub_(b[s:e])
        t.clamp_min_(0)
        torch.sum(t, dim=-1, out=out[s:e])
    return out


def stop_law(p: torch.Tensor, q: torch.Tensor, node: torch.Tensor, bonus: torch.Tensor,
             w: torch.Tensor | None = None) -> torch.Tensor:
    """Law of the token emitted at ``node`` [B]: the bonus ``p[node]`` where ``bonus`` [B] is True,
    else ``norm((w p[node] - q[node])_+)`` (``w`` [B] or None for 1; zero mass falls back to ``p``).

    ``p, q`` [B, N, V]; two row gathers, everything else in place (large-``V`` friendly).
    """
    rows = torch.arange(p.shape[0], device=p.device)
    t = p[rows, node]
    if w is not None:
        t.mul_(w[:, None])
    t.sub_(q[rows, node]).clamp_min_(0)
    total = t.sum(-1)
    ok = total > 0
    t.div_(torch.where(ok, total, torch.ones_like(total))[:, None])
    fix = bonus | ~ok
    if bool(fix.any()):
        t[fix] = p[rows[fix], node[fix]]
    return t


def gather_rows(t: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
    """``t[b, node[b]]`` for ``t`` of shape [B, N, V] and ``node`` [B] -> [B, V]."""
    return t[torch.arange(t.shape[0], device=t.device), node]


def emitted_tokens(batch: TreeBatch, node: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """Emitted blocks ``prefix(node) + (token,)`` as LongTensor [B, L+1], padded with ``-1``.

    One loop over depth (walking parents), vectorised over the batch.
    """
    B, L = batch.B, batch.L
    out = torch.full((B, L + 1), -1, dtype=torch.long, device=batch.device)
    tau = batch.depth.gather(1, node[:, None])[:, 0]
    rows = torch.arange(B, device=batch.device)
    out[rows, tau] = token
    cur = node.clone()
    for _ in range(L):
        d = batch.depth.gather(1, cur[:, None])[:, 0]
        live = d > 0
        if not bool(live.any()):
            break
        tok = batch.tokens.gather(1, cur[:, None])[:, 0]
        out[rows[live], d[live] - 1] = tok[live]
        cur = torch.where(live, batch.parents.gather(1, cur[:, None])[:, 0].clamp_min(0), cur)
    return out


def tree_of(batch: TreeBatch, b: int):
    """The :class:`~specoracle.tree.Tree` of batch row ``b`` (real nodes only)."""
    from specoracle.tree import Tree

    n = int(batch.valid[b].sum())
    draws = tuple(tuple(int(c) for c in batch.draws[b, u] if c >= 0) for u in range(n))
    return Tree(
        tokens=tuple(int(t) for t in batch.tokens[b, :n]),
        parents=tuple(int(t) for t in batch.parents[b, :n]),
        draws=draws,
        sampling=batch.sampling,
        trunk=int(batch.trunks[b]),
    )
