"""Issue 13, items 5-10: the adversarial inputs of the front layer (check, statistics, CLI, report
files, packaging), kept as regression tests.

Each test is one input that hung, crashed with a traceback, printed no JSON, exited with the
wrong status or passed vacuously before the fix. Inputs that hung run in a subprocess with a
timeout (a hang is then a failure, not a stuck suite); every refusal must name the estimate and
the flag that raises the budget.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specoracle import cli, examples
from specoracle.errors import InvalidArgument, SpecoracleError

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, timeout: float = 120, memory_gb: float | None = None):
    """Run ``code`` in a fresh interpreter (optionally under an address-space limit); a run past
    ``timeout`` seconds counts as a hang."""
    if memory_gb is not None:
        code = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({int(memory_gb * 2**30)}, "
                f"{int(memory_gb * 2**30)}))\n") + code
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: no answer within {timeout} s")
    return proc, time.perf_counter() - t0


def _cli(*argv: str, timeout: float = 120):
    return _python(f"import sys; from specoracle.cli import main; sys.exit(main({list(argv)!r}))", timeout)


def _main(capfd, *argv):
    code = cli.main(list(argv))
    out = capfd.readouterr()
    return code, out.out, out.err


def _one_json_object(text: str) -> dict:
    obj = json.loads(text)  # raises on a banner before the object or a second object after it
    assert isinstance(obj, dict)
    return obj


# --- item 5: budgets instead of hangs -----------------------------------------------------------
def test_auto_on_v50_chain6_is_refused_with_its_estimate():
    """``auto`` on V=50 chain(6) went to chi-squared and grew to 1.8 GB in position_marginals."""
    proc, seconds = _cli("check", "naive", "--model", "random:50:0", "--scheme", "chain(6)", "--max-seconds", "20",
                         "--json", timeout=120)
    err = _one_json_object(proc.stdout)["error"]
    assert proc.returncode == 2 and seconds < 60, (proc.returncode, seconds, proc.stderr[-1000:])
    assert "--max-seconds" in err["message"] and "about" in err["message"]


def test_position_marginals_refuse_instead_of_growing():
    """Whole-prefix marginals of 7 positions at V=50 visit 1.6e10 prefixes: refused at once."""
    code = ("from specoracle import stats; from specoracle.reports import parse_model\n"
            "try:\n    stats.position_marginals(parse_model('random:50:0'), 7)\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    proc, _ = _python(code, timeout=120, memory_gb=3)
    assert proc.stdout.startswith("BudgetExceeded") and "max_prefixes" in proc.stdout, proc.stdout + proc.stderr[-1000:]


def test_chi2_at_v5000_runs_in_bounded_memory():
    """The README says any vocabulary: chi-squared at V=5000 reached 5.4 GB in two minutes."""
    code = ("from specoracle.check import check_lossless; from specoracle.reports import parse_model\n"
            "v = check_lossless('naive', parse_model('random:5000:0'), 'chain(1)', method='chi2', n=1000)\n"
            "print(v.status, v.projection, v.n)\n")
    proc, _ = _python(code, timeout=240, memory_gb=3)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status, projection, n = proc.stdout.split()
    assert projection == "positions" and n == "1000" and status in ("lossless", "inconclusive")


def test_bound_on_random8_iid33_is_refused():
    """``bound`` on random:8 iid(3,3) (8^9 draft sequences) hung."""
    proc, seconds = _cli("bound", "--model", "random:8:0", "--scheme", "iid(3,3)", "--json", timeout=120)
    err = _one_json_object(proc.stdout)["error"]
    assert proc.returncode == 2 and seconds < 60
    assert "LP variables" in err["message"] and "--max-seconds" in err["message"]


def test_tiny_tv_is_refused_not_allocated(capfd):
    """``--tv 1e-7`` asked numpy for 28 PiB."""
    code, out, _ = _main(capfd, "check", "bv", "--model", "E2", "--scheme", "chain(2)", "--method", "chi2", "--tv", "1e-7", "--json")
    err = _one_json_object(out)["error"]
    assert code == 2 and "PiB" in err["message"] and "--max-memory-gb" in err["message"]


def test_long_chi2_states_its_expected_time(capfd):
    """``check spectr_gbv_lossless --method chi2`` designed ~308k sequences with no word on the time."""
    code, out, _ = _main(capfd, "check", "spectr_gbv_lossless", "--model", "E2", "--scheme", "chain(2)", "--method", "chi2",
                         "--max-seconds", "5", "--json")
    err = _one_json_object(out)["error"]
    assert code == 2 and "307,687 samples" in err["message"] and "about" in err["message"]


def test_long_chi2_shows_progress_on_stderr(capfd):
    code, out, err = _main(capfd, "check", "spectr_gbv_lossless", "--model", "E2", "--scheme", "chain(2)", "--method", "chi2",
                            "--samples", "40")
    assert code in (0, 4) and "expected time" in err and "40 samples" in err


def test_auto_reads_the_exact_work_estimate():
    from specoracle.check import check_lossless, exact_work
    from specoracle.drafting import chain

    assert exact_work(examples.E5(), chain(2)) == 4**2 * 4 * 4  # 16 trees x (3 nodes + 1) x V
    assert check_lossless("naive", "E5", "chain(2)").method == "exact"
    big = check_lossless("naive", "E5", "chain(9)", n=300, projection="first_token")
    assert big.method == "chi2"


# --- item 6: --json is one JSON object, errors included -------------------------------------------
BAD_RUNS = {
    "unknown-verifier": ("check", "nosuch"),
    "bad-scheme": ("check", "bv", "--scheme", "iid(2"),
    "unknown-model": ("check", "bv", "--model", "E9"),
    "unknown-method": ("check", "bv", "--method", "exakt"),
    "missing-name": ("check",),
    "negative-seed": ("check", "bv", "--seed", "-1", "--method", "chi2"),
    "zero-samples": ("check", "bv", "--samples", "0", "--method", "chi2"),
    "alpha-above-1": ("check", "bv", "--alpha", "2", "--method", "chi2"),
    "scheme-not-accepted": ("check", "bv", "--scheme", "iid(2,2)"),
    "unknown-device": ("check", "bv", "--device", "nonsense"),
    "unknown-bound": ("bound", "--which", "universl"),
    "zero-vocab": ("bench", "--vocab", "0"),
    "negative-batch": ("bench", "--batch", "-3"),
    "unknown-section": ("report", "--only", "exactt"),
    "no-subcommand": (),
}


@pytest.mark.parametrize("argv", list(BAD_RUNS.values()), ids=list(BAD_RUNS))
def test_json_error_is_one_object_with_exit_2(capfd, tmp_path, argv):
    if argv and argv[0] == "report":
        argv = (*argv, "--out", str(tmp_path / "r"))
    code, out, err = _main(capfd, *argv, "--json")
    obj = _one_json_object(out)
    assert code == 2 and obj["error"]["message"] and obj["error"]["exit_status"] == 2, (code, out, err)
    assert "Traceback" not in err


def test_cuda_without_a_device_is_a_usage_error(capfd):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the input is valid here")
    code, out, _ = _main(capfd, "check", "bv", "--device", "cuda", "--json")
    assert code == 2 and "CUDA is not available" in _one_json_object(out)["error"]["message"]


def test_bound_json_has_no_solver_banner():
    """A successful ``bound --json`` started stdout with the HiGHS banner (printed from C)."""
    proc, _ = _cli("bound", "--model", "E1", "--scheme", "chain(2)", "--which", "universal", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert abs(_one_json_object(proc.stdout)["bounds"]["universal_bound"]["block_efficiency"] - 20 / 9) < 1e-6


def test_report_json_has_no_solver_banner(tmp_path):
    proc, _ = _cli("report", "--quick", "--only", "delayed", "--no-progress", "--json", "--out", str(tmp_path / "r"),
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _one_json_object(proc.stdout)["sections"]["delayed"]["status"] == "ok"


# --- item 7: exit codes -------------------------------------------------------------------------
def test_internal_error_exits_3_with_json(capfd, monkeypatch):
    def broken(args):
        raise ZeroDivisionError("a bug, not the user's fault")

    monkeypatch.setattr(cli, "_cmd_check", broken)
    code, out, err = _main(capfd, "check", "bv", "--json")
    e = _one_json_object(out)["error"]
    assert code == 3 and e["type"] == "internal" and "ZeroDivisionError" in e["message"]
    assert "Traceback" in err  # the traceback still goes to stderr, for the bug report


def test_report_out_existing_file_fails_before_any_work(capfd, tmp_path, monkeypatch):
    """``report --out EXISTING_FILE`` failed only after computing the whole report."""
    from specoracle import reports

    target = tmp_path / "results.txt"
    target.write_text("keep me")

    def no_work(*a, **k):
        raise AssertionError("the report started before its output path was checked")

    monkeypatch.setattr(reports, "build_report", no_work)
    code, out, _ = _main(capfd, "report", "--quick", "--out", str(target), "--json")
    assert code == 2 and "not a directory" in _one_json_object(out)["error"]["message"]
    assert target.read_text() == "keep me"


# --- item 8: vacuous passes ---------------------------------------------------------------------
def test_one_sample_is_inconclusive_not_lossless(capfd):
    """``check bv --method chi2 --samples 1`` printed LOSSLESS with detectable TV 3.65."""
    code, out, _ = _main(capfd, "check", "bv", "--model", "E2", "--scheme", "chain(2)", "--method", "chi2", "--samples", "1", "--json")
    v = _one_json_object(out)
    assert code == 4 and v["status"] == "inconclusive" and v["lossless"] is False


def test_parity_without_instances_is_an_error():
    """``gpu.parity(n_instances=-5)`` returned 0 mismatches."""
    from specoracle import drafting, gpu

    for n in (-5, 0):
        with pytest.raises(InvalidArgument, match="n_instances"):
            gpu.parity("bv", examples.E2(), drafting.chain(2), n_instances=n)
    with pytest.raises(InvalidArgument, match="n_sequences"):
        gpu.parity_sequences("spectr_gbv_lossless", examples.E1(), drafting.chain(1), n_sequences=0)
    with pytest.raises(InvalidArgument, match="n must be"):
        gpu.chi2_twin("bv", examples.E2(), drafting.chain(2), n=0)


# --- item 9: report files -----------------------------------------------------------------------
def _report(figures: dict[str, bytes | None]):
    """A one-section report whose figures write the given bytes (None: write half, then interrupt)."""
    from specoracle.reports import Figure, Report, Section

    def drawer(payload):
        def draw(path):
            if payload is None:
                Path(path).write_bytes(b"\x89PNG\r\n\x1a\n-trunc")
                raise KeyboardInterrupt
            Path(path).write_bytes(payload)

        return draw

    figs = tuple(Figure(name, name, drawer(payload)) for name, payload in figures.items())
    return Report({"config": {"preset": "test"}}, (Section("x", 1, "X", "ok", "s", (), figs),))


def test_interrupted_write_leaves_the_old_report_whole(tmp_path):
    """An interrupt while drawing left a truncated PNG beside the old results.json."""
    from specoracle.reports.render import write

    out = tmp_path / "r"
    write(_report({"a.png": b"old-a"}), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        write(_report({"a.png": None}), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_only_rerun_removes_what_it_no_longer_writes(tmp_path):
    """An ``--only`` rerun left the stale PNGs of the previous run; a user's own file stays."""
    from specoracle.reports.render import write

    out = tmp_path / "r"
    write(_report({"a.png": b"a", "b.png": b"b"}), out)
    (out / "notes.txt").write_text("mine")
    write(_report({"a.png": b"a2"}), out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a.png", "index.html", "index.md", "notes.txt", "results.json"]
    assert (out / "a.png").read_bytes() == b"a2"


def test_two_reports_into_one_directory_are_locked_out(tmp_path):
    from specoracle import reports
    from specoracle.reports.render import lock

    out = tmp_path / "r"
    with lock(out):
        with pytest.raises(SpecoracleError, match="lock"):
            reports.write_report(reports.quick(progress=False), out, only=("exact",))
    assert not list(out.glob("*.lock"))


def test_a_stale_lock_is_taken_over(tmp_path):
    """A lock left by a process that no longer exists does not block the next report."""
    from specoracle.reports.render import LOCK_NAME, lock

    out = tmp_path / "r"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_NAME).write_text(dead.stdout.strip())
    with lock(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())


# --- item 10: smaller ---------------------------------------------------------------------------
def test_nan_probability_is_an_error_not_a_nan_verdict():
    from specoracle.check import check_lossless
    from specoracle.instance import Outcome

    def nan_coin(instance, rng):
        rng.bernoulli(float("nan"), ("accept", 1))
        return Outcome(0, 0)

    with pytest.raises(SpecoracleError, match="(?i)nan"):
        check_lossless(nan_coin, "E1", "chain(1)", method="exact")


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pytest_is_not_a_runtime_dependency():
    deps = [d.split(">")[0].split("=")[0].strip() for d in _pyproject()["project"]["dependencies"]]
    assert "pytest" not in deps
    assert not any("pytest" in line for p in (ROOT / "specoracle").rglob("*.py")
                   for line in p.read_text().splitlines() if line.startswith(("import ", "from ")))


def test_license_is_spdx_and_every_package_is_listed():
    project = _pyproject()
    assert project["project"]["license"] == "MIT"
    packages = set(project["tool"]["setuptools"]["packages"])
    on_disk = {"specoracle." + ".".join(p.relative_to(ROOT / "specoracle").parts)
               for p in (ROOT / "specoracle").iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert on_disk <= packages, on_disk - packages


# --- the closing adversarial pass: what it found in the front layer -----------------------------
@pytest.mark.parametrize("kw", [dict(tol=-1.0), dict(tol=float("nan")), dict(min_expected=0.0, method="chi2", n=100),
                                dict(context_order=-1, method="chi2", n=100, projection="positions")],
                         ids=["tol<0", "tol-nan", "min_expected-0", "context_order<0"])
def test_meaningless_design_values_are_refused(kw):
    """A negative or NaN tol made every verifier 'not lossless'; min_expected 0 and a negative
    context order were accepted."""
    from specoracle.check import check_lossless

    kw = {"method": "exact", **kw}
    with pytest.raises(InvalidArgument):
        check_lossless("bv", "E5", "chain(1)", **kw)


@pytest.mark.parametrize("counts", [[-1, 5], [float("nan"), 5]], ids=["negative", "nan"])
def test_chi2_gof_refuses_impossible_counts(counts):
    from specoracle import stats

    with pytest.raises(InvalidArgument, match="counts"):
        stats.chi2_gof(counts, [0.5, 0.5])


def test_chi2_rows_refuses_fractional_tokens():
    """Row [0.5] was read as token 0."""
    from specoracle import stats

    with pytest.raises(InvalidArgument, match="integer"):
        stats.chi2_rows([[0.5]], {(0,): 1.0})


def test_marginals_of_a_negative_length_are_refused():
    from specoracle import stats

    with pytest.raises(InvalidArgument, match="length"):
        stats.position_marginals(examples.E5(), -1)


def test_a_tv_below_the_float_range_is_refused():
    """tv=1e-300 divided by zero inside the design."""
    from specoracle import stats

    with pytest.raises(InvalidArgument, match="too small"):
        stats.sample_size(1e-300, cells=4)


def test_bench_refuses_a_batch_beyond_memory(capfd):
    """``bench --vocab 10^12`` died in the allocator with a traceback."""
    code, out, _ = _main(capfd, "bench", "--vocab", "1000000000000", "--verifier", "naive", "--scheme", "chain(2)",
                         "--json")
    assert code == 2 and "--max-memory-gb" in _one_json_object(out)["error"]["message"]


def test_report_into_an_uncreatable_directory_is_a_usage_error(capfd, tmp_path):
    """``report --out`` under a path that cannot hold a directory gave a FileNotFoundError traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, _ = _main(capfd, "report", "--quick", "--out", str(blocker / "sub" / "r"), "--json")
    assert code == 2 and _one_json_object(out)["error"]["message"]


@pytest.mark.parametrize("scheme", ["iid(1000000000,1)", "chain(99999999999)"])
def test_enormous_schemes_are_refused_at_once(scheme):
    from specoracle.check import check_lossless

    t0 = time.perf_counter()
    with pytest.raises(SpecoracleError, match="max_seconds"):
        check_lossless("traversal" if scheme.startswith("iid") else "bv", "E2", scheme)
    assert time.perf_counter() - t0 < 10


# --- issue 14.6: one key rule for every method ---------------------------------------------------
def _reuses_a_key(inst, rng):
    from specoracle import Outcome

    rng.bernoulli(0.5, ("coin",))
    return Outcome(0, int(rng.categorical(inst.p[0], ("coin",))))


@pytest.mark.parametrize("method", ["exact", "chi2"])
def test_a_reused_random_key_raises_in_every_method(method):
    """chi2 used to pass such a verifier silently (Sampling did not track keys)."""
    from specoracle import check_lossless
    from specoracle.randomness import KeyReuseError

    with pytest.raises(KeyReuseError, match="used twice"):
        check_lossless(_reuses_a_key, "E1", "chain(1)", method=method, n=500)
