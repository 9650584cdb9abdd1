"""Batched twin of the UniVer-style conditional-OT verifier (``reference.univer``).

Structure used: every node's entering weight and local plan are deterministic functions of the
tree (a child is entered with weight ``a / left`` from its parent's plan, and skipped when
``a = 0``), so the only random decisions are the per-node residual draws over ``V`` tokens and
``⊥`` (key ``("residual", u)``). The call's result is the first *visited* node in post-order whose
draw is not ``⊥`` (a node draws only after all its visited children returned ``⊥``; the root never
draws ``⊥``).

CPU precomputation (like the reference, which solves an exact max-flow per node): the visited
flags and each visited node's residual law ``norm((w p_u - m_u)_+, 1 - w)`` [V+1] are computed per
tree with the reference's own ``local_plan`` in float64 (from the batch's float64 laws when
present) -- a Python loop over trees and nodes. The draws and the post-order selection run in
torch, batched.
"""
from __future__ import annotations

import numpy as np
import torch

from .batch import Twin, TreeBatch, categorical
from .traversal import event_order

__all__ = ["univer", "node_laws", "UNIVER", "TWINS"]


def node_laws(tokens, parents, draws_lists, p: np.ndarray, q: np.ndarray, iid: bool):
    """Visited flags [N] and residual laws [N, V+1] of one tree (reference arithmetic, float64)."""
    from specoracle.reference.univer import local_plan

    N, V = p.shape
    children = [[] for _ in range(N)]
    for c in range(1, N):
        children[parents[c]].append(c)
    visited = np.zeros(N, dtype=bool)
    laws = np.zeros((N, V + 1))
    weight = [None] * N
    visited[0], weight[0] = True, 1.0
    for u in range(N):  # pre-order: a node's weight is set before it is reached
        if not visited[u]:
            continue
        w, pu, qu = weight[u], p[u], q[u]
        if draws_lists[u]:
            d = tuple(int(tokens[c]) for c in draws_lists[u])
            law, flow, m = local_plan(w, pu, qu, len(d), iid)
            fd, Dd = flow[d], law[d]
            left = 1.0
            for c in children[u]:
                a = fd.get(int(tokens[c]), 0.0) / Dd
                if a > 0:
                    visited[c] = True
                    weight[c] = a / left if a < left else 1.0
                left = left - a
        else:
            m = pu * 0
        resid = np.array([w * pu[y] - m[y] for y in range(V)] + [1.0 - w])
        resid = np.where(resid > 0, resid, 0.0)
        total = resid.sum()
        if total > 0:
            laws[u] = resid / total
        else:  # zero-mass residual: the reference's fallback (w p, 1 - w)
            laws[u] = np.concatenate([pu * w, [1.0 - w]])
    return visited, laws


def univer(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """UniVer-style verification on a batch of trees (keys ``("residual", u)``, column ``u``).

    Returns
    -------
    node, token : LongTensor [B] each.
    """
    B, N, V = batch.B, batch.N, batch.V
    dev = batch.device
    p64, q64 = batch.laws64()
    tokens = batch.tokens.cpu().numpy()
    parents = batch.parents.cpu().numpy()
    draws = batch.draws.cpu().numpy()
    valid = batch.valid.cpu().numpy()
    vis = np.zeros((B, N), dtype=bool)
    laws = np.zeros((B, N, V + 1))
    iid = batch.sampling == "iid"
    P, Qn = p64.numpy(), q64.numpy()
    memo: dict = {}  # identical trees with identical laws (common on toy models) share the work
    for b in range(B):
        n = int(valid[b].sum())
        key = (tokens[b, :n].tobytes(), parents[b, :n].tobytes(), draws[b, :n].tobytes(),
               P[b, :n].tobytes(), Qn[b, :n].tobytes())
        hit = memo.get(key)
        if hit is None:
            dl = [[int(c) for c in draws[b, u] if c >= 0] for u in range(n)]
            hit = memo[key] = node_laws(tokens[b, :n], parents[b, :n], dl, P[b, :n], Qn[b, :n], iid)
        vis[b, :n], laws[b, :n] = hit
    vis_t = torch.as_tensor(vis, device=dev)
    laws_t = torch.as_tensor(laws, device=dev)
    y = torch.full((B, N), V, dtype=torch.long, device=dev)
    if bool(vis_t.any()):
        y[vis_t] = categorical(U[vis_t].to(torch.float64), laws_t[vis_t])
    # post-order rank of every node's exit
    ev_node, ev_enter = event_order(batch)
    T = ev_node.shape[1]
    rank = torch.full((B, N), 2 * T + 1, dtype=torch.long, device=dev)
    pos = torch.arange(T, device=dev).expand(B, T)
    ex = (~ev_enter) & (ev_node >= 0)
    rank[torch.arange(B, device=dev)[:, None].expand(B, T)[ex], ev_node[ex]] = pos[ex]
    ok = vis_t & (y < V)
    score = torch.where(ok, rank, torch.full_like(rank, 4 * T + 4))
    node = score.argmin(1)
    return node, y.gather(1, node[:, None])[:, 0]


UNIVER = Twin(
    "univer", univer, lambda batch: [("residual", u) for u in range(batch.N)],
    note="per-node weights and max-flow plans on CPU (reference local_plan, float64); draws in torch",
)
TWINS = {"univer": UNIVER}
