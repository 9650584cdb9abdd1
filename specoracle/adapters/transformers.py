"""Hugging Face transformers' speculative sampling as a specoracle verifier.

``transformers.generation.utils._speculative_sampling(candidate_input_ids, candidate_logits,
candidate_length, new_logits, ...)`` (Leviathan et al. Algorithm 1, batch 1) takes

- ``candidate_input_ids`` LongTensor [1, prompt + L] (the last ``L`` ids are the drafts),
- ``candidate_logits`` [1, L, V] draft logits (softmax inside: row i drafted ``x_{i+1}``),
- ``candidate_length`` = L,
- ``new_logits`` [1, L+1, V] target logits (row L is the bonus row),

and returns ``(valid_tokens [1, tau+1], n_matches = tau)``. Its coins come from torch's GLOBAL RNG
(``torch.rand_like``, ``torch.multinomial``), so its law cannot be enumerated: the adapter is a
reference-style ``verify(instance, rng)`` marked ``enumerable = False`` that seeds the global RNG
from ``rng`` (a :class:`~specoracle.randomness.Sampling`) on every call, and
:func:`specoracle.check.check_lossless` checks it by chi-squared. Logits are ``log p`` / ``log q``
in float64 (``-inf`` for zero mass; the softmax inside restores the probabilities to rounding).

Seeding the global RNG per call is a side effect on the caller's torch RNG state; the adapter
saves and restores it, and seeds only the CPU generator (``torch.default_generator.manual_seed``;
``torch.manual_seed`` also visits every accelerator generator and dominated the adapter's time).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from specoracle.errors import InvalidArgument, InvalidInstance
from specoracle.instance import Instance, Outcome
from specoracle.randomness import is_sampling
from specoracle.reference._common import chain_nodes

from .common import global_rng

__all__ = ["TransformersVerifier", "speculative_sampling", "hf_speculative_sampling", "residual_next_row_copy"]


def hf_speculative_sampling() -> Callable:
    """The installed ``transformers.generation.utils._speculative_sampling`` (ImportError if absent)."""
    from transformers.generation.utils import _speculative_sampling

    return _speculative_sampling


class TransformersVerifier:
    """``verify(instance, rng) -> Outcome`` around a function with HF's signature and conventions.

    Parameters
    ----------
    fn : the function (default: the installed transformers one).
    name : label in verdicts.
    prompt : token ids placed before the drafts in ``candidate_input_ids`` (the function only
        reads the last ``L``).
    **kwargs : passed to ``fn`` (e.g. ``assistant_ensemble_weight``, a documented lossy knob).
    """

    enumerable = False
    stateful = False

    def __init__(self, fn: Callable | None = None, *, name: str | None = None, prompt=(0,), **kwargs) -> None:
        self.fn = hf_speculative_sampling() if fn is None else fn
        self.__name__ = name or ("hf_speculative_sampling" if fn is None else getattr(fn, "__name__", "speculative_sampling"))
        self.prompt = tuple(int(t) for t in prompt)
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"TransformersVerifier({self.__name__!r}, kwargs={self.kwargs})"

    def __call__(self, instance: Instance, rng) -> Outcome:
        import torch

        if not is_sampling(rng):
            raise InvalidArgument(
                f"{self.__name__} draws from torch's global RNG and cannot be enumerated or coupled; "
                "use check_lossless(..., method='chi2') (a Sampling source seeds the global RNG)"
            )
        tree = instance.tree
        nodes = chain_nodes(instance, self.__name__)
        L = len(nodes) - 1
        if L < 1:
            raise InvalidInstance(f"{self.__name__} needs at least one drafted token (L >= 1)")
        drafts = [tree.tokens[c] for c in nodes[1:]]
        with np.errstate(divide="ignore"):
            lp = np.log(np.asarray(instance.p, dtype=np.float64)[nodes])
            lq = np.log(np.asarray(instance.q, dtype=np.float64)[nodes[:-1]])
        ids = torch.tensor([list(self.prompt) + drafts], dtype=torch.long)
        with global_rng(int(rng.gen.integers(2**62))):
            valid, n_matches = self.fn(ids, torch.from_numpy(lq)[None], L, torch.from_numpy(lp)[None], **self.kwargs)
        tau = int(n_matches)
        out = [int(t) for t in valid.reshape(-1).tolist()]
        if not 0 <= tau <= L or len(out) != tau + 1 or out[:tau] != drafts[:tau]:
            raise InvalidInstance(
                f"{self.__name__} returned tokens {out} with n_matches={tau} for drafts {drafts}: "
                "expected the accepted drafts followed by one token"
            )
        if not 0 <= out[-1] < instance.V:
            raise InvalidInstance(f"{self.__name__} emitted token id {out[-1]} outside [0, V={instance.V})")
        return Outcome(nodes[tau], out[-1])


def speculative_sampling(**kwargs) -> TransformersVerifier:
    """The installed transformers function as a verifier (``kwargs`` go to the function)."""
    return TransformersVerifier(**kwargs)


def residual_next_row_copy(candidate_input_ids, candidate_logits, candidate_length, new_logits):
    """A deliberately broken function with HF's signature and conventions (mutant M2): after a
    rejection at ``n`` the residual ``(p - q)_+`` is read from row ``min(n + 1, L - 1)``. Written here from
    Algorithm 1, not copied; uses the global RNG the same way (``rand_like``, ``multinomial``)."""
    import torch

    L = candidate_length
    drafts = candidate_input_ids[0, -L:]
    q = candidate_logits[0].softmax(dim=-1)
    p = new_logits[0].softmax(dim=-1)
    idx = torch.arange(L)
    ratio = p[idx, drafts] / q[idx, drafts]
    r = torch.rand_like(ratio)
    accepted = r <= ratio
    n = int(torch.cumprod(accepted.long(), dim=0).sum())
    if n < L:
        row = min(n + 1, L - 1)
        resid = torch.clamp(p[row] - q[row], min=0)
        law = resid / resid.sum() if resid.sum() > 0 else p[row]
    else:
        law = p[L]
    t = torch.multinomial(law, num_samples=1)
    return torch.cat([drafts[:n], t])[None], torch.tensor(n)
