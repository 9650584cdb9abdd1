"""The engine conformance table: rows, skipped engines, errors, agreement with the expected verdict.

The engines' own verdicts are tested in test_adapters*.py; here the cases are replaced by fast
pure-torch ones (vLLM's contract written in torch, correct and with a layout bug), so what is
checked is the table's logic: a correct kernel is reported lossless, a buggy one NOT lossless, both
with the design of check_lossless, a missing engine as skipped with its install command, a crashing
case as an error row.
"""
from __future__ import annotations

import json

import pytest


from specoracle import models  # noqa: E402
from specoracle.adapters import conformance as conf  # noqa: E402
from specoracle.errors import UnknownName  # noqa: E402


def _contract(fn_name: str, **kw):
    def make():
        from specoracle.adapters import vllm

        return vllm.VLLMVerifier(getattr(vllm, fn_name), **kw)

    return make


def _broken():
    raise RuntimeError("engine exploded")


FAST = (
    conf.Case("vllm", "torch contract", "lossless", _contract("reference_rejection_sample", ragged=True),
              lambda: models.random_model(4, 3), "chain(3)", 0.05, "pure torch"),
    conf.Case("vllm", "padded offsets", "lossless", _contract("padded_offset_rejection_sample", ragged=True),
              lambda: "E5", "chain(3)", 0.05, "layout bug"),
    conf.Case("eagle", "crash", "lossless", _broken, lambda: "E5", "chain(1)", 0.05, "raises"),
)


@pytest.fixture
def fast_cases(monkeypatch):
    monkeypatch.setattr(conf, "CASES", FAST)
    monkeypatch.setattr(conf, "_installed", lambda engine: True)


def test_rows_report_verdict_design_and_agreement(fast_cases):
    rows = conf.conformance(["vllm"], seed=0)
    assert [(r.case, r.verdict, r.agrees) for r in rows] == [
        ("torch contract", "lossless", True),
        ("padded offsets", "NOT lossless", False),  # expected lossless, found lossy: news
    ]
    assert all(r.n > 0 and 0 < r.detectable_tv <= 0.05 and r.seconds > 0 for r in rows)
    # the flag was confirmed on an independent seed, and the table shows both p-values
    assert rows[0].p_confirm is None and rows[1].p_confirm is not None and rows[1].p_confirm <= conf.ALPHA
    assert "p conf" in conf.conformance_table(rows).splitlines()[0]
    table = conf.conformance_table(rows)
    assert "differs from expected" in table.splitlines()[3] and "differs" not in table.splitlines()[2]
    json.dumps([r.as_dict() for r in rows])  # JSON-ready


def test_errors_become_rows(fast_cases):
    (row,) = conf.conformance(["eagle"])
    assert row.verdict == "error" and row.agrees is None and "engine exploded" in row.note


def test_missing_engines_are_skipped_with_the_install_command(monkeypatch):
    monkeypatch.setattr(conf, "_installed", lambda engine: False)
    rows = conf.conformance()
    assert {r.engine for r in rows} == set(conf.ENGINES) and len(rows) == len(conf.CASES)
    assert all(r.verdict == "skipped" and r.n is None and "pip install" in r.note for r in rows)
    assert any("--no-deps eagle-llm==1.2.1" in r.note for r in rows)


def test_unknown_engine():
    with pytest.raises(UnknownName, match="transformers"):
        conf.conformance(["sglang"])


def _row(case, verdict, p, p_confirm):
    return conf.ConformanceRow("vllm", case, "lossless", verdict, 1000, 0.05, p, 1.0, "0", "why", p_confirm)


def test_the_table_is_one_holm_family_at_both_stages():
    """Three cases ran (one skipped): Holm at 0.01 over 3 needs p <= 0.0033 for the smallest at
    each stage. Case a: 1e-4 then 1e-3, kept. Case b: individually confirmed at 0.01 (0.006 then
    0.004) but its first stage is not below 0.01/2 after a's rejection: inconclusive, with a note."""
    rows = [_row("a", "NOT lossless", 1e-4, 1e-3), _row("b", "NOT lossless", 0.006, 0.004),
            _row("c", "lossless", 0.5, None),
            conf.ConformanceRow("eagle", "d", "lossless", "skipped", None, None, None, 0.0, None, "not installed")]
    out = conf.corrected(rows)
    assert [r.verdict for r in out] == ["NOT lossless", "inconclusive", "lossless", "skipped"]
    assert "Holm over 3 cases" in out[1].note and out[1].agrees is None
    assert out[0] == rows[0] and out[2:] == rows[2:]


def test_quick_runs_the_marked_cases(monkeypatch):
    monkeypatch.setattr(conf, "_installed", lambda engine: False)
    rows = conf.conformance(quick=True)
    assert [r.case for r in rows] == [c.name for c in conf.CASES if c.quick]
    assert sorted(r.engine for r in rows) == sorted(conf.ENGINES)  # one case per engine
