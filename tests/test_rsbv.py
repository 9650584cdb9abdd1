"""RSBV: exact losslessness, K = 1 equals BV, the selection law by brute force, a worked example by
hand, the LP bound, and efficiency non-decreasing in K.

Truths used: the extended-law criterion against ``P`` (exact engine, float and Fraction); BV's exact
law; the law of the selected path obtained by enumerating every ordered K-tuple of paths and every
rejection-sampling coin with a rule written here from its definition (first passing draw at each
node, else the first path's); the E1 iid(2,2) value worked out by hand; the universal LP of
:mod:`specoracle.lp`; the L = 1 acceptance ``sum min(p, p' + gamma^(K-1)(q - p'))`` written here.
Monotonicity in K is checked on the model portfolio with the module's closed form, which is itself
checked against the exact engine.
"""
from fractions import Fraction as F
from itertools import product

import numpy as np
import pytest

from specoracle import Instance, Tree, drafting, examples, exact, models, registry
from specoracle.randomness import enumerate_law
from specoracle.reference.rsbv import expected_accepted, rs_select, selection_law

RANDOM = [models.random_model(V, seed=s, divergence=d) for V, s, d in
          [(3, 0, 0.5), (4, 1, 0.3), (2, 2, 1.0), (3, 3, 0.02), (3, 4, 0.0)]]
NGRAM = models.ngram_pair(vocab=3, name="ngram:3")


def _model(name):
    return {"ngram:3": NGRAM, **{m.name: m for m in RANDOM}}.get(name) or examples.get(name)


@pytest.mark.parametrize("scheme", ["chain(3)", "iid(1,2)", "iid(2,2)", "iid(3,2)", "iid(2,1)", "iid(4,1)",
                                    "delayed(2,1,1)", "delayed(3,1,1)", "delayed(2,0,2)"])
@pytest.mark.parametrize("model_name", ["E1", "E2", "E3"])
def test_lossless_float(model_name, scheme):
    res = exact.evaluate("rsbv", examples.get(model_name), drafting.parse_scheme(scheme))
    assert res.lossless, res.max_error
    assert res.fallback_mass == 0


@pytest.mark.parametrize("model_name", ["E4", "E5", "ngram:3", *[m.name for m in RANDOM]])
@pytest.mark.parametrize("scheme", ["iid(2,2)", "iid(3,1)", "delayed(2,1,1)"])
def test_lossless_float_more_models(model_name, scheme):
    res = exact.evaluate("rsbv", _model(model_name), drafting.parse_scheme(scheme))
    assert res.lossless, res.max_error


@pytest.mark.parametrize("model_name, scheme", [("E1", "iid(2,2)"), ("E1", "iid(3,2)"), ("E3", "iid(2,2)"),
                                                ("E2", "iid(2,2)"), ("E5", "iid(2,1)"), ("E5", "delayed(2,1,1)")])
def test_lossless_rational(model_name, scheme):
    res = exact.evaluate("rsbv", examples.get(model_name, rational=True), drafting.parse_scheme(scheme),
                         rational=True)
    assert res.max_error == 0


def test_e1_iid_2_2_by_hand():
    # Root: M = 2, alpha = gamma = 1/2, g = (1/2, 1/2): A(0) = 1/2, A(1) = 1/3. Paths through the
    # selected child: token 0 -> (1: 7/9, 2: 2/9), theta = 8/9, g = (10/27, 17/27): A(00) = 5/27,
    # A(01) = 1/6; token 1 -> (1: 1/9, 2: 8/9), theta = 5/9, g = (13/27, 14/27): A(10) = 2/9,
    # A(11) = 1/9. E[tau] = 41/27.
    res = exact.evaluate("rsbv", examples.E1(rational=True), drafting.iid(2, 2), rational=True)
    assert res.expected_accepted == F(41, 27)


@pytest.mark.parametrize("model_name", ["E1", "E2", "E3", "E4", "E5"])
@pytest.mark.parametrize("scheme", ["chain(2)", "iid(1,3)"])
def test_k1_is_block_verification(model_name, scheme):
    m, s = examples.get(model_name, rational=True), drafting.parse_scheme(scheme)
    got = exact.evaluate("rsbv", m, s, rational=True).block_law
    want = exact.evaluate("bv", m, drafting.chain(s.depth), rational=True).block_law
    assert got == want


def _selected_path_law(model, K, L):
    """Law of the selected path: every ordered K-tuple of paths x every coin, rule from its definition."""
    paths = list(product(range(model.V), repeat=L))
    law = {}
    for tup in product(paths, repeat=K):
        pr = np.prod([model.Q(s) for s in tup])
        if pr == 0:
            continue

        def walk(rng, tup=tup):
            alive, u = list(range(K)), ()
            for d in range(L):
                p, q = model.p(u), model.q(u)
                M = max(p[y] / q[y] for y in range(model.V) if q[y] > 0)
                pick = alive[0]
                if len(alive) > 1:
                    for r, j in enumerate(alive):
                        x = tup[j][d]
                        if rng.bernoulli(p[x] / (M * q[x]), (d, r)):
                            pick = j
                            break
                u = u + (tup[pick][d],)
                alive = [j for j in alive if tup[j][: d + 1] == u]
            return u

        for s, c in enumerate_law(walk)[0]:
            law[s] = law.get(s, 0) + pr * c
    return law


@pytest.mark.parametrize("model_name, K, L", [("E1", 3, 2), ("E2", 2, 2), ("E5", 2, 2), ("E3", 4, 1)])
def test_selection_law_matches_brute_force(model_name, K, L):
    """The conditional laws ``g_u`` RSBV verifies against multiply to the true law of the selection."""
    m = examples.get(model_name)
    brute = _selected_path_law(m, K, L)
    for s, pr in brute.items():
        tree = Tree.from_paths([s] * K)  # any tree holding s: the laws along s depend on s only...
        nodes, qs = rs_select(Instance.from_model(m, tree), _FirstDraw())
        # ...so read them off a tree of K copies of s (every test then passes the first draw)
        got = np.prod([qs[u][tree.tokens[c]] for u, c in zip(nodes, nodes[1:])])
        assert got == pytest.approx(pr, abs=1e-14)


class _FirstDraw:
    """A random source that makes every RS test pass (the walk follows the first draw)."""

    def bernoulli(self, prob, key):
        return True

    def categorical(self, probs, key):  # pragma: no cover - the selection draws no categorical
        raise AssertionError

    def fallback(self, key):  # pragma: no cover
        raise AssertionError


@pytest.mark.parametrize("model_name, scheme", [
    *[(m, s) for m in ("E1", "E2", "E3") for s in ("iid(2,2)", "iid(3,2)", "delayed(2,1,1)")],
    ("E5", "iid(2,2)"), ("E5", "delayed(3,1,1)"), ("ngram:3", "iid(2,2)"), ("E1", "iid(4,2)"),
])
def test_closed_form_equals_exact_engine(model_name, scheme):
    m, s = _model(model_name), drafting.parse_scheme(scheme)
    assert expected_accepted(m, s) == pytest.approx(exact.evaluate("rsbv", m, s).expected_accepted, abs=1e-12)


@pytest.mark.parametrize("model_name", ["E1", "E2", "E3", "E4", "E5", "ngram:3"])
@pytest.mark.parametrize("scheme", ["iid(2,2)", "iid(3,2)", "delayed(2,1,1)"])
def test_efficiency_at_most_universal_lp(model_name, scheme):
    from specoracle.lp import universal_bound

    m, s = _model(model_name), drafting.parse_scheme(scheme)
    lp = universal_bound(m, s).expected_accepted
    assert expected_accepted(m, s) <= lp + 1e-7


@pytest.mark.parametrize("model_name", ["E1", "E4", *[m.name for m in RANDOM]])
def test_depth_one_acceptance_closed_form(model_name):
    """L = 1: ``alpha_K = sum_x min(p(x), p'(x) + gamma^(K-1) (q(x) - p'(x)))``, non-decreasing in K."""
    m = _model(model_name)
    p, q = m.p(()), m.q(())
    M = max(p[y] / q[y] for y in range(m.V) if q[y] > 0)
    mass = sum(p[y] for y in range(m.V) if q[y] > 0)
    pp = np.where(q > 0, p / mass, 0.0)
    gamma = 1 - mass / M
    alphas = [np.minimum(p, pp + gamma ** (K - 1) * (q - pp)).sum() for K in (1, 2, 3, 4)]
    got = [exact.evaluate("rsbv", m, drafting.iid(K, 1)).expected_accepted for K in (1, 2, 3)]
    assert got == pytest.approx(alphas[:3], abs=1e-12)
    assert all(b >= a - 1e-15 for a, b in zip(alphas, alphas[1:]))


# --- non-decreasing in K --------------------------------------------------------------------------
def _portfolio(seeds, Ls):
    out = [(examples.get(n), 2) for n in ("E1", "E2", "E3", "E4", "E5")]
    out += [(models.ngram_pair(vocab=V, target_order=t, draft_order=d), L)
            for V, t, d, L in [(4, 3, 1, 3), (3, 2, 1, 2), (5, 3, 2, 2)]]
    for V in (2, 3, 4, 5):
        for L in Ls:
            if V**L > 130:
                continue
            for seed in seeds:
                for div in (0.0, 0.02, 0.1, 0.3, 0.7, 1.0):  # 0: p == q; 0.02: p close to q
                    conc = (0.3, 1.0, 3.0)[seed % 3]
                    out.append((models.random_model(V, seed=seed, divergence=div, concentration=conc), L))
    return out


def _decreases(model, L, Ks, value):
    vals = [value(model, drafting.iid(K, L)) for K in Ks]
    return [(K, a, b) for K, a, b in zip(Ks[1:], vals, vals[1:]) if b < a - 1e-12]


@pytest.mark.parametrize("seed", range(3))
def test_efficiency_never_decreases_in_k(seed):
    bad = [(m.name, L, d) for m, L in _portfolio([seed], (1, 2, 3)) for d in _decreases(m, L, (1, 2, 3, 4),
                                                                                         expected_accepted)]
    assert not bad, bad


@pytest.mark.slow
def test_efficiency_never_decreases_in_k_sweep():
    bad = [(m.name, L, d) for m, L in _portfolio(range(3, 12), (1, 2, 3))
           for d in _decreases(m, L, (1, 2, 3, 4, 5, 6), expected_accepted)]
    assert not bad, bad


def test_monotonicity_check_catches_gbv():
    """Negative control: the same check flags GBV on E2 (ALGORITHMS.md §5.4: K=3 below K=2)."""
    def gbv_value(model, scheme):
        return exact.evaluate("gbv", model, scheme).expected_accepted

    assert _decreases(examples.E2(), 2, (1, 2, 3), gbv_value)


def test_beats_gbv_where_the_skew_overshoots():
    # p == q = (1/2, 1/2), iid(2,2): GBV's best-of-2 skew falls below BV (E[tau] 1.4375 vs 2); RSBV
    # selects with law p and accepts everything.
    m = models.context_free([0.5, 0.5], [0.5, 0.5])
    assert exact.evaluate("gbv", m, drafting.iid(2, 2)).expected_accepted == pytest.approx(1.4375, abs=1e-12)
    assert exact.evaluate("rsbv", m, drafting.iid(2, 2)).expected_accepted == pytest.approx(2.0, abs=1e-12)
    assert exact.evaluate("rsbv", examples.E2(), drafting.iid(3, 2)).block_efficiency > \
        exact.evaluate("gbv", examples.E2(), drafting.iid(3, 2)).block_efficiency + 0.2


def test_registry_claims():
    e = registry.get("rsbv")
    assert e.lossless and not e.stateful and e.rational
    assert e.accepts("iid") and e.accepts("delayed") and not e.accepts("without_replacement")


def test_rejects_without_replacement_trees():
    from specoracle.errors import InvalidInstance

    m = examples.E2()
    tree = drafting.without_replacement((2,)).sample(m, np.random.default_rng(0))
    with pytest.raises(InvalidInstance, match="i.i.d."):
        exact.tree_law("rsbv", Instance.from_model(m, tree))


def test_selection_law_sums_to_one_and_k1_is_q():
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.3, 0.5, 0.2])
    assert selection_law(p, q, {1: 1.0}).tolist() == q.tolist()
    assert selection_law(p, q, {1: 0.25, 3: 0.75}).sum() == pytest.approx(1.0, abs=1e-15)
