"""Counterexample search: ``specoracle.hunt(verifier)`` and ``specoracle hunt NAME``.

A hypothesis-driven search over small models and drafting schemes for a case where the exact
engine (:func:`specoracle.exact.evaluate`) finds the verifier lossy, shrunk to the smallest such
case and printed as Python code that reproduces it.

What is searched (:func:`cases`, one :class:`Case` per example):

- models: ``V`` tokens (2..``max_V``), ``R`` row pairs (1..3) chosen by the prefix as
  ``row(u) = (a |u| + b sum(u)) mod R`` (``R = 1``: context-free), rows from integer weights of three
  shapes: *plain* (weights 1..9, full support), *near_equal* (``p ~ 1000 w``, ``q ~ 1000 w + e`` with
  ``|e| <= 3``: ``|p - q| <= 1e-3``), *sparse* (weights 0..3: zeros in ``p``, in ``q``, one-hot rows);
- schemes of the kinds the verifier accepts: ``chain(L)`` (``L <= max_depth``), ``iid(k, L)``,
  ``delayed(k, 1, 1)``, ``wor(b)`` / ``wor(b, 1)`` with ``k, b <= max_k``; a case whose exact work
  (:func:`specoracle.check.exact_work`) exceeds ``max_work`` is skipped.

Each example's exact max error is passed to :func:`hypothesis.target`, so the search climbs towards
larger errors; an error above ``tol`` is a counterexample, which hypothesis shrinks towards small
``V``, one row pair, short chains and simple weights, and :func:`simplify` then drops scheme
size, row pairs and tokens while the failure persists. The search runs in rounds of
:data:`ROUND` examples, each with its own seed (``seed``, ``seed + 1``, ...; reproducible), until a
counterexample is found, ``budget`` seconds or ``max_examples`` examples are spent. Finding nothing
is not a proof: the verdict says how much was searched.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings, target
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from . import exact
from .check import exact_work
from .drafting import KINDS, Scheme, chain, delayed, iid, parse_scheme, without_replacement
from .errors import InvalidArgument, SpecoracleError
from .exact import LOSSLESS_TOL
from .models import ToyModel
from .registry import Entry
from .registry import get as registry_get
from .registry import names as registry_names

__all__ = ["Case", "HuntResult", "hunt", "cases", "accepted_kinds", "simplify", "ROUND", "SHAPES"]

ROUND = 100
"""Examples per search round (each round has its own seed)."""
SHAPES = ("plain", "near_equal", "sparse")
"""Row shapes of the searched models (see the module docstring)."""
NEAR_SCALE = 1000  # near_equal rows: p ~ NEAR_SCALE * w, q ~ NEAR_SCALE * w + e
_PROBE = {"chain": chain(2), "iid": iid(2, 1), "delayed": delayed(2, 1, 1), "without_replacement": without_replacement((2,))}


@dataclass(frozen=True)
class Case:
    """One searched case: a context-dependent model from integer weights, and a scheme.

    ``P[r]``, ``Q[r]`` are the integer weights of row pair ``r`` (length ``V``); the laws after a
    prefix ``u`` are ``P[row(u)] / sum`` and ``Q[row(u)] / sum`` with
    ``row(u) = (a len(u) + b sum(u)) % R``.
    """

    V: int
    P: tuple
    Q: tuple
    a: int
    b: int
    scheme: str

    @property
    def R(self) -> int:
        """Number of row pairs (1: a context-free model)."""
        return len(self.P)

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised ``[R, V]`` float tables (the exact arithmetic of :meth:`code`)."""
        P = np.array(self.P, dtype=float)
        Q = np.array(self.Q, dtype=float)
        return P / P.sum(axis=1, keepdims=True), Q / Q.sum(axis=1, keepdims=True)

    def model(self) -> ToyModel:
        """The :class:`~specoracle.models.ToyModel` of this case."""
        P, Q = self.tables()
        a, b, R = self.a, self.b, self.R
        return ToyModel(self.V, lambda u: P[(a * len(u) + b * sum(u)) % R],
                        lambda u: Q[(a * len(u) + b * sum(u)) % R], name="hunt")

    def size(self) -> tuple:
        """Order used to call one case smaller than another."""
        s = parse_scheme(self.scheme)
        return (self.V, s.depth, s.draws, self.R, sum(map(sum, self.P)) + sum(map(sum, self.Q)))

    def describe(self) -> str:
        """One line: ``V=5, 1 row pair (context-free), chain(1)``."""
        rows = "1 row pair (context-free)" if self.R == 1 else f"{self.R} row pairs, row = ({self.a}|u| + {self.b} sum u) % {self.R}"
        return f"V={self.V}, {rows}, {self.scheme}"

    def code(self, verifier_import: str, verifier_expr: str, error: float | None = None) -> str:
        """Python code that rebuilds this case and checks ``verifier_expr`` on it exactly."""
        row = (f"lambda u: ({self.a} * len(u) + {self.b} * sum(u)) % {self.R}" if self.R > 1 else "lambda u: 0")
        lines = [
            "import numpy as np",
            "from specoracle.check import check_lossless",
            "from specoracle.models import ToyModel",
            verifier_import,
            "",
            f"P = np.array({[list(r) for r in self.P]}, dtype=float)",
            f"Q = np.array({[list(r) for r in self.Q]}, dtype=float)",
            "P, Q = P / P.sum(axis=1, keepdims=True), Q / Q.sum(axis=1, keepdims=True)",
            f"row = {row}",
            f"model = ToyModel({self.V}, lambda u: P[row(u)], lambda u: Q[row(u)], name=\"hunt\")",
            f"verdict = check_lossless({verifier_expr}, model, {self.scheme!r}, method=\"exact\")",
            "print(verdict.max_error)" + (f"  # {error:.6g}" if error is not None else ""),
            "assert not verdict.lossless",
        ]
        return "\n".join(line for line in lines if line is not None)


@dataclass(frozen=True)
class HuntResult:
    """Outcome of :func:`hunt`.

    ``found``: a counterexample was found; ``case``/``error``: the smallest one (after shrinking)
    and its exact max error; ``worst``/``worst_error``: the largest error seen; ``examples``:
    cases evaluated exactly; ``code``: a paste-able reproducer of ``case``.
    """

    verifier: str
    found: bool
    case: Case | None
    error: float | None
    worst: Case | None
    worst_error: float
    examples: int
    seconds: float
    kinds: tuple
    code: str | None = field(default=None)

    def summary(self) -> str:
        """Verdict line (+ reproducer when found)."""
        if self.found:
            head = (f"{self.verifier}: COUNTEREXAMPLE (exact max error {self.error:.3g} on {self.case.describe()}; "
                    f"{self.examples} cases in {self.seconds:.1f} s, largest error seen {self.worst_error:.3g})")
            return head + "\nsmallest reproducer:\n" + self.code
        return (f"{self.verifier}: NO COUNTEREXAMPLE in {self.examples} cases ({self.seconds:.1f} s; kinds "
                f"{', '.join(self.kinds)}; largest error {self.worst_error:.3g}): a search, not a proof")

    def __str__(self) -> str:
        return self.summary()


# --- the search space ----------------------------------------------------------------------------
@st.composite
def _rows(draw, V: int, max_V: int, shape: str) -> tuple[tuple, tuple]:
    """One row pair. Weights are drawn for ``max_V`` tokens and cut to ``V``, so the choices do
    not depend on ``V`` and hypothesis can shrink ``V`` alone (the first ``V`` weights stay)."""
    def ints(lo, hi):
        return st.lists(st.integers(lo, hi), min_size=max_V, max_size=max_V).map(lambda w: w[:V])

    if shape == "near_equal":
        base, eps = draw(ints(1, 9)), draw(ints(-3, 3))
        return tuple(NEAR_SCALE * w for w in base), tuple(NEAR_SCALE * w + e for w, e in zip(base, eps))
    lo, hi = (0, 3) if shape == "sparse" else (1, 9)
    out = []
    for _ in range(2):
        w = [hi - x for x in draw(ints(0, hi - lo))]  # hi - x: shrinking (x -> 0) goes to the uniform row
        if sum(w) == 0:
            w[-1] = 1
        out.append(tuple(w))
    return out[0], out[1]


@st.composite
def _scheme(draw, kinds: tuple, max_depth: int, max_k: int) -> Scheme:
    kind = draw(st.sampled_from(kinds))
    if kind == "chain":
        return chain(draw(st.integers(1, max_depth)))
    k = draw(st.integers(2, max(2, max_k)))
    if kind == "iid":
        return iid(k, draw(st.integers(1, 2)))
    if kind == "delayed":
        return delayed(k, 1, 1)
    return without_replacement((k,) + ((1,) if draw(st.booleans()) else ()))


def cases(*, kinds=KINDS, max_V: int = 6, max_depth: int = 3, max_k: int = 3) -> st.SearchStrategy[Case]:
    """Strategy of :class:`Case` (module docstring); shrinks to ``V = 2``, one uniform row pair,
    ``chain(1)`` (or the first of ``kinds``)."""
    kinds = tuple(k for k in KINDS if k in set(kinds))
    if not kinds:
        raise InvalidArgument(f"no scheme kind to search; valid kinds: {KINDS}")

    @st.composite
    def build(draw):
        V = draw(st.integers(2, max_V))
        R = draw(st.integers(1, 3))
        a, b = (draw(st.integers(0, 2)) for _ in range(2)) if R > 1 else (0, 0)
        pairs = [draw(_rows(V, max_V, draw(st.sampled_from(SHAPES)))) for _ in range(R)]
        scheme = draw(_scheme(kinds, max_depth, max_k))
        return Case(V, tuple(p for p, _ in pairs), tuple(q for _, q in pairs), a, b, scheme.name)

    return build()


# --- what the verifier accepts ---------------------------------------------------------------------
def _resolve(verifier):
    """``(name, fn, kinds or None, import line, expression)`` for a name, Entry, Mutant or callable."""
    from . import mutants

    if isinstance(verifier, str):
        if verifier in registry_names():
            verifier = registry_get(verifier)
        else:
            m = mutants.get(verifier)  # raises with the valid names
            return (m.name, m.verify, tuple(m.schemes), "from specoracle import mutants",
                    f"mutants.get({m.name!r}).verify")
    if isinstance(verifier, Entry):
        return verifier.name, verifier.reference, tuple(verifier.schemes), None, repr(verifier.name)
    if isinstance(verifier, mutants.Mutant):
        return _resolve(verifier.name)
    if not callable(verifier):
        raise InvalidArgument(f"verifier must be a name, Entry, Mutant or callable, got {type(verifier).__name__}")
    for m in mutants.catalog() + mutants.true_negatives():
        if m.verify is verifier:
            return _resolve(m.name)
    name = getattr(verifier, "__name__", repr(verifier))
    module, qual = getattr(verifier, "__module__", None), getattr(verifier, "__qualname__", "")
    if module and qual and "<" not in qual and "." not in qual and module != "__main__":
        imp = f"from {module} import {qual}"
    else:
        imp = f"# define {name} (verify(instance, rng) -> Outcome) here"
    return name, verifier, None, imp, name


def accepted_kinds(verifier) -> tuple[str, ...]:
    """Scheme kinds ``verifier`` accepts: its declared ``schemes`` (registry entries, mutants), or,
    for a plain callable, the kinds on which it verifies a small E2 case without raising
    :class:`~specoracle.errors.SpecoracleError` (a chain-only verifier refuses branching trees)."""
    from . import examples

    _, fn, kinds, _, _ = _resolve(verifier)
    if kinds is not None:
        return tuple(k for k in KINDS if k in kinds)
    out = []
    for kind in KINDS:
        try:
            exact.evaluate(fn, examples.E2(), _PROBE[kind])
        except SpecoracleError:
            continue
        out.append(kind)
    return tuple(out)


# --- simplification after hypothesis' shrink ---------------------------------------------------------
def _smaller_schemes(scheme: Scheme, kinds: tuple) -> list[Scheme]:
    """Strictly smaller schemes of an accepted kind (fewer draws or less depth)."""
    out = []
    if scheme.kind == "chain" and scheme.depth > 1:
        out.append(chain(scheme.depth - 1))
    if scheme.kind == "iid":
        if scheme.k > 2:
            out.append(iid(scheme.k - 1, scheme.branch))
        if scheme.branch > 1:
            out.append(iid(scheme.k, scheme.branch - 1))
        out.append(chain(scheme.branch))
    if scheme.kind == "delayed":
        out += ([delayed(scheme.k - 1, 1, 1)] if scheme.k > 2 else []) + [iid(scheme.k, 1), chain(2)]
    if scheme.kind == "without_replacement":
        b = scheme.branching
        if len(b) > 1:
            out.append(without_replacement(b[:1]))
        if b[0] > 2:
            out.append(without_replacement((b[0] - 1,) + b[1:]))
        out.append(chain(len(b)))
    return [s for s in out if s.kind in kinds]


def _smaller_cases(case: Case, kinds: tuple):
    """Candidates strictly smaller than ``case`` (:meth:`Case.size`): a smaller scheme, one row
    pair fewer, one token fewer (every row keeps a positive mass), each row divided by its gcd."""
    for s in _smaller_schemes(parse_scheme(case.scheme), kinds):
        yield Case(case.V, case.P, case.Q, case.a, case.b, s.name)
    if case.R > 1:
        for r in range(case.R):
            keep = [i for i in range(case.R) if i != r]
            yield Case(case.V, tuple(case.P[i] for i in keep), tuple(case.Q[i] for i in keep),
                       case.a if case.R > 2 else 0, case.b if case.R > 2 else 0, case.scheme)
    if case.V > 2:
        for t in range(case.V):
            P = tuple(row[:t] + row[t + 1:] for row in case.P)
            Q = tuple(row[:t] + row[t + 1:] for row in case.Q)
            if all(sum(row) > 0 for row in P + Q):
                yield Case(case.V - 1, P, Q, case.a, case.b, case.scheme)
    P = tuple(tuple(w // math.gcd(*row) for w in row) for row in case.P)
    Q = tuple(tuple(w // math.gcd(*row) for w in row) for row in case.Q)
    if (P, Q) != (case.P, case.Q):
        yield Case(case.V, P, Q, case.a, case.b, case.scheme)


def simplify(case: Case, error: float, kinds: tuple, error_of, tol: float = LOSSLESS_TOL,
             max_steps: int = 200) -> tuple[Case, float]:
    """Greedy descent from a failing ``case`` (after hypothesis' shrink, whose choice sequences
    cannot drop a token or a row pair): take the first smaller candidate whose ``error_of(case)``
    is above ``tol``, repeat until none is. Returns the case and its error."""
    steps, improved = 0, True
    while improved and steps < max_steps:
        improved = False
        for cand in _smaller_cases(case, kinds):
            if cand.size() >= case.size():  # every candidate is smaller; the order guarantees termination
                continue
            steps += 1
            err = error_of(cand)
            if err > tol:
                case, error, improved = cand, err, True
                break
    return case, error


# --- the search -------------------------------------------------------------------------------------
class _Counterexample(AssertionError):
    """Raised inside the search so that hypothesis shrinks the case."""


def hunt(
    verifier,
    *,
    budget: float = 60.0,
    max_examples: int = 5000,
    seed: int = 0,
    max_V: int = 6,
    max_depth: int = 3,
    max_k: int = 3,
    kinds=None,
    tol: float = LOSSLESS_TOL,
    max_work: float = 1e4,
) -> HuntResult:
    """Search for the smallest case on which ``verifier`` is not exactly lossless.

    Parameters
    ----------
    verifier : registry name, mutant name, :class:`~specoracle.registry.Entry`,
        :class:`~specoracle.mutants.Mutant`, or ``verify(instance, rng) -> Outcome``.
    budget : seconds of search before giving up (shrinking a found case may add a little).
    max_examples : most cases evaluated.
    seed : first round's seed (rounds use ``seed``, ``seed + 1``, ...): same seed, same search.
    max_V, max_depth, max_k : the largest vocabulary, chain length and siblings/paths searched.
    kinds : scheme kinds to search (default: every kind the verifier accepts, :func:`accepted_kinds`).
    tol : an exact max error above this is a counterexample.
    max_work : cases whose :func:`~specoracle.check.exact_work` exceeds it are skipped.

    Returns
    -------
    HuntResult

    Examples
    --------
    >>> r = hunt("bonus_from_draft", budget=30, max_examples=200)
    >>> r.found, r.case.V, r.case.scheme
    (True, 2, 'chain(1)')
    """
    if not (isinstance(budget, (int, float)) and budget > 0 and math.isfinite(budget)):
        raise InvalidArgument(f"budget must be a positive number of seconds, got {budget!r}")
    if not (isinstance(max_examples, int) and max_examples >= 1):
        raise InvalidArgument(f"max_examples must be an int >= 1, got {max_examples!r}")
    for label, v, lo in (("seed", seed, 0), ("max_V", max_V, 2), ("max_depth", max_depth, 1), ("max_k", max_k, 2)):
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= lo):
            raise InvalidArgument(f"{label} must be an int >= {lo}, got {v!r}")
    name, fn, _, imp, expr = _resolve(verifier)
    kinds = accepted_kinds(verifier) if kinds is None else tuple(kinds)
    strategy = cases(kinds=kinds, max_V=max_V, max_depth=max_depth, max_k=max_k)
    t0 = time.perf_counter()
    state = {"n": 0, "worst": None, "worst_error": 0.0, "found": None}

    def evaluate(case: Case) -> float:
        model, scheme = case.model(), parse_scheme(case.scheme)
        if exact_work(model, scheme) > max_work:
            return -1.0
        err = float(exact.evaluate(fn, model, scheme).max_error)
        state["n"] += 1
        if err > state["worst_error"]:
            state["worst"], state["worst_error"] = case, err
        return err

    def probe(case: Case) -> None:
        if state["found"] is None and (time.perf_counter() - t0 > budget or state["n"] >= max_examples):
            return  # out of budget before anything was found: the remaining examples are skipped
        err = evaluate(case)
        target(max(err, 0.0), label="exact max error")
        if err > tol:
            state["found"] = (case, err)  # the last failing call is hypothesis' shrunk example
            raise _Counterexample(f"max error {err:.3g}")

    run_settings = settings(max_examples=ROUND, deadline=None, database=None, derandomize=False,
                            phases=(Phase.generate, Phase.target, Phase.shrink), verbosity=Verbosity.quiet,
                            suppress_health_check=list(HealthCheck), report_multiple_bugs=False, print_blob=False)
    found = None
    r = 0
    while time.perf_counter() - t0 <= budget and state["n"] < max_examples:
        test = run_settings(hypothesis_seed(seed + r)(given(strategy)(probe)))
        try:
            test()
        except _Counterexample:
            found = state["found"]
            break
        r += 1
    seconds = time.perf_counter() - t0
    if found is None:
        return HuntResult(name, False, None, None, state["worst"], state["worst_error"], state["n"], seconds, kinds)
    case, err = simplify(found[0], found[1], kinds, evaluate, tol)
    return HuntResult(name, True, case, err, state["worst"], state["worst_error"], state["n"], seconds, kinds,
                      code=case.code(imp, expr, err))

