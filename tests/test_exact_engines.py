"""Issue 16: the fast exact engine equals the reference engine (the slow oracle).

Every registered verifier, mutant and true negative: identical laws (to 1e-12 in float, identical
Fractions in rational mode), on small models so the file stays fast; the sweep over larger random
models is marked ``slow``. Each ``draw_order_invariant`` declaration is checked order by order,
and the executor interface (processes, or any object with ``map``) gives the same law.
"""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from specoracle import drafting, enumeration, examples, exact, models, mutants, registry
from specoracle.instance import Instance
from specoracle.tree import Tree

SCHEMES = ("chain(2)", "iid(2,2)", "delayed(2,1,1)", "wor(2,1)")
ONE_STEP = [e.name for e in registry.entries() if not e.stateful]
STATEFUL = [e.name for e in registry.entries() if e.stateful]
RATIONAL = [e.name for e in registry.entries() if e.rational and not e.stateful]
CATALOG = {m.name: m for m in list(mutants.catalog()) + list(mutants.true_negatives())}


def _cases(names, schemes):
    out = []
    for name in names:
        entry = registry.get(name)
        out += [(name, s) for s in schemes if entry.accepts(drafting.parse_scheme(s))]
    return out


def assert_same_law(a: dict, b: dict, rational: bool) -> None:
    keys = set(a) | set(b)
    if rational:
        assert {k: v for k, v in a.items() if v} == {k: v for k, v in b.items() if v}
    else:
        worst = max(abs(a.get(k, 0) - b.get(k, 0)) for k in keys)
        assert worst <= 1e-12, worst


def _both(verifier, model, scheme, rational=False, **kw):
    ref = exact.evaluate(verifier, model, scheme, rational=rational, engine="reference")
    fast = exact.evaluate(verifier, model, scheme, rational=rational, **kw)
    return ref, fast


@pytest.mark.parametrize("name, scheme", _cases(ONE_STEP, SCHEMES), ids=lambda x: str(x))
def test_fast_equals_reference_float(name, scheme):
    # E3: V=2, context-dependent rows, so every prefix of the tree has its own laws
    ref, fast = _both(name, examples.E3(), drafting.parse_scheme(scheme))
    assert_same_law(ref.block_law, fast.block_law, False)
    assert abs(ref.max_error - fast.max_error) <= 1e-12
    assert abs(ref.fallback_mass - fast.fallback_mass) <= 1e-12


@pytest.mark.parametrize("name", RATIONAL)
def test_fast_equals_reference_rational(name):
    scheme = next(drafting.parse_scheme(s) for s in ("iid(2,2)", "chain(2)") if registry.get(name).accepts(drafting.parse_scheme(s)))
    ref, fast = _both(name, examples.E3(rational=True), scheme, rational=True)
    assert_same_law(ref.block_law, fast.block_law, True)
    assert ref.max_error == fast.max_error and ref.block_efficiency == fast.block_efficiency


@pytest.mark.parametrize("name", [n for n in ONE_STEP if registry.get(n).top_down and registry.get(n).accepts("iid")])
def test_top_down_composition_with_three_draws(name):
    # multiplicities up to 3 at a node and two levels of subtrees: the memoised composition
    ref, fast = _both(name, models.random_model(3, seed=4), drafting.iid(3, 1))
    assert_same_law(ref.block_law, fast.block_law, False)
    ref, fast = _both(name, examples.E2(), drafting.delayed(2, 1, 1))
    assert_same_law(ref.block_law, fast.block_law, False)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_fast_equals_reference_on_mutants(name):
    m = CATALOG[name]
    scheme = drafting.parse_scheme(m.scheme)
    ref, fast = _both(m.verify, examples.E3(), scheme)
    assert_same_law(ref.block_law, fast.block_law, False)
    assert ref.lossless == fast.lossless


@pytest.mark.parametrize("name", STATEFUL)
def test_sequence_law_engines_agree(name):
    for scheme in (drafting.chain(1), drafting.iid(2, 1)):
        a = exact.sequence_law(name, examples.E3(), scheme, 3, engine="reference")
        b = exact.sequence_law(name, examples.E3(), scheme, 3)
        assert abs(a.law - b.law).max() <= 1e-12
        assert abs(a.tokens_per_call - b.tokens_per_call) <= 1e-12
    # E2 rows are equal at every context of >= 2 tokens: calls are memoised across contexts, and
    # the states (whose __eq__ ignores the rows they carry) must not be confused
    a = exact.sequence_law(name, examples.E2(), drafting.chain(1), 4, engine="reference")
    b = exact.sequence_law(name, examples.E2(), drafting.chain(1), 4)
    assert abs(a.law - b.law).max() <= 1e-12


def test_sequence_law_rational_identical():
    a = exact.sequence_law("specinfer", examples.E3(rational=True), drafting.iid(2, 1), 3, rational=True,
                           engine="reference")
    b = exact.sequence_law("specinfer", examples.E3(rational=True), drafting.iid(2, 1), 3, rational=True)
    assert (a.law == b.law).all() and a.tokens_per_call == b.tokens_per_call


@pytest.mark.parametrize("name", [e.name for e in registry.entries() if e.draw_order_invariant])
def test_draw_order_invariance_declarations_hold(name):
    # the declaration itself: every order of every multiset of i.i.d. paths gives one block law
    model = models.random_model(3, seed=3)
    for k, L in ((3, 1), (2, 2)):
        paths = list(itertools.product(range(3), repeat=L))
        for combo in itertools.combinations_with_replacement(paths, k):
            laws = []
            for order in sorted(set(itertools.permutations(combo))):
                inst = Instance.from_model(model, Tree.from_paths(list(order)))
                law: dict = {}
                for o, pr in exact.tree_law(name, inst).items():
                    law[inst.block(o)] = law.get(inst.block(o), 0) + pr
                laws.append(law)
            for other in laws[1:]:
                assert_same_law(laws[0], other, False)


def test_multiset_enumeration_weights():
    # multisets weighted by their orders carry the same mass per tree shape as all orders
    model = examples.E2(rational=True)
    full = list(enumeration.iid_trees(model, drafting.iid(3, 1)))
    multi = list(enumeration.iid_trees(model, drafting.iid(3, 1), multisets=True))
    assert len(full) == 27 and len(multi) == 10
    assert sum(p for _, p in full) == sum(p for _, p in multi) == 1
    ref = {t: p for t, p in drafting.iid(3, 1).enumerate(model)}
    assert {t: p for t, p in full} == ref  # direct enumeration: the trees and Fractions of drafting


def test_executors_give_the_same_law():
    model, scheme = examples.E3(), drafting.iid(2, 2)
    serial = exact.evaluate("traversal", model, scheme)
    with ThreadPoolExecutor(2) as pool:  # any object with map(): the cluster interface
        threaded = exact.evaluate("traversal", model, scheme, workers=pool)
    processes = exact.evaluate("traversal", model, scheme, workers=2)
    assert_same_law(serial.block_law, threaded.block_law, False)
    assert_same_law(serial.block_law, processes.block_law, False)
    assert serial.n_trees == threaded.n_trees == processes.n_trees == 16


@pytest.mark.slow
@pytest.mark.parametrize("name, scheme", _cases(ONE_STEP, ("iid(3,2)", "delayed(3,1,1)", "wor(2,2)")),
                         ids=lambda x: str(x))
def test_fast_equals_reference_larger(name, scheme):
    ref, fast = _both(name, models.random_model(3, seed=7), drafting.parse_scheme(scheme))
    assert_same_law(ref.block_law, fast.block_law, False)


def test_estimates_follow_the_fast_engine():
    from specoracle.check import AUTO_EXACT_SECONDS, estimate_exact, exact_work

    m, big = models.random_model(4, seed=1), drafting.iid(3, 3)
    # a top-down verifier at V=4 iid(3,3) is now within the auto budget; a plain callable is not
    assert estimate_exact(m, big, verifier="specinfer").seconds <= AUTO_EXACT_SECONDS
    assert estimate_exact(m, big, verifier=registry.get("specinfer").reference).seconds > AUTO_EXACT_SECONDS
    # multisets: C(64 + 2, 3) = 45,760 trees instead of 64^3
    per_tree = exact_work(m, big, verifier="gbv") / 45760
    assert abs(per_tree * 64**3 - exact_work(m, big, verifier="traversal")) < 1e-6 * exact_work(m, big, verifier="traversal")
    # the top-down path verifies 27 root triples, then one leaf per (token, multiplicity 1..3)
    r = exact.evaluate("specinfer", models.random_model(3, seed=1), drafting.iid(3, 1))
    assert r.n_trees == 27 + 3 * 3


def test_engine_instances_equal_validated_instances():
    # the fast engine builds trees and instances without re-validating; every one it hands a
    # verifier must equal the validated construction from the model
    model, seen = models.random_model(3, seed=5), []

    def spy(inst, rng):
        seen.append(inst)
        return registry.get("traversal").reference(inst, rng)

    exact.evaluate(spy, model, drafting.delayed(2, 1, 1))
    assert len(seen) >= 27
    for inst in seen:
        ref = Instance.from_model(model, Tree(inst.tree.tokens, inst.tree.parents, inst.tree.draws,
                                              inst.tree.sampling, inst.tree.trunk))
        assert ref.tree == inst.tree and (ref.p == inst.p).all() and (ref.q == inst.q).all()
        assert not inst.p.flags.writeable and not inst.q.flags.writeable
