"""Batched twins of the stateful SpecTr-GBV verifiers (``reference.spectr_gbv``).

Both references are stateful: after an iteration, the target of the next ones is a modified law.
A twin call is ``twin(batch, uniforms=U, state=S)``; ``S = None`` at the first call of every
sequence, then the ``state`` of the previous :class:`~.batch.TwinResult` (a :class:`GreedyState`).

One iteration, on effective target rows ``m`` (``p`` at the first call):

- ``spectr_gbv_lossless``: the best-of-K path under ``(m/q, token)`` (as GBV), greedy block
  verification on it with ``A(s) = min(M(s), Q_skew(s))``: coins ``h_i = [A(x^i) - sum_y A(x^i y)]
  / [Q_skew(x^i) - sum_y A(x^i y)]`` (``h_L = A/Q_skew``), ``tau`` = last success (keys
  ``("stop", node)``), correction ``norm(M(s y) - A(s y))`` or bonus ``norm(M(s) m)``.
- ``spectr_gbv``: the per-iteration scan reconstructed from third-party code (paper text
  unavailable): candidates (the K drafted paths in draw
  order) scanned position by position beyond the current best, coin ``("test", node)`` with
  ``h = [g(x^i) - sum_y g(x^i y)] / [D(x^i) - sum_y g(x^i y)]`` (``g(s) = M(s)[1 - (1 -
  min(Q/M, 1))^K]``, ``D = 1 - (1 - Q)^K``), full block w.p. ``g/D``; correction
  ``norm(M(s y)[1 - min(Q/M, 1)(s y)^K])``. ``spectr_gbv_as_found`` (stateless) is the same scan
  on ``p`` without the duplicate skip: coin ``("test", j, i)`` per candidate and position.

State (the reference's ``_Modified`` chain, in closed form): an earlier iteration ``k`` with design
``(kind, K_k, L_k)`` whose context has since grown by the emitted tokens ``W_k`` changes the law
after ``W_k t`` while ``|W_k| + |t| < L_k``:
``m_{k+1}(. | t) = (M_k(W_k t .) - D_ext(W_k t .))_+ / sum`` with ``D_ext = A_k + corr_k r / sum
corr_k``, ``r = A_k(W_k t) - sum_y A_k(W_k t y)`` (rows ``m_k``; fallback ``m_k`` where the sum or
``M_k - A_k`` is 0). Every quantity is a product along ``W_k t``, so a level keeps only the
masses of ``W_k`` (``M, Q`` and the skew walk's ``A_rank, Qm``; [B] each) and ``|W_k|``; a call
applies the live levels oldest first to the drafted rows and advances their masses along the
emitted block. A level dies once ``|W_k| >= L_k`` (at most ``L`` live levels).

``sum_y A(x^i y)`` needs the rank mass below every token; the twin takes it from one sorted
cumulative sum (the reference sums token by token), so the two agree up to rounding.
Uniform layout = ``spectr_gbv_keys``: ``("test", 1..N-1) + ("stop", 1..N-1) + ("residual", 0..N-1)``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from specoracle.errors import InvalidArgument, InvalidInstance

from .batch import Twin, TreeBatch, categorical, gather_rows
from .gbv import select_path

__all__ = ["spectr_gbv", "spectr_gbv_as_found", "spectr_gbv_lossless", "GreedyState", "TWINS"]


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


def _min_ratio(M: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """``min(Q/M, 1)`` (1 where ``Q >= M``, as the reference's ``Q/M if Q < M else 1``)."""
    return torch.where(Q < M, Q / torch.where(M > 0, M, torch.ones_like(M)), torch.ones_like(M))


def _g(M: torch.Tensor, Q: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``g = M [1 - (1 - min(Q/M, 1))^K]`` (0 where ``M = 0``); ``K`` float, broadcast."""
    return torch.where(M > 0, M * (1 - (1 - _min_ratio(M, Q)) ** K), torch.zeros_like(M))


def _corr_g(M: torch.Tensor, Q: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Transcribed correction weight ``M [1 - min(Q/M, 1)^K]`` (0 where ``M = 0``)."""
    return torch.where(M > 0, M * (1 - _min_ratio(M, Q) ** K), torch.zeros_like(M))


def _lossless_iteration(batch: TreeBatch, U: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One iteration of greedy block verification on the best-of-K path, ``batch.p`` the
    effective target rows (see module docstring)."""
    B, N, L = batch.B, batch.N, batch.L
    dev, dt = batch.device, batch.dtype
    rows = torch.arange(B, device=dev)
    path, _ = select_path(batch)
    M = torch.ones(B, dtype=dt, device=dev)
    Ar = torch.zeros(B, dtype=dt, device=dev)
    Qm = torch.ones(B, dtype=dt, device=dev)
    Ms, Ars, Qms, sums, belows = [], [], [], [], []
    for i in range(L + 1):
        Ms.append(M), Ars.append(Ar), Qms.append(Qm)
        if i < L:
            u = path[:, i]
            p_u, q_u = gather_rows(batch.p, u), gather_rows(batch.q, u)
            below = _rank_below(p_u, q_u)
            belows.append(below)
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
            a = Ars[i][sel][:, None] + Qms[i][sel][:, None] * belows[i][sel]
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


def _scan_iteration(batch: TreeBatch, U: torch.Tensor, K: torch.Tensor,
                    as_found: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One iteration of the reconstructed SpecTr-GBV scan, ``batch.p`` the effective target rows
    (see module docstring; lossy for K >= 2). ``as_found``: no duplicate skip, coin
    ``("test", j, i)`` per candidate and position (layout :func:`_as_found_keys`)."""
    B, N, L = batch.B, batch.N, batch.L
    dev, dt = batch.device, batch.dtype
    Kf = K.to(dt)
    rows = torch.arange(B, device=dev)
    cand = _candidates(batch, K)
    one = torch.ones((), dtype=dt, device=dev)
    # masses M(s), Q(s) of every node
    w = _walk(batch, batch.p, "g", _fresh(batch, K, "g"), torch.zeros_like(batch.valid))
    M, Q = w.M, w.Q

    best = torch.zeros(B, dtype=torch.long, device=dev)
    best_node = torch.zeros(B, dtype=torch.long, device=dev)
    rejected = torch.zeros((B, N), dtype=torch.bool, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    for j in range(cand.shape[1]):
        active_j = (j < K) & ~done
        for i in range(1, L + 1):
            node = cand[:, j, i - 1].clamp_min(0)
            act = active_j & ~done & (i > best) & (as_found | ~rejected[rows, node])
            if not bool(act.any()):
                continue
            Mn, Qn = M[rows, node], Q[rows, node]
            gv = _g(Mn, Qn, Kf)
            cover = 1 - (1 - Qn) ** Kf
            if i < L:
                r = rows[act]
                p_u, q_u = batch.p[r, node[act]], batch.q[r, node[act]]
                below = torch.zeros(B, dtype=dt, device=dev)
                below[act] = _g(Mn[act][:, None] * p_u, Qn[act][:, None] * q_u, Kf[act][:, None]).sum(1)
                den = cover - below
                h = torch.where(den > 0, (gv - below) / torch.where(den > 0, den, one), one)
            else:
                h = gv / cover
            col = torch.full_like(node, j * L + i - 1) if as_found else (node - 1).clamp_min(0)
            coin = U.gather(1, col[:, None])[:, 0] < h
            acc = act & coin
            best = torch.where(acc, torch.full_like(best, i), best)
            best_node = torch.where(acc, node, best_node)
            rejected[rows[act & ~coin], node[act & ~coin]] = True
            if i == L:
                done |= acc
    node = torch.where(best > 0, best_node, torch.zeros_like(best_node))
    p_u, q_u = batch.p[rows, node], batch.q[rows, node]
    Mn, Qn = M[rows, node], Q[rows, node]
    Mc = Mn[:, None] * p_u
    corr = _corr_g(Mc, Qn[:, None] * q_u, Kf[:, None])
    corr = torch.where((batch.depth[rows, node] >= L)[:, None], Mc, corr)
    tot = corr.sum(1, keepdim=True)
    law = torch.where(tot > 0, corr / torch.where(tot > 0, tot, one), p_u)
    u = U.gather(1, ((batch.K * L if as_found else 2 * N - 2) + node)[:, None])[:, 0]
    return node, categorical(u, law)


def _as_found_keys(batch: TreeBatch) -> list:
    return ([("test", j, i) for j in range(batch.K) for i in range(1, batch.L + 1)]
            + [("residual", i) for i in range(batch.N)])


def spectr_gbv_as_found(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The third-party per-iteration rule as found: one stateless scan on ``p`` (``as_found``)."""
    return _scan_iteration(batch, U, _check(batch, "spectr_gbv_as_found"), as_found=True)


# --- the state: earlier iterations' designs, as masses along the tokens emitted since -------------
@dataclass(frozen=True)
class _Level:
    """An earlier iteration's design seen from the current context; tensors [B].

    ``L`` its block length, ``K`` its number of drafted paths, ``length`` = ``|W|`` (tokens emitted
    since its context), ``M, Q`` the target / draft masses of ``W`` under it, ``Ar, Qm`` the skew
    walk's rank mass and path mass along ``W`` (``kind == "skew"`` only; ``None`` otherwise).
    """

    L: int
    K: torch.Tensor
    length: torch.Tensor
    M: torch.Tensor
    Q: torch.Tensor
    Ar: torch.Tensor | None
    Qm: torch.Tensor | None

    def take(self, idx: torch.Tensor) -> "_Level":
        pick = lambda t: None if t is None else t.index_select(0, idx)  # noqa: E731
        return _Level(self.L, pick(self.K), pick(self.length), pick(self.M), pick(self.Q), pick(self.Ar), pick(self.Qm))


@dataclass(frozen=True)
class GreedyState:
    """What a SpecTr-GBV twin hands to its next call: the live earlier designs, oldest first.

    ``kind``: ``"g"`` (``spectr_gbv``) or ``"skew"`` (``spectr_gbv_lossless``). Row ``b`` belongs
    to sequence ``b`` of the batch; :meth:`take` keeps the rows of the sequences still running.
    """

    kind: str
    levels: tuple

    @property
    def B(self) -> int:
        return int(self.levels[0].K.shape[0]) if self.levels else 0

    def take(self, idx: torch.Tensor) -> "GreedyState":
        """The state of the sequences ``idx`` (LongTensor [R]) in that order."""
        return GreedyState(self.kind, tuple(lv.take(idx.to(lv.K.device)) for lv in self.levels))


@dataclass(frozen=True)
class _Walk:
    """Masses of ``W t`` under one design for every node ``t`` ([B, N] each; ``Ar, Qm`` skew only),
    exact at the nodes of ``rows`` and their children. ``rows`` (LongTensor [R], flat ``b N + t``)
    are the nodes whose full next-token quantities are needed; ``below`` [R, V] their rank masses
    (skew only) and ``slot`` [B N] the position of a node in ``rows`` (``-1`` if absent)."""

    M: torch.Tensor
    Q: torch.Tensor
    Ar: torch.Tensor | None
    Qm: torch.Tensor | None
    rows: torch.Tensor
    below: torch.Tensor | None
    slot: torch.Tensor

    def below_at(self, flat_node: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """``below(token)`` in the row of ``flat_node`` (same shapes; 0 where the row was not computed)."""
        s = self.slot[flat_node]
        if self.below is None or self.below.shape[0] == 0:
            return torch.zeros(flat_node.shape, dtype=self.M.dtype, device=self.M.device)
        V = self.below.shape[1]
        got = self.below.reshape(-1).gather(0, (s.clamp_min(0) * V + token).reshape(-1)).reshape(flat_node.shape)
        return torch.where(s >= 0, got, torch.zeros_like(got))


def _walk(batch: TreeBatch, m: torch.Tensor, kind: str, start: _Level, need: torch.Tensor) -> _Walk:
    """Extend the masses of ``W`` (``start``, [B]) down the tree with target rows ``m`` [B, N, V]:
    ``M(W t x) = M(W t) m(x | t)``, ``Q`` with ``q``; skew: ``A_rank += Qm below(x)``, ``Qm *= q(x)``.
    ``need`` [B, N]: the nodes whose rows are used (ranks are sorted there only)."""
    B, N, V = batch.B, batch.N, batch.V
    b = torch.arange(B, device=m.device)[:, None]
    par = batch.parents.clamp_min(0)
    flat_par = b * N + par  # parent of every node, flat over [B N]
    tok = batch.tokens.clamp_min(0)
    at_token = flat_par * V + tok  # the child's token in its parent's row, flat over [B N V]
    m_x = m.reshape(-1).gather(0, at_token.reshape(-1)).reshape(B, N)
    q_x = batch.q.reshape(-1).gather(0, at_token.reshape(-1)).reshape(B, N)
    rows = need.reshape(-1).nonzero()[:, 0]
    slot = torch.full((B * N,), -1, dtype=torch.long, device=m.device)
    slot[rows] = torch.arange(rows.numel(), device=m.device)
    skew = kind == "skew"
    below = None
    if skew:
        below = _rank_below(m.reshape(B * N, V).index_select(0, rows), batch.q.reshape(B * N, V).index_select(0, rows))
    start_of = lambda t: None if t is None else t[:, None].expand(B, N)  # noqa: E731
    w = _Walk(start_of(start.M), start_of(start.Q), start_of(start.Ar), start_of(start.Qm), rows, below, slot)
    b_x = w.below_at(flat_par, tok) if skew else None
    M, Q, Ar, Qm = w.M, w.Q, w.Ar, w.Qm
    for d in range(1, batch.L + 1):  # parents sit one level up
        here = batch.depth == d
        if skew:
            Ar = torch.where(here, Ar.gather(1, par) + Qm.gather(1, par) * b_x, Ar)
            Qm = torch.where(here, Qm.gather(1, par) * q_x, Qm)
        M = torch.where(here, M.gather(1, par) * m_x, M)
        Q = torch.where(here, Q.gather(1, par) * q_x, Q)
    return replace(w, M=M, Q=Q, Ar=Ar, Qm=Qm)


def _live(batch: TreeBatch, level: _Level) -> torch.Tensor:
    """Nodes whose law ``level`` modifies: ``|W| + depth(t) < L`` [B, N]."""
    return batch.valid & (level.length[:, None] + batch.depth < level.L)


def _modify(batch: TreeBatch, m: torch.Tensor, kind: str, level: _Level, w: _Walk) -> torch.Tensor:
    """Rows of the target after ``level``'s design emitted ``W``: ``m'(. | t)`` [B, N, V] (module
    docstring) at the nodes ``w.rows`` (``_live``); ``m`` elsewhere and where the modified law has
    no mass."""
    B, N, V = m.shape
    rows = w.rows
    m_r, q_r = m.reshape(B * N, V).index_select(0, rows), batch.q.reshape(B * N, V).index_select(0, rows)
    M, Q = w.M.reshape(-1)[rows], w.Q.reshape(-1)[rows]
    Kl = level.K[rows // N]
    Mc = M[:, None] * m_r
    if kind == "g":
        Kf = Kl.to(m.dtype)
        Qc = Q[:, None] * q_r
        Ac, corr = _g(Mc, Qc, Kf[:, None]), _corr_g(Mc, Qc, Kf[:, None])
        A = _g(M, Q, Kf)
    else:
        Ar, Qm = w.Ar.reshape(-1)[rows], w.Qm.reshape(-1)[rows]
        a = Ar[:, None] + Qm[:, None] * w.below
        Ac = torch.minimum(Mc, _pow(a + Qm[:, None] * q_r, Kl[:, None]) - _pow(a, Kl[:, None]))
        corr = Mc - Ac
        A = torch.minimum(M, _pow(Ar + Qm, Kl) - _pow(Ar, Kl))
    r = A - Ac.sum(-1)
    total = corr.sum(-1)
    spread = torch.where(total > 0, r / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(r))
    num = (Mc - (Ac + corr * spread[:, None])).clamp_min(0)
    den = num.sum(-1)
    use = (den > 0) & (M - A > 0)
    new = torch.where(use[:, None], num / torch.where(den > 0, den, torch.ones_like(den))[:, None], m_r)
    return m.reshape(B * N, V).index_copy(0, rows, new).reshape(B, N, V)


def _advance(batch: TreeBatch, m: torch.Tensor, level: _Level, w: _Walk, node: torch.Tensor,
             token: torch.Tensor) -> _Level:
    """``level`` after the block ``prefix(node) + (token,)`` was emitted: masses of ``W + block``
    (exact wherever the level stays live, i.e. ``node`` is one of ``w.rows``)."""
    B, N, V = m.shape
    flat = torch.arange(B, device=m.device) * N + node
    at = flat * V + token  # flat index of (b, node, token)
    m_y, q_y = m.reshape(-1).gather(0, at), batch.q.reshape(-1).gather(0, at)
    pick = lambda t: t.reshape(-1).gather(0, flat)  # noqa: E731
    Ar = Qm = None
    if w.Ar is not None:
        Ar = pick(w.Ar) + pick(w.Qm) * w.below_at(flat, token)
        Qm = pick(w.Qm) * q_y
    length = level.length + batch.depth.gather(1, node[:, None])[:, 0] + 1
    return _Level(level.L, level.K, length, pick(w.M) * m_y, pick(w.Q) * q_y, Ar, Qm)


def _fresh(batch: TreeBatch, K: torch.Tensor, kind: str) -> _Level:
    """The design of the current call, before it emitted anything (``W`` empty)."""
    one = torch.ones(batch.B, dtype=batch.dtype, device=batch.device)
    zero = torch.zeros_like(one)
    skew = kind == "skew"
    return _Level(batch.L, K, torch.zeros_like(K), one, one, zero if skew else None, one if skew else None)


def _on_path(batch: TreeBatch, node: torch.Tensor) -> torch.Tensor:
    """Ancestors of ``node`` and ``node`` itself, BoolTensor [B, N]."""
    on = torch.zeros((batch.B, batch.N), dtype=torch.bool, device=node.device)
    u = node
    for _ in range(batch.L + 1):
        hit = torch.zeros_like(on).scatter_(1, u.clamp_min(0)[:, None], True)
        on |= hit & (u >= 0)[:, None]
        u = torch.where(u > 0, batch.parents.gather(1, u.clamp_min(0)[:, None])[:, 0], torch.full_like(u, -1))
    return on


def _stateful(kind: str, who: str, iteration):
    """A twin ``run(batch, U, state)``: apply the state's levels to ``p``, run one iteration on the
    effective rows, advance every level along the emitted block and add this call's design."""

    def run(batch: TreeBatch, U: torch.Tensor, state: GreedyState | None):
        K = _check(batch, who)
        levels = () if state is None else _validate(state, kind, batch, who)
        m, walked = batch.p, []
        for level in levels:  # oldest first: level k's design saw the rows of the levels before it
            w = _walk(batch, m, kind, level, _live(batch, level))
            walked.append((level, m, w))
            m = _modify(batch, m, kind, level, w)
        node, token = iteration(batch if not levels else batch.with_laws(m, batch.q), U, K)
        tau = batch.depth.gather(1, node[:, None])[:, 0]
        new = _fresh(batch, K, kind)
        if bool((tau + 1 < batch.L).any()):  # this call's design stays live for some sequence
            walked.append((new, m, _walk(batch, m, kind, new, _on_path(batch, node))))
        kept = tuple(lv for lv in (_advance(batch, mk, level, w, node, token) for level, mk, w in walked)
                     if bool((lv.length < lv.L).any()))
        return node, token, GreedyState(kind, kept)

    return run


def _validate(state, kind: str, batch: TreeBatch, who: str) -> tuple:
    if not isinstance(state, GreedyState) or state.kind != kind:
        raise InvalidArgument(f"{who}: state must be the GreedyState of a previous {who} call, got {state!r:.80}")
    if state.levels and state.B != batch.B:
        raise InvalidArgument(f"{who}: the state holds {state.B} sequences but the batch has {batch.B} trees "
                              "(use state.take(rows) to follow a subset)")
    return tuple(lv if lv.M.dtype == batch.dtype and lv.M.device == batch.device else
                 _Level(lv.L, lv.K.to(batch.device), lv.length.to(batch.device),
                        *(None if t is None else t.to(batch.device, batch.dtype) for t in (lv.M, lv.Q, lv.Ar, lv.Qm)))
                 for lv in state.levels)


spectr_gbv = _stateful("g", "spectr_gbv", _scan_iteration)
spectr_gbv_lossless = _stateful("skew", "spectr_gbv_lossless", _lossless_iteration)

TWINS = {
    "spectr_gbv_as_found": Twin("spectr_gbv_as_found", spectr_gbv_as_found, _as_found_keys),
    "spectr_gbv": Twin("spectr_gbv", spectr_gbv, _keys, stateful=True),
    "spectr_gbv_lossless": Twin("spectr_gbv_lossless", spectr_gbv_lossless, _keys, stateful=True),
}
