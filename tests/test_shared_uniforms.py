"""Issue 14, item 4: shared and quantised uniforms, enumerated exactly.

``rng.uniform(key)`` is one uniform a verifier compares with several thresholds; the exact
enumerator splits its interval at every threshold. ``rng.uniform(key, bits=b)`` is a quantised
uniform with ``2^b`` values. Two kernels written naturally against these (one uniform shared by
every position of a block rule; a cumulative-product rule on quantised uniforms) are checked in
rational mode against an independent closed form and a brute force over the uniforms' values.
"""
from __future__ import annotations

import itertools
from fractions import Fraction as F

import numpy as np
import pytest

from specoracle import drafting, examples, exact
from specoracle.errors import SpecoracleError
from specoracle.instance import Instance, Outcome
from specoracle.randomness import Coupled, Fixed, Sampling, enumerate_law
from specoracle.tree import Tree


def _chain(inst):
    nodes, u = [0], 0
    while inst.tree.children[u]:
        u = inst.tree.children[u][0]
        nodes.append(u)
    return nodes


def _ratio(inst, parent, x):
    r = inst.p[parent][x] / inst.q[parent][x]
    return r if r < 1 else r * 0 + 1


def one_shared_uniform(inst, rng):
    """Accept position i while u < min(1, p/q) with the SAME u at every position (a shipped bug)."""
    nodes = _chain(inst)
    u = rng.uniform("u")
    for parent, child in zip(nodes, nodes[1:]):
        if not u < _ratio(inst, parent, inst.tree.tokens[child]):
            return Outcome(parent, rng.categorical(inst.p[parent], ("residual", parent)))
    return Outcome(nodes[-1], rng.categorical(inst.p[nodes[-1]], ("residual", nodes[-1])))


def cumulative_product(inst, rng, bits=3):
    """Accept position i while prod_{j<=i} u_j < prod_{j<=i} r_j on quantised uniforms."""
    nodes = _chain(inst)
    lhs = rhs = 1
    for i, (parent, child) in enumerate(zip(nodes, nodes[1:])):
        lhs = lhs * rng.uniform(("u", i), bits=bits)
        rhs = rhs * _ratio(inst, parent, inst.tree.tokens[child])
        if not lhs < rhs:
            return Outcome(parent, rng.categorical(inst.p[parent], ("residual", parent)))
    return Outcome(nodes[-1], rng.categorical(inst.p[nodes[-1]], ("residual", nodes[-1])))


def _tau_law(verifier, inst) -> dict:
    law: dict = {}
    for o, pr in exact.tree_law(verifier, inst, rational=True).items():
        law[inst.tree.depths[o.node]] = law.get(inst.tree.depths[o.node], 0) + pr
    return law


CHAINS = [(0, 1, 2), (1, 1, 0), (2, 0, 0), (1, 2, 1)]


@pytest.mark.parametrize("path", CHAINS)
def test_one_uniform_shared_by_every_position_matches_its_closed_form(path):
    # closed form: Pr[tau >= i] = min(r_1..r_i) for one uniform u
    inst = Instance.from_model(examples.E2(rational=True), Tree.from_paths([path]))
    nodes = _chain(inst)
    r = [_ratio(inst, a, inst.tree.tokens[b]) for a, b in zip(nodes, nodes[1:])]
    at_least = [F(1)] + [min(r[:i]) for i in range(1, len(r) + 1)] + [F(0)]
    expected = {i: at_least[i] - at_least[i + 1] for i in range(len(r) + 1) if at_least[i] - at_least[i + 1]}
    assert _tau_law(one_shared_uniform, inst) == expected


@pytest.mark.parametrize("path", CHAINS)
def test_cumulative_product_on_quantised_uniforms_matches_brute_force(path):
    inst = Instance.from_model(examples.E2(rational=True), Tree.from_paths([path]))
    nodes = _chain(inst)
    r = [_ratio(inst, a, inst.tree.tokens[b]) for a, b in zip(nodes, nodes[1:])]
    expected: dict = {}
    for ks in itertools.product(range(8), repeat=len(r)):  # every value of every uniform
        lhs = rhs = F(1)
        tau = len(r)
        for i, k in enumerate(ks):
            lhs, rhs = lhs * F(k, 8), rhs * r[i]
            if not lhs < rhs:
                tau = i
                break
        expected[tau] = expected.get(tau, 0) + F(1, 8 ** len(r))
    assert _tau_law(cumulative_product, inst) == expected


def test_whole_scheme_exact_with_shared_uniforms():
    # the one-uniform rule is lossy (positions are not independent), the engine says by how much,
    # and its float and rational laws agree
    rat = exact.evaluate(one_shared_uniform, examples.E2(rational=True), drafting.chain(2), rational=True)
    flt = exact.evaluate(one_shared_uniform, examples.E2(), drafting.chain(2))
    assert rat.max_error > 0 and not rat.lossless
    assert abs(float(rat.max_error) - flt.max_error) < 1e-12
    assert sum(rat.block_law.values()) == 1


def test_sampling_coupled_fixed_give_floats():
    u = Sampling(0).uniform("a")
    assert isinstance(u, float) and 0 <= u < 1
    c = Coupled([0.7, 0.3], ["a", "b"])
    assert c.uniform("a", bits=2) == 0.5 and c.uniform("b") == 0.3
    assert Fixed({"a": 0.9}).uniform("a", bits=1) == 0.5
    # E2, path (0, 1): r1 = min(1, .5/.3) = 1, r2 = .2/.6 = 1/3; residual uniforms 0.5
    inst = Instance.from_model(examples.E2(), Tree.from_paths([(0, 1)]))
    layout = ["u", ("residual", 0), ("residual", 1), ("residual", 2)]
    assert one_shared_uniform(inst, Coupled([0.99, 0.5, 0.5, 0.5], layout)) == Outcome(1, 0)  # p(0,) = (.6,.2,.2)
    assert one_shared_uniform(inst, Coupled([0.2, 0.5, 0.5, 0.5], layout)) == Outcome(2, 1)  # p = (.4,.3,.3)


@pytest.mark.parametrize("expr", [lambda u: u * u, lambda u: float(u), lambda u: bool(u), lambda u: u == 0.5],
                         ids=["product", "float", "bool", "eq"])
def test_unsplittable_uses_are_refused_with_the_fix(expr):
    with pytest.raises(SpecoracleError, match="bits=8"):
        enumerate_law(lambda r: expr(r.uniform("u")))


def test_bad_bits_refused():
    with pytest.raises(SpecoracleError, match="1..16"):
        Sampling(0).uniform("a", bits=0)


def test_a_uniform_that_cannot_be_split_falls_back_to_chi2_and_says_why():
    """u * u (a product of the same uniform) is not affine: exact refuses it naming bits=8; ``auto``
    falls back to chi-squared and records why in the verdict's notes (issue 14.4)."""
    from specoracle import Outcome, check_lossless
    from specoracle.randomness import UniformNotSplittable

    def squared_coin(inst, rng):
        x = inst.tree.tokens[1]
        u = rng.uniform(("accept", 1))
        if u * u < min(1.0, inst.p[0][x] / inst.q[0][x]) ** 2:  # u^2 < r^2 <=> u < r: lossless, not affine
            return Outcome(1, int(rng.categorical(inst.p[1], ("residual", 1))))
        resid = np.maximum(np.asarray(inst.p[0]) - np.asarray(inst.q[0]), 0)
        return Outcome(0, int(rng.categorical(resid / resid.sum(), ("residual", 0))))

    with pytest.raises(UniformNotSplittable, match="bits=8"):
        check_lossless(squared_coin, "E1", "chain(1)", method="exact")
    v = check_lossless(squared_coin, "E1", "chain(1)", n=4000, seed=1)
    assert v.kind == "statistical" and v.status == "lossless", v.summary()
    assert any("fell back to chi-squared" in n and "bits=8" in n for n in v.notes)
