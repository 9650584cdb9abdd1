"""Adapter for batched chain verifiers in FlashInfer's ``[B, L, V]`` convention.

The convention (``randomness="uniforms"``, FlashInfer's ``chain_speculative_sampling`` layout;
vLLM's flat ragged layout is :mod:`specoracle.adapters.vllm`)::

    fn(draft_ids, draft_probs, target_probs, uniforms) -> output_ids

    draft_ids     LongTensor [B, L]        the drafted tokens x_1..x_L
    draft_probs   Tensor     [B, L, V]     q rows: row i is the law x_{i+1} was drawn from
    target_probs  Tensor     [B, L+1, V]   p rows: row i is the target law after x_{1:i}
                                           (row L is the bonus row)
    uniforms      Tensor     [B, L+1]      uniforms[:, i] (i < L) is the acceptance coin of x_{i+1};
                                           uniforms[:, L] drives the correction / bonus draw
    output_ids    LongTensor [B, L+1]      emitted tokens (accepted prefix, then the correction or
                                           bonus token), padded with -1 on the right

With ``randomness="generator"`` the last argument is a seeded ``torch.Generator`` instead of the
uniforms. Uniforms are drawn in the kernel's dtype, so they lie in ``[0, 1)`` (a float64 draw
cast to float32 can round to ``1.0``, which no kernel expects). ``logits=True`` passes
log-probabilities instead of probabilities (softmax inside the kernel). The output contract is checked on every call: shape,
integer dtype, ids in ``[0, V)`` or ``-1`` padding, padding only at the end, accepted prefix equal
to the drafts (FIELD-BUGS: ids >= V on a tile tail, ``-1`` read out of bounds).

:class:`BatchedVerifier` turns such a function into a block sampler for
:func:`specoracle.check.check_lossless` (chi-squared; uniforms cannot be enumerated) and into a
reference-style ``verify(instance, rng)`` for single chain instances under sampling.
:func:`reference_chain_sampling` is a correct implementation of the convention (token-level
speculative sampling), :func:`residual_next_row_chain_sampling` the same with mutant M2's bug.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from specoracle.errors import InvalidArgument, unknown_name

from .common import ChainBlockSampler, check_emitted, uniforms

__all__ = [
    "BatchedVerifier",
    "RANDOMNESS",
    "reference_chain_sampling",
    "residual_next_row_chain_sampling",
]

RANDOMNESS = ("uniforms", "generator")


class BatchedVerifier(ChainBlockSampler):
    """A batched torch chain verifier in the convention of this module, as a block sampler.

    Parameters
    ----------
    fn : the batched function (see the module docstring).
    randomness : ``"uniforms"`` or ``"generator"``.
    logits : pass ``log p`` / ``log q`` instead of probabilities.
    name : label in verdicts.
    batch_size : rows per call.
    dtype : torch dtype of the probability tensors (and uniforms).
    """

    def __init__(
        self,
        fn: Callable,
        *,
        randomness: str = "uniforms",
        logits: bool = False,
        name: str | None = None,
        batch_size: int = 8192,
        dtype=None,
    ) -> None:
        if not callable(fn):
            raise InvalidArgument(f"fn must be callable, got {type(fn).__name__}")
        if randomness not in RANDOMNESS:
            raise unknown_name("randomness", randomness, RANDOMNESS)
        import torch

        self.fn = fn
        self.randomness = randomness
        self.logits = bool(logits)
        self.name = name or getattr(fn, "__name__", "batched")
        self.__name__ = self.name
        self.batch_size = int(batch_size)
        self.dtype = torch.float64 if dtype is None else dtype

    def __repr__(self) -> str:
        return f"BatchedVerifier({self.name!r}, randomness={self.randomness!r}, logits={self.logits})"

    def run(self, draft_ids: np.ndarray, draft_probs: np.ndarray, target_probs: np.ndarray, seed: int) -> np.ndarray:
        """Call ``fn`` on numpy tables in batches; returns checked output ids [B, L+1]."""
        import torch

        B, L = draft_ids.shape
        V = target_probs.shape[-1]
        gen = torch.Generator().manual_seed(int(seed))
        outs = []
        for s in range(0, B, self.batch_size):
            sl = slice(s, min(B, s + self.batch_size))
            ids = torch.from_numpy(np.ascontiguousarray(draft_ids[sl]))
            q = torch.from_numpy(np.ascontiguousarray(draft_probs[sl])).to(self.dtype)
            p = torch.from_numpy(np.ascontiguousarray(target_probs[sl])).to(self.dtype)
            if self.logits:
                q, p = torch.log(q), torch.log(p)
            if self.randomness == "uniforms":
                u = uniforms((ids.shape[0], L + 1), gen, self.dtype)
                out = self.fn(ids, q, p, u)
            else:
                out = self.fn(ids, q, p, gen)
            outs.append(check_emitted(out, draft_ids[sl], np.full(ids.shape[0], L), V, self.name))
        return np.concatenate(outs) if outs else np.zeros((0, L + 1), dtype=np.int64)


def _chain_sampling(draft_ids, draft_probs, target_probs, uniforms, residual_shift: int):
    import torch

    from specoracle.gpu.batch import categorical

    B, L = draft_ids.shape
    ar = torch.arange(B)
    if L:
        px = torch.gather(target_probs[:, :L], 2, draft_ids[..., None])[..., 0]
        qx = torch.gather(draft_probs, 2, draft_ids[..., None])[..., 0]
        accept = uniforms[:, :L] < torch.clamp(px / qx, max=1.0)
        n_acc = torch.cumprod(accept.long(), dim=1).sum(dim=1)  # accepted prefix length tau
    else:
        n_acc = torch.zeros(B, dtype=torch.long)
    rej = n_acc < L
    # residual row after a rejection at tau (the mutant reads tau + 1, clamped to the last q row);
    # row L (bonus) when every draft was accepted
    row = torch.where(rej, torch.clamp(n_acc + residual_shift, max=max(L - 1, 0)), torch.full_like(n_acc, L))
    p_row = target_probs[ar, row]
    q_pad = torch.cat([draft_probs, torch.zeros_like(target_probs[:, :1])], dim=1)
    q_row = q_pad[ar, row]
    resid = torch.clamp(p_row - q_row, min=0)
    mass = resid.sum(dim=1, keepdim=True)
    law = torch.where(rej[:, None] & (mass > 0), resid / torch.where(mass > 0, mass, 1), p_row)
    tok = categorical(uniforms[:, L], law)  # u >= total mass: the last token with positive mass
    out = torch.full((B, L + 1), -1, dtype=torch.long)
    keep = torch.arange(L + 1)[None, :] < n_acc[:, None]
    out[:, :L] = torch.where(keep[:, :L], draft_ids, out[:, :L])
    out[ar, n_acc] = tok
    return out


def reference_chain_sampling(draft_ids, draft_probs, target_probs, uniforms):
    """Token-level speculative sampling in the convention of this module (a correct kernel).

    Accept ``x_{i+1}`` iff ``u_i < p_i(x) / q_i(x)``; ``tau`` = accepted prefix; correction
    ``y ~ norm((p_tau - q_tau)_+)`` or bonus ``y ~ p_L`` by inverse CDF on ``u_L`` (the first ``y``
    with ``u_L < cdf(y)``; ``u_L`` at or above the row's total mass gives the last token with
    positive mass, never a zero-probability one).
    Shapes: see the module docstring.
    """
    return _chain_sampling(draft_ids, draft_probs, target_probs, uniforms, 0)


def residual_next_row_chain_sampling(draft_ids, draft_probs, target_probs, uniforms):
    """:func:`reference_chain_sampling` with mutant M2: after a rejection at ``tau`` the residual is
    built from row ``min(tau + 1, L - 1)`` (an off-by-one in the ``[L, V]`` layout). Lossy on
    context-dependent models only."""
    return _chain_sampling(draft_ids, draft_probs, target_probs, uniforms, 1)
