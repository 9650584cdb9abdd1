"""``benchmarks/gpu_check.sh --dry``: the one-call GPU validation runs end to end on the CPU at tiny
sizes and writes one JSON summary with the three stages (issue 19)."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.sh"


def test_dry_run_writes_one_summary(tmp_path):
    out = tmp_path / "summary.json"
    proc = subprocess.run([str(SCRIPT), "--dry", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = json.loads(out.read_text())
    assert s["ok"] and s["dry"]
    t = s["tests"]
    assert t["tests"] > 0 and t["skipped"] == t["tests"] and not t["strict"]  # cuda tests collected, skipped
    rows = s["bench"]["rows"]
    assert {r["verifier"] for r in rows} == {"naive", "bv", "gbv"}
    for r in rows:
        assert r["V"] == 64 and r["B"] == 2
        assert r["twin_ms"] > 0 and math.isclose(r["x_roofline"], r["twin_ms"] / r["roofline_ms"], rel_tol=1e-9)
        assert math.isclose(r["achieved_gbs"], 2 * r["B"] * r["N"] * r["V"] * 4 / (r["twin_ms"] / 1e3) / 1e9,
                            rel_tol=1e-9)
    p = s["parity"]
    assert p["status"] == "ok" and p["runs"] > 0 and p["instances"] == 20 and not p["failing"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="without --dry it would run the full GPU check")
def test_without_cuda_the_real_run_refuses_at_once(tmp_path):
    proc = subprocess.run([str(SCRIPT), "--out", str(tmp_path / "x.json")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    assert not (tmp_path / "x.json").exists()


def test_bench_states_the_lp_twins_limit():
    """khisti / ot_optimal / univer above ``_LP_MAX_V``: a row with no time and the measured largest
    V within 1 s per batch of 64, in the same run as the timed twins."""
    from specoracle.gpu import bench

    rows = bench(["khisti", "ot_optimal", "univer", "naive"], B=2, V=64, repeats=1, reference_instances=1,
                 schemes=("iid(2,1)",))
    by = {r.name: r for r in rows}
    for name in ("khisti", "ot_optimal", "univer"):
        assert math.isnan(by[name].twin_s) and "within 1 s" in by[name].note and by[name].roofline_s > 0
    assert math.isfinite(by["naive"].ratio)
