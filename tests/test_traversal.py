"""Traversal verification: exact losslessness, documented numbers, reductions, invariant, mutants.

Truths used: the extended-law criterion (ALGORITHMS.md §1.3) against ``P`` from the model; the E1
row of the master table (§11) in exact rational arithmetic; the worked example of §4.7; BV's
exact law on chains; an independent one-step RRS-without-replacement law written here
(ALGORITHMS-2.md §1.2 pattern) for depth-1 trees; the invariant of §4.4 (a subtree entered with
weight w succeeds with probability w, averaged over its draft); the authors' loop form (§4.2).
"""
from fractions import Fraction as F

import numpy as np
import pytest

from specoracle import Instance, Tree, drafting, examples, exact, mutants
from specoracle.randomness import Coupled, Sampling, enumerate_law
from specoracle.reference.traversal import traversal, traversal_from, traversal_keys
from specoracle.stats import chi2_gof

SCHEMES = ["chain(2)", "iid(1,2)", "iid(2,2)", "iid(3,2)", "iid(2,1)", "delayed(2,1,1)", "delayed(3,1,1)",
           "delayed(2,0,2)", "wor(2)", "wor(2,1)", "wor(2,2)", "wor(3,1)"]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("model_name", ["E1", "E2", "E3"])
def test_lossless_on_named_models(model_name, scheme):
    res = exact.evaluate("traversal", examples.get(model_name), drafting.parse_scheme(scheme))
    assert res.max_error < 1e-12, res.max_error
    assert res.fallback_mass == 0


@pytest.mark.parametrize("scheme", ["iid(2,2)", "delayed(2,1,1)", "wor(2,1)"])
def test_lossless_on_e5(scheme):
    # V = 4 context-dependent model (ALGORITHMS-2.md §1.5: V <= 3 hides several bug classes).
    res = exact.evaluate("traversal", examples.E5(), drafting.parse_scheme(scheme))
    assert res.max_error < 1e-12, res.max_error


@pytest.mark.parametrize("K, expected", [(1, F(11, 9)), (2, F(115, 81)), (3, F(1136, 729))])
def test_e1_master_table_row_rational(K, expected):
    # ALGORITHMS.md §11, column TV.
    res = exact.evaluate("traversal", examples.E1(rational=True), drafting.iid(K, 2), rational=True)
    assert res.max_error == 0
    assert res.expected_accepted == expected


@pytest.mark.parametrize(
    "model_name, scheme, expected",
    [("E2", "iid(2,2)", 1.5012), ("E3", "iid(2,2)", 1.4738), ("E2", "chain(2)", 1.38)],  # §7.1, §4.5
)
def test_documented_expected_lengths(model_name, scheme, expected):
    res = exact.evaluate("traversal", examples.get(model_name), drafting.parse_scheme(scheme))
    assert res.expected_accepted == pytest.approx(expected, abs=1e-12)


def test_worked_example_e2():
    # ALGORITHMS.md §4.7: tree [(0,1),(2,0)]: ((0,1), y) w.p. 1/3 * (.4,.3,.3), ((0), 0) w.p. 2/3.
    m = examples.E2(rational=True)
    inst = Instance.from_model(m, Tree.from_paths([(0, 1), (2, 0)]))
    law = exact.tree_law("traversal", inst)
    blocks = {inst.block(o): pr for o, pr in law.items()}
    assert blocks == {(0, 1, 0): F(2, 15), (0, 1, 1): F(1, 10), (0, 1, 2): F(1, 10), (0, 0): F(2, 3)}
    assert sum(len(b) * pr for b, pr in blocks.items()) == F(7, 3)


@pytest.mark.parametrize("paths, expected", [([(0, 1), (0, 0)], F(3)), ([(1, 0), (1, 0)], F(23, 15)),
                                             ([(1, 0)], F(23, 15))])
def test_per_tree_efficiencies_e2(paths, expected):
    # ALGORITHMS.md §4.7 per-tree table, column TV (3.0, 1.533333, 1.533333).
    m = examples.E2(rational=True)
    inst = Instance.from_model(m, Tree.from_paths(paths))
    law = exact.tree_law("traversal", inst)
    assert sum((inst.tree.depths[o.node] + 1) * pr for o, pr in law.items()) == expected


@pytest.mark.parametrize("model_name", ["E2", "E3", "E5"])
@pytest.mark.parametrize("L", [1, 2, 3])
def test_chain_traversal_equals_bv(model_name, L):
    # §12.3 reduction, as equality of exact laws (rational: exact equality).
    m = examples.get(model_name, rational=True)
    tv = exact.evaluate("traversal", m, drafting.chain(L), rational=True).block_law
    bv = exact.evaluate("bv", m, drafting.chain(L), rational=True).block_law
    assert tv == bv


@pytest.mark.parametrize("model_name", ["E1", "E2", "E3"])
def test_k1_traversal_equals_gbv_equals_bv(model_name):
    m = examples.get(model_name, rational=True)
    bv = exact.evaluate("bv", m, drafting.chain(2), rational=True).block_law
    assert exact.evaluate("traversal", m, drafting.iid(1, 2), rational=True).block_law == bv
    assert exact.evaluate("gbv", m, drafting.iid(1, 2), rational=True).block_law == bv


def _rrs_wor_one_step(p, q, drafts):
    """Independent one-step RRS without replacement: acc[y] from passed tests, res[y] residual."""
    acc = np.array([F(0)] * len(p), dtype=object)
    alive = F(1)
    p_hat, q_hat = p.copy(), q.copy()
    for x in drafts:
        a = min(F(1), p_hat[x] / q_hat[x])
        acc[x] += alive * a
        alive *= 1 - a
        resid = np.array([max(F(0), a_ - b_) for a_, b_ in zip(p_hat, q_hat)], dtype=object)
        if resid.sum() > 0:
            p_hat = resid / resid.sum()
        q_hat = q_hat.copy()
        q_hat[x] = F(0)
        if q_hat.sum() > 0:
            q_hat = q_hat / q_hat.sum()
    return acc, alive * p_hat


@pytest.mark.parametrize("model_name", ["E2", "E4", "E5"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_depth1_traversal_equals_rrs_without_replacement(model_name, k):
    # §12.3: depth-1 TV == RRSw. Per tree, the law of (accepted child, bonus) and (root, residual).
    m = examples.get(model_name, rational=True)
    for tree, _ in drafting.without_replacement((k,)).enumerate(m):
        inst = Instance.from_model(m, tree)
        drafts = [tree.tokens[c] for c in tree.children[0]]
        acc, res = _rrs_wor_one_step(m.p(()), m.q(()), drafts)
        expected = {}
        for c in tree.children[0]:
            x = tree.tokens[c]
            for y in range(m.V):
                if acc[x] * m.p((x,))[y] > 0:
                    expected[(x, y)] = acc[x] * m.p((x,))[y]
        for y in range(m.V):
            if res[y] > 0:
                expected[(y,)] = res[y]
        got = {inst.block(o): pr for o, pr in exact.tree_law("traversal", inst).items()}
        assert got == expected


def test_depth1_e2_acceptance_is_092():
    # ALGORITHMS.md §4.5: E2 w/o-replacement branching [2]: TV == RRSw == 0.92.
    res = exact.evaluate("traversal", examples.E2(rational=True), drafting.without_replacement((2,)),
                         rational=True)
    assert res.expected_accepted == F(23, 25)


@pytest.mark.parametrize("model_name", ["E2", "E5"])
@pytest.mark.parametrize("k", [2, 3])
def test_depth1_traversal_equals_registered_rrs_wor(model_name, k):
    m = examples.get(model_name)
    s = drafting.without_replacement((k,))
    tv = exact.evaluate("traversal", m, s).block_law
    rrs = exact.evaluate("rrs_wor", m, s).block_law
    assert tv.keys() == rrs.keys()
    assert max(abs(tv[b] - rrs[b]) for b in tv) < 1e-12


@pytest.mark.parametrize("scheme", ["iid(2,2)", "iid(3,1)", "delayed(2,1,1)", "wor(2,1)", "wor(3,2)"])
@pytest.mark.parametrize("weight", [F(3, 8), F(9, 10), F(0)])
def test_subtree_success_probability_equals_weight(scheme, weight):
    # ALGORITHMS.md §4.4 / §12.7: averaged over the draft, Pr[subtree entered with w is not ⊥] == w.
    m = examples.E2(rational=True)
    total = F(0)
    for tree, pr in drafting.parse_scheme(scheme).enumerate(m):
        inst = Instance.from_model(m, tree)
        law, _ = enumerate_law(lambda r, inst=inst: traversal_from(inst, r, 0, weight) is not None, rational=True)
        total += pr * sum(p for ok, p in law if ok)
    assert total == weight


@pytest.mark.parametrize("scheme", ["iid(2,2)", "iid(3,2)", "delayed(3,1,1)", "wor(2,2)"])
def test_loop_form_equals_recursive_form(scheme):
    # The authors' loop form (first remaining leaf in pre-order) is a true negative: equal laws.
    m = examples.E3(rational=True)
    s = drafting.parse_scheme(scheme)
    loop = exact.evaluate(mutants.get("traversal_loop_form").verify, m, s, rational=True).block_law
    assert loop == exact.evaluate("traversal", m, s, rational=True).block_law


TREE_MUTANTS = ["traversal_deepest_leaf_first", "traversal_keep_rejected_in_q", "traversal_stale_bonus"]


@pytest.mark.parametrize("name", TREE_MUTANTS)
def test_mutants_are_flagged(name):
    mut = mutants.get(name)
    res = exact.evaluate(mut.verify, examples.get(mut.model), drafting.parse_scheme(mut.scheme))
    assert res.max_error > 1e-9, (name, res.max_error)


@pytest.mark.parametrize("model_name, scheme, err", [("E2", "iid(2,2)", 0.0235), ("E3", "iid(2,2)", 0.0180),
                                                     ("E3", "iid(3,2)", 0.0191)])
def test_deepest_leaf_first_documented_errors(model_name, scheme, err):
    # ALGORITHMS.md §4.6.1 (4 significant digits quoted there).
    res = exact.evaluate(mutants.get("traversal_deepest_leaf_first").verify, examples.get(model_name),
                         drafting.parse_scheme(scheme))
    assert res.max_error == pytest.approx(err, abs=6e-5)




def test_sampled_blocks_match_exact_law():
    # Monte Carlo (Sampling) vs the exact law on E2 iid(2,2): chi-square on emitted blocks.
    # alpha = 1e-3 false-fail rate; n = 20000 detects TV ~ 0.03 on <= 30 cells with high power.
    m, s = examples.E2(), drafting.iid(2, 2)
    law = exact.evaluate("traversal", m, s).block_law
    cells = sorted(law)
    index = {b: i for i, b in enumerate(cells)}
    counts = np.zeros(len(cells))
    rng = Sampling(1234)
    for _ in range(20_000):
        inst = Instance.from_model(m, s.draft(m, rng))
        counts[index[inst.block(traversal(inst, rng))]] += 1
    res = chi2_gof(counts, np.array([law[b] for b in cells]))
    assert res.p_value > 1e-3, res.table()


def test_coupled_layout_covers_every_key():
    # Every key traversal uses is in its published layout, and each is used once (Coupled raises).
    m = examples.E5()
    gen = np.random.default_rng(5)
    for tree, _ in drafting.without_replacement((2, 2)).enumerate(m)[:40]:
        inst = Instance.from_model(m, tree)
        layout = traversal_keys(tree)
        for _ in range(5):
            out = traversal(inst, Coupled(gen.random(len(layout)), layout))
            assert 0 <= out.node < tree.size and 0 <= out.token < m.V
