"""Pre-drafting features of a root for the selector (DDTE §6; ALGORITHMS.md §8.4).

Scalars (:data:`SCALAR_NAMES`: entropies, KL both ways and L1 distance of the previous step's
``p`` and ``q``, context length, temperature) and :data:`N_BLOCKS` "state" blocks of ``width``
entries (:data:`BLOCK_NAMES`: the previous step's ``p`` and ``q``, the root ``q``, one-hot vectors
of the last three tokens) -- the toy stand-ins for DDTE's hidden states. Only information
available before drafting is used, so for a fixed context the selected step is an ordinary
delayed-tree step and stays lossless (DDTE Def. 5.2).
"""
from __future__ import annotations

import numpy as np

from specoracle.errors import InvalidInstance

__all__ = ["SCALAR_NAMES", "N_TOKEN_BLOCKS", "BLOCK_NAMES", "N_BLOCKS", "DEFAULT_WIDTH", "features"]

SCALAR_NAMES = (
    "H(p_prev)",
    "H(q_prev)",
    "H(q_root)",
    "KL(p_prev||q_prev)",
    "KL(q_prev||p_prev)",
    "L1(p_prev,q_prev)",
    "log(context_length)",
    "temperature",
)
N_TOKEN_BLOCKS = 3
BLOCK_NAMES = ("p_prev", "q_prev", "q_root") + tuple(f"token[-{i}]" for i in range(1, N_TOKEN_BLOCKS + 1))
N_BLOCKS = len(BLOCK_NAMES)
DEFAULT_WIDTH = 8


def _entropy(v: np.ndarray) -> float:
    v = v[v > 0]
    return float(-(v * np.log(v)).sum())


def _kl(a: np.ndarray, b: np.ndarray) -> float:
    m = a > 0
    if np.any(b[m] <= 0):
        return float("inf")
    return float((a[m] * np.log(a[m] / b[m])).sum())


def _pad(v: np.ndarray, width: int) -> np.ndarray:
    if v.shape[0] > width:
        raise InvalidInstance(f"vocabulary size V={v.shape[0]} exceeds the selector's state width {width}")
    out = np.zeros(width)
    out[: v.shape[0]] = v
    return out


def features(model, context, *, temperature: float, width: int = DEFAULT_WIDTH) -> np.ndarray:
    """Pre-drafting features of one root, shape ``[len(SCALAR_NAMES) + N_BLOCKS * width]``.

    Parameters
    ----------
    model : ToyModel whose ``p``/``q`` already include the temperature (``models.temperature``);
        its empty prefix is the start of the text.
    context : sequence of ``>= 1`` tokens generated so far; the root is ``context``.
    temperature : float, the sampling temperature (a feature; not applied here).
    width : int, state-block width (``V <= width``; shorter vectors are zero-padded).

    Scalars: ``H(p_prev)``, ``H(q_prev)``, ``H(q_root)`` (nats), ``KL(p_prev||q_prev)``,
    ``KL(q_prev||p_prev)``, ``||p_prev - q_prev||_1`` with ``p_prev = p(.|context[:-1])`` (the
    previous step's laws, both known once its token was verified) and ``q_root = q(.|context)``;
    ``log len(context)``; temperature. KL values are capped at 50 (a zero in ``q``).

    State blocks (:data:`BLOCK_NAMES`, the toy stand-ins for DDTE's hidden states, which encode
    the context): ``p_prev``, ``q_prev``, ``q_root`` and one-hot vectors of the last three tokens
    (zeros before the start of the context). The target's root law is NOT used: before drafting
    the target has not run on the root (DDTE §6).

    Examples
    --------
    >>> from specoracle import models
    >>> m = models.context_free([2/3, 1/3], [1/3, 2/3])
    >>> f = features(m, (0,), temperature=1.0, width=2)
    >>> bool(abs(f[3] - np.log(2) / 3) < 1e-12)   # KL(p||q) = ln(2)/3
    True
    """
    context = tuple(int(t) for t in context)
    if len(context) < 1:
        raise InvalidInstance("features need a context of at least one token (the previous step)")
    p_prev = np.asarray(model.p(context[:-1]), dtype=np.float64)
    q_prev = np.asarray(model.q(context[:-1]), dtype=np.float64)
    q_root = np.asarray(model.q(context), dtype=np.float64)
    scal = [
        _entropy(p_prev),
        _entropy(q_prev),
        _entropy(q_root),
        min(_kl(p_prev, q_prev), 50.0),
        min(_kl(q_prev, p_prev), 50.0),
        float(np.abs(p_prev - q_prev).sum()),
        float(np.log(len(context))),
        float(temperature),
    ]
    blocks = [_pad(p_prev, width), _pad(q_prev, width), _pad(q_root, width)]
    for back in range(1, N_TOKEN_BLOCKS + 1):
        v = np.zeros(width)
        if back <= len(context):
            if not 0 <= context[-back] < width:
                raise InvalidInstance(f"token {context[-back]} is out of range for the state width {width}")
            v[context[-back]] = 1.0
        blocks.append(v)
    return np.concatenate([np.array(scal)] + blocks)

