"""The execution layer: executor names, local worker processes and Ray tasks compute what a plain
loop computes, in the items' order; a task that raises names itself; fan-out of cases (the
detection portfolio, exact results, LP solves) gives what one process gives."""
from __future__ import annotations

import numpy as np
import pytest

from specoracle import exact, registry
from specoracle.check import check_lossless
from specoracle.errors import InvalidArgument, UnknownName
from specoracle.execution import LocalExecutor, RayExecutor, TaskFailed, available_cpus, executor_spec, get_executor
from specoracle.fanout import as_case, bound_cases, case_label, check_cases, exact_cases, map_cases

ray_group = pytest.mark.xdist_group("ray")


def affine(shared, item):
    """A task: ``shared * item + 1`` (module level, so that workers can import it)."""
    return shared * item + 1


def fails_on_three(shared, item):
    if item == 3:
        raise ValueError(f"item {item} is bad")
    return item


@pytest.mark.parametrize("spec, cls, kwargs", [
    (None, LocalExecutor, {}),
    ("local", LocalExecutor, {}),
    ("local:3", LocalExecutor, {"workers": 3}),
    ("ray", RayExecutor, {}),
    ("ray://10.0.0.1:10001", RayExecutor, {"address": "ray://10.0.0.1:10001"}),
])
def test_executor_spec(spec, cls, kwargs):
    assert executor_spec(spec) == (cls, kwargs)


@pytest.mark.parametrize("spec, error, words", [
    ("rya", UnknownName, "Did you mean 'ray'"),
    ("local:x", InvalidArgument, "integer number of workers"),
    ("local:0", InvalidArgument, "N >= 1"),
    ("ray:4", InvalidArgument, "ray://HOST:PORT"),
    (4, InvalidArgument, "got int"),
])
def test_executor_spec_refuses(spec, error, words):
    with pytest.raises(error, match=words):
        executor_spec(spec)


def test_local_default_uses_every_cpu_and_keeps_an_executor():
    assert get_executor("local").workers == available_cpus()
    ex = LocalExecutor(2)
    assert get_executor(ex) is ex


@pytest.mark.parametrize("workers", [1, 2])
def test_local_map_is_the_loop(workers):
    items = list(range(7))
    seen = []
    out = LocalExecutor(workers).map(affine, 10, items, on_result=lambda i, r: seen.append(i))
    assert out == [10 * i + 1 for i in items]
    assert sorted(seen) == items


@pytest.mark.parametrize("workers", [1, 2])
def test_local_task_failure_names_the_task(workers):
    with pytest.raises(TaskFailed, match=r"item #3 raised ValueError: item 3 is bad") as info:
        LocalExecutor(workers).map(fails_on_three, None, range(5), label=lambda i: f"item #{i}")
    assert isinstance(info.value.cause, ValueError) and info.value.label == "item #3"


CASES = [("bv", "E2", "chain(2)"), ("specinfer", "E5", "iid(2,2)"), ("naive", "random:4:1", "chain(1)")]


def test_as_case_and_label():
    class Row:  # a portfolio row: any object with the three attributes
        verifier, model, scheme = "bv", "E2", "chain(2)"

    assert as_case(Row()) == CASES[0]
    assert case_label(CASES[2]) == "case (naive, random:4:1, chain(1))"
    with pytest.raises(InvalidArgument, match="a case is"):
        map_cases(check_lossless, [("bv", "E2")], executor="local:1")


def test_exact_and_bound_fanout_equal_one_process():
    # exact results of a portfolio on 2 worker processes are the ones computed here
    got = exact_cases(CASES, executor="local:2")
    from specoracle.reports import parse_model
    from specoracle.drafting import parse_scheme

    for (v, m, s), r in zip(CASES, got):
        want = exact.evaluate(v, parse_model(m), parse_scheme(s))
        np.testing.assert_array_equal(np.asarray(r.extended_law), np.asarray(want.extended_law))
        assert r.block_efficiency == want.block_efficiency
    # LP solves: the single-path bound equals BV's exact efficiency on chains (BV is optimal there)
    bounds = bound_cases([("single_path_bound", "E2", "chain(2)"), ("universal_bound", "E5", "chain(1)")],
                         executor="local:2")
    assert bounds[0].block_efficiency == pytest.approx(float(got[0].block_efficiency), abs=1e-6)
    assert bounds[1].block_efficiency >= float(exact.evaluate("bv", parse_model("E5"), parse_scheme("chain(1)")).block_efficiency) - 1e-6


def test_check_fanout_names_the_case_that_raised():
    with pytest.raises(TaskFailed, match=r"case \(naive, E5, iid\(2,2\)\) raised InvalidArgument"):
        check_cases([CASES[0], ("naive", "E5", "iid(2,2)")], executor="local:2")


# --- Ray ------------------------------------------------------------------------------------------
@ray_group
def test_ray_map_is_the_loop(ray_cluster):
    ex = RayExecutor()
    assert ex.workers == 2 and get_executor("ray").workers == 2  # joins the running cluster
    assert ex.map(affine, 10, range(9)) == [10 * i + 1 for i in range(9)]


@ray_group
def test_ray_task_failure_names_the_task(ray_cluster):
    with pytest.raises(TaskFailed, match=r"item #3 raised ValueError: item 3 is bad") as info:
        RayExecutor().map(fails_on_three, None, range(5), label=lambda i: f"item #{i}")
    assert isinstance(info.value.cause, ValueError)


@ray_group
def test_portfolio_on_ray_equals_one_process(ray_cluster):
    # the detection portfolio (checks of several cases, mutants included) on the cluster gives
    # the verdicts of the same checks run here; the mutant is caught
    from specoracle import mutants

    m = next(m for m in mutants.catalog() if m.name == "bv_forward_scan")
    cases = [*CASES, (m.verify, m.model, m.scheme)]
    opts = dict(method="chi2", n=1500, seed=5, tv_ceiling=0.5)
    got = check_cases(cases, executor="ray", **opts)
    from specoracle.reports import parse_model

    for (v, mod, s), r in zip(cases, got):
        want = check_lossless(v, parse_model(mod), s, **opts)
        assert (r.status, r.statistic, r.p_value, r.n) == (want.status, want.statistic, want.p_value, want.n)
    assert [r.status for r in got] == ["lossless", "lossless", "lossless", "not lossless"]
    assert registry.get("bv").name == got[0].verifier


def fake_section(ctx):
    """A report section whose figure is drawn by a closure (not picklable: it must come back as bytes)."""
    from specoracle.reports.document import Figure, Section

    png = f"seed {ctx.cfg.seed}".encode()

    def draw(path):
        with open(path, "wb") as f:
            f.write(png)

    return Section("fake", 1, "Fake", "ok", f"seed {ctx.cfg.seed}", figures=(Figure("fake.png", "a figure", draw),))


def broken_section(ctx):
    raise RuntimeError("section bug")


def test_report_sections_fan_out(monkeypatch, tmp_path):
    from specoracle import reports
    from specoracle.fanout import PngFigure, run_sections
    from specoracle.reports import sections

    monkeypatch.setattr(sections, "SECTIONS", ((1, "fake", "Fake", fake_section), (2, "broken", "Broken", broken_section)))
    cfg = reports.quick(progress=False, seed=7)
    got = run_sections(cfg, executor="local:2")  # forked workers see the patched table
    assert [(s.key, s.status, s.summary) for s in got[:1]] == [("fake", "ok", "seed 7")]
    # a section that raises is an error section, as build_report makes it, not a lost run
    assert got[1].status == "error" and "RuntimeError: section bug" in got[1].summary
    fig = got[0].figures[0]
    assert isinstance(fig.draw, PngFigure)
    fig.draw(str(tmp_path / fig.filename))
    assert (tmp_path / "fake.png").read_bytes() == b"seed 7"
    assert [s.key for s in run_sections(cfg, only=("broken",), executor="local:1")] == ["broken"]
