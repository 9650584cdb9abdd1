"""The `specoracle` command line: help everywhere, exit status, JSON output, model names, the
README's promises (the adversarial inputs of issue 13 are in test_adversarial_front.py).

Expected numbers are worked values from ALGORITHMS-2.md (§3.8 block efficiencies, §11 mutant
errors), not the CLI's own output.
"""
from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from specoracle import cli, mutants
from specoracle.errors import InvalidInstance, UnknownName
from specoracle.reports import parse_model


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("sub", [(), ("report",), ("check",), ("bound",), ("bench",), ("engines",)], ids=lambda s: "-".join(s) or "top")
def test_help_everywhere(capsys, sub):
    with pytest.raises(SystemExit) as exc:
        cli.main([*sub, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: specoracle" in text
    if sub:
        assert "--json" in text


@pytest.mark.parametrize("mutant", [m.name for m in mutants.catalog()])
def test_check_exits_nonzero_on_every_mutant(capsys, mutant):
    code, out, _ = run(capsys, "check", mutant, "--method", "exact", "--json")
    verdict = json.loads(out)
    assert code == 1 and verdict["lossless"] is False, verdict


@pytest.mark.parametrize("name", [m.name for m in mutants.true_negatives()])
def test_check_passes_true_negatives(capsys, name):
    code, out, _ = run(capsys, "check", name, "--method", "exact", "--budget", "10", "--json")
    assert code == 0 and json.loads(out)["lossless"] is True


def test_check_mutant_error_is_the_worked_number(capsys):
    # ALGORITHMS-2.md §11 M3: BV forward scan on E1, L = 2, error 0.148 (= 4/27)
    code, out, _ = run(capsys, "check", "bv_forward_scan", "--model", "E1", "--scheme", "chain(2)",
                       "--method", "exact", "--json")
    v = json.loads(out)
    assert code == 1
    assert abs(v["max_error"] - 4 / 27) < 1e-9


def test_check_bv_is_lossless_with_worked_efficiency(capsys):
    # ALGORITHMS-2.md §3.8: BV on E1, L = 2: E[tau] = 11/9, so BE = 20/9
    code, out, _ = run(capsys, "check", "bv", "--model", "E1", "--scheme", "chain(2)", "--method", "exact", "--json")
    v = json.loads(out)
    assert code == 0 and v["lossless"] is True and v["status"] == "lossless"
    assert abs(v["block_efficiency"] - float(Fraction(20, 9))) < 1e-9


def test_check_human_output_names_the_verdict(capsys):
    code, out, _ = run(capsys, "check", "sps_resample_target", "--method", "exact")
    assert code == 1 and "NOT LOSSLESS" in out and "E1" in out


def test_check_unknown_name_exits_2_with_suggestion(capsys):
    code, _, err = run(capsys, "check", "specinfr")
    assert code == 2 and "specinfer" in err and "Did you mean" in err


def test_check_bad_scheme_exits_2(capsys):
    code, _, err = run(capsys, "check", "bv", "--scheme", "iid(2")
    assert code == 2 and "scheme" in err


def test_console_script_exit_status_on_a_mutant():
    """The installed entry point (not just main()) returns 1 on a mutant, 0 on a correct verifier."""
    exe = Path(sys.executable).with_name("specoracle")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "specoracle"]
    bad = subprocess.run([*cmd, "check", "bv_cumprod", "--method", "exact"], capture_output=True, text=True,
                         timeout=300)
    good = subprocess.run([sys.executable, "-m", "specoracle", "check", "naive", "--method", "exact"],
                          capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1, bad.stderr
    assert good.returncode == 0, good.stderr


def test_check_twin_on_device(capsys):
    code, out, _ = run(capsys, "check", "bv", "--model", "E2", "--scheme", "chain(2)", "--device", "cpu",
                       "--samples", "3000", "--json")
    v = json.loads(out)
    assert v["n"] == 3000 and v["outside_support"] == 0 and 0 <= v["p_value"] <= 1
    assert code == {"no loss detected": 0, "not lossless": 1, "inconclusive": 4}[v["status"]]
    assert v["kind"] == "statistical" and v["lossless"] is False  # never lossless from sampling


def test_check_stateful_twin_on_device_judges_whole_sequences(capsys):
    """The --device verdict is against the target: the lossy SpecTr-GBV transcription fails (sequence
    max error 0.056 on E1 iid(2,2)), its lossless variant passes; both twins carry their state."""
    args = ("--model", "E1", "--scheme", "iid(2,2)", "--device", "cpu", "--samples", "20000", "--json")
    code, out, _ = run(capsys, "check", "spectr_gbv", *args)
    v = json.loads(out)
    assert code == 1 and not v["lossless"] and v["scheme"] == "iid(2,2), sequences of 5"
    code, out, _ = run(capsys, "check", "spectr_gbv_lossless", *args)
    v = json.loads(out)
    assert code == 0 and v["passed"] and v["status"] == "no loss detected" and v["outside_support"] == 0
    assert v["verdict"].startswith("NO LOSS DETECTED (chi2, n = 20,000: detects TV >= ")


def test_bound_json_universal_equals_bv_on_a_chain(capsys):
    # on a single path BV is optimal among lossless verifiers, so the universal LP optimum for
    # chain(2) on E1 is BV's efficiency 20/9 (ALGORITHMS-2.md §3.8 / §12.4)
    code, out, _ = run(capsys, "bound", "--model", "E1", "--scheme", "chain(2)", "--which", "universal", "--json")
    res = json.loads(out)
    assert code == 0
    assert abs(res["bounds"]["universal_bound"]["block_efficiency"] - 20 / 9) < 1e-6
    assert abs(res["verifiers"]["bv"] - 20 / 9) < 1e-9


def test_bound_unknown_bound_name_exits_2(capsys):
    code, _, err = run(capsys, "bound", "--which", "universl")
    assert code == 2 and "universal" in err


def test_report_unknown_section_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "report", "--quick", "--only", "exactt", "--out", str(tmp_path / "r"))
    assert code == 2 and "exact" in err


def test_report_only_one_section_json(capsys, tmp_path):
    code, out, _ = run(capsys, "report", "--quick", "--only", "mutants", "--no-progress", "--json",
                       "--out", str(tmp_path / "r"))
    res = json.loads(out)
    assert list(res["sections"]) == ["mutants"] and res["sections"]["mutants"]["status"] == "ok"
    assert code == 0 and res["ok"]
    assert (tmp_path / "r" / "results.json").exists()


@pytest.mark.parametrize("text,V", [("E2", 3), ("E5", 4), ("random:5:1", 5), ("random:3:2:0.2", 3), ("ngram:4", 4),
                                    ("ngram:3:2:1", 3)])
def test_parse_model(text, V):
    assert parse_model(text).V == V


def test_parse_model_random_is_deterministic_and_divergence_zero_means_equal():
    a, b = parse_model("random:4:7"), parse_model("random:4:7")
    assert a.p((1,)).tolist() == b.p((1,)).tolist()
    z = parse_model("random:4:7:0")
    assert z.p((2, 1)).tolist() == z.q((2, 1)).tolist()


@pytest.mark.parametrize("text,err", [("E9", UnknownName), ("random:4", InvalidInstance),
                                      ("random:x:1", InvalidInstance), ("ngram:4:3", InvalidInstance)])
def test_parse_model_errors(text, err):
    with pytest.raises(err):
        parse_model(text)


# --- the README's promises ------------------------------------------------------------------------
README = Path(__file__).resolve().parent.parent / "README.md"


def _code_block_after(heading: str, lang: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    return section.split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def test_readme_quickstart_is_exactly_two_commands():
    block = _code_block_after("## Quickstart", "bash")
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["bash scripts/report.sh", "bash scripts/test.sh"]
    root = README.parent
    assert (root / "scripts" / "report.sh").exists() and (root / "scripts" / "test.sh").exists()


def test_readme_ten_line_example_runs_and_finds_the_bug(capsys):
    code = _code_block_after("## Check your own verifier in ten lines", "python")
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 10
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    # M1 (resample from p after a rejection) on E1, L = 2: error 2/27 = 0.0741 (ALGORITHMS-2.md §11)
    assert capsys.readouterr().out.strip() == "False 0.0741"


def test_bench_json_rows(capsys):
    code, out, _ = run(capsys, "bench", "--verifier", "naive", "--batch", "4", "--vocab", "64", "--repeats", "1",
                       "--scheme", "chain(2)", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1
    row = rows[0]
    assert row["name"] == "naive" and row["B"] == 4 and row["V"] == 64
    assert row["twin_s"] > 0 and row["roofline_s"] > 0
    assert abs(row["ratio"] - row["twin_s"] / row["roofline_s"]) < 1e-9


def test_options_left_out_take_the_library_defaults(capsys, monkeypatch):
    """The CLI passes only what the user gave: check_lossless sees no alpha/tv/power/seed of its own."""
    from specoracle import check

    seen = {}
    real = check.check_lossless

    def spy(*args, **kw):
        if not seen:  # the CLI's call (the portfolio's own calls per case follow)
            seen.update(kw, model=args[1], scheme=args[2])
        return real(*args, **kw)

    monkeypatch.setattr(check, "check_lossless", spy)
    code, _, _ = run(capsys, "check", "naive", "--method", "exact", "--budget", "2")
    assert code == 0 and set(seen) == {"method", "progress", "budget_seconds", "model", "scheme"}
    assert seen["model"] is None and seen["scheme"] is None  # zero configuration


def test_default_scheme_is_one_the_verifier_accepts():
    from specoracle import registry
    from specoracle.drafting import parse_scheme

    for e in registry.entries():
        _, _, scheme, _ = cli._resolve_target(e.name)
        assert e.accepts(parse_scheme(scheme)), (e.name, scheme)


@pytest.mark.parametrize("argv,code", [(("check", "bv_forward_scan", "--method", "exact"), 1),
                                       (("check", "naive", "--method", "exact"), 0),
                                       (("check", "bv", "--method", "chi2", "--samples", "5"), 4)],
                         ids=["fail-1", "pass-0", "inconclusive-4"])
def test_exit_status_per_verdict(capsys, argv, code):
    got, out, _ = run(capsys, *argv)
    assert got == code and {0: "LOSSLESS (exact", 1: "NOT LOSSLESS", 4: "INCONCLUSIVE (chi2"}[code] in out


def test_exact_pass_says_lossless_with_its_evidence(capsys):
    code, out, _ = run(capsys, "check", "naive", "--model", "E1", "--scheme", "chain(2)", "--method", "exact", "--json")
    v = json.loads(out)
    assert code == 0 and v["kind"] == "exact" and v["status"] == "lossless" and v["lossless"] is True
    assert v["verdict"] == f"LOSSLESS (exact, max error {v['max_error']:.2g}, 1 case)"
    code, text, _ = run(capsys, "check", "naive", "--model", "E1", "--scheme", "chain(2)", "--method", "exact")
    assert "LOSSLESS (exact, max error" in text.splitlines()[0]


def test_chi2_pass_never_says_lossless(capsys):
    """A sampled pass bounds the TV it could see; it is not a proof (issue 14.3)."""
    code, out, _ = run(capsys, "check", "naive", "--model", "E1", "--scheme", "chain(1)", "--method", "chi2",
                       "--samples", "20000", "--json")
    v = json.loads(out)
    assert code == 0 and v["kind"] == "statistical" and v["status"] == "no loss detected"
    assert v["passed"] is True and v["lossless"] is False
    assert v["verdict"] == (f"NO LOSS DETECTED (chi2, n = 20,000: detects TV >= {v['detectable_tv']:.2g} "
                            f"with power 0.99)")
    code, text, _ = run(capsys, "check", "naive", "--model", "E1", "--scheme", "chain(1)", "--method", "chi2",
                        "--samples", "20000")
    assert code == 0 and "NO LOSS DETECTED" in text and "LOSSLESS" not in text


# --- your verifier from the command line (issue 14.5) --------------------------------------------
USER_MODULE = """
from specoracle import mutants
from specoracle.reference.chain import naive


def my_verifier(instance, rng):
    return naive(instance, rng)


my_verifier.schemes = {"chain"}
buggy = mutants.get("bv_cumprod").verify
"""

BATCHED_MODULE = """
from specoracle.adapters.batched import reference_chain_sampling as good
from specoracle.adapters.batched import residual_next_row_chain_sampling as bad
"""


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "userverifiers.py").write_text(USER_MODULE)
    (tmp_path / "userbatched.py").write_text(BATCHED_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_check_module_function_runs_the_portfolio(capsys, user_dir):
    code, out, _ = run(capsys, "check", "userverifiers:my_verifier", "--budget", "3", "--json")
    v = json.loads(out)
    assert code == 0 and v["kind"] == "exact" and v["lossless"] is True and v["verifier"] == "userverifiers:my_verifier"
    assert len(v["cases"]) >= 5 and all(c["scheme"].startswith("chain") for c in v["cases"])
    assert v["verdict"] == f"LOSSLESS (exact, max error {v['max_error']:.2g}, {len(v['cases'])} cases)"


def test_check_file_function_flags_a_bug_with_a_minimal_case(capsys, user_dir):
    code, out, _ = run(capsys, "check", str(user_dir / "userverifiers.py") + ":buggy", "--budget", "20")
    assert code == 1 and out.startswith("bv_cumprod: NOT LOSSLESS (exact")
    assert "minimal failing case" in out and "def test_bv_cumprod_minimal_case" in out


def test_check_module_function_on_one_case(capsys, user_dir):
    code, out, _ = run(capsys, "check", "userverifiers:buggy", "--model", "E1", "--scheme", "chain(2)",
                       "--method", "exact", "--json")
    v = json.loads(out)
    # ALGORITHMS-2.md §11 M4 (BV without the clamp, cumprod(p/q)): E1, L = 2, error 0.0741 = 2/27
    assert code == 1 and v["cases"] == [] and abs(v["max_error"] - 2 / 27) < 1e-9


@pytest.mark.parametrize("spec,fragment", [("userverifiers:nope", "nope"), ("no_such_module:f", "no_such_module"),
                                           ("missing/file.py:f", "no file"), ("userverifiers:", "expected")])
def test_check_bad_user_target_is_a_usage_error(capsys, user_dir, spec, fragment):
    code, out, _ = run(capsys, "check", spec, "--json")
    err = json.loads(out)["error"]
    assert code == 2 and fragment in err["message"]


def test_check_needs_exactly_one_target(capsys, user_dir):
    assert run(capsys, "check", "--json")[0] == 2
    assert run(capsys, "check", "bv", "--batched", "userbatched:good", "--json")[0] == 2


@pytest.mark.parametrize("fn,code", [("bad", 1), ("good", 0)])
def test_check_batched_function(capsys, user_dir, fn, code):
    """A [B, L, V] function through BatchedVerifier: chi-squared only, so a pass is NO LOSS DETECTED."""
    got, out, _ = run(capsys, "check", "--batched", f"userbatched:{fn}", "--model", "E3", "--scheme", "chain(2)",
                      "--samples", "20000", "--json")
    v = json.loads(out)
    assert got == code and v["kind"] == "statistical" and v["lossless"] is False
    assert v["status"] == {0: "no loss detected", 1: "not lossless"}[code]


def test_api_accepts_every_cli_model_string():
    from specoracle.check import check_lossless

    for text in ("E5", "random:4:3:0.001", "ngram:3", "sparse:3:1:q_zeros", "E5|T=0.5[draft]|top_k=3"):
        v = check_lossless("naive", text, "chain(1)", method="exact")
        assert v.lossless and v.model == parse_model(text).name


def test_check_json_records_both_stages_of_a_flag(capsys):
    """A confirmed flag: two stages at the same n, the second on derive_seed(seed, "confirm")."""
    from specoracle.stats import derive_seed

    code, out, _ = run(capsys, "check", "bv_forward_scan", "--model", "E1", "--scheme", "chain(2)", "--method", "chi2",
                       "--samples", "300", "--seed", "4", "--json")
    v = json.loads(out)
    assert code == 1 and v["status"] == "not lossless" and v["confirmation"] == "confirmed"
    assert [(s["n"], s["seed"]) for s in v["stages"]] == [(300, 4), (300, derive_seed(4, "confirm"))]
    assert all(s["p_value"] <= s["alpha"] == 0.01 for s in v["stages"])
    code, out, _ = run(capsys, "check", "bv_forward_scan", "--model", "E1", "--scheme", "chain(2)", "--method", "chi2",
                       "--samples", "300", "--seed", "4", "--no-confirm", "--json")
    single = json.loads(out)
    assert code == 1 and len(single["stages"]) == 1 and single["p_value"] == v["p_value"]


def _engine_rows(verdicts):
    from specoracle.adapters.conformance import ConformanceRow

    return [ConformanceRow("eagle", f"case {i}", "lossless", v, 100, 0.05, 0.5, 1.0, "1.2.1", "note")
            for i, v in enumerate(verdicts)]


@pytest.mark.parametrize("verdicts,code", [(("lossless", "skipped"), 0), (("lossless", "NOT lossless"), 1),
                                           (("error",), 1), (("lossless", "inconclusive"), 4)],
                         ids=["ok-0", "differs-1", "error-1", "inconclusive-4"])
def test_engines_exit_status_and_json(capsys, monkeypatch, verdicts, code):
    from specoracle.adapters import conformance

    calls = []
    monkeypatch.setattr(conformance, "conformance", lambda engines, **kw: calls.append((engines, kw)) or
                        _engine_rows(verdicts))
    got, out, _ = run(capsys, "engines", "--engine", "eagle", "--quick", "--json")
    payload = json.loads(out)
    assert got == code and calls == [(["eagle"], {"quick": True})]
    assert [r["verdict"] for r in payload["rows"]] == list(verdicts) and payload["ok"] == (code == 0)
    assert "Holm" in payload["family"]


def test_engines_lists_missing_engines_with_their_install_command(capsys, monkeypatch):
    from specoracle.adapters import conformance

    monkeypatch.setattr(conformance, "_installed", lambda engine: False)
    code, out, _ = run(capsys, "engines")
    assert code == 0 and out.count("skipped") == len(conformance.CASES) and "pip install --no-deps eagle-llm" in out


def test_your_verifier_that_raises_is_an_input_error_not_an_internal_one(capsys, tmp_path, monkeypatch):
    """exit 2 naming your verifier and its exception (exit 3 says "a bug in specoracle")."""
    (tmp_path / "userraises.py").write_text("def verify(instance, rng):\n    raise RuntimeError('user bug')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = run(capsys, "check", "userraises:verify", "--model", "E1", "--scheme", "chain(1)", "--json")
    err = json.loads(out)["error"]
    assert code == 2 and "your verifier userraises:verify raised RuntimeError: user bug" in err["message"]
