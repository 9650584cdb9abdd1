"""Where independent tasks run: local worker processes (the default) or a Ray cluster.

One small interface, :class:`Executor`, with two backends and no scheduler of our own:

- :class:`LocalExecutor`: ``concurrent.futures`` worker processes on this machine (no dependency
  beyond the standard library). ``workers=1`` runs the tasks in the calling process, in order.
- :class:`RayExecutor`: Ray tasks (``pip install 'specoracle[cluster]'``). ``ray.init()`` joins the
  cluster it finds (``RAY_ADDRESS``, or one started on this machine with ``ray start``) or starts a
  local one; ``address="ray://HOST:PORT"`` goes through the Ray client. A task whose worker dies
  (killed, out of memory, node lost) is run again by Ray (``max_retries``); an exception raised by
  the task itself is not retried.

Every backend runs ``fn(shared, item)`` for each item, where ``shared`` is sent once per worker
(the case a campaign samples, a verifier and its model) and ``item`` is small (a shard's index,
size and seed). Results come back as tasks finish; a task that raises stops the run with
:class:`TaskFailed`, which names the task (``label(item)``) and carries the original exception.

>>> with LocalExecutor(workers=1) as ex:
...     sorted(ex.imap_unordered(pow, 2, [3, 4]))
[(0, 8), (1, 16)]
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from .errors import InvalidArgument, SpecoracleError, unknown_name

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "TaskFailed", "EXECUTORS", "executor_spec", "get_executor", "available_cpus"]


class TaskFailed(SpecoracleError):
    """A task raised: ``label`` names it (the case, the shard), ``cause`` is the original exception.

    The message is ``"<label> raised <ExceptionType>: <message>"``.
    """

    def __init__(self, label: str, cause: BaseException) -> None:
        self.label, self.cause = label, cause
        super().__init__(f"{label} raised {type(cause).__name__}: {cause}")

    def __reduce__(self):  # picklable (Ray and process pools send exceptions between processes)
        return type(self), (self.label, self.cause)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


class Executor:
    """Runs ``fn(shared, item)`` for every item; the interface of every backend.

    Attributes
    ----------
    name : the backend (``"local"``, ``"ray"``).
    workers : how many tasks run at once (worker processes, or CPUs of the Ray cluster).
    """

    name = ""

    @property
    def workers(self) -> int:
        raise NotImplementedError

    def imap_unordered(self, fn: Callable, shared, items: Iterable, label: Callable = repr) -> Iterator[tuple[int, object]]:
        """``(index, fn(shared, items[index]))`` pairs in the order the tasks finish.

        A task that raises stops the run (the tasks not started are cancelled) with
        :class:`TaskFailed` labelled ``label(item)``.
        """
        raise NotImplementedError

    def map(self, fn: Callable, shared, items: Iterable, label: Callable = repr, on_result: Callable | None = None) -> list:
        """``[fn(shared, item) for item in items]``, computed by the backend; ``on_result(index,
        result)`` is called as each task finishes (progress bars)."""
        items = list(items)
        out: list = [None] * len(items)
        for i, r in self.imap_unordered(fn, shared, items, label):
            out[i] = r
            if on_result is not None:
                on_result(i, r)
        return out

    def close(self) -> None:
        """Release what the executor started (nothing by default)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers})"


# --- local worker processes ------------------------------------------------------------------------
_SHARED = None  # the `shared` argument, set once in each worker process by _init_worker


def _init_worker(shared) -> None:
    global _SHARED
    _SHARED = shared


def _call_in_worker(fn: Callable, item):
    return fn(_SHARED, item)


class LocalExecutor(Executor):
    """Worker processes on this machine (:class:`concurrent.futures.ProcessPoolExecutor`).

    Parameters
    ----------
    workers : number of processes (default: :func:`available_cpus`); 1 runs every task in the
        calling process, in order (the single-process reference run).

    Workers are forked where the platform allows, so ``shared`` reaches them without pickling
    (models built from closures included); results travel back pickled. A worker that dies breaks
    the pool: the run stops with :class:`TaskFailed` (``BrokenProcessPool``; use Ray for retries).
    Forking a process whose other threads hold locks can deadlock the child (Python's warning on
    ``fork``); the workers run only ``fn``, which keeps that risk small.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            workers = available_cpus()
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise InvalidArgument(f"workers must be an int >= 1, got {workers!r}")
        self._workers = workers

    @property
    def workers(self) -> int:
        return self._workers

    def imap_unordered(self, fn, shared, items, label=repr):
        items = list(items)
        if self._workers == 1 or len(items) <= 1:
            for i, item in enumerate(items):
                try:
                    r = fn(shared, item)
                except Exception as exc:
                    raise TaskFailed(label(item), exc) from exc
                yield i, r
            return
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        pool = ProcessPoolExecutor(max_workers=min(self._workers, len(items)),
                                   mp_context=multiprocessing.get_context(method),
                                   initializer=_init_worker, initargs=(shared,))
        try:
            pending = {pool.submit(_call_in_worker, fn, item): i for i, item in enumerate(items)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    exc = fut.exception()
                    if exc is not None:
                        raise TaskFailed(label(items[i]), exc) from exc
                    yield i, fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# --- Ray ------------------------------------------------------------------------------------------
def _import_ray():
    try:
        import ray
    except ImportError:
        raise InvalidArgument("the Ray executor needs Ray: pip install 'specoracle[cluster]'") from None
    return ray


def _ray_call(fn: Callable, shared, item):
    return fn(shared, item)


class RayExecutor(Executor):
    """Ray tasks on the cluster ``ray.init`` finds or starts.

    Parameters
    ----------
    address : None (``ray.init()``: the cluster named by ``RAY_ADDRESS`` or running on this
        machine, else a new local one), ``"auto"``, or ``"ray://HOST:PORT"`` (Ray client).
        Ignored when Ray is already initialised in this process (the caller's cluster is used).
    max_retries : how often a task whose worker died is run again (Ray's task retries).
    init_options : passed to ``ray.init`` (e.g. ``num_cpus=2`` for a local cluster).

    Tasks are scheduled by Ray, one CPU each; ``shared`` is put in the object store once.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, max_retries: int = 3, **init_options) -> None:
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, **init_options)
        self._ray = ray
        self._remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_ray_call)

    @property
    def workers(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def imap_unordered(self, fn, shared, items, label=repr):
        ray = self._ray
        items = list(items)
        ref = ray.put(shared)
        pending = {self._remote.remote(fn, ref, item): i for i, item in enumerate(items)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for r in done:
                    i = pending.pop(r)
                    try:
                        value = ray.get(r)
                    except ray.exceptions.RayTaskError as exc:  # the task raised: its own exception
                        cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                        raise TaskFailed(label(items[i]), cause) from exc
                    except ray.exceptions.RayError as exc:  # its worker died more often than max_retries
                        raise TaskFailed(label(items[i]), exc) from exc
                    yield i, value
        finally:
            for r in pending:
                ray.cancel(r)


EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ray": RayExecutor}
"""Backends by name (:func:`get_executor`)."""


def executor_spec(spec) -> tuple[type[Executor], dict]:
    """The backend class and its arguments named by ``spec`` (see :func:`get_executor`), checked
    without starting anything.

    >>> executor_spec("local:4")
    (<class 'specoracle.execution.LocalExecutor'>, {'workers': 4})
    """
    if spec is None:
        return LocalExecutor, {}
    if not isinstance(spec, str):
        raise InvalidArgument(f"executor must be a name like 'local', 'local:4', 'ray' or 'ray://HOST:PORT', or an "
                              f"Executor, got {type(spec).__name__}")
    if spec.startswith("ray://"):
        return RayExecutor, {"address": spec}
    name, _, arg = spec.partition(":")
    if name not in EXECUTORS:
        raise unknown_name("executor", name, [*EXECUTORS, "ray://HOST:PORT"])
    if name == "local" and arg:
        try:
            workers = int(arg)
        except ValueError:
            raise InvalidArgument(f"'local:N' needs an integer number of workers, got {spec!r}") from None
        if workers < 1:
            raise InvalidArgument(f"'local:N' needs N >= 1 workers, got {spec!r}")
        return LocalExecutor, {"workers": workers}
    if arg:
        raise InvalidArgument(f"executor {spec!r}: give 'local', 'local:N', 'ray' or 'ray://HOST:PORT'")
    return EXECUTORS[name], {}


def get_executor(spec=None) -> Executor:
    """An :class:`Executor` from a name: ``None`` or ``"local"`` (all CPUs), ``"local:N"`` (``N``
    worker processes), ``"ray"`` (``ray.init()``: the running cluster, else a local one),
    ``"ray://HOST:PORT"`` (a remote cluster through the Ray client); an Executor is returned as is.

    >>> get_executor("local:1").workers
    1
    """
    if isinstance(spec, Executor):
        return spec
    cls, kwargs = executor_spec(spec)
    return cls(**kwargs)
