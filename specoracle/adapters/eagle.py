"""EAGLE's tree verifier (eagle-llm 1.2.1, ``eagle.model.utils.evaluate_posterior``) as a verifier.

``evaluate_posterior(logits, candidates, logits_processor, cart_candidates_prob, op, p_indices,
tree_candidates, b_indices)`` takes one tree in the candidate paths x depth layout
(:mod:`specoracle.adapters.paths`):

- ``logits`` [P, L+1, V]: RAW target logits along every path; ``candidates`` [P, L+1]: the tokens;
- ``logits_processor``: EAGLE's ``prepare_logits_processor(temperature=T)`` (transformers'
  ``TemperatureLogitsWarper``; an empty list at ``T = 1``); ``None`` means greedy;
- ``cart_candidates_prob`` [P, L+1]: conditional draft probability of every candidate given the
  siblings drawn before it (EAGLE drafts siblings with ``torch.multinomial(..., replacement=False)``);
- ``op``: per depth ``d``, the draft laws [n_d, V] of the depth-``d`` nodes that have children;
  ``p_indices`` / ``b_indices``: for every path cell, its parent's row in ``op`` and the tree
  positions of its earlier siblings (both built by EAGLE's ``generate_tree_buffers``);
- ``tree_candidates`` [1, N]: the tokens of the tree in EAGLE's node order.

It returns ``(best_candidate, accept_length, sample_p)``; EAGLE's caller
(``update_inference_inputs``) then draws the next token with ``torch.multinomial(sample_p, 1)``.
Its coins come from Python's ``random`` and torch's global RNG, which the adapter seeds per call.

The adapter builds every argument from the instance with the paths layout, takes ``p_indices``,
``b_indices`` and ``retrieve_indices`` from EAGLE's own ``generate_tree_buffers`` (checking that
EAGLE orders nodes and paths as the layout does), and passes EAGLE's own processor, checked to map
the derived raw logits ``T log p`` back to the model's law. Through it, EAGLE 1.2.1 is lossless at
``T = 1`` and lossy at ``T != 1``: after accepting a leaf (or a whole path) it draws the next token
from ``softmax(raw logits)``, the untempered law ``p^T / Z``.
"""
from __future__ import annotations

from functools import lru_cache

from specoracle.errors import InvalidArgument, InvalidInstance

from .paths import PathsLayout, PathsVerifier

__all__ = ["EagleVerifier", "evaluate_with_eagle", "INSTALL", "TOPK"]

INSTALL = "pip install --no-deps eagle-llm==1.2.1"
TOPK = 10  # EAGLE's tree buffers index draws by rank < 10


@lru_cache(maxsize=256)
def _buffers(tree_choices: tuple):
    from eagle.model.utils import generate_tree_buffers

    return generate_tree_buffers([list(c) for c in tree_choices], device="cpu")


def _op(lay: PathsLayout) -> list:
    """Draft laws of the nodes that have children, grouped by depth in layout order."""
    import torch

    depth = [len(c) for c in ((),) + lay.tree_choices]
    has_kids = torch.zeros(len(depth), dtype=torch.bool)
    has_kids[lay.parents[1:]] = True
    L = max(depth)
    return [lay.draft_probs[[k for k in range(len(depth)) if depth[k] == d and has_kids[k]]] for d in range(L)]


def evaluate_with_eagle(lay: PathsLayout, processor):
    """One call of EAGLE's ``evaluate_posterior`` plus its caller's token draw on ``lay``."""
    import torch
    from eagle.model.utils import evaluate_posterior

    if any(r >= TOPK for c in lay.tree_choices for r in c):
        raise InvalidInstance(f"EAGLE's tree buffers index at most {TOPK} children per node; got tree {lay.tree_choices}")
    buf = _buffers(lay.tree_choices)
    if not torch.equal(buf["retrieve_indices"], lay.retrieve_indices):
        raise InvalidInstance(
            f"EAGLE orders the paths of tree {lay.tree_choices} as {buf['retrieve_indices'].tolist()}, the paths layout as "
            f"{lay.retrieve_indices.tolist()}"
        )
    best, acc, sample_p = evaluate_posterior(
        lay.logits, lay.candidates, processor, lay.candidate_probs, _op(lay), buf["p_indices"],
        lay.tree_tokens[None], buf["b_indices"],
    )
    return int(best), int(acc), int(torch.multinomial(sample_p, 1))


class EagleVerifier(PathsVerifier):
    """EAGLE 1.2.1's ``evaluate_posterior`` (plus its caller's token draw) as ``verify(instance, rng)``.

    Parameters
    ----------
    temperature : EAGLE's sampling temperature (> 0; the model's law is the tempered law).
    name : label in verdicts.
    """

    def __init__(self, temperature: float = 1.0, *, name: str | None = None) -> None:
        from eagle.model.utils import prepare_logits_processor

        if not temperature > 1e-5:
            raise InvalidArgument(f"EagleVerifier checks sampling (temperature > 0); got {temperature}")
        eagle_processor = prepare_logits_processor(temperature=temperature)
        super().__init__(
            lambda lay: evaluate_with_eagle(lay, eagle_processor),
            temperature=temperature,
            processor=lambda x: eagle_processor(None, x),
            python_random=True,
            name=name or f"eagle_evaluate_posterior(T={temperature:g})",
        )

