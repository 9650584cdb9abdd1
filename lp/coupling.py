"""Per-node maximal coupling of a target ``p`` with ``k`` drafts (ALGORITHMS-2.md §7-§8.1).

One position, ``k`` drafts ``d = (x_1..x_k)`` with law ``D`` on ``V^k`` (i.i.d. from ``q``, or drawn
one after another without replacement from ``q``). The full coupling LP (§8.1)::

    vars pi[d, y] >= 0   (d in supp D, y in V)
    sum_y pi[d, y] = D(d),   sum_d pi[d, y] = p(y),   max sum_d sum_{y in set(d)} pi[d, y]

has the closed form (§7.1, Hall / max-flow min-cut)
``alpha*(p, D) = min_{H subset V} [ p(H) + 1 - D(all drafts in H) ]``, with
``D(all in H) = q(H)^k`` for i.i.d. drafts.

**Conditional OT.** A target of length ``V + 1`` is *augmented*: its last entry is a reject
symbol ``⊥`` (never a member) with mass ``1 - w``, the rest is ``w p`` (build it with
:func:`augment`). The same LP and closed form then give the conditional OT of a node whose prefix
is accepted with probability ``w`` (ALGORITHMS.md §7.2): ``alpha* = min_H [w p(H) + 1 - D(all
in H)] <= w``.

Scaling (ALGORITHMS.md §10.4): the LP's variables are the conditional probabilities
``pi[d, y] / D(d)`` and each target row is divided by ``max(p(y), 1e-9)``, so tiny ``D(d)`` or
``p(y)`` neither make the solver drop coefficients nor blow them up. Targets with ``p(y) = 0`` get no variables.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import scipy.sparse as sp

from specoracle.errors import InvalidArgument, InvalidInstance

from ._solve import Certificate, build, solve

__all__ = [
    "Coupling",
    "coupling",
    "coupling_value",
    "draft_law",
    "all_in_probabilities",
    "augment",
    "MAX_SUBSET_V",
]

#: target rows are divided by max(p(y), _MIN_SCALE): coefficients stay below 1 / _MIN_SCALE.
_MIN_SCALE = 1e-9

#: largest vocabulary for which :func:`coupling_value` enumerates all ``2^V`` subsets.
MAX_SUBSET_V = 16


@dataclass(frozen=True)
class Coupling:
    """A maximal coupling (transport plan) of ``k`` drafts with a target.

    Attributes
    ----------
    p : [V] or [V+1] target (augmented when it has a reject entry, see module docstring).
    q : [V] draft law of one draw.
    k : number of draws; ``replacement`` True for i.i.d., False without replacement.
    tuples : tuple of T draft tuples (``supp D``, in lexicographic order; without replacement a
        tuple is shorter than ``k`` when ``q`` has fewer than ``k`` positive tokens).
    draft_probs : [T] their probabilities ``D(d)``.
    plan : [T, V] or [T, V+1] transport plan ``pi[d, y]`` (rows sum to ``D(d)``, columns to ``p``).
    value : membership mass ``sum_d sum_{y in set(d)} pi[d, y]`` (the LP optimum).
    n_variables, n_constraints, seconds, status, solver, certificate : solve report (the
        certificate's residual is measured on the scaled rows; its gap is in membership-mass units).
    """

    p: np.ndarray
    q: np.ndarray
    k: int
    replacement: bool
    tuples: tuple
    draft_probs: np.ndarray
    plan: np.ndarray
    value: float
    n_variables: int
    n_constraints: int
    seconds: float
    status: str
    solver: str
    certificate: Certificate

    @property
    def V(self) -> int:
        """Vocabulary size (without the reject symbol)."""
        return int(self.q.shape[0])

    @property
    def augmented(self) -> bool:
        """True when ``p`` carries a reject symbol ``⊥`` as its last entry."""
        return self.p.shape[0] == self.V + 1

    def member_plan(self) -> np.ndarray:
        """[T, V] the plan restricted to members: ``f[d, y] = pi[d, y]`` if ``y in set(d)`` else 0."""
        f = np.zeros((len(self.tuples), self.V))
        for i, d in enumerate(self.tuples):
            for y in set(d):
                f[i, y] = self.plan[i, y]
        return f


def _vector(v, name: str) -> np.ndarray:
    try:
        arr = np.asarray([float(x) for x in v], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{name} must be a sequence of numbers") from None
    if arr.ndim != 1 or arr.size < 1:
        raise InvalidInstance(f"{name} must be a non-empty vector, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidInstance(f"{name} must be finite and non-negative, got {arr}")
    if abs(arr.sum() - 1.0) > 1e-9:
        raise InvalidInstance(f"{name} sums to {arr.sum()!r}, not 1 (specoracle never renormalises silently)")
    return arr


def _check(p, q, k):
    p = _vector(p, "p")
    q = _vector(q, "q")
    if p.shape[0] not in (q.shape[0], q.shape[0] + 1):
        raise InvalidInstance(
            f"p has {p.shape[0]} entries but q has {q.shape[0]}: p must have V entries, or V + 1 "
            "for a target augmented with a reject symbol"
        )
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InvalidArgument(f"k must be an int >= 1, got {k!r}")
    return p, q, int(k)


def augment(p, w: float) -> np.ndarray:
    """Augmented target ``(w p, 1 - w)`` of length V + 1 (``⊥`` last), ``0 <= w <= 1``."""
    p = _vector(p, "p")
    if not 0.0 <= float(w) <= 1.0:
        raise InvalidInstance(f"weight w must lie in [0, 1], got {w}")
    return np.append(float(w) * p, 1.0 - float(w))


def draft_law(q, k: int, replacement: bool = True) -> tuple[tuple, np.ndarray]:
    """Support and probabilities of ``k`` ordered draws from ``q``.

    Returns ``(tuples, probs)``: T tuples in lexicographic order and [T] probabilities. With
    replacement: every ``d`` in ``supp(q)^k`` with ``prod q(x_i)``. Without replacement: ordered
    sequences of distinct tokens, ``prod_i q(x_i) / (1 - sum_{j<i} q(x_j))``; drawing stops early
    when the remaining mass is 0 (as :func:`specoracle.drafting.without_replacement` does).
    """
    q = np.asarray(q, dtype=np.float64)
    support = [int(t) for t in np.flatnonzero(q > 0)]
    if replacement:
        tuples = tuple(product(support, repeat=k))
        probs = np.array([np.prod([q[t] for t in d]) for d in tuples])
        return tuples, probs
    out: list[tuple[tuple, float]] = []

    def rec(prefix: tuple, pr: float, used: float) -> None:
        remaining = [t for t in support if t not in prefix]
        if len(prefix) == k or not remaining:
            out.append((prefix, pr))
            return
        for t in remaining:
            rec(prefix + (t,), pr * q[t] / (1.0 - used), used + q[t])

    rec((), 1.0, 0.0)
    out.sort()
    return tuple(d for d, _ in out), np.array([pr for _, pr in out])


def _zeta(f: np.ndarray, V: int) -> np.ndarray:
    """Subset sums ``g[H] = sum_{S subset H} f[S]`` over bitmasks (length 2^V)."""
    g = f.reshape((2,) * V) if V else f.copy()
    for ax in range(V):
        g = np.cumsum(g, axis=ax)
    return g.reshape(-1)


def _mask_sums(v: np.ndarray) -> np.ndarray:
    """``v(H)`` for every bitmask ``H`` (bit i = token i)."""
    V = v.shape[0]
    f = np.zeros(2**V)
    for i in range(V):
        f[1 << i] = v[i]
    return _zeta(f, V)


def all_in_probabilities(q, k: int, replacement: bool = True) -> np.ndarray:
    """``D(all k drafts in H)`` for every subset ``H`` of V as a bitmask (length 2^V, bit i = token i)."""
    q = np.asarray(q, dtype=np.float64)
    V = q.shape[0]
    if replacement:
        return _mask_sums(q) ** k
    tuples, probs = draft_law(q, k, replacement=False)
    f = np.zeros(2**V)
    for d, pr in zip(tuples, probs):
        f[sum(1 << t for t in set(d))] += pr
    return _zeta(f, V)


def coupling_value(p, q, k: int, replacement: bool = True) -> float:
    """``alpha*(p, D) = min_H [p(H) + 1 - D(all drafts in H)]`` (ALGORITHMS-2.md §7.1).

    Exact enumeration of the ``2^V`` subsets for ``V <= 16``; beyond, the compact max-flow LP
    (§8.2). An augmented ``p`` (length V + 1) gives the conditional OT value ``min_H [w p(H) + 1 -
    D(all in H)]`` (``⊥`` is never a member, so ``H`` never needs to contain it).

    Examples
    --------
    >>> round(coupling_value([2/3, 1/3], [1/3, 2/3], 2), 12)   # E1, k = 2: 8/9
    0.888888888889
    """
    p, q, k = _check(p, q, k)
    V = q.shape[0]
    pv = p[:V]
    if V <= MAX_SUBSET_V:
        return float(np.min(_mask_sums(pv) + 1.0 - all_in_probabilities(q, k, replacement)))
    return _compact_value(pv, q, k, replacement)


def _compact_value(pv, q, k, replacement) -> float:
    """Compact LP: ``f[d, y] >= 0`` for members only, ``sum_y f <= D(d)``, ``sum_d f <= p(y)``."""
    tuples, probs = draft_law(q, k, replacement)
    rows, cols, tok = [], [], []
    for i, d in enumerate(tuples):
        for y in sorted(set(d)):
            rows.append(i)
            tok.append(y)
            cols.append(len(cols))
    n = len(cols)
    R = sp.csr_matrix((np.ones(n), (rows, cols)), shape=(len(tuples), n))
    C = sp.csr_matrix((np.ones(n), (tok, cols)), shape=(pv.shape[0], n))
    lp = build("compact coupling", np.ones(n), A_ub=sp.vstack([R, C]), b_ub=np.concatenate([probs, pv]),
               upper=np.ones(n))
    return solve(lp).objective


def coupling(p, q, k: int, replacement: bool = True) -> Coupling:
    """Full coupling LP between ``k`` draws from ``q`` and the target ``p`` (ALGORITHMS-2.md §8.1).

    Parameters
    ----------
    p : [V] target, or [V+1] augmented target ``(w p, 1 - w)`` (see :func:`augment`).
    q : [V] draft law of one draw.
    k : number of draws; ``replacement=False`` draws without replacement.

    Returns
    -------
    Coupling
        with the plan ``pi`` of shape [T, len(p)] over ``T = |supp D|`` draft tuples.

    Examples
    --------
    >>> c = coupling([2/3, 1/3], [1/3, 2/3], 2)
    >>> round(c.value, 9), c.plan.shape
    (0.888888889, (4, 2))
    """
    p, q, k = _check(p, q, k)
    tuples, probs = draft_law(q, k, replacement)
    T, W = len(tuples), p.shape[0]
    ys = np.flatnonzero(p > 0)
    n = T * len(ys)
    # variable j = i * len(ys) + r  <->  c[tuple i, token ys[r]] = pi / D(d_i)
    ti = np.repeat(np.arange(T), len(ys))
    yr = np.tile(np.arange(len(ys)), T)
    yv = ys[yr]
    A_row = sp.csr_matrix((np.ones(n), (ti, np.arange(n))), shape=(T, n))
    scale = 1.0 / np.maximum(p[ys], _MIN_SCALE)  # target rows divided by p(y) (floored)
    A_col = sp.csr_matrix((probs[ti] * scale[yr], (yr, np.arange(n))), shape=(len(ys), n))
    member = np.array([yv[j] < q.shape[0] and yv[j] in tuples[ti[j]] for j in range(n)], dtype=np.float64)
    lp = build(
        f"coupling(V={q.shape[0]}, k={k}, {'iid' if replacement else 'wor'})",
        probs[ti] * member,
        A_eq=sp.vstack([A_row, A_col]),
        b_eq=np.concatenate([np.ones(T), p[ys] * scale]),
        upper=np.ones(n),
    )
    sol = solve(lp)
    plan = np.zeros((T, W))
    plan[ti, yv] = np.maximum(sol.x, 0.0) * probs[ti]
    return Coupling(
        p=p,
        q=q,
        k=k,
        replacement=bool(replacement),
        tuples=tuples,
        draft_probs=probs,
        plan=plan,
        value=sol.objective,
        n_variables=sol.n_variables,
        n_constraints=sol.n_constraints,
        seconds=sol.seconds,
        status=sol.status,
        solver=sol.solver,
        certificate=sol.certificate,
    )
