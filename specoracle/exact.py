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
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .drafting import Scheme
from .errors import InvalidArgument, SpecoracleError
from .instance import Instance, Outcome
from .models import ToyModel
from .randomness import LAW_SUM_TOL, enumerate_law
from .registry import resolve

__all__ = [
    "ExactResult",
    "BadOutcome",
    "checked_block",
    "SequenceResult",
    "LOSSLESS_TOL",
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


class BadOutcome(SpecoracleError, ValueError):
    """A verifier returned something that is not an outcome of its instance (wrong type, a node
    outside the tree, a token outside the vocabulary)."""


def checked_block(outcome, instance: Instance, name: str) -> tuple[int, ...]:
    """The emitted block of ``outcome`` after checking it against ``instance``.

    Requires an :class:`Outcome` with integer ``node`` in ``0..N-1`` (``-1`` is not "the last
    node") and integer ``token`` in ``0..V-1``; raises :class:`BadOutcome` naming the verifier and
    the value otherwise.

    >>> from specoracle.tree import Tree
    >>> inst = Instance(Tree.from_paths([(0,)]), [[.5, .5], [.5, .5]], [[.5, .5], [.5, .5]])
    >>> checked_block(Outcome(1, 1), inst, "v")
    (0, 1)
    """
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
    return instance.tree.prefixes[node] + (int(token),)


def _check_total(total, expected, rational: bool, name: str, what: str) -> None:
    """The law built for ``name`` must carry the mass ``expected`` (exactly, or to ``LAW_SUM_TOL``)."""
    if (total != expected) if rational else not abs(float(total) - float(expected)) <= LAW_SUM_TOL:
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


def evaluate(verifier, model: ToyModel, scheme: Scheme, *, rational: bool = False) -> ExactResult:
    """Exact law, extended law, max error and block efficiency of a one-step verifier.

    Parameters
    ----------
    verifier : registry name, Entry, or ``verify(instance, rng) -> Outcome``.
    model : ToyModel (rational when ``rational=True``).
    scheme : drafting scheme.

    Examples
    --------
    >>> from fractions import Fraction as F
    >>> from specoracle import models, drafting
    >>> e1 = models.context_free([F(2, 3), F(1, 3)], [F(1, 3), F(2, 3)])
    >>> evaluate("bv", e1, drafting.chain(2), rational=True).block_efficiency
    Fraction(20, 9)
    """
    _check_model(model, rational)
    r = resolve(verifier, scheme)
    name, fn, stateful = r.name, r.fn, r.stateful
    L = scheme.depth
    block_law: dict[tuple, Any] = {}
    length_law: dict[int, Any] = {}
    fallback: Any = Fraction(0) if rational else 0.0
    trees = scheme.enumerate(model)
    for tree, tree_pr in trees:
        inst = Instance.from_model(model, tree)
        run = (lambda r, inst=inst: fn(inst, r, None)[0]) if stateful else (lambda r, inst=inst: fn(inst, r))
        law, fb = enumerate_law(run, rational=rational, name=name)
        fallback += tree_pr * fb
        for outcome, pr in law:
            b = checked_block(outcome, inst, name)
            w = tree_pr * pr
            block_law[b] = block_law.get(b, 0) + w
            length_law[len(b) - 1] = length_law.get(len(b) - 1, 0) + w
    _check_total(_total(block_law.values(), rational), _total((pr for _, pr in trees), rational), rational,
                  name, "block law")
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
        n_trees=len(trees),
        rational=rational,
    )


def _total(values, rational: bool):
    """Sum of probabilities: exact for Fractions, ``math.fsum`` for floats."""
    return sum(values, Fraction(0)) if rational else math.fsum(values)


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
    verifier, model: ToyModel, scheme: Scheme, length: int, *, rational: bool = False
) -> SequenceResult:
    """Exact law of the first ``length`` tokens generated by repeated verification calls.

    Each call drafts a tree from the model shifted by the tokens emitted so far and verifies it;
    a stateful verifier receives the state its previous call returned (``None`` first). Use
    ``length >= 2L + 1`` so that at least two iterations interact.
    """
    _check_model(model, rational)
    r = resolve(verifier, scheme)
    name, fn, stateful = r.name, r.fn, r.stateful
    if length < 1:
        raise InvalidArgument(f"length must be >= 1, got {length}")
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

        law, _ = enumerate_law(run, rational=rational, name=name)
        for (block, new_state), p in _merge_outcomes(law):
            frontier.append((context + block, new_state, pr * p))
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
