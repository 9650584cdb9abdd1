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
