"""Multi-step LP bounds on block efficiency (ALGORITHMS.md §5.1, §5.2, §10.4).

Every bound returns a :class:`Bound` with the optimum ``E[tau]`` (``expected_accepted``), the block
efficiency ``E[tau] + 1``, the solution (prefix acceptances ``A(u)`` and the plan), the solve
report (variables, constraints, seconds, status, solver) and the certificate of
:mod:`specoracle.lp._solve`.

- :func:`single_path_bound` ``(model, L)``: the information-agnostic single-path LP (§5.1), over
  prefix masses ``A(u) = Pr[tau >= |u|, X_{1:|u|} = u]``: ``A(()) = 1``, ``A(u) <= Q(u)``,
  ``A(u+x) <= p(x|u) A(u)``, ``max sum_{u != ()} A(u)``. Optimum = block verification's
  ``E[tau] = sum Q w``.
- :func:`universal_bound` ``(model, scheme)``: the exact LP over every iteration-wise lossless
  verifier for the scheme's draft-tree law (§10.4). For each tree ``T`` (probability ``pr_T``)
  and output ``(v, y)``, ``v in N(T)``: ``pi[T, v, y] >= 0``, ``sum_{v,y} pi[T, v, y] = pr_T``
  (row divided by ``pr_T``); lossless rows ``sum_{b prefix of s} M(b) / P(b) = 1`` for every
  ``s in V^(L+1)`` with ``P(s) > 0``, where ``M(b) = sum_T sum_{v+y = b} pi[T, v, y]``.
  Rows are already divided by ``P(s)`` (§10.4's scaling); ``m(b) = M(b)/P(b)`` are auxiliary
  variables (one linking row per block ``b``), which keeps the matrix sparse
  (``L + 1`` entries per lossless row). Variables are scaled to ``pi / min(pr_T, P(v+y))``, all in
  ``[0, 1]``, so no coefficient exceeds 1 (§10.4's "tiny pr_T" pitfall).
  **Reduction [DER]:** trees with the same set of prefixes ``N(T)`` are merged (probabilities
  added): the constraints see only ``M``, and a solution can always be averaged over trees with
  the same node set, so the optimum is unchanged; draw order and multiplicities never matter to
  this bound.
- :func:`path_selection_bound` ``(model, scheme)``: select one drafted full path with law
  ``Qg`` in the coverage polytope ``Qg(S) <= Pr[some drafted path in S]`` (all ``S`` of
  full paths: Artstein / Hall), then run BV with draft law ``Qg`` (§5.2). Explicit subsets:
  needs at most ``max_paths`` possible full paths.
- :func:`coverage_bound` ``(model, scheme)``: the cheaper relaxation of §10.4: ``A(()) = 1``,
  ``A(u+x) <= p(x|u) A(u)``, and per depth ``i`` for every set ``S`` of depth-``i`` prefixes
  ``sum_{u in S} A(u) <= Pr[some drafted depth-i node in S]``. An upper bound on
  :func:`universal_bound` (tight on E1/E3, loose on E2 K=2: 1.81 vs 1.76 in E[tau]).

Coverage probabilities are computed from the scheme's own tree law (``scheme.enumerate``), so the
same code serves i.i.d., delayed, without-replacement and chain schemes; for i.i.d. paths they equal
``1 - (1 - Q(S))^K``. Rational models are converted to float.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import product

import numpy as np
import scipy.sparse as sp

from specoracle.errors import InvalidArgument, InvalidInstance

from ._solve import Certificate, Solution, build, solve

__all__ = [
    "Bound",
    "single_path_bound",
    "universal_bound",
    "path_selection_bound",
    "coverage_bound",
    "tree_groups",
    "MAX_PATHS",
]

#: default limit on the number of sets enumerated by the coverage constraints (2^MAX_PATHS rows).
MAX_PATHS = 16


@dataclass(frozen=True)
class Bound:
    """An LP bound on E[tau] with its solution and solve report.

    Attributes
    ----------
    name : which LP (``single_path``, ``universal``, ``path_selection``, ``coverage``).
    model, scheme : labels.
    expected_accepted : optimum E[tau]; ``block_efficiency`` = E[tau] + 1.
    acceptance : ``{prefix: A(u)}``, ``A(u) = Pr[accepted node extends u]`` at the optimum
        (for ``coverage`` the relaxation's values).
    solution : LP-specific plan: ``universal``: ``{frozenset of node prefixes: {(v, y): Pr[(v, y)
        | T]}}``; ``path_selection``: ``{"selection": {path: Qg(path)}}``; otherwise ``{}``.
    n_trees : number of draft trees enumerated (before merging equal node sets).
    n_variables, n_constraints, seconds (build + solve), status, solver, certificate.
    """

    name: str
    model: str
    scheme: str
    expected_accepted: float
    n_variables: int
    n_constraints: int
    seconds: float
    status: str
    solver: str
    certificate: Certificate
    acceptance: dict = field(repr=False, compare=False)
    solution: dict = field(repr=False, compare=False)
    n_trees: int = 0

    @property
    def block_efficiency(self) -> float:
        """E[tau] + 1 (expected emitted tokens per target call)."""
        return self.expected_accepted + 1.0


def _p(model, u) -> np.ndarray:
    return np.asarray([float(x) for x in model.p(u)], dtype=np.float64)


def _q(model, u) -> np.ndarray:
    return np.asarray([float(x) for x in model.q(u)], dtype=np.float64)


class _Joint:
    """Cached float joint probabilities P(u), Q(u)."""

    def __init__(self, model) -> None:
        self.model = model
        self._P: dict[tuple, float] = {(): 1.0}
        self._Q: dict[tuple, float] = {(): 1.0}

    def P(self, u: tuple) -> float:
        if u not in self._P:
            self._P[u] = self.P(u[:-1]) * float(self.model.p(u[:-1])[u[-1]])
        return self._P[u]

    def Q(self, u: tuple) -> float:
        if u not in self._Q:
            self._Q[u] = self.Q(u[:-1]) * float(self.model.q(u[:-1])[u[-1]])
        return self._Q[u]


def _check_model(model) -> None:
    from specoracle.models import ToyModel

    if not isinstance(model, ToyModel):
        raise InvalidArgument(f"model must be a specoracle ToyModel, got {type(model).__name__}")


def _check_scheme(scheme) -> None:
    from specoracle.drafting import Scheme

    if not isinstance(scheme, Scheme):
        raise InvalidArgument(f"scheme must be a specoracle Scheme (e.g. drafting.iid(2, 2)), got {type(scheme).__name__}")


def _order(u: tuple) -> tuple:
    return (len(u), u)


def tree_groups(model, scheme) -> tuple[list[tuple[tuple, float]], int]:
    """The scheme's tree law merged by node set.

    Returns ``(groups, n_trees)``: ``groups`` is a list of ``(prefixes, probability)`` where
    ``prefixes`` is the sorted tuple (by depth, then lexicographic) of a tree's node prefixes
    (root ``()`` first), probabilities in float and summing to 1.
    """
    _check_model(model)
    _check_scheme(scheme)
    trees = scheme.enumerate(model)
    acc: dict[frozenset, float] = {}
    for tree, pr in trees:
        key = frozenset(tree.prefixes)
        acc[key] = acc.get(key, 0.0) + float(pr)
    groups = [(tuple(sorted(k, key=_order)), pr) for k, pr in acc.items()]
    groups.sort(key=lambda g: [_order(u) for u in g[0]])
    return groups, len(trees)


def _bound(name, model, scheme, sol: Solution, t0: float, acceptance, solution, n_trees=0) -> Bound:
    return Bound(
        name=name,
        model=getattr(model, "name", "model"),
        scheme=scheme if isinstance(scheme, str) else scheme.name,
        expected_accepted=sol.objective,
        n_variables=sol.n_variables,
        n_constraints=sol.n_constraints,
        seconds=time.perf_counter() - t0,
        status=sol.status,
        solver=sol.solver,
        certificate=sol.certificate,
        acceptance=acceptance,
        solution=solution,
        n_trees=n_trees,
    )


# --- single path ---------------------------------------------------------------------------
def single_path_bound(model, L: int) -> Bound:
    """Information-agnostic single-path LP (ALGORITHMS.md §5.1); optimum = BV's E[tau].

    Variables are the scaled masses ``a(u) = A(u) / Q(u) <= 1`` (prefixes with ``Q(u) > 0``), so
    the rows read ``a(u+x) <= (p(x|u) / q(x|u)) a(u)`` (divided by the ratio when it exceeds 1).

    Examples
    --------
    >>> from specoracle import examples
    >>> round(single_path_bound(examples.E1(), 2).expected_accepted, 9)   # 11/9
    1.222222222
    """
    _check_model(model)
    if not isinstance(L, (int, np.integer)) or isinstance(L, bool) or L < 0:
        raise InvalidArgument(f"L must be an int >= 0, got {L!r}")
    t0 = time.perf_counter()
    J = _Joint(model)
    V = model.V
    prefixes: list[tuple] = []
    frontier = [()]
    for _ in range(L):
        nxt = []
        for u in frontier:
            qu = _q(model, u)
            for x in range(V):
                if qu[x] > 0:
                    nxt.append(u + (x,))
        prefixes.extend(nxt)
        frontier = nxt
    index = {u: i for i, u in enumerate(prefixes)}
    n = len(prefixes)
    rows, cols, vals, rhs = [], [], [], []
    for u in prefixes:
        par = u[:-1]
        r = float(model.p(par)[u[-1]]) / float(model.q(par)[u[-1]])
        s = max(1.0, r)
        i = len(rhs)
        rows.append(i), cols.append(index[u]), vals.append(1.0 / s)
        if par:
            rows.append(i), cols.append(index[par]), vals.append(-r / s)
            rhs.append(0.0)
        else:
            rhs.append(r / s)  # a(()) = 1
    A = sp.csr_matrix((vals, (rows, cols)), shape=(len(rhs), n))
    c = np.array([J.Q(u) for u in prefixes])
    lp = build(f"single_path(L={L})", c, A_ub=A, b_ub=np.array(rhs), upper=np.ones(n))
    sol = solve(lp) if n else _trivial(lp)
    acceptance = {(): 1.0}
    acceptance.update({u: J.Q(u) * float(sol.x[index[u]]) for u in prefixes})
    return _bound("single_path", model, f"chain({L})", sol, t0, acceptance, {})


def _trivial(lp) -> Solution:
    from ._solve import certify

    x = np.zeros(lp.n_variables)
    return Solution(x, 0.0, "optimal", "none", 0.0, lp.n_variables, lp.n_constraints,
                    certify(lp, x, np.zeros(lp.A_eq.shape[0]), np.zeros(lp.A_ub.shape[0])))


# --- universal (exact) LP ------------------------------------------------------------------
def universal_bound(model, scheme) -> Bound:
    """Exact LP over every iteration-wise lossless verifier for ``scheme`` (ALGORITHMS.md §10.4).

    Works for every drafting scheme (chain, iid, delayed, without_replacement). Returns the
    optimum with ``block_efficiency = E[tau] + 1`` and the optimal plan
    ``solution[frozenset(N(T))][(v, y)] = Pr[output (v, y) | tree with node set N(T)]``; execute
    it with :func:`specoracle.lp.universal_verifier`.

    Examples
    --------
    >>> from specoracle import examples, drafting
    >>> round(universal_bound(examples.E1(), drafting.iid(2, 2)).expected_accepted, 9)  # 131/81
    1.617283951
    """
    t0 = time.perf_counter()
    groups, n_trees = tree_groups(model, scheme)
    J = _Joint(model)
    V, L = model.V, scheme.depth
    var_group, var_block, var_depth, var_key = [], [], [], []
    blocks: dict[tuple, int] = {}
    for g, (nodes, _) in enumerate(groups):
        for v in nodes:
            for y in range(V):
                b = v + (y,)
                if J.P(b) <= 0:
                    continue
                var_group.append(g)
                var_block.append(blocks.setdefault(b, len(blocks)))
                var_depth.append(len(v))
                var_key.append((v, y))
    nc, nb = len(var_group), len(blocks)
    var_group = np.array(var_group)
    var_block = np.array(var_block)
    pr = np.array([p for _, p in groups])
    Pb = np.empty(nb)
    for b, j in blocks.items():
        Pb[j] = J.P(b)
    # variable x_j = pi[T, v, y] / s_j with s_j = min(pr_T, P(v+y)): every x_j lies in [0, 1]
    # (pi <= pr_T by the tree row, pi <= M(b) <= P(b) by the lossless rows), so a coefficient the
    # solver drops as tiny moves a row by at most that coefficient.
    s_j = np.minimum(pr[var_group], Pb[var_block])
    # rows 1: sum_{v,y} pi[T, v, y] / pr_T = 1 per tree group
    A_tree = sp.csr_matrix((s_j / pr[var_group], (var_group, np.arange(nc))), shape=(len(groups), nc + nb))
    # rows 2: m(b) - sum_{pi -> b} pi / P(b) = 0 per block
    link_rows = np.concatenate([var_block, np.arange(nb)])
    link_cols = np.concatenate([np.arange(nc), nc + np.arange(nb)])
    link_vals = np.concatenate([-s_j / Pb[var_block], np.ones(nb)])
    A_link = sp.csr_matrix((link_vals, (link_rows, link_cols)), shape=(nb, nc + nb))
    # rows 3: sum_{b prefix of s} m(b) = 1 for s in V^(L+1) with P(s) > 0
    rows, cols = [], []
    n_s = 0
    for s in product(range(V), repeat=L + 1):
        if J.P(s) <= 0:
            continue
        for j in range(1, L + 2):
            b = blocks.get(s[:j])
            if b is not None:
                rows.append(n_s), cols.append(nc + b)
        n_s += 1
    A_s = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_s, nc + nb))
    c = np.concatenate([s_j * np.array(var_depth, dtype=np.float64), np.zeros(nb)])
    lp = build(
        f"universal({model.name}, {scheme.name})",
        c,
        A_eq=sp.vstack([A_tree, A_link, A_s]).tocsr(),
        b_eq=np.concatenate([np.ones(len(groups)), np.zeros(nb), np.ones(n_s)]),
        upper=np.ones(nc + nb),
    )
    sol = solve(lp)
    x = np.maximum(sol.x[:nc], 0.0) * s_j / pr[var_group]  # Pr[(v, y) | T]
    keys = [frozenset(nodes) for nodes, _ in groups]
    plan: dict[frozenset, dict] = {key: {} for key in keys}
    acceptance: dict[tuple, float] = {}
    for j in range(nc):
        v, y = var_key[j]
        plan[keys[var_group[j]]][(v, y)] = float(x[j])
        w = pr[var_group[j]] * x[j]  # pi
        for i in range(len(v) + 1):
            acceptance[v[:i]] = acceptance.get(v[:i], 0.0) + w
    return _bound("universal", model, scheme, sol, t0, acceptance, plan, n_trees)


# --- coverage helpers ----------------------------------------------------------------------
def _zeta(f: np.ndarray, n: int) -> np.ndarray:
    g = f.reshape((2,) * n) if n else f.copy()
    for ax in range(n):
        g = np.cumsum(g, axis=ax)
    return g.reshape(-1)


def _hit_probabilities(groups, items: list[tuple], depth: int) -> np.ndarray:
    """``Pr[some drafted node of this depth is in S]`` for every bitmask S over ``items``."""
    n = len(items)
    idx = {u: i for i, u in enumerate(items)}
    f = np.zeros(2**n)
    for nodes, pr in groups:
        mask = 0
        for u in nodes:
            if len(u) == depth:
                mask |= 1 << idx[u]
        f[mask] += pr
    inside = _zeta(f, n)  # Pr[X subset S']
    full = 2**n - 1
    masks = np.arange(2**n)
    return 1.0 - inside[full ^ masks]


def _subset_rows(n: int, offset: int, n_cols: int) -> sp.csr_matrix:
    """Rows (one per non-empty bitmask over n items) with ones at the items' columns."""
    masks = np.arange(1, 2**n)
    bits = ((masks[:, None] >> np.arange(n)) & 1).astype(bool)
    r, c = np.nonzero(bits)
    return sp.csr_matrix((np.ones(len(r)), (r, c + offset)), shape=(len(masks), n_cols))


def _items_at(groups, depth: int) -> list[tuple]:
    return sorted({u for nodes, _ in groups for u in nodes if len(u) == depth})


def _too_many(what: str, n: int, limit: int, scheme) -> InvalidInstance:
    return InvalidInstance(
        f"{what} for {scheme.name}: {n} possible prefixes at one depth need 2^{n} coverage rows "
        f"(limit max_paths={limit}); use universal_bound, or raise max_paths"
    )


def _prefix_rows(model, prefixes, index, offset, n_cols, rows, cols, vals, rhs, root_index=None):
    """Rows ``A(u+x) - p(x|u) A(u) <= 0`` (or ``A(x) <= p(x)`` at the root)."""
    for u in prefixes:
        if not u:
            continue
        par = u[:-1]
        px = float(model.p(par)[u[-1]])
        i = len(rhs)
        rows.append(i), cols.append(offset + index[u]), vals.append(1.0)
        if par:
            rows.append(i), cols.append(offset + index[par]), vals.append(-px)
            rhs.append(0.0)
        else:
            rhs.append(px)


def coverage_bound(model, scheme, *, max_paths: int = MAX_PATHS) -> Bound:
    """Coverage (submodular) relaxation of the universal LP (ALGORITHMS.md §10.4, last paragraph).

    Raises :class:`InvalidInstance` when a depth has more than ``max_paths`` possible prefixes.
    """
    t0 = time.perf_counter()
    groups, n_trees = tree_groups(model, scheme)
    L = scheme.depth
    prefixes = [u for d in range(1, L + 1) for u in _items_at(groups, d)]
    index = {u: i for i, u in enumerate(prefixes)}
    n = len(prefixes)
    rows, cols, vals, rhs = [], [], [], []
    _prefix_rows(model, prefixes, index, 0, n, rows, cols, vals, rhs)
    blocks = [sp.csr_matrix((vals, (rows, cols)), shape=(len(rhs), n))]
    b = [np.array(rhs)]
    for d in range(1, L + 1):
        items = _items_at(groups, d)
        if len(items) > max_paths:
            raise _too_many("coverage_bound", len(items), max_paths, scheme)
        hit = _hit_probabilities(groups, items, d)
        R = _subset_rows(len(items), index[items[0]], n)
        blocks.append(R)
        b.append(hit[1:])
    lp = build(f"coverage({model.name}, {scheme.name})", np.ones(n), A_ub=sp.vstack(blocks).tocsr(),
               b_ub=np.concatenate(b), upper=np.ones(n))
    sol = solve(lp) if n else _trivial(lp)
    acceptance = {(): 1.0}
    acceptance.update({u: float(sol.x[index[u]]) for u in prefixes})
    return _bound("coverage", model, scheme, sol, t0, acceptance, {}, n_trees)


def path_selection_bound(model, scheme, *, max_paths: int = MAX_PATHS) -> Bound:
    """Path selection + BV LP (ALGORITHMS.md §5.2) with explicit coverage constraints.

    Variables: selection law ``Qg(s)`` over the possible full paths ``s`` (depth L) and prefix
    masses ``A(u)``; rows ``sum Qg = 1``, ``Qg(S) <= Pr[some drafted path in S]`` for every set S
    of paths, ``A(u) <= sum_{s extends u} Qg(s)``, ``A(u+x) <= p(x|u) A(u)``. Needs at most
    ``max_paths`` possible full paths (``2^max_paths`` coverage rows).
    """
    t0 = time.perf_counter()
    groups, n_trees = tree_groups(model, scheme)
    L = scheme.depth
    paths = _items_at(groups, L)
    if len(paths) > max_paths:
        raise _too_many("path_selection_bound", len(paths), max_paths, scheme)
    prefixes = [u for d in range(1, L + 1) for u in _items_at(groups, d)]
    index = {u: i for i, u in enumerate(prefixes)}
    na, ns = len(prefixes), len(paths)
    n = ns + na  # x = [Qg(paths), A(prefixes)]
    rows, cols, vals, rhs = [], [], [], []
    _prefix_rows(model, prefixes, index, ns, n, rows, cols, vals, rhs)
    for u in prefixes:  # A(u) - sum_{s extends u} Qg(s) <= 0
        i = len(rhs)
        rows.append(i), cols.append(ns + index[u]), vals.append(1.0)
        for j, s in enumerate(paths):
            if s[: len(u)] == u:
                rows.append(i), cols.append(j), vals.append(-1.0)
        rhs.append(0.0)
    A_ub = [sp.csr_matrix((vals, (rows, cols)), shape=(len(rhs), n))]
    b_ub = [np.array(rhs)]
    if ns:
        hit = _hit_probabilities(groups, paths, L)
        A_ub.append(_subset_rows(ns, 0, n))
        b_ub.append(hit[1:])
    A_eq = sp.csr_matrix((np.ones(ns), (np.zeros(ns, dtype=int), np.arange(ns))), shape=(1, n))
    c = np.concatenate([np.zeros(ns), np.ones(na)])
    lp = build(f"path_selection({model.name}, {scheme.name})", c, A_eq=A_eq if ns else None,
               b_eq=np.ones(1) if ns else None, A_ub=sp.vstack(A_ub).tocsr(), b_ub=np.concatenate(b_ub),
               upper=np.ones(n))
    sol = solve(lp) if n else _trivial(lp)
    acceptance = {(): 1.0}
    acceptance.update({u: float(sol.x[ns + index[u]]) for u in prefixes})
    selection = {s: float(max(sol.x[j], 0.0)) for j, s in enumerate(paths)}
    return _bound("path_selection", model, scheme, sol, t0, acceptance, {"selection": selection}, n_trees)
