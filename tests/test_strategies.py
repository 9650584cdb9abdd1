"""specoracle.strategies: valid by construction, near-degenerate cases reachable, shrinking to the
simplest case, and usable as the input of a property test with an independent truth."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from specoracle import exact
from specoracle import strategies as sos
from specoracle.drafting import KINDS, chain
from specoracle.errors import InvalidArgument
from specoracle.instance import Instance, validate_distribution
from specoracle.randomness import enumerate_law
from specoracle.reference.chain import naive


@given(sos.distributions(V=st.integers(1, 6)))
def test_distributions_are_valid(p):
    validate_distribution(p)  # raises on any violation
    assert abs(p.sum() - 1) < 1e-15


@given(sos.distributions(V=4, rational=True))
def test_rational_distributions_sum_to_exactly_one(p):
    assert all(isinstance(x, Fraction) for x in p) and sum(p) == 1


@given(sos.distributions(V=5, full_support=True))
def test_full_support(p):
    assert np.all(p > 0)


def test_near_degenerate_cases_are_reachable():
    # each boundary case is found by search: they are in the strategy's space on purpose
    one_hot = find(sos.distributions(V=4), lambda p: np.count_nonzero(p) == 1)
    assert sorted(one_hot.tolist()) == [0, 0, 0, 1]
    tiny = find(sos.distributions(V=3), lambda p: 0 < p.min() < 1e-9)
    assert tiny.max() > 1 - 1e-9
    same = find(sos.distribution_pairs(V=3), lambda pq: np.array_equal(*pq) and np.count_nonzero(pq[0]) > 1)
    assert np.array_equal(same[0], same[1])
    gap = find(sos.distribution_pairs(V=3), lambda pq: np.any((pq[1] == 0) & (pq[0] > 0)))
    assert np.any((gap[1] == 0) & (gap[0] > 0))


def test_shrinks_to_the_simplest_case():
    # the minimal example of "any distribution" is the uniform law; of "any tree" a depth-1 path
    p = find(sos.distributions(V=4), lambda p: True)
    assert p.tolist() == [0.25] * 4
    t = find(sos.trees(V=3), lambda t: True)
    assert t.size == 2 and t.is_chain()
    s = find(sos.schemes(), lambda s: True)
    assert s == chain(1)


@settings(max_examples=15)
@given(sos.instances(V=st.integers(2, 4), max_depth=2, max_k=2))
def test_instances_are_valid(inst):
    assert isinstance(inst, Instance)
    for c in range(1, inst.N):
        assert inst.q[inst.tree.parents[c]][inst.tree.tokens[c]] > 0


@settings(max_examples=10)
@given(sos.instances(V=3, rational=True, sampling="without_replacement"))
def test_rational_wor_instances(inst):
    assert inst.rational and inst.tree.sampling == "without_replacement"


@settings(max_examples=15)
@given(sos.schemes(max_depth=2, max_k=2))
def test_schemes_enumerate_to_probability_one(s):
    assert s.kind in KINDS and 1 <= s.depth <= 2
    from specoracle.examples import E3

    law = s.enumerate(E3())
    assert abs(sum(pr for _, pr in law) - 1) < 1e-12


@settings(max_examples=10)
@given(sos.models(V=st.integers(2, 3), rational=True))
def test_naive_is_exactly_lossless_on_drawn_models(model):
    # independent truth: the exact rational extended law equals the target law entry by entry
    r = exact.evaluate("naive", model, chain(2), rational=True)
    assert r.max_error == 0


@settings(max_examples=15)
@given(sos.instances(V=st.integers(2, 4), max_depth=2, sampling="iid").filter(lambda i: i.tree.is_chain()))
def test_naive_one_step_law_on_a_chain_instance_is_a_law(inst):
    law, fallback = enumerate_law(lambda r: naive(inst, r))
    assert abs(sum(pr for _, pr in law) - 1) < 1e-12


def test_bad_arguments_raise():
    with pytest.raises(InvalidArgument):
        sos.distributions(V=0)
    with pytest.raises(InvalidArgument, match="kinds"):
        find(sos.schemes(kinds=("chain", "tree")), lambda s: True)
