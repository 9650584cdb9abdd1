"""Reports: exact losslessness, chi-squared tables, efficiency against bounds, GPU parity.

:func:`build_report` runs the seven sections of :mod:`specoracle.reports.sections` for a
:class:`~specoracle.reports.config.ReportConfig`; :func:`write_report` also writes ``index.md``,
a self-contained ``index.html``, ``results.json`` and the PNG plots. ``specoracle report`` is a
thin shell over :func:`write_report`.

>>> from specoracle.reports import quick
>>> quick(seed=3).seed
3
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import time
from pathlib import Path

from .config import PRESETS, ReportConfig, derive_seed, full, parse_model, parse_schemes, quick
from .document import Figure, Report, Section, Table, jsonable, nonfinite_paths

__all__ = [
    "ReportConfig",
    "quick",
    "full",
    "PRESETS",
    "parse_model",
    "parse_schemes",
    "derive_seed",
    "Report",
    "Section",
    "Table",
    "Figure",
    "jsonable",
    "nonfinite_paths",
    "build_report",
    "write_report",
    "provenance",
]


def _git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    if not sha:
        return "unknown (not a git checkout)"
    return sha + (" (with uncommitted changes)" if dirty else "")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("specoracle", "numpy", "scipy", "torch", "cvxpy", "highspy", "statsmodels", "matplotlib"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def provenance() -> dict:
    """Git commit, package versions, CPU count: what the report header records."""
    return {"git_commit": _git_commit(), "versions": _versions(), "cpus": os.cpu_count(),
            "platform": platform.platform()}


def build_report(cfg: ReportConfig, *, command: str = "", only: tuple[str, ...] | None = None) -> Report:
    """Run the sections (all, or those whose key is in ``only``) and return the :class:`Report`."""
    from specoracle import registry

    from .sections import SECTIONS, Context, run_section

    t0, c0 = time.perf_counter(), time.process_time()
    ctx = Context(cfg)
    secs = tuple(run_section(ctx, n, k, t, fn) for n, k, t, fn in SECTIONS if only is None or k in only)
    from specoracle import gpu

    twins = sorted(gpu.TWINS)
    meta = {
        "command": command or f"specoracle report ({cfg.preset}, seed {cfg.seed})",
        "config": cfg.to_dict(),
        **provenance(),
        "verifiers": registry.names(),
        "twins": twins,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
    }
    return Report(meta, secs)


def write_report(cfg: ReportConfig, out: str | os.PathLike = "specoracle-report", *, command: str = "",
                 only: tuple[str, ...] | None = None) -> tuple[Report, dict[str, Path]]:
    """Build the report and write it under ``out``; returns the report and the written paths.

    ``out`` is checked and locked (:func:`~specoracle.reports.render.lock`) before any section
    runs: a path that is not a directory, or a directory another report is writing, fails at once.
    """
    from .render import lock, write

    with lock(out):
        report = build_report(cfg, command=command, only=only)
        return report, write(report, out)
