"""`specoracle report --quick`: every section present, every number finite, worked numbers right.

The report is generated once per module with the console script (as a user runs it); the tests
then read index.md, index.html and results.json. Worked numbers come from ALGORITHMS-2.md §3.8,
§10.2 and §11 (independent exact enumerations), not from the report's own code.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from specoracle.reports import ReportConfig, Section, Table, jsonable, nonfinite_paths, parse_model, quick
from specoracle.reports.render import to_markdown
from specoracle.reports.sections import SECTIONS, Context, run_section

SECTION_KEYS = ("exact", "chi2", "bounds", "parity", "mutants", "delayed", "selector", "claims", "engines")


def _console_script() -> list[str]:
    exe = Path(sys.executable).with_name("specoracle")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "specoracle"]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "tmp"
    proc = subprocess.run(
        [*_console_script(), "report", "--quick", "--out", str(out), "--seed", "0", "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=str(out.parent),
    )
    results = json.loads((out / "results.json").read_text(), parse_constant=lambda c: float(c))
    return proc, out, results


def test_report_writes_every_file(quick_report):
    proc, out, _ = quick_report
    for name in ("index.md", "index.html", "results.json"):
        assert (out / name).stat().st_size > 0, (name, proc.stderr[-2000:])
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 3, proc.stdout
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_every_section_present_in_every_format(quick_report):
    proc, out, results = quick_report
    md = (out / "index.md").read_text()
    html = (out / "index.html").read_text()
    assert tuple(results["sections"]) == SECTION_KEYS
    for number, key, title, _fn in SECTIONS:
        assert f"## {number}. {title}" in md
        assert f"<h2 id='{key}'>{number}. " in html
        assert results["sections"][key]["tables"]


def test_every_section_is_ok_and_the_exit_status_is_0(quick_report):
    """The quick report on the built-in defaults: every section computed and every claim held."""
    proc, _, results = quick_report
    statuses = {k: s["status"] for k, s in results["sections"].items()}
    notes = {k: results["sections"][k]["notes"] for k, v in statuses.items() if v != "ok"}
    assert set(statuses.values()) == {"ok"}, (statuses, notes)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])


def test_results_json_lists_the_files_written(quick_report):
    _, out, results = quick_report
    files = results["meta"]["files"]
    assert sorted(files) == sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def test_every_number_in_results_json_is_finite(quick_report):
    _, out, results = quick_report
    assert nonfinite_paths(results) == []
    # the file itself must be strict JSON: no NaN / Infinity tokens
    text = (out / "results.json").read_text()
    assert not re.search(r"\b(NaN|Infinity)\b", text)
    numbers = []

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            numbers.append(x)

    walk(results)
    assert len(numbers) > 100
    assert all(math.isfinite(x) for x in numbers)


def test_header_records_config_seed_commit_versions(quick_report):
    _, _, results = quick_report
    meta = results["meta"]
    assert meta["config"]["preset"] == "quick" and meta["config"]["seed"] == 0
    assert meta["git_commit"]
    for dist in ("python", "numpy", "specoracle", "torch"):
        assert dist in meta["versions"]
    assert "naive" in meta["verifiers"] and "bv" in meta["verifiers"]


def test_html_is_self_contained(quick_report):
    _, out, _ = quick_report
    html = (out / "index.html").read_text()
    srcs = re.findall(r"""src=['"]([^'"]+)""", html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in html and "http://" not in html and "https://" not in html


# worked numbers (block efficiency = E[tau] + 1): ALGORITHMS-2.md §3.8 and §10.2
WORKED_BE = [
    ("naive", "E1", "chain(2)", Fraction(19, 9)),
    ("bv", "E1", "chain(2)", Fraction(20, 9)),
    ("naive_tree", "E1", "iid(2,2)", Fraction(7, 3)),
    ("specinfer", "E1", "iid(2,2)", Fraction(7, 3)),
    ("specinfer", "E2", "iid(2,2)", Fraction(2432, 1000)),
]


@pytest.mark.parametrize("verifier,model,scheme,be", WORKED_BE, ids=[f"{v}-{m}-{s}" for v, m, s, _ in WORKED_BE])
def test_exact_section_matches_worked_numbers(quick_report, verifier, model, scheme, be):
    _, _, results = quick_report
    rows = [d for d in results["sections"]["exact"]["data"]
            if (d["verifier"], d["model"], d["scheme"]) == (verifier, model, scheme)]
    assert len(rows) == 1 and rows[0]["lossless"] is True
    assert abs(rows[0]["block_efficiency"] - float(be)) < 1e-9


# mutant errors from ALGORITHMS-2.md §11 (E1, L = 2): M1 2/27 = 0.0741, M3 4/27 = 0.148
@pytest.mark.parametrize("mutant,err", [("sps_resample_target", 2 / 27), ("bv_forward_scan", 4 / 27)])
def test_mutant_section_matches_worked_errors(quick_report, mutant, err):
    _, _, results = quick_report
    row = next(d for d in results["sections"]["mutants"]["data"] if d["mutant"] == mutant)
    assert row["model"] == "E1" and row["scheme"] == "chain(2)"
    assert abs(row["exact_max_error"] - err) < 1e-9
    assert row["exact_flagged"] is True


def test_mutant_section_flags_every_bug_and_passes_true_negatives(quick_report):
    from specoracle import mutants

    _, _, results = quick_report
    rows = {d["mutant"]: d for d in results["sections"]["mutants"]["data"]}
    for m in mutants.catalog():
        assert rows[m.name]["exact_flagged"] is True, m.name
    for m in mutants.true_negatives():
        assert rows[m.name]["exact_flagged"] is False, m.name


def test_bounds_section_never_below_a_lossless_verifier(quick_report):
    _, _, results = quick_report
    sec = results["sections"]["bounds"]
    for d in sec["data"]:
        ub = d["bounds"]["universal_bound"]
        for name, v in d["verifiers"].items():
            if v["lossless"]:
                assert v["block_efficiency"] <= ub["block_efficiency"] + 1e-6, (d["model"], d["scheme"], name)


def test_delayed_section_endpoints(quick_report):
    """d = L is a single chain (delayed(k, L, 0)); a top-down verifier there equals naive on a chain."""
    from specoracle import drafting, exact

    _, _, results = quick_report
    data = results["sections"]["delayed"]["data"]
    model = parse_model(data["model"])
    L = data["L"]
    naive_chain = float(exact.evaluate("naive", model, drafting.chain(L)).block_efficiency)
    for name in ("specinfer", "naive_tree"):
        assert abs(data["block_efficiency"][name][L] - naive_chain) < 1e-9, name


# --- unit tests of the report machinery (cheap) ------------------------------------------------
def test_a_crashing_section_is_reported_not_raised():
    def broken(ctx):
        raise ZeroDivisionError("boom")

    sec = run_section(Context(quick(progress=False)), 9, "x", "X", broken)
    assert sec.status == "error" and "ZeroDivisionError" in sec.summary and "boom" in sec.notes[0]


def test_jsonable_drops_nonfinite_and_converts_exact_types():
    import numpy as np

    out = jsonable({"a": np.float64("inf"), "b": Fraction(1, 4), "c": (np.int64(3), np.bool_(True)), 4: [1.5]})
    assert out == {"a": None, "b": 0.25, "c": [3, True], "4": [1.5]}
    assert nonfinite_paths({"x": [1.0, float("nan")], "y": {"z": float("-inf")}}) == ["$.x[1]", "$.y.z"]


def test_markdown_table_escapes_pipes():
    from specoracle.reports import Report

    sec = Section("k", 1, "T", "ok", "s", (Table(("a", "b"), (("x|y", 1.5),)),))
    md = to_markdown(Report({"config": {}}, (sec,)))
    assert "| x\\|y | 1.5 |" in md


def test_sampled_sections_are_deterministic_for_a_seed():
    """Two runs of the sampling-based sections with the same seed give identical numbers."""
    from specoracle.reports import build_report

    cfg = quick(seed=5, progress=False).with_(chi2_schemes=("chain(2)",), parity_schemes=("chain(2)",),
                                              parity_instances=200, chi2_samples=500,
                                              mutant_chi2_samples=0)
    a = build_report(cfg, only=("chi2", "parity")).to_dict()["sections"]
    b = build_report(cfg, only=("chi2", "parity")).to_dict()["sections"]
    for key in ("chi2", "parity"):
        assert a[key]["status"] != "error", a[key]["notes"]
        assert a[key]["data"] == b[key]["data"]


def test_config_round_trips_to_json():
    cfg = ReportConfig()
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d and "progress" not in d


def test_html_report_renders_in_headless_chromium(quick_report, tmp_path):
    """benchmarks/screenshot_report.py opens index.html in headless Chromium and saves a PNG."""
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "screenshot_report.py"
    spec = importlib.util.spec_from_file_location("screenshot_report", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if mod.find_chromium() is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`, /usr/bin/chromium)")
    _, out, _ = quick_report
    png = mod.screenshot(out / "index.html", tmp_path / "shot.png", width=1200, height=1600)
    assert mod.png_size(png) == (1200, 1600)
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    # a rendered page, not a blank one: white background with dark text and coloured badges/plots
    assert img[..., :3].std() > 0.05
    assert (img[..., :3].mean(axis=-1) < 0.3).mean() > 0.005
