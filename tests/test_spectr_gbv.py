"""SpecTr-GBV (stateful): whole-sequence laws with the exact engine (``sequence_law``).

Truths used: the target law ``P`` on ``V^n`` for ``n >= 2L + 1`` (several iterations interact);
the greedy bound ``G = sum_s min(P(s), Q(s))`` (ALGORITHMS.md §2.3: E1 12/9, E3 1.40, E2 1.42),
which greedy block verification attains per iteration; the best-of-K law ``Q_skew`` computed here
from the model (ranks, ``(A + Qm)^K - A^K``) for the lossless variant's closed form
``E[tau] = sum_s min(P(s), Q_skew(s))``; the first-token marginal, which no later iteration can
change.
"""
from fractions import Fraction as F
from itertools import product

import pytest

from specoracle import drafting, examples, exact, registry
from specoracle.reference.spectr_gbv import spectr_gbv, spectr_gbv_lossless


@pytest.mark.parametrize("name", ["spectr_gbv", "spectr_gbv_lossless"])
@pytest.mark.parametrize("model_name", ["E1", "E3"])
@pytest.mark.parametrize("scheme, length", [("chain(2)", 5), ("iid(1,2)", 5), ("chain(1)", 3)])
def test_k1_greedy_block_verification_is_lossless_on_sequences(name, model_name, scheme, length):
    res = exact.sequence_law(name, examples.get(model_name), drafting.parse_scheme(scheme), length)
    assert res.max_error < 1e-12, res.max_error


def test_k1_on_e2_sequences():
    res = exact.sequence_law("spectr_gbv", examples.E2(), drafting.chain(2), 5)
    assert res.max_error < 1e-12, res.max_error


@pytest.mark.parametrize("model_name", ["E1", "E3"])
@pytest.mark.parametrize("scheme, length", [("iid(2,2)", 5), ("iid(2,1)", 3), ("iid(3,1)", 3)])
def test_lossless_variant_on_sequences(model_name, scheme, length):
    res = exact.sequence_law("spectr_gbv_lossless", examples.get(model_name), drafting.parse_scheme(scheme), length)
    assert res.max_error < 1e-12, res.max_error


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["E1", "E3"])
def test_lossless_variant_k3_sequences(model_name):
    res = exact.sequence_law("spectr_gbv_lossless", examples.get(model_name), drafting.iid(3, 2), 5)
    assert res.max_error < 1e-12, res.max_error


@pytest.mark.parametrize("model_name, scheme, length, err", [
    ("E1", "iid(2,2)", 5, 0.0563), ("E3", "iid(2,1)", 3, 0.0405), ("E1", "iid(2,1)", 3, 0.0779),
])
def test_reconstructed_rule_is_lossy_for_k2(model_name, scheme, length, err):
    res = exact.sequence_law("spectr_gbv", examples.get(model_name), drafting.parse_scheme(scheme), length)
    assert res.max_error > 1e-9
    assert float(res.max_error) == pytest.approx(err, abs=1e-4)


def _first_token_law(name, scheme):
    law = exact.evaluate(name, examples.E1(rational=True), scheme, rational=True).block_law
    return [sum(p for b, p in law.items() if b[0] == t) for t in (0, 1)]


def test_third_party_rule_as_found_first_token():
    """Issue 17: the rule exactly as found emits token 1 w.p. 0.3625 on E1 iid(2,1) (p(1) = 1/3); on
    E1 iid(2,2) token 0 w.p. 0.6905 (our duplicate skip turns it into 0.7293; p(0) = 2/3)."""
    assert _first_token_law("spectr_gbv_as_found", drafting.iid(2, 1))[1] == F(29, 80)
    assert float(_first_token_law("spectr_gbv_as_found", drafting.iid(2, 2))[0]) == pytest.approx(0.6905, abs=5e-5)
    assert float(_first_token_law("spectr_gbv", drafting.iid(2, 2))[0]) == pytest.approx(0.7293, abs=5e-5)


def test_third_party_rule_alone_is_lossy_even_at_k1():
    # one greedy iteration without a modified target: Sun et al.'s 2/27 on E1 chain(2)
    res = exact.evaluate("spectr_gbv_as_found", examples.E1(rational=True), drafting.chain(2), rational=True)
    assert res.max_error == F(2, 27)
    assert not registry.get("spectr_gbv_as_found").stateful


def test_the_skip_is_the_only_difference_when_nothing_repeats():
    """With K = 1 no prefix is tested twice: the rule as found and our variant's first call agree."""
    m = examples.E3(rational=True)
    got = exact.evaluate("spectr_gbv_as_found", m, drafting.chain(2), rational=True).block_law
    assert got == exact.evaluate("spectr_gbv", m, drafting.chain(2), rational=True).block_law


def test_first_token_already_wrong_for_k2():
    # E1 iid(2,2): Pr[first emitted token = 0] = 0.7293 > p(0) = 2/3 -- unrepairable by any state.
    m = examples.E1(rational=True)
    law = exact.evaluate("spectr_gbv", m, drafting.iid(2, 2), rational=True).block_law
    first0 = sum(p for b, p in law.items() if b[0] == 0)
    assert first0 - F(2, 3) > F(6, 100)


def test_registry_claims():
    assert registry.get("spectr_gbv").lossless is False
    assert registry.get("spectr_gbv_as_found").lossless is False
    for name in ("spectr_gbv", "spectr_gbv_as_found"):
        assert "third-party code of unknown provenance" in registry.get(name).description
    assert registry.get("spectr_gbv").stateful and registry.get("spectr_gbv_lossless").stateful
    assert registry.get("spectr_gbv_lossless").lossless is True


@pytest.mark.parametrize("model_name, G", [("E1", F(4, 3)), ("E3", F(7, 5)), ("E2", F(71, 50))])
def test_k1_first_iteration_attains_greedy_bound(model_name, G):
    # ALGORITHMS.md §2.3 / §6: per iteration, greedy block verification accepts G = sum min(P, Q).
    m = examples.get(model_name, rational=True)
    for name in ("spectr_gbv", "spectr_gbv_lossless"):
        assert exact.evaluate(name, m, drafting.chain(2), rational=True).expected_accepted == G


def test_state_is_necessary():
    # Greedy acceptance without the target modification is lossy (E1: 2/27 per iteration).
    def stateless(instance, rng):
        return spectr_gbv(instance, rng, None)[0]

    res = exact.evaluate(stateless, examples.E1(rational=True), drafting.chain(2), rational=True)
    assert res.max_error == F(2, 27)
    seq = exact.sequence_law(stateless, examples.E1(), drafting.chain(2), 5)
    assert seq.max_error > 1e-9


def _q_skew(m, s, K):
    one = F(1)
    A, Qm = 0 * one, one
    for i, x in enumerate(s):
        p, q = m.p(s[:i]), m.q(s[:i])
        keys = [(p[t] / q[t], t) for t in range(m.V)]
        below = sum((q[t] for t in range(m.V) if keys[t] < keys[x]), 0 * one)
        A, Qm = A + Qm * below, Qm * q[x]
    return (A + Qm) ** K - A**K


@pytest.mark.parametrize("model_name", ["E1", "E3"])
@pytest.mark.parametrize("K", [2, 3])
def test_lossless_variant_first_iteration_closed_form(model_name, K):
    m = examples.get(model_name, rational=True)
    expected = sum(min(m.P(s), _q_skew(m, s, K)) for n in (1, 2) for s in product(range(m.V), repeat=n))
    got = exact.evaluate(spectr_gbv_lossless, m, drafting.iid(K, 2), rational=True).expected_accepted
    assert got == expected
    if model_name == "E1" and K == 2:
        assert got == F(134, 81)
