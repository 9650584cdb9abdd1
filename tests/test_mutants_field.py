"""The field mutants (specoracle/mutants/field.py): each is flagged by the exact engine on its own
case, is invisible exactly where its docstring says (the cases a zero-configuration portfolio must
reach: V >= 5, p ~= q, depth >= 3, k >= 3, context dependence), and every field true negative is
exactly lossless on several models and schemes.
"""
from __future__ import annotations

import numpy as np
import pytest

from specoracle import exact, mutants
from specoracle.check import check_lossless
from specoracle.drafting import parse_scheme
from specoracle.mutants import field
from specoracle.reports import parse_model

FIELD = field.MUTANTS
NEGATIVES = field.TRUE_NEGATIVES


def _err(m, model: str, scheme: str) -> float:
    return float(exact.evaluate(m.verify, parse_model(model), parse_scheme(scheme)).max_error)


def test_field_catalog_is_registered_and_new():
    names = [m.name for m in mutants.catalog()]
    assert len(names) == len(set(names))
    assert len(FIELD) >= 15 and len(NEGATIVES) >= 5
    for m in FIELD:
        assert mutants.get(m.name) is m and not m.lossless
        assert m.description and "\n" not in m.description
    for m in NEGATIVES:
        assert m in mutants.true_negatives()


@pytest.mark.parametrize("m", FIELD, ids=lambda m: m.name)
def test_exact_check_flags_field_mutant(m):
    v = check_lossless(m.verify, parse_model(m.model), parse_scheme(m.scheme), method="exact")
    assert not v.lossless and v.max_error > 1e-9, v.summary()


# (mutant, cases where it is exactly lossless, a case where it is not): the class each belongs to
VISIBILITY = [
    ("residual_tile_tail", [("E4", "chain(2)"), ("E5", "chain(2)"), ("random:6:2", "chain(1)"),
                            ("random:7:2", "chain(1)")], ("random:5:2", "chain(1)")),
    ("residual_topk3", [("E4", "chain(2)"), ("E5", "chain(2)"), ("random:4:16", "chain(2)")],
     ("random:5:16", "chain(1)")),
    ("allclose_fast_accept", [(e, "chain(2)") for e in ("E1", "E2", "E3", "E4", "E5")] + [("random:4:0", "chain(1)")],
     ("random:4:0:0.001", "chain(1)")),
    ("draft_row_tile_index", [("E5", "chain(2)"), ("E4", "chain(3)")], ("E5", "chain(3)")),
    ("specinfer_pingpong_residual", [("E5", "iid(2,2)"), ("E2", "delayed(2,1,1)")], ("E5", "iid(3,1)")),
    ("rrs_q_removes_last_only", [("E5", "wor(2,1)"), ("random:4:2:1.0", "wor(2)")], ("random:4:2:1.0", "wor(3)")),
    ("tree_rows_by_depth", [("E4", "iid(2,2)"), ("E5", "chain(2)")], ("E5", "iid(2,2)")),
    ("bv_stop_prev_row", [("E1", "chain(3)"), ("E4", "chain(2)")], ("E5", "chain(2)")),
]


@pytest.mark.parametrize("name,hidden,shown", VISIBILITY, ids=[v[0] for v in VISIBILITY])
def test_field_mutant_hides_where_documented(name, hidden, shown):
    m = mutants.get(name)
    for model, scheme in hidden:
        assert _err(m, model, scheme) < 1e-12, (model, scheme)
    assert _err(m, *shown) > 1e-6


TN_CASES = {
    "chain": [("E1", "chain(2)"), ("E3", "chain(3)"), ("E5", "chain(2)"), ("random:5:2", "chain(1)"),
              ("random:4:0:0.001", "chain(2)")],
    "tree": [("E2", "iid(2,1)"), ("E3", "iid(2,2)"), ("E5", "delayed(2,1,1)"), ("random:5:2", "iid(3,1)")],
}


def _tn_params():
    out = []
    for m in NEGATIVES:
        cases = TN_CASES["chain"] if m.schemes == frozenset({"chain"}) else TN_CASES["tree"]
        out += [pytest.param(m, model, scheme, id=f"{m.name}-{model}-{scheme}") for model, scheme in cases]
    return out


@pytest.mark.parametrize("m,model,scheme", _tn_params())
def test_field_true_negative_is_exactly_lossless(m, model, scheme):
    v = check_lossless(m.verify, parse_model(model), parse_scheme(scheme), method="exact")
    assert v.lossless and v.max_error < 1e-12, v.summary()


def test_field_true_negatives_rational():
    """Exactly 0 in Fractions where the verifier's arithmetic allows it (no float casts)."""
    from specoracle import examples

    for name, scheme in [("sps_rejection_coin", "chain(2)"), ("sps_coins_first", "chain(2)"),
                         ("bv_tau_categorical", "chain(2)"), ("naive_tree_last_draw", "iid(2,2)")]:
        r = exact.evaluate(mutants.get(name).verify, examples.E2(rational=True), parse_scheme(scheme), rational=True)
        assert r.max_error == 0, name


def test_float32_le_accept_matches_the_float32_grid():
    # independent truth: count the float32 uniforms k 2^-24 that pass u <= r
    grid = np.arange(2**24, dtype=np.float32) / np.float32(2**24)
    for r in (0.0, 0.1, 1 / 3, 0.5, 0.999999, 2.0**-24):
        assert field.float32_le_accept(r) == np.count_nonzero(grid <= r) / 2**24, r
    assert field.float32_le_accept(1.0) == 1.0
