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
from .training import joint_be

__all__ = ["PolicyScore", "Evaluation", "evaluate", "summary", "Margin", "measure", "margins", "VerifierComparison",
           "compare_verifiers"]


@dataclass(frozen=True)
class PolicyScore:
    """Held-out score of one policy.

    ``throughput``: mean over contexts of ``BE(c, a_c) / T(v_c, a_c)`` (tokens per unit of
    ``t_q``); ``aggregate_throughput``: ``sum_c BE / sum_c T``; ``block_efficiency``: mean
    ``BE(c, a_c)``; ``verifier``, ``action``: the static choice, or the most frequent one;
    ``n_distinct``: distinct joint actions used.
    """

    name: str
    throughput: float
    aggregate_throughput: float
    block_efficiency: float
    latency: float
    verifier: str
    action: tuple[int, int, int]
    n_distinct: int


@dataclass(frozen=True)
class Evaluation:
    """Selector vs static and oracle policies on held-out contexts (see :func:`evaluate`).

    ``best_static``, ``static_per_temperature``, ``oracle``: over the selector's joint actions;
    ``static``: the best static action of every verifier of the data set (e.g. traversal), each
    under the same latency model; ``margins[v] = selector / static[v] - 1`` (throughput).
    """

    verifiers: tuple[str, ...]
    latency: LatencyModel
    n_contexts: int
    selector: PolicyScore
    best_static: PolicyScore
    static_per_temperature: PolicyScore
    oracle: PolicyScore
    static: dict[str, PolicyScore]
    margin: float  # selector / best_static - 1 (throughput)
    margins: dict[str, float]
    oracle_gap: float  # 1 - selector / oracle (throughput)

    @property
    def traversal(self) -> PolicyScore | None:
        """Traversal at its best static action (None if the data set has no traversal)."""
        return self.static.get("traversal")

    def as_dict(self) -> dict:
        """Plain-dict form (for reports and JSON)."""
        d = asdict(self)
        d["latency"] = asdict(self.latency)
        return d


def _score(name, be_rows: np.ndarray, actions: np.ndarray, T: np.ndarray, joint) -> PolicyScore:
    be = be_rows[np.arange(len(actions)), actions]
    t = T[actions]
    vals, counts = np.unique(actions, return_counts=True)
    v, a = joint[int(vals[np.argmax(counts)])]
    return PolicyScore(
        name=name,
        throughput=float(np.mean(be / t)),
        aggregate_throughput=float(be.sum() / t.sum()),
        block_efficiency=float(be.mean()),
        latency=float(t.mean()),
        verifier=v,
        action=a,
        n_distinct=int(len(vals)),
    )


def evaluate(selector: Selector, data, *, test_idx=None, fit_idx=None, latency: LatencyModel | None = None) -> Evaluation:
    """Score the selector on held-out rows against static, per-temperature static and oracle policies.

    Static actions (overall, per temperature, and each verifier's) are chosen on ``fit_idx``
    (default: training + validation rows) and scored on ``test_idx`` (default: split 2); the
    oracle picks the best joint action of every test context from its own estimates (an
    optimistic upper reference: it also profits from estimation noise).
    """
    lat = selector.latency if latency is None else latency
    verifiers = selector.verifiers
    joint = selector.joint
    T = lat.table(verifiers=verifiers)
    test_idx = np.flatnonzero(data.split == 2) if test_idx is None else np.asarray(test_idx)
    fit_idx = np.flatnonzero(data.split != 2) if fit_idx is None else np.asarray(fit_idx)
    if len(test_idx) == 0:
        raise InvalidInstance("no held-out rows to evaluate on")
    BE = joint_be(data, verifiers)
    be = BE[test_idx]
    sel = _score("selector", be, selector.choose(data.features[test_idx], latency=lat), T, joint)
    a_static = int(np.argmax(BE[fit_idx].mean(0) / T))
    static = _score("best static", be, np.full(len(test_idx), a_static), T, joint)
    per_t = np.empty(len(test_idx), dtype=np.int64)
    for temp in np.unique(data.temperature[test_idx]):
        fit_m = data.temperature[fit_idx] == temp
        src = BE[fit_idx][fit_m] if fit_m.any() else BE[fit_idx]
        per_t[data.temperature[test_idx] == temp] = int(np.argmax(src.mean(0) / T))
    static_t = _score("static per temperature", be, per_t, T, joint)
    oracle = _score("oracle", be, np.argmax(be / T[None], axis=1), T, joint)
    per_v = {}
    for v in data.verifiers:
        Tv = lat.table(verifiers=(v,))
        bv = data.be_of(v)
        a_v = int(np.argmax(bv[fit_idx].mean(0) / Tv))
        per_v[v] = _score(f"{v} best static", bv[test_idx], np.full(len(test_idx), a_v), Tv,
                          [(v, a) for a in ACTIONS])
    return Evaluation(
        verifiers=verifiers,
        latency=lat,
        n_contexts=int(len(test_idx)),
        selector=sel,
        best_static=static,
        static_per_temperature=static_t,
        oracle=oracle,
        static=per_v,
        margin=sel.throughput / static.throughput - 1,
        margins={v: sel.throughput / s.throughput - 1 for v, s in per_v.items()},
        oracle_gap=1 - sel.throughput / oracle.throughput,
    )


def summary(selector: Selector | None = None, data=None, *, latency: LatencyModel | None = None) -> dict[str, Any]:
    """Report dict: selector vs best static vs per-context oracle vs each verifier's best static.

    Defaults: the shipped joint checkpoint (seed 0) and data. Keys: ``verifiers``, ``latency``,
    ``n_contexts``, one entry per policy (``selector``, ``best_static``,
    ``static_per_temperature``, ``oracle``, ``static`` (per verifier)) with ``throughput``,
    ``aggregate_throughput``, ``block_efficiency``, ``verifier``, ``action``; ``margin`` (selector
    over best static, throughput), ``margins`` (per verifier), ``oracle_gap``, ``train_seconds``,
    ``data_rows``, ``data_bytes``.
    """
    selector = load_default("joint") if selector is None else selector
    data = selector_data.load_default() if data is None else data
    ev = evaluate(selector, data, latency=latency)
    out = ev.as_dict()
    out["train_seconds"] = selector.meta.get("seconds")
    out["best_epoch"] = selector.meta.get("best_epoch")
    out["data_rows"] = int(len(data.be))
    out["data_bytes"] = int(selector_data.DEFAULT_DATA.stat().st_size) if selector_data.DEFAULT_DATA.exists() else None
    out["data"] = data.describe()
    return out


@dataclass(frozen=True)
class Margin:
    """One shipped selector's held-out margins (throughput ratios minus 1).

    ``kind``: ``"specinfer"`` (SpecInfer only, DDTE's setting) or ``"joint"`` (the verifier is
    part of the action); ``over_static[v]``: over verifier ``v`` at its best static action;
    ``over_traversal``: over traversal at its best static action; ``selector``, ``static[v]``:
    the throughputs; ``choices``: share of held-out roots per chosen verifier; ``n_distinct``:
    distinct joint actions chosen on the held-out roots (1: the selector acts as a static policy);
    ``se_over_static[v]``: standard error of ``over_static[v]`` from the per-root paired
    differences ``BE/T`` (selector minus static), ``std / sqrt(n) / static[v]`` (roots treated as
    independent, which the n-gram states they share make optimistic).
    """

    kind: str
    seed: int
    verifiers: tuple[str, ...]
    n_contexts: int
    selector: float
    static: dict[str, float]
    static_action: dict[str, tuple[int, int, int]]
    over_static: dict[str, float]
    over_traversal: float
    oracle_gap: float
    choices: dict[str, float]
    n_distinct: int
    se_over_static: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def measure(kinds=("specinfer", "joint"), seeds=(0, 1), data=None) -> dict[tuple[str, int], Evaluation]:
    """:func:`evaluate` of every shipped checkpoint ``(kind, seed)`` on the shipped data's held-out rows."""
    data = selector_data.load_default() if data is None else data
    return {(k, s): evaluate(load_default(k, s), data) for k in kinds for s in seeds}


def margins(kinds=("specinfer", "joint"), seeds=(0, 1), data=None) -> tuple[Margin, ...]:
    """The held-out margins of the shipped checkpoints (see :class:`Margin`), from :func:`measure`."""
    data = selector_data.load_default() if data is None else data
    out = []
    test = data.split == 2
    for (k, s), ev in measure(kinds, seeds, data).items():
        sel = load_default(k, s)
        idx = sel.choose(data.features[test])
        picks = np.array([v for v, _ in (sel.joint[i] for i in idx)])
        T = ev.latency.table(verifiers=sel.verifiers)
        tps_sel = joint_be(data, sel.verifiers)[test][np.arange(len(idx)), idx] / T[idx]
        se = {}
        for v, p in ev.static.items():
            a = ACTIONS.index(p.action)
            diff = tps_sel - data.be_of(v)[test, a] / ev.latency(*p.action, v)
            se[v] = float(diff.std(ddof=1) / np.sqrt(len(diff)) / p.throughput)
        out.append(Margin(
            kind=k, seed=s, verifiers=ev.verifiers, n_contexts=ev.n_contexts, selector=ev.selector.throughput,
            static={v: p.throughput for v, p in ev.static.items()},
            static_action={v: p.action for v, p in ev.static.items()},
            over_static=dict(ev.margins), over_traversal=ev.margins["traversal"], oracle_gap=ev.oracle_gap,
            choices={v: float(np.mean(picks == v)) for v in ev.verifiers}, n_distinct=ev.selector.n_distinct,
            se_over_static=se,
        ))
    return tuple(out)


@dataclass(frozen=True)
class VerifierComparison:
    """Static and oracle throughputs of verifier sets on the held-out rows where all were scored.

    ``static[v]``: ``v`` at its best static action (fitted on the ``fit`` rows, scored on the
    ``test`` rows); ``oracle[names]``: the per-context best joint action over the verifiers
    ``names`` (an optimistic upper reference); ``n_fit``, ``n_test``: rows used.
    """

    latency: LatencyModel
    n_fit: int
    n_test: int
    static: dict[str, float]
    static_action: dict[str, tuple[int, int, int]]
    oracle: dict[tuple[str, ...], float]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["oracle"] = {" + ".join(k): v for k, v in self.oracle.items()}
        return d


def compare_verifiers(data=None, sets=None, *, latency: LatencyModel | None = None,
                      fit_split: int | None = None) -> VerifierComparison:
    """Each verifier of ``data`` at its best static action, and per-context oracles over ``sets``.

    Rows: those whose ``E[tau + 1]`` is finite for every verifier; static actions are fitted on
    ``split == fit_split`` rows and scored on ``split == 2`` rows (``fit_split=2``: in-sample, an
    optimistic static). ``sets``: tuples of verifier names (default: each prefix of
    ``data.verifiers`` with at least two names). ``latency`` defaults to :meth:`LatencyModel.measured`. Default data: the
    shipped extended set (:data:`~.data.EXTENDED_DATA`: SpecInfer, traversal, SpecTr and GBV on
    96 held-out roots) with in-sample statics (``fit_split=2``; else 1).
    """
    if data is None:
        data = selector_data.load(selector_data.EXTENDED_DATA)
        fit_split = 2 if fit_split is None else fit_split
    fit_split = 1 if fit_split is None else fit_split
    lat = LatencyModel.measured() if latency is None else latency
    ok = np.isfinite(data.be).all(axis=(1, 2))
    fit, test = ok & (data.split == fit_split), ok & (data.split == 2)
    if not test.any() or not fit.any():
        raise InvalidInstance("no rows scored for every verifier in the fitting and held-out splits")
    static, action = {}, {}
    for v in data.verifiers:
        T = lat.table(verifiers=(v,))
        a = int(np.argmax(data.be_of(v)[fit].mean(0) / T))
        static[v], action[v] = float(np.mean(data.be_of(v)[test, a] / T[a])), ACTIONS[a]
    sets = [tuple(data.verifiers[: i + 1]) for i in range(1, len(data.verifiers))] if sets is None else sets
    oracle = {}
    for names in sets:
        tps = np.concatenate([data.be_of(v)[test] / lat.table(verifiers=(v,))[None] for v in names], axis=1)
        oracle[tuple(names)] = float(tps.max(1).mean())
    return VerifierComparison(lat, int(fit.sum()), int(test.sum()), static, action, oracle)
