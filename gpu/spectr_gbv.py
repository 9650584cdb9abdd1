"""Batched twins of the stateful SpecTr-GBV verifiers (``reference.spectr_gbv``), FIRST CALL ONLY.

Both references are stateful: after an iteration the target of the next one is a modified law
(the state). These twins implement one iteration from the plain target (``state = None``), which
is what :func:`specoracle.gpu.parity` and :func:`specoracle.gpu.chi2_extended` compare; a
non-``None`` state is not representable in the batch layout and is not supported (stated in the
registry report as a limitation).

- ``spectr_gbv_lossless``: the best-of-K path under ``(p/q, token)`` (as GBV), greedy block
  verification on it with ``A(s) = min(P(s), Q_skew(s))``: coins ``h_i = [A(x^i) - sum_y A(x^i y)]
  / [Q_skew(x^i) - sum_y A(x^i y)]`` (``h_L = A/Q_skew``), ``tau`` = last success (keys
  ``("stop", node)``), correction ``norm(P(s y) - A(s y))`` or bonus ``norm(P(s) p)``.
- ``spectr_gbv``: the transcribed per-iteration scan: candidates (the K drafted paths in draw
  order) scanned position by position beyond the current best, coin ``("test", node)`` with
  ``h = [g(x^i) - sum_y g(x^i y)] / [D(x^i) - sum_y g(x^i y)]`` (``g(s) = P(s)[1 - (1 -
  min(Q/P, 1))^K]``, ``D = 1 - (1 - Q)^K``), full block w.p. ``g/D``; correction
  ``norm(P(s y)[1 - min(Q/P, 1)(s y)^K])``.

``sum_y A(x^i y)`` needs the rank mass below every token; the twin takes it from one sorted
cumulative sum (the reference sums token by token), so the two agree up to rounding.
Uniform layout = ``spectr_gbv_keys``: ``("test", 1..N-1) + ("stop", 1..N-1) + ("residual", 0..N-1)``.
"""
from __future__ import annotations

import torch

from specoracle.errors import InvalidInstance

from .batch import Twin, TreeBatch, categorical
from .gbv import select_path

__all__ = ["spectr_gbv", "spectr_gbv_lossless", "TWINS"]


def _keys(batch: TreeBatch) -> list:
    N = batch.N
    return [("test", i) for i in range(1, N)] + [("stop", i) for i in range(1, N)] + [("residual", i) for i in range(N)]


def _check(batch: TreeBatch, who: str) -> torch.Tensor:
    if batch.sampling != "iid" or bool((batch.trunks != 0).any()):
        raise InvalidInstance(f"{who} verifies K i.i.d. root-branching paths (no trunk)")
    ar = torch.arange(batch.N, device=batch.device)
    has_child = ((batch.parents[:, None, :] == ar[None, :, None]) & batch.valid[:, None, :]).any(-1)
    leaf = batch.valid & ~has_child
    if not bool((batch.depth[leaf] == batch.L).all()):
        raise InvalidInstance(f"{who}: every drafted path must have the full length L = {batch.L}")
    return (batch.draws[:, 0] >= 0).sum(1).clamp_min(1)  # K = draws at the root


def _rank_below(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``below[y] = sum of q(t) over tokens with key (p/q, t) < key (p/q, y)`` per row, [R, V]."""
    inf = torch.tensor(float("inf"), dtype=p.dtype, device=p.device)
    ratio = torch.where(q > 0, p / torch.where(q > 0, q, torch.ones_like(q)), inf)
    _, order = torch.sort(ratio, dim=1, stable=True)
    qo = q.gather(1, order)
    excl = torch.cumsum(qo, 1) - qo
    excl[:, 0] = 0
    return torch.empty_like(excl).scatter_(1, order, excl)


def _pow(x: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    return x ** K.to(x.dtype)


def spectr_gbv_lossless(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First call of greedy block verification on the best-of-K path (see module docstring)."""
    B, N, L = batch.B, batch.N, batch.L
    dev, dt = batch.device, batch.dtype
    K = _check(batch, "spectr_gbv_lossless")
    rows = torch.arange(B, device=dev)
    path, _ = select_path(batch)
    M = torch.ones(B, dtype=dt, device=dev)
    Ar = torch.zeros(B, dtype=dt, device=dev)
    Qm = torch.ones(B, dtype=dt, device=dev)
    Ms, Ars, Qms, sums = [], [], [], []
    for i in range(L + 1):
        u = path[:, i]
        p_u, q_u = batch.p[rows, u], batch.q[rows, u]
        below = _rank_below(p_u, q_u)
        Ms.append(M), Ars.append(Ar), Qms.append(Qm)
        if i < L:
            a = Ar[:, None] + Qm[:, None] * below
            Ac = torch.minimum(M[:, None] * p_u, _pow(a + Qm[:, None] * q_u, K[:, None]) - _pow(a, K[:, None]))
            sums.append(Ac.sum(1))
            x = batch.tokens.gather(1, path[:, i + 1][:, None])[:, 0]
            bx = below.gather(1, x[:, None])[:, 0]
            Ar, Qm, M = Ar + Qm * bx, Qm * q_u.gather(1, x[:, None])[:, 0], M * p_u.gather(1, x[:, None])[:, 0]
    tau = torch.zeros(B, dtype=torch.long, device=dev)
    found = torch.zeros(B, dtype=torch.bool, device=dev)
    one = torch.ones((), dtype=dt, device=dev)
    for i in range(L, 0, -1):
        Qs = _pow(Ars[i] + Qms[i], K) - _pow(Ars[i], K)
        A = torch.minimum(Ms[i], Qs)
        if i < L:
            den = Qs - sums[i]
            h = torch.where(den > 0, (A - sums[i]) / torch.where(den > 0, den, one), one)
        else:
            h = A / Qs
        coin = U.gather(1, (N - 1 + path[:, i] - 1)[:, None])[:, 0] < h
        hit = coin & ~found
        tau = torch.where(hit, torch.full_like(tau, i), tau)
        found |= coin
    node = path.gather(1, tau[:, None])[:, 0]
    law = torch.empty((B, batch.V), dtype=dt, device=dev)
    for i in range(L + 1):
        sel = tau == i
        if not bool(sel.any()):
            continue
        r = rows[sel]
        p_u, q_u = batch.p[r, node[sel]], batch.q[r, node[sel]]
        Mi = Ms[i][sel]
        Mc = Mi[:, None] * p_u
        if i == L:
            corr = Mc
        else:
            a = Ars[i][sel][:, None] + Qms[i][sel][:, None] * _rank_below(p_u, q_u)
            Ks = K[sel][:, None]
            corr = Mc - torch.minimum(Mc, _pow(a + Qms[i][sel][:, None] * q_u, Ks) - _pow(a, Ks))
        tot = corr.sum(1, keepdim=True)
        law[sel] = torch.where(tot > 0, corr / torch.where(tot > 0, tot, one), p_u)
    u = U.gather(1, (2 * N - 2 + node)[:, None])[:, 0]
    return node, categorical(u, law)


def _candidates(batch: TreeBatch, K: torch.Tensor) -> torch.Tensor:
    """Node ids of the K drafted paths in draw order, [B, Kmax, L] (path j = j-th draw at the root,
    then at each node the draws are matched to the paths through it in order)."""
    B, L = batch.B, batch.L
    dev = batch.device
    Kmax = int(K.max())
    rows = torch.arange(B, device=dev)
    cand = torch.full((B, Kmax, L), -1, dtype=torch.long, device=dev)
    cand[:, :, 0] = batch.draws[:, 0, :Kmax]
    for d in range(1, L):
        prev = cand[:, :, d - 1]
        for j in range(Kmax):
            u = prev[:, j].clamp_min(0)
            # rank of path j among the paths through u (earlier paths j' < j with the same node)
            r = (prev[:, :j] == prev[:, j : j + 1]).sum(1) if j else torch.zeros(B, dtype=torch.long, device=dev)
            cand[:, j, d] = torch.where(prev[:, j] >= 0, batch.draws[rows, u, r.clamp_max(batch.K - 1)], cand[:, j, d])
    return cand


def spectr_gbv(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First call of the transcribed SpecTr-GBV scan (see module docstring; lossy for K >= 2)."""
    B, N, L = batch.B, batch.N, batch.L
    dev, dt = batch.device, batch.dtype
    K = _check(batch, "spectr_gbv")
    Kf = K.to(dt)
    rows = torch.arange(B, device=dev)
    cand = _candidates(batch, K)
    one = torch.ones((), dtype=dt, device=dev)
    # masses M(s), Q(s) of every node (pre-order: parents first)
    M = torch.ones((B, N), dtype=dt, device=dev)
    Q = torch.ones((B, N), dtype=dt, device=dev)
    for c in range(1, N):
        par = batch.parents[:, c].clamp_min(0)
        x = batch.tokens[:, c].clamp_min(0)
        M[:, c] = M.gather(1, par[:, None])[:, 0] * batch.p[rows, par, x]
        Q[:, c] = Q.gather(1, par[:, None])[:, 0] * batch.q[rows, par, x]

    def g(Mv, Qv, Kv):
        mn = torch.where(Qv < Mv, Qv / torch.where(Mv > 0, Mv, one), torch.ones_like(Mv))
        return torch.where(Mv > 0, Mv * (1 - (1 - mn) ** Kv), torch.zeros_like(Mv))

    best = torch.zeros(B, dtype=torch.long, device=dev)
    best_node = torch.zeros(B, dtype=torch.long, device=dev)
    rejected = torch.zeros((B, N), dtype=torch.bool, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    for j in range(cand.shape[1]):
        active_j = (j < K) & ~done
        for i in range(1, L + 1):
            node = cand[:, j, i - 1].clamp_min(0)
            act = active_j & ~done & (i > best) & ~rejected[rows, node]
            if not bool(act.any()):
                continue
            Mn, Qn = M[rows, node], Q[rows, node]
            gv = g(Mn, Qn, Kf)
            cover = 1 - (1 - Qn) ** Kf
            if i < L:
                r = rows[act]
                p_u, q_u = batch.p[r, node[act]], batch.q[r, node[act]]
                below = torch.zeros(B, dtype=dt, device=dev)
                below[act] = g(Mn[act][:, None] * p_u, Qn[act][:, None] * q_u, Kf[act][:, None]).sum(1)
                den = cover - below
                h = torch.where(den > 0, (gv - below) / torch.where(den > 0, den, one), one)
            else:
                h = gv / cover
            coin = U.gather(1, (node - 1).clamp_min(0)[:, None])[:, 0] < h
            acc = act & coin
            best = torch.where(acc, torch.full_like(best, i), best)
            best_node = torch.where(acc, node, best_node)
            rejected[rows[act & ~coin], node[act & ~coin]] = True
            if i == L:
                done |= acc
    node = torch.where(best > 0, best_node, torch.zeros_like(best_node))
    p_u, q_u = batch.p[rows, node], batch.q[rows, node]
    Mn, Qn = M[rows, node], Q[rows, node]
    Mc, Qc = Mn[:, None] * p_u, Qn[:, None] * q_u
    mn = torch.where(Qc < Mc, Qc / torch.where(Mc > 0, Mc, one), torch.ones_like(Mc))
    corr = torch.where(Mc > 0, Mc * (1 - mn ** Kf[:, None]), torch.zeros_like(Mc))
    corr = torch.where((batch.depth[rows, node] >= L)[:, None], Mc, corr)
    tot = corr.sum(1, keepdim=True)
    law = torch.where(tot > 0, corr / torch.where(tot > 0, tot, one), p_u)
    u = U.gather(1, (2 * N - 2 + node)[:, None])[:, 0]
    return node, categorical(u, law)


_NOTE = "first call only (state None): the cross-iteration target modification is not batched"
TWINS = {
    "spectr_gbv": Twin("spectr_gbv", spectr_gbv, _keys, frozenset({"chain", "iid"}), _NOTE),
    "spectr_gbv_lossless": Twin("spectr_gbv_lossless", spectr_gbv_lossless, _keys, frozenset({"chain", "iid"}), _NOTE),
}
