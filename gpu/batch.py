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
from functools import cached_property

import numpy as np
import torch

from specoracle import registry
from specoracle.errors import InvalidArgument, InvalidInstance
from specoracle.instance import DEFAULT_ATOL, Instance, check_drafted_tokens, probability_faults, raise_row_fault
from specoracle.randomness import check_uniforms
from specoracle.tree import check_sampling, check_tree_arrays

__all__ = [
    "TreeBatch",
    "TwinResult",
    "Twin",
    "from_instances",
    "from_tensors",
    "node_depths",
    "coupled_uniforms",
    "bernoulli",
    "categorical",
    "normalize_or",
    "pos_part_sum",
    "emitted_tokens",
    "gather_rows",
    "rows_at",
    "stop_token",
    "residual_chunk_sums",
    "residual_block",
    "vocab_chunk",
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

    def __post_init__(self) -> None:
        # the row kernels address p, q through their flat [B N, V] views
        for name in ("p", "q"):
            t = getattr(self, name)
            if not t.is_contiguous():
                object.__setattr__(self, name, t.contiguous())

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

    @cached_property
    def kinds(self) -> frozenset[str]:
        """Drafting kinds (``specoracle.drafting.KINDS``) of the trees in the batch.

        A without-replacement batch is ``without_replacement``; otherwise a tree with ``trunk > 0``
        is ``delayed``, a tree whose nodes have at most one distinct child is a ``chain``, any
        other tree ``iid``. A twin runs only if its registry entry accepts every kind present.
        """
        if self.sampling == "without_replacement":
            return frozenset({"without_replacement"})
        inner = self.valid.clone()
        inner[:, 0] = False
        width = torch.zeros_like(self.parents).scatter_add_(1, self.parents.clamp_min(0), inner.long())
        branches = width.amax(1) > 1
        delayed = self.trunks > 0
        found = {"delayed": delayed, "iid": ~delayed & branches, "chain": ~delayed & ~branches}
        return frozenset(k for k, m in found.items() if bool(m.any()))

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
    state : what a stateful twin hands to its next call (``None`` for stateless twins).
    """

    node: torch.Tensor
    length: torch.Tensor
    tokens: torch.Tensor
    token: torch.Tensor
    state: object = None


@dataclass(frozen=True)
class Twin:
    """A batched torch verifier with its random-key layout.

    ``run(batch, U) -> (node [B], token [B])`` does the work; ``keys(batch)`` lists the keys of the
    columns of ``U`` ``[B, n_keys]``. Call ``twin(batch, uniforms=U)`` for shared randomness or
    ``twin(batch, generator=g)`` for fresh uniforms (``torch.rand`` in the batch dtype). ``name``
    is the registry name: a call on a batch holding a drafting kind (:attr:`TreeBatch.kinds`) that
    the registry entry does not accept raises its :meth:`~specoracle.registry.Entry.require` error,
    and given uniforms outside [0, 1) raise (:func:`~specoracle.randomness.check_uniforms`).
    ``note`` says what runs outside torch, if anything. A ``stateful`` twin (as its reference) runs
    ``run(batch, U, state) -> (node, token, state)``: pass ``state=None`` at the first call of every
    sequence, then ``result.state``.
    """

    name: str
    run: Callable[..., tuple]
    keys: Callable[[TreeBatch], list]
    note: str = ""
    stateful: bool = False

    @property
    def schemes(self) -> frozenset[str]:
        """Drafting kinds the twin accepts: its registry entry's."""
        return registry.get(self.name).schemes

    def __call__(self, batch: TreeBatch, *, uniforms: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, state=None) -> TwinResult:
        entry = registry.get(self.name)
        for kind in sorted(batch.kinds):
            entry.require(kind)
        keys = self.keys(batch)
        if uniforms is None:
            uniforms = torch.rand((batch.B, len(keys)), generator=generator, dtype=batch.dtype, device=batch.device)
        elif tuple(uniforms.shape) != (batch.B, len(keys)):
            raise InvalidArgument(
                f"twin {self.name!r} needs uniforms of shape [B, n_keys] = [{batch.B}, {len(keys)}], "
                f"got {tuple(uniforms.shape)}"
            )
        else:
            check_uniforms(uniforms, f"uniforms of twin {self.name!r}")
        uniforms = uniforms.to(device=batch.device, dtype=batch.dtype)
        if self.stateful:
            node, token, state = self.run(batch, uniforms, state)
        elif state is not None:
            raise InvalidArgument(f"twin {self.name!r} is stateless; got a state")
        else:
            node, token = self.run(batch, uniforms)
        length = batch.depth.gather(1, node[:, None])[:, 0]
        return TwinResult(node, length, emitted_tokens(batch, node, token), token, state)


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


def from_tensors(tokens: torch.Tensor, parents: torch.Tensor, p: torch.Tensor, q: torch.Tensor, *,
                 multiplicity: torch.Tensor | None = None, draws: torch.Tensor | None = None,
                 sampling: str = "iid", trunk: torch.Tensor | None = None) -> TreeBatch:
    """A batch from the tensors a serving engine holds (validated; no Python loop over the batch).

    Parameters
    ----------
    tokens : LongTensor [B, N], token of every node (root and padding entries are ignored).
    parents : LongTensor [N] (one topology for the whole batch) or [B, N]; root ``-1`` at node 0,
        real nodes numbered in DFS pre-order, padding nodes (parent ``-1``) after them.
    p, q : Tensor [B, N, V], target / draft law at every node (float32 or float64, same dtype and
        device; rows of real nodes are probability vectors, padding rows are replaced by uniform).
    multiplicity : LongTensor [N] or [B, N], draws at the parent that produced each node (default 1;
        ``>= 1`` on real non-root nodes, 1 without replacement).
    draws : LongTensor [B, N, K], child ids of every node in draw order, ``-1`` padded (default: each
        node's children in id order, each repeated ``multiplicity`` times). Order-sensitive
        verifiers (the top-down OT family) need the true draw order for shared-randomness parity.
    sampling : ``"iid"`` or ``"without_replacement"``; trunk : LongTensor [B] (default 0), depth
        where i.i.d. branching starts (delayed trees).
    """
    if p.dim() != 3 or p.shape != q.shape:
        raise InvalidArgument(f"p and q must both have shape [B, N, V]; got {tuple(p.shape)} and {tuple(q.shape)}")
    dtype = resolve_dtype(p.dtype)
    if q.dtype != dtype or q.device != p.device:
        raise InvalidArgument("p and q must share dtype and device")
    B, N, V = p.shape
    for what, n in (("B (trees)", B), ("N (nodes)", N), ("V (vocabulary)", V)):
        if n < 1:
            raise InvalidInstance(f"from_tensors needs {what} >= 1; got p of shape {tuple(p.shape)}")
    dev = p.device
    check_sampling(sampling)
    tokens = _long(tokens, "tokens", (B, N), dev)
    parents = _long(parents, "parents", (B, N), dev)
    mult = torch.ones((B, N), dtype=torch.long, device=dev) if multiplicity is None else \
        _long(multiplicity, "multiplicity", (B, N), dev)
    trunk_t = torch.zeros(B, dtype=torch.long, device=dev) if trunk is None else _long(trunk, "trunk", (B,), dev)
    node = torch.arange(N, device=dev)
    if bool((parents[:, 0] != -1).any()):
        raise InvalidInstance("node 0 must be the root (parent -1)")
    valid = (parents >= 0) | (node == 0)
    inner = valid & (node > 0)
    if draws is None:
        ok = inner & (parents < node)  # malformed parents are reported below, by the shared rules
        draws = _grouped_draws(torch.where(ok, parents, 0), mult.clamp_min(0), ok)
    else:
        draws = _long(draws, "draws", None, dev)
        if draws.dim() != 3 or draws.shape[:2] != (B, N):
            raise InvalidArgument(f"draws must have shape [B, N, K] = [{B}, {N}, K], got {tuple(draws.shape)}")
    # the rules of Tree and Instance, shared (small [B, N] structure arrays go to the host)
    host = lambda t: t.cpu().numpy()  # noqa: E731
    check_tree_arrays(host(tokens), host(parents), host(draws), host(mult), host(trunk_t), sampling, batched=True)
    atol = 1e-3 if dtype == torch.float32 else DEFAULT_ATOL
    for name, t in (("p", p), ("q", q)):
        nonfinite, negative, off, _ = probability_faults(t, atol)
        bad = (nonfinite | negative | off) & valid
        if bool(bad.any()):
            b, i = (int(x) for x in bad.nonzero()[0])
            raise_row_fault(f"{name}[tree {b}, node {i}]", host(t[b, i]), atol)
    tok_in = torch.where(inner, tokens, 0).clamp(0, V - 1)
    par_in = torch.where(inner, parents, 0)
    check_drafted_tokens(host(tokens), host(parents), host(valid), V,
                         lambda: host(torch.where(inner, q[torch.arange(B, device=dev)[:, None], par_in, tok_in], 1)),
                         batched=True)
    depth = node_depths(parents, valid)
    uniform = torch.full((), 1.0 / V, dtype=dtype, device=dev)
    p = torch.where(valid[..., None], p, uniform)
    q = torch.where(valid[..., None], q, uniform)
    mult = torch.where(inner, mult, torch.where(node == 0, 1, 0))
    return TreeBatch(tokens.masked_fill(~inner, -1), parents.masked_fill(~valid, -1), depth, valid,
                     draws, mult, p, q, int(depth.max()), sampling, trunk_t)


def node_depths(parents: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Depth of every node [B, N] (root 0, padding -1) from ``parents`` [B, N] numbered so that
    parents come first."""
    B, N = parents.shape
    depth = torch.full_like(parents, -1)
    depth[:, 0] = 0
    for i in range(1, N):
        par = parents[:, i].clamp_min(0)
        depth[:, i] = torch.where(valid[:, i], depth.gather(1, par[:, None])[:, 0] + 1, depth[:, i])
    return depth


def _long(t, name: str, shape, dev) -> torch.Tensor:
    """``t`` as a LongTensor on ``dev``, broadcast from ``shape[1:]`` to ``shape`` when given."""
    t = torch.as_tensor(t, device=dev)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise InvalidArgument(f"{name} must be an integer tensor, got {t.dtype}")
    t = t.long()
    if shape is None:
        return t
    if tuple(t.shape) == tuple(shape[1:]):
        return t.expand(shape).contiguous()
    if tuple(t.shape) != tuple(shape):
        raise InvalidArgument(f"{name} must have shape {list(shape)} or {list(shape[1:])}, got {list(t.shape)}")
    return t


def _grouped_draws(parents: torch.Tensor, mult: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """Draw lists [B, N, K]: each node's children in id order, each ``multiplicity`` times."""
    B, N = parents.shape
    dev = parents.device
    m = torch.where(inner, mult, 0)
    par = parents.clamp_min(0)
    width = torch.zeros((B, N), dtype=torch.long, device=dev).scatter_add_(1, par, m)
    K = max(int(width.max()), 1)
    draws = torch.full((B, N, K), -1, dtype=torch.long, device=dev)
    filled = torch.zeros((B, N), dtype=torch.long, device=dev)
    b = torch.arange(B, device=dev)
    for c in range(1, N):
        u = par[:, c]
        for r in range(int(m[:, c].max(0).values) if B else 0):
            put = m[:, c] > r
            slot = filled[b, u]
            draws[b[put], u[put], slot[put]] = c
            filled[b[put], u[put]] += 1
    return draws


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
    instance's layout (padding nodes) get ``fill``; they are never read for that instance. A
    float64 uniform that rounds to 1.0 in a narrower ``dtype`` becomes the largest value below 1
    there (uniforms live in [0, 1); the reference saw a value below 1 too).
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
    U = torch.as_tensor(out, dtype=dtype, device=torch.device(device))
    below_one = torch.nextafter(torch.ones((), dtype=U.dtype, device=U.device), torch.zeros((), dtype=U.dtype, device=U.device))
    return torch.minimum(U, below_one)


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


def vocab_chunk(V: int) -> int:
    """Chunk width ``C`` of the two-level CDF search at vocabulary ``V``: the largest divisor of
    ``V`` in [256, 2048] when ``V > 4096``; 0 (the sequential CDF) otherwise or if none divides."""
    if V <= _SEQUENTIAL_MAX_V:
        return 0
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
    R, V = probs.shape
    if R == 0:
        return torch.zeros(0, dtype=torch.long, device=probs.device)
    u = u.to(probs.dtype)
    C = vocab_chunk(V)
    if C:
        nC = V // C
        rows = torch.arange(R, device=probs.device)
        flat = probs.reshape(R * nC, C)
        return _two_level_search(u, flat.sum(-1).view(R, nC), lambda chunk: flat.index_select(0, rows * nC + chunk))
    c = torch.cumsum(probs, dim=-1)
    idx = torch.searchsorted(c, u[:, None].contiguous(), right=True)[:, 0]
    over = idx >= V
    if bool(over.any()):
        idx = idx.clone()
        idx[over] = _last_positive(probs[over])
    return idx


def _two_level_search(u: torch.Tensor, chunk_sums: torch.Tensor, block: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """First ``i`` with ``u < cumsum(w)[i]`` for rows ``w`` of ``V = nC C`` non-negative weights,
    given their chunk sums [R, nC] and ``block(chunk)`` -> the ``[R, C]`` entries of chunk
    ``chunk`` [R] of each row (``u`` on the weights' scale). Rounding spills (``u`` at or past the
    chunk's or the row's total) give the last positive entry of that chunk or of the last chunk of
    positive mass, never an entry of weight 0."""
    nC = chunk_sums.shape[1]
    csum = torch.cumsum(chunk_sums, dim=-1)  # [R, nC]
    chunk = torch.searchsorted(csum, u[:, None].contiguous(), right=True)[:, 0]
    over = chunk >= nC
    if bool(over.any()):
        chunk = torch.where(over, _last_positive(chunk_sums), chunk)
    base = torch.where(chunk > 0, csum.gather(1, (chunk - 1).clamp_min(0)[:, None])[:, 0], torch.zeros_like(u))
    w = block(chunk)  # [R, C]
    C = w.shape[1]
    inner = torch.cumsum(w, dim=-1) + base[:, None]
    pos = torch.searchsorted(inner, u[:, None].contiguous(), right=True)[:, 0]
    spill = (pos >= C) | over
    if bool(spill.any()):
        pos = torch.where(spill, _last_positive(w), pos)
    return chunk * C + pos


def _last_positive(rows: torch.Tensor) -> torch.Tensor:
    """Index of the last positive entry of each row of ``rows`` [R, V] -> [R]."""
    V = rows.shape[-1]
    return V - 1 - torch.argmax((rows > 0).flip(-1).to(torch.int8), dim=-1)


def pos_part_sum(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor | None = None, *, chunk_bytes: int | None = None) -> torch.Tensor:
    """``sum_y (w a - b)_+`` per row for ``a, b`` of shape [R, V] (``w`` [R] or None for 1).

    Three passes: ``t = b - w a`` (one fused ``addcmul``, which may round ``w a - b`` once instead
    of twice), ``min(t, 0)``, and ``-sum``. On CPU they run in row chunks of about ``chunk_bytes``
    (default 1 MiB, a core's L2) through one reused buffer, so only ``a`` and ``b`` stream from
    memory; on CUDA in one chunk. ``S`` differs from the reference's by rounding only and is used for
    stop probabilities, never for an emitted law.
    """
    R, V = a.shape
    out = torch.empty(R, dtype=a.dtype, device=a.device)
    step = _rows_per_chunk(a, chunk_bytes)
    buf = torch.empty((min(step, R), V), dtype=a.dtype, device=a.device)
    for s in range(0, R, step):
        e = min(R, s + step)
        t = buf[: e - s]
        if w is None:
            torch.sub(b[s:e], a[s:e], out=t)
        else:
            torch.addcmul(b[s:e], a[s:e], w[s:e, None], value=-1, out=t)
        t.clamp_max_(0)
        torch.sum(t, dim=-1, out=out[s:e])
    return out.neg_()


def _rows_per_chunk(t: torch.Tensor, chunk_bytes: int | None) -> int:
    """Rows of ``t`` [..., V] per streamed chunk: about 1 MiB (a core's L2) on CPU, all on CUDA."""
    if chunk_bytes is None:
        chunk_bytes = 1 << 20 if t.device.type == "cpu" else 1 << 62
    return max(1, chunk_bytes // max(1, t.shape[-1] * t.element_size()))


def residual_chunk_sums(p: torch.Tensor, q: torch.Tensor | None, b: torch.Tensor, n: torch.Tensor | int,
                        w: torch.Tensor | None = None, *, C: int, chunk_bytes: int | None = None) -> torch.Tensor:
    """Chunk sums of the residual rows ``r_j = (w_j p[b_j, n_j] - q[b_j, n_j])_+`` (``q`` None:
    ``r_j = p[b_j, n_j]``; ``w`` None: 1) -> [R, V / C]; ``C = V`` gives the row sums ``S_j``.

    ``p, q`` [B, N, V] contiguous, ``b`` [R], ``n`` [R] or one node for every row. Rows stream in
    chunks of about ``chunk_bytes`` (1 MiB on CPU) through a reused buffer, so that ``* w``,
    ``- q``, ``max(., 0)`` and the chunk sums run in cache and only ``p, q`` come from memory:
    straight from the strided ``p[:, n]`` when one node serves at least half the batch (reading
    the other trees' rows costs less than gathering), else by ``index_select`` of the rows.
    Elementwise ``r = -min(q - w p, 0)`` with ``q - w p`` from one fused ``addcmul`` (one rounding
    of the exact value, so ``r > 0`` only where ``w p > q`` exactly; the reference rounds ``w p``
    first), exactly as :func:`residual_block` recomputes it.
    """
    B, N, V = p.shape
    R = len(b)
    strided = isinstance(n, int) and 2 * R >= B
    if strided:
        if R < B and w is not None:
            w = torch.ones(B, dtype=p.dtype, device=p.device).index_copy_(0, b, w)
        rows_p, rows_q, flat, R_run = p[:, n], None if q is None else q[:, n], None, B
    else:
        flat = b * N + n
        rows_p, rows_q, R_run = p.view(B * N, V), None if q is None else q.view(B * N, V), R
    out = torch.empty((R_run, V // C), dtype=p.dtype, device=p.device)
    step = _rows_per_chunk(p, chunk_bytes)
    buf = torch.empty((min(step, R_run), V), dtype=p.dtype, device=p.device)
    qbuf = torch.empty_like(buf) if q is not None and not strided else None
    for s in range(0, R_run, step):
        e = min(R_run, s + step)
        t = buf[: e - s]
        if strided:
            a_s = rows_p[s:e]
            if q is None:
                t = a_s
            elif w is None:
                torch.sub(rows_q[s:e], a_s, out=t)
            else:
                torch.addcmul(rows_q[s:e], a_s, w[s:e, None], value=-1, out=t)
        else:
            torch.index_select(rows_p, 0, flat[s:e], out=t)
            if q is not None:
                qt = torch.index_select(rows_q, 0, flat[s:e], out=qbuf[: e - s])
                if w is None:
                    torch.sub(qt, t, out=t)
                else:
                    torch.addcmul(qt, t, w[s:e, None], value=-1, out=t)
        if q is not None:
            t.clamp_max_(0)  # t = q - w p: the residual is -min(t, 0)
        torch.sum(t.view(e - s, V // C, C), dim=-1, out=out[s:e])
    if q is not None:
        out.neg_()
    return out.index_select(0, b) if strided and R < B else out


def residual_block(p: torch.Tensor, q: torch.Tensor | None, b: torch.Tensor, n: torch.Tensor,
                   w: torch.Tensor | None, chunk: torch.Tensor, C: int) -> torch.Tensor:
    """Entries ``chunk_j C .. chunk_j C + C - 1`` of the residual rows of :func:`residual_chunk_sums`
    (the same elementwise arithmetic, so the entries add up to the chunk sums) -> [R, C]."""
    B, N, V = p.shape
    idx = (b * N + n) * (V // C) + chunk
    t = p.view(-1, C).index_select(0, idx)
    if q is None:
        return t
    qt = q.view(-1, C).index_select(0, idx)
    if w is None:
        return torch.sub(qt, t, out=t).clamp_max_(0).neg_()
    return torch.addcmul(qt, t, w[:, None], value=-1, out=t).clamp_max_(0).neg_()


def stop_token(u: torch.Tensor, p: torch.Tensor, q: torch.Tensor, node: torch.Tensor, bonus: torch.Tensor,
               w: torch.Tensor | None = None, *, sums: torch.Tensor | None = None,
               have: torch.Tensor | None = None) -> torch.Tensor:
    """Token emitted at ``node`` [B] with uniforms ``u`` [B]: drawn from the bonus law ``p[node]``
    where ``bonus`` [B] is True, else from ``norm((w p[node] - q[node])_+)`` (``w`` [B] or None for
    1; zero mass falls back to ``p[node]``).

    ``p, q`` [B, N, V]. For ``V <= 4096`` the law rows are built, normalised and drawn with
    :func:`categorical` (the reference's rounding). For larger ``V`` no ``[B, V]`` law is built: the
    chunk sums of each row (:func:`residual_chunk_sums`; rows where ``have`` [B] is True take theirs
    from ``sums`` [B, V / C], e.g. computed during a scan) drive the two-level search with ``u``
    scaled by the row total, and only the chunk holding ``u`` is recomputed (:func:`residual_block`).
    """
    B, N, V = p.shape
    rows = torch.arange(B, device=p.device)
    C = vocab_chunk(V)
    if C == 0:
        t = rows_at(p, rows, node)
        res = (~bonus).nonzero()[:, 0]
        pr = t.index_select(0, res)
        d = pr * w[res, None] if w is not None else pr.clone()
        d.sub_(rows_at(q, res, node[res])).clamp_min_(0)
        t.index_copy_(0, res, normalize_or(d, pr))
        return categorical(u.to(p.dtype), t)
    sums = torch.empty((B, V // C), dtype=p.dtype, device=p.device) if sums is None else sums
    need = torch.ones_like(bonus) if have is None else ~have
    use_p = bonus.clone()
    for sel, q_sel, w_sel in ((need & bonus, None, None), (need & ~bonus, q, w)):
        r = sel.nonzero()[:, 0]
        if len(r):
            sums[r] = residual_chunk_sums(p, q_sel, r, node[r], None if w_sel is None else w_sel[r], C=C)
    total = sums.sum(-1)
    zero = (total <= 0).nonzero()[:, 0]
    if len(zero):  # a zero-mass residual falls back to p
        sums[zero] = residual_chunk_sums(p, None, zero, node[zero], C=C)
        use_p[zero] = True
        total = sums.sum(-1)

    def block(chunk):
        t_res = residual_block(p, q, rows, node, w, chunk, C)
        if not bool(use_p.any()):
            return t_res
        return torch.where(use_p[:, None], residual_block(p, None, rows, node, None, chunk, C), t_res)

    return _two_level_search(u.to(p.dtype) * total, sums, block)


def rows_at(t: torch.Tensor, b: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
    """``t[b[j], node[j]]`` for ``t`` [B, N, V] and index vectors ``b, node`` [R] -> a new [R, V].

    Row copies by ``index_select`` over the flattened ``[B N, V]`` view (several times faster than
    advanced indexing on CPU).
    """
    B, N, V = t.shape
    if not t.is_contiguous():
        return t[b, node]
    return t.view(B * N, V).index_select(0, b * N + node)


def gather_rows(t: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
    """``t[b, node[b]]`` for ``t`` of shape [B, N, V] and ``node`` [B] -> [B, V]."""
    return rows_at(t, torch.arange(t.shape[0], device=t.device), node)


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
