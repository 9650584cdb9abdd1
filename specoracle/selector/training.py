"""Training of the selector on a :class:`~.data.SelectorData` set (DDTE §6 objective).

:func:`train` fits a :class:`~.policy.SelectorNet` with AdamW and a cosine schedule over random
target/draft cost ratios (the ratio is an input feature, like DDTE's measured latency) and keeps
the epoch with the best validation throughput of the argmax policy. Training is not run in CI:
the shipped checkpoints were made by ``benchmarks/train_selector.py``.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from specoracle.errors import InvalidInstance

from .costs import LatencyModel, latency_tables
from .root_features import SCALAR_NAMES
from .policy import Selector, SelectorNet, split_features, throughput_loss

__all__ = ["TrainConfig", "TrainResult", "train", "joint_be"]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults train in well under a minute on 2 CPU cores).

    ``ratio_range``: target/draft cost ratios drawn log-uniformly per row and step (the ratio is
    an input), or None to train only at ``latency.ratio``. ``verifiers``: the verifiers the
    selector chooses among (a subset of the data's; one verifier: DDTE's setting); their costs
    come from ``latency`` (:meth:`LatencyModel.measured`).
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
    verifiers: tuple[str, ...] = ("specinfer",)


@dataclass(frozen=True)
class TrainResult:
    """A trained selector with its training record (losses per epoch, validation throughput)."""

    selector: Selector
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
    BE = torch.as_tensor(joint_be(data, config.verifiers)[train_idx], dtype=torch.float32)  # [n, M * A]
    temps = data.temperature[train_idx]
    # group-mean BE per temperature for the static baseline (recomputed per cost ratio)
    uniq = np.unique(temps)
    gid = torch.as_tensor(np.searchsorted(uniq, temps))
    gmean = torch.stack([BE[torch.as_tensor(temps == t)].mean(0) for t in uniq])  # [G, M * A]

    net = SelectorNet(len(SCALAR_NAMES) + 1, width, BE.shape[1], d=config.d, hidden=config.hidden, dropout=config.dropout)
    sc, _ = split_features(X, lat0.ratio, width)
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
            scal, blocks = split_features(X[rows], r, width)
            lat = latency_tables(torch.as_tensor(r, dtype=torch.float32), lat0, verifiers=config.verifiers)
            be = BE[rows]
            tps_static = gmean[gid[rows]] / lat  # [b, M * A]: group-mean throughput of every action
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
            v = _policy_tps(data, val_idx, sel.choose(data.features[val_idx]), lat0, config.verifiers)
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


def _make_selector(net, data, config, **meta) -> Selector:
    net = copy.deepcopy(net).eval()
    info = dict(verifiers=list(config.verifiers), data=data.describe(), train=_config_dict(config), **meta)
    return Selector(net=net, latency=config.latency, verifiers=config.verifiers, meta=info)


def _config_dict(config: TrainConfig) -> dict:
    d = asdict(config)
    d["hidden"] = list(config.hidden)
    d["ratio_range"] = None if config.ratio_range is None else list(config.ratio_range)
    d["verifiers"] = list(config.verifiers)
    d["latency"]["verify"] = [list(x) for x in config.latency.verify]
    return d


def joint_be(data, verifiers) -> np.ndarray:
    """``E[tau + 1]`` of the joint actions ``verifiers x ACTIONS`` (verifier-major), [n, M * A]."""
    return np.concatenate([data.be_of(v) for v in verifiers], axis=1)


def _policy_tps(data, rows, actions, lat: LatencyModel, verifiers) -> float:
    T = lat.table(verifiers=verifiers)
    return float(np.mean(joint_be(data, verifiers)[rows, actions] / T[actions]))
