"""The exact engine: enumerate draft trees x the verifier's own random choices.

:func:`evaluate` gives, for a one-step verifier, drafting scheme and toy model:

- ``block_law``: exact law of the emitted block (accepted prefix + correction/bonus token);
- ``extended_law``: that block followed by fresh target sampling, a law on ``V^(L+1)``;
- ``max_error = max |extended_law - P|`` (0 iff the step is lossless, ALGORITHMS.md §1.3);
- ``block_efficiency = E[tau] + 1`` (expected emitted tokens per target call).

:func:`sequence_law` judges stateful verifiers (and any verifier) on whole generated sequences:
iterations run until ``length`` tokens are emitted, the sequence is truncated to ``length`` and
compared with ``P`` on ``V^length``.

Every outcome a verifier returns is validated (:func:`checked_block`: an :class:`Outcome` whose node
exists and whose token lies in ``0..V-1``), every enumeration must be deterministic and sum to 1
(:func:`specoracle.randomness.enumerate_law`), and the law built here must carry the whole mass of
the drafted trees; a verifier that breaks any of these is refused, never judged.

Float64 by default; ``rational=True`` uses :class:`fractions.Fraction` end to end (the model must
be rational, see :func:`specoracle.models.rationalize`).
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .drafting import Scheme
from .enumeration import DIRECT_KINDS, BadOutcome, RowTable, checked_block, iid_trees
from .enumeration import block_law as fast_block_law
from .errors import InvalidArgument, SpecoracleError, unknown_name
from .instance import Instance, Outcome
from .models import ToyModel
from .randomness import LAW_SUM_TOL, enumerate_law, global_random_guard
from .registry import resolve

__all__ = [
    "ExactResult",
    "BadOutcome",
    "checked_block",
    "SequenceResult",
    "LOSSLESS_TOL",
    "ENGINES",
    "is_lossless",
    "judged_length",
    "evaluate",
    "tree_law",
    "sequence_law",
    "extend",
    "shifted",
]


LOSSLESS_TOL = 1e-12
"""Largest float64 ``max |law - P|`` called lossless (rational mode: exactly 0). The one tolerance of
every exact verdict: the engine, :func:`specoracle.check.check_lossless`, the reports."""


def is_lossless(max_error, rational: bool = False) -> bool:
    """The exact verdict: ``max_error == 0`` in rational mode, ``< LOSSLESS_TOL`` in float."""
    return max_error == 0 if rational else float(max_error) < LOSSLESS_TOL


def judged_length(scheme: Scheme, stateful: bool) -> int:
    """Number of tokens a verifier is judged on: ``L + 1`` (one block, extended by target
    sampling) for one-step verifiers, ``2L + 1`` (whole sequences, so at least two calls interact)
    for stateful ones."""
    return 2 * scheme.depth + 1 if stateful else scheme.depth + 1


@dataclass(frozen=True)
class ExactResult:
    """Exact evaluation of one verifier on one model and scheme (see module docstring).

    ``block_law`` maps emitted token tuples to probabilities; ``length_law[t]`` is Pr[tau = t];
    ``extended_law`` and ``target_law`` have shape ``[V] * (L+1)``; ``fallback_mass`` is the
    probability of zero-mass-residual fallbacks (should be 0).
    """

    verifier: str
    model: str
    scheme: str
    block_law: dict
    length_law: dict
    extended_law: np.ndarray
    target_law: np.ndarray
    max_error: Any
    block_efficiency: Any
    fallback_mass: Any
    n_trees: int
    rational: bool

    @property
    def lossless(self) -> bool:
        """``max_error`` below :data:`LOSSLESS_TOL` (exactly 0 in rational mode)."""
        return is_lossless(self.max_error, self.rational)

    @property
    def expected_accepted(self):
        """E[tau] = block_efficiency - 1."""
        return self.block_efficiency - 1


@dataclass(frozen=True)
class SequenceResult:
    """Exact law of the first ``length`` generated tokens over several iterations."""

    verifier: str
    model: str
    scheme: str
    length: int
    law: np.ndarray
    target_law: np.ndarray
    max_error: Any
    tokens_per_call: Any
    rational: bool

    @property
    def lossless(self) -> bool:
        """``max_error`` below :data:`LOSSLESS_TOL` (exactly 0 in rational mode)."""
        return is_lossless(self.max_error, self.rational)


def _check_total(total, expected, rational: bool, name: str, what: str, slack: float = 0.0) -> None:
    """The law built for ``name`` must carry the mass ``expected`` (None: 1) exactly, or to
    ``LAW_SUM_TOL + slack`` in float."""
    expected = 1 if expected is None else expected
    if (total != expected) if rational else not abs(float(total) - float(expected)) <= LAW_SUM_TOL + slack:
        raise SpecoracleError(
            f"the {what} built for verifier {name!r} has total probability {total!r}, expected {expected!r}; "
            "its replay is not deterministic (randomness drawn outside rng?)"
        )


def _check_model(model: ToyModel, rational: bool) -> None:
    if not isinstance(model, ToyModel):
        raise InvalidArgument(f"model must be a specoracle ToyModel, got {type(model).__name__}")
    if rational and not model.rational:
        raise InvalidArgument(
            "rational mode needs a rational model (Fraction probabilities); build it with "
            "Fractions or use specoracle.models.rationalize(model)"
        )


def tree_law(verifier, instance: Instance, *, rational: bool | None = None) -> dict[Outcome, Any]:
    """Exact law of ``Outcome(node, token)`` for one fixed instance (a one-step verifier)."""
    r = resolve(verifier)
    name, fn, stateful = r.name, r.fn, r.stateful
    rational = instance.rational if rational is None else rational
    run = (lambda r: fn(instance, r, None)[0]) if stateful else (lambda r: fn(instance, r))
    law, _ = enumerate_law(run, rational=rational, name=name)
    out: dict[Outcome, Any] = {}
    for o, pr in law:
        checked_block(o, instance, name)
        out[o] = out.get(o, 0) + pr
    return out


def extend(block_law: dict, model: ToyModel, length: int) -> np.ndarray:
    """Extend each block by target sampling to ``length`` tokens; law on ``V^length`` (flat C order).

    Blocks longer than ``length`` are truncated (used by :func:`sequence_law`).
    """
    V = model.V
    dtype = object if model.rational else np.float64
    zero = Fraction(0) if model.rational else 0.0
    ext = np.full(V**length, zero, dtype=dtype)
    for block, pr in block_law.items():
        block = tuple(block[:length])
        base = 0
        for t in block:
            base = base * V + t
        cont = np.array([pr], dtype=dtype)
        prefixes = [block]
        for _ in range(length - len(block)):
            rows = np.stack([model.p(u) for u in prefixes])
            cont = (cont[:, None] * rows).reshape(-1)
            prefixes = [u + (t,) for u in prefixes for t in range(V)]
        span = V ** (length - len(block))
        ext[base * span : (base + 1) * span] += cont
    return ext


ENGINES = ("fast", "reference")
"""``fast``: :mod:`specoracle.enumeration` (direct trees, multisets, memoised subtree laws,
workers); ``reference``: the drafting procedure and the verifier replayed per leaf (the slow
oracle the fast engine is tested against)."""


def evaluate(verifier, model: ToyModel, scheme: Scheme, *, rational: bool = False, engine: str = "fast",
             workers=None) -> ExactResult:
    """Exact law, extended law, max error and block efficiency of a one-step verifier.

    Parameters
    ----------
    verifier : registry name, Entry, or ``verify(instance, rng) -> Outcome``.
    model : ToyModel (rational when ``rational=True``).
    scheme : drafting scheme.
    engine : ``"fast"`` (default) or ``"reference"`` (see :data:`ENGINES`); both give the same law.
    workers : fast engine, per-tree path: None (serial), a number of processes, or an executor
        with ``map`` (:func:`specoracle.enumeration.executor`).

    Examples
    --------
    >>> from fractions import Fraction as F
    >>> from specoracle import models, drafting
    >>> e1 = models.context_free([F(2, 3), F(1, 3)], [F(1, 3), F(2, 3)])
    >>> evaluate("bv", e1, drafting.chain(2), rational=True).block_efficiency
    Fraction(20, 9)
    """
    _check_model(model, rational)
    if engine not in ENGINES:
        raise unknown_name("engine", engine, ENGINES)
    r = resolve(verifier, scheme)
    name = r.name
    L = scheme.depth
    if engine == "fast":
        bl = fast_block_law(verifier, model, scheme, rational=rational, workers=workers)
        block_law, fallback, mass, n_trees = bl.law, bl.fallback, bl.mass, bl.n_trees
    else:
        with global_random_guard(name):
            block_law, fallback, mass, n_trees = _reference_block_law(r, model, scheme, rational)
    # the drafted mass is 1 up to the rows' rounding (Instance atol 1e-9 per row, one row per draw)
    _check_total(_total(block_law.values(), rational), mass, rational, name, "block law",
                 slack=0 if mass is not None else 1e-9 * (scheme.draws + 1))
    length_law: dict[int, Any] = {}
    for b, pr in block_law.items():
        length_law[len(b) - 1] = length_law[len(b) - 1] + pr if len(b) - 1 in length_law else pr
    ext = extend(block_law, model, L + 1)
    target = model.target_law(L + 1).reshape(-1)
    err = max(abs(a - b) for a, b in zip(ext, target))
    eff = sum(len(b) * pr for b, pr in block_law.items())
    return ExactResult(
        verifier=name,
        model=model.name,
        scheme=scheme.name,
        block_law=block_law,
        length_law=dict(sorted(length_law.items())),
        extended_law=ext.reshape((model.V,) * (L + 1)),
        target_law=target.reshape((model.V,) * (L + 1)),
        max_error=err,
        block_efficiency=eff,
        fallback_mass=fallback,
        n_trees=n_trees,
        rational=rational,
    )


def _total(values, rational: bool):
    """Sum of probabilities: exact for Fractions, ``math.fsum`` for floats."""
    return sum(values, Fraction(0)) if rational else math.fsum(values)


def _sequence_reference(r, model: ToyModel, scheme: Scheme, length: int, rational: bool):
    """Reference engine of :func:`sequence_law`: ``(law of the finished prefixes, expected calls)``."""
    name, fn, stateful = r.name, r.fn, r.stateful
    finished: dict[tuple, Any] = {}
    calls: Any = Fraction(0) if rational else 0.0
    frontier: list[tuple[tuple, Any, Any]] = [((), None, Fraction(1) if rational else 1.0)]
    while frontier:
        context, state, pr = frontier.pop()
        if len(context) >= length:
            key = context[:length]
            finished[key] = finished.get(key, 0) + pr
            continue
        calls += pr
        m = shifted(model, context)

        def run(r, m=m, state=state):
            inst = Instance.from_model(m, scheme.draft(m, r))
            if stateful:
                outcome, new_state = fn(inst, r, state)
            else:
                outcome, new_state = fn(inst, r), None
            return checked_block(outcome, inst, name), new_state

        law, _ = enumerate_law(run, rational=rational, name=name, guard=False)
        for (block, new_state), p in _merge_outcomes(law):
            frontier.append((context + block, new_state, pr * p))
    return finished, calls


def _rows_key(model: ToyModel, depth: int) -> tuple:
    """Every ``p``/``q`` row a call can read (prefixes of up to ``depth`` tokens), as a hashable key."""
    level, key = [()], []
    for d in range(depth + 1):
        for u in level:
            p, q = model.p(u), model.q(u)
            key.append((tuple(p), tuple(q)) if model.rational else (p.tobytes(), q.tobytes()))
        level = [u + (t,) for u in level for t in range(model.V)] if d < depth else []
    return tuple(key)


def _step_law(r, m: ToyModel, scheme: Scheme, state, rational: bool) -> list:
    """``[((block, new_state), pr)]`` of one call on model ``m`` (direct tree enumeration)."""
    fn, stateful, name = r.fn, r.stateful, r.name
    trees = iid_trees(m, scheme) if scheme.kind in DIRECT_KINDS else scheme.enumerate(m)
    rows = RowTable(m, scheme.depth)
    out: list = []
    for tree, tree_pr in trees:
        inst = rows.instance(tree)
        run = (lambda rr: fn(inst, rr, state)) if stateful else (lambda rr: (fn(inst, rr), None))
        law, _ = enumerate_law(run, rational=rational, name=name, guard=False)
        for (outcome, new_state), p in law:
            out.append(((checked_block(outcome, inst, name), new_state), tree_pr * p))
    return _merge_outcomes(out)


def _sequence_fast(r, model: ToyModel, scheme: Scheme, length: int, rational: bool):
    """Fast engine of :func:`sequence_law` (see its docstring)."""
    finished: dict[tuple, Any] = {}
    calls: Any = Fraction(0) if rational else 0.0
    memo: dict = {}
    levels: dict[int, dict] = {0: {((), _hashable(None)): (None, Fraction(1) if rational else 1.0)}}
    for n in range(length):  # every call emits >= 1 token: contexts grow, process them by length
        for (context, _), (state, pr) in levels.pop(n, {}).items():
            calls += pr
            m = shifted(model, context)
            skey = _hashable(state)
            key = None if skey is None else (_rows_key(m, scheme.depth), skey)
            law = memo.get(key) if key is not None else None
            if law is None:
                law = _step_law(r, m, scheme, state, rational)
                if key is not None:
                    memo[key] = law
            for (block, new_state), p in law:
                ctx = context + block
                w = pr * p
                if len(ctx) >= length:
                    finished[ctx[:length]] = finished.get(ctx[:length], 0) + w
                    continue
                level = levels.setdefault(len(ctx), {})
                hk = _hashable(new_state)
                k = (ctx, hk if hk is not None else id(new_state))
                level[k] = (new_state, level[k][1] + w) if k in level else (new_state, w)
    return finished, calls


def _hashable(state):
    """``state`` as a dict key: its pickle (equal bytes: the same state, whatever ``__eq__``
    ignores), or None when it cannot be pickled (then it is never merged or memoised)."""
    if state is None:
        return ("none",)
    try:
        return ("pickle", pickle.dumps(state, protocol=4))
    except Exception:  # unpicklable (closures, generators): identity only
        return None


def _reference_block_law(r, model: ToyModel, scheme: Scheme, rational: bool):
    """The reference engine: the drafting procedure replayed per leaf, then the verifier replayed
    per leaf of every tree. Returns ``(block_law, fallback_mass, tree_mass, n_trees)``."""
    name, fn, stateful = r.name, r.fn, r.stateful
    block_law: dict[tuple, Any] = {}
    fallback: Any = Fraction(0) if rational else 0.0
    trees = scheme.enumerate(model)
    for tree, tree_pr in trees:
        inst = Instance.from_model(model, tree)
        run = (lambda r, inst=inst: fn(inst, r, None)[0]) if stateful else (lambda r, inst=inst: fn(inst, r))
        law, fb = enumerate_law(run, rational=rational, name=name, guard=False)
        fallback += tree_pr * fb
        for outcome, pr in law:
            b = checked_block(outcome, inst, name)
            block_law[b] = block_law.get(b, 0) + tree_pr * pr
    return block_law, fallback, _total((pr for _, pr in trees), rational), len(trees)


def _merge_outcomes(law: list) -> list:
    """Sum the probabilities of equal outcomes (first-appearance order); unhashable ones pass through.

    Keeps the :func:`sequence_law` frontier small: without it every coin path of every iteration
    is its own frontier entry, so the work multiplies with each iteration.
    """
    merged: dict = {}
    rest: list = []
    for outcome, p in law:
        try:
            merged[outcome] = merged[outcome] + p if outcome in merged else p
        except TypeError:
            rest.append((outcome, p))
    return list(merged.items()) + rest


def shifted(model: ToyModel, context: tuple) -> ToyModel:
    """The model seen after ``context`` was generated: ``p'(u) = p(context + u)``."""
    context = tuple(context)
    if not context:
        return model
    return ToyModel(
        model.V,
        lambda u: model.p(context + u),
        lambda u: model.q(context + u),
        rational=model.rational,
        name=f"{model.name}|{context}",
    )


def sequence_law(
    verifier, model: ToyModel, scheme: Scheme, length: int, *, rational: bool = False, engine: str = "fast"
) -> SequenceResult:
    """Exact law of the first ``length`` tokens generated by repeated verification calls.

    Each call drafts a tree from the model shifted by the tokens emitted so far and verifies it;
    a stateful verifier receives the state its previous call returned (``None`` first). Use
    ``length >= 2L + 1`` so that at least two iterations interact.

    ``engine="fast"`` merges equal ``(context, state)`` pairs, enumerates the trees of each call
    directly and memoises a call's law on ``(rows of its context, state)`` (rows read up to the
    scheme's depth: equal rows give the same call; states compared by their pickles, so a field
    that ``__eq__`` ignores still counts); ``"reference"`` replays drafting and verifier jointly
    per leaf.
    """
    _check_model(model, rational)
    if engine not in ENGINES:
        raise unknown_name("engine", engine, ENGINES)
    r = resolve(verifier, scheme)
    name = r.name
    if length < 1:
        raise InvalidArgument(f"length must be >= 1, got {length}")
    with global_random_guard(name):
        if engine == "fast":
            finished, calls = _sequence_fast(r, model, scheme, length, rational)
        else:
            finished, calls = _sequence_reference(r, model, scheme, length, rational)
    if rational:  # float: each call's enumeration is checked; rows may sum to 1 +- 1e-9 (Instance atol)
        _check_total(_total(finished.values(), True), 1, True, name, "sequence law")
    seq = extend(finished, model, length)
    target = model.target_law(length).reshape(-1)
    err = max(abs(a - b) for a, b in zip(seq, target))
    return SequenceResult(
        verifier=name,
        model=model.name,
        scheme=scheme.name,
        length=length,
        law=seq.reshape((model.V,) * length),
        target_law=target.reshape((model.V,) * length),
        max_error=err,
        tokens_per_call=Fraction(length) / calls if rational else length / calls,
        rational=rational,
    )
