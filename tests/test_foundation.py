"""Models, trees, drafting schemes, the randomness protocol, the registry and the exact engine."""
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specoracle import InvalidInstance, Tree, TreeBuilder, UnknownName, drafting, examples, exact, models, registry
from specoracle.errors import InvalidArgument
from specoracle.randomness import Coupled, KeyReuseError, Sampling, categorical_from_uniform, enumerate_law
from specoracle.stats import chi2_gof


# --- models ----------------------------------------------------------------------------------
def test_random_model_divergence_zero_gives_q_equal_p():
    m = models.random_model(4, 3, divergence=0.0)
    for u in [(), (0,), (2, 1)]:
        np.testing.assert_array_equal(m.p(u), m.q(u))


def test_random_model_is_deterministic_and_context_dependent():
    a, b = models.random_model(3, 9), models.random_model(3, 9)
    np.testing.assert_array_equal(a.p((1, 2)), b.p((1, 2)))
    assert not np.allclose(a.p(()), a.p((0,)))
    assert not np.allclose(a.p(()), models.random_model(3, 10).p(()))


def test_joint_probabilities():
    m = examples.E2(rational=True)
    assert m.P((1, 0)) == F(3, 10) * F(1, 10)
    assert m.Q((1, 0)) == F(5, 10) * F(3, 10)
    law = m.target_law(2)
    assert law.shape == (3, 3) and sum(law.reshape(-1)) == 1


def test_ngram_pair_on_stdlib_text():
    m = models.ngram_pair(vocab=5, target_order=3, draft_order=1)
    assert m.V == 5 and len(m.token_names) == 5
    for u in [(), (0,), (1, 2), (4, 4, 4)]:
        assert m.p(u).sum() == pytest.approx(1) and (m.p(u) > 0).all()
        assert m.q(u).sum() == pytest.approx(1)
    # the unigram draft ignores context, the trigram target does not
    np.testing.assert_array_equal(m.q((0,)), m.q((3,)))
    assert not np.allclose(m.p((0, 1)), m.p((3, 1)))


def test_ngram_pair_prompt_and_vocab_string():
    m = models.ngram_pair("abcabcabd", 2, 1, vocab="abc", prompt=(0,))
    assert m.token_names == ["a", "b", "c", "<other>"]
    # after 'a' the bigram target says 'b' (add-0.5 smoothing: (3 + .5) / (3 + 2))
    assert m.p(())[1] == pytest.approx(3.5 / 5.0)


def test_temperature_topk_topp():
    m = models.context_free([0.5, 0.3, 0.2], [0.2, 0.3, 0.5])
    cold = models.temperature(m, 0.5)
    expected = np.array([0.25, 0.09, 0.04]) / 0.38
    np.testing.assert_allclose(cold.p(()), expected)
    np.testing.assert_allclose(models.temperature(m, 1.0).q(()), m.q(()))
    k2 = models.top_k(m, 2)
    np.testing.assert_allclose(k2.p(()), [0.625, 0.375, 0.0])
    np.testing.assert_allclose(k2.q(()), [0.0, 0.375, 0.625])
    nucleus = models.top_p(m, 0.75)
    np.testing.assert_allclose(nucleus.p(()), [0.625, 0.375, 0.0])
    draft_only = models.temperature(m, 0.5, side="draft")
    np.testing.assert_array_equal(draft_only.p(()), m.p(()))
    with pytest.raises(UnknownName, match="Did you mean 'draft'"):
        models.temperature(m, 0.5, side="drafts")
    with pytest.raises(InvalidInstance, match="temperature must be > 0"):
        models.temperature(m, 0.0)


def test_model_rejects_bad_vectors():
    m = models.ToyModel(3, lambda u: [0.5, 0.5], lambda u: [1 / 3] * 3)
    with pytest.raises(InvalidInstance, match=r"shape \(2,\), expected \(3,\)"):
        m.p(())
    with pytest.raises(InvalidInstance, match="V must be >= 1"):
        models.ToyModel(0, lambda u: [], lambda u: [])


def test_rationalize_keeps_rows_exact():
    r = models.rationalize(models.random_model(3, 1))
    assert r.rational and sum(r.p((0, 2))) == 1


# --- trees -----------------------------------------------------------------------------------
def test_tree_from_paths_merges_and_keeps_draw_order():
    t = Tree.from_paths([(0, 1), (2, 0), (0, 0)])
    assert t.tokens == (-1, 0, 1, 0, 2, 0)
    assert t.parents == (-1, 0, 1, 1, 0, 4)
    assert t.draws[0] == (1, 4, 1)  # root draws 0, 2, 0 in path order
    assert t.draws[1] == (2, 3)
    assert t.multiplicity == (1, 2, 1, 1, 1, 1)
    assert t.children[0] == (1, 4) and t.leaves == (2, 3, 5)
    assert t.prefix(5) == (2, 0) and t.path(3) == (0, 1, 3) and t.depth == 2
    assert t.n_paths == 3


def test_delayed_tree_trunk_is_one_draw():
    t = Tree.from_paths([(1, 0, 1), (1, 0, 0)], trunk=2)
    assert t.draws[0] == (1,) and t.draws[1] == (2,)  # trunk edges: multiplicity 1
    assert len(t.draws[2]) == 2 and t.n_paths == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(tokens=(-1, 0), parents=(-1, 1), draws=((1,), ())), "does not come before"),
        (dict(tokens=(-1, 0, 0), parents=(-1, 0, 0), draws=((1, 2), (), ())), "appears twice"),
        (dict(tokens=(-1, 0), parents=(-1, 0), draws=((), ())), "never appear in draws"),
        (dict(tokens=(5, 0), parents=(-1, 0), draws=((1,), ())), "root"),
        (dict(tokens=(-1, 0, 1, 2), parents=(-1, 0, 0, 1), draws=((1, 2), (3,), (), ())), "pre-order"),
        (dict(tokens=(-1, 0), parents=(-1, 0), draws=((1, 1), ()), sampling="without_replacement"), "twice"),
        (dict(tokens=(-1, -3), parents=(-1, 0), draws=((1,), ())), "negative"),
    ],
)
def test_invalid_trees_are_named(kwargs, message):
    with pytest.raises(InvalidInstance, match=message):
        Tree(**kwargs)


def test_builder_renumbers_in_preorder():
    b = TreeBuilder()
    x = b.draw(0, 1)
    b.draw(0, 0)
    b.draw(x, 2)
    t = b.build()
    assert t.tokens == (-1, 1, 2, 0) and t.parents == (-1, 0, 1, 0)


# --- drafting --------------------------------------------------------------------------------
SCHEMES = [
    drafting.chain(2),
    drafting.iid(2, 2),
    drafting.iid(3, 1),
    drafting.delayed(2, 1, 1),
    drafting.delayed(3, 1, 1),
    drafting.without_replacement((2, 1)),
    drafting.without_replacement((2, 2)),
    drafting.without_replacement((3,)),
]


@pytest.mark.parametrize("scheme", SCHEMES, ids=str)
def test_enumerated_tree_probabilities_sum_to_one(scheme):
    m = examples.E2(rational=True)
    trees = scheme.enumerate(m)
    assert sum(pr for _, pr in trees) == 1
    assert all(t.depth <= scheme.depth for t, _ in trees)
    assert len({t for t, _ in trees}) == len(trees)


def test_enumeration_counts_match_combinatorics():
    m = examples.E2()
    assert len(drafting.iid(2, 2).enumerate(m)) == 81  # 9 paths, ordered pairs
    assert len(drafting.without_replacement((2,)).enumerate(m)) == 6  # ordered distinct pairs
    assert len(drafting.delayed(2, 1, 1).enumerate(m)) == 27  # 3 trunks x 9 ordered branch pairs


def test_without_replacement_probabilities():
    m = examples.E2(rational=True)
    law = dict(drafting.without_replacement((2,)).enumerate(m))
    t = Tree.from_paths([(1,), (0,)], sampling="without_replacement")
    assert law[t] == F(5, 10) * F(3, 10) / (1 - F(5, 10))


@pytest.mark.parametrize("scheme", [drafting.iid(2, 2), drafting.delayed(2, 1, 1), drafting.without_replacement((2, 1))], ids=str)
def test_sampled_tree_frequencies_match_enumeration(scheme):
    m = examples.E3()
    trees = scheme.enumerate(m)
    index = {t: i for i, (t, _) in enumerate(trees)}
    counts = np.zeros(len(trees))
    gen = np.random.default_rng(77)
    for _ in range(20_000):
        counts[index[scheme.sample(m, gen)]] += 1
    res = chi2_gof(counts, [pr for _, pr in trees])
    assert res.p_value > 1e-3, res.table()


def test_without_replacement_truncates_at_support():
    m = models.context_free([0.5, 0.5], [1.0, 0.0])
    trees = drafting.without_replacement((2,)).enumerate(m)
    assert len(trees) == 1 and trees[0][0].draws[0] == (1,)


@pytest.mark.parametrize("text", ["chain(2)", "iid(2,3)", "delayed(4,2,2)", "wor(2,1)"])
def test_parse_scheme_roundtrip(text):
    assert drafting.parse_scheme(text).name == text


def test_scheme_errors():
    with pytest.raises(InvalidInstance, match="k must be an int >= 1"):
        drafting.iid(0, 2)
    with pytest.raises(UnknownName, match="Did you mean 'iid'"):
        drafting.parse_scheme("idd(2,2)")


# --- randomness ------------------------------------------------------------------------------
def test_categorical_inverse_cdf_never_returns_zero_mass():
    probs = [0.0, 0.3, 0.0, 0.7]
    assert categorical_from_uniform(0.0, probs) == 1
    assert categorical_from_uniform(0.2999999, probs) == 1
    assert categorical_from_uniform(0.3, probs) == 3
    # rounding leaves u >= sum(probs): the last positive index, never a zero-mass one
    assert categorical_from_uniform(0.99999999995, [0.1, 0.2, 0.3999999999, 0.3, 0.0]) == 3
    with pytest.raises(Exception, match="summing to 1"):
        categorical_from_uniform(0.5, [0.5, 0.4])


def test_coupled_rejects_unknown_and_reused_keys():
    c = Coupled([0.1, 0.2], ["a", "b"])
    c.bernoulli(0.5, "a")
    with pytest.raises(KeyReuseError):
        c.bernoulli(0.5, "a")
    with pytest.raises(Exception, match="not in this verifier's published layout"):
        c.bernoulli(0.5, "z")
    with pytest.raises(InvalidArgument, match="one uniform per key"):
        Coupled([0.1], ["a", "b"])
    with pytest.raises(InvalidArgument, match=r"\[0, 1\)"):
        Coupled([1.0], ["a"])


def test_enumerate_law_is_exact_and_rational():
    def run(r):
        a = r.bernoulli(F(1, 3), "a")
        return (a, r.categorical([F(1, 2), F(0), F(1, 2)], "b")) if a else (a, -1)

    law, fb = enumerate_law(run, rational=True)
    assert sorted(law) == [((False, -1), F(2, 3)), ((True, 0), F(1, 6)), ((True, 2), F(1, 6))]
    assert fb == 0


def test_enumerate_law_rejects_floats_in_rational_mode():
    with pytest.raises(Exception, match="not rational"):
        enumerate_law(lambda r: r.bernoulli(0.5, "a"), rational=True)


@settings(max_examples=20)
@given(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=5), st.integers(0, 2**31))
def test_sampling_categorical_frequencies(weights, seed):
    probs = np.array(weights) / sum(weights)
    rng = Sampling(seed)
    n = 4000
    counts = np.bincount([rng.categorical(probs, i) for i in range(n)], minlength=len(probs))
    assert chi2_gof(counts, probs).p_value > 1e-4


# --- registry and engine errors ------------------------------------------------------------------
def test_registry_names_and_unknown_name():
    assert {"naive", "bv"} <= set(registry.names())
    entry = registry.get("bv")
    assert entry.accepts(drafting.chain(2)) and not entry.accepts(drafting.iid(2, 2))
    with pytest.raises(UnknownName, match="Did you mean 'bv'"):
        registry.get("bvv")


def test_engine_refuses_unaccepted_scheme_and_float_model_in_rational_mode():
    with pytest.raises(InvalidArgument, match="does not accept scheme"):
        exact.evaluate("bv", examples.E2(), drafting.iid(2, 2))
    with pytest.raises(InvalidArgument, match="rational mode needs a rational model"):
        exact.evaluate("bv", examples.E2(), drafting.chain(2), rational=True)


def test_engine_flags_a_lossy_callable():
    def always_first_token(instance, rng):  # emits token 0 regardless of p: lossy
        from specoracle import Outcome

        return Outcome(0, 0)

    res = exact.evaluate(always_first_token, examples.E2(), drafting.chain(1))
    # extended law puts p(.|0) on (0, .): worst cell (0, 0): .6 - P(0, 0) = .6 - .3
    assert res.max_error == pytest.approx(0.3, abs=1e-12) and not res.lossless


def test_sequence_law_of_a_memoryless_verifier_is_lossless():
    res = exact.sequence_law("bv", examples.E3(), drafting.chain(2), 5)
    assert res.max_error < 1e-12
    assert res.tokens_per_call > 1


def test_extended_law_brute_force_e3():
    # Independent recomputation of the extended law for naive on E3, chain(1), by hand enumeration.
    m = examples.E3()
    res = exact.evaluate("naive", m, drafting.chain(1))
    manual = np.zeros((2, 2))
    res_law = np.maximum(m.p(()) - m.q(()), 0)
    res_law /= res_law.sum()
    for x in range(2):  # draft x ~ q(); accept w.p. min(1, p/q)
        q0 = m.q(())[x]
        acc = min(1.0, m.p(())[x] / q0)
        for y in range(2):
            manual[x, y] += q0 * acc * m.p((x,))[y]  # accepted: bonus y ~ p(.|x)
            for t in range(2):  # rejected: t ~ residual, then target continuation y ~ p(.|t)
                manual[t, y] += q0 * (1 - acc) * res_law[t] * m.p((t,))[y]
    np.testing.assert_allclose(res.extended_law, manual, atol=1e-15)
