"""The fast exact engine: draft trees enumerated directly, subtree laws memoised, work spread.

:func:`specoracle.exact.evaluate` (``engine="fast"``, the default) builds the block law of a
one-step verifier from four exact reductions, each checked against the reference engine
(``engine="reference"``: the drafting procedure and the verifier replayed per leaf) in
``tests/test_exact_engines.py``:

1. **Direct tree enumeration** (:func:`iid_trees`). For chain, i.i.d. and delayed schemes a tree is
   a trunk path followed by ``k`` branch paths drawn one after another, so its probability is
   ``Q(trunk) prod_j Q(path_j | trunk)``: the ``V^trunk`` trunks and ``V^branch`` paths are listed
   once and combined, with no replay of the drafting procedure.
2. **Multisets of i.i.d. paths** when the registry entry declares ``draw_order_invariant`` (the
   verifier's law is the same for every order of the i.i.d. paths): each multiset of paths is
   verified once with weight ``k! / prod_i m_i!`` times its probability.
3. **Deferred categorical draws** when the entry declares ``terminal_draws`` (a categorical
   drawn last is returned as the outcome token): one run per coin path, its outcome rebuilt for
   every value of the final draw (:func:`specoracle.randomness.enumerate_law`, ``terminal``).
4. **Top-down subtree laws** when the entry declares ``top_down`` (the verifier walks from the
   root; its decision at node ``u`` reads only ``p_u``, ``q_u`` and the tokens drawn at ``u``, and
   after entering child ``c`` only the subtree of ``c``). Below a child drawn ``m_c`` times the
   subtree is ``m_c`` i.i.d. paths from the child's prefix, independent of the decisions above, so
   ``law(prefix, m, l) = sum_d Q(d) [stop(d) + sum_c enter_c(d) x_c law(prefix + x_c, m_c, l - 1)]``
   where ``stop`` and ``enter`` come from running the verifier itself on the one-level tree of
   the draws ``d`` (children as leaves). Each ``(prefix, m, l)`` is computed once.

Everything that is not top-down (stateful verifiers, plain callables, without-replacement trees)
runs per tree, rows stacked once and nothing re-validated; chain/i.i.d./delayed trees are
enumerated directly (without-replacement ones by the drafting procedure) and may be spread over
worker processes through any object with ``map(fn, iterable)``
(:class:`concurrent.futures.Executor`, or a cluster client with the same method).

Every outcome is checked (:func:`checked_block`) and every enumeration is deterministic and sums to
1 (:func:`specoracle.randomness.enumerate_law`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations_with_replacement, product
from typing import Any

import numpy as np

from .drafting import Scheme
from .errors import InvalidArgument, SpecoracleError
from .instance import DEFAULT_ATOL, Instance, Outcome
from .models import ToyModel
from .randomness import enumerate_law, global_random_guard
from .registry import Resolved, resolve
from .tree import Tree, TreeBuilder, preorder_tree

__all__ = [
    "BadOutcome",
    "checked_block",
    "paths",
    "iid_trees",
    "block_law",
    "BlockLaw",
    "executor",
    "RowTable",
    "DIRECT_KINDS",
]

DIRECT_KINDS = ("chain", "iid", "delayed")


def _probed(n: int) -> bool:
    """Determinism probes on the first 16 enumerations of an evaluation and every 64th after."""
    return n < 16 or n % 64 == 0


class BadOutcome(SpecoracleError, ValueError):
    """A verifier returned something that is not an outcome of its instance (wrong type, a node
    outside the tree, a token outside the vocabulary)."""


def checked_block(outcome, instance: Instance, name: str) -> tuple[int, ...]:
    """The emitted block of ``outcome`` after checking it against ``instance``.

    Requires an :class:`Outcome` with integer ``node`` in ``0..N-1`` (``-1`` is not "the last
    node") and integer ``token`` in ``0..V-1``; raises :class:`BadOutcome` naming the verifier and
    the value otherwise.

    >>> inst = Instance(Tree.from_paths([(0,)]), [[.5, .5], [.5, .5]], [[.5, .5], [.5, .5]])
    >>> checked_block(Outcome(1, 1), inst, "v")
    (0, 1)
    """
    if type(outcome) is Outcome and type(outcome.node) is int and type(outcome.token) is int \
            and 0 <= outcome.node < instance.N and 0 <= outcome.token < instance.V:  # the common case, fast
        return instance.tree.prefixes[outcome.node] + (outcome.token,)
    if not isinstance(outcome, Outcome):
        raise BadOutcome(f"verifier {name!r} returned {type(outcome).__name__} {outcome!r}, expected an Outcome(node, token)")
    node, token = outcome.node, outcome.token
    for what, x, hi in (("node", node, instance.N), ("token", token, instance.V)):
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
            raise BadOutcome(f"verifier {name!r} returned Outcome({what}={x!r}): {what} must be an int")
        if not 0 <= x < hi:
            where = f"the tree has nodes 0..{hi - 1}" if what == "node" else f"the vocabulary is 0..{hi - 1}"
            raise BadOutcome(f"verifier {name!r} returned Outcome(node={node!r}, token={token!r}): {what} {x} "
                             f"is out of range ({where})")
    return instance.tree.prefixes[int(node)] + (int(token),)


def _one(rational: bool):
    return Fraction(1) if rational else 1.0


def _num(x, rational: bool):
    return x if rational else float(x)


def paths(model: ToyModel, prefix: tuple, length: int) -> list[tuple[tuple[int, ...], Any]]:
    """Every draft path of ``length`` tokens after ``prefix`` with ``Q(path | prefix) > 0``.

    >>> from specoracle import models
    >>> paths(models.context_free([.5, .5], [.25, .75]), (), 1)
    [((0,), 0.25), ((1,), 0.75)]
    """
    out = [((), _one(model.rational))]
    for _ in range(length):
        nxt = []
        for u, pr in out:
            row = model.q(prefix + u)
            nxt.extend((u + (t,), pr * _num(x, model.rational)) for t, x in enumerate(row) if x > 0)
        out = nxt
    return out


def _combos(n: int, k: int, multisets: bool, first: int | None = None):
    """Index tuples of ``k`` paths out of ``n`` (all orders, or sorted multisets with their
    multinomial count), optionally only those starting with ``first``."""
    starts = range(n) if first is None else (first,)
    for i0 in starts:
        if multisets:
            for rest in combinations_with_replacement(range(i0, n), k - 1):
                combo = (i0,) + rest
                count = math.factorial(k)
                for i in set(combo):
                    count //= math.factorial(combo.count(i))
                yield combo, count
        else:
            for rest in product(range(n), repeat=k - 1):
                yield (i0,) + rest, 1


def _build(trunk: tuple, branches: list, scheme: Scheme) -> Tree:
    """The tree :meth:`Scheme.draft` builds from these draws (trunk first, then path by path).

    Same merging and DFS pre-order numbering as :class:`TreeBuilder`, without re-validating a
    structure that is valid by construction (the tests compare both builds tree by tree).
    """
    tokens, parents, draws, index = [-1], [-1], [[]], {}

    def draw(parent: int, tok: int) -> int:
        child = index.get((parent, tok))
        if child is None:
            child = index[(parent, tok)] = len(tokens)
            tokens.append(tok)
            parents.append(parent)
            draws.append([])
        draws[parent].append(child)
        return child

    node = 0
    for tok in trunk:
        node = draw(node, tok)
    for path in branches:
        n = node
        for tok in path:
            n = draw(n, tok)
    return preorder_tree(tokens, parents, draws, "iid", scheme.trunk)


def iid_trees(model: ToyModel, scheme: Scheme, *, multisets: bool = False, trunk_index: int | None = None,
              first: int | None = None) -> Iterable[tuple[Tree, Any]]:
    """Every (chain, i.i.d. or delayed) draft tree with its probability, without replay.

    ``multisets=True`` yields one tree per multiset of branch paths, weighted by its number of
    orders (valid only for draw-order-invariant verifiers). ``trunk_index`` / ``first`` restrict
    the enumeration to one trunk / one first branch path (the unit of work of a worker).
    """
    if scheme.kind not in DIRECT_KINDS:
        raise InvalidArgument(f"direct enumeration covers {DIRECT_KINDS}, not {scheme.kind}")
    trunks = paths(model, (), scheme.trunk)
    k = scheme.k if scheme.branch else 0
    for ti, (trunk, tpr) in enumerate(trunks):
        if trunk_index is not None and ti != trunk_index:
            continue
        if k == 0:
            yield _build(trunk, [], scheme), tpr
            continue
        branch = paths(model, trunk, scheme.branch)
        for combo, count in _combos(len(branch), k, multisets, first):
            pr = tpr
            for i in combo:
                pr = pr * branch[i][1]
            yield _build(trunk, [branch[i][0] for i in combo], scheme), pr * count


@dataclass(frozen=True)
class BlockLaw:
    """An exact block law: ``law`` maps emitted token tuples to probabilities; ``fallback`` is the
    probability of zero-mass-residual fallbacks; ``mass`` the drafted trees' total probability;
    ``n_trees`` the trees (or one-level subtrees) verified."""

    law: dict
    fallback: Any
    mass: Any
    n_trees: int


class RowTable:
    """Every ``p``/``q`` row of prefixes up to ``depth`` tokens, stacked once: an instance's tables
    are one fancy-indexing step (``P[idx]``) instead of a stack of row copies per tree."""

    def __init__(self, model: ToyModel, depth: int) -> None:
        table = _row_table(model, depth)
        self.index = {u: i for i, u in enumerate(table)}
        self.P = np.stack([table[u][0] for u in table])
        self.Q = np.stack([table[u][1] for u in table])

    def instance(self, tree: Tree) -> Instance:
        """The :class:`Instance` of ``tree``, without validating again.

        Every row was validated when the model produced it (``ToyModel.p`` / ``q``) and the tree
        was built from draws with ``q > 0`` (:func:`_build`): what ``Instance.__post_init__``
        checks holds already, and re-checking it cost more than most verifiers
        (``tests/test_exact_engines.py`` compares it with a validated instance).
        """
        idx = [self.index[u] for u in tree.prefixes]
        p, q = self.P[idx], self.Q[idx]
        p.setflags(write=False)
        q.setflags(write=False)
        inst = object.__new__(Instance)
        for name, value in (("tree", tree), ("p", p), ("q", q), ("atol", DEFAULT_ATOL)):
            object.__setattr__(inst, name, value)
        return inst


def _terminal(result, drawn, value):
    """Deferred categorical draws (``terminal_draws`` entries): ``Outcome(node, drawn)`` rebuilt as
    ``Outcome(node, value)``; None when the result does not carry the draw as its token."""
    if isinstance(result, Outcome) and isinstance(result.token, (int, np.integer)) \
            and not isinstance(result.token, (bool, np.bool_)) and result.token == drawn:
        return Outcome(result.node, value)
    return None


def _runner(fn, stateful: bool, inst: Instance):
    return (lambda r: fn(inst, r, None)[0]) if stateful else (lambda r: fn(inst, r))


def _add(acc: dict, key, value) -> None:
    acc[key] = acc[key] + value if key in acc else value


def _trees_law(r: Resolved, model: ToyModel, scheme: Scheme, trees: Iterable[tuple[Tree, Any]], rational: bool) -> BlockLaw:
    """Per-tree enumeration of the verifier (the generic path)."""
    terminal = _terminal if r.entry is not None and r.entry.terminal_draws else None
    law: dict = {}
    fallback = mass = 0 * _one(rational)
    n = 0
    rows = RowTable(model, scheme.depth)
    for tree, tree_pr in trees:
        n += 1
        mass = mass + tree_pr
        inst = rows.instance(tree)
        outs, fb = enumerate_law(_runner(r.fn, r.stateful, inst), rational=rational, name=r.name, guard=False,
                                 terminal=terminal, probe=_probed(n))
        fallback = fallback + tree_pr * fb
        for outcome, pr in outs:
            _add(law, checked_block(outcome, inst, r.name), tree_pr * pr)
    return BlockLaw(law, fallback, mass, n)


def _merge(parts: Iterable[BlockLaw], rational: bool) -> BlockLaw:
    law: dict = {}
    fallback = mass = 0 * _one(rational)
    n = 0
    for part in parts:
        for b, pr in part.law.items():
            _add(law, b, pr)
        fallback, mass, n = fallback + part.fallback, mass + part.mass, n + part.n_trees
    return BlockLaw(law, fallback, mass, n)


# --- worker processes ------------------------------------------------------------------------------
def _row_table(model: ToyModel, depth: int) -> dict:
    """``prefix -> (p, q)`` for every prefix of up to ``depth`` tokens (what a worker needs)."""
    table, level = {}, [()]
    for d in range(depth + 1):
        for u in level:
            table[u] = (model.p(u), model.q(u))
        level = [u + (t,) for u in level for t in range(model.V)] if d < depth else []
    return table


def _table_model(V: int, table: dict, rational: bool, name: str) -> ToyModel:
    return ToyModel(V, lambda u: table[u][0], lambda u: table[u][1], rational=rational, name=name)


def _work(job) -> BlockLaw:
    verifier, V, table, rational, name, scheme, multisets, ti, first = job
    model = _table_model(V, table, rational, name)
    trees = iid_trees(model, scheme, multisets=multisets, trunk_index=ti, first=first)
    r = resolve(verifier)
    with global_random_guard(r.name):
        return _trees_law(r, model, scheme, trees, rational)


def executor(workers):
    """An object with ``map(fn, iterable)`` for ``workers``: None or 1 -> None (serial), an int ->
    a :class:`~concurrent.futures.ProcessPoolExecutor`, anything with ``map`` -> itself."""
    if workers is None or workers == 1:
        return None
    if isinstance(workers, int) and not isinstance(workers, bool):
        if workers < 1:
            raise InvalidArgument(f"workers must be >= 1, got {workers}")
        return ProcessPoolExecutor(workers)
    if callable(getattr(workers, "map", None)):
        return workers
    raise InvalidArgument(f"workers must be None, an int or an executor with map(), got {type(workers).__name__}")


def _parallel(r: Resolved, model: ToyModel, scheme: Scheme, multisets: bool, rational: bool, pool) -> BlockLaw:
    verifier = r.name if r.entry is not None else r.fn  # registry names travel as names
    table = _row_table(model, scheme.depth)
    jobs = []
    for ti, (trunk, _) in enumerate(paths(model, (), scheme.trunk)):
        n_first = len(paths(model, trunk, scheme.branch)) if scheme.branch else 0
        for first in (range(n_first) if n_first else (None,)):
            jobs.append((verifier, model.V, table, rational, model.name, scheme, multisets, ti, first))
    return _merge(pool.map(_work, jobs), rational)


# --- top-down subtree laws ---------------------------------------------------------------------------
def _topdown(r: Resolved, model: ToyModel, scheme: Scheme, multisets: bool, rational: bool) -> BlockLaw:
    """Block law of a ``top_down`` verifier by memoised subtree laws (module docstring, item 4)."""
    memo: dict = {}
    counter = [0]
    zero = 0 * _one(rational)

    def star(prefix: tuple, draws: tuple) -> Instance:
        b = TreeBuilder(sampling="iid")
        for x in draws:
            b.draw(0, x)
        tree = b.build()
        rows = [prefix + u for u in tree.prefixes]
        return Instance(tree, np.stack([model.p(u) for u in rows]), np.stack([model.q(u) for u in rows]))

    def law(prefix: tuple, m: int, length: int) -> tuple[dict, Any]:
        key = (prefix, m, length)
        if key in memo:
            return memo[key]
        out: dict = {}
        fallback = zero
        if length == 0:
            tuples = [((), _one(rational))]
        else:
            row = model.q(prefix)
            support = [(t, _num(x, rational)) for t, x in enumerate(row) if x > 0]
            tuples = []
            for combo, count in _combos(len(support), m, multisets):
                pr = _one(rational)
                for i in combo:
                    pr = pr * support[i][1]
                tuples.append((tuple(support[i][0] for i in combo), pr * count))
        for draws, dpr in tuples:
            inst = star(prefix, draws)
            counter[0] += 1
            outs, fb = enumerate_law(_runner(r.fn, r.stateful, inst), rational=rational, name=r.name, guard=False,
                                     probe=_probed(counter[0]))
            fallback = fallback + dpr * fb
            enter: dict = {}
            for outcome, pr in outs:
                block = checked_block(outcome, inst, r.name)
                if outcome.node == 0:
                    _add(out, block, dpr * pr)
                else:
                    _add(enter, int(outcome.node), pr)
            tree = inst.tree
            for c, pr in enter.items():
                x = tree.tokens[c]
                child_m = scheme.k if len(prefix) + 1 == scheme.trunk else tree.multiplicity[c]
                sub, sub_fb = law(prefix + (x,), child_m, length - 1)
                fallback = fallback + dpr * pr * sub_fb
                for s, spr in sub.items():
                    _add(out, (x,) + s, dpr * pr * spr)
        memo[key] = (out, fallback)
        return out, fallback

    root_m = (scheme.k if scheme.trunk == 0 else 1) if scheme.depth else 0
    out, fb = law((), root_m, scheme.depth)
    return BlockLaw(out, fb, None, counter[0])


def block_law(verifier, model: ToyModel, scheme: Scheme, *, rational: bool = False, workers=None) -> BlockLaw:
    """Exact block law of a one-step verifier by the fastest exact reduction its entry allows.

    ``top_down`` entries on chain/i.i.d./delayed schemes: memoised subtree laws; otherwise every
    tree (multisets of paths for ``draw_order_invariant`` entries), on ``workers`` processes
    (None: serial; an int; or an executor with ``map``) for chain/i.i.d./delayed schemes.
    """
    r = resolve(verifier, scheme)
    with global_random_guard(r.name):
        return _block_law(r, model, scheme, rational, workers)


def _block_law(r: Resolved, model: ToyModel, scheme: Scheme, rational: bool, workers) -> BlockLaw:
    entry = r.entry
    multisets = bool(entry is not None and entry.draw_order_invariant)
    if scheme.kind in DIRECT_KINDS and entry is not None and entry.top_down and not r.stateful:
        return _topdown(r, model, scheme, multisets, rational)
    if scheme.kind not in DIRECT_KINDS:
        return _trees_law(r, model, scheme, scheme.enumerate(model), rational)
    pool = executor(workers)
    if pool is None:
        return _trees_law(r, model, scheme, iid_trees(model, scheme, multisets=multisets), rational)
    if pool is workers:
        return _parallel(r, model, scheme, multisets, rational, pool)
    with pool:
        return _parallel(r, model, scheme, multisets, rational, pool)
