"""Batched twin of greedy multi-path block verification (``reference.gbv``).

Per tree: (1) select the lexicographic maximum path under the token key ``(p/q, token)`` (a loop
over depth, vectorised over the batch); (2) skew the draft rows of the selected path below the
trunk to the best-of-``K`` law ``q_skew(t|u) = q(t) sum_i a^i b^(K-1-i)`` (normalised), with
``a = A + Qm cdf(t)``, ``b = A + Qm cdf^-(t)`` over tokens sorted by key (one stable sort per
path node); (3) block verification on the path with ``q_skew``. Uniform layout as BV:
``("stop", 1..N-1) + ("residual", 0..N-1)``.
"""
from __future__ import annotations

import torch

from .batch import Twin, TreeBatch, categorical, normalize_or, pos_part_sum
from .chain import chain_keys
from .topdown import distinct_children

__all__ = ["gbv", "select_path", "skew_rows", "GBV", "TWINS"]


def select_path(batch: TreeBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Selected path node ids ``[B, L+1]`` (``-1`` after its end) and its length ``[B]``."""
    B, L = batch.B, batch.L
    dev = batch.device
    rows = torch.arange(B, device=dev)
    kids = distinct_children(batch)
    path = torch.full((B, L + 1), -1, dtype=torch.long, device=dev)
    path[:, 0] = 0
    length = torch.zeros(B, dtype=torch.long, device=dev)
    u = torch.zeros(B, dtype=torch.long, device=dev)
    live = torch.ones(B, dtype=torch.bool, device=dev)
    for i in range(1, L + 1):
        c = kids[rows, u]  # [B, K]
        m = (c >= 0) & live[:, None]
        live = m.any(1)
        if not bool(live.any()):
            break
        tok = batch.tokens.gather(1, c.clamp_min(0))
        pr = batch.p[rows, u].gather(1, tok.clamp_min(0))
        qr = batch.q[rows, u].gather(1, tok.clamp_min(0))
        ratio = torch.where(m, pr / qr, torch.full_like(pr, -1.0))
        best_r = ratio[:, 0].clone()
        best_t = tok[:, 0].clone()
        best_c = c[:, 0].clone()
        for j in range(1, c.shape[1]):
            better = m[:, j] & ((ratio[:, j] > best_r) | ((ratio[:, j] == best_r) & (tok[:, j] > best_t)))
            best_r = torch.where(better, ratio[:, j], best_r)
            best_t = torch.where(better, tok[:, j], best_t)
            best_c = torch.where(better, c[:, j], best_c)
        u = torch.where(live, best_c, u)
        path[:, i] = torch.where(live, best_c, path[:, i])
        length = torch.where(live, torch.full_like(length, i), length)
    return path, length


def _n_paths(batch: TreeBatch, path: torch.Tensor) -> torch.Tensor:
    """``tree.n_paths``: draws at the node of depth ``trunk`` on the (single) trunk, at least 1."""
    B = batch.B
    rows = torch.arange(B, device=batch.device)
    tr = batch.trunks.clamp_max(batch.L)
    node = path.gather(1, tr[:, None])[:, 0]
    # if the path is shorter than the trunk, use its end
    plen = (path >= 0).sum(1) - 1
    node = torch.where(tr <= plen, node, path.gather(1, plen[:, None])[:, 0])
    k = (batch.draws[rows, node.clamp_min(0)] >= 0).sum(1)
    return k.clamp_min(1)


def skew_rows(batch: TreeBatch, path: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Draft rows along the path ``[B, L+1, V]``: skewed below the trunk, plain ``q`` elsewhere."""
    B, L, V = batch.B, batch.L, batch.V
    dev, dt = batch.device, batch.dtype
    rows = torch.arange(B, device=dev)
    K = _n_paths(batch, path)
    Kmax = int(K.max())
    qs = batch.q[rows[:, None], path.clamp_min(0)].clone()  # [B, L+1, V]
    A = torch.zeros(B, dtype=dt, device=dev)
    Qm = torch.ones(B, dtype=dt, device=dev)
    inf = torch.tensor(float("inf"), dtype=dt, device=dev)
    for i in range(L):
        act = (i < length) & (batch.depth.gather(1, path[:, i].clamp_min(0)[:, None])[:, 0] >= batch.trunks)
        if not bool(act.any()):
            continue
        u = path[:, i].clamp_min(0)
        p_u, q_u = batch.p[rows, u], batch.q[rows, u]
        ratio = torch.where(q_u > 0, p_u / torch.where(q_u > 0, q_u, torch.ones_like(q_u)), inf)
        srt, order = torch.sort(ratio, dim=1, stable=True)
        qo = q_u.gather(1, order)
        incl = torch.cumsum(qo, dim=1)
        excl = torch.cat([torch.zeros_like(incl[:, :1]), incl[:, :-1]], 1)
        a = A[:, None] + Qm[:, None] * incl
        b = A[:, None] + Qm[:, None] * excl
        s = torch.zeros_like(a)
        for j in range(Kmax):
            term = a ** j * b ** (K[:, None] - 1 - j).clamp_min(0).to(dt)
            s = torch.where((j < K)[:, None], s + term, s)
        out_sorted = qo * s
        out = torch.empty_like(out_sorted).scatter_(1, order, out_sorted)
        out = out / out.sum(1, keepdim=True)
        qs[act, i] = out[act]
        # advance (A, Qm) along the selected child x
        x = batch.tokens.gather(1, path[:, i + 1].clamp_min(0)[:, None])[:, 0].clamp_min(0)
        rx = ratio.gather(1, x[:, None])
        tok = torch.arange(V, device=dev)
        lower = (ratio < rx) | ((ratio == rx) & (tok[None] < x[:, None]))
        below = torch.where(lower, q_u, torch.zeros_like(q_u)).sum(1)
        A = torch.where(act, A + Qm * below, A)
        Qm = torch.where(act, Qm * q_u.gather(1, x[:, None])[:, 0], Qm)
    return qs


def gbv(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GBV on a batch of i.i.d./delayed trees (see module docstring).

    Returns
    -------
    node, token : LongTensor [B] each.
    """
    B, N, L = batch.B, batch.N, batch.L
    dev, dt = batch.device, batch.dtype
    rows = torch.arange(B, device=dev)
    path, Lb = select_path(batch)
    qs = skew_rows(batch, path, Lb)  # [B, L+1, V]
    P = batch.p[rows[:, None], path.clamp_min(0)]  # [B, L+1, V]
    one = torch.ones((), dtype=dt, device=dev)
    ws = [torch.ones(B, dtype=dt, device=dev)]
    for i in range(1, L + 1):
        x = batch.tokens.gather(1, path[:, i].clamp_min(0)[:, None])
        px = P[:, i - 1].gather(1, x.clamp_min(0))[:, 0]
        qx = qs[:, i - 1].gather(1, x.clamp_min(0))[:, 0]
        ws.append(torch.where(i <= Lb, torch.minimum(ws[-1] * px / qx, one), ws[-1]))
    w = torch.stack(ws, 1)  # [B, L+1]
    V = batch.V
    S = pos_part_sum(P.reshape(-1, V), qs.reshape(-1, V), w.reshape(-1)).reshape(w.shape)
    den = (S + 1) - w
    h = torch.where(den > 0, S / torch.where(den > 0, den, one), one)
    ar = torch.arange(L + 1, device=dev)
    h = torch.where(ar[None] == Lb[:, None], w, h)
    stop_cols = (path[:, 1:] - 1).clamp_min(0)
    coins = (U.gather(1, stop_cols) < h[:, 1:]) & (ar[None, 1:] <= Lb[:, None])
    idx = torch.where(coins, ar[None, 1:].expand_as(coins), torch.zeros_like(coins, dtype=torch.long))
    tau = idx.max(1).values
    node = path.gather(1, tau[:, None])[:, 0]
    p_t, q_t = P[rows, tau], qs[rows, tau]
    w_t = w.gather(1, tau[:, None])
    law = torch.where((tau == Lb)[:, None], p_t, normalize_or((w_t * p_t - q_t).clamp_min(0), p_t))
    u = U.gather(1, (N - 1 + node)[:, None])[:, 0]
    return node, categorical(u, law)


GBV = Twin("gbv", gbv, chain_keys("stop"))
TWINS = {"gbv": GBV}
