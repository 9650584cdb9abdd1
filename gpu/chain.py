"""Batched twins of the single-path verifiers: token-level speculative sampling and BV.

Both take a :class:`~gpu.batch.TreeBatch` of chains (node ``i`` at depth ``i``, ``p, q`` of shape
``[B, N, V]``; chains of different lengths are padded) and the uniforms ``U [B, 2N-1]`` in the
reference layout (``reference.chain.naive_keys`` / ``bv_keys``): column ``i - 1`` is the coin of
node ``i`` (``("accept", i)`` / ``("stop", i)``), column ``N - 1 + i`` the residual draw at node
``i``. No loop over the batch; BV loops over depth for its running weight (a scan of ``L``
scalars), everything else is vectorised.
"""
from __future__ import annotations

import torch

from specoracle.errors import InvalidInstance
from specoracle.randomness import node_keys

from .batch import Twin, TreeBatch, categorical, residual_chunk_sums, stop_token, vocab_chunk

__all__ = ["naive", "bv", "chain_keys", "NAIVE", "BV", "TWINS"]


def chain_keys(coin: str):
    """Key layout ``(coin, 1..N-1) + ("residual", 0..N-1)`` for the padded node count of a batch."""

    def keys(batch: TreeBatch) -> list:
        return list(node_keys(batch.N, coin))

    return keys


def _check_chain(batch: TreeBatch, who: str) -> torch.Tensor:
    """Chain length per tree ``[B]``; raises unless node ``i`` is the child of ``i - 1``."""
    N = batch.N
    ar = torch.arange(N, device=batch.device)
    ok = torch.where(batch.valid, batch.parents == ar - 1, torch.ones_like(batch.valid))
    ok &= torch.where(batch.valid, batch.depth == ar, torch.ones_like(batch.valid))
    if not bool(ok.all()):
        raise InvalidInstance(f"{who} verifies a single draft path, but a tree of the batch branches")
    return batch.valid.sum(1) - 1


def _drafted_ratio_terms(batch: TreeBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """``p_{i-1}(x_i)`` and ``q_{i-1}(x_i)`` for nodes ``i = 1..N-1`` -> two [B, N-1] tensors."""
    x = batch.tokens[:, 1:].clamp_min(0)[..., None]
    px = batch.p[:, :-1].gather(2, x)[..., 0]
    qx = batch.q[:, :-1].gather(2, x)[..., 0]
    return px, qx


def naive(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level speculative sampling on a batch of chains.

    Accept ``x_i`` iff ``U[:, i-1] < p_{i-1}(x_i) / q_{i-1}(x_i)``; ``tau`` = number of leading
    accepts; token ``y ~ norm((p_tau - q_tau)_+)`` (fallback ``p_tau`` at zero mass) or the bonus
    ``y ~ p_L`` when ``tau = L``, with uniform ``U[:, N-1+tau]``.

    Returns
    -------
    node, token : LongTensor [B] each.
    """
    N = batch.N
    Lb = _check_chain(batch, "naive")
    if N == 1:
        return torch.zeros_like(Lb), categorical(U[:, 0], batch.p[:, 0])
    px, qx = _drafted_ratio_terms(batch)
    acc = (U[:, : N - 1] < px / qx) & batch.valid[:, 1:]
    tau = torch.cumprod(acc.to(torch.long), dim=1).sum(1)
    u = U.gather(1, (N - 1 + tau)[:, None])[:, 0]
    return tau, stop_token(u, batch.p, batch.q, tau, tau == Lb)


def bv(batch: TreeBatch, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Block verification (backward independent-coin form) on a batch of chains.

    ``w_i = min(w_{i-1} p_{i-1}(x_i) / q_{i-1}(x_i), 1)``; ``S_i = sum_y (w_i p_i - q_i)_+``;
    ``h_i = S_i / (S_i + 1 - w_i)`` (``0/0 := 1``) for ``i < L``, ``h_L = w_L``;
    ``tau = max{i >= 1 : U[:, i-1] < h_i}`` (0 if none); token from ``norm((w_tau p_tau - q_tau)_+)``
    or the bonus ``p_L``. The backward scan evaluates ``S_i`` (a pass over row ``i`` of ``p, q``) only
    for trees that reach position ``i``: the coins are independent, so the decisions are the same
    as computing every ``h_i`` first.

    Returns
    -------
    node, token : LongTensor [B] each.
    """
    N = batch.N
    Lb = _check_chain(batch, "bv")
    if N == 1:
        return torch.zeros_like(Lb), categorical(U[:, 0], batch.p[:, 0])
    px, qx = _drafted_ratio_terms(batch)
    one = torch.ones((), dtype=batch.dtype, device=batch.device)
    ws = [torch.ones(batch.B, dtype=batch.dtype, device=batch.device)]
    for i in range(1, N):
        ws.append(torch.minimum(ws[-1] * px[:, i - 1] / qx[:, i - 1], one))
    w = torch.stack(ws, 1)  # [B, N]
    # backward scan, evaluating S_i only for the trees still scanning at position i (the scan stops
    # at the first success, so most rows of p, q are never read); h_L = w_L needs no S. At large V
    # the chunk sums of the stopping trees' residual rows are kept for the emitted token's draw.
    B, V = batch.B, batch.V
    C = vocab_chunk(V) or V
    sums = torch.empty((B, V // C), dtype=batch.dtype, device=batch.device) if C < V else None
    rows = torch.arange(B, device=batch.device)
    tau = torch.zeros_like(Lb)
    scanning = torch.ones_like(Lb, dtype=torch.bool)
    for i in range(N - 1, 0, -1):
        act = scanning & (i <= Lb)
        if not bool(act.any()):
            continue
        r = rows[act]
        h = w[r, i].clone()
        inner = Lb[r] > i  # i < L: h_i = S_i / (S_i + 1 - w_i), 0/0 := 1
        ri = r[inner]
        if len(ri):
            wi = w[ri, i]
            cs = residual_chunk_sums(batch.p, batch.q, ri, i, wi, C=C)
            S = cs.sum(-1)
            den = (S + 1) - wi
            h[inner] = torch.where(den > 0, S / torch.where(den > 0, den, one), one)
        coin = U[r, i - 1] < h
        tau[r[coin]] = i
        scanning[r[coin]] = False
        if sums is not None and len(ri):
            keep = coin[inner]
            sums[ri[keep]] = cs[keep]
    u = U.gather(1, (N - 1 + tau)[:, None])[:, 0]
    have = (tau > 0) & (tau < Lb)  # stopped at an inner position: sums kept by the scan
    return tau, stop_token(u, batch.p, batch.q, tau, tau == Lb, w.gather(1, tau[:, None])[:, 0], sums=sums, have=have)


NAIVE = Twin("naive", naive, chain_keys("accept"))
BV = Twin("bv", bv, chain_keys("stop"))
TWINS = {"naive": NAIVE, "bv": BV}
