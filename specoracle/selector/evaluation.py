"""Held-out evaluation of a selector against static, per-temperature static and oracle policies.

:func:`evaluate` scores a :class:`~.policy.Selector` on the held-out split of a
:class:`~.data.SelectorData` set; :func:`summary` is the report's dict (shipped checkpoint and data).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from specoracle.errors import InvalidInstance

from . import data as selector_data
from .actions import ACTIONS
from .costs import LatencyModel
from .policy import Selector, load_default

__all__ = ["PolicyScore", "Evaluation", "evaluate", "summary"]


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
    selector = load_default() if selector is None else selector
    data = selector_data.load_default() if data is None else data
    ev = evaluate(selector, data, latency=latency)
    out = ev.as_dict()
    out["train_seconds"] = selector.meta.get("seconds")
    out["best_epoch"] = selector.meta.get("best_epoch")
    out["data_rows"] = int(len(data.be))
    out["data_bytes"] = int(selector_data.DEFAULT_DATA.stat().st_size) if selector_data.DEFAULT_DATA.exists() else None
    out["data"] = data.describe()
    return out