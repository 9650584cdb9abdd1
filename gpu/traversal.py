"""Batched twin of Traversal Verification (``reference.traversal``), strict post-order.

The recursion of the reference visits nodes in a fixed order per tree: node ``c`` is *entered*
(its weight ``w_c = min(1, w_u p^_u(x) / q^_u(x))`` is fixed) in DFS pre-order and *exited* (its
accept coin ``U[("accept", c)] < w_c``; on failure the parent's state ``(w, p^, q^)`` takes the
residual update) in post-order; the first successful exit ends the call. The twin precomputes
this event sequence for every tree of the batch (one sort, ``2N - 1`` events) and runs one loop
over event steps, vectorised over the batch.

Node states are never stored as ``V``-wide rows. Writing ``M_u`` for the tokens of the rejected
children of ``u``, the reference's updates keep the form

    q^_u = cq_u q_u off M_u, 0 on M_u;      p^_u = (a_u p_u - b_u q_u)_+ off M_u,
    p^_u(x_c) = a_u e_c on M_u              (e_c fixed when child c is rejected)

(the support of ``(w p^ - q^)_+`` only shrinks, so one positive part of a linear combination of the
original rows is enough), with per-node scalars ``w, a, b, cq`` and the unrejected draft mass ``T``
(``cq = 1 / T``; ``T`` starts at 1, rows are laws). A residual update needs only
``S = sum_y (w p^ - q^)_+ = A sum_{y not in M} (p + K q)_+ + A sum_M e`` with ``A = w a``,
``K = -(w b + cq) / A``: one gather of the node's original ``p, q`` rows and one in-cache pass
(:func:`_resid_sums`), and none when ``A = 0`` (``w_u = 0``: ``S = 0``, about half the updates
at large ``V``); the scalars then update in closed form. Entry weights read two scalars
``p_u(x), q_u(x)``; a full row is built only once per tree, for the final residual draw. The
results equal the reference's up to floating-point rounding of the same quantities.
"""
from __future__ import annotations

from typing import NamedTuple

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


CHUNK = 1 << 22  # bytes per gather buffer of _resid_sums (two buffers)


class NodeRows(NamedTuple):
    """Scalar state of some nodes (each field [R]): the entry/acceptance weight ``w``, the
    coefficients ``a, b`` of ``p^ = (a p - b q)_+`` off the rejected tokens, ``cq`` of
    ``q^ = cq q`` there, and ``T`` the unrejected draft mass (``cq = 1 / T``)."""

    w: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    cq: torch.Tensor
    T: torch.Tensor


class NodeState:
    """:class:`NodeRows` of every node of the batch, stored as one ``[B, N, 5]`` tensor so that a
    step gathers (:meth:`rows`) or writes (:meth:`put`) all five fields of its nodes at once.

    :meth:`field` gives a named [B, N] view; ``flat`` indexes nodes as ``b N + u``. Initial
    state: ``w = a = cq = T = 1``, ``b = 0`` (``p^ = p``, ``q^ = q``).
    """

    FIELDS = NodeRows._fields

    def __init__(self, B: int, N: int, dtype, device) -> None:
        self.data = torch.zeros((B, N, len(self.FIELDS)), dtype=dtype, device=device)
        for name in ("w", "a", "cq", "T"):
            self.data[..., self.FIELDS.index(name)] = 1
        self.flat = self.data.view(B * N, len(self.FIELDS))

    def field(self, name: str) -> torch.Tensor:
        """The [B, N] view of one field (``"w"``, ``"a"``, ``"b"``, ``"cq"`` or ``"T"``)."""
        return self.data[..., self.FIELDS.index(name)]

    def w_index(self, flat_node: torch.Tensor) -> torch.Tensor:
        """Indices of the ``w`` entries of flat nodes in ``data.view(-1)``."""
        return flat_node * len(self.FIELDS) + self.FIELDS.index("w")

    def rows(self, flat_node: torch.Tensor) -> NodeRows:
        """The state of the flat nodes ``flat_node`` [R] (one gather)."""
        return NodeRows(*self.flat.index_select(0, flat_node).unbind(1))

    def put(self, flat_node: torch.Tensor, rows: NodeRows) -> None:
        """Write the state of the flat nodes ``flat_node`` [R] (one scatter)."""
        self.flat.index_copy_(0, flat_node, torch.stack(rows, 1))


class _ResidBuffers:
    """The two gather buffers of :func:`_resid_sums`, allocated once per call of the twin."""

    def __init__(self, B: int, V: int, dtype, device, chunk_bytes: int = CHUNK):
        self.step = max(1, chunk_bytes // max(1, V * torch.finfo(dtype).bits // 8))
        n = min(self.step, B)
        self.p = torch.empty((n, V), dtype=dtype, device=device)
        self.q = torch.empty((n, V), dtype=dtype, device=device)


def _resid_sums(pf, qf, idx, K, zflat, bufs: _ResidBuffers):
    """``G = sum_y (p(y) + K q(y))_+`` for the rows ``idx`` of ``pf, qf`` [*, V] (``K`` [R]), with
    the flat entries ``zflat`` (``row_in_idx * V + token``) left out. Row chunks through the reused
    buffers ``bufs`` (one gather per law, everything else in place, in cache)."""
    R = idx.shape[0]
    V = pf.shape[1]
    out = torch.empty(R, dtype=pf.dtype, device=pf.device)
    step = bufs.step
    for s in range(0, R, step):
        e = min(R, s + step)
        t, u = bufs.p[: e - s], bufs.q[: e - s]
        ii, k = (idx, K[:, None]) if s == 0 and e == R else (idx[s:e], K[s:e, None])
        torch.index_select(pf, 0, ii, out=t)
        torch.index_select(qf, 0, ii, out=u)
        t.addcmul_(u, k).clamp_min_(0)
        if zflat is not None:
            if s == 0 and e == R:
                t.view(-1)[zflat] = 0
            else:
                m = (zflat >= s * V) & (zflat < e * V)
                t.view(-1)[zflat[m] - s * V] = 0
        torch.sum(t, dim=-1, out=out[s:e])
    return out


def traversal(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Traversal Verification on a batch of trees (shared-uniform layout of ``traversal_keys``).

    Node states are kept in scalar form (module docstring): a residual update gathers the node's
    original ``p, q`` rows once to get ``S``; full rows are built only for the final residual draw.

    Returns
    -------
    node, token : LongTensor [B] each.
    """
    B, N, V = batch.B, batch.N, batch.V
    dev, dt = batch.device, batch.dtype
    rows_all = torch.arange(B, device=dev)
    ev_node, ev_enter = event_order(batch)
    E = ev_node.shape[1]
    one = torch.ones((), dtype=dt, device=dev)
    pf, qf = batch.p.reshape(B * N, V), batch.q.reshape(B * N, V)
    pflat, qflat = pf.view(-1), qf.view(-1)
    st = NodeState(B, N, dt, dev)
    rowsN = torch.arange(B, device=dev) * N
    # p^_parent at the token of a rejected child c is a_parent * e_c (e_c fixed when c is rejected)
    ee = torch.zeros((B, N), dtype=dt, device=dev)
    eef = ee.view(-1)
    rej = torch.zeros((B, N), dtype=torch.bool, device=dev)
    rejf = rej.view(-1)
    parents = batch.parents
    tok0 = batch.tokens.clamp_min(0)
    tok0f = tok0.reshape(-1)
    # everything about the event sequence that does not depend on the outcomes
    ev_nd = ev_node.clamp_min(0)
    ev_par = parents.gather(1, ev_nd).clamp_min(0)
    ev_x = tok0.gather(1, ev_nd)
    ev_fi = (rows_all[:, None] * N + ev_par) * V + ev_x  # flat index of p_u(x), q_u(x)
    ev_px, ev_qx = pflat[ev_fi], qflat[ev_fi]
    ev_coin = U.gather(1, (ev_nd - 1).clamp_min(0))  # ("accept", node) column
    ev_valid = ev_node >= 0
    ev_in = ev_valid & ev_enter
    ev_out = ev_valid & ~ev_enter
    # step-major copies: one gather per step for what a failed exit needs
    ev_T = torch.stack([ev_par, rowsN[:, None] + ev_par, rowsN[:, None] + ev_nd], -1).transpose(0, 1).contiguous()
    ev_pq = torch.stack([ev_px, ev_qx], -1).transpose(0, 1).contiguous()  # [E, B, 2]
    ev_w5 = st.w_index(rowsN[:, None] + ev_nd).t().contiguous()  # index of the event node's w in st.data
    ev_coinT = torch.where(ev_nd == 0, torch.full_like(ev_coin, -1), ev_coin).t().contiguous()  # root: accept
    ev_inT, ev_outT = ev_in.t().contiguous(), ev_out.t().contiguous()
    stv = st.data.view(-1)
    # steps where every exiting node is its parent's first child: no rejected siblings to mask
    arN = torch.arange(N, device=dev)
    earlier = ((parents[:, :, None] == parents[:, None, :]) & (arN[None, None, :] < arN[None, :, None])).any(-1)
    ev_first_only = (~ev_out | ~earlier.gather(1, ev_nd)).all(0).tolist()
    ev_any_in, ev_all_in = ev_in.any(0).tolist(), ev_in.all(0).tolist()
    ev_any_out = ev_out.any(0).tolist()
    live = torch.ones(B, dtype=torch.bool, device=dev)
    res = torch.zeros(B, dtype=torch.long, device=dev)
    bufs = _ResidBuffers(B, V, dt, dev)
    for t in range(E):
        if ev_any_in[t]:
            # entry weights w_c = min(1, w_u p^_u(x) / q^_u(x)) (harmless for finished trees: their
            # nodes are never read again)
            wu, au, bu, cu, _ = st.rows(ev_T[t, :, 1])
            px, qx = ev_pq[t].unbind(1)
            ph = torch.mul(px, au).sub_(torch.mul(qx, bu)).clamp_min_(0)
            wc = torch.minimum(wu * ph / (qx * cu), one)
            j5 = ev_w5[t]
            stv[j5] = wc if ev_all_in[t] else torch.where(ev_inT[t], wc, stv[j5])
        if ev_any_out[t]:
            exiting = ev_outT[t] & live
            accept = exiting & (ev_coinT[t] < stv[ev_w5[t]])
            res = torch.where(accept, ev_nd[:, t], res)
            live &= ~accept
            r = (exiting ^ accept).nonzero()[:, 0]  # failed exits
            if r.numel():
                u, ru, rc = ev_T[t].index_select(0, r).unbind(1)
                wu, au, bu, cu, Tu = st.rows(ru)
                A = wu * au  # w p^ - q^ = (A p - Bc q) off the rejected tokens, w a e on them
                Bc = wu * bu + cu
                # S = A G(K) with K = -Bc / A; A = 0 (w_u = 0: u can no longer be accepted) gives
                # S = 0 without reading u's rows
                Apos = A > 0
                g = None if bool(Apos.all()) else Apos.nonzero()[:, 0]  # rows that need G
                if ev_first_only[t]:
                    has_z, zflat = False, None
                else:
                    msk = rej.index_select(0, r).logical_and_(parents.index_select(0, r) == u[:, None])  # [R, N] rejected children of u
                    zr, zc = msk.nonzero(as_tuple=True)
                    ztok = tok0f[(ru - u)[zr] + zc]
                    if g is not None:  # renumber the masked entries' rows within g
                        keep = Apos[zr]
                        zr, ztok = (torch.cumsum(Apos, 0) - 1)[zr[keep]], ztok[keep]
                    has_z = zr.numel() > 0
                    zflat = zr * V + ztok if has_z else None
                if g is None:
                    S = _resid_sums(pf, qf, ru, -Bc / A, zflat, bufs).mul_(A)
                else:
                    S = torch.zeros_like(A)
                    if g.numel():
                        Ag = A[g]
                        S[g] = _resid_sums(pf, qf, ru[g], -Bc[g] / Ag, zflat, bufs).mul_(Ag)
                if has_z:
                    S += A * ee.index_select(0, r).mul_(msk).sum(-1)
                px, qx = ev_pq[t].index_select(0, r).unbind(1)
                ex = torch.mul(px, A).sub_(torch.mul(qx, Bc)).clamp_min_(0)  # S * p^_new(x)
                pos = S > 0
                if bool(pos.all()):
                    w_new = S / (S + (1 - wu))
                    a_new = A / S
                    b_new = Bc / S
                    ex = ex / A
                else:  # S == 0: the node can no longer be accepted, p^ kept
                    Ss = torch.where(pos, S, one)
                    w_new = torch.where(pos, S / (S + (1 - wu)), torch.zeros_like(wu))
                    a_new = torch.where(pos, A / Ss, au)
                    b_new = torch.where(pos, Bc / Ss, bu)
                    ex_kept = torch.mul(px, au).sub_(torch.mul(qx, bu)).clamp_min_(0) / au
                    ex = torch.where(pos, ex / torch.where(pos, A, one), ex_kept)
                Tn = Tu - qx
                nz = Tn != 0
                c_new = 1 / Tn if bool(nz.all()) else torch.where(nz, 1 / torch.where(nz, Tn, one), cu)
                st.put(ru, NodeRows(w_new, a_new, b_new, c_new, Tn))
                eef[rc] = ex
                rejf[rc] = True
            if not bool(live.any()):
                break
    a, b = st.field("a"), st.field("b")
    # residual law of the accepted node: (a p - b q)_+ off its rejected children, a e on them
    idx = rows_all * N + res
    law = pf.index_select(0, idx)
    law.mul_(a[rows_all, res][:, None]).sub_(qf.index_select(0, idx).mul_(b[rows_all, res][:, None])).clamp_min_(0)
    msk = rej & (parents == res[:, None])
    zr, zc = msk.nonzero(as_tuple=True)
    if zr.numel():
        law[zr, tok0[zr, zc]] = a[zr, res[zr]] * ee[zr, zc]
    uu = U.gather(1, (N - 1 + res)[:, None])[:, 0]
    return res, categorical(uu, law)


TRAVERSAL = Twin("traversal", traversal, chain_keys("accept"))
TWINS = {"traversal": TRAVERSAL}
