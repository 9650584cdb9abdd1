"""``specoracle.hunt`` / ``specoracle hunt``: the search finds, by itself, the two bug classes that
are invisible on every named example model (one only on a V = 5 model, one only where p and q
nearly agree), shrinks them to small cases whose printed code reproduces the error, and reports
nothing on lossless verifiers.

Every search is reproducible: fixed seeds, and ``max_examples`` (not the time budget) bounds it.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import specoracle
from specoracle import exact, examples
from specoracle.cli import main
from specoracle.drafting import parse_scheme
from specoracle.errors import InvalidArgument
from specoracle.hunting import NEAR_SCALE, Case, accepted_kinds, cases, hunt, simplify
from specoracle.mutants import get

BOUND = dict(budget=300.0, max_examples=400, seed=0)  # the example count, not the clock, ends a search
NAMED = [(m, s) for m in ("E1", "E2", "E3", "E4", "E5") for s in ("chain(1)", "chain(2)")]


def _reproduce(r):
    ns: dict = {}
    exec(r.code, ns)  # the printed reproducer, as a user pastes it
    return ns["verdict"]


@pytest.mark.parametrize("name", ["residual_tile_tail", "allclose_fast_accept"])
def test_the_classes_hunt_must_find_are_invisible_on_named_models(name):
    m = get(name)
    for model, scheme in NAMED:
        assert exact.evaluate(m.verify, examples.get(model), parse_scheme(scheme)).lossless, (model, scheme)


@pytest.fixture(scope="module")
def tile_tail():
    return hunt("residual_tile_tail", **BOUND)


def test_hunt_finds_the_v5_only_class(tile_tail):
    r = tile_tail
    assert r.found and r.case.V == 5  # V = 5 is the only vocabulary <= 6 with a one-token last tile
    assert r.error > 1e-6 and r.worst_error >= r.error
    v = _reproduce(r)
    assert not v.lossless and v.max_error == pytest.approx(r.error, rel=1e-12)


def test_hunt_finds_the_near_equal_class():
    r = hunt("allclose_fast_accept", **BOUND)
    assert r.found
    P, Q = r.case.tables()
    gap = np.abs(P - Q).max(axis=1)
    assert (gap <= 1e-3).any() and (gap > 0).any()  # a row pair that nearly agrees, but not exactly
    v = _reproduce(r)
    assert not v.lossless and v.max_error == pytest.approx(r.error, rel=1e-12)


def test_hunt_shrinks_to_a_small_case():
    r = hunt(get("bonus_from_draft").verify, **BOUND)  # a mutant's function: printed as mutants.get(name)
    assert r.found
    assert (r.case.V, r.case.R, r.case.scheme) == (2, 1, "chain(1)")
    assert "mutants.get('bonus_from_draft').verify" in r.code


def test_hunt_is_reproducible(tile_tail):
    again = hunt("residual_tile_tail", **BOUND)
    assert again.case == tile_tail.case and again.error == tile_tail.error and again.examples == tile_tail.examples


def test_hunt_finds_the_k3_only_class():
    r = hunt("specinfer_pingpong_residual", **dict(BOUND, max_V=3))  # tree cases: keep each evaluation cheap
    assert r.found and parse_scheme(r.case.scheme).k == 3  # k >= 3 siblings: the only place this bug shows


@pytest.mark.parametrize("name,n,max_V", [("naive", 40, 6), ("sps_min_form_sorted", 40, 6),
                                          ("specinfer_shuffled_draws", 15, 3)])
def test_hunt_finds_nothing_on_lossless_verifiers(name, n, max_V):
    r = hunt(name, budget=300.0, max_examples=n, max_V=max_V, seed=0)
    assert not r.found and r.examples == n and r.worst_error < 1e-12
    assert "NO COUNTEREXAMPLE" in r.summary()


def _chain_only(instance, rng):
    from specoracle.reference.chain import naive

    return naive(instance, rng)


def test_accepted_kinds():
    assert accepted_kinds("naive") == ("chain",)
    assert accepted_kinds("rrs_q_removes_last_only") == ("without_replacement",)
    assert accepted_kinds(_chain_only) == ("chain",)  # probed: naive refuses branching trees
    assert set(accepted_kinds("specinfer")) >= {"iid", "delayed"}


def test_hunt_on_a_plain_callable_probes_its_kinds():
    r = hunt(_chain_only, budget=300.0, max_examples=5)
    assert not r.found and r.kinds == ("chain",)


@pytest.mark.parametrize("kw", [dict(budget=0), dict(budget=float("nan")), dict(max_examples=0), dict(max_V=1),
                                dict(seed=-1), dict(max_k=1)])
def test_hunt_refuses_meaningless_arguments(kw):
    with pytest.raises(InvalidArgument):
        hunt("naive", **kw)


@settings(max_examples=30)
@given(cases(max_V=5))
def test_cases_are_valid_models(case):
    model, scheme = case.model(), parse_scheme(case.scheme)
    assert model.V == case.V == len(case.P[0]) and len(case.P) == len(case.Q) == case.R
    P, Q = case.tables()
    assert np.allclose(P.sum(axis=1), 1) and np.allclose(Q.sum(axis=1), 1) and (P >= 0).all() and (Q >= 0).all()
    for p, q in zip(case.P, case.Q):
        if min(p) >= NEAR_SCALE:  # a near_equal pair: within 3 / NEAR_SCALE of each other
            assert np.abs(np.array(p) / sum(p) - np.array(q) / sum(q)).max() <= 3 / NEAR_SCALE
    assert scheme.depth >= 1


def test_case_code_rebuilds_the_same_model():
    case = Case(3, ((1, 2, 3), (2, 2, 1)), ((3, 2, 1), (1, 1, 1)), 1, 2, "chain(2)")
    ns: dict = {}
    exec(case.code("from specoracle import mutants", "mutants.get('bonus_from_draft').verify"), ns)
    model = case.model()
    for u in [(), (0,), (2,), (1, 2), (2, 2)]:  # rows (|u| + 2 sum u) % 2
        assert np.array_equal(ns["model"].p(u), model.p(u)) and np.array_equal(ns["model"].q(u), model.q(u))
    assert np.array_equal(model.p((0,)), np.array([2, 2, 1]) / 5)  # row (1 + 0) % 2 = 1
    assert np.array_equal(model.p((0, 0)), np.array([1, 2, 3]) / 6)  # row (2 + 0) % 2 = 0
    r = exact.evaluate(get("bonus_from_draft").verify, model, parse_scheme("chain(2)"))
    assert ns["verdict"].max_error == r.max_error > 0


def test_package_level_hunt_is_the_function():
    assert specoracle.hunt is hunt


def test_cli_hunt(capsys):
    code = main(["hunt", "bonus_from_draft", "--budget", "300", "--max-examples", "400", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["found"] is True and "assert not verdict.lossless" in out["code"]
    code = main(["hunt", "naive", "--max-examples", "5", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["found"] is False
    assert main(["hunt", "no_such_verifier"]) == 2


def test_cli_hunt_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["hunt", "--help"])
    text = capsys.readouterr().out
    assert exc.value.code == 0 and "usage: specoracle hunt" in text and "--budget" in text and "--json" in text


def test_simplify_drops_what_the_failure_does_not_need():
    # bonus_from_draft fails wherever q[L] != p[L]; a 3-token, 2-row-pair, chain(2) case reduces to
    # V = 2, one row pair, chain(1), with each row divided by its gcd
    big = Case(3, ((2, 2, 2), (4, 2, 2)), ((2, 4, 2), (6, 2, 2)), 1, 1, "chain(2)")
    m = get("bonus_from_draft")

    def error_of(c):
        return float(exact.evaluate(m.verify, c.model(), parse_scheme(c.scheme)).max_error)

    small, err = simplify(big, error_of(big), ("chain",), error_of)
    assert (small.V, small.R, small.scheme) == (2, 1, "chain(1)")
    assert all(math.gcd(*row) == 1 for row in small.P + small.Q)
    assert err == error_of(small) > 1e-12
