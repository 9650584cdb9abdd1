"""Shared internals of the engine adapters (torch is imported by the functions that use it).

- :func:`global_rng`: seed torch's default CPU generator (and Python's ``random``) for one call of
  a function that draws from global state (transformers, EAGLE, vLLM requests without their own
  generator), and restore them afterwards.
- :func:`uniforms`: uniforms in ``[0, 1)`` drawn in the kernel's own dtype (a float64 draw cast to
  float32 can round up to exactly ``1.0``).
- :func:`sample_chains`, :func:`chain_tables`: chains drafted from a model's ``q`` and the ``p`` /
  ``q`` rows along them, grouped by prefix (numpy).
- :func:`draw_trees`: ``n`` i.i.d. draft trees of a scheme as ``[(tree, count)]``.
- :func:`check_emitted`: the output contract of a kernel that writes emitted tokens into a
  ``-1``-padded ``[B, L+1]`` matrix.
- :class:`ChainBlockSampler`: drafting and the one-instance entry shared by chain kernels' adapters.
"""
from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np

from specoracle.errors import InvalidArgument, InvalidInstance
from specoracle.instance import Outcome
from specoracle.randomness import Sampling, is_sampling
from specoracle.reference._common import chain_nodes

__all__ = [
    "global_rng",
    "uniforms",
    "sample_chains",
    "chain_tables",
    "draw_trees",
    "check_emitted",
    "ChainBlockSampler",
]


@contextmanager
def global_rng(seed: int, *, python_random: bool = False):
    """Seed torch's default CPU generator (and Python's ``random`` if ``python_random``) with
    ``seed`` for the duration of a ``with`` block; restore their states on exit.

    ``torch.default_generator.manual_seed`` seeds the CPU generator only (about 2.5 us with the
    state save and restore); ``torch.manual_seed`` also visits every accelerator generator (about
    180 us here). Python's state costs about 19 us more, so it is opt-in.
    """
    import torch

    gen = torch.default_generator
    t_state = gen.get_state()
    py_state = random.getstate() if python_random else None
    try:
        gen.manual_seed(int(seed))
        if python_random:
            random.seed(int(seed))
        yield
    finally:
        gen.set_state(t_state)
        if python_random:
            random.setstate(py_state)


def uniforms(shape, generator, dtype):
    """Uniforms in ``[0, 1)`` of ``dtype`` (never ``1.0``: they are drawn in that dtype, not cast)."""
    import torch

    return torch.rand(shape, generator=generator, dtype=dtype)


def _prefix_codes(prefixes: np.ndarray, V: int) -> np.ndarray:
    """Base-``V`` code of each row of ``prefixes`` [n, j] (equal prefixes, equal codes)."""
    codes = np.zeros(prefixes.shape[0], dtype=np.int64)
    for j in range(prefixes.shape[1]):
        codes = codes * V + prefixes[:, j]
    return codes


def _by_prefix(chains: np.ndarray, j: int, V: int):
    """``(rows, prefix)`` for each distinct prefix ``chains[:, :j]``."""
    keys = _prefix_codes(chains[:, :j], V)
    for code in np.unique(keys):
        rows = np.flatnonzero(keys == code)
        yield rows, tuple(chains[rows[0], :j].tolist())


def sample_chains(model, L: int, n: int, gen: np.random.Generator) -> np.ndarray:
    """``n`` draft chains of ``L`` tokens from ``model.q``, shape [n, L]."""
    out = np.zeros((n, L), dtype=np.int64)
    for j in range(L):
        for rows, prefix in _by_prefix(out, j, model.V):
            q = np.asarray(model.q(prefix), dtype=np.float64)
            out[rows, j] = gen.choice(model.V, size=len(rows), p=q / q.sum())
    return out


def chain_tables(model, chains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``p`` rows [n, L+1, V] and ``q`` rows [n, L, V] along each chain [n, L]."""
    n, L = chains.shape
    P = np.empty((n, L + 1, model.V))
    Q = np.empty((n, L, model.V))
    for j in range(L + 1):
        for rows, prefix in _by_prefix(chains, j, model.V):
            P[rows, j] = np.asarray(model.p(prefix), dtype=np.float64)
            if j < L:
                Q[rows, j] = np.asarray(model.q(prefix), dtype=np.float64)
    return P, Q


def draw_trees(model, scheme, n: int, gen: np.random.Generator, enum_limit: int = 5000) -> list:
    """``[(tree, count)]`` for ``n`` i.i.d. drafts of ``scheme`` on ``model`` (counts sum to ``n``).

    Small schemes are enumerated once and the trees drawn from their exact law (the same law as
    drafting each tree anew); larger ones are drafted one by one.
    """
    from specoracle.check import enumeration_size

    if enumeration_size(scheme, model.V) <= enum_limit:
        law = scheme.enumerate(model)
        probs = np.array([float(p) for _, p in law])
        counts = gen.multinomial(n, probs / probs.sum())
        return [(t, int(c)) for (t, _), c in zip(law, counts) if c]
    rng, seen = Sampling(gen), {}
    for _ in range(n):
        t = scheme.draft(model, rng)
        seen[t] = seen.get(t, 0) + 1
    return list(seen.items())


def check_emitted(out, drafts: np.ndarray, lengths: np.ndarray, V: int, name: str) -> np.ndarray:
    """Output contract of a kernel that emits ``[B, L+1]`` token ids, ``-1`` padded, for drafts
    ``[B, L]`` (``L`` = the batch's largest draft count).

    Row ``i`` verified ``lengths[i]`` drafts ``drafts[i, :lengths[i]]`` and must hold ``m`` tokens,
    ``1 <= m <= lengths[i] + 1``: the accepted drafts, then one correction or bonus token; every id in
    ``[0, V)``; ``-1`` only after the last token. Returns the ids as int64 [B, L+1].
    """
    import torch

    if isinstance(out, tuple):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise InvalidInstance(f"{name} returned {type(out).__name__}, expected an integer tensor of token ids")
    B, L = drafts.shape
    if tuple(out.shape) != (B, L + 1):
        raise InvalidInstance(f"{name} returned shape {tuple(out.shape)}, expected [B, L+1] = {(B, L + 1)}")
    if out.dtype.is_floating_point or out.dtype == torch.bool:
        raise InvalidInstance(f"{name} returned dtype {out.dtype}, expected integer token ids")
    o = out.detach().cpu().numpy().astype(np.int64)
    bad = (o < -1) | (o >= V)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise InvalidInstance(f"{name}: row {i} position {j} holds token id {o[i, j]}, outside [0, V={V}) and not -1 padding")
    pad = o < 0
    if pad[:, 0].any():
        raise InvalidInstance(f"{name}: row {int(np.flatnonzero(pad[:, 0])[0])} emitted no token")
    gap = pad[:, :-1] & ~pad[:, 1:]
    if gap.any():
        i = int(np.flatnonzero(gap.any(axis=1))[0])
        raise InvalidInstance(f"{name}: row {i} = {o[i].tolist()} has a token after -1 padding")
    m = (~pad).sum(axis=1)
    long_rows = np.flatnonzero(m > lengths + 1)
    if len(long_rows):
        i = int(long_rows[0])
        raise InvalidInstance(f"{name}: row {i} = {o[i].tolist()} emits {m[i]} tokens after {lengths[i]} drafts (at most drafts + 1)")
    acc = np.arange(L)[None, :] < (m - 1)[:, None]
    wrong = acc & (o[:, :L] != drafts)
    if wrong.any():
        i, j = map(int, np.argwhere(wrong)[0])
        raise InvalidInstance(f"{name}: row {i} emits {o[i, j]} at accepted position {j}, but the draft there is {drafts[i, j]}")
    return o


class ChainBlockSampler:
    """Base of chain-kernel adapters: subclasses define ``name`` and ``run(chains [n, L], Q [n, L, V],
    P [n, L+1, V], seed) -> blocks [n, L+1]`` (-1 padded); this class drafts the chains
    (:meth:`sample_blocks`, for :func:`specoracle.check.check_lossless`) and verifies one chain
    instance (``verify(instance, rng)``, under sampling only)."""

    enumerable = False  # the kernel draws its own randomness: chi-squared only

    def sample_blocks(self, model, scheme, n: int, *, seed: int = 0) -> np.ndarray:
        """``n`` emitted blocks [n, L+1] (-1 padded) on chains drafted from ``model.q``."""
        if scheme.kind != "chain":
            raise InvalidArgument(f"{self.name} verifies chains; got scheme {scheme.name}")
        gen = np.random.default_rng(seed)
        chains = sample_chains(model, scheme.depth, n, gen)
        P, Q = chain_tables(model, chains)
        return self.run(chains, Q, P, seed=int(gen.integers(2**62)))

    def __call__(self, instance, rng):
        """Verify one chain instance; ``rng`` must be a :class:`~specoracle.randomness.Sampling`
        (its generator seeds the kernel's randomness)."""
        if not is_sampling(rng):
            raise InvalidArgument(
                f"{self.name} draws its own randomness and cannot be enumerated or coupled; use "
                "check_lossless(..., method='chi2') or pass a Sampling source"
            )
        nodes = chain_nodes(instance, self.name)
        ids = np.array([[instance.tree.tokens[c] for c in nodes[1:]]], dtype=np.int64)
        P = np.asarray(instance.p, dtype=np.float64)[nodes][None]
        Q = np.asarray(instance.q, dtype=np.float64)[nodes[:-1]][None]
        row = self.run(ids, Q, P, seed=int(rng.gen.integers(2**62)))[0]
        m = int((row >= 0).sum())
        return Outcome(nodes[m - 1], int(row[m - 1]))
