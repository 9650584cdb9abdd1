"""The registry drives the central check: every registered verifier, every scheme kind it declares,
every example model, judged by the exact engine; and every claim an entry makes is checked.

- ``lossless`` entries: ``max |extended law - P| < LOSSLESS_TOL`` on every case (stateful entries on
  whole sequences of ``2L + 1`` tokens, :func:`specoracle.exact.sequence_law`);
- entries registered lossy: flagged on at least one case of the grid (a negative control: the
  grid can see their bug);
- ``rational`` entries: run in rational mode (Fractions end to end, on the rationalised model) and
  give an error of exactly 0;
- ``bound`` entries: their exact block efficiency equals the LP named by the claim
  (:func:`specoracle.lp.single_path_bound` for single-path optimality, the per-node coupling
  :func:`specoracle.lp.coupling_value` on depth-1 trees), an independent computation.

A new entry is in every case below without touching this file; a new scheme kind or bound name
fails loudly until a small scheme or an LP check is given for it here. Schemes are the smallest of
each kind that still branch (stateful entries: depth 1, whose sequences of 3 tokens span two
calls; depth 2 on V=2 models runs with ``-m slow``).
"""
from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specoracle import examples, exact, lp, models, registry, strategies
from specoracle.drafting import KINDS, Scheme, chain, delayed, iid, without_replacement

SCHEMES = {"chain": chain(2), "iid": iid(2, 2), "delayed": delayed(2, 1, 1), "without_replacement": without_replacement((2, 1))}
STATEFUL_SCHEMES = {"chain": chain(1), "iid": iid(2, 1), "delayed": delayed(2, 0, 1), "without_replacement": without_replacement((2,))}
STATEFUL_SLOW = {"chain": chain(2), "iid": iid(2, 2), "delayed": delayed(2, 1, 1), "without_replacement": without_replacement((2, 1))}
MODELS = sorted(examples.MODELS)
ENTRIES = registry.entries()


def test_every_declared_kind_has_a_small_scheme():
    assert set(SCHEMES) == set(STATEFUL_SCHEMES) == set(KINDS)
    for e in ENTRIES:
        assert e.schemes and e.schemes <= set(KINDS), (e.name, e.schemes)


@functools.lru_cache(maxsize=None)
def _judge(name: str, model_name: str, scheme: Scheme, rational: bool = False):
    """The exact verdict of one case (memoised: the negative control reuses the grid's results)."""
    entry = registry.get(name)
    model = examples.get(model_name)
    if rational:
        model = models.rationalize(model)
    if entry.stateful:
        return exact.sequence_law(entry, model, scheme, exact.judged_length(scheme, True), rational=rational)
    return exact.evaluate(entry, model, scheme, rational=rational)


def _cases(stateful_schemes, slow_models=()):
    out = []
    for e in ENTRIES:
        for kind in KINDS:
            if kind not in e.schemes:
                continue
            scheme = (stateful_schemes if e.stateful else SCHEMES)[kind]
            for m in MODELS:
                marks = [pytest.mark.slow] if m in slow_models else []
                out.append(pytest.param(e, m, scheme, id=f"{e.name}-{m}-{scheme.name}", marks=marks))
    return out


@pytest.mark.parametrize("entry,model,scheme", [p for p in _cases(STATEFUL_SCHEMES) if p.values[0].lossless])
def test_a_lossless_entry_is_exactly_lossless(entry, model, scheme):
    r = _judge(entry.name, model, scheme)
    assert r.lossless, f"{entry.name} claims lossless; max error {r.max_error:.3g} on {model} {scheme.name}"


@pytest.mark.slow
@pytest.mark.parametrize("entry,model,scheme",
                         [p for p in _cases(STATEFUL_SLOW) if p.values[0].stateful
                          and examples.get(p.values[1]).V == 2])
def test_stateful_exact_verdict_on_longer_sequences(entry, model, scheme):
    r = _judge(entry.name, model, scheme)
    assert r.lossless or not entry.lossless, (entry.name, model, scheme.name, r.max_error)


@pytest.mark.parametrize("entry", [e for e in ENTRIES if not e.lossless], ids=lambda e: e.name)
def test_a_lossy_entry_is_flagged_somewhere_on_the_grid(entry):
    """Negative control: a verifier registered lossy must be caught by the same grid."""
    cases = ((m, (STATEFUL_SCHEMES if entry.stateful else SCHEMES)[k]) for m in MODELS for k in KINDS if k in entry.schemes)
    flagged = next(((m, s.name) for m, s in cases if float(_judge(entry.name, m, s).max_error) > 1e-6), None)
    assert flagged is not None, f"{entry.name} is registered lossy but exact on every case of the grid"


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.lossless and not e.stateful], ids=lambda e: e.name)
@settings(max_examples=10)
@given(data=st.data())
def test_a_lossless_entry_is_exactly_lossless_on_random_models(entry, data):
    """Beyond the named examples: random models (p == q included, peaked rows) x random schemes of
    every kind the entry declares (depth <= 2, at most 2 siblings or paths)."""
    model = data.draw(strategies.random_models(V=st.integers(2, 3)), label="model")
    scheme = data.draw(strategies.schemes(kinds=sorted(entry.schemes)), label="scheme")
    res = exact.evaluate(entry, model, scheme)
    assert exact.is_lossless(res.max_error), (entry.name, model.name, scheme.name, res.max_error)


@pytest.mark.parametrize("entry,model,scheme",
                         [p for p in _cases(STATEFUL_SCHEMES, slow_models=("E3", "E4", "E5", "E1b", "HSDTOY"))
                          if p.values[0].rational])
def test_rational_entries_are_exact_in_fractions(entry, model, scheme):
    """``rational=True`` entries run on Fractions end to end: the error is exactly 0 (lossless
    entries), or an exact nonzero Fraction (entries registered lossy)."""
    from fractions import Fraction

    r = _judge(entry.name, model, scheme, rational=True)
    assert isinstance(r.max_error, Fraction)
    if entry.lossless:
        assert r.max_error == 0, (entry.name, model, scheme.name, r.max_error)


# --- optimality claims against their LP ----------------------------------------------------------
def _single_path(entry, model) -> list[tuple[float, float]]:
    """BV's claim: on a chain of L drafts its efficiency is the optimum of the single-path LP."""
    return [(float(exact.evaluate(entry, model, chain(L)).block_efficiency), lp.single_path_bound(model, L).block_efficiency)
            for L in (1, 2)]


def _coupling(entry, model) -> list[tuple[float, float]]:
    """Per-node optimality: on a depth-1 tree of k drafts the acceptance probability E[tau] is the
    maximal coupling value of p(root) against the k-draft law (i.i.d., or without replacement)."""
    p, q = model.p(()), model.q(())
    pairs = []
    for k in (1, 2):
        for kind, scheme, replacement in (("iid", iid(k, 1), True), ("without_replacement", without_replacement((k,)), False)):
            if entry.accepts(kind):
                be = float(exact.evaluate(entry, model, scheme).block_efficiency)
                pairs.append((be - 1.0, lp.coupling_value(p, q, k, replacement)))
    return pairs


BOUND_CHECKS = {"single_path_bound": _single_path, "coupling_value": _coupling}


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.bound], ids=lambda e: e.name)
@pytest.mark.parametrize("model", MODELS)
def test_an_optimality_claim_meets_its_lp(entry, model):
    assert entry.bound in BOUND_CHECKS, f"{entry.name}: add how to check the bound {entry.bound!r} here"
    assert entry.optimal_within, f"{entry.name} names a bound but no class it is optimal within"
    pairs = BOUND_CHECKS[entry.bound](entry, examples.get(model))
    assert pairs
    for got, lp_value in pairs:
        assert abs(got - lp_value) < 1e-7, (entry.name, model, got, lp_value)


def test_the_lp_check_catches_a_suboptimal_verifier():
    """Negative control: naive (token-wise) is not single-path optimal on E1 chain(2) (19/9 < 20/9)."""
    got, lp_value = _single_path(registry.get("naive"), examples.E1())[1]
    assert lp_value - got > 0.1
