"""The randomness protocol: every random decision of a verifier goes through a keyed source.

A reference verifier calls only

- ``rng.bernoulli(prob, key) -> bool``: ``True`` with probability ``prob``;
- ``rng.categorical(probs, key) -> int``: an index drawn from the probability vector ``probs``;
- ``rng.fallback(key)``: note that a zero-mass residual forced the documented fallback
  (a probability-0 event mathematically; a non-negligible fallback mass is a bug).

``key`` is a hashable name of the decision, e.g. ``("accept", node)``; each key is used at most
once per verification call. Implementations:

- :class:`Sampling`: fresh uniforms from a numpy ``Generator``.
- :class:`Coupled`: one given uniform per key, columns laid out by a published key list, so a
  torch twin reading the same uniform tensor makes the same decisions. Bernoulli is ``u < prob``;
  categorical is the inverse CDF, the first index ``i`` with ``u < cumsum(probs)[i]`` (float64).
- :class:`Fixed`: decisions forced by hand, for unit tests.
- :func:`enumerate_law`: the exact engine's enumerator, which replays the verifier once per leaf
  of its decision tree and returns every outcome with its exact probability.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from fractions import Fraction
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from .errors import InvalidArgument, SpecoracleError

__all__ = [
    "RandomSource",
    "Sampling",
    "Coupled",
    "Fixed",
    "enumerate_law",
    "bernoulli_from_uniform",
    "categorical_from_uniform",
    "KeyReuseError",
    "check_uniforms",
]

R = TypeVar("R")
_SUM_ATOL = 1e-9  # categorical() inputs must be normalised up to float rounding


class KeyReuseError(SpecoracleError):
    """A verifier asked for the same random key twice in one call (reused uniforms)."""


@runtime_checkable
class RandomSource(Protocol):
    """What a reference verifier may call."""

    def bernoulli(self, prob, key: Hashable) -> bool: ...

    def categorical(self, probs, key: Hashable) -> int: ...

    def fallback(self, key: Hashable) -> None: ...


def check_uniforms(u, who: str = "uniforms"):
    """Raise :class:`InvalidArgument` unless every entry of ``u`` lies in [0, 1) (NaN fails); return ``u``.

    ``u`` is any array with elementwise comparisons and boolean-mask indexing (a numpy array or a
    torch tensor): the one rule for the uniforms of :class:`Coupled` and of the torch twins.
    """
    bad = ~((u >= 0) & (u < 1))
    if bool(bad.any()):
        first = float(u[bad].reshape(-1)[0])
        raise InvalidArgument(
            f"{who} must lie in [0, 1): {int(bad.sum())} of {len(bad.reshape(-1))} entries do not "
            f"(first: {first!r})"
        )
    return u


def bernoulli_from_uniform(u: float, prob) -> bool:
    """``u < prob`` with ``u`` in [0, 1): a probability-0 event never fires, even at ``u == 0``."""
    return bool(u < float(prob))


def categorical_from_uniform(u: float, probs) -> int:
    """Inverse CDF: the first index ``i`` with ``u < cumsum(probs)[i]`` (float64, left to right).

    If rounding leaves ``u >= sum(probs)``, the last index with positive probability is taken, so
    a zero-probability index is never returned.
    """
    p = np.asarray(probs, dtype=np.float64)
    c = np.cumsum(p)
    if not abs(c[-1] - 1.0) <= _SUM_ATOL or (p < 0).any():
        raise SpecoracleError(f"categorical() needs a probability vector summing to 1, got sum {c[-1]!r}")
    idx = int(np.searchsorted(c, u, side="right"))  # first i with c[i] > u: never a p == 0 index
    if idx >= len(p):
        pos = np.flatnonzero(p > 0)
        if len(pos) == 0:
            raise SpecoracleError("categorical() called with an all-zero probability vector")
        idx = int(pos[-1])
    return idx


class _KeyTracker:
    def __init__(self) -> None:
        self._used: set = set()

    def _use(self, key: Hashable) -> None:
        if key in self._used:
            raise KeyReuseError(f"random key {key!r} used twice in one verification call")
        self._used.add(key)

    def reset(self) -> None:
        """Forget used keys (start of a new verification call)."""
        self._used.clear()


class Sampling:
    """Fresh randomness from a numpy Generator (or an int seed).

    ``fallbacks`` counts zero-mass-residual fallbacks seen so far.

    >>> rng = Sampling(0); isinstance(rng.bernoulli(0.5, "a"), bool)
    True
    """

    def __init__(self, rng: np.random.Generator | int | None = None) -> None:
        self.gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.fallbacks = 0

    def bernoulli(self, prob, key: Hashable) -> bool:
        return bernoulli_from_uniform(self.gen.random(), prob)

    def categorical(self, probs, key: Hashable) -> int:
        return categorical_from_uniform(self.gen.random(), probs)

    def fallback(self, key: Hashable) -> None:
        self.fallbacks += 1


class Coupled(_KeyTracker):
    """Decisions read from given uniforms, one per key, in a published column layout.

    Parameters
    ----------
    uniforms : array [n_keys] of floats in [0, 1).
    layout : sequence of keys; ``uniforms[j]`` serves ``layout[j]``.

    Using a key outside the layout, or a key twice, raises.

    >>> c = Coupled([0.3, 0.9], [("accept", 1), ("residual", 0)])
    >>> c.bernoulli(0.5, ("accept", 1)), c.categorical([0.5, 0.5], ("residual", 0))
    (True, 1)
    """

    def __init__(self, uniforms: Sequence[float], layout: Sequence[Hashable]) -> None:
        super().__init__()
        u = np.asarray(uniforms, dtype=np.float64)
        if u.shape != (len(layout),):
            raise InvalidArgument(f"Coupled needs one uniform per key: {u.shape} uniforms for {len(layout)} keys")
        check_uniforms(u, "Coupled uniforms")
        self.uniforms = u
        self.column = {k: j for j, k in enumerate(layout)}
        if len(self.column) != len(layout):
            raise InvalidArgument("Coupled layout lists a key twice")
        self.fallbacks = 0

    def _u(self, key: Hashable) -> float:
        self._use(key)
        try:
            return float(self.uniforms[self.column[key]])
        except KeyError:
            raise SpecoracleError(
                f"random key {key!r} is not in this verifier's published layout "
                f"({len(self.column)} keys); its keys() function is out of date"
            ) from None

    def bernoulli(self, prob, key: Hashable) -> bool:
        return bernoulli_from_uniform(self._u(key), prob)

    def categorical(self, probs, key: Hashable) -> int:
        return categorical_from_uniform(self._u(key), probs)

    def fallback(self, key: Hashable) -> None:
        self.fallbacks += 1


class Fixed(_KeyTracker):
    """Decisions forced by a dict ``key -> value`` (bool for bernoulli, int for categorical).

    A key missing from the dict raises, naming it; forcing a probability-0 outcome raises too.
    """

    def __init__(self, decisions: dict) -> None:
        super().__init__()
        self.decisions = dict(decisions)
        self.fallbacks = 0

    def _get(self, key):
        self._use(key)
        if key not in self.decisions:
            raise SpecoracleError(f"Fixed: no decision given for key {key!r}")
        return self.decisions[key]

    def bernoulli(self, prob, key: Hashable) -> bool:
        val = bool(self._get(key))
        if (val and prob <= 0) or (not val and prob >= 1):
            raise SpecoracleError(f"Fixed: decision {val} for key {key!r} has probability 0 (prob={prob})")
        return val

    def categorical(self, probs, key: Hashable) -> int:
        val = int(self._get(key))
        if not probs[val] > 0:
            raise SpecoracleError(f"Fixed: index {val} for key {key!r} has probability 0")
        return val

    def fallback(self, key: Hashable) -> None:
        self.fallbacks += 1


class _Replay(_KeyTracker):
    """One run of the enumerator: replays ``script`` then takes first options, queuing the rest."""

    def __init__(self, script: tuple[int, ...], rational: bool) -> None:
        super().__init__()
        self.script = script
        self.rational = rational
        self.choices: list[int] = []
        self.prob: Any = Fraction(1) if rational else 1.0
        self.alternatives: list[tuple[int, ...]] = []
        self.fell_back = False

    def _choose(self, options: list[tuple[Any, Any]]):
        i = len(self.choices)
        j = self.script[i] if i < len(self.script) else 0
        if i >= len(self.script):
            base = tuple(self.choices)
            self.alternatives.extend(base + (alt,) for alt in range(1, len(options)))
        self.choices.append(j)
        value, pr = options[j]
        self.prob = self.prob * pr
        return value

    def _num(self, x):
        if self.rational:
            if not isinstance(x, (Fraction, int)):
                raise SpecoracleError(
                    f"rational mode: a verifier passed the float {x!r} to the random source; "
                    "this verifier is not rational (use float mode)"
                )
            return Fraction(x)
        return float(x)

    def bernoulli(self, prob, key: Hashable) -> bool:
        self._use(key)
        prob = self._num(prob)
        if prob <= 0:
            return False
        if prob >= 1:
            return True
        return self._choose([(True, prob), (False, 1 - prob)])

    def categorical(self, probs, key: Hashable) -> int:
        self._use(key)
        total = sum(probs)
        if (total != 1) if self.rational else not abs(float(total) - 1.0) <= _SUM_ATOL:
            raise SpecoracleError(f"categorical() for key {key!r} needs probabilities summing to 1, got {total!r}")
        opts = [(i, self._num(x)) for i, x in enumerate(probs) if x > 0]
        if not opts:
            raise SpecoracleError(f"categorical() for key {key!r} got an all-zero probability vector")
        if len(opts) == 1:
            return opts[0][0]
        return self._choose(opts)

    def fallback(self, key: Hashable) -> None:
        self.fell_back = True


def enumerate_law(
    run: Callable[[RandomSource], R], *, rational: bool = False
) -> tuple[list[tuple[R, Any]], Any]:
    """Every outcome of ``run(rng)`` with its exact probability.

    ``run`` is called once per leaf of its decision tree (depth-first replay). Returns
    ``(outcomes, fallback_mass)``: a list of ``(result, probability)`` pairs (results may repeat)
    and the total probability of runs that took a zero-mass fallback.

    >>> law, _ = enumerate_law(lambda r: r.categorical([0.25, 0.75], "x") + r.bernoulli(0.5, "y"))
    >>> sorted(law)
    [(0, 0.125), (1, 0.125), (1, 0.375), (2, 0.375)]
    """
    out: list[tuple[R, Any]] = []
    fallback_mass: Any = Fraction(0) if rational else 0.0
    stack: list[tuple[int, ...]] = [()]
    while stack:
        rep = _Replay(stack.pop(), rational)
        result = run(rep)
        out.append((result, rep.prob))
        if rep.fell_back:
            fallback_mass += rep.prob
        stack.extend(reversed(rep.alternatives))
    return out, fallback_mass
