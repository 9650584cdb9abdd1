"""Batched twins of the top-down OT tree verifiers (``reference.topdown``, ``reference.rrs``).

One driver walks all trees of the batch down together (a loop over depth, ``<= L + 1`` steps):
at the current node ``u`` of every live tree the node solver sees ``p_u, q_u`` (gathered rows
``[R, V]``) and the node's draws (``draws[u]``, multiset in draw order) or distinct children
(first-appearance order, ``rrs_wor``). A drafted output token moves the walk to that child; any
other token, or a leaf's bonus ``y ~ p_u``, ends it. Solver loops run over the draw slots of a
node (``K``), vectorised over the live trees; ``V``-wide updates touch only the rows that need them.

Uniform layout (the twin's ``keys(batch)``; reference keys are gathered into it by name):
``[("accept", u, j) for u < N for j < K] + [("residual", u) for u < N]`` for NaiveTree,
SpecInfer, SpecTr and RRS-w/o; ``("pick", u), ("accept", u)`` per node for Khisti;
``("pick", u)`` for OT-optimal; NSS only the residual keys.

``khisti`` and ``ot_optimal`` solve an LP per visited node, like their references: the twin calls
the reference's cached ``khisti_selection`` / ``ot_plan`` on CPU in float64 (from the batch's
float64 laws when present) for the visited rows, then makes every random decision in torch.
That precomputation is a Python loop over the visited rows; everything else is batched.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .batch import Twin, TreeBatch, categorical, normalize_or, rows_at

__all__ = ["walk", "distinct_children", "TWINS"]


def distinct_children(batch: TreeBatch) -> torch.Tensor:
    """Distinct children of every node in first-appearance (= index) order, LongTensor [B, N, K]."""
    B, N = batch.B, batch.N
    dev = batch.device
    par = batch.parents
    ar = torch.arange(N, device=dev)
    earlier = (par[:, :, None] == par[:, None, :]) & (ar[None, None, :] < ar[None, :, None]) & batch.valid[:, None, :]
    pos = earlier.sum(-1)  # rank among siblings
    K = max(batch.K, 1)
    out = torch.full((B, N, K + 1), -1, dtype=torch.long, device=dev)
    real = batch.valid & (par >= 0)
    b_idx = torch.arange(B, device=dev)[:, None].expand(B, N)
    out[b_idx[real], par[real], pos[real]] = ar[None].expand(B, N)[real]
    return out[:, :, :K]


# --- layouts -------------------------------------------------------------------------------------
class _Layout:
    """Column arithmetic of a twin's uniform tensor."""

    def __init__(self, kind: str, N: int, K: int) -> None:
        self.kind, self.N, self.K = kind, N, K

    def keys(self) -> list:
        N, K = self.N, self.K
        if self.kind == "accept":
            head = [("accept", u, j) for u in range(N) for j in range(K)]
        elif self.kind == "pick_accept":
            head = [k for u in range(N) for k in (("pick", u), ("accept", u))]
        elif self.kind == "pick":
            head = [("pick", u) for u in range(N)]
        else:
            head = []
        return head + [("residual", u) for u in range(N)]

    def accept(self, u: torch.Tensor, j: int) -> torch.Tensor:
        return u * self.K + j if self.kind == "accept" else u * 2 + 1

    def pick(self, u: torch.Tensor) -> torch.Tensor:
        return u * 2 if self.kind == "pick_accept" else u

    def residual(self, u: torch.Tensor) -> torch.Tensor:
        head = {"accept": self.N * self.K, "pick_accept": 2 * self.N, "pick": self.N}.get(self.kind, 0)
        return head + u


def _col(U: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    return U.gather(1, col[:, None])[:, 0]


# --- node solvers: (p, q, x, m, U, u, lay, ctx) -> token [R] ----------------------------------
def _ratio(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return p.gather(1, x[:, None])[:, 0] / q.gather(1, x[:, None])[:, 0]


def _nss(p, q, x, m, U, u, lay, ctx):
    return categorical(_col(U, lay.residual(u)), p)


def _naive_tree(p, q, x, m, U, u, lay, ctx):
    x0 = x[:, 0]
    acc = _col(U, lay.accept(u, 0)) < _ratio(p, q, x0)
    t = x0.clone()
    rej = ~acc
    if bool(rej.any()):
        pr, qr = p[rej], q[rej]
        t[rej] = categorical(_col(U[rej], lay.residual(u[rej])), normalize_or((pr - qr).clamp_min(0), pr))
    return t


def _residual(cur_p: torch.Tensor, r: torch.Tensor, qr: torch.Tensor) -> torch.Tensor:
    """``norm((cur_p[r] - qr)_+)`` (one gathered copy, updated in place); zero-mass rows keep
    ``cur_p[r]`` (the reference's fallback)."""
    t = cur_p.index_select(0, r).sub_(qr).clamp_min_(0)
    total = t.sum(-1)
    ok = total > 0
    t.div_(torch.where(ok, total, torch.ones_like(total))[:, None])
    if not bool(ok.all()):
        bad = (~ok).nonzero()[:, 0]
        t.index_copy_(0, bad, cur_p.index_select(0, r[bad]))
    return t


def _sequential(p, q, x, m, U, u, lay, *, update_q: bool, threshold: Callable | None = None, final=None):
    """Sequential accept tests over the draw slots (SpecInfer / RRS-w/o / SpecTr share this loop).

    ``final(live)`` -> the residual laws [len(live), V] of the rows ``live`` that rejected every
    draft (built only for them); None: the (updated) ``p`` rows.
    """
    R = p.shape[0]
    cur_p, cur_q = p, q  # the walk hands over gathered copies: updated in place
    t = torch.full((R,), -1, dtype=torch.long, device=p.device)
    alive = torch.ones(R, dtype=torch.bool, device=p.device)
    for j in range(x.shape[1]):
        act = alive & m[:, j]
        if not bool(act.any()):
            break
        xj = x[:, j].clamp_min(0)
        thr = _ratio(cur_p, cur_q, xj) if threshold is None else threshold(xj)
        acc = act & (_col(U, lay.accept(u, j)) < thr)
        t = torch.where(acc, xj, t)
        alive &= ~acc
        rej = act & ~acc
        if threshold is None and bool(rej.any()):
            r = rej.nonzero()[:, 0]
            qr = cur_q.index_select(0, r)
            cur_p.index_copy_(0, r, _residual(cur_p, r, qr))
            if update_q:
                qr[torch.arange(len(r), device=p.device), xj[r]] = 0
                mass = qr.sum(-1)
                cur_q.index_copy_(0, r, qr.div_(torch.where(mass > 0, mass, torch.ones_like(mass))[:, None]))
    if bool(alive.any()):
        live = alive.nonzero()[:, 0]
        law = cur_p.index_select(0, live) if final is None else final(live)
        t[alive] = categorical(_col(U[alive], lay.residual(u[alive])), law)
    return t


def _specinfer(p, q, x, m, U, u, lay, ctx):
    return _sequential(p, q, x, m, U, u, lay, update_q=False)


def _rrs(p, q, x, m, U, u, lay, ctx):
    return _sequential(p, q, x, m, U, u, lay, update_q=True)


_RHO_BINS = 64  # bins of the ratio p / q in [1, k) read by the first log2(64) = 6 bisection steps


def kseq_rho(p: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """SpecTr's ``rho*`` per row by the reference's bisection (same steps, batched). [R, V], [R] -> [R].

    ``g(rho) = 1 - (1 - beta(rho))^k - rho beta(rho)``, ``beta(rho) = sum_y min(q, p / rho)``;
    ``rho = 1`` if ``k = 1`` or ``g(1) <= 0``; otherwise bisect ``[1, k]`` until the midpoint is no
    longer strictly inside and return the feasible end ``hi``.

    ``beta`` is not recomputed over ``V`` at every step: a token with ratio ``r_y = p_y / q_y >= hi``
    contributes ``q_y`` at every later midpoint and one with ``r_y <= lo`` contributes
    ``p_y / rho``, so ``beta(rho) = Q_fix + P_fix / rho + sum_{y in C} min(q_y, p_y / rho)`` over
    the candidates ``C = {lo < r_y < hi}`` only, and ``C`` is re-partitioned after every step (it
    shrinks with the interval): one pass over ``V``, then work proportional to the surviving
    candidates. The first ``log2 M`` steps need no candidates at all: their midpoints are the edges
    ``1 + (k - 1) j / M`` of ``M`` equal bins of ``r`` in ``[1, k)`` (exact dyadic floats for small
    ``k``), so one pass (bin sums of ``p`` and ``q``) serves them; the candidates are then the
    tokens of a single bin. Equal to the reference's per-step ``beta`` up to summation order.
    """
    dt, dev = p.dtype, p.device
    rho = torch.ones(p.shape[0], dtype=dt, device=dev)
    rows = (k > 1).nonzero()[:, 0]
    if rows.numel() == 0:
        return rho
    if rows.numel() < p.shape[0]:
        p, q, k = p.index_select(0, rows), q.index_select(0, rows), k.index_select(0, rows)
    R, V = p.shape
    K = k.to(dt)
    # one pass: bin b of token y counts the edges e_j = 1 + (K - 1) j / M (j = 0..M) with e_j <= r_y
    # (r < 1: bin 0; r >= K: bin M + 1; NaN for p = q = 0: bin 0, it adds 0), up to the rounding of
    # (r - 1) M / (K - 1) for r within an ulp of an edge, where min(q, p / e) = q up to rounding;
    # the first log2 M midpoints of the bisection are these edges: its first steps read bin sums
    M = _RHO_BINS
    ratio = p / q  # q = 0: inf (p > 0, adds q = 0) or NaN (p = 0, adds 0)
    x = (ratio - 1).mul_((M / (K - 1))[:, None]).add_(1)
    bins = torch.nan_to_num_(x, nan=0.0).clamp_(0, M + 1).long()  # floor: x >= 0
    p_bin = torch.zeros((R, M + 2), dtype=dt, device=dev).scatter_add_(1, bins, p)
    q_bin = torch.zeros((R, M + 2), dtype=dt, device=dev).scatter_add_(1, bins, q)
    p_pre = torch.cumsum(p_bin, 1)  # sum of p over bins <= j
    q_suf = torch.cumsum(q_bin.flip(1), 1).flip(1)  # sum of q over bins >= j
    b1 = p_pre[:, 0] + q_suf[:, 1]  # beta(1)
    active = 1 - (1 - b1) ** K - b1 > 0
    lo = torch.ones(R, dtype=dt, device=dev)
    hi = K.clone()
    jlo = torch.zeros(R, dtype=torch.long, device=dev)
    jhi = torch.full((R,), M, dtype=torch.long, device=dev)
    for _ in range(M.bit_length() - 1):
        mid = 0.5 * (lo + hi)
        jmid = (jlo + jhi) // 2
        # r >= mid = e_jmid: bins >= jmid + 1 add q; the others p / mid
        beta = q_suf.gather(1, (jmid + 1)[:, None])[:, 0] + p_pre.gather(1, jmid[:, None])[:, 0] / mid
        pos = (1 - (1 - beta) ** K - mid * beta > 0) & active
        neg = ~pos & active
        lo, jlo = torch.where(pos, mid, lo), torch.where(pos, jmid, jlo)
        hi, jhi = torch.where(neg, mid, hi), torch.where(neg, jmid, jhi)
    # candidates: the tokens of the one bin left between lo and hi (bin jhi when jhi = jlo + 1)
    q_fix = q_suf.gather(1, (jhi + 1)[:, None])[:, 0]
    p_fix = p_pre.gather(1, jlo[:, None])[:, 0]
    cand = (bins == jhi[:, None]).logical_and_(active[:, None])
    flat = cand.view(-1).nonzero()[:, 0]
    cr = flat // V
    # candidates as one [C, 4] table (p, q, ratio, row), compacted by one index_select per step
    cand_t = torch.stack([p.view(-1).index_select(0, flat), q.view(-1).index_select(0, flat),
                          ratio.view(-1).index_select(0, flat), cr.to(dt)], 1)
    out = torch.ones(R, dtype=dt, device=dev)
    while True:
        mid = 0.5 * (lo + hi)
        stop = active & ~((lo < mid) & (mid < hi))
        if bool(stop.any()):
            out = torch.where(stop, hi, out)
            active &= ~stop
            cand_t = cand_t.index_select(0, active[cr].nonzero()[:, 0])
            cr = cand_t[:, 3].long()
        if not bool(active.any()):
            break
        cp, cq, cratio = cand_t[:, 0], cand_t[:, 1], cand_t[:, 2]
        beta = (q_fix + p_fix / mid).index_add_(0, cr, torch.minimum(cq, cp / mid.index_select(0, cr)))
        pos = 1 - (1 - beta) ** K - mid * beta > 0
        lo = torch.where(active & pos, mid, lo)
        hi = torch.where(active & ~pos, mid, hi)
        up, down = cratio >= hi.index_select(0, cr), cratio <= lo.index_select(0, cr)
        q_fix.index_add_(0, cr, torch.where(up, cq, 0))
        p_fix.index_add_(0, cr, torch.where(down, cp, 0))
        keep = (up | down).logical_not_().nonzero()[:, 0]
        cand_t = cand_t.index_select(0, keep)
        cr = cr.index_select(0, keep)
    return out if rows.numel() == rho.numel() else rho.index_copy_(0, rows, out)


def _spectr(p, q, x, m, U, u, lay, ctx):
    k = m.sum(1)
    rho = kseq_rho(p, q, k)

    def residual(live):
        """``norm((p - gamma min(q, p / rho))_+)`` of the rows ``live`` that rejected every draft."""
        pl, ql, kl, rl = p.index_select(0, live), q.index_select(0, live), k.index_select(0, live), rho.index_select(0, live)
        mn = torch.minimum(ql, pl / rl[:, None])
        b = mn.sum(-1)
        gamma = torch.where(b > 0, (1 - (1 - b) ** kl.to(p.dtype)) / torch.where(b > 0, b, torch.ones_like(b)),
                            torch.zeros_like(b))
        # k = 1: rho = 1, mn = min(p, q), residual p - mn (gamma 1, as the reference's p - min(p, q))
        gamma = torch.where(kl == 1, torch.ones_like(gamma), gamma)
        res = mn.mul_(gamma[:, None])
        return normalize_or(torch.sub(pl, res, out=res).clamp_min_(0), pl)

    def thr(xj):
        return p.gather(1, xj[:, None])[:, 0] / (rho * q.gather(1, xj[:, None])[:, 0])

    return _sequential(p, q, x, m, U, u, lay, update_q=False, threshold=thr, final=residual)


def _cpu_rows(ctx, r_tree: torch.Tensor, u: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    p64, q64 = ctx["laws64"]
    rt, uc = r_tree.cpu(), u.cpu()
    return p64[rt, uc].numpy(), q64[rt, uc].numpy()


def _khisti(p, q, x, m, U, u, lay, ctx):
    from specoracle.reference.topdown import khisti_selection

    P, Q = _cpu_rows(ctx, ctx["rows"], u)
    xs, ks = x.cpu().numpy(), m.sum(1).cpu().numpy()
    sig, qis, res = [], [], []
    for i in range(len(P)):
        d = tuple(sorted(int(t) for t in xs[i, : ks[i]]))  # plans are indexed by the sorted multiset
        sel = khisti_selection(P[i], Q[i], len(d))
        sig.append(sel.sigma[d])
        qis.append(sel.q_is)
        res.append(sel.residual)
    as_t = lambda a: torch.as_tensor(np.stack(a), dtype=torch.float64, device=p.device)  # noqa: E731
    sig, qis, res = as_t(sig), as_t(qis), as_t(res)
    z = categorical(_col(U, lay.pick(u)).to(torch.float64), sig)
    p64 = torch.as_tensor(P, device=p.device)
    thr = p64.gather(1, z[:, None])[:, 0] / qis.gather(1, z[:, None])[:, 0]
    acc = _col(U, lay.accept(u, 0)).to(torch.float64) < thr
    t = torch.where(acc, z, categorical(_col(U, lay.residual(u)).to(torch.float64), res))
    return t


def _ot(p, q, x, m, U, u, lay, ctx):
    from specoracle.reference.topdown import ot_plan

    P, Q = _cpu_rows(ctx, ctx["rows"], u)
    xs, ks = x.cpu().numpy(), m.sum(1).cpu().numpy()
    rows, res = [], []
    for i in range(len(P)):
        d = tuple(sorted(int(t) for t in xs[i, : ks[i]]))  # plans are indexed by the sorted multiset
        plan = ot_plan(P[i], Q[i], len(d), ctx["sampling"])
        row = plan.out[d]
        rows.append(np.append(row, max(0.0, 1.0 - row.sum())))
        res.append(plan.residual)
    rows_t = torch.as_tensor(np.stack(rows), dtype=torch.float64, device=p.device)
    res_t = torch.as_tensor(np.stack(res), dtype=torch.float64, device=p.device)
    V = p.shape[1]
    pick = categorical(_col(U, lay.pick(u)).to(torch.float64), rows_t)
    return torch.where(pick < V, pick, categorical(_col(U, lay.residual(u)).to(torch.float64), res_t))


# --- the driver ----------------------------------------------------------------------------------
def walk(batch: TreeBatch, U: torch.Tensor, solver: Callable, layout: str, children: str = "draws"):
    """Top-down walk of every tree with ``solver`` at each internal node (see module docstring).

    Returns
    -------
    node, token : LongTensor [B] each.
    """
    B, N = batch.B, batch.N
    dev = batch.device
    lay = _Layout(layout, N, batch.K)
    slots = batch.draws if children == "draws" else distinct_children(batch)
    xtok = torch.where(slots >= 0, batch.tokens.gather(1, slots.clamp_min(0).reshape(B, -1)).reshape(slots.shape), slots)
    node = torch.zeros(B, dtype=torch.long, device=dev)
    out_node = torch.zeros(B, dtype=torch.long, device=dev)
    out_tok = torch.zeros(B, dtype=torch.long, device=dev)
    live = torch.ones(B, dtype=torch.bool, device=dev)
    rows_all = torch.arange(B, device=dev)
    laws64 = batch.laws64() if solver in (_khisti, _ot) else None
    for _ in range(batch.L + 1):
        if not bool(live.any()):
            break
        r = rows_all[live]
        u = node[r]
        x, m = xtok[r, u], slots[r, u] >= 0
        p, q = rows_at(batch.p, r, u), rows_at(batch.q, r, u)
        leaf = ~m[:, 0]
        t = torch.empty(len(r), dtype=torch.long, device=dev)
        if bool(leaf.any()):
            t[leaf] = categorical(_col(U[r[leaf]], lay.residual(u[leaf])), p.index_select(0, leaf.nonzero()[:, 0]))
        inner = ~leaf
        if bool(inner.any()):
            ctx = {"rows": r[inner], "laws64": laws64, "sampling": batch.sampling}
            ii = inner.nonzero()[:, 0]
            t[inner] = solver(p.index_select(0, ii), q.index_select(0, ii), x[inner], m[inner], U[r[inner]], u[inner], lay, ctx)
        hit = (x == t[:, None]) & m
        found = hit.any(1)
        child = slots[r, u].gather(1, hit.to(torch.int8).argmax(1)[:, None])[:, 0]
        stop = ~found
        out_node[r[stop]] = u[stop]
        out_tok[r[stop]] = t[stop]
        live[r[stop]] = False
        node[r[found]] = child[found]
    return out_node, out_tok


def _make(name: str, solver, layout: str, children: str = "draws", note: str = "") -> Twin:
    def run(batch, U):
        return walk(batch, U, solver, layout, children)

    def keys(batch):
        return _Layout(layout, batch.N, batch.K).keys()

    run.__name__ = name
    return Twin(name, run, keys, note)


_LP_NOTE = "per visited node the reference's LP is solved on CPU (float64); decisions in torch"
TWINS = {
    "nss": _make("nss", _nss, "none"),
    "naive_tree": _make("naive_tree", _naive_tree, "accept"),
    "specinfer": _make("specinfer", _specinfer, "accept"),
    "spectr": _make("spectr", _spectr, "accept", note="rho* by batched bisection in torch"),
    "khisti": _make("khisti", _khisti, "pick_accept", note=_LP_NOTE),
    "ot_optimal": _make("ot_optimal", _ot, "pick", note=_LP_NOTE),
    "rrs_wor": _make("rrs_wor", _rrs, "accept", children="children"),
}
