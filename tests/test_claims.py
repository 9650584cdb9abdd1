"""The claims table: every seed paper covered, verdicts from the numbers, the extra-rows hook, the report
section and the CLI.

Truths used: values established independently in other tests and the docs (ALGORITHMS.md §5.4
E2 GBV 2.4730 < 2.6395; the third-party rule's first token 29/80 = 0.3625 on E1 iid(2,1); GBV at
p == q = (1/2, 1/2), iid(2,2), 2.4375 vs BV 3; the information-agnostic LP equals BV); the verdict
rule on hand-made flags.
"""
import json
import subprocess
import sys

import pytest

from specoracle import claims
from specoracle.claims import VERDICTS, Claim, claim_rows, verdict_of
from specoracle.errors import InvalidArgument


@pytest.fixture(scope="module")
def rows():
    return claim_rows(quick=True)


def _row(rows, paper, words):
    hits = [r for r in rows if r.paper.startswith(paper) and words in r.claim]
    assert len(hits) == 1, [r.claim for r in rows]
    return hits[0]


def test_every_seed_paper_has_rows(rows):
    papers = {r.paper.split(" (")[0] for r in rows}
    assert papers == {"GBV", "UniVer", "SpecTr-GBV", "DDTE"}
    assert all(r.verdict in VERDICTS and r.claim and r.measured and r.deciding_case for r in rows)


def test_gbv_rows_match_known_numbers(rows):
    better = _row(rows, "GBV", "over block verification")
    assert better.verdict == "holds here but not there"
    assert "2.4375" in better.deciding_case and "3.0000" in better.deciding_case
    in_k = _row(rows, "GBV", "number of paths K")
    assert in_k.verdict == "holds here but not there" and in_k.deciding_case.startswith("E2: K=3 2.4730")
    assert _row(rows, "GBV", "optimal among single-path").verdict == "holds"


def test_spectr_gbv_rows_match_known_numbers(rows):
    lossless = _row(rows, "SpecTr-GBV", "lossless")
    assert "0.3625" in lossless.measured and lossless.verdict == "does not hold here"
    assert _row(rows, "SpecTr-GBV", "optimal").verdict == "does not hold here"
    grows = _row(rows, "SpecTr-GBV", "increases with")
    assert grows.verdict == "does not hold here" and grows.deciding_case.startswith("E3 iid(2,2)")


def test_selector_rows_follow_the_shipped_margins(rows):
    # The three selector rows restate specoracle.selector.margins() (shipped checkpoints, two seeds)
    # and their verdicts follow the rule on those numbers: a gain counts above two standard errors,
    # from a selector that uses more than one action.
    from specoracle.selector import margins

    ms = margins()
    spec = [m for m in ms if m.kind == "specinfer"]
    joint = [m for m in ms if m.kind == "joint"]
    assert [m.seed for m in spec] == [m.seed for m in joint] == [0, 1]
    cases = [("raises its base verifier", spec, "specinfer"), ("beats Traversal Verification", spec, "traversal"),
             ("also picks the verifier", joint, "traversal")]
    for words, group, v in cases:
        row = _row(rows, "DDTE", words)
        assert row.verdict == verdict_of([m.over_static[v] > 2 * m.se_over_static[v] and m.n_distinct > 1
                                          for m in group])
        for m in group:
            assert f"seed {m.seed} {100 * m.over_static[v]:+.1f}% (SE {100 * m.se_over_static[v]:.1f}%)" in row.measured


def test_univer_and_ddte_rows(rows):
    assert _row(rows, "UniVer", "lossless").verdict == "holds"
    assert _row(rows, "UniVer", "over recursive rejection").verdict == "holds here but not there"
    assert _row(rows, "DDTE", "delaying").verdict == "holds here but not there"


def test_a_toy_model_is_not_a_real_llm_said_once(rows):
    text = " ".join(f"{r.claim} {r.measured} {r.deciding_case}" for r in rows)
    assert "real LLM" not in text  # said once, in the module docstring and the report summary
    assert "not a real LLM" in claims.__doc__


@pytest.mark.parametrize("flags, verdict", [([True, True], "holds"), ([False], "does not hold here"),
                                            ([True, False], "holds here but not there")])
def test_verdict_rule(flags, verdict):
    assert verdict_of(flags) == verdict


def test_extra_rows_hook(monkeypatch):
    for name in ("_gbv_rows", "_univer_rows", "_spectr_gbv_rows", "_ddte_rows", "_selector_rows"):
        monkeypatch.setattr(claims, name, lambda quick: [])
    extra = Claim("DDTE (selector)", "selector beats traversal", "x", "does not hold here", "y")
    assert claim_rows([extra]) == [extra]
    with pytest.raises(InvalidArgument, match="Claim"):
        claim_rows([("not", "a", "claim")])
    with pytest.raises(InvalidArgument, match="verdict"):
        Claim("p", "c", "m", "mostly", "d")


def test_report_section_and_cli(monkeypatch, capsys):
    from specoracle.cli import main
    from specoracle.reports import quick
    from specoracle.reports.claims import claims as section
    from specoracle.reports.sections import SECTIONS, Context

    fake = [Claim("GBV (x)", "c", "m", "holds", "d"), Claim("DDTE (x)", "c2", "m2", "does not hold here", "d2")]
    monkeypatch.setattr(claims, "claim_rows", lambda extra_rows=(), quick=False: fake + list(extra_rows))
    sec = section(Context(quick(progress=False)))
    assert sec.status == "ok" and len(sec.tables[0].rows) == 2
    assert "1 holds, 0 holds here but not there, 1 does not hold here" in sec.summary
    assert "not a real LLM" in sec.summary
    assert any(key == "claims" for _, key, _, _ in SECTIONS)
    assert main(["claims", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # one JSON object, like every other --json answer
    assert [r["verdict"] for r in out["claims"]] == ["holds", "does not hold here"]


def test_claims_module_does_not_import_torch():
    code = "import sys, specoracle.claims; sys.exit(1 if 'torch' in sys.modules or 'cvxpy' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd="/").returncode == 0
