"""Sharded chi-squared campaigns: many workers draw the samples, one test judges them.

A campaign of ``n`` samples is cut into ``S = ceil(n / shard_size)`` shards of sizes
``floor(n / S)`` or ``ceil(n / S)``. Shard ``i`` draws its rows (:func:`specoracle.check.sample_sequences`)
with its own seed, ``SeedSequence(seed, spawn_key=(i,))`` (NumPy's ``SeedSequence(seed).spawn``
child ``i``), and returns count tables (:func:`specoracle.stats.count_rows`) on the cells of each
tested law. Tables of disjoint samples add up, so the merged table, and the test on it
(:func:`specoracle.stats.chi2_table`, the one statistics layer), depend on ``seed``, ``n`` and
``shard_size`` only: never on the number of workers, the backend, the order in which shards
finish, or a shard run again after its worker died.

:func:`run_campaign` is :func:`specoracle.check.check_lossless` with ``method="chi2"`` on an
executor (:mod:`specoracle.execution`); the :class:`~specoracle.check.Verdict` records ``shards``,
``workers`` and ``samples_per_second``.

>>> v = run_campaign("bv", "E2", "chain(2)", n=4000, shard_size=1000, executor="local:1", tv_ceiling=0.2)
>>> v.status, v.n, v.shards, v.workers
('lossless', 4000, 4, 1)
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import stats
from .execution import Executor, executor_spec, get_executor

__all__ = ["SHARD_SIZE", "Shard", "shard_plan", "Case", "ShardTables", "CampaignTables", "Campaign", "check_campaign", "count_shard", "run_campaign"]

SHARD_SIZE = 100_000
"""Default samples per shard: a few seconds of work, a few MiB of rows, few enough shards for
Ray's per-task overhead (milliseconds) to vanish."""


@dataclass(frozen=True)
class Shard:
    """One piece of a campaign: ``n`` samples drawn with ``seed``; ``index`` in ``0 .. S-1``."""

    index: int
    n: int
    seed: int


def shard_plan(n: int, seed: int, shard_size: int = SHARD_SIZE) -> list[Shard]:
    """The shards of a campaign of ``n`` samples: ``ceil(n / shard_size)`` of them, sizes differing
    by at most one, seeds from ``SeedSequence(seed, spawn_key=(index,))`` (63 bits).

    >>> [(s.index, s.n) for s in shard_plan(10, 0, 4)]
    [(0, 4), (1, 3), (2, 3)]
    """
    n = stats.check_count("n", n)
    seed = stats.check_count("seed", seed, 0)
    shard_size = stats.check_count("shard_size", shard_size)
    k = -(-n // shard_size)
    base, extra = divmod(n, k)
    return [Shard(i, base + (i < extra), int(np.random.SeedSequence(seed, spawn_key=(i,)).generate_state(1, np.uint64)[0] >> 1))
            for i in range(k)]


@dataclass(frozen=True)
class Case:
    """What every shard of a campaign samples (sent once to each worker): a verifier on a model and
    scheme, rows of ``length`` tokens, and one count table per tested law, on ``rows[:, column]``."""

    verifier: object
    model: object
    scheme: object
    length: int
    laws: tuple
    columns: tuple
    name: str

    def label(self, shard: Shard) -> str:
        return (f"shard {shard.index} (seed {shard.seed}, {shard.n} samples) of {self.name} on "
                f"{self.model.name} {self.scheme.name}")


@dataclass(frozen=True)
class ShardTables:
    """What a shard returns: its count tables (one per law, :func:`specoracle.stats.count_rows`),
    the tokens it emitted in total (``n`` times the mean block length) and its wall seconds."""

    index: int
    n: int
    counts: tuple
    tokens: float
    seconds: float


def count_shard(case: Case, shard: Shard) -> ShardTables:
    """Draw one shard's rows and count them on each law's cells (runs on a worker)."""
    from .check import sample_sequences

    t0 = time.perf_counter()
    seq, mean_block = sample_sequences(case.verifier, case.model, case.scheme, shard.n, seed=shard.seed,
                                       length=case.length)
    counts = tuple(stats.count_rows(seq[:, c], stats.law_cells(law)[0]) for law, c in zip(case.laws, case.columns))
    return ShardTables(shard.index, shard.n, counts, float(mean_block) * shard.n, time.perf_counter() - t0)


@dataclass(frozen=True)
class CampaignTables:
    """The merged result of a campaign's shards.

    counts : one merged table per law, ``[C + 1]`` int64 (the law's cells, then outside).
    n, mean_block : samples and their mean block length (tokens per call for stateful verifiers,
        averaged over shards weighted by their samples).
    shards, workers, backend : how the work was cut and where it ran.
    seconds, samples_per_second : wall time of the sampling and ``n / seconds``.
    """

    counts: tuple
    n: int
    mean_block: float
    shards: int
    workers: int
    backend: str
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else math.inf


def check_campaign(executor, shard_size) -> None:
    """Refuse a bad executor name or shard size (InvalidArgument, UnknownName) without starting
    anything (what :func:`specoracle.check.check_lossless` does before its work)."""
    if not isinstance(executor, Executor):
        executor_spec(executor)
    if shard_size is not None:
        stats.check_count("shard_size", shard_size)


class Campaign:
    """An executor and a shard size: how :func:`specoracle.check.check_lossless` samples when it
    is given ``executor`` (see the module docstring).

    Parameters
    ----------
    executor : an :class:`~specoracle.execution.Executor` or a name for
        :func:`~specoracle.execution.get_executor` (``"local"``, ``"local:4"``, ``"ray"``,
        ``"ray://HOST:PORT"``).
    shard_size : samples per shard (default :data:`SHARD_SIZE`); it fixes the shards, hence the table.
    """

    def __init__(self, executor="local", shard_size: int | None = None) -> None:
        self.shard_size = SHARD_SIZE if shard_size is None else stats.check_count("shard_size", shard_size)
        self.executor: Executor = get_executor(executor)

    @property
    def workers(self) -> int:
        return self.executor.workers

    def tables(self, verifier, model, scheme, laws, columns, *, length: int, n: int, seed: int, name: str,
               progress: bool = False) -> CampaignTables:
        """Sample ``n`` rows of ``length`` tokens in shards and merge their count tables on ``laws``
        (``rows[:, columns[j]]`` counted on the cells of ``laws[j]``); a bar on stderr shows
        samples and samples/s when ``progress``."""
        case = Case(verifier, model, scheme, length, tuple(laws), tuple(columns), name)
        plan = shard_plan(n, seed, self.shard_size)
        workers = self.workers
        merged = [np.zeros(len(stats.law_cells(law)[0]) + 1, dtype=np.int64) for law in laws]
        tokens = 0.0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=f"{name} chi2, {len(plan)} shards on {workers} {self.executor.name} workers",
                       unit="samples", unit_scale=True, file=sys.stderr, leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        try:
            for _, r in self.executor.imap_unordered(count_shard, case, plan, label=case.label):
                for m, c in zip(merged, r.counts):
                    m += c
                tokens += r.tokens
                if bar is not None:
                    bar.update(r.n)
        finally:
            if bar is not None:
                bar.close()
        return CampaignTables(tuple(merged), n, tokens / n, len(plan), workers, self.executor.name,
                              time.perf_counter() - t0)


def run_campaign(verifier, model, scheme, *, n: int | None = None, seed: int = 0, executor="local",
                 shard_size: int | None = None, **check_options):
    """A sharded chi-squared check: :func:`specoracle.check.check_lossless` with ``method="chi2"``,
    its samples drawn in shards on ``executor``.

    Parameters
    ----------
    verifier, model, scheme : as in :func:`~specoracle.check.check_lossless` (objects sent to Ray
        workers are cloudpickled; local workers are forked).
    n : samples (default: the power analysis of :func:`specoracle.stats.sample_size` at ``tv``).
    seed : campaign seed; shard ``i`` draws with ``SeedSequence(seed, spawn_key=(i,))``.
    executor, shard_size : see :class:`Campaign`.
    check_options : ``alpha``, ``tv``, ``power``, ``projection``, budgets, ``progress``, ...

    Returns
    -------
    Verdict with ``shards``, ``workers`` and ``samples_per_second``.
    """
    from .check import check_lossless

    return check_lossless(verifier, model, scheme, "chi2", n=n, seed=seed, executor=executor,
                          shard_size=shard_size, **check_options)
