"""The selector's network, objective and the loaded policy (DDTE §6, App. E; ALGORITHMS.md §8.4).

- :class:`SelectorNet`: per-block linear projection + LayerNorm, concatenated with standardised
  scalars, MLP 512 -> 32 with GELU and dropout, ``A`` logits (DDTE App. E; the projection width
  is 32 instead of 128 because a state block here has ``width`` = 8 entries, not 4096).
- :func:`throughput`, :func:`throughput_loss`: ``TPS_pi(c) = sum_a pi(a|c) E[tau+1](c,a) /
  sum_a pi(a|c) T(a)``; ``loss = mean[-log(TPS_pi / TPS_base)] + lambda mean_{worst alpha}
  (1 - TPS_pi/TPS_base)_+^2`` with the best static action per temperature as the baseline.
- :class:`Selector` (a trained net with its latency model), :func:`save_checkpoint`,
  :func:`load`, :func:`load_default` (the checkpoint shipped in ``specoracle/data``).
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from specoracle.errors import InvalidInstance, UnknownName

from .actions import ACTIONS
from .costs import LatencyModel
from .data import DATA_DIR
from .root_features import N_BLOCKS, SCALAR_NAMES, DEFAULT_WIDTH, features

__all__ = [
    "DEFAULT_CHECKPOINT",
    "CHECKPOINTS",
    "FORMAT",
    "SelectorNet",
    "split_features",
    "throughput",
    "throughput_loss",
    "static_baseline",
    "Selector",
    "save_checkpoint",
    "load",
    "load_default",
]


class SelectorNet(nn.Module):
    """MLP over features -> action logits.

    Input: ``scalars`` [B, S + 1] (the :data:`SCALAR_NAMES` and the log cost ratio) and ``blocks``
    [B, N_BLOCKS, W]; output logits [B, A]. Each state block goes through its own ``Linear(W, d)`` and
    ``LayerNorm(d)``; the scalars are standardised with the training mean/std held as buffers.
    """

    def __init__(
        self,
        n_scalars: int = len(SCALAR_NAMES) + 1,
        width: int = DEFAULT_WIDTH,
        n_actions: int = len(ACTIONS),
        *,
        d: int = 32,
        hidden: tuple[int, int] = (512, 32),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.n_scalars, self.width, self.n_actions, self.d = n_scalars, width, n_actions, d
        self.hidden, self.dropout = tuple(hidden), dropout
        self.proj = nn.ModuleList([nn.Linear(width, d) for _ in range(N_BLOCKS)])
        self.norm = nn.ModuleList([nn.LayerNorm(d) for _ in range(N_BLOCKS)])
        self.register_buffer("mean", torch.zeros(n_scalars))
        self.register_buffer("std", torch.ones(n_scalars))
        self.mlp = nn.Sequential(
            nn.Linear(n_scalars + N_BLOCKS * d, hidden[0]),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden[0], hidden[1]),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden[1], n_actions),
        )

    def forward(self, scalars: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """``scalars`` [B, S + 1], ``blocks`` [B, N_BLOCKS, W] -> logits [B, A]."""
        z = [(scalars - self.mean) / self.std]
        for i in range(N_BLOCKS):
            z.append(self.norm[i](self.proj[i](blocks[:, i])))
        return self.mlp(torch.cat(z, dim=1))

    def config(self) -> dict:
        """Constructor arguments (stored in checkpoints)."""
        return dict(n_scalars=self.n_scalars, width=self.width, n_actions=self.n_actions, d=self.d,
                    hidden=list(self.hidden), dropout=self.dropout)


def split_features(x: np.ndarray | torch.Tensor, ratio, width: int):
    """Raw features [B, S + N_BLOCKS W] and cost ratios [B] -> (scalars [B, S+1], blocks [B, N_BLOCKS, W])."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if x.ndim == 1:
        x = x[None]
    S = len(SCALAR_NAMES)
    if x.shape[1] != S + N_BLOCKS * width:
        raise InvalidInstance(f"features have {x.shape[1]} columns, expected {S + N_BLOCKS * width}")
    r = torch.as_tensor(np.broadcast_to(np.asarray(ratio, dtype=np.float32), (x.shape[0],)).copy())
    scalars = torch.cat([x[:, :S], torch.log(r)[:, None]], dim=1)
    return scalars, x[:, S:].reshape(-1, N_BLOCKS, width)


# --- objective ----------------------------------------------------------------------------------
def throughput(pi: torch.Tensor, be: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """``TPS_pi = sum_a pi(a) BE(a) / sum_a pi(a) T(a)``; ``pi``, ``be``, ``lat`` [B, A] -> [B]."""
    return (pi * be).sum(-1) / (pi * lat).sum(-1)


def throughput_loss(
    logits: torch.Tensor,
    be: torch.Tensor,
    lat: torch.Tensor,
    base: torch.Tensor,
    *,
    tail_weight: float = 1.0,
    tail_fraction: float = 0.1,
) -> torch.Tensor:
    """DDTE §6 objective: ``mean[-log(TPS_pi/TPS_base)] + lambda mean_worst(1 - TPS_pi/TPS_base)_+^2``.

    ``logits``, ``be`` (estimated ``E[tau+1]``), ``lat`` (``T(a)``) [B, A]; ``base`` [B] the
    baseline throughput; the tail term averages over the worst ``ceil(alpha B)`` rows of the batch.
    """
    ratio = throughput(torch.softmax(logits, -1), be, lat) / base
    loss = -torch.log(ratio).mean()
    if tail_weight > 0:
        n = max(1, int(np.ceil(tail_fraction * ratio.shape[0])))
        worst = torch.topk(ratio, n, largest=False).values
        loss = loss + tail_weight * (torch.relu(1 - worst) ** 2).mean()
    return loss


def static_baseline(be: np.ndarray, lat: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Best static action index per group, maximising mean throughput ``mean_c BE(c,a) / T(a)``.

    ``be`` [n, A], ``lat`` [A] (same latency for every row), ``groups`` [n] (e.g. temperature; None
    = one group). Returns action indices [n] (the row's group's action).
    """
    groups = np.zeros(len(be)) if groups is None else np.asarray(groups)
    out = np.empty(len(be), dtype=np.int64)
    for g in np.unique(groups):
        m = groups == g
        out[m] = int(np.argmax(be[m].mean(0) / lat))
    return out



@dataclass(frozen=True, eq=False)
class Selector:
    """A trained selector: ``net`` in eval mode, the verifiers it chooses among, its latency model.

    The action space is ``verifiers x ACTIONS`` (verifier-major, ``M * A`` logits): a selector
    with one verifier picks ``(K, L1, L2)`` for it (DDTE: one selector per verifier); with several
    it also picks the verifier. :meth:`choose` maps feature rows to joint action indices;
    :meth:`select` maps a model + context to ``(verifier, (K, L1, L2))``; :meth:`scheme` to
    ``(verifier, delayed(K, L1, L2))``.
    """

    net: SelectorNet
    latency: LatencyModel
    verifiers: tuple[str, ...]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verifiers", tuple(self.verifiers))
        if self.net.n_actions != len(self.verifiers) * len(ACTIONS):
            raise InvalidInstance(f"the net has {self.net.n_actions} outputs, expected "
                                  f"{len(self.verifiers)} verifiers x {len(ACTIONS)} actions")

    @property
    def width(self) -> int:
        """State-block width (largest vocabulary the selector accepts)."""
        return self.net.width

    @property
    def joint(self) -> tuple[tuple[str, tuple[int, int, int]], ...]:
        """The joint actions ``(verifier, (K, L1, L2))`` in logit order, length ``M * A``."""
        return tuple((v, a) for v in self.verifiers for a in ACTIONS)

    def logits(self, feats, *, latency: LatencyModel | None = None) -> np.ndarray:
        """Joint action logits [B, M * A] for raw feature rows ``feats`` [B, F] (or [F])."""
        lat = self.latency if latency is None else latency
        scal, blocks = split_features(feats, lat.ratio, self.width)
        with torch.no_grad():
            return self.net(scal, blocks).numpy()

    def choose(self, feats, *, latency: LatencyModel | None = None, allowed=None) -> np.ndarray:
        """Argmax joint action indices [B]; ``allowed`` (bool [M * A] or callable
        ``(verifier, K, L1, L2) -> bool``) masks actions."""
        lg = self.logits(feats, latency=latency)
        if allowed is not None:
            joint = self.joint
            mask = np.array([allowed(v, *a) for v, a in joint]) if callable(allowed) else np.asarray(allowed, bool)
            if mask.shape != (len(joint),) or not mask.any():
                raise InvalidInstance(f"allowed must mark at least one of the {len(joint)} actions")
            lg = np.where(mask[None], lg, -np.inf)
        return lg.argmax(-1)

    def select(self, model, context, *, temperature: float, latency: LatencyModel | None = None,
               allowed=None) -> tuple[str, tuple[int, int, int]]:
        """``(verifier, (K, L1, L2))`` for one root (see :func:`features` for the arguments)."""
        f = features(model, context, temperature=temperature, width=self.width)
        return self.joint[int(self.choose(f, latency=latency, allowed=allowed)[0])]

    def scheme(self, model, context, *, temperature: float, latency: LatencyModel | None = None, allowed=None):
        """``(verifier, drafting.delayed(K, L1, L2))`` for the selected action."""
        from specoracle import drafting

        v, a = self.select(model, context, temperature=temperature, latency=latency, allowed=allowed)
        return v, drafting.delayed(*a)


FORMAT = "specoracle-selector-2"


def save_checkpoint(selector: Selector, path: str | Path) -> Path:
    """Write ``selector`` (state dict, network config, latency model, verifiers, metadata) with ``torch.save``."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "net_config": selector.net.config(),
        "state_dict": {k: v.detach().clone() for k, v in selector.net.state_dict().items()},
        "latency": {**asdict(selector.latency), "verify": [list(x) for x in selector.latency.verify]},
        "verifiers": list(selector.verifiers),
        "actions": [list(a) for a in ACTIONS],
        "meta": selector.meta,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.write_bytes(buf.getvalue())
    return path


def load(path: str | Path) -> Selector:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only`` unpickling)."""
    path = Path(path)
    if not path.exists():
        raise InvalidInstance(f"no selector checkpoint at {path}; run benchmarks/train_selector.py")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise InvalidInstance(f"{path} is not a specoracle selector checkpoint ({FORMAT})")
    if [tuple(a) for a in payload["actions"]] != list(ACTIONS):
        raise InvalidInstance(f"{path} was trained on a different action grid")
    cfg = dict(payload["net_config"])
    cfg["hidden"] = tuple(cfg["hidden"])
    net = SelectorNet(cfg.pop("n_scalars"), cfg.pop("width"), cfg.pop("n_actions"), **cfg)
    net.load_state_dict(payload["state_dict"])
    lat = dict(payload["latency"])
    lat["verify"] = tuple((str(n), float(c)) for n, c in lat.get("verify", ()))
    return Selector(net=net.eval(), latency=LatencyModel(**lat), verifiers=tuple(payload["verifiers"]),
                    meta=payload["meta"])


CHECKPOINTS = {
    (kind, seed): DATA_DIR / f"selector_{kind}_seed{seed}.pt" for kind in ("specinfer", "joint") for seed in (0, 1)
}
DEFAULT_CHECKPOINT = CHECKPOINTS[("specinfer", 0)]
_LOADED: dict = {}


def load_default(kind: str = "specinfer", seed: int = 0) -> Selector:
    """A checkpoint shipped in ``specoracle/data`` (cached): ``kind`` ``"specinfer"`` (SpecInfer
    only, DDTE's setting) or ``"joint"`` (the verifier is part of the action), ``seed`` 0 or 1."""
    if (kind, seed) not in CHECKPOINTS:
        raise UnknownName(f"no shipped selector {kind!r} seed {seed}; shipped: {sorted(CHECKPOINTS)}")
    if (kind, seed) not in _LOADED:
        _LOADED[(kind, seed)] = load(CHECKPOINTS[(kind, seed)])
    return _LOADED[(kind, seed)]
