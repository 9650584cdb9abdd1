"""Batched twin of RSBV (``reference.rsbv``): rejection-sampled path selection + block verification.

Per tree, one loop over depth (vectorised over the batch) walks the selection: at node ``u`` with
the ``k`` draws ``draws[u]`` (one per path through ``u``), ``M = max_{q > 0} p/q``, the draw
``r`` passes iff ``U[("select", u, r)] < p(x) / (M q(x))``; the walk moves to the first passing
draw, else to draw 0. Alongside it carries ``pi`` [B, K+1], the law of the number of paths through
the current node, and writes the selection's conditional law
``g = p' + theta (q - p')``, ``theta = sum_k pi(k) gamma^(k-1)`` (``p' = p 1[q > 0] / p(supp q)``,
``gamma = 1 - p(supp q) / M``); the next ``pi`` is the coefficient vector (in ``z``) of
``sum_i (R + rho z)^(i-1) alpha_x z (1 - q_x + q_x z)^(k-i) + rho z (R + rho z)^(k-1)`` averaged
over ``pi`` (the reference's :func:`~specoracle.reference.rsbv.count_law`). Block verification then
runs as the BV twin (:func:`.chain.bv`) on the chain of the selected nodes with ``p`` rows and the
``g`` rows as its draft law.

Uniform layout: ``("select", u, r)`` for ``u < N``, ``r < K`` (``K`` = most draws at a node), then
``("stop", 1..N-1)`` and ``("residual", 0..N-1)``.
"""
from __future__ import annotations

import torch

from specoracle.errors import InvalidInstance

from .batch import Twin, TreeBatch, gather_rows
from .chain import bv

__all__ = ["rsbv", "RSBV", "TWINS"]


def _keys(batch: TreeBatch) -> list:
    N, K = batch.N, batch.K
    return ([("select", u, r) for u in range(N) for r in range(K)] + [("stop", i) for i in range(1, N)]
            + [("residual", i) for i in range(N)])


def _poly_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Product of polynomials in ``z`` with coefficients ``[B, n]``, truncated to degree ``n - 1``."""
    out = torch.zeros_like(a)
    for i in range(a.shape[1]):
        out[:, i:] += a[:, i : i + 1] * b[:, : b.shape[1] - i]
    return out


def _linear(c0: torch.Tensor, c1: torch.Tensor, n: int) -> torch.Tensor:
    """The polynomial ``c0 + c1 z`` as ``[B, n]`` coefficients."""
    out = torch.zeros((c0.shape[0], n), dtype=c0.dtype, device=c0.device)
    out[:, 0], out[:, 1] = c0, c1
    return out


def _count_law(pi: torch.Tensor, ax: torch.Tensor, rx: torch.Tensor, R: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
    """``sum_k pi(k) Pr[select x, j paths through x | k]`` for ``j = 0..K`` -> [B, K+1]."""
    n = pi.shape[1]
    fail, rest, zx = _linear(R, rx, n), _linear(1 - qx, qx, n), _linear(torch.zeros_like(ax), ax, n)
    one = _linear(torch.ones_like(ax), torch.zeros_like(ax), n)
    fail_pow, rest_pow = [one], [one]
    for _ in range(n - 2):
        fail_pow.append(_poly_mul(fail_pow[-1], fail))
        rest_pow.append(_poly_mul(rest_pow[-1], rest))
    out = torch.zeros_like(pi)
    for k in range(1, n):
        if not bool((pi[:, k] > 0).any()):
            continue
        law = _poly_mul(_linear(torch.zeros_like(rx), rx, n), fail_pow[k - 1])
        for i in range(1, k + 1):
            law = law + _poly_mul(_poly_mul(fail_pow[i - 1], zx), rest_pow[k - i])
        out += pi[:, k : k + 1] * law
    return out


def _select(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Selected path node ids ``[B, L+1]`` and the selection's conditional laws ``[B, L, V]``."""
    B, L, K = batch.B, batch.L, batch.K
    dev, dt = batch.device, batch.dtype
    rows = torch.arange(B, device=dev)
    path = torch.zeros((B, L + 1), dtype=torch.long, device=dev)
    g_rows = torch.empty((B, L, batch.V), dtype=dt, device=dev)
    pi = torch.zeros((B, K + 1), dtype=dt, device=dev)
    u = path[:, 0]
    kinds = torch.arange(K + 1, device=dev)
    for d in range(L):
        draws = batch.draws[rows, u]  # [B, K], -1 padded
        k = (draws >= 0).sum(1)
        at_trunk_end = batch.trunks == d
        pi = torch.where((at_trunk_end | (batch.trunks > d))[:, None], (kinds[None] == k[:, None]).to(dt), pi)
        p_u, q_u = gather_rows(batch.p, u), gather_rows(batch.q, u)
        drafted = q_u > 0
        ratio = torch.where(drafted, p_u / torch.where(drafted, q_u, torch.ones_like(q_u)), torch.full_like(p_u, -1.0))
        M = ratio.max(1).values
        mass = torch.where(drafted, p_u, torch.zeros_like(p_u)).sum(1)
        alpha = torch.where(M > 0, mass / torch.where(M > 0, M, torch.ones_like(M)), torch.zeros_like(M))
        gamma = 1 - alpha
        pp = torch.where(drafted & (mass > 0)[:, None], p_u / torch.where(mass > 0, mass, torch.ones_like(mass))[:, None],
                         torch.where((mass > 0)[:, None], torch.zeros_like(p_u), p_u))
        theta = (pi[:, 1:] * gamma[:, None] ** (kinds[1:] - 1).to(dt)[None]).sum(1)
        g = pp + theta[:, None] * (q_u - pp)
        g_rows[:, d] = g
        # the walk: first passing draw, else draw 0
        tok = batch.tokens.gather(1, draws.clamp_min(0)).clamp_min(0)
        a = p_u.gather(1, tok) / (M[:, None] * q_u.gather(1, tok))
        col = u[:, None] * K + torch.arange(K, device=dev)[None]
        passed = (draws >= 0) & (k > 1)[:, None] & (M > 0)[:, None] & (U.gather(1, col) < a)
        first = torch.where(passed.any(1), passed.to(torch.long).argmax(1), torch.zeros_like(k))
        nxt = draws.gather(1, first[:, None])[:, 0]
        x = batch.tokens.gather(1, nxt[:, None])[:, 0]
        qx, gx = q_u.gather(1, x[:, None])[:, 0], g.gather(1, x[:, None])[:, 0]
        ax = torch.where(M > 0, p_u.gather(1, x[:, None])[:, 0] / torch.where(M > 0, M, torch.ones_like(M)),
                         torch.zeros_like(M))
        pi = _count_law(pi, ax, qx - ax, gamma - (qx - ax), qx) / gx[:, None]
        pi[:, 0] = 0
        u = nxt
        path[:, d + 1] = u
    return path, g_rows


def rsbv(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RSBV on a batch of i.i.d. / delayed trees whose paths all have length ``batch.L``.

    Returns
    -------
    node, token : LongTensor [B] each.
    """
    if batch.sampling != "iid":
        raise InvalidInstance("rsbv selects among i.i.d. drafted paths; this batch is without replacement")
    leaf = batch.valid & (batch.draws[..., 0] < 0)
    if not bool((batch.depth[leaf] == batch.L).all()):
        raise InvalidInstance(f"rsbv: every drafted path must have the full length L = {batch.L}")
    B, N, L, K = batch.B, batch.N, batch.L, batch.K
    rows = torch.arange(B, device=batch.device)
    path, g_rows = _select(batch, U)
    p = batch.p[rows[:, None], path]  # [B, L+1, V]
    q = torch.cat([g_rows, batch.q[rows, path[:, -1]][:, None]], 1)  # the leaf row is never read as a draft law
    n = torch.arange(L + 1, device=batch.device)
    chain = TreeBatch(
        tokens=batch.tokens.gather(1, path), parents=(n - 1).expand(B, L + 1), depth=n.expand(B, L + 1),
        valid=torch.ones((B, L + 1), dtype=torch.bool, device=batch.device),
        draws=torch.where(n < L, n + 1, -1).expand(B, L + 1)[..., None],
        multiplicity=torch.ones((B, L + 1), dtype=torch.long, device=batch.device), p=p, q=q, L=L,
    )
    base = N * K  # stop coins start here, residual draws at base + N - 1
    cols = torch.cat([base + path[:, 1:] - 1, base + N - 1 + path], 1)
    tau, token = bv(chain, U.gather(1, cols))
    return path.gather(1, tau[:, None])[:, 0], token


RSBV = Twin("rsbv", rsbv, _keys)
TWINS = {"rsbv": RSBV}
