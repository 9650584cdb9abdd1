"""The randomness protocol: every random decision of a verifier goes through a keyed source.

A reference verifier calls only

- ``rng.bernoulli(prob, key) -> bool``: ``True`` with probability ``prob``;
- ``rng.categorical(probs, key) -> int``: an index drawn from the probability vector ``probs``;
- ``rng.fallback(key)``: note that a zero-mass residual forced the documented fallback
  (a probability-0 event mathematically; a non-negligible fallback mass is a bug).
- ``rng.uniform(key) -> u``: one uniform on [0, 1) that the verifier may compare with several
  thresholds (``u < a``, ``1 - u >= b``, ``u * c < d``: affine expressions of ``u`` against
  numbers). The exact enumerator keeps an interval for ``u`` and splits it at every threshold it
  is compared with, so rules that feed ONE uniform into several decisions are enumerated exactly.
- ``rng.uniform(key, bits=b) -> k / 2^b``: a quantised uniform (``k`` uniform on ``0..2^b-1``),
  an ordinary number the verifier may combine freely (products of uniforms against products of
  ratios); the enumerator branches over its ``2^b`` values.

``key`` is a hashable name of the decision, e.g. ``("accept", node)``; each key is used at most
once per verification call. Implementations:

- :class:`Sampling`: fresh uniforms from a numpy ``Generator``.
- :class:`Coupled`: one given uniform per key, columns laid out by a published key list, so a
  torch twin reading the same uniform tensor makes the same decisions. Bernoulli is ``u < prob``;
  categorical is the inverse CDF, the first index ``i`` with ``u < cumsum(probs)[i]`` (float64).
- :class:`Fixed`: decisions forced by hand, for unit tests.
- :func:`enumerate_law`: the exact engine's enumerator, which replays the verifier once per leaf
  of its decision tree and returns every outcome with its exact probability.

The enumerator trusts nothing it cannot check: every replay must repeat the decisions (keys and
probabilities) of the run it branched from, the first leaf is run twice and must give the same
result, Python's and NumPy's global random states must be left untouched, and the leaves' weights
must sum to 1 (exactly in rational mode, to ``1e-12`` in float). A verifier that fails any of these
draws randomness outside ``rng`` and is refused with :class:`NondeterministicVerifier`.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from fractions import Fraction
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from .errors import InvalidArgument, SpecoracleError

__all__ = [
    "RandomSource",
    "Sampling",
    "Coupled",
    "KeyChecked",
    "is_sampling",
    "Fixed",
    "enumerate_law",
    "bernoulli_from_uniform",
    "quantised",
    "checked_probabilities",
    "NEG_ROUNDING",
    "categorical_from_uniform",
    "KeyReuseError",
    "node_keys",
    "NondeterministicVerifier",
    "UniformNotSplittable",
    "LAW_SUM_TOL",
    "global_random_guard",
    "check_uniforms",
]

R = TypeVar("R")
_SUM_ATOL = 1e-9  # categorical() inputs must be normalised up to float rounding
LAW_SUM_TOL = 1e-12
"""Float mode: the normalised leaf weights of one enumeration must sum to 1 within this (rational
mode: exactly 1)."""


class KeyReuseError(SpecoracleError):
    """A verifier asked for the same random key twice in one call (reused uniforms)."""


class UniformNotSplittable(SpecoracleError):
    """A shared ``rng.uniform(key)`` used in a way the exact engine cannot split into intervals (read
    as a number, multiplied by another uniform): ``check_lossless(method="auto")`` then falls back to
    chi-squared and says why; ``rng.uniform(key, bits=8)`` makes it enumerable."""


class NondeterministicVerifier(SpecoracleError):
    """A verifier's replay is not deterministic under identical random numbers: it draws
    randomness outside ``rng`` (``random.random()``, ``np.random``, a fresh generator, ...)."""


_HINT = (
    "randomness drawn outside rng: every random decision must go through rng.bernoulli / "
    "rng.categorical (for a verifier that cannot do so, set fn.enumerable = False and use "
    "method='chi2')"
)


@runtime_checkable
class RandomSource(Protocol):
    """What a reference verifier may call."""

    def bernoulli(self, prob, key: Hashable) -> bool: ...

    def categorical(self, probs, key: Hashable) -> int: ...

    def fallback(self, key: Hashable) -> None: ...

    def uniform(self, key: Hashable, bits: int | None = None): ...


def quantised(u: float, bits: int | None) -> float:
    """``u`` itself (``bits=None``), or ``floor(u 2^bits) / 2^bits``: the quantised uniform."""
    if bits is None:
        return float(u)
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 16:
        raise InvalidArgument(f"uniform(bits=...) must be an int in 1..16, got {bits!r}")
    return math.floor(float(u) * 2**bits) / 2**bits


def node_keys(size: int, *coins: str) -> tuple:
    """The common coupled layout ``(c, 1..size-1)`` for each coin name ``c`` in order, then
    ``("residual", 0..size-1)``: one coin per drafted node, one residual draw per node.

    >>> node_keys(3, "accept")
    (('accept', 1), ('accept', 2), ('residual', 0), ('residual', 1), ('residual', 2))
    """
    return tuple((c, i) for c in coins for i in range(1, size)) + tuple(("residual", i) for i in range(size))


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


NEG_ROUNDING = 1e-12
"""A float probability in ``[-NEG_ROUNDING, 0)`` passed to ``categorical`` is rounding (e.g. of a
residual ``p - q``) and counts as 0, in every random source alike; a more negative one is refused."""


def checked_probabilities(probs, key: Hashable = None, rational: bool = False):
    """The one rule every random source applies to a ``categorical`` vector.

    Rational: non-negative Fractions (or ints) summing to exactly 1. Float: entries below
    ``-NEG_ROUNDING`` refused, entries in ``[-NEG_ROUNDING, 0)`` clipped to 0 (rounding), sum within
    ``1e-9`` of 1. Returns the vector (float: a clipped float64 array). Raises
    :class:`SpecoracleError` with the same message from sampling and from the exact engine.
    """
    where = f"categorical() for key {key!r}" if key is not None else "categorical()"
    if rational:
        for i, x in enumerate(probs):
            if x < 0:
                raise SpecoracleError(f"{where}: token {i} has negative probability {x!r}")
        total = sum(probs)
        if total != 1:
            raise SpecoracleError(f"{where} needs a probability vector summing to 1, got sum {total!r}")
        return probs
    p = np.asarray(probs, dtype=np.float64)
    bad = np.flatnonzero(~(p >= -NEG_ROUNDING))  # NaN too
    if len(bad):
        i = int(bad[0])
        raise SpecoracleError(f"{where}: token {i} has probability {float(p[i])!r}, negative beyond rounding "
                              f"(entries in [-{NEG_ROUNDING:g}, 0) count as 0)")
    if (p < 0).any():
        p = np.where(p < 0, 0.0, p)
    total = float(p.sum())
    if not abs(total - 1.0) <= _SUM_ATOL:
        raise SpecoracleError(f"{where} needs a probability vector summing to 1, got sum {total!r}")
    return p


def categorical_from_uniform(u: float, probs, key: Hashable = None) -> int:
    """Inverse CDF: the first index ``i`` with ``u < cumsum(probs)[i]`` (float64, left to right).

    If rounding leaves ``u >= sum(probs)``, the last index with positive probability is taken, so
    a zero-probability index is never returned. ``probs`` obey :func:`checked_probabilities`.
    """
    p = checked_probabilities(probs, key)
    c = np.cumsum(p)
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
        return categorical_from_uniform(self.gen.random(), probs, key)

    def uniform(self, key: Hashable, bits: int | None = None) -> float:
        return quantised(self.gen.random(), bits)

    def fallback(self, key: Hashable) -> None:
        self.fallbacks += 1


class KeyChecked(_KeyTracker):
    """Any random source, with the one-use-per-key rule enforced: the sampling paths wrap their
    :class:`Sampling` in it, so a reused key raises :class:`KeyReuseError` there too, as it does in
    the exact engine and under :class:`Coupled`. Call :meth:`reset` before each verification call.

    >>> rng = KeyChecked(Sampling(0)); _ = rng.bernoulli(0.5, "a"); _ = rng.bernoulli(0.5, "a")
    Traceback (most recent call last):
    ...
    specoracle.randomness.KeyReuseError: random key 'a' used twice in one verification call
    """

    def __init__(self, source: RandomSource) -> None:
        super().__init__()
        self.source = source

    def bernoulli(self, prob, key: Hashable) -> bool:
        self._use(key)
        return self.source.bernoulli(prob, key)

    def categorical(self, probs, key: Hashable) -> int:
        self._use(key)
        return self.source.categorical(probs, key)

    def uniform(self, key: Hashable, bits: int | None = None):
        self._use(key)
        return self.source.uniform(key, bits)

    def fallback(self, key: Hashable) -> None:
        self.source.fallback(key)

    def __getattr__(self, name: str):  # the source's own attributes (``gen``, ``fallbacks``)
        if name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)


def is_sampling(rng) -> bool:
    """Is ``rng`` fresh randomness (a :class:`Sampling`, possibly behind :class:`KeyChecked`)? Verifiers
    that draw their own randomness (engines seeded from ``rng.gen``) need one."""
    return isinstance(rng.source if isinstance(rng, KeyChecked) else rng, Sampling)


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
        return categorical_from_uniform(self._u(key), probs, key)

    def uniform(self, key: Hashable, bits: int | None = None) -> float:
        return quantised(self._u(key), bits)

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

    def uniform(self, key: Hashable, bits: int | None = None) -> float:
        val = self._get(key)
        if not 0 <= val < 1:
            raise SpecoracleError(f"Fixed: uniform for key {key!r} must lie in [0, 1), got {val!r}")
        return quantised(val, bits)

    def fallback(self, key: Hashable) -> None:
        self.fallbacks += 1


class _Replay(_KeyTracker):
    """One run of the enumerator: replays ``script`` then takes first options, queuing the rest.

    ``trace[i]`` is the decision ``(key, options)`` that the branched-from run met at choice ``i``;
    a replay that meets a different decision there is not deterministic. ``norm`` is the leaf
    weight with every categorical renormalised (float rows may sum to ``1 +- 1e-9``), so the
    ``norm`` of all leaves sums to 1 up to rounding whatever the inputs.
    """

    def __init__(self, script: tuple[int, ...], trace: tuple, rational: bool, name: str, defer: bool = False) -> None:
        super().__init__()
        self.defer = defer
        self.pending: tuple | None = None
        self.script = script
        self.trace = trace
        self.rational = rational
        self.name = name
        self.choices: list[int] = []
        self.seen: list[tuple] = []
        self.prob: Any = Fraction(1) if rational else 1.0
        self.norm: Any = self.prob
        self.alternatives: list[tuple[tuple[int, ...], tuple]] = []
        self.fell_back = False

    def _resolve(self) -> None:
        """A decision follows the deferred categorical: branch on it after all (queue its options)."""
        if self.pending is not None:
            base, seen, n = self.pending[:3]
            self.alternatives.extend((base + (alt,), seen) for alt in range(1, n))
            self.pending = None

    def _choose(self, key: Hashable, options: list[tuple[Any, Any]], total: Any, deferrable: bool = False):
        self._resolve()
        i = len(self.choices)
        sig = (key, tuple(options))
        self.seen.append(sig)
        if i < len(self.script):
            if self.trace[i] != sig:
                was_key, was_opts = self.trace[i]
                raise NondeterministicVerifier(
                    f"verifier {self.name!r} is not deterministic under identical random numbers: a "
                    f"replay met decision {i} as key {key!r} with {len(options)} options, the run it "
                    f"replays met key {was_key!r} with {len(was_opts)} options; {_HINT}"
                )
            j = self.script[i]
        else:
            j = 0
            base = tuple(self.choices)
            seen = tuple(self.seen)
            if deferrable and self.defer:
                self.pending = (base, seen, len(options), options, self.prob, self.norm, total)
            else:
                self.alternatives.extend((base + (alt,), seen) for alt in range(1, len(options)))
        self.choices.append(j)
        value, pr = options[j]
        self.prob = self.prob * pr
        self.norm = self.norm * (pr if self.rational else pr / total)
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
        self._resolve()
        self._use(key)
        prob = self._num(prob)
        if prob != prob:
            raise SpecoracleError(f"verifier {self.name!r}: bernoulli() for key {key!r} got probability NaN")
        if prob <= 0:
            return False
        if prob >= 1:
            return True
        return self._choose(key, [(True, prob), (False, 1 - prob)], 1)

    def categorical(self, probs, key: Hashable) -> int:
        self._resolve()
        self._use(key)
        if self.rational:
            for x in probs:
                self._num(x)  # a float in rational mode is named as such
        probs = checked_probabilities(probs, key, self.rational)
        total = sum(probs)
        opts = [(i, self._num(x)) for i, x in enumerate(probs) if x > 0]
        if not opts:
            raise SpecoracleError(f"categorical() for key {key!r} got an all-zero probability vector")
        if len(opts) == 1:
            return opts[0][0]
        return self._choose(key, opts, total if self.rational else float(total), deferrable=True)

    def fallback(self, key: Hashable) -> None:
        self._resolve()
        self.fell_back = True

    def uniform(self, key: Hashable, bits: int | None = None):
        self._resolve()
        self._use(key)
        if bits is None:
            return _Affine(_Interval(self, key), self._num(1), self._num(0))
        quantised(0.0, bits)  # validates bits
        n = 2**bits
        step = Fraction(1, n) if self.rational else 1.0 / n
        return self._choose(("uniform", key), [(k * step, step) for k in range(n)], 1)


class _Interval:
    """The interval ``[lo, hi)`` a shared uniform is known to lie in, in one replay."""

    def __init__(self, rep: _Replay, key: Hashable) -> None:
        self.rep, self.key = rep, key
        self.lo, self.hi = rep._num(0), rep._num(1)
        self.n = 0

    def below(self, t) -> bool:
        """``u < t`` (``u <= t`` alike: they differ on a null set); splits the interval at ``t``."""
        if t <= self.lo:
            return False
        if t >= self.hi:
            return True
        width = self.hi - self.lo
        p = (t - self.lo) / width
        self.n += 1
        below = self.rep._choose(("uniform", self.key, self.n), [(True, p), (False, 1 - p)], 1)
        if below:
            self.hi = t
        else:
            self.lo = t
        return below


class _Affine:
    """``scale * u + offset`` for a shared uniform ``u``: what a verifier may compute from
    ``rng.uniform(key)`` in exact mode (adding, subtracting, scaling by numbers) and compare with
    numbers; anything else raises, naming the fix (a quantised uniform)."""

    __slots__ = ("u", "scale", "offset")

    def __init__(self, u: _Interval, scale, offset) -> None:
        self.u, self.scale, self.offset = u, scale, offset

    def _c(self, c):
        if isinstance(c, _Affine) or isinstance(c, (bool, np.bool_)) or not isinstance(
                c, (int, float, Fraction, np.integer, np.floating)):
            raise UniformNotSplittable(
                f"exact enumeration of the shared uniform {self.u.key!r}: only affine expressions "
                f"(u + c, c - u, c * u, u / c with numbers c) compared with numbers can be split "
                f"exactly, got an operation with {type(c).__name__}; use rng.uniform(key, bits=8) "
                "(a quantised uniform) for products of uniforms"
            )
        return self.u.rep._num(c)

    def __add__(self, c):
        return _Affine(self.u, self.scale, self.offset + self._c(c))

    __radd__ = __add__

    def __sub__(self, c):
        return _Affine(self.u, self.scale, self.offset - self._c(c))

    def __rsub__(self, c):
        return _Affine(self.u, -self.scale, self._c(c) - self.offset)

    def __mul__(self, c):
        c = self._c(c)
        return _Affine(self.u, self.scale * c, self.offset * c)

    __rmul__ = __mul__

    def __truediv__(self, c):
        c = self._c(c)
        if c == 0:
            raise SpecoracleError(f"shared uniform {self.u.key!r} divided by 0")
        return _Affine(self.u, self.scale / c, self.offset / c)

    def __neg__(self):
        return _Affine(self.u, -self.scale, -self.offset)

    def _less(self, c) -> bool:
        """``scale u + offset < c``."""
        c = self._c(c)
        if self.scale == 0:
            return self.offset < c
        t = (c - self.offset) / self.scale
        return self.u.below(t) if self.scale > 0 else not self.u.below(t)

    def __lt__(self, c):
        return self._less(c)

    __le__ = __lt__  # equal on a null set

    def __gt__(self, c):
        return (-self)._less(-self._c(c))

    __ge__ = __gt__

    def _refuse(self, *args):
        raise UniformNotSplittable(
            f"exact enumeration of the shared uniform {self.u.key!r}: its value cannot be read, only "
            "compared with thresholds (u < a, 1 - u >= b, u * c < d); use rng.uniform(key, bits=8) for "
            "a quantised uniform with an ordinary value"
        )

    __bool__ = __float__ = __int__ = __index__ = __hash__ = __eq__ = __ne__ = __pow__ = __rpow__ = _refuse
    __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __array__ = _refuse

    def __repr__(self) -> str:
        return f"<shared uniform {self.u.key!r}: {self.scale} u + {self.offset}>"


def _same(a, b) -> bool:
    """``a == b`` for results that may hold arrays (compared by value through their repr)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return repr(a) == repr(b)


def _global_states() -> tuple:
    """Python's and NumPy's global random states (a verifier must leave both untouched)."""
    st = np.random.get_state()
    return random.getstate(), (st[1].tobytes(),) + tuple(st[2:])


class global_random_guard:
    """Context manager: raise :class:`NondeterministicVerifier` naming ``name`` when the body
    changes Python's or NumPy's global random state (randomness drawn outside ``rng``).

    The exact engines hold one guard around a whole evaluation (a snapshot costs ~0.3 ms) and call
    :func:`enumerate_law` with ``guard=False``.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> "global_random_guard":
        self.before = _global_states()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and _global_states() != self.before:
            raise NondeterministicVerifier(
                f"verifier {self.name!r} changed Python's or NumPy's global random state while it was "
                f"enumerated; {_HINT}"
            )


def enumerate_law(
    run: Callable[[RandomSource], R], *, rational: bool = False, name: str = "verifier", guard: bool = True,
    terminal: Callable[[R, Any, Any], R | None] | None = None, probe: bool = True,
) -> tuple[list[tuple[R, Any]], Any]:
    """Every outcome of ``run(rng)`` with its exact probability.

    ``run`` is called once per leaf of its decision tree (depth-first replay), and the first leaf
    once more as a determinism probe (unless ``probe=False``: engines that enumerate many trees
    probe a sample of them). Returns ``(outcomes, fallback_mass)``: a list of
    ``(result, probability)`` pairs (results may repeat) and the total probability of runs that
    took a zero-mass fallback. Raises :class:`NondeterministicVerifier` (naming ``name``) when a
    replay meets other decisions than the run it branched from, the probe disagrees, the global
    random states change (unless ``guard=False``: the caller holds a :class:`global_random_guard`),
    or the leaves' normalised weights do not sum to 1 (module docstring).

    ``terminal(result, drawn, value)`` (deferred categorical draws): when a run's last decision is
    a categorical, the run is not replayed once per option; instead ``terminal(result, drawn,
    value)`` gives the result the run would have returned had the draw been ``value`` (None: it
    cannot tell, and the options are replayed). Only for callers that know the result depends on
    the last draw only through that rebuild (e.g. ``Outcome(node, y)`` with ``y`` the draw).

    >>> law, _ = enumerate_law(lambda r: r.categorical([0.25, 0.75], "x") + r.bernoulli(0.5, "y"))
    >>> sorted(law)
    [(0, 0.125), (1, 0.125), (1, 0.375), (2, 0.375)]
    """
    out: list[tuple[R, Any]] = []
    norms: list = []
    fallback_mass: Any = Fraction(0) if rational else 0.0
    before = _global_states() if guard else None
    stack: list[tuple[tuple[int, ...], tuple]] = [((), ())]
    first = probe
    while stack:
        script, trace = stack.pop()
        rep = _Replay(script, trace, rational, name, defer=terminal is not None)
        result = run(rep)
        if first:
            first = False
            again = _Replay(script, trace, rational, name, defer=terminal is not None)
            if not (_same(run(again), result) and again.seen == rep.seen):
                raise NondeterministicVerifier(
                    f"verifier {name!r} is not deterministic under identical random numbers: two runs "
                    f"with the same decisions gave different results; {_HINT}"
                )
        leaves = [(result, rep.prob, rep.norm)]
        if rep.pending is not None:
            _, _, _, options, prob, norm, total = rep.pending
            drawn = options[0][0]
            if terminal(result, drawn, drawn) is None:
                rep._resolve()
            else:
                leaves = [(terminal(result, drawn, value), prob * pr, norm * (pr if rational else pr / total))
                          for value, pr in options]
        for res, prob, norm in leaves:
            out.append((res, prob))
            norms.append(norm)
            if rep.fell_back:
                fallback_mass += prob
        stack.extend(reversed(rep.alternatives))
    if guard and _global_states() != before:
        raise NondeterministicVerifier(
            f"verifier {name!r} changed Python's or NumPy's global random state while it was "
            f"enumerated; {_HINT}"
        )
    total = sum(norms) if rational else math.fsum(norms)
    if (total != 1) if rational else not abs(total - 1.0) <= LAW_SUM_TOL:
        raise NondeterministicVerifier(
            f"the law enumerated for verifier {name!r} sums to {total!r}, not 1; {_HINT}"
        )
    return out, fallback_mass
