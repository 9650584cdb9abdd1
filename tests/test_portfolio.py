"""The zero-configuration portfolio (issue 14.1): its table covers where bugs hide, every accepted
tree kind runs, the run respects its budget, failures shrink to pasteable minimal cases, and two
bugs invisible on the named examples (one needs V >= 5, one needs p close to q) are caught.

The whole-catalog run (every mutant flagged, every true negative passed, by the zero-configuration
call) is ``benchmarks/bench_portfolio.py`` and the slow test at the end.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest

from specoracle import mutants, portfolio
from specoracle.check import check_lossless
from specoracle.drafting import KINDS, parse_scheme
from specoracle.errors import BudgetExceeded, InvalidArgument
from specoracle.examples import MODELS, parse_model
from specoracle.instance import Outcome
from specoracle.models import SPARSE_PATTERNS

ROOT = Path(__file__).resolve().parent.parent


def _chain_verifier(name, accept, residual):
    """Token-level speculative sampling with a pluggable acceptance probability and residual law,
    written against the public Instance interface (chains: node i's parent is i - 1)."""

    def verify(inst, rng):
        p, q, tok = inst.p, inst.q, inst.tree.tokens
        for i in range(1, inst.N):
            x = tok[i]
            if not rng.bernoulli(accept(p[i - 1][x], q[i - 1][x]), ("accept", i)):
                return Outcome(i - 1, rng.categorical(residual(p[i - 1], q[i - 1]), ("residual", i - 1)))
        return Outcome(inst.N - 1, rng.categorical(p[inst.N - 1], ("residual", inst.N - 1)))

    verify.__name__ = name
    verify.schemes = {"chain"}
    return verify


def _ratio(p, q):
    return min(1.0, p / q)


def _residual(p, q):
    r = np.maximum(np.asarray(p, float) - np.asarray(q, float), 0.0)
    return r / r.sum() if r.sum() > 0 else np.asarray(p, float)


def _tile4_residual(p, q):
    """The residual over the first 4 tokens only (a kernel tile of 4 whose tail is dropped)."""
    r = np.maximum(np.asarray(p, float) - np.asarray(q, float), 0.0)
    r[4:] = 0.0
    return r / r.sum() if r.sum() > 0 else np.asarray(p, float)


def _near_equal_accept(p, q):
    """Treats ratios within 1% of 1 as 1 (a tolerance meant for rounding)."""
    r = p / q
    return 1.0 if r > 0.99 else min(1.0, r)


TILE4 = _chain_verifier("tile4_residual", _ratio, _tile4_residual)
NEAR_EQUAL = _chain_verifier("near_equal_accept", _near_equal_accept, _residual)
CORRECT = _chain_verifier("my_naive", _ratio, _residual)


# --- the table --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _rows():
    return [(c, parse_model(c.model), parse_scheme(c.scheme)) for c in portfolio.PORTFOLIO]


def test_every_row_parses_and_names_itself():
    for c, m, s in _rows():
        assert m.name == c.model and s.name == c.scheme, c


def test_the_table_covers_where_bugs_hide():
    rows = _rows()
    vocab = {m.V for _, m, _ in rows}
    assert set(range(2, 7)) <= vocab
    assert {f"E{i}" for i in range(1, 6)} <= {c.model for c, _, _ in rows}
    chains = {s.depth for _, _, s in rows if s.kind == "chain"}
    assert {1, 2, 3, 4} <= chains
    for kind in KINDS[1:]:
        ks = [max(s.k, max(s.branching, default=1)) for _, _, s in rows if s.kind == kind]
        assert ks and max(ks) >= 3, kind  # every tree kind, with up to k = 3 (or more) drafts per node
    assert max(s.depth for _, _, s in rows if s.kind != "chain") >= 3  # trees of depth 3
    # p close to q (but not equal) and p == q, measured on the rows themselves
    gaps = [float(np.abs(np.asarray(m.p(()), float) - np.asarray(m.q(()), float)).max()) for _, m, _ in rows]
    assert any(0 < g < 1e-2 for g in gaps) and any(g == 0 for g in gaps)
    # sparse rows: every pattern, and q = 0 where p > 0 really occurs
    assert set(SPARSE_PATTERNS) <= {c.model.split(":")[3] for c, _, _ in rows if c.model.startswith("sparse")}
    assert any(np.any((np.asarray(m.q(()), float) == 0) & (np.asarray(m.p(()), float) > 0)) for _, m, _ in rows)
    # transforms on one side and on both, n-gram pairs
    sides = {side for c, _, _ in rows for side in re.findall(r"\[(\w+)\]", c.model)}
    sides |= {"both"} if any("|" in c.model and "[" not in c.model.split("|")[-1] for c, _, _ in rows) else set()
    assert {"target", "draft", "both"} <= sides
    assert any(c.model.startswith("ngram") for c, _, _ in rows)


def test_readme_holds_the_portfolio_table():
    assert portfolio.portfolio_table() in (ROOT / "README.md").read_text()


# --- which cases run ----------------------------------------------------------------------------
def test_chain_verifier_runs_chains_only_and_tree_verifier_every_kind():
    assert {c.kind for c in portfolio.cases_for("bv")} == {"chain"}
    assert {c.kind for c in portfolio.cases_for("traversal")} == set(KINDS)
    assert {c.kind for c in portfolio.cases_for("gbv")} == {"chain", "iid", "delayed"}
    m = mutants.get("specinfer_on_wor")  # a Mutant declares its kinds
    assert {c.kind for c in portfolio.cases_for(m)} == {"without_replacement"}


def test_given_model_or_scheme_is_fixed_in_every_case():
    rows = portfolio.cases_for("bv", model="E1")
    assert {c.model for c in rows} == {"E1"} and len({c.scheme for c in rows}) == len(rows)
    rows = portfolio.cases_for("bv", scheme="chain(1)")
    assert {c.scheme for c in rows} == {"chain(1)"} and len({c.model for c in rows}) == len(rows)


# --- the run -----------------------------------------------------------------------------------
def test_zero_configuration_pass_is_exact_and_lists_its_cases():
    v = check_lossless(CORRECT, budget_seconds=4)
    assert v.lossless and v.kind == "exact" and len(v.cases) >= 10
    assert v.words == f"LOSSLESS (exact, max error {v.max_error:.2g}, {len(v.cases)} cases)"
    assert v.max_error == max(c.max_error for c in v.cases) < 1e-12
    assert all(c.scheme.startswith("chain") for c in v.cases)
    assert f"{len(v.cases)} cases" in v.summary() and v.cases[0].model in v.summary()


def test_budget_is_respected_and_skips_are_listed():
    v = check_lossless("traversal", budget_seconds=2)
    assert v.lossless and v.skipped and v.seconds < 2 + 3  # one case may overrun its estimate
    assert all("budget" in s for s in v.skipped)
    with pytest.raises(InvalidArgument):
        check_lossless("bv", budget_seconds=0)
    with pytest.raises(BudgetExceeded, match="no portfolio case fits"):
        check_lossless("traversal", model="random:6:0", budget_seconds=1e-4)
    with pytest.raises(InvalidArgument, match="no portfolio case fits"):
        check_lossless("bv", scheme="iid(2,2)")  # bv verifies chains only


def test_plain_callable_trees_are_tried_and_refusals_noted():
    """A callable that declares no kinds is tried on every kind; a chain verifier refuses trees."""
    bare = mutants.get("accept_if_target_sample_matches").verify  # a correct chain-only verifier
    assert not hasattr(bare, "schemes")
    v = check_lossless(bare, budget_seconds=3)
    assert v.lossless and {c.scheme.split("(")[0] for c in v.cases} == {"chain"}
    assert len(v.notes) == 3 and all("refused" in n for n in v.notes)
    tree = mutants.get("sample_target_only").verify  # correct on every kind
    w = check_lossless(tree, budget_seconds=3)
    assert w.lossless and not w.notes
    assert {parse_scheme(c.scheme).kind for c in w.cases} == set(KINDS)


@pytest.mark.parametrize("bug,hides_from", [(TILE4, "V <= 4"), (NEAR_EQUAL, "p far from q")],
                         ids=["tile4_residual", "near_equal_accept"])
def test_bugs_invisible_on_the_named_examples_are_caught(bug, hides_from):
    for name in MODELS:  # invisible on every named example, at every chain depth of the table
        for L in (1, 2, 3):
            assert check_lossless(bug, name, f"chain({L})", method="exact").lossless, (name, L)
    v = check_lossless(bug)
    assert not v.lossless and v.kind == "exact", v.summary()
    assert v.worst.split()[0] not in MODELS, v.worst  # found on a designed row
    if bug is TILE4:
        assert parse_model(v.worst.split()[0]).V >= 5
    # and on the p-close-to-q row alone
    near = check_lossless(bug, model="random:5:4:0.001", budget_seconds=10)
    assert not near.lossless if bug is NEAR_EQUAL else True, near.summary()


def test_minimal_failing_case_is_pasteable_smaller_and_still_fails():
    v = check_lossless(TILE4)
    code = v.minimal_case
    assert "def test_tile4_residual_minimal_case" in code and "method=\"exact\"" in code
    namespace = {"tile4_residual": TILE4}
    exec(compile(code, "<minimal>", "exec"), namespace)
    with pytest.raises(AssertionError, match="NOT LOSSLESS"):
        namespace["test_tile4_residual_minimal_case"]()
    failing = parse_model(v.worst.split()[0])
    shrunk = re.search(r"'(chain\(\d\))'", code).group(1)
    assert parse_scheme(shrunk).depth <= parse_scheme(v.worst.split()[1]).depth
    # the bug needs a fifth token, so V stays 5; rows are rounded to a short grid, few prefixes listed
    rows = re.findall(r"\[([^\]]*)\]", code.split("def test_")[1])
    assert failing.V == 5 and rows and all(len(r.split(",")) == 5 for r in rows)
    assert all(abs(float(x) * 100 - round(float(x) * 100)) < 1e-9 for r in rows for x in r.split(","))
    assert len(rows) <= 4


def test_shrink_reaches_the_textbook_case():
    """bv_forward_scan (ALGORITHMS-2.md §11 M3) fails already on a V=2 context-free chain(2);
    the shrunk case is exactly that shape, with rows on a short decimal grid."""
    bug = mutants.get("bv_forward_scan")
    s = portfolio.shrink(bug.verify, parse_model("E5"), parse_scheme("chain(3)"), bug.schemes)
    assert s.V == 2 and s.scheme.name == "chain(2)" and list(s.p_rows) == [()] and list(s.q_rows) == [()]
    assert all(abs(x * 20 - round(x * 20)) < 1e-12 for row in (s.p_rows[()], s.q_rows[()]) for x in row)
    again = check_lossless(bug.verify, s.model, s.scheme, method="exact")
    assert not again.lossless and abs(again.max_error - s.max_error) < 1e-15


def _eager_residual(p, q):
    """The residual normalised before it is needed (a kernel computing every row up front), in
    Python floats: p == q leaves no mass, and 1 / 0 raises."""
    r = np.maximum(np.asarray(p, float) - np.asarray(q, float), 0.0)
    return r * (1.0 / float(r.sum()))


def _eager(inst, rng):
    p, q, tok = inst.p, inst.q, inst.tree.tokens
    laws = [_eager_residual(p[i], q[i]) for i in range(inst.N)]  # raises where p == q
    for i in range(1, inst.N):
        if not rng.bernoulli(_ratio(p[i - 1][tok[i]], q[i - 1][tok[i]]), ("accept", i)):
            return Outcome(i - 1, rng.categorical(laws[i - 1], ("residual", i - 1)))
    return Outcome(inst.N - 1, rng.categorical(p[inst.N - 1], ("residual", inst.N - 1)))


_eager.schemes = {"chain"}


def test_a_verifier_that_raises_on_a_case_fails_it_with_a_minimal_case():
    v = check_lossless(_eager, budget_seconds=20)
    assert not v.lossless and v.raised.startswith("ZeroDivisionError"), v.summary()
    assert v.words.startswith("NOT LOSSLESS (the verifier raised ZeroDivisionError")
    namespace = {"_eager": _eager}
    exec(compile(v.minimal_case, "<minimal>", "exec"), namespace)
    assert "raises ZeroDivisionError" in v.minimal_case
    with pytest.raises(ZeroDivisionError):
        namespace["test_eager_minimal_case"]()
    # the shrunk model holds a row with p == q, the only place the bug fires
    m = re.search(r"context_free\((\[[^\]]*\]), (\[[^\]]*\])", v.minimal_case)
    assert m is None or m.group(1) == m.group(2)


def test_shrink_refuses_a_passing_case():
    with pytest.raises(InvalidArgument, match="passes"):
        portfolio.shrink("bv", parse_model("E1"), parse_scheme("chain(2)"), {"chain"})


@pytest.mark.slow
@pytest.mark.parametrize("m", mutants.catalog() + mutants.true_negatives(), ids=lambda m: m.name)
def test_zero_configuration_flags_every_mutant_and_passes_every_true_negative(m):
    v = check_lossless(m)
    assert v.conclusive and v.lossless == m.lossless, v.summary()
