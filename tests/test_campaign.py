"""Sharded chi-squared campaigns: the shard plan, merged tables independent of the number of
workers and of the backend, equal to the single-process table of the same shards; the test on the
merged table equals the test on all rows at once; a worker killed mid-shard changes nothing; a shard
that raises names itself; the CLI's --cluster."""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from specoracle import examples, exact, registry, stats
from specoracle.campaign import SHARD_SIZE, Campaign, run_campaign, shard_plan
from specoracle.check import check_lossless, sample_sequences
from specoracle.cli import main
from specoracle.drafting import parse_scheme
from specoracle.execution import TaskFailed
from specoracle.errors import InvalidArgument, UnknownName

ray_group = pytest.mark.xdist_group("ray")

MODEL, SCHEME = examples.get("E2"), parse_scheme("chain(2)")
LAW = np.asarray(MODEL.target_law(3), float)  # the full law on V^3 = 27 cells
N, SHARD, SEED = 3000, 500, 11


def tables(executor, verifier="bv", n=N, shard_size=SHARD, seed=SEED):
    return Campaign(executor, shard_size).tables(verifier, MODEL, SCHEME, [LAW, MODEL.p(())], [slice(None), 0],
                                                 length=3, n=n, seed=seed, name="bv")


def one_process_tables(n=N, shard_size=SHARD, seed=SEED):
    """The same shards drawn one after the other here, their rows concatenated."""
    rows = [sample_sequences("bv", MODEL, SCHEME, s.n, seed=s.seed, length=3)[0] for s in shard_plan(n, seed, shard_size)]
    return np.concatenate(rows)


@pytest.mark.parametrize("n, size", [(10, 4), (12, 4), (1, 100), (100_001, SHARD_SIZE)])
def test_shard_plan(n, size):
    plan = shard_plan(n, 3, size)
    sizes = [s.n for s in plan]
    assert sum(sizes) == n and len(plan) == -(-n // size) and max(sizes) - min(sizes) <= 1 and max(sizes) <= size
    # seeds are NumPy's spawned children of the campaign seed: child i whatever the number of shards
    children = np.random.SeedSequence(3).spawn(len(plan))
    assert [s.seed for s in plan] == [int(c.generate_state(1, np.uint64)[0] >> 1) for c in children]
    assert [s.seed for s in shard_plan(n + size, 3, size)][: len(plan)] == [s.seed for s in plan]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_shard_plan_refuses(bad):
    with pytest.raises(InvalidArgument):
        shard_plan(10, 0, bad)


def test_merged_table_equals_single_process_table_for_any_number_of_workers():
    rows = one_process_tables()
    want_full = stats.count_rows(rows, stats.law_cells(LAW)[0])
    want_first = stats.count_rows(rows[:, 0], stats.law_cells(MODEL.p(()))[0])
    for workers in (1, 2, 3):
        t = tables(f"local:{workers}")
        assert (t.shards, t.workers, t.n, t.counts[0].sum()) == (6, workers, N, N)
        np.testing.assert_array_equal(t.counts[0], want_full)
        np.testing.assert_array_equal(t.counts[1], want_first)


def test_campaign_verdict_is_the_test_on_all_rows():
    v = run_campaign("bv", MODEL, SCHEME, n=N, seed=SEED, shard_size=SHARD, executor="local:2", projection="full")
    direct = stats.chi2_rows(one_process_tables(), LAW, alpha=0.01, power=0.99)
    assert (v.statistic, v.p_value, v.dof, v.n) == (direct.statistic, direct.p_value, direct.dof, N)
    assert (v.shards, v.workers) == (6, 2) and v.samples_per_second > 0
    assert v.status == "lossless" and v.detectable_tv == pytest.approx(direct.detectable_tv)


def test_campaign_catches_a_mutant_at_its_designed_sample_size():
    # sps_resample_target on E1 chain(2) is off by TV 1/9 exactly; n from the power analysis
    from specoracle import mutants

    m = next(m for m in mutants.catalog() if m.name == "sps_resample_target")
    model, scheme = examples.get(m.model), parse_scheme(m.scheme)
    r = exact.evaluate(m.verify, model, scheme)
    tv = stats.tv_distance(r.extended_law, r.target_law)
    assert tv == pytest.approx(1 / 9)
    n = stats.sample_size(tv, cells=int((np.asarray(r.target_law) > 0).sum()))
    v = run_campaign(m.verify, model, scheme, n=n, seed=1, shard_size=200, executor="local:2", projection="full")
    assert v.status == "not lossless" and v.shards == -(-n // 200)


def test_shard_that_raises_names_itself(monkeypatch):
    from specoracle import check

    # no timing run before the campaign: its calls would reach the raising call in this process
    monkeypatch.setattr(check._Sampler, "seconds_per_row", lambda self, n, seed: 1e-4)
    calls = []

    def broken(inst, rng):
        calls.append(1)
        if len(calls) > 20:
            raise ZeroDivisionError("ratio of zero probabilities")
        return registry.get("bv").reference(inst, rng)

    broken.enumerable = False  # as hidden randomness would: chi-squared only
    with pytest.raises(TaskFailed, match=r"shard \d+ \(seed \d+, 100 samples\) of broken on E2 chain\(2\) raised "
                                         r"ZeroDivisionError: ratio of zero probabilities"):
        run_campaign(broken, MODEL, SCHEME, n=400, shard_size=100, executor="local:1", max_seconds=1e6)


def test_bad_executor_refused_before_any_work():
    with pytest.raises(UnknownName, match="executor"):
        check_lossless("bv", "E2", "chain(2)", executor="rya")  # even where the exact method would run
    with pytest.raises(InvalidArgument, match="shard_size"):
        check_lossless("bv", "E2", "chain(2)", method="chi2", executor="local:1", shard_size=0)


def test_cli_cluster(capsys):
    code = main(["check", "bv", "--model", "E1", "--scheme", "chain(1)", "--method", "chi2", "--samples", "2e3",
                 "--cluster", "local:2", "--tv-ceiling", "0.5",
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["n"] == 2000 and out["shards"] == 1 and out["workers"] == 2 and out["samples_per_second"] > 0
    assert main(["check", "bv", "--cluster", "nope", "--json"]) == 2
    assert "unknown executor 'nope'" in json.loads(capsys.readouterr().out)["error"]["message"]
    assert main(["check", "bv", "--cluster", "local", "--device", "cpu", "--json"]) == 2


def test_cli_cluster_progress_shows_samples_per_second(capsys, monkeypatch):
    from specoracle import campaign

    monkeypatch.setattr(campaign, "SHARD_SIZE", 500)
    assert main(["check", "bv", "--model", "E1", "--scheme", "chain(1)", "--method", "chi2", "--samples", "2000",
                 "--cluster", "local:2",
                 "--tv-ceiling", "0.5"]) == 0
    err = capsys.readouterr().err
    assert "4 shards on 2 local workers" in err and "samples/s" in err


# --- Ray ------------------------------------------------------------------------------------------
class KillOnce:
    """BV, except that its first call in a worker process (not in the test's own process, which
    calibrates the sampler) SIGKILLs that worker, mid-shard, after leaving its pid in ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker, self.driver, self.__name__ = marker, os.getpid(), "bv"

    def __call__(self, inst, rng):
        if os.getpid() != self.driver:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return registry.get("bv").reference(inst, rng)


@ray_group
def test_ray_campaign_table_equals_single_process_table(ray_cluster):
    t = tables("ray")
    assert t.backend == "ray" and t.workers == 2 and t.shards == 6
    np.testing.assert_array_equal(t.counts[0], stats.count_rows(one_process_tables(), stats.law_cells(LAW)[0]))


@ray_group
def test_ray_worker_killed_mid_shard_is_retried_and_changes_nothing(ray_cluster, tmp_path):
    marker = str(tmp_path / "killed")
    t = tables("ray", verifier=KillOnce(marker))
    pid = int(open(marker).read())  # a worker really was killed (the test could fail otherwise)
    assert pid != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    want = tables("local:1")
    for got, exp in zip(t.counts, want.counts):
        np.testing.assert_array_equal(got, exp)


@ray_group
def test_ray_shard_that_raises_names_itself(ray_cluster):
    def broken(inst, rng):
        raise ZeroDivisionError("ratio of zero probabilities")

    with pytest.raises(TaskFailed, match=r"shard \d+ .* of broken on E2 chain\(2\) raised ZeroDivisionError"):
        Campaign("ray", 100).tables(broken, MODEL, SCHEME, [LAW], [slice(None)], length=3, n=300, seed=0, name="broken")


def test_local_worker_killed_mid_shard_stops_the_campaign_naming_the_shard(tmp_path):
    # local worker processes do not retry (Ray does): the campaign stops, naming a shard the broken pool lost
    with pytest.raises(TaskFailed, match=r"shard \d+ \(seed \d+, 500 samples\) of bv on E2 chain\(2\) raised "
                                         r"BrokenProcessPool"):
        tables("local:2", verifier=KillOnce(str(tmp_path / "killed")))
    assert (tmp_path / "killed").exists()


def test_local_executor_does_not_import_ray():
    import subprocess
    import sys

    code = ("import sys, specoracle.campaign, specoracle.fanout, specoracle.execution as e; e.get_executor('local:2');"
            "sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd="/").returncode == 0
