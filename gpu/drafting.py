"""Batched torch drafting (chain, i.i.d., delayed, without replacement) from batched toy models.

A *batched model* maps a batch of prefixes to next-token laws: ``model.laws(prefix) -> (p, q)``
with ``prefix`` a LongTensor ``[R, d]`` (entries ``-1`` are padding and skipped, so prefixes of
different lengths share one tensor) and ``p, q`` of shape ``[R, V]``. Two are provided:

- :class:`TableModel`: every prefix up to a depth of a :class:`~specoracle.models.ToyModel`
  tabulated once (``sum_d V^d`` rows; small ``V``); the twin of the reference model.
- :class:`HashModel`: a synthetic large-vocabulary pair (``V = 32000`` for benchmarks) whose
  logits are an integer hash of (seed, prefix, token), so any prefix can be evaluated on device.

:func:`draft` grows ``B`` trees at once, consuming the uniforms of the reference drafting keys
``("draft", i)`` (:meth:`specoracle.drafting.Scheme.draft`): a shared uniform tensor gives the same
trees as the reference, sample for sample. Duplicate prefixes of i.i.d. paths are merged and the
nodes numbered in DFS pre-order with children in first-appearance order, exactly like
:class:`~specoracle.tree.TreeBuilder`, so node ids, parents and draw lists agree with the
reference :class:`~specoracle.tree.Tree`. Loops run over draft positions only.
"""
from __future__ import annotations


import numpy as np
import torch

from specoracle.drafting import Scheme
from specoracle.errors import InvalidArgument, InvalidInstance
from specoracle.models import ToyModel

from .batch import TreeBatch, categorical, node_depths, resolve_dtype

__all__ = ["TableModel", "HashModel", "draft", "draft_keys", "node_prefixes", "laws_at_nodes", "extend_blocks"]


MAX_TABLE_ROWS = 1_000_000


class TableModel:
    """A toy model tabulated for every prefix of length ``<= depth``.

    Parameters
    ----------
    model : ToyModel (float).
    depth : largest prefix length that will be queried.

    Row of prefix ``(t_1..t_d)``: ``offset[d] + sum_i t_i V^(d-i)`` with ``offset[d] = sum_{e<d} V^e``.
    """

    def __init__(self, model: ToyModel, depth: int, *, device="cpu", dtype=torch.float64) -> None:
        if model.rational:
            raise InvalidInstance("TableModel needs a float model (torch has no Fraction tensors)")
        V = model.V
        rows = sum(V**d for d in range(depth + 1))
        if rows > MAX_TABLE_ROWS:
            raise InvalidArgument(
                f"TableModel({model.name}, depth={depth}) would tabulate {rows} prefixes (limit "
                f"{MAX_TABLE_ROWS}); use a smaller depth or V, or a model evaluated on device (HashModel)"
            )
        rows_p, rows_q = [], []
        prefixes: list[tuple] = [()]
        self.offset = []
        total = 0
        for d in range(depth + 1):
            self.offset.append(total)
            rows_p.extend(model.p(u) for u in prefixes)
            rows_q.extend(model.q(u) for u in prefixes)
            total += len(prefixes)
            prefixes = [u + (t,) for u in prefixes for t in range(V)]
        dtype = resolve_dtype(dtype)
        self.V = V
        self.depth = depth
        self.name = model.name
        self.p_table = torch.as_tensor(np.stack(rows_p), dtype=dtype, device=device)
        self.q_table = torch.as_tensor(np.stack(rows_q), dtype=dtype, device=device)

    @property
    def device(self) -> torch.device:
        return self.p_table.device

    @property
    def dtype(self) -> torch.dtype:
        return self.p_table.dtype

    def index(self, prefix: torch.Tensor) -> torch.Tensor:
        """Table row of each prefix, ``prefix`` LongTensor [R, d] -> [R]; entries ``-1`` are
        skipped (padding of contexts of different lengths)."""
        known = prefix >= 0
        d = known.sum(1)
        if prefix.shape[0] and int(d.max()) > self.depth:
            raise InvalidArgument(f"TableModel was built for prefixes up to length {self.depth}, got {int(d.max())}")
        loc = torch.zeros(prefix.shape[0], dtype=torch.long, device=prefix.device)
        for i in range(prefix.shape[1]):
            loc = torch.where(known[:, i], loc * self.V + prefix[:, i], loc)
        return loc + torch.as_tensor(self.offset, device=prefix.device)[d]

    def laws(self, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(p, q)`` after each prefix, two [R, V] tensors."""
        idx = self.index(prefix)
        return self.p_table[idx], self.q_table[idx]


class HashModel:
    """Synthetic target/draft pair over a large vocabulary, evaluated on device from a hash.

    ``p_u = softmax(g(seed, u) / temperature)``, ``q_u = softmax((g(seed, u) + divergence *
    g(seed + 1, u)) / temperature)`` with ``g`` standard Gumbel noise derived from a 64-bit integer
    hash of ``(seed, prefix, token)``: deterministic in the prefix, no table.
    """

    def __init__(self, V: int, seed: int = 0, *, temperature: float = 1.0, divergence: float = 1.0,
                 device="cpu", dtype=torch.float32) -> None:
        self.V = int(V)
        self.seed = int(seed)
        self.temperature = float(temperature)
        self.divergence = float(divergence)
        self._device = torch.device(device)
        self._dtype = resolve_dtype(dtype)
        self.name = f"hash(V={V},seed={seed})"

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @staticmethod
    def _mix(x: torch.Tensor) -> torch.Tensor:
        # splitmix64-style finaliser on int64 (wrap-around arithmetic)
        x = x ^ (x >> 31)
        x = x * 0x7FB5D329728EA185
        x = x ^ (x >> 27)
        x = x * 0x1C69B3F74AC4AE35
        return x ^ (x >> 33)

    def _gumbel(self, prefix: torch.Tensor, salt: int) -> torch.Tensor:
        h = torch.full((prefix.shape[0],), self.seed * 1000003 + salt, dtype=torch.long, device=prefix.device)
        for i in range(prefix.shape[1]):  # -1 entries (padding) are skipped
            t = prefix[:, i]
            h = torch.where(t >= 0, self._mix(h * 31 + t + 7), h)
        tok = torch.arange(self.V, device=prefix.device, dtype=torch.long)
        bits = self._mix(h[:, None] * 0x9E3779B97F4A7C1 + tok[None]) & ((1 << 53) - 1)
        u = (bits.to(torch.float64) + 0.5) / float(1 << 53)
        return (-torch.log(-torch.log(u))).to(self._dtype)

    def laws(self, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(p, q)`` after each prefix, two [R, V] tensors."""
        g = self._gumbel(prefix, 0)
        p = torch.softmax(g / self.temperature, dim=-1)
        q = torch.softmax((g + self.divergence * self._gumbel(prefix, 1)) / self.temperature, dim=-1)
        return p, q


def draft_keys(scheme: Scheme) -> list:
    """Keys ``("draft", i)`` consumed by ``scheme.draft`` on a model with full support."""
    if scheme.kind == "without_replacement":
        n, width = 0, 1
        for b in scheme.branching:
            width *= b
            n += width
        return [("draft", i) for i in range(n)]
    return [("draft", i) for i in range(scheme.trunk + scheme.k * scheme.branch)]


def draft(model, scheme: Scheme, B: int, *, generator: torch.Generator | None = None,
          uniforms: torch.Tensor | None = None, dtype=None, context: torch.Tensor | None = None) -> TreeBatch:
    """Draft ``B`` trees of ``scheme`` from a batched model; laws ``p, q`` at every node attached.

    Parameters
    ----------
    model : :class:`TableModel` or :class:`HashModel` (anything with ``laws``, ``V``, ``device``).
    scheme : chain / iid / delayed / without_replacement scheme.
    B : batch size.
    generator : torch.Generator for fresh uniforms, or
    uniforms : Tensor [B, len(draft_keys(scheme))] shared with the reference drafting.
    dtype : dtype of ``p, q`` in the result (default: the model's).
    context : LongTensor [B, C], tokens generated before each tree (``-1`` entries are padding);
        the tree of row ``b`` is drafted from the model shifted by ``context[b]``.

    Returns
    -------
    TreeBatch with ``N = 1 + trunk + k * branch`` padded nodes (without replacement: the full
    topology).
    """
    keys = draft_keys(scheme)
    dev = model.device
    if uniforms is None:
        uniforms = torch.rand((B, len(keys)), generator=generator, dtype=torch.float64, device=dev)
    elif tuple(uniforms.shape) != (B, len(keys)):
        raise InvalidArgument(f"draft needs uniforms of shape [{B}, {len(keys)}], got {tuple(uniforms.shape)}")
    uniforms = uniforms.to(dev)
    if context is None:
        context = torch.full((B, 0), -1, dtype=torch.long, device=dev)
    elif context.dim() != 2 or context.shape[0] != B:
        raise InvalidArgument(f"draft needs a context of shape [{B}, C], got {tuple(context.shape)}")
    context = context.to(dev)
    if scheme.kind == "without_replacement":
        tokens, parents, draws = _draft_wor(model, scheme, B, uniforms, context)
        sampling = "without_replacement"
    else:
        tokens, parents, draws = _draft_iid(model, scheme, B, uniforms, context)
        sampling = "iid"
    valid = parents >= 0
    valid[:, 0] = True
    depth = node_depths(parents, valid)
    mult = torch.zeros_like(tokens)
    mult[:, 0] = 1
    flat = draws.clamp_min(0)
    mult.scatter_add_(1, flat.reshape(B, -1), (draws >= 0).to(torch.long).reshape(B, -1))
    prefix = node_prefixes(tokens, parents, depth)
    p, q = laws_at_nodes(model, prefix, depth, valid, context)
    if dtype is not None:
        p, q = p.to(resolve_dtype(dtype)), q.to(resolve_dtype(dtype))
    trunk = torch.full((B,), scheme.trunk, dtype=torch.long, device=dev)
    return TreeBatch(tokens, parents, depth, valid, draws, mult, p, q, int(depth.max()), sampling, trunk)


def node_prefixes(tokens: torch.Tensor, parents: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Token prefix of every node, LongTensor [B, N, L] (``-1`` beyond the node's depth)."""
    B, N = tokens.shape
    L = max(int(depth.max()), 0)
    pre = torch.full((B, N, max(L, 1)), -1, dtype=torch.long, device=tokens.device)
    for i in range(1, N):
        par = parents[:, i].clamp_min(0)
        row = pre[torch.arange(B, device=tokens.device), par].clone()
        d = depth[:, i]
        ok = d > 0
        row[ok, d[ok] - 1] = tokens[ok, i]
        pre[:, i] = torch.where(ok[:, None], row, pre[:, i])
    return pre[:, :, :L]


def laws_at_nodes(model, prefix: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor,
                  context: torch.Tensor | None = None):
    """``p, q`` [B, N, V] at every node (one model call per depth) after ``context`` [B, C]
    (optional, ``-1`` padded); padding rows uniform."""
    B, N, _ = prefix.shape
    if context is None:
        context = torch.full((B, 0), -1, dtype=torch.long, device=prefix.device)
    V = model.V
    fill = 1.0 / V
    p = torch.full((B, N, V), fill, dtype=model.dtype, device=model.device)
    q = torch.full((B, N, V), fill, dtype=model.dtype, device=model.device)
    for d in range(int(depth.max()) + 1):
        sel = (depth == d) & valid
        if not bool(sel.any()):
            continue
        b = sel.nonzero()[:, 0]
        pp, qq = model.laws(torch.cat([context[b], prefix[sel][:, :d]], 1))
        p[sel] = pp
        q[sel] = qq
    return p, q


def _draft_iid(model, scheme: Scheme, B: int, U: torch.Tensor, context: torch.Tensor):
    """Trunk of ``trunk`` tokens then ``k`` i.i.d. paths of ``branch`` after ``context``; merge prefixes."""
    dev = model.device
    T, K, D = scheme.trunk, scheme.k, scheme.branch
    col = 0
    trunk = torch.zeros((B, 0), dtype=torch.long, device=dev)
    for _ in range(T):
        _, q = model.laws(torch.cat([context, trunk], 1))
        tok = categorical(U[:, col], q.to(torch.float64))
        col += 1
        trunk = torch.cat([trunk, tok[:, None]], 1)
    paths = torch.zeros((B, K, D), dtype=torch.long, device=dev)
    if D:
        for j in range(K):
            for d in range(D):
                _, q = model.laws(torch.cat([context, trunk, paths[:, j, :d]], 1))
                paths[:, j, d] = categorical(U[:, col], q.to(torch.float64))
                col += 1
    return _merge_paths(trunk, paths)


def _merge_paths(trunk: torch.Tensor, paths: torch.Tensor):
    """Merge ``k`` paths below a trunk into pre-order trees (TreeBuilder numbering).

    Node = (creating path ``j``, branch depth ``d``); its pre-order rank is the lexicographic order
    of the creators of its ancestors ``(c_1, ..., c_d)`` (children in first-appearance order).
    """
    B, K, D = paths.shape
    T = trunk.shape[1]
    dev = paths.device
    N = 1 + T + K * D
    tokens = torch.full((B, N), -1, dtype=torch.long, device=dev)
    parents = torch.full((B, N), -1, dtype=torch.long, device=dev)
    Kd = max(K if D else 1, 1)
    draws = torch.full((B, N, Kd), -1, dtype=torch.long, device=dev)
    for i in range(T):
        tokens[:, 1 + i] = trunk[:, i]
        parents[:, 1 + i] = i
        draws[:, i, 0] = i + 1
    if D == 0 or K == 0:
        return tokens, parents, draws
    # same[b, j, j', d] = paths j and j' agree on their first d + 1 branch tokens
    eq = paths[:, :, None, :] == paths[:, None, :, :]
    same = torch.cumprod(eq.to(torch.long), dim=3).bool()
    jj = torch.arange(K, device=dev)
    # creator[b, j, d] = first path sharing path j's prefix of length d + 1
    creator = torch.where(same, jj[None, None, :, None], torch.full_like(same, K, dtype=torch.long)).min(2).values
    canonical = creator == jj[None, :, None]  # [B, K, D]
    base = K + 1
    key = torch.zeros((B, K, D), dtype=torch.long, device=dev)
    run = torch.zeros((B, K), dtype=torch.long, device=dev)
    for d in range(D):
        run = run * base + creator[:, :, d] + 1
        key[:, :, d] = run * base ** (D - 1 - d)
    big = base ** D + 1
    key = torch.where(canonical, key, torch.full_like(key, big))
    flat = key.reshape(B, K * D)
    order = torch.argsort(flat, dim=1, stable=True)  # rank -> (j, d) slot
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(K * D, device=dev).expand(B, -1).contiguous())
    node_of = (1 + T + rank).reshape(B, K, D)  # node id of slot (j, d) if canonical
    # node id of the prefix (j, d) = node id of its creator's slot
    node = node_of.gather(1, creator)  # [B, K, D]
    branch_root = T  # node id of the trunk end
    slot_valid = canonical.reshape(B, K * D)
    tok_flat = paths.reshape(B, K * D)
    par = torch.cat([torch.full((B, K, 1), branch_root, dtype=torch.long, device=dev), node[:, :, :-1]], 2)
    par_flat = par.reshape(B, K * D)
    node_flat = node_of.reshape(B, K * D)
    tgt = torch.where(slot_valid, node_flat, torch.zeros_like(node_flat))
    tokens.scatter_(1, tgt, torch.where(slot_valid, tok_flat, tokens.gather(1, tgt)))
    parents.scatter_(1, tgt, torch.where(slot_valid, par_flat, parents.gather(1, tgt)))
    # draws: path j draws child node[j, d] at par[j, d], in path order j = 0..K-1
    for j in range(K):
        for d in range(D):
            u = par[:, j, d]
            c = node[:, j, d]
            # position = number of earlier paths (j' < j) passing through u at the same depth
            pos = (node[:, :j, d - 1] == u[:, None]).sum(1) if (d > 0 and j > 0) else (
                torch.full_like(u, j) if d == 0 else torch.zeros_like(u))
            draws[torch.arange(B, device=dev), u, pos] = c
    return tokens, parents, draws


def _draft_wor(model, scheme: Scheme, B: int, U: torch.Tensor, context: torch.Tensor):
    """Fixed full topology; at a node of depth ``d`` draw ``branching[d]`` distinct children
    (after ``context``)."""
    dev = model.device
    br = scheme.branching
    # topology in pre-order, and the key counter of each draw (reference recursion order)
    topo_parent, topo_depth, key_of = [-1], [0], {}
    counter = [0]

    def grow(node: int, depth: int) -> None:
        if depth >= len(br):
            return
        kids = []
        for _ in range(br[depth]):
            kids.append(counter[0])
            counter[0] += 1
        for kcol in kids:
            c = len(topo_parent)
            topo_parent.append(node)
            topo_depth.append(depth + 1)
            key_of[c] = kcol
            grow(c, depth + 1)

    grow(0, 0)
    N = len(topo_parent)
    kids_of = [[c for c in range(N) if topo_parent[c] == u] for u in range(N)]
    tokens = torch.full((B, N), -1, dtype=torch.long, device=dev)
    parents = torch.tensor(topo_parent, dtype=torch.long, device=dev).expand(B, N).clone()
    Kd = max(max((len(k) for k in kids_of), default=1), 1)
    draws = torch.full((B, N, Kd), -1, dtype=torch.long, device=dev)
    prefix = torch.zeros((B, N, len(br)), dtype=torch.long, device=dev)
    for u in range(N):  # pre-order: a node's prefix is known before its children are drawn
        kids = kids_of[u]
        if not kids:
            continue
        d = topo_depth[u]
        _, q = model.laws(torch.cat([context, prefix[:, u, :d]], 1))
        remaining = q.to(torch.float64).clone()
        for slot, c in enumerate(kids):
            mass = remaining.sum(-1, keepdim=True)
            if not bool((mass > 0).all()):
                raise InvalidInstance(
                    f"without-replacement drafting needs at least {len(kids)} tokens with q > 0 at "
                    "every node (the torch drafter keeps a fixed topology)"
                )
            tok = categorical(U[:, key_of[c]], remaining / mass)
            remaining[torch.arange(B, device=dev), tok] = 0
            tokens[:, c] = tok
            prefix[:, c] = prefix[:, u]
            prefix[:, c, d] = tok
            draws[:, u, slot] = c
    return tokens, parents, draws


def extend_blocks(model, blocks: torch.Tensor, length: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Continue each emitted block by target sampling to ``length`` tokens.

    Parameters
    ----------
    blocks : LongTensor [R, L+1] padded with ``-1`` (every block has at least one token).
    length : total length (``>= L + 1``).

    Returns
    -------
    LongTensor [R, length].
    """
    R, W = blocks.shape
    out = torch.full((R, length), -1, dtype=torch.long, device=blocks.device)
    out[:, :W] = blocks
    for i in range(1, length):
        need = out[:, i] < 0
        if not bool(need.any()):
            continue
        pre = out[need, :i]
        p, _ = model.laws(pre)
        u = torch.rand(pre.shape[0], generator=generator, dtype=torch.float64, device=blocks.device)
        out[need, i] = categorical(u, p.to(torch.float64))
    return out
