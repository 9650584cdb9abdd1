"""One-call GPU validation: cuda tests, the large benchmark with HBM bandwidth, the report's parity.

Run through ``benchmarks/gpu_check.sh`` (or ``python benchmarks/gpu_check.py``). Three stages,
each timed, each recorded in ONE JSON summary (``--out``, default ``gpu_check.json``):

1. ``tests``: ``pytest -m cuda`` with ``SPECORACLE_REQUIRE_CUDA=1`` (a cuda test that cannot reach a
   device fails instead of skipping); counts from the JUnit XML.
2. ``bench``: :func:`specoracle.gpu.bench` at ``B = 256, V = 128,000`` (float32) on every verifier;
   per twin the time, the ratio to the one-pass roofline, and the achieved bandwidth
   ``2 B N V 4 bytes / time`` (the laws read once) as a fraction of the device's peak HBM bandwidth
   (``PEAK_GBS`` by device name, or ``--peak-gbs``).
3. ``parity``: the report's parity section (:func:`specoracle.reports.build_report`, ``only=("parity",)``)
   on the device, ``--parity-instances`` instances per case (default 2,000 to fit the budget).

``--dry`` runs the same three stages on the CPU at tiny sizes (the cuda tests of one module
collected and skipped, ``B = 2, V = 64``, 20 parity instances on ``chain(2)``): the CI test ``tests/test_gpu_check.py``
runs it. The exit status is 0 when every stage passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# peak HBM bandwidth in GB/s by device-name substring (vendor data sheets)
PEAK_GBS = {"H200": 4800.0, "H100 SXM": 3350.0, "H100 PCIe": 2000.0, "H100": 3350.0, "A100-SXM4-80GB": 2039.0,
            "A100 80GB PCIe": 1935.0, "A100": 1555.0, "L40S": 864.0, "L4": 300.0, "A10": 600.0, "V100": 900.0,
            "T4": 320.0}


def peak_gbs(device_name: str) -> float | None:
    """Peak bandwidth of the first ``PEAK_GBS`` key found in ``device_name`` (None if unknown)."""
    for key, value in PEAK_GBS.items():
        if key in device_name:
            return value
    return None


def run_tests(dry: bool, timeout_s: float) -> dict:
    """``pytest -m cuda`` (strict: ``SPECORACLE_REQUIRE_CUDA=1`` unless ``dry``) -> counts."""
    env = dict(os.environ)
    if dry:
        env.pop("SPECORACLE_REQUIRE_CUDA", None)
    else:
        env["SPECORACLE_REQUIRE_CUDA"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "cuda.xml"
        where = ROOT / "tests" / ("test_gpu_parity.py" if dry else "")  # dry: one module's cuda tests
        cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-n", "0",
               f"--junitxml={xml}", str(where)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
            code, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
        except subprocess.TimeoutExpired as exc:
            code, tail = None, f"timed out after {timeout_s} s: {str(exc.stdout)[-1500:]}"
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        if xml.exists():
            for suite in ET.parse(xml).getroot().iter("testsuite"):
                for k in counts:
                    counts[k] += int(suite.get(k, 0))
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    ok = code == 0 and counts["tests"] > 0 and (dry or counts["skipped"] == 0)
    return {"ok": ok, "seconds": time.perf_counter() - t0, "exit_code": code, "passed": passed, **counts,
            "strict": not dry, "tail": None if ok else tail}


def run_bench(device: str, B: int, V: int, repeats: int, peak: float | None, names=None) -> dict:
    """The benchmark rows with ratio to the roofline and achieved bandwidth (fraction of ``peak``)."""
    import torch

    from specoracle.gpu import bench

    t0 = time.perf_counter()
    rows = bench(names, B=B, V=V, device=device, dtype=torch.float32, repeats=repeats, reference_instances=1,
                 max_memory_gb=float("inf"))
    out = []
    for r in rows:
        laws_bytes = 2 * r.B * r.N * r.V * 4
        gbs = laws_bytes / r.twin_s / 1e9 if math.isfinite(r.twin_s) else None
        roof_gbs = laws_bytes / r.roofline_s / 1e9
        out.append({"verifier": r.name, "scheme": r.scheme, "B": r.B, "N": r.N, "V": r.V,
                    "twin_ms": 1e3 * r.twin_s if math.isfinite(r.twin_s) else None,
                    "roofline_ms": 1e3 * r.roofline_s, "x_roofline": r.ratio if math.isfinite(r.twin_s) else None,
                    "achieved_gbs": gbs, "roofline_gbs": roof_gbs,
                    "fraction_of_peak": None if gbs is None or peak is None else gbs / peak,
                    "roofline_fraction_of_peak": None if peak is None else roof_gbs / peak, "note": r.note})
    return {"ok": bool(out), "seconds": time.perf_counter() - t0, "peak_gbs": peak, "rows": out}


def run_parity(device: str, instances: int, schemes: tuple[str, ...] | None) -> dict:
    """The report's parity section on ``device``."""
    from specoracle.reports import build_report, full

    cfg = full(device=device, progress=False).with_(parity_instances=instances)
    if schemes:
        cfg = cfg.with_(parity_schemes=schemes)
    t0 = time.perf_counter()
    section = build_report(cfg, command="gpu_check", only=("parity",)).sections[0]
    bad = [d for d in section.data if not d["ok"]]
    return {"ok": section.status == "ok", "seconds": time.perf_counter() - t0, "status": section.status,
            "runs": len(section.data), "instances": instances, "failing": bad, "summary": section.summary}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry", action="store_true", help="CPU, tiny sizes (the CI form)")
    ap.add_argument("--out", default="gpu_check.json", help="JSON summary path")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=128_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parity-instances", type=int, default=2000)
    ap.add_argument("--peak-gbs", type=float, default=None, help="device peak HBM bandwidth (default: by name)")
    ap.add_argument("--tests-timeout", type=float, default=180.0)
    args = ap.parse_args(argv)

    import torch

    t0 = time.perf_counter()
    if args.dry:
        device, name, B, V, inst, schemes, names = "cpu", "cpu (dry run)", 2, 64, 20, ("chain(2)",), ["naive", "bv", "gbv"]
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device (use --dry for the CPU form)", file=sys.stderr)
            return 2
        device, name = "cuda", torch.cuda.get_device_name(0)
        B, V, inst, schemes, names = args.batch, args.vocab, args.parity_instances, None, None
    peak = args.peak_gbs if args.peak_gbs is not None else peak_gbs(name)
    summary = {"device": name, "dry": args.dry, "torch": torch.__version__}
    summary["tests"] = run_tests(args.dry, args.tests_timeout)
    summary["bench"] = run_bench(device, B, V, args.repeats if not args.dry else 1, peak, names)
    summary["parity"] = run_parity(device, inst, schemes)
    summary["seconds"] = time.perf_counter() - t0
    summary["ok"] = all(summary[k]["ok"] for k in ("tests", "bench", "parity"))
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps({k: (v["ok"] if isinstance(v, dict) else v) for k, v in summary.items()}))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
