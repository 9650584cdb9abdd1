"""Top-down OT tree verifiers: NSS, NaiveTree, SpecInfer, SpecTr (K-SEQ), Khisti, OT-optimal.

All six methods run on the shared top-down driver of :mod:`.topdown_driver` (DDTE App. B-D;
ALGORITHMS.md §3): at node ``u`` a node solver ``f(p_u, q_u, d)`` turns the ``k_u`` child tokens
``d`` drawn there (``tree.draws[u]``, draw order, duplicates repeated) into a token whose law is
``p_u``; a drafted token continues the walk, any other token (or a leaf's draw from ``p_u``) ends
it. Delayed trees work unchanged: a trunk node has a single draw (``k_u = 1``), the branch node
``k`` draws.

Node solvers (``p, q`` shape [V], ``k = k_u``):

- ``nss``: ``y ~ p`` (drafts ignored). ``alpha = sum_t p(t)(1 - (1 - q(t))^k)``.
- ``naive_tree``: test ``X_1`` with ``min(1, p/q)``, else ``y ~ norm((p - q)_+)``.
- ``specinfer``: for ``j = 1..k`` accept ``X_j`` w.p. ``min(1, p_j(X_j)/q(X_j))``, else
  ``p_{j+1} = norm((p_j - q)_+)`` (``q`` unchanged); finally ``y ~ p_{k+1}``.
- ``spectr``: K-SEQ with ``rho*`` (root of ``1 - (1 - beta(rho))^k = rho beta(rho)``, bisection,
  feasible end returned): accept ``X_j`` w.p. ``min(1, p/(rho q))``; finally
  ``y ~ norm((p - gamma min(q, p/rho))_+)``, ``gamma = (1 - (1-beta)^k)/beta``.
- ``khisti``: canonical decomposition (Khisti et al. 2025): pick ``Z`` from ``d`` with selection
  weights ``sigma(d, .)`` from the FULL LP ``max sum_y min(p(y), q_IS(y))`` over selections
  (ALGORITHMS-2 §7.4), then single-draft speculative sampling of ``Z`` against ``q_IS``.
- ``ot_optimal``: an optimal per-node plan ``f[d, y]`` (compact LP of ALGORITHMS-2 §8.2, written
  over draft multisets since both laws are exchangeable) for the
  node's draft law (i.i.d. ``q^k``, or sequential without replacement on without-replacement
  trees): output member ``y`` w.p. ``f[d, y]/D(d)``, otherwise the global residual
  ``norm(p - m)``, ``m = sum_d f[d, .]`` (lemma §1.4). Lossless for any feasible ``f`` (the plan
  is clipped to ``m <= p`` before use), optimal per node:
  ``alpha = min_H [p(H) + 1 - D(all drafts in H)]``.

Random keys (the ``Coupled`` layout each entry publishes): per internal node ``u`` the solver's
decision keys ``("accept", u, j)`` (SpecInfer / SpecTr: ``j < k_u``; NaiveTree: ``j = 0``) or
``("pick", u)`` (Khisti: the selected token, then ``("accept", u)``; OT-optimal: a categorical
over ``V + 1`` entries, index ``V`` = reject), listed node by node, followed by
``("residual", u)`` for every node ``u = 0..N-1`` (the final draw at ``u``: correction, residual or
bonus). NSS uses only the residual keys.

:func:`tree_block_efficiency` gives ``E[tau + 1 | T]`` from the analytic branching laws
``B(f, d, t) = Pr[f(d) = t]`` (DDTE Eq. 3) without enumerating the verifier's coins;
:func:`scheme_block_efficiency` averages it over the scheme's trees.

Reconstructed parts: SpecInfer uses draw order (value independent) instead of a uniformly random
pick, so per-tree values differ from random-order tables (E2 paths [(0,1),(2,0)]: 7/3 here, 29/12
averaged over both orders) while tree-averaged values agree; Khisti uses the full selection LP
instead of the truncated "App. I" LP of the GBV repo; the OT-optimal plan is our construction from
ALGORITHMS-2 §8.2. Optimal node plans are not unique: node acceptance is always ``alpha*``, but
which drafted child receives the mass (hence the tree-level block efficiency of ``khisti`` and
``ot_optimal`` at depth >= 2) depends on the vertex HiGHS returns.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from specoracle.errors import InvalidInstance, SpecoracleError, unknown_name
from specoracle.instance import Instance, Outcome
from specoracle.randomness import RandomSource
from specoracle.registry import Entry
from specoracle.tree import Tree

from ._common import accept_ratio, positive_part, residual_or_fallback
from .rrs import RRS_WOR
from .topdown_driver import (
    ALL_KINDS,
    IID_KINDS,
    NodeSolver,
    check_kind,
    layout,
    node_tokens,
    normalize_or,
    walk,
    zeros_like,
)

__all__ = [
    "nss",
    "naive_tree",
    "specinfer",
    "spectr",
    "khisti",
    "ot_optimal",
    "kseq_rho",
    "khisti_selection",
    "ot_plan",
    "OTPlan",
    "KhistiSelection",
    "node_law",
    "tree_block_efficiency",
    "scheme_block_efficiency",
    "METHODS",
    "TOPDOWN",
    "ENTRIES",
]


def _one_hot(p: np.ndarray, t: int) -> np.ndarray:
    e = zeros_like(p)
    e[t] = p[0] * 0 + 1
    return e


# --- NSS ----------------------------------------------------------------------------------------
def _nss_sample(p, q, d, rng, u, sampling):
    return rng.categorical(p, ("residual", u))


def _nss_law(p, q, d, sampling):
    return np.array(p, copy=True)


# --- NaiveTree ----------------------------------------------------------------------------------
def _naive_sample(p, q, d, rng, u, sampling):
    x = d[0]
    if rng.bernoulli(accept_ratio(p[x], q[x]), ("accept", u, 0)):
        return x
    key = ("residual", u)
    return rng.categorical(residual_or_fallback(positive_part(p - q), p, rng, key), key)


def _naive_law(p, q, d, sampling):
    x = d[0]
    a = accept_ratio(p[x], q[x])
    return a * _one_hot(p, x) + (1 - a) * normalize_or(positive_part(p - q), p)


# --- SpecInfer ----------------------------------------------------------------------------------
def _specinfer_sample(p, q, d, rng, u, sampling):
    cur = p
    for j, x in enumerate(d):
        if rng.bernoulli(accept_ratio(cur[x], q[x]), ("accept", u, j)):
            return x
        cur = residual_or_fallback(positive_part(cur - q), cur, rng, ("accept", u, j))
    return rng.categorical(cur, ("residual", u))


def _specinfer_law(p, q, d, sampling):
    out, alive, cur = zeros_like(p), p[0] * 0 + 1, p
    for x in d:
        a = accept_ratio(cur[x], q[x])
        out[x] += alive * a
        alive = alive * (1 - a)
        cur = normalize_or(positive_part(cur - q), cur)
    return out + alive * cur


# --- SpecTr (K-SEQ) -----------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _kseq_cached(pb: bytes, qb: bytes, k: int) -> tuple[float, np.ndarray]:
    p, q = np.frombuffer(pb), np.frombuffer(qb)
    if k == 1:
        rho = 1.0
        res = p - np.minimum(p, q)  # == (p - q)_+ exactly: K-SEQ at k = 1 is token-level SpS
    else:
        rho = _bisect_rho(p, q, k)
        b = np.minimum(q, p / rho).sum()
        gamma = (1 - (1 - b) ** k) / b if b > 0 else 0.0
        res = positive_part(p - gamma * np.minimum(q, p / rho))
    total = res.sum()
    res = res / total if total > 0 else np.array(p)
    res.setflags(write=False)
    return rho, res


def _bisect_rho(p: np.ndarray, q: np.ndarray, k: int) -> float:
    def g(rho: float) -> float:
        b = np.minimum(q, p / rho).sum()
        return 1 - (1 - b) ** k - rho * b

    if g(1.0) <= 0:
        return 1.0
    lo, hi = 1.0, float(k)
    while True:
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:
            return hi  # the feasible end: g(hi) <= 0, i.e. gamma <= rho
        if g(mid) > 0:
            lo = mid
        else:
            hi = mid


def kseq_rho(p: Sequence[float], q: Sequence[float], k: int) -> float:
    """``rho*(p, q, k)`` of SpecTr's K-SEQ: smallest ``rho`` in ``[1, k]`` with
    ``1 - (1 - beta(rho))^k <= rho beta(rho)``, ``beta(rho) = sum_y min(q(y), p(y)/rho)``.

    Bisection to float64 resolution, returning the feasible end. ``k = 1`` gives 1.

    >>> round(kseq_rho([2/3, 1/3], [1/3, 2/3], 2), 10)   # (5 + sqrt(13)) / 6
    1.4342585459
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return _kseq_cached(p.tobytes(), q.tobytes(), int(k))[0]


def _kseq_params(p, q, k):
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return _kseq_cached(p.tobytes(), q.tobytes(), int(k))


def _spectr_sample(p, q, d, rng, u, sampling):
    rho, res = _kseq_params(p, q, len(d))
    for j, x in enumerate(d):
        if rng.bernoulli(min(1.0, float(p[x]) / (rho * float(q[x]))), ("accept", u, j)):
            return x
    return rng.categorical(res, ("residual", u))


def _spectr_law(p, q, d, sampling):
    rho, res = _kseq_params(p, q, len(d))
    out, alive = np.zeros(len(p)), 1.0
    for x in d:
        a = min(1.0, float(p[x]) / (rho * float(q[x])))
        out[x] += alive * a
        alive *= 1 - a
    return out + alive * res


# --- draft laws on V^k and small LPs --------------------------------------------------------------
MAX_MULTISETS = 20_000
"""Largest number of draft multisets for which a node LP (Khisti, OT-optimal) is built."""


def _tuples(q: np.ndarray, k: int, law: str) -> list[tuple[tuple[int, ...], float]]:
    """Every draft multiset ``M`` (sorted token tuple) with its probability ``D(M)``.

    Both draft laws are exchangeable, so a node plan only needs the multiset of the ``k`` draws:
    ``law = "iid"``: ``D(M) = k! / prod_y m_y! * prod_y q(y)^{m_y}``; ``"without_replacement"``:
    sets of ``k`` distinct tokens, ``D(M) = sum over orders d of prod_j q(d_j) / (1 - sum_{l<j}
    q(d_l))``.
    """
    support = [int(y) for y in np.flatnonzero(q > 0)]
    if law == "iid":
        combos = itertools.combinations_with_replacement(support, k)
        n = math.comb(len(support) + k - 1, k)
    else:
        if k > len(support):
            raise InvalidInstance(f"{k} draws without replacement need {k} tokens with q > 0, got {len(support)}")
        combos = itertools.combinations(support, k)
        n = math.comb(len(support), k)
    if n > MAX_MULTISETS:
        raise InvalidInstance(
            f"the exact node LP would have {n} draft multisets (V={len(q)}, k={k}); the limit is "
            f"{MAX_MULTISETS}: use fewer drafts or a smaller vocabulary (top-k) for this method"
        )
    out = []
    for M in combos:
        if law == "iid":
            coef = math.factorial(k)
            for y in set(M):
                coef //= math.factorial(M.count(y))
            out.append((M, coef * float(np.prod([q[y] for y in M]))))
        else:
            total = 0.0
            for d in itertools.permutations(M):
                pr, used = 1.0, 0.0
                for y in d:
                    pr *= q[y] / (1 - used)
                    used += q[y]
                total += pr
            out.append((M, total))
    return out


def _linprog(c, A_ub, b_ub, A_eq=None, b_eq=None, bounds=(0, None)):
    from scipy.optimize import linprog  # lazy: keeps `import specoracle.reference` light

    res = linprog(
        c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    if res.status != 0:
        raise SpecoracleError(f"node LP failed: {res.message}")
    return res.x


@dataclass(frozen=True)
class OTPlan:
    """An optimal per-node transport plan between ``k`` drafts and the target (ALGORITHMS-2 §8.2).

    Attributes
    ----------
    out : dict ``M -> array [V]``: ``Pr[output member y | drafts d]`` for every draw tuple ``d``
        whose sorted multiset is ``M`` (zero off ``set(M)``).
    residual : array [V], the global residual law ``norm(p - m)``.
    accepted : array [V], ``m(y) = sum_d D(d) out[d][y] <= p(y)``.
    acceptance : ``sum_y m(y)`` (= ``alpha*(p, D)`` up to solver accuracy).
    """

    out: dict
    residual: np.ndarray
    accepted: np.ndarray
    acceptance: float


@lru_cache(maxsize=1024)
def _ot_plan_cached(pb: bytes, qb: bytes, k: int, law: str) -> OTPlan:
    p, q = np.frombuffer(pb), np.frombuffer(qb)
    V = len(p)
    tuples = _tuples(q, k, law)
    pairs = [(i, y) for i, (d, _) in enumerate(tuples) for y in sorted(set(d))]
    A = np.zeros((len(tuples) + V, len(pairs)))
    for j, (i, y) in enumerate(pairs):
        A[i, j] = 1.0
        A[len(tuples) + y, j] = 1.0
    b = np.concatenate([[D for _, D in tuples], p])
    f = np.maximum(_linprog(-np.ones(len(pairs)), A, b), 0.0)
    # make the plan feasible whatever the solver's accuracy: rows <= D(d), then columns <= p
    F = np.zeros((len(tuples), V))
    for j, (i, y) in enumerate(pairs):
        F[i, y] = f[j]
    D = np.array([D for _, D in tuples])
    rows = F.sum(axis=1)
    over = rows > D
    F[over] *= (D[over] / rows[over])[:, None]
    m = F.sum(axis=0)
    cols = m > p
    F[:, cols] *= p[cols] / m[cols]
    m = F.sum(axis=0)
    out = {}
    for i, (d, Dd) in enumerate(tuples):
        row = F[i] / Dd
        row.setflags(write=False)
        out[d] = row
    res = positive_part(p - m)
    total = res.sum()
    res = res / total if total > 0 else np.array(p)
    res.setflags(write=False)
    m.setflags(write=False)
    return OTPlan(out=out, residual=res, accepted=m, acceptance=float(m.sum()))


def ot_plan(p: Sequence[float], q: Sequence[float], k: int, law: str = "iid") -> OTPlan:
    """The per-node optimal plan used by :func:`ot_optimal` (cached on ``(p, q, k, law)``).

    Parameters
    ----------
    p, q : arrays [V] (target, draft).
    k : number of drafts.
    law : ``"iid"`` (``k`` i.i.d. draws from ``q``) or ``"without_replacement"``.

    >>> round(ot_plan([2/3, 1/3], [1/3, 2/3], 2).acceptance, 10)   # alpha* = 8/9
    0.8888888889
    """
    if law not in ("iid", "without_replacement"):
        raise unknown_name("draft law", law, ("iid", "without_replacement"))
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return _ot_plan_cached(p.tobytes(), q.tobytes(), int(k), law)


def _ot_sample(p, q, d, rng, u, sampling):
    plan = ot_plan(p, q, len(d), sampling)
    row = plan.out[tuple(sorted(d))]
    pick = rng.categorical(np.append(row, max(0.0, 1.0 - row.sum())), ("pick", u))
    if pick < len(row):
        return pick
    return rng.categorical(plan.residual, ("residual", u))


def _ot_law(p, q, d, sampling):
    plan = ot_plan(p, q, len(d), sampling)
    row = plan.out[tuple(sorted(d))]
    return row + max(0.0, 1.0 - row.sum()) * plan.residual


# --- Khisti -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KhistiSelection:
    """Importance-sampling selection of Khisti et al.'s canonical decomposition.

    Attributes
    ----------
    sigma : dict ``M -> array [V]``, ``Pr[select token z | drafts d]`` for draw tuples ``d`` with
        sorted multiset ``M`` (zero off ``set(M)``).
    q_is : array [V], induced law of the selected token ``sum_d D(d) sigma(d, .)``.
    residual : array [V], ``norm((p - q_is)_+)``.
    acceptance : test-pass rate ``sum_y min(p(y), q_is(y))`` (= ``alpha*(p, q^k)`` at the optimum).
    """

    sigma: dict
    q_is: np.ndarray
    residual: np.ndarray
    acceptance: float


@lru_cache(maxsize=1024)
def _khisti_cached(pb: bytes, qb: bytes, k: int) -> KhistiSelection:
    p, q = np.frombuffer(pb), np.frombuffer(qb)
    V = len(p)
    tuples = _tuples(q, k, "iid")
    pairs = [(i, y) for i, (d, _) in enumerate(tuples) for y in sorted(set(d))]
    n = len(pairs) + V  # selection masses s[d, z], then t_y <= min(p_y, q_IS(y))
    A_eq = np.zeros((len(tuples), n))
    A_ub = np.zeros((V, n))
    for j, (i, y) in enumerate(pairs):
        A_eq[i, j] = 1.0
        A_ub[y, j] = -1.0
    A_ub[np.arange(V), len(pairs) + np.arange(V)] = 1.0
    c = np.concatenate([np.zeros(len(pairs)), -np.ones(V)])
    bounds = [(0, None)] * len(pairs) + [(0, float(py)) for py in p]
    x = _linprog(c, A_ub, np.zeros(V), A_eq, np.array([D for _, D in tuples]), bounds)
    s = np.maximum(x[: len(pairs)], 0.0)
    sigma: dict = {}
    for j, (i, y) in enumerate(pairs):
        sigma.setdefault(tuples[i][0], np.zeros(V))[y] = s[j]
    q_is = np.zeros(V)
    for d, D in tuples:
        row = sigma[d]
        total = row.sum()
        if total > 0:
            row /= total
        else:  # the LP left this tuple unassigned (cannot happen at equality); pick X_1
            row[d[0]] = 1.0
        row.setflags(write=False)
        q_is += D * row  # the law actually induced by the sigma used below
    res = normalize_or(positive_part(p - q_is), np.array(p))
    res.setflags(write=False)
    q_is.setflags(write=False)
    return KhistiSelection(sigma=sigma, q_is=q_is, residual=res, acceptance=float(np.minimum(p, q_is).sum()))


def khisti_selection(p: Sequence[float], q: Sequence[float], k: int) -> KhistiSelection:
    """Optimal selection weights for ``k`` i.i.d. drafts (full LP over draft multisets).

    >>> round(khisti_selection([2/3, 1/3], [1/3, 2/3], 2).acceptance, 10)   # alpha* = 8/9
    0.8888888889
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return _khisti_cached(p.tobytes(), q.tobytes(), int(k))


def _khisti_sample(p, q, d, rng, u, sampling):
    sel = khisti_selection(p, q, len(d))
    z = rng.categorical(sel.sigma[tuple(sorted(d))], ("pick", u))
    if rng.bernoulli(min(1.0, float(p[z]) / sel.q_is[z]), ("accept", u)):
        return z
    return rng.categorical(sel.residual, ("residual", u))


def _khisti_law(p, q, d, sampling):
    sel = khisti_selection(p, q, len(d))
    out = np.zeros(len(p))
    for z in np.flatnonzero(sel.sigma[tuple(sorted(d))] > 0):
        a = min(1.0, float(p[z]) / sel.q_is[z])
        out[z] += sel.sigma[tuple(sorted(d))][z] * a
        out += sel.sigma[tuple(sorted(d))][z] * (1 - a) * sel.residual
    return out


# --- registry of node solvers -------------------------------------------------------------------
def _accept_keys(u: int, k: int) -> tuple:
    return tuple(("accept", u, j) for j in range(k))


METHODS: dict[str, NodeSolver] = {
    "nss": NodeSolver("nss", _nss_sample, _nss_law, lambda u, k: ()),
    "naive_tree": NodeSolver("naive_tree", _naive_sample, _naive_law, lambda u, k: (("accept", u, 0),)),
    "specinfer": NodeSolver("specinfer", _specinfer_sample, _specinfer_law, _accept_keys),
    "spectr": NodeSolver("spectr", _spectr_sample, _spectr_law, _accept_keys),
    "khisti": NodeSolver("khisti", _khisti_sample, _khisti_law, lambda u, k: (("pick", u), ("accept", u))),
    "ot_optimal": NodeSolver("ot_optimal", _ot_sample, _ot_law, lambda u, k: (("pick", u),), kinds=ALL_KINDS),
}
"""Node solvers by method name (rrs_wor lives in :mod:`specoracle.reference.rrs`)."""


TOPDOWN = tuple(METHODS) + ("rrs_wor",)
"""Every method name accepted by :func:`node_law`, :func:`tree_block_efficiency` and
:func:`scheme_block_efficiency`."""


def _solver(name: str) -> NodeSolver:
    if name in METHODS:
        return METHODS[name]
    if name == RRS_WOR.name:
        return RRS_WOR
    raise unknown_name("top-down method", name, list(METHODS) + [RRS_WOR.name])


def nss(instance: Instance, rng: RandomSource) -> Outcome:
    """Naive speculative sampling applied top-down: at each node ``y ~ p_u``, descend if drafted.

    Keys: ``("residual", u)``. E1 iid(2,1): ``E[tau] = sum_t p(t)(1 - (1 - q(t))^2) = 2/3``.
    """
    check_kind(instance, METHODS["nss"])
    return walk(instance, rng, METHODS["nss"])


def naive_tree(instance: Instance, rng: RandomSource) -> Outcome:
    """Token-level SpS of the first draw at each node; residual ``norm((p - q)_+)`` may descend.

    Keys: ``("accept", u, 0)``, ``("residual", u)``. E1 iid(2,1): ``E[tau] = 7/9``.
    """
    check_kind(instance, METHODS["naive_tree"])
    return walk(instance, rng, METHODS["naive_tree"])


def specinfer(instance: Instance, rng: RandomSource) -> Outcome:
    """SpecInfer multi-step speculative sampling (RRS with replacement) on the draw multiset.

    Keys: ``("accept", u, j)`` for the ``j``-th draw at ``u``, ``("residual", u)``.
    One node: ``alpha = 1 - prod_j (1 - beta_j)``; E1 iid(2,1): ``7/9``.
    """
    check_kind(instance, METHODS["specinfer"])
    return walk(instance, rng, METHODS["specinfer"])


def spectr(instance: Instance, rng: RandomSource) -> Outcome:
    """SpecTr K-SEQ with ``rho*(p_u, q_u, k_u)`` recomputed at every node (float only).

    Keys: ``("accept", u, j)``, ``("residual", u)``. E1 iid(2,1): ``alpha = (11 + sqrt 13)/18``.
    """
    check_kind(instance, METHODS["spectr"])
    return walk(instance, rng, METHODS["spectr"])


def khisti(instance: Instance, rng: RandomSource) -> Outcome:
    """Khisti et al.'s canonical decomposition: optimal IS selection, then single-draft SpS.

    Keys: ``("pick", u)``, ``("accept", u)``, ``("residual", u)``. Reaches ``alpha*`` per node.
    """
    check_kind(instance, METHODS["khisti"])
    return walk(instance, rng, METHODS["khisti"])


def ot_optimal(instance: Instance, rng: RandomSource) -> Outcome:
    """Top-down verification with an optimal transport plan at every node (i.i.d. or w/o law).

    Keys: ``("pick", u)`` (index ``V`` = reject), ``("residual", u)``. E1 iid(2,1): ``8/9``.
    """
    check_kind(instance, METHODS["ot_optimal"])
    return walk(instance, rng, METHODS["ot_optimal"])


# --- DDTE Eq. 3 ---------------------------------------------------------------------------------
def node_law(name: str, p: Sequence, q: Sequence, drafts: Sequence[int], sampling: str = "iid") -> np.ndarray:
    """Branching law ``B(f, d, .) = Pr[f(d) = .]`` of method ``name`` at one node, shape [V].

    >>> node_law("naive_tree", [.5, .5], [.9, .1], (0, 1)).round(4).tolist()
    [0.5556, 0.4444]
    """
    solver = _solver(name)
    p = p if isinstance(p, np.ndarray) else np.asarray(p, dtype=np.float64)
    q = q if isinstance(q, np.ndarray) else np.asarray(q, dtype=np.float64)
    return solver.law(p, q, tuple(int(x) for x in drafts), sampling)


def tree_block_efficiency(name: str, instance: Instance):
    """Exact ``E[tau + 1 | T]`` of a top-down method from its branching laws (DDTE Eq. 3).

    ``sum_{c in T} Pr[reach c]`` with ``Pr[reach root] = 1`` and
    ``Pr[reach u + t] = Pr[reach u] B(f_{p_u, q_u, k_u}, d_u, t)``; no verifier coins enumerated.
    Exact (Fraction) for rational instances of rational methods, float otherwise.

    >>> from specoracle.tree import Tree
    >>> inst = Instance(Tree.from_paths([(0,), (1,)]), [[.5, .5]] * 3, [[.5, .5]] * 3)
    >>> tree_block_efficiency("specinfer", inst)   # p == q: a draft is always accepted
    2.0
    """
    solver = _solver(name)
    check_kind(instance, solver)
    tree = instance.tree
    reach = [instance.p[0][0] * 0 + 1] + [None] * (tree.size - 1)
    for u in range(tree.size):  # pre-order: parents first
        d = node_tokens(tree, u, solver.children)
        if not d:
            continue
        law = solver.law(instance.p[u], instance.q[u], d, tree.sampling)
        for c in tree.children[u]:
            reach[c] = reach[u] * law[tree.tokens[c]]
    total = sum(reach[1:], reach[0])
    return total if instance.rational else float(total)


def scheme_block_efficiency(name: str, model, scheme):
    """Tree-averaged block efficiency ``sum_T Pr[T] E[tau + 1 | T]`` (DDTE Eq. 3 per tree).

    Enumerates the scheme's trees (:meth:`Scheme.enumerate`), so keep ``V`` and the tree small;
    for large models average :func:`tree_block_efficiency` over sampled trees (DDTE's ``s = 4``).
    Fraction for rational models, float otherwise.

    >>> from specoracle import examples, drafting
    >>> scheme_block_efficiency("specinfer", examples.E1(rational=True), drafting.iid(2, 2))
    Fraction(7, 3)
    """
    total = 0
    for tree, pr in scheme.enumerate(model):
        total = total + pr * tree_block_efficiency(name, Instance.from_model(model, tree))
    return total


def _keys(name: str) -> Callable[[Tree], tuple]:
    solver = METHODS[name]

    def keys(tree: Tree) -> tuple:
        return layout(tree, solver)

    keys.__name__ = f"{name}_keys"
    keys.__doc__ = f"Coupled layout of {name}: node decision keys in node order, then residual keys."
    return keys


ENTRIES = [
    Entry("nss", nss, _keys("nss"), IID_KINDS, "topdown", top_down=True,
          draw_order_invariant=True,
          description="naive speculative sampling (Miao et al.) run top-down on the draft tree"),
    Entry("naive_tree", naive_tree, _keys("naive_tree"), IID_KINDS, "topdown", top_down=True,
          description="token-level SpS of the first draw at each node, top-down (DDTE's NaiveTree)"),
    Entry("specinfer", specinfer, _keys("specinfer"), IID_KINDS, "topdown", top_down=True,
          description="SpecInfer multi-step speculative sampling (RRS with replacement) on draw multisets"),
    Entry("spectr", spectr, _keys("spectr"), IID_KINDS, "topdown", rational=False, top_down=True,
          description="SpecTr K-SEQ with the optimal rho* (bisection) at every node"),
    Entry("khisti", khisti, _keys("khisti"), IID_KINDS, "topdown", rational=False, top_down=True,
          optimal_within="per node: single-draft verification after importance-sampling selection",
          bound="coupling_value",
          description="Khisti et al. canonical decomposition, full selection LP (reconstruction)"),
    Entry("ot_optimal", ot_optimal, _keys("ot_optimal"), ALL_KINDS, "topdown", rational=False, top_down=True,
          optimal_within="per node: every lossless node solver for the node's draft law (alpha*)",
          bound="coupling_value",
          description="top-down with an optimal per-node OT plan (compact LP + global residual)"),
]
