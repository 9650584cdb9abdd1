"""Neural delay-and-branch selector for dynamic delayed tree expansion (DDTE §6, ALGORITHMS.md §8.4).

Before drafting, at the root of every decoding step, a small MLP picks the drafting action
``a = (K, L1, L2)``: a trunk of ``L1`` draft tokens (one draw per edge), then ``K`` i.i.d. branches
of ``L2`` tokens (:func:`specoracle.drafting.delayed`). The choice uses only information available
before drafting, so for every fixed context the step is an ordinary delayed-tree step of the
verifier in use and stays lossless (DDTE Def. 5.2; checked with the exact engine in
``tests/test_selector.py``).

Pieces (all public):

- :data:`ACTIONS`: the action grid ``K in 1..4, L1 in 0..4, L2 in 0..4`` (A = 100 actions, K-major).
  ``(K, L1, 0)`` drafts only the trunk and is the same action for every ``K``; it is kept so the
  grid is the one specified.
- :func:`features`: scalars (entropies, KL both ways, L1 distance of the previous step's ``p`` and
  ``q``; context length; temperature) and six "state" blocks of ``width`` entries (the previous
  step's ``p`` and ``q``, the root ``q``, one-hot vectors of the last three tokens) -- the toy
  stand-ins for DDTE's hidden states.
- :class:`LatencyModel`: ``T(a) = L1 t_q + L2 t_q (1 + beta (K - 1)) + t_p (1 + gamma (L1 + K L2))``
  with configurable costs (defaults ``t_q = 1``, ``t_p = 10``, ``beta = 0.1``, ``gamma = 0.02``;
  these are assumptions, not measurements -- timing an n-gram toy would say nothing about LLMs).
- :class:`SelectorNet`: per-block linear projection + LayerNorm, concatenated with standardised
  scalars, MLP 512 -> 32 with GELU and dropout, ``A`` logits (DDTE App. E; the projection width is
  32 instead of 128 because a state block here has ``width`` = 8 entries, not 4096).
- :func:`throughput_loss`: ``TPS_pi(c) = sum_a pi(a|c) E[tau+1](c,a) / sum_a pi(a|c) T(a)``;
  ``loss = mean[-log(TPS_pi / TPS_base)] + lambda mean_{worst alpha}(1 - TPS_pi/TPS_base)_+^2``
  with the best static action per temperature as the baseline (DDTE §6).
- :func:`train`, :func:`evaluate`, :class:`Selector`, :func:`load_default`, :func:`summary`.

Reconstructed (not in the paper): the toy feature blocks, the latency defaults, training over a
range of target/draft cost ratios (the ratio is an input feature, like DDTE's measured latency),
and the group split of contexts by their n-gram state.
"""
from __future__ import annotations

import copy
import importlib.resources
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from specoracle.errors import InvalidInstance

__all__ = [
    "ACTIONS",
    "SCALAR_NAMES",
    "N_BLOCKS",
    "BLOCK_NAMES",
    "DEFAULT_WIDTH",
    "DEFAULT_CHECKPOINT",
    "DEFAULT_DATA",
    "features",
    "LatencyModel",
    "SelectorNet",
    "throughput",
    "throughput_loss",
    "static_baseline",
    "TrainConfig",
    "TrainResult",
    "train",
    "Selector",
    "PolicyScore",
    "Evaluation",
    "evaluate",
    "save_checkpoint",
    "load",
    "load_default",
    "summary",
]

ACTIONS: tuple[tuple[int, int, int], ...] = tuple(
    (K, L1, L2) for K in range(1, 5) for L1 in range(0, 5) for L2 in range(0, 5)
)
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
_DATA_DIR = Path(str(importlib.resources.files("specoracle"))) / "data"  # editable and wheel installs
DEFAULT_CHECKPOINT = _DATA_DIR / "selector.pt"
DEFAULT_DATA = _DATA_DIR / "selector_data.npz"


# --- features ----------------------------------------------------------------------------------
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


# --- latency ------------------------------------------------------------------------------------
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


def _latency_tables(ratios: torch.Tensor, base: LatencyModel, actions=ACTIONS) -> torch.Tensor:
    """``T(a)`` [B, A] for a batch of cost ratios (t_q = base.t_draft, t_p = ratio * t_q)."""
    a = torch.tensor(actions, dtype=ratios.dtype, device=ratios.device)
    K, L1, L2 = a[:, 0], a[:, 1], a[:, 2]
    tq = base.t_draft
    draft = L1 * tq + L2 * tq * (1 + base.draft_batch * (K - 1))
    tp = (ratios * tq)[:, None]
    return draft[None, :] + tp * (1 + base.target_per_token * (L1 + K * L2))[None, :]


# --- network ------------------------------------------------------------------------------------
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


def _split_features(x: np.ndarray | torch.Tensor, ratio, width: int):
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


# --- training -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults train in well under a minute on 2 CPU cores).

    ``ratio_range``: target/draft cost ratios drawn log-uniformly per row and step (the ratio is
    an input), or None to train only at ``latency.ratio``.
    """

    epochs: int = 60
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 1e-4
    d: int = 32
    hidden: tuple[int, int] = (512, 32)
    dropout: float = 0.1
    tail_weight: float = 1.0
    tail_fraction: float = 0.1
    ratio_range: tuple[float, float] | None = (4.0, 30.0)
    latency: LatencyModel = field(default_factory=LatencyModel)
    eval_every: int = 5
    max_steps: int | None = None
    seed: int = 0
    threads: int | None = 1


@dataclass(frozen=True)
class TrainResult:
    """A trained selector with its training record (losses per epoch, validation throughput)."""

    selector: "Selector"
    losses: tuple[float, ...]
    val_throughput: tuple[float, ...]
    best_epoch: int
    seconds: float
    steps: int


def train(data, config: TrainConfig = TrainConfig(), *, train_idx=None, val_idx=None, verbose: bool = False) -> TrainResult:
    """Train a :class:`SelectorNet` on ``data`` (a ``selector_data.SelectorData``).

    Rows ``train_idx`` (default: split 0) are fitted; the epoch with the best validation
    throughput of the argmax policy on ``val_idx`` (default: split 1) is kept.
    """
    t0 = time.perf_counter()
    old_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(data, config, train_idx, val_idx, verbose, t0)
    finally:
        torch.set_num_threads(old_threads)


def _train(data, config, train_idx, val_idx, verbose, t0) -> TrainResult:
    torch.manual_seed(config.seed)
    gen = np.random.default_rng(config.seed)
    train_idx = np.flatnonzero(data.split == 0) if train_idx is None else np.asarray(train_idx)
    val_idx = np.flatnonzero(data.split == 1) if val_idx is None else np.asarray(val_idx)
    if len(train_idx) == 0:
        raise InvalidInstance("no training rows")
    width = data.width
    lat0 = config.latency
    X = data.features[train_idx].astype(np.float32)
    BE = torch.as_tensor(data.be[train_idx], dtype=torch.float32)
    temps = data.temperature[train_idx]
    # group-mean BE per temperature for the static baseline (recomputed per cost ratio)
    uniq = np.unique(temps)
    gid = torch.as_tensor(np.searchsorted(uniq, temps))
    gmean = torch.stack([BE[torch.as_tensor(temps == t)].mean(0) for t in uniq])  # [G, A]

    net = SelectorNet(len(SCALAR_NAMES) + 1, width, len(ACTIONS), d=config.d, hidden=config.hidden, dropout=config.dropout)
    sc, _ = _split_features(X, lat0.ratio, width)
    net.mean.copy_(sc.mean(0))
    net.std.copy_(sc.std(0).clamp_min(1e-3))
    if config.ratio_range is not None:  # log-ratio column: standardise for the training range
        lo, hi = np.log(config.ratio_range)
        net.mean[-1] = float((lo + hi) / 2)
        net.std[-1] = float(max((hi - lo) / np.sqrt(12), 1e-3))
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = len(train_idx)
    steps_per_epoch = max(1, int(np.ceil(n / config.batch_size)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps_per_epoch)
    losses, vals = [], []
    best = (-np.inf, None, 0)
    steps = 0
    for epoch in range(config.epochs):
        net.train()
        perm = gen.permutation(n)
        tot = 0.0
        for b in range(steps_per_epoch):
            rows = perm[b * config.batch_size : (b + 1) * config.batch_size]
            if config.ratio_range is None:
                r = np.full(len(rows), lat0.ratio)
            else:
                r = np.exp(gen.uniform(*np.log(config.ratio_range), size=len(rows)))
            scal, blocks = _split_features(X[rows], r, width)
            lat = _latency_tables(torch.as_tensor(r, dtype=torch.float32), lat0)
            be = BE[rows]
            tps_static = gmean[gid[rows]] / lat  # [b, A]: group-mean throughput of every action
            a_star = tps_static.argmax(-1)
            base = be.gather(1, a_star[:, None])[:, 0] / lat.gather(1, a_star[:, None])[:, 0]
            loss = throughput_loss(net(scal, blocks), be, lat, base,
                                   tail_weight=config.tail_weight, tail_fraction=config.tail_fraction)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(rows)
            steps += 1
            if config.max_steps is not None and steps >= config.max_steps:
                break
        losses.append(tot / n)
        last = epoch == config.epochs - 1 or (config.max_steps is not None and steps >= config.max_steps)
        if len(val_idx) and ((epoch + 1) % config.eval_every == 0 or last):
            sel = _make_selector(net, data, config)
            v = _policy_tps(data, val_idx, sel.choose(data.features[val_idx]), lat0)
            vals.append(v)
            if v > best[0]:
                best = (v, copy.deepcopy(net.state_dict()), epoch)
            if verbose:
                print(f"epoch {epoch + 1:4d} loss {losses[-1]:+.5f} val TPS {v:.5f}")
        if last:
            break
    if best[1] is not None:
        net.load_state_dict(best[1])
    sel = _make_selector(net, data, config, best_epoch=best[2], seconds=time.perf_counter() - t0)
    return TrainResult(sel, tuple(losses), tuple(vals), best[2], time.perf_counter() - t0, steps)


def _make_selector(net, data, config, **meta) -> "Selector":
    net = copy.deepcopy(net).eval()
    info = dict(verifier=data.verifier, data=data.describe(), train=_config_dict(config), **meta)
    return Selector(net=net, latency=config.latency, verifier=data.verifier, meta=info)


def _config_dict(config: TrainConfig) -> dict:
    d = asdict(config)
    d["hidden"] = list(config.hidden)
    d["ratio_range"] = None if config.ratio_range is None else list(config.ratio_range)
    return d


def _policy_tps(data, rows, actions, lat: LatencyModel) -> float:
    T = lat.table()
    return float(np.mean(data.be[rows, actions] / T[actions]))


# --- the loaded selector ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Selector:
    """A trained selector: ``net`` in eval mode, the latency model it was trained for, metadata.

    :meth:`choose` maps feature rows to action indices; :meth:`select` maps a model + context to
    ``(K, L1, L2)``; :meth:`scheme` to the drafting scheme ``delayed(K, L1, L2)``.
    """

    net: SelectorNet
    latency: LatencyModel
    verifier: str
    meta: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        """State-block width (largest vocabulary the selector accepts)."""
        return self.net.width

    def logits(self, feats, *, latency: LatencyModel | None = None) -> np.ndarray:
        """Action logits [B, A] for raw feature rows ``feats`` [B, F] (or [F])."""
        lat = self.latency if latency is None else latency
        scal, blocks = _split_features(feats, lat.ratio, self.width)
        with torch.no_grad():
            return self.net(scal, blocks).numpy()

    def choose(self, feats, *, latency: LatencyModel | None = None, allowed=None) -> np.ndarray:
        """Argmax action indices [B]; ``allowed`` (bool [A] or callable ``(K,L1,L2) -> bool``) masks actions."""
        lg = self.logits(feats, latency=latency)
        if allowed is not None:
            mask = np.array([allowed(*a) for a in ACTIONS]) if callable(allowed) else np.asarray(allowed, bool)
            if mask.shape != (len(ACTIONS),) or not mask.any():
                raise InvalidInstance("allowed must mark at least one of the A actions")
            lg = np.where(mask[None], lg, -np.inf)
        return lg.argmax(-1)

    def select(self, model, context, *, temperature: float, latency: LatencyModel | None = None,
               allowed=None) -> tuple[int, int, int]:
        """The action ``(K, L1, L2)`` for one root (see :func:`features` for the arguments)."""
        f = features(model, context, temperature=temperature, width=self.width)
        return ACTIONS[int(self.choose(f, latency=latency, allowed=allowed)[0])]

    def scheme(self, model, context, *, temperature: float, latency: LatencyModel | None = None, allowed=None):
        """``drafting.delayed(K, L1, L2)`` for the selected action."""
        from specoracle import drafting

        return drafting.delayed(*self.select(model, context, temperature=temperature, latency=latency, allowed=allowed))


def save_checkpoint(selector: Selector, path: str | Path) -> Path:
    """Write ``selector`` (state dict, network config, latency model, metadata) with ``torch.save``."""
    path = Path(path)
    payload = {
        "format": "specoracle-selector-1",
        "net_config": selector.net.config(),
        "state_dict": {k: v.detach().clone() for k, v in selector.net.state_dict().items()},
        "latency": asdict(selector.latency),
        "verifier": selector.verifier,
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
    if payload.get("format") != "specoracle-selector-1":
        raise InvalidInstance(f"{path} is not a specoracle selector checkpoint")
    if [tuple(a) for a in payload["actions"]] != list(ACTIONS):
        raise InvalidInstance(f"{path} was trained on a different action grid")
    cfg = dict(payload["net_config"])
    cfg["hidden"] = tuple(cfg["hidden"])
    net = SelectorNet(cfg.pop("n_scalars"), cfg.pop("width"), cfg.pop("n_actions"), **cfg)
    net.load_state_dict(payload["state_dict"])
    return Selector(net=net.eval(), latency=LatencyModel(**payload["latency"]), verifier=payload["verifier"],
                    meta=payload["meta"])


_DEFAULT: Selector | None = None


def load_default() -> Selector:
    """The checkpoint shipped in ``specoracle/data/selector.pt`` (cached after the first call)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load(DEFAULT_CHECKPOINT)
    return _DEFAULT


# --- evaluation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyScore:
    """Held-out score of one policy.

    ``throughput``: mean over contexts of ``BE(c, a_c) / T(a_c)`` (tokens per unit of ``t_q``);
    ``aggregate_throughput``: ``sum_c BE / sum_c T``; ``block_efficiency``: mean ``BE(c, a_c)``;
    ``action``: the static action, or the most frequent one; ``n_distinct``: distinct actions used.
    """

    name: str
    throughput: float
    aggregate_throughput: float
    block_efficiency: float
    latency: float
    action: tuple[int, int, int]
    n_distinct: int


@dataclass(frozen=True)
class Evaluation:
    """Selector vs static and oracle policies on held-out contexts (see :func:`evaluate`)."""

    verifier: str
    latency: LatencyModel
    n_contexts: int
    selector: PolicyScore
    best_static: PolicyScore
    static_per_temperature: PolicyScore
    oracle: PolicyScore
    traversal: PolicyScore | None
    margin: float  # selector / best_static - 1 (throughput)
    oracle_gap: float  # 1 - selector / oracle (throughput)

    def as_dict(self) -> dict:
        """Plain-dict form (for reports and JSON)."""
        d = asdict(self)
        d["latency"] = asdict(self.latency)
        return d


def _score(name, be_rows: np.ndarray, actions: np.ndarray, T: np.ndarray) -> PolicyScore:
    be = be_rows[np.arange(len(actions)), actions]
    t = T[actions]
    vals, counts = np.unique(actions, return_counts=True)
    return PolicyScore(
        name=name,
        throughput=float(np.mean(be / t)),
        aggregate_throughput=float(be.sum() / t.sum()),
        block_efficiency=float(be.mean()),
        latency=float(t.mean()),
        action=ACTIONS[int(vals[np.argmax(counts)])],
        n_distinct=int(len(vals)),
    )


def evaluate(selector: Selector, data, *, test_idx=None, fit_idx=None, latency: LatencyModel | None = None) -> Evaluation:
    """Score the selector on held-out rows against static, per-temperature static and oracle policies.

    Static actions (overall, per temperature, and traversal's) are chosen on ``fit_idx`` (default:
    training + validation rows) and scored on ``test_idx`` (default: split 2); the oracle picks the
    best action of every test context from its own estimates (an optimistic upper reference: it
    also profits from estimation noise).
    """
    lat = selector.latency if latency is None else latency
    T = lat.table()
    test_idx = np.flatnonzero(data.split == 2) if test_idx is None else np.asarray(test_idx)
    fit_idx = np.flatnonzero(data.split != 2) if fit_idx is None else np.asarray(fit_idx)
    if len(test_idx) == 0:
        raise InvalidInstance("no held-out rows to evaluate on")
    be = data.be[test_idx]
    sel = _score("selector", be, selector.choose(data.features[test_idx], latency=lat), T)
    a_static = int(np.argmax(data.be[fit_idx].mean(0) / T))
    static = _score("best static", be, np.full(len(test_idx), a_static), T)
    per_t = np.empty(len(test_idx), dtype=np.int64)
    for temp in np.unique(data.temperature[test_idx]):
        fit_m = data.temperature[fit_idx] == temp
        src = data.be[fit_idx][fit_m] if fit_m.any() else data.be[fit_idx]
        per_t[data.temperature[test_idx] == temp] = int(np.argmax(src.mean(0) / T))
    static_t = _score("static per temperature", be, per_t, T)
    oracle = _score("oracle", be, np.argmax(be / T[None], axis=1), T)
    trav = None
    if data.be_traversal is not None and np.isfinite(data.be_traversal[test_idx]).all():
        a_tv = int(np.argmax(data.be_traversal[fit_idx].mean(0) / T))
        trav = _score(f"{data.traversal} best static", data.be_traversal[test_idx], np.full(len(test_idx), a_tv), T)
    return Evaluation(
        verifier=data.verifier,
        latency=lat,
        n_contexts=int(len(test_idx)),
        selector=sel,
        best_static=static,
        static_per_temperature=static_t,
        oracle=oracle,
        traversal=trav,
        margin=sel.throughput / static.throughput - 1,
        oracle_gap=1 - sel.throughput / oracle.throughput,
    )


def summary(selector: Selector | None = None, data=None, *, latency: LatencyModel | None = None) -> dict[str, Any]:
    """Report dict: selector vs best static vs per-context oracle vs traversal (held-out contexts).

    Defaults: the shipped checkpoint and data. Keys: ``verifier``, ``latency``, ``n_contexts``,
    one entry per policy (``selector``, ``best_static``, ``static_per_temperature``, ``oracle``,
    ``traversal``) with ``throughput``, ``aggregate_throughput``, ``block_efficiency``, ``action``;
    ``margin`` (selector over best static, throughput), ``oracle_gap``, ``train_seconds``,
    ``data_rows``, ``data_bytes``.
    """
    from . import selector_data

    selector = load_default() if selector is None else selector
    data = selector_data.load_default() if data is None else data
    ev = evaluate(selector, data, latency=latency)
    out = ev.as_dict()
    out["train_seconds"] = selector.meta.get("seconds")
    out["best_epoch"] = selector.meta.get("best_epoch")
    out["data_rows"] = int(len(data.be))
    out["data_bytes"] = int(DEFAULT_DATA.stat().st_size) if DEFAULT_DATA.exists() else None
    out["data"] = data.describe()
    return out
