"""Modelled wall time of one decoding step for the selector's actions (DDTE §6 ``T(x, a)``).

:class:`LatencyModel`: for verifier ``v`` and action ``a = (K, L1, L2)``,

``T(v, a) = L1 t_q + L2 t_q (1 + beta (K - 1)) + t_p (1 + gamma (L1 + K L2)) + c_v t_q (1 + L1 + K L2)``

-- sequential trunk draft steps, batched branch draft steps, one target call, and the verifier's
own call, ``c_v`` draft steps per tree node (``1 + L1 + K L2`` nodes; ``c_v = 0`` for a verifier
without a cost). Defaults ``t_q = 1``, ``t_p = 10``, ``beta = 0.1``, ``gamma = 0.02`` and no
verifier cost are assumptions, not measurements.

Verifier costs (:func:`LatencyModel.measured`): ``c_v = kappa_v * rho`` with ``kappa_v`` the
measured time of ``v``'s torch twin per call relative to the memory roofline of the same batch
(one pass reading ``p`` and ``q``; :func:`specoracle.gpu.bench`, stored in
``specoracle/data/selector_costs.json``) and ``rho`` the roofline of one node in draft steps, an
assumption: reading one node's ``p`` and ``q`` (``V = 32,000`` float32 entries each, 256 kB)
against a draft step that reads a 68M-parameter bf16 draft model (136 MB) at the same bandwidth,
``rho = 256e3 / 136e6 ~ 0.002`` (:data:`ROOFLINE_PER_NODE`).

:func:`latency_tables` is the batched torch form over target/draft cost ratios used in training.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from specoracle.errors import InvalidInstance, UnknownName

from .actions import ACTIONS
from .data import DATA_DIR

__all__ = ["LatencyModel", "latency_tables", "ROOFLINE_PER_NODE", "COSTS_FILE", "measured_kappa"]

ROOFLINE_PER_NODE = 256e3 / 136e6
COSTS_FILE = DATA_DIR / "selector_costs.json"


@lru_cache(maxsize=1)
def measured_kappa() -> dict[str, float]:
    """Measured twin time / roofline per verifier (geometric mean over the timed schemes).

    Read from :data:`COSTS_FILE` (written by ``benchmarks/train_selector.py --measure-costs``).
    """
    rows = json.loads(COSTS_FILE.read_text())["rows"]
    out: dict[str, list[float]] = {}
    for r in rows:
        if r["twin_s"] is not None and np.isfinite(r["twin_s"]):
            out.setdefault(r["name"], []).append(r["twin_s"] / r["roofline_s"])
    return {k: float(np.exp(np.mean(np.log(v)))) for k, v in out.items()}


@dataclass(frozen=True)
class LatencyModel:
    """Modelled wall time ``T(v, a)`` of one decoding step (see the module docstring).

    ``verify``: ``((name, c_v), ...)``, the verifier's cost per tree node in draft steps.

    Examples
    --------
    >>> LatencyModel()(2, 1, 2)   # 1 + 2*1.1 + 10*(1 + 0.02*5)
    14.2
    >>> LatencyModel(verify=(("traversal", 0.1),))(2, 1, 2, "traversal")   # + 0.1 * 6 nodes
    14.8
    """

    t_draft: float = 1.0
    t_target: float = 10.0
    draft_batch: float = 0.1
    target_per_token: float = 0.02
    verify: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        for name in ("t_draft", "t_target"):
            if not getattr(self, name) > 0:
                raise InvalidInstance(f"LatencyModel.{name} must be > 0, got {getattr(self, name)}")
        for name in ("draft_batch", "target_per_token"):
            if not getattr(self, name) >= 0:
                raise InvalidInstance(f"LatencyModel.{name} must be >= 0, got {getattr(self, name)}")
        object.__setattr__(self, "verify", tuple((str(n), float(c)) for n, c in self.verify))
        for n, c in self.verify:
            if not c >= 0:
                raise InvalidInstance(f"LatencyModel.verify cost of {n!r} must be >= 0, got {c}")

    @classmethod
    def measured(cls, verifiers=None, *, roofline_per_node: float = ROOFLINE_PER_NODE, **kw) -> "LatencyModel":
        """The model with ``c_v = kappa_v * roofline_per_node`` for ``verifiers`` (default: all measured)."""
        kappa = measured_kappa()
        names = list(kappa) if verifiers is None else list(verifiers)
        missing = [n for n in names if n not in kappa]
        if missing:
            raise UnknownName(f"no measured cost for {missing}; measured: {', '.join(sorted(kappa))}")
        return cls(verify=tuple((n, kappa[n] * roofline_per_node) for n in names), **kw)

    def verify_cost(self, verifier: str | None) -> float:
        """``c_v`` (0 for ``None`` or a verifier without a cost)."""
        return dict(self.verify).get(verifier, 0.0) if verifier is not None else 0.0

    def __call__(self, K: int, L1: int, L2: int, verifier: str | None = None) -> float:
        drafted = L1 + (K * L2)
        t = L1 * self.t_draft + L2 * self.t_draft * (1 + self.draft_batch * (K - 1))
        t += self.verify_cost(verifier) * self.t_draft * (1 + drafted)
        return round(t + self.t_target * (1 + self.target_per_token * drafted), 12)

    def table(self, actions=ACTIONS, verifiers=(None,)) -> np.ndarray:
        """``T(v, a)`` for every verifier and action, shape [M * A] (verifier-major; [A] by default)."""
        return np.array([self(*a, v) for v in verifiers for a in actions], dtype=np.float64)

    @property
    def ratio(self) -> float:
        """Target/draft cost ratio ``t_p / t_q`` (a selector input)."""
        return self.t_target / self.t_draft


def latency_tables(ratios: torch.Tensor, base: LatencyModel, actions=ACTIONS, verifiers=(None,)) -> torch.Tensor:
    """``T(v, a)`` [B, M * A] for a batch of cost ratios (t_q = base.t_draft, t_p = ratio * t_q)."""
    a = torch.tensor(actions, dtype=ratios.dtype, device=ratios.device)
    K, L1, L2 = a[:, 0], a[:, 1], a[:, 2]
    tq = base.t_draft
    drafted = L1 + K * L2
    draft = L1 * tq + L2 * tq * (1 + base.draft_batch * (K - 1))
    tp = (ratios * tq)[:, None]
    per_v = [draft + base.verify_cost(v) * tq * (1 + drafted) for v in verifiers]
    return torch.cat(per_v)[None, :] + tp * (1 + base.target_per_token * drafted).repeat(len(verifiers))[None, :]
