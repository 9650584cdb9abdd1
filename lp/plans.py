"""Per-level OT plans and verifiers that execute LP solutions (ALGORITHMS-2.md §1.4, §8;
ALGORITHMS.md §7).

A :class:`NodePlan` is the maximal coupling at one node ``u`` between the ``m`` draws at ``u`` (law
``D`` on tuples: i.i.d. from ``q_u`` or without replacement) and the augmented target
``p~ = (w p_u, 1 - w)`` (``⊥`` last; ``w`` is the prefix acceptance probability used as a scaling
factor, ``w = 1`` for plain top-down OT). A verifier never executes the raw LP plan: following the
§1.4 lemma it keeps only the *member* part ``f[d, y]`` (``y in set(d)``), repaired so that rows sum
to at most ``D(d)`` and the member mass ``m(y) = sum_d f[d, y] <= p~(y)``, and samples every
rejection from ONE global residual ``norm(p~ - m)``. Losslessness then holds exactly, whatever the
solver's rounding (the value loses at most the rounding).

Executors (all ``verify(instance, rng) -> Outcome``, float mode, run by the exact engine):

- :func:`plan_verifier` ``(plans)``: top-down OT with the plans of :func:`level_plans`
  (``w = 1``): at node ``u`` with draws ``d`` pick member ``y`` w.p. ``f[d, y] / D(d)`` and descend
  to child ``y`` (key ``("select", u)``); otherwise stop and draw the correction from the global
  residual (key ``("residual", u)``); at a leaf draw the bonus from ``p_u``. This is the optimal
  per-node OT ("ot_optimal" style) verifier. [DER]
- :func:`conditional_verifier` ``(model, scheme)``: the lifted composition of ALGORITHMS.md §7.1
  with optimal conditional plans: ``LIFT(u, w)`` solves the plan for ``(w p_u, 1 - w)``, tests the
  distinct members of ``d`` in increasing token order, the ``j``-th with conditional probability
  ``a_j = f[d, y_j] / (D(d) - sum_{i<j} f[d, y_i])``, each test realised by ``LIFT(child, a_j)``
  (a subtree of weight ``a`` returns non-``⊥`` with probability exactly ``a``), then draws the
  global residual (``⊥`` returns ``⊥`` to the parent). "Prefix acceptance probabilities as dynamic
  scaling factors" in UniVer's words; this composition is OUR construction (UniVer's own
  algorithm is unconfirmed, ALGORITHMS.md §14.4).
- :func:`universal_verifier` ``(model, scheme)``: executes the optimal plan of
  :func:`specoracle.lp.universal_bound`: pick the accepted node ``v`` of the tree with the plan's
  kernel ``Pr[v | N(T)]`` (key ``("select", 0)``), then the correction at ``v`` from the global
  law ``norm((A(v) p_v - A(v + .))_+)`` (key ``("residual", v)``), where ``A`` are the aggregated
  prefix acceptances. Lossless iff ``A(u+x) <= p(x|u) A(u)`` (node form, ALGORITHMS.md §10.3);
  the kernel is repaired top-down (mass below an over-full child moved up to its parent) so this
  holds exactly. Its efficiency equals the LP optimum up to the solver's rounding.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from specoracle.errors import InvalidInstance
from specoracle.instance import Instance, Outcome

from .bounds import _check_model, _check_scheme, tree_groups, universal_bound
from .coupling import Coupling, augment, coupling

__all__ = [
    "NodePlan",
    "LevelPlans",
    "node_plan",
    "level_plans",
    "plan_verifier",
    "conditional_verifier",
    "universal_verifier",
]


@dataclass(frozen=True)
class NodePlan:
    """The executable plan at one node (see module docstring).

    Attributes
    ----------
    prefix : the node's prefix ``u``; ``k`` draws (``replacement`` True for i.i.d.).
    weight : ``w``; ``target`` [V+1] = ``(w p_u, 1 - w)``; ``draft`` [V] = ``q_u``.
    tuples : T draft tuples (ordered, as drawn); ``draft_probs`` [T] = ``D(d)``.
    members : [T, V] repaired member plan ``f[d, y]`` (0 unless ``y in set(d)``).
    member_mass : [V] ``m(y) = sum_d f[d, y] <= target[y]``.
    residual : [V+1] global residual law ``norm(target - m)`` (zeros if its mass is 0).
    value : membership mass ``sum m`` of the executed plan; ``lp_value``: the LP optimum.
    coupling : the full :class:`~specoracle.lp.coupling.Coupling` (LP solution and report).
    """

    prefix: tuple
    k: int
    replacement: bool
    weight: float
    target: np.ndarray
    draft: np.ndarray
    tuples: tuple
    draft_probs: np.ndarray
    members: np.ndarray
    member_mass: np.ndarray
    residual: np.ndarray
    value: float
    lp_value: float
    coupling: Coupling = field(repr=False)
    _rows: dict = field(repr=False, compare=False, default_factory=dict)

    def row(self, d: tuple) -> int:
        """Index of the draft tuple ``d`` (raises if ``d`` has probability 0 under the plan's law)."""
        try:
            return self._rows[d]
        except KeyError:
            raise InvalidInstance(
                f"draws {d} at prefix {self.prefix} have probability 0 under the plan's draft law "
                f"({self.k} {'i.i.d.' if self.replacement else 'without-replacement'} draws): "
                "the tree was not drafted by the scheme the plans were built for"
            ) from None


def _repair(cp: Coupling, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Member plan with rows <= D(d) and member mass <= target (ALGORITHMS-2.md §1.4)."""
    V = cp.V
    f = np.maximum(cp.member_plan(), 0.0)
    over = f.sum(axis=1) / np.maximum(cp.draft_probs, 1e-300)
    scale = np.where(over > 1.0, 1.0 / np.maximum(over, 1e-300), 1.0)
    f *= scale[:, None]
    m = f.sum(axis=0)
    col = np.where(m > target[:V], target[:V] / np.maximum(m, 1e-300), 1.0)
    f *= col[None, :]
    m = f.sum(axis=0)
    res = np.maximum(target - np.append(m, 0.0), 0.0)
    tot = res.sum()
    return f, m, (res / tot if tot > 0 else np.zeros_like(res))


def node_plan(p, q, k: int, *, weight: float = 1.0, replacement: bool = True, prefix: tuple = ()) -> NodePlan:
    """Solve and repair the conditional OT plan at one node (``p``, ``q`` of shape [V])."""
    target = augment(p, weight)
    cp = coupling(target, q, k, replacement)
    f, m, res = _repair(cp, target)
    return NodePlan(
        prefix=tuple(prefix),
        k=int(k),
        replacement=bool(replacement),
        weight=float(weight),
        target=target,
        draft=cp.q,
        tuples=cp.tuples,
        draft_probs=cp.draft_probs,
        members=f,
        member_mass=m,
        residual=res,
        value=float(m.sum()),
        lp_value=cp.value,
        coupling=cp,
        _rows={d: i for i, d in enumerate(cp.tuples)},
    )


@dataclass(frozen=True)
class LevelPlans:
    """Top-down OT plans for every internal node of every tree of a scheme (``w = 1``).

    Attributes
    ----------
    model, scheme : labels.
    plans : ``{(prefix, m): NodePlan}`` for every prefix ``u`` that is an internal node of some
        tree and every draw count ``m`` at ``u`` that occurs.
    expected_accepted : exact E[tau] of :func:`plan_verifier` on this scheme (branching
        probabilities averaged over the tree law, DDTE Eq. 3 style); ``block_efficiency`` = +1.
    n_variables, n_constraints : summed over the node LPs; ``seconds`` total build + solve time.
    """

    model: str
    scheme: str
    sampling: str
    plans: dict = field(repr=False)
    expected_accepted: float
    n_variables: int
    n_constraints: int
    seconds: float

    @property
    def block_efficiency(self) -> float:
        return self.expected_accepted + 1.0

    def get(self, prefix: tuple, m: int) -> NodePlan:
        """The plan at ``prefix`` for ``m`` draws (raises if the scheme never produces it)."""
        try:
            return self.plans[(tuple(prefix), int(m))]
        except KeyError:
            raise InvalidInstance(
                f"no level plan for prefix {tuple(prefix)} with {m} draws in scheme {self.scheme}"
            ) from None


def _floats(v) -> np.ndarray:
    return np.asarray([float(x) for x in v], dtype=np.float64)


def level_plans(model, scheme) -> LevelPlans:
    """Per-node optimal OT plans (``w = 1``) for every node and draw count of ``scheme``'s trees.

    The plans are what :func:`plan_verifier` executes; ``expected_accepted`` is that verifier's exact
    E[tau]: ``sum_T pr_T sum_{c != root} Pr[reach c | T]`` with
    ``Pr[reach child y of u] = Pr[reach u] f_u[d, y] / D_u(d)``.
    """
    _check_model(model)
    _check_scheme(scheme)
    t0 = time.perf_counter()
    trees = scheme.enumerate(model)
    plans: dict[tuple, NodePlan] = {}
    sampling = "without_replacement" if scheme.kind == "without_replacement" else "iid"
    total = 0.0
    for tree, pr in trees:
        reach = np.zeros(tree.size)
        reach[0] = 1.0
        for u in range(tree.size):  # pre-order: parents first
            draws = tree.draws[u]
            if not draws:
                continue
            key = (tree.prefixes[u], len(draws))
            if key not in plans:
                plans[key] = node_plan(_floats(model.p(key[0])), _floats(model.q(key[0])), len(draws),
                                       replacement=tree.sampling == "iid", prefix=key[0])
            plan = plans[key]
            d = tuple(tree.tokens[c] for c in draws)
            i = plan.row(d)
            for y in set(d):
                reach[tree.child(u, y)] += reach[u] * plan.members[i, y] / plan.draft_probs[i]
        total += float(pr) * float(reach[1:].sum())
    return LevelPlans(
        model=model.name,
        scheme=scheme.name,
        sampling=sampling,
        plans=plans,
        expected_accepted=total,
        n_variables=sum(pl.coupling.n_variables for pl in plans.values()),
        n_constraints=sum(pl.coupling.n_constraints for pl in plans.values()),
        seconds=time.perf_counter() - t0,
    )


def plan_verifier(plans: LevelPlans):
    """Top-down verifier executing ``plans`` (see module docstring); lossless by §1.4 per node."""

    def verify(instance: Instance, rng) -> Outcome:
        tree = instance.tree
        node = 0
        while True:
            draws = tree.draws[node]
            if not draws:
                return Outcome(node, rng.categorical(_floats(instance.p[node]), ("residual", node)))
            plan = plans.get(tree.prefixes[node], len(draws))
            d = tuple(tree.tokens[c] for c in draws)
            i = plan.row(d)
            members = sorted(set(d))
            probs = [plan.members[i, y] / plan.draft_probs[i] for y in members]
            probs.append(max(0.0, 1.0 - sum(probs)))
            j = rng.categorical(np.array(probs), ("select", node))
            if j < len(members):
                node = tree.child(node, members[j])
                continue
            return Outcome(node, _draw_residual(plan, rng, node, instance))

    verify.__name__ = f"plan_verifier[{plans.scheme}]"
    return verify


def _draw_residual(plan: NodePlan, rng, node: int, instance: Instance) -> int | None:
    """Global residual draw; ``None`` for ``⊥``. A zero-mass residual is a probability-0 branch."""
    V = plan.draft.shape[0]
    if plan.residual.sum() <= 0:
        rng.fallback(("residual", node))
        return rng.categorical(_floats(instance.p[node]), ("residual", node))
    j = rng.categorical(plan.residual, ("residual", node))
    return None if j == V else j


def conditional_verifier(model, scheme):
    """Lifted composition of optimal conditional OT plans (see module docstring); float mode.

    Plans for ``(prefix, m, w)`` are solved on demand and cached on the returned function
    (attribute ``plans``).
    """
    _check_model(model)
    _check_scheme(scheme)
    cache: dict[tuple, NodePlan] = {}

    def plan_for(instance, node, m, w) -> NodePlan:
        tree = instance.tree
        key = (tree.prefixes[node], m, tree.sampling == "iid", w)
        if key not in cache:
            cache[key] = node_plan(_floats(instance.p[node]), _floats(instance.q[node]), m, weight=w,
                                   replacement=key[2], prefix=key[0])
        return cache[key]

    def lift(instance, rng, node: int, w: float):
        tree = instance.tree
        draws = tree.draws[node]
        V = instance.V
        if not draws:
            law = augment(_floats(instance.p[node]), w)
            j = rng.categorical(law, ("residual", node))
            return None if j == V else Outcome(node, j)
        plan = plan_for(instance, node, len(draws), w)
        d = tuple(tree.tokens[c] for c in draws)
        i = plan.row(d)
        remaining = plan.draft_probs[i]
        for y in sorted(set(d)):
            f = plan.members[i, y]
            a = f / remaining if remaining > 0 else 0.0
            remaining -= f
            if a <= 0:
                continue
            out = lift(instance, rng, tree.child(node, y), min(1.0, a))
            if out is not None:
                return out
        y = _draw_residual(plan, rng, node, instance)
        return None if y is None else Outcome(node, y)

    def verify(instance: Instance, rng) -> Outcome:
        out = lift(instance, rng, 0, 1.0)
        if out is None:  # impossible: the root has weight 1, so ⊥ has mass 0
            raise InvalidInstance("conditional_verifier: root returned the reject symbol (w = 1)")
        return out

    verify.__name__ = f"conditional_verifier[{scheme.name}]"
    verify.plans = cache
    return verify


def universal_verifier(model, scheme, bound=None):
    """Verifier executing the optimal plan of :func:`universal_bound` (see module docstring).

    Returns ``verify`` with attributes ``bound`` (the LP solution), ``acceptance`` (repaired
    ``A(u)``) and ``expected_accepted`` (``sum_{u != ()} A(u)``, its exact E[tau]).
    """
    if bound is None:
        bound = universal_bound(model, scheme)
    groups, _ = tree_groups(model, scheme)
    L = scheme.depth
    kernels: dict[frozenset, dict] = {}
    for nodes, pr in groups:
        key = frozenset(nodes)
        k = {v: 0.0 for v in nodes}
        for (v, _y), c in bound.solution.get(key, {}).items():
            k[v] += max(c, 0.0)
        tot = sum(k.values())
        kernels[key] = {v: (x / tot if tot > 0 else float(v == ())) for v, x in k.items()}
    prs = {frozenset(nodes): pr for nodes, pr in groups}
    p = {}

    def pvec(u):
        if u not in p:
            p[u] = _floats(model.p(u))
        return p[u]

    def aggregate() -> dict:
        A: dict[tuple, float] = {}
        for key, k in kernels.items():
            for v, x in k.items():
                w = prs[key] * x
                for i in range(len(v) + 1):
                    A[v[:i]] = A.get(v[:i], 0.0) + w
        return A

    for depth in range(1, L + 1):  # top-down repair: A(u+x) <= p(x|u) A(u)
        A = aggregate()
        for ux, a in A.items():
            if len(ux) != depth:
                continue
            cap = A.get(ux[:-1], 0.0) * pvec(ux[:-1])[ux[-1]]
            if a <= cap:
                continue
            f = cap / a
            for k in kernels.values():
                moved = 0.0
                for v in k:
                    if v[:depth] == ux and k[v] > 0:
                        moved += (1.0 - f) * k[v]
                        k[v] *= f
                if moved:
                    k[ux[:-1]] += moved
    A = aggregate()

    def correction(v):
        law = np.maximum(A.get(v, 0.0) * pvec(v) - np.array([A.get(v + (y,), 0.0) for y in range(model.V)]), 0.0)
        return law

    def verify(instance: Instance, rng) -> Outcome:
        tree = instance.tree
        key = frozenset(tree.prefixes)
        k = kernels.get(key)
        if k is None:
            raise InvalidInstance(
                f"universal_verifier: this tree's node set never occurs in {scheme.name} drafts of {model.name}"
            )
        nodes = list(range(tree.size))
        probs = np.array([k.get(tree.prefixes[n], 0.0) for n in nodes])
        node = nodes[rng.categorical(probs, ("select", 0))] if tree.size > 1 else 0
        law = correction(tree.prefixes[node])
        tot = law.sum()
        if tot <= 0:
            rng.fallback(("residual", node))
            return Outcome(node, rng.categorical(_floats(instance.p[node]), ("residual", node)))
        return Outcome(node, rng.categorical(law / tot, ("residual", node)))

    verify.__name__ = f"universal_verifier[{scheme.name}]"
    verify.bound = bound
    verify.acceptance = A
    verify.expected_accepted = float(sum(a for u, a in A.items() if u))
    return verify
