"""Batched twin of Traversal Verification (``reference.traversal``), strict post-order.

The recursion of the reference visits nodes in a fixed order per tree: node ``c`` is *entered*
(its weight ``w_c = min(1, w_u p^_u(x) / q^_u(x))`` is fixed) in DFS pre-order and *exited* (its
accept coin ``U[("accept", c)] < w_c``; on failure the parent's state ``(w, p^, q^)`` takes the
residual update) in post-order; the first successful exit ends the call. The twin precomputes
this event sequence for every tree of the batch (one sort, ``2N - 1`` events) and runs one loop
over event steps, vectorised over the batch. Only nodes on the current DFS path carry a modified
state, so ``p^, q^`` live in per-depth stacks ``[B, L+1, V]``; an unmodified node reads its own
rows of ``p, q`` (nothing is copied on entry). The ``V``-wide work of a step (the residual update
after a rejected subtree) is done only for the rows that need it.
"""
from __future__ import annotations

import torch

from .batch import Twin, TreeBatch, categorical
from .chain import chain_keys

__all__ = ["traversal", "event_order", "TRAVERSAL", "TWINS"]


def event_order(batch: TreeBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Enter/exit events of the strict post-order traversal of every tree.

    Returns
    -------
    node : LongTensor [B, 2N-1], the node of each event (``-1`` after the tree's last event).
    enter : BoolTensor [B, 2N-1], True for an entry, False for an exit.

    Entry of node ``i`` sorts at ``(i, 1)``; the exit of ``j`` at ``(end_j, 0, -depth_j)`` where
    ``end_j`` is the pre-order index right after ``j``'s subtree.
    """
    N, L = batch.N, batch.L
    dev = batch.device
    dep = batch.depth
    ar = torch.arange(N, device=dev)
    after = ar[None, None, :] > ar[None, :, None]  # [1, j, i]: i > j
    closes = after & (dep[:, None, :] <= dep[:, :, None])  # padding depth -1 closes everything
    end = torch.where(closes.any(-1), closes.to(torch.int8).argmax(-1), torch.full_like(dep, N))
    M = L + 2
    big = (N + 2) * 2 * M
    enter_key = torch.where(batch.valid & (ar[None] > 0), ar[None] * 2 * M + M, torch.full_like(dep, big))
    exit_key = torch.where(batch.valid, end * 2 * M + (L + 1 - dep), torch.full_like(dep, big))
    keys = torch.cat([enter_key, exit_key], 1)
    srt, order = torch.sort(keys, dim=1, stable=True)
    order, srt = order[:, : 2 * N - 1], srt[:, : 2 * N - 1]
    node = torch.where(srt < big, order % N, torch.full_like(order, -1))
    return node, order < N


def _state_rows(batch, P, Q, mod, r, u, du, with_q: bool = True):
    """Current ``p^, q^`` rows [R, V] of nodes ``u`` (stack depth ``du``) of trees ``r``: the stack
    entry when the node was modified, else the node's own rows (row copies with ``index_select``)."""
    m = mod[r, du]
    V = batch.V
    Lp1 = P.shape[1]
    if bool(m.all()):
        idx = r * Lp1 + du
        return P.view(-1, V).index_select(0, idx), (Q.view(-1, V).index_select(0, idx) if with_q else None)
    N = batch.N
    pf, qf = batch.p.reshape(-1, V), batch.q.reshape(-1, V)
    if not bool(m.any()):
        idx = r * N + u
        return pf.index_select(0, idx), (qf.index_select(0, idx) if with_q else None)
    ph = pf.index_select(0, r * N + u)
    qh = qf.index_select(0, r * N + u) if with_q else None
    k = m.nonzero()[:, 0]
    sidx = r[k] * Lp1 + du[k]
    ph.index_copy_(0, k, P.view(-1, V).index_select(0, sidx))
    if with_q:
        qh.index_copy_(0, k, Q.view(-1, V).index_select(0, sidx))
    return ph, qh


def traversal(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Traversal Verification on a batch of trees (shared-uniform layout of ``traversal_keys``).

    Returns
    -------
    node, token : LongTensor [B] each.
    """
    B, N, L, V = batch.B, batch.N, batch.L, batch.V
    dev, dt = batch.device, batch.dtype
    rows_all = torch.arange(B, device=dev)
    ev_node, ev_enter = event_order(batch)
    one = torch.ones((), dtype=dt, device=dev)
    w = torch.ones((B, N), dtype=dt, device=dev)
    P = torch.empty((B, L + 1, V), dtype=dt, device=dev)  # p^ of the node on the path at depth d
    Q = torch.empty((B, L + 1, V), dtype=dt, device=dev)
    mod = torch.zeros((B, L + 1), dtype=torch.bool, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    res = torch.zeros(B, dtype=torch.long, device=dev)
    for t in range(2 * N - 1):
        node = ev_node[:, t]
        live = (node >= 0) & ~done
        if not bool(live.any()):
            break
        nd = node.clamp_min(0)
        d = batch.depth.gather(1, nd[:, None])[:, 0]
        par = batch.parents.gather(1, nd[:, None])[:, 0].clamp_min(0)
        x = batch.tokens.gather(1, nd[:, None])[:, 0].clamp_min(0)
        dp = (d - 1).clamp_min(0)
        entering = live & ev_enter[:, t]
        if bool(entering.any()):
            r = rows_all[entering]
            m = mod[r, dp[r]]
            ph = torch.where(m, P[r, dp[r], x[r]], batch.p[r, par[r], x[r]])
            qh = torch.where(m, Q[r, dp[r], x[r]], batch.q[r, par[r], x[r]])
            wc = w[r, par[r]] * ph / qh
            w[r, node[r]] = torch.minimum(wc, one)
            mod[r, d[r]] = False
        exiting = live & ~ev_enter[:, t]
        if bool(exiting.any()):
            coin = U.gather(1, (nd - 1).clamp_min(0)[:, None])[:, 0]  # ("accept", node) column
            accept = exiting & ((node == 0) | (coin < w[rows_all, nd]))
            res = torch.where(accept, nd, res)
            done = done | accept
            fail = exiting & ~accept
            if bool(fail.any()):
                r = rows_all[fail]
                u, du, xr = par[r], dp[r], x[r]
                ph, qh = _state_rows(batch, P, Q, mod, r, u, du)
                wu = w[r, u]
                resid = torch.mul(ph, wu[:, None]).sub_(qh).clamp_min_(0)  # (w p^ - q^)_+
                S = resid.sum(-1)
                pos = S > 0
                resid.div_(torch.where(pos, S, one)[:, None])
                if not bool(pos.all()):
                    resid[~pos] = ph[~pos]  # S == 0: p^ kept, the node can no longer be accepted
                w[r, u] = torch.where(pos, S / (S + (1 - wu)), torch.zeros_like(wu))
                qh[torch.arange(len(r), device=dev), xr] = 0  # remove the rejected token
                mass = qh.sum(-1)
                qh.div_(torch.where(mass > 0, mass, one)[:, None])
                sidx = r * (L + 1) + du
                P.view(-1, V).index_copy_(0, sidx, resid)
                Q.view(-1, V).index_copy_(0, sidx, qh)
                mod[r, du] = True
    dres = batch.depth.gather(1, res[:, None])[:, 0]
    law, _ = _state_rows(batch, P, Q, mod, rows_all, res, dres, with_q=False)
    u = U.gather(1, (N - 1 + res)[:, None])[:, 0]
    return res, categorical(u, law)


TRAVERSAL = Twin("traversal", traversal, chain_keys("accept"), frozenset({"chain", "iid", "delayed", "without_replacement"}))
TWINS = {"traversal": TRAVERSAL}
