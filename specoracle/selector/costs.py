"""Modelled wall time of one decoding step for the selector's actions (DDTE §6 ``T(x, a)``).

:class:`LatencyModel`: ``T(a) = L1 t_q + L2 t_q (1 + beta (K - 1)) + t_p (1 + gamma (L1 + K L2))``
with configurable costs (defaults ``t_q = 1``, ``t_p = 10``, ``beta = 0.1``, ``gamma = 0.02``;
these are assumptions, not measurements -- timing an n-gram toy would say nothing about LLMs).
:func:`latency_tables` is the batched torch form over target/draft cost ratios used in training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from specoracle.errors import InvalidInstance

from .actions import ACTIONS

__all__ = ["LatencyModel", "latency_tables"]


@dataclass(frozen=True)
class LatencyModel:
    """Modelled wall time of one decoding step with action ``(K, L1, L2)``.

    ``T(a) = L1 t_q + L2 t_q (1 + beta (K - 1)) + t_p (1 + gamma (L1 + K L2))``: ``L1`` sequential
    trunk draft steps, ``L2`` batched draft steps over ``K`` branches (a batched step costs
    ``beta`` more per extra branch), one target call whose cost grows by ``gamma`` per drafted
    token it scores. This is DDTE's ``T(x, a)`` with the length-dependent tables replaced by
    constants. Defaults are assumptions (``t_p = 10 t_q``), not measurements.

    Examples
    --------
    >>> LatencyModel()(2, 1, 2)   # 1 + 2*1.1 + 10*(1 + 0.02*5)
    14.2
    """

    t_draft: float = 1.0
    t_target: float = 10.0
    draft_batch: float = 0.1
    target_per_token: float = 0.02

    def __post_init__(self) -> None:
        for name in ("t_draft", "t_target"):
            if not getattr(self, name) > 0:
                raise InvalidInstance(f"LatencyModel.{name} must be > 0, got {getattr(self, name)}")
        for name in ("draft_batch", "target_per_token"):
            if not getattr(self, name) >= 0:
                raise InvalidInstance(f"LatencyModel.{name} must be >= 0, got {getattr(self, name)}")

    def __call__(self, K: int, L1: int, L2: int) -> float:
        drafted = L1 + (K * L2)
        t = L1 * self.t_draft + L2 * self.t_draft * (1 + self.draft_batch * (K - 1))
        return round(t + self.t_target * (1 + self.target_per_token * drafted), 12)

    def table(self, actions=ACTIONS) -> np.ndarray:
        """``T(a)`` for every action, shape [A]."""
        return np.array([self(*a) for a in actions], dtype=np.float64)

    @property
    def ratio(self) -> float:
        """Target/draft cost ratio ``t_p / t_q`` (a selector input)."""
        return self.t_target / self.t_draft


def latency_tables(ratios: torch.Tensor, base: LatencyModel, actions=ACTIONS) -> torch.Tensor:
    """``T(a)`` [B, A] for a batch of cost ratios (t_q = base.t_draft, t_p = ratio * t_q)."""
    a = torch.tensor(actions, dtype=ratios.dtype, device=ratios.device)
    K, L1, L2 = a[:, 0], a[:, 1], a[:, 2]
    tq = base.t_draft
    draft = L1 * tq + L2 * tq * (1 + base.draft_batch * (K - 1))
    tp = (ratios * tq)[:, None]
    return draft[None, :] + tp * (1 + base.target_per_token * (L1 + K * L2))[None, :]

