"""Training data for the delay-and-branch selector (DDTE §6; ALGORITHMS.md §8.3-8.4).

Roots are positions of the default corpus (standard-library sources), tokenised like
:func:`specoracle.models.ngram_pair` (``V - 1`` most frequent characters + "other"). One n-gram
pair (target order 4, draft order 2) is fitted once; each root is the model shifted by its context
(:func:`specoracle.exact.shifted`), at several temperatures (:func:`specoracle.models.temperature`,
both sides). For every root and every action ``(K, L1, L2)`` of :data:`~.actions.ACTIONS` the
block efficiency ``E[tau + 1]`` of every verifier of the configuration is estimated as DDTE does: the mean over
``s`` sampled delayed trees of the exact per-tree value ``E[tau + 1 | T]`` (exact average over
all trees where the action has at most 64 possible trees: chains of depth <= 2 and (2, 0, 1) at
V = 8). The per-tree value comes from DDTE Eq. 3
(:func:`specoracle.reference.topdown.tree_block_efficiency`) for top-down methods; for other
verifiers (traversal) from the exact law of the verifier's Bernoulli coins (its one categorical
draw only picks the emitted token, which does not change ``tau``; a verifier whose categorical
draws steer the walk raises, and can use ``method="mc"``: Monte-Carlo runs of the reference).

Common random numbers: for sample ``j`` of a root one chain of 8 draft tokens and, for every
trunk length ``L1``, 4 branches of 4 tokens from the trunk end are drawn; action ``(K, L1, L2)``
uses the trunk ``chain[:L1]`` and the first ``K`` branches cut to ``L2`` tokens, and ``K = 1`` or
``L2 = 0`` use the chain ``chain[:L1 + L2]``. Each action's tree therefore has exactly the law of
``drafting.delayed(K, L1, L2)`` (tested against the core drafting code), and actions are compared
on shared draws, which lowers the noise of their differences.

The split holds out whole n-gram states (the last ``target_order - 1`` tokens of the context):
no held-out root shares its target state with a training root.
"""
from __future__ import annotations

import importlib.resources
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from specoracle import exact, models
from specoracle.errors import InvalidInstance, SpecoracleError, UnknownName
from specoracle.instance import Instance
from specoracle.randomness import Sampling, enumerate_law
from specoracle.tree import Tree, TreeBuilder

from .actions import ACTIONS, MAX_BRANCH, MAX_K, MAX_TRUNK, action_scheme, exact_actions
from .root_features import N_BLOCKS, SCALAR_NAMES, features

__all__ = [
    "DataConfig",
    "SelectorData",
    "DATA_DIR",
    "DEFAULT_DATA",
    "EXTENDED_DATA",
    "draw_tokens",
    "action_tree",
    "tree_efficiency_backend",
    "root_block_efficiencies",
    "TerminalCategorical",
    "corpus_ids",
    "generate",
    "config_of",
    "extend",
    "load",
    "load_default",
]

DATA_DIR = Path(str(importlib.resources.files("specoracle"))) / "data"  # editable and wheel installs
DEFAULT_DATA = DATA_DIR / "selector_data.npz"
# the first 96 held-out roots of DEFAULT_DATA with SpecTr and GBV scored on the same trees (extend)
EXTENDED_DATA = DATA_DIR / "selector_data_extended.npz"


@dataclass(frozen=True)
class DataConfig:
    """What :func:`generate` builds (defaults: the shipped data set's roots and draws).

    ``n_contexts`` corpus positions x ``temperatures`` roots; ``samples`` trees per (root, action)
    (DDTE: s = 4), except actions with at most ``exact_max_trees`` possible trees, which are
    averaged exactly; ``verifiers`` the methods scored on the same trees (the selector chooses
    among them, or serves the first); ``method`` the per-tree efficiency backend (see
    :func:`tree_efficiency_backend`).
    """

    vocab: int = 8
    target_order: int = 4
    draft_order: int = 2
    smoothing: float = 0.5
    temperatures: tuple[float, ...] = (0.3, 0.6, 0.9, 1.2)
    n_contexts: int = 1600
    min_context: int = 4
    max_context: int = 64
    samples: int = 4
    exact_max_trees: int = 64
    verifiers: tuple[str, ...] = ("specinfer", "traversal")
    method: str = "auto"
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    seed: int = 0


@dataclass(frozen=True, eq=False)
class SelectorData:
    """Roots with features and estimated block efficiencies.

    Attributes (n roots, M verifiers, A actions, F features)
    ----------
    features : [n, F] float, :func:`~.root_features.features` of each root.
    be : [n, M, A] float, estimated ``E[tau + 1]`` of each verifier for each action.
    temperature : [n]; context_length : [n]; position : [n] corpus index of the root;
    state : [n, target_order - 1] the n-gram state; split : [n] 0 train, 1 validation, 2 test.
    config : dict (the :class:`DataConfig` plus the backends used and generation seconds).
    """

    features: np.ndarray
    be: np.ndarray
    temperature: np.ndarray
    context_length: np.ndarray
    position: np.ndarray
    state: np.ndarray
    split: np.ndarray
    config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.be.ndim != 3 or self.be.shape[1] != len(self.verifiers) or self.be.shape[2] != len(ACTIONS):
            raise InvalidInstance(f"be must be [n, M={len(self.verifiers)}, A={len(ACTIONS)}], got {self.be.shape}")

    @property
    def verifiers(self) -> tuple[str, ...]:
        """The verifiers scored, in the order of ``be``'s axis 1."""
        return tuple(self.config["verifiers"])

    def be_of(self, verifier: str) -> np.ndarray:
        """``E[tau + 1]`` of one verifier, [n, A]."""
        if verifier not in self.verifiers:
            raise UnknownName(f"verifier {verifier!r} is not in this data set: {', '.join(self.verifiers)}")
        return self.be[:, self.verifiers.index(verifier)]

    @property
    def width(self) -> int:
        """State-block width of the feature rows."""
        return (self.features.shape[1] - len(SCALAR_NAMES)) // N_BLOCKS

    def describe(self) -> dict:
        """Short description (sizes, verifiers, backends) for reports and checkpoints."""
        return dict(
            rows=int(len(self.be)),
            actions=int(self.be.shape[2]),
            train=int((self.split == 0).sum()),
            validation=int((self.split == 1).sum()),
            test=int((self.split == 2).sum()),
            verifiers=list(self.verifiers),
            backends=self.config.get("backends"),
            seconds=self.config.get("seconds"),
            samples=self.config.get("samples"),
        )

    def subset(self, rows) -> "SelectorData":
        """The rows ``rows`` (indices or a boolean mask) as a new data set."""
        rows = np.asarray(rows)
        return SelectorData(
            features=self.features[rows], be=self.be[rows], temperature=self.temperature[rows],
            context_length=self.context_length[rows], position=self.position[rows], state=self.state[rows],
            split=self.split[rows], config=dict(self.config),
        )

    def save(self, path: str | Path) -> Path:
        """Write a compressed ``.npz`` (float32 arrays, config as JSON)."""
        path = Path(path)
        arrays = dict(
            features=self.features.astype(np.float32),
            be=self.be.astype(np.float32),
            temperature=self.temperature.astype(np.float32),
            context_length=self.context_length.astype(np.int32),
            position=self.position.astype(np.int32),
            state=self.state.astype(np.int8),
            split=self.split.astype(np.int8),
            config=np.array(json.dumps(self.config)),
        )
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path


def load(path: str | Path) -> SelectorData:
    """Read a data set written by :meth:`SelectorData.save`."""
    path = Path(path)
    if not path.exists():
        raise InvalidInstance(f"no selector data at {path}; run benchmarks/train_selector.py --regenerate")
    with np.load(path, allow_pickle=False) as z:
        return SelectorData(
            features=z["features"].astype(np.float64),
            be=z["be"].astype(np.float64),
            temperature=z["temperature"].astype(np.float64),
            context_length=z["context_length"].astype(np.int64),
            position=z["position"].astype(np.int64),
            state=z["state"].astype(np.int64),
            split=z["split"].astype(np.int64),
            config=json.loads(str(z["config"])),
        )


_DEFAULT: SelectorData | None = None


def load_default() -> SelectorData:
    """The data set shipped in ``specoracle/data/selector_data.npz`` (cached)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load(DEFAULT_DATA)
    return _DEFAULT


# --- trees with common random numbers -----------------------------------------------------------
def draw_tokens(model, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draft draws shared by all actions of one sample.

    Returns ``chain`` [MAX_TRUNK + MAX_BRANCH] (one draft path from the root) and ``branches``
    [MAX_TRUNK + 1, MAX_K, MAX_BRANCH]: for trunk length ``L1``, ``MAX_K`` i.i.d. draft paths from
    the prefix ``chain[:L1]``. Sampled token by token from ``model.q`` (inverse CDF, float64).
    """
    def path(prefix: tuple, n: int) -> list[int]:
        out = []
        u = prefix
        for _ in range(n):
            q = np.asarray(model.q(u), dtype=np.float64)
            t = int(np.searchsorted(np.cumsum(q), rng.random(), side="right"))
            if t >= len(q) or q[t] <= 0:  # rounding at the top end: last token with mass
                t = int(np.flatnonzero(q > 0)[-1])
            out.append(t)
            u = u + (t,)
        return out

    chain = np.array(path((), MAX_TRUNK + MAX_BRANCH), dtype=np.int64)
    branches = np.empty((MAX_TRUNK + 1, MAX_K, MAX_BRANCH), dtype=np.int64)
    for L1 in range(MAX_TRUNK + 1):
        trunk = tuple(int(t) for t in chain[:L1])
        for k in range(MAX_K):
            branches[L1, k] = path(trunk, MAX_BRANCH)
    return chain, branches


def action_tree(action: tuple[int, int, int], chain, branches) -> Tree:
    """The tree of ``action = (K, L1, L2)`` from shared draws (see :func:`draw_tokens`).

    ``K = 1`` or ``L2 = 0``: the chain ``chain[:L1 + L2]`` (a ``drafting.chain`` tree, same law as
    ``delayed(K, L1, L2)``); otherwise trunk ``chain[:L1]`` (one draw per edge, ``trunk = L1``) and
    branches ``branches[L1, k, :L2]`` for ``k < K``, drawn in that order as
    :meth:`specoracle.drafting.Scheme.draft` does.
    """
    K, L1, L2 = action
    if K == 1 or L2 == 0:
        b = TreeBuilder(sampling="iid", trunk=0)
        node = 0
        for t in chain[: L1 + L2]:
            node = b.draw(node, int(t))
        return b.build()
    b = TreeBuilder(sampling="iid", trunk=L1)
    node = 0
    for t in chain[:L1]:
        node = b.draw(node, int(t))
    for k in range(K):
        n = node
        for t in branches[L1, k, :L2]:
            n = b.draw(n, int(t))
    return b.build()


# --- per-tree block efficiency ------------------------------------------------------------------
class TerminalCategorical:
    """Forwards Bernoulli coins; a categorical draw must be the last call and is not branched on."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.done = False

    def bernoulli(self, prob, key):
        if self.done:
            raise SpecoracleError("a Bernoulli coin after a categorical draw: the draw is not terminal")
        return self.inner.bernoulli(prob, key)

    def categorical(self, probs, key):
        if self.done:
            raise SpecoracleError("two categorical draws: the first is not terminal")
        self.done = True
        pos = np.flatnonzero(np.asarray(probs, dtype=np.float64) > 0)
        return int(pos[0]) if len(pos) else 0

    def fallback(self, key):
        self.inner.fallback(key)


def _eq3(name: str) -> Callable[[Instance], float] | None:
    from specoracle.reference import topdown

    if name not in topdown.METHODS:
        return None
    return lambda inst: float(topdown.tree_block_efficiency(name, inst))


def _coins(name: str) -> Callable[[Instance], float]:
    from specoracle import registry

    entry = registry.get(name)
    fn = entry.reference

    def be(inst: Instance) -> float:
        depths = inst.tree.depths
        law, _ = enumerate_law(lambda r: depths[fn(inst, TerminalCategorical(r)).node] + 1)
        return float(sum(v * pr for v, pr in law))

    return be


def _monte_carlo(name: str, runs: int, seed: int) -> Callable[[Instance], float]:
    from specoracle import registry

    fn = registry.get(name).reference
    rng = np.random.default_rng(seed)

    def be(inst: Instance) -> float:
        d = inst.tree.depths
        return float(np.mean([d[fn(inst, Sampling(rng)).node] + 1 for _ in range(runs)]))

    return be


def tree_efficiency_backend(name: str, method: str = "auto", *, runs: int = 16, seed: int = 0) -> tuple[str, Callable[[Instance], float]]:
    """``(method, fn)`` with ``fn(instance) -> E[tau + 1 | tree]`` for verifier ``name``.

    Methods: ``"eq3"`` (DDTE Eq. 3 from the top-down branching laws, exact), ``"coins"`` (exact
    enumeration of the verifier's Bernoulli coins; valid when its only categorical draw is the
    final emitted token, which is checked on every run), ``"mc"`` (mean of ``runs`` sampled
    verifications: unbiased, not exact). ``"auto"``: eq3, else coins.
    """
    from specoracle import registry

    registry.get(name)  # unknown names raise with the valid ones
    backends = {
        "eq3": lambda: _eq3(name),
        "coins": lambda: _coins(name),
        "mc": lambda: _monte_carlo(name, runs, seed),
    }
    if method == "auto":
        fn = _eq3(name)
        return ("eq3", fn) if fn is not None else ("coins", _coins(name))
    if method not in backends:
        raise UnknownName(f"unknown backend {method!r}. Valid backends: auto, {', '.join(backends)}.")
    fn = backends[method]()
    if fn is None:
        raise InvalidInstance(f"backend {method!r} does not support verifier {name!r}")
    return method, fn


def root_block_efficiencies(model, backends: list[Callable[[Instance], float]], draws, *,
                            exact_max_trees: int = 0) -> np.ndarray:
    """Estimated ``E[tau + 1]`` per action for one root, shape [len(backends), A].

    ``model``: the root's ToyModel (prefix ``()`` = the root); ``draws``: ``s`` results of
    :func:`draw_tokens`. Mean over the draws of the per-tree value; identical trees within a draw
    are scored once. Actions with at most ``exact_max_trees`` possible draws (``V^(L1 + K L2)``)
    are instead averaged exactly over every tree of the scheme with its probability (no sampling
    noise).
    """
    out = np.zeros((len(backends), len(ACTIONS)))
    is_exact = exact_actions(model.V, exact_max_trees)
    draws = list(draws)
    for chain, branches in draws:
        cache: dict[Tree, np.ndarray] = {}
        for a, action in enumerate(ACTIONS):
            if is_exact[a]:
                continue
            tree = action_tree(action, chain, branches)
            val = cache.get(tree)
            if val is None:
                inst = Instance.from_model(model, tree)
                val = cache[tree] = np.array([fn(inst) for fn in backends])
            out[:, a] += val
    if draws:
        out /= len(draws)
    done: dict[str, np.ndarray] = {}
    for a, action in enumerate(ACTIONS):
        if not is_exact[a]:
            continue
        scheme = action_scheme(action)
        if scheme.name not in done:
            tot = np.zeros(len(backends))
            for tree, pr in scheme.enumerate(model):
                inst = Instance.from_model(model, tree)
                tot += pr * np.array([fn(inst) for fn in backends])
            done[scheme.name] = tot
        out[:, a] = done[scheme.name]
    return out


# --- the corpus and generation ------------------------------------------------------------------
def corpus_ids(model) -> np.ndarray:
    """The default corpus tokenised with ``model.token_names`` (last name = "other")."""
    names = list(model.token_names)
    lookup = {c: i for i, c in enumerate(names[:-1])}
    other = len(names) - 1
    return np.array([lookup.get(c, other) for c in models.default_corpus()], dtype=np.int64)


def _split(states: np.ndarray, config: DataConfig, rng: np.random.Generator) -> np.ndarray:
    keys = [tuple(s) for s in states]
    uniq = sorted(set(keys))
    order = rng.permutation(len(uniq))
    n_test = int(round(config.test_fraction * len(uniq)))
    n_val = int(round(config.val_fraction * len(uniq)))
    label = {}
    for rank, i in enumerate(order):
        label[uniq[i]] = 2 if rank < n_test else (1 if rank < n_test + n_val else 0)
    return np.array([label[k] for k in keys], dtype=np.int64)


def _roots(config: DataConfig):
    """The roots of ``config`` in order: ``(base, [(context, tempered model, root model, draws)])``.

    Consumes one generator seeded with ``config.seed``: corpus positions, context lengths, then
    ``config.samples`` calls of :func:`draw_tokens` per root -- so every data set built from the
    same configuration scores the same trees (common random numbers across verifiers).
    """
    rng = np.random.default_rng(config.seed)
    base = models.ngram_pair(target_order=config.target_order, draft_order=config.draft_order,
                             vocab=config.vocab, smoothing=config.smoothing)
    ids = corpus_ids(base)
    positions = np.sort(rng.choice(np.arange(config.max_context, len(ids)), size=config.n_contexts, replace=False))
    lengths = rng.integers(config.min_context, config.max_context + 1, size=config.n_contexts)
    tempered = {T: models.temperature(base, T) for T in config.temperatures}

    def roots():
        for i in range(config.n_contexts):
            for T in config.temperatures:
                ctx = tuple(int(t) for t in ids[positions[i] - lengths[i] : positions[i]])
                root = exact.shifted(tempered[T], ctx)
                yield int(positions[i]), T, ctx, tempered[T], root, [draw_tokens(root, rng) for _ in range(config.samples)]

    return base, roots()


def _bar(it, total: int, progress: bool, desc: str):
    if not progress:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc)


def generate(config: DataConfig = DataConfig(), *, progress: bool = False) -> SelectorData:
    """Build the data set (see the module docstring); ``progress`` shows a tqdm bar."""
    t0 = time.perf_counter()
    base, roots = _roots(config)
    picked = [tree_efficiency_backend(n, config.method, seed=config.seed) for n in config.verifiers]
    backends = [fn for _, fn in picked]
    feats, be, temps, clen, pos, states = [], [], [], [], [], []
    k = config.target_order - 1
    n = config.n_contexts * len(config.temperatures)
    for position, T, ctx, m, root, draws in _bar(roots, n, progress, "selector data"):
        feats.append(features(m, ctx, temperature=T))
        be.append(root_block_efficiencies(root, backends, draws, exact_max_trees=config.exact_max_trees))
        temps.append(T)
        clen.append(len(ctx))
        pos.append(position)
        states.append(ctx[-k:])
    states_arr = np.array(states, dtype=np.int64)
    cfg = asdict(config)
    cfg["temperatures"] = list(config.temperatures)
    cfg["verifiers"] = list(config.verifiers)
    cfg["backends"] = {n: m for n, (m, _) in zip(config.verifiers, picked)}
    cfg["seconds"] = round(time.perf_counter() - t0, 1)
    cfg["token_names"] = list(base.token_names)
    cfg["exact_actions"] = [list(a) for a, e in zip(ACTIONS, exact_actions(base.V, config.exact_max_trees)) if e]
    return SelectorData(
        features=np.array(feats),
        be=np.array(be).reshape(len(feats), len(config.verifiers), len(ACTIONS)),
        temperature=np.array(temps, dtype=np.float64),
        context_length=np.array(clen),
        position=np.array(pos),
        state=states_arr,
        split=_split(states_arr, config, np.random.default_rng(config.seed + 1)),
        config=cfg,
    )


def config_of(data: SelectorData) -> DataConfig:
    """The :class:`DataConfig` a data set was generated with."""
    names = {f.name for f in fields(DataConfig)}
    cfg = {k: v for k, v in data.config.items() if k in names}
    cfg["temperatures"] = tuple(cfg["temperatures"])
    cfg["verifiers"] = tuple(cfg["verifiers"])
    return DataConfig(**cfg)


def extend(data: SelectorData, verifiers, *, rows=None, progress: bool = False) -> SelectorData:
    """``data`` restricted to ``rows`` (default: all) with ``verifiers`` scored on the same trees.

    Replays the draws of ``data``'s configuration (:func:`_roots`; every root is redrawn, only
    ``rows`` are scored) and appends the new verifiers on ``be``'s axis 1. The replay is checked:
    the first verifier of ``data`` is rescored on the first of ``rows`` and must match to float32
    precision (else :class:`~specoracle.errors.SpecoracleError`).
    """
    t0 = time.perf_counter()
    config = config_of(data)
    verifiers = tuple(v for v in verifiers if v not in data.verifiers)
    rows = np.arange(len(data.be)) if rows is None else np.asarray(rows, dtype=np.int64)
    wanted = {int(r): j for j, r in enumerate(rows)}
    picked = [tree_efficiency_backend(n, config.method, seed=config.seed) for n in verifiers]
    check = tree_efficiency_backend(data.verifiers[0], data.config["backends"][data.verifiers[0]], seed=config.seed)[1]
    new = np.zeros((len(rows), len(verifiers), len(ACTIONS)))
    _, roots = _roots(config)
    for r, (position, T, ctx, m, root, draws) in enumerate(_bar(roots, len(data.be), progress, "replay")):
        if r not in wanted:
            continue
        if position != data.position[r] or abs(T - data.temperature[r]) > 1e-6:
            raise SpecoracleError(f"row {r}: the replay drew a different root than the data set")
        backends = [fn for _, fn in picked] + ([check] if r == rows[0] else [])
        vals = root_block_efficiencies(root, backends, draws, exact_max_trees=config.exact_max_trees)
        if r == rows[0] and np.abs(vals[-1] - data.be[r, 0]).max() > 1e-5 * np.abs(data.be[r, 0]).max():
            raise SpecoracleError(f"row {r}: the replayed trees do not reproduce the stored {data.verifiers[0]} values")
        new[wanted[r]] = vals[: len(verifiers)]
    cfg = dict(data.config)
    cfg["verifiers"] = list(data.verifiers + verifiers)
    cfg["backends"] = {**data.config["backends"], **{n: m for n, (m, _) in zip(verifiers, picked)}}
    cfg["extended_seconds"] = round(time.perf_counter() - t0, 1)
    sub = data.subset(rows)
    return SelectorData(features=sub.features, be=np.concatenate([sub.be, new], axis=1), temperature=sub.temperature,
                        context_length=sub.context_length, position=sub.position, state=sub.state, split=sub.split,
                        config=cfg)
