"""Where candidate trainings run: in this process, a local process pool, or Ray.

A backend takes ``(genome, seed)`` jobs and yields ``(index, fitness, seconds)`` as each
finishes. The fitness function (:class:`~onebit.search.evaluation.ProxyFitness` or any
picklable ``f(genome, seed)``) is shipped to each worker once; what it returns comes back
as it is (a float for a search; the experiments also run full trainings this way, whose
function returns a dict). Results do not
depend on the backend or the worker count: each candidate trains with its own derived
seed and a fixed torch thread count, and the search orders results by job, not by
arrival.

- ``workers=1`` (any backend but Ray): in this process, one job after the other.
- ``"process"`` with ``workers=N``: :class:`concurrent.futures.ProcessPoolExecutor` with
  the ``spawn`` start method (a fork of a process that holds torch's thread pool can
  hang), each worker at one torch thread. As with any spawn-based pool, a script that
  searches with ``workers > 1`` must guard its entry point (``if __name__ == "__main__":``):
  each worker imports the script's main module.
- ``"ray"``: Ray tasks of one CPU each, on the running Ray instance (``ray.init(address=...)``
  before the search joins a cluster) or, if none, a local one of ``workers`` CPUs started
  and stopped by the search. Needs the optional extra: ``pip install 'onebit[search]'``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from onebit.errors import ConfigError, unknown_choice

__all__ = ["BACKENDS", "Backend", "ProcessBackend", "RayBackend", "check_backend", "make_backend"]

log = logging.getLogger(__name__)

BACKENDS = ("process", "ray")
RAY_HINT = "pip install 'onebit[search]'"

Fitness = Callable[[Any, int], Any]
Job = tuple[Any, int]  # (genome or another picklable payload, seed)


def _timed(fitness: Fitness, genome: Any, seed: int) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fitness(genome, seed)
    return value, time.perf_counter() - start


class Backend:
    """Runs jobs in this process, one after the other (``workers=1``)."""

    name = "serial"
    workers = 1

    def __init__(self, fitness: Fitness) -> None:
        self.fitness = fitness

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Any, float]]:
        """Yield ``(index into jobs, fitness, seconds)`` for every job, in order of completion."""
        for i, (genome, seed) in enumerate(jobs):
            yield (i, *_timed(self.fitness, genome, seed))

    def close(self) -> None:
        """Release the workers (nothing to release here)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_WORKER_FITNESS: Fitness | None = None


def _init_worker(fitness: Fitness) -> None:
    global _WORKER_FITNESS
    _WORKER_FITNESS = fitness
    import torch

    torch.set_num_threads(1)


def _worker_job(genome: Any, seed: int) -> tuple[Any, float]:
    assert _WORKER_FITNESS is not None, "worker not initialised"
    return _timed(_WORKER_FITNESS, genome, seed)


class ProcessBackend(Backend):
    """A pool of ``workers`` spawned processes (stdlib ``concurrent.futures``)."""

    name = "process"

    def __init__(self, fitness: Fitness, workers: int) -> None:
        super().__init__(fitness)
        self.workers = workers
        # One OpenMP thread per worker from the start (torch also gets set_num_threads(1)).
        previous = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=(fitness,))
        finally:
            if previous is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = previous

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Any, float]]:
        futures: dict[Future, int] = {self.pool.submit(_worker_job, g, s): i for i, (g, s) in enumerate(jobs)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=futures.__getitem__):
                    yield (futures[future], *future.result())
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"the Ray backend needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


def _ray_job(fitness: Fitness, genome: Any, seed: int) -> tuple[Any, float]:
    import torch

    torch.set_num_threads(1)
    return _timed(fitness, genome, seed)


class RayBackend(Backend):
    """Ray tasks of one CPU each; a local Ray instance of ``workers`` CPUs when none is running."""

    name = "ray"

    def __init__(self, fitness: Fitness, workers: int) -> None:
        super().__init__(fitness)
        ray = _ray()
        self.workers = workers
        self.started = not ray.is_initialized()
        if self.started:
            log.info("starting a local Ray instance with %d CPU%s", workers, "" if workers == 1 else "s")
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        self.fitness_ref = ray.put(fitness)
        self.task = ray.remote(num_cpus=1)(_ray_job)

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Any, float]]:
        ray = _ray()
        refs = {self.task.remote(self.fitness_ref, g, s): i for i, (g, s) in enumerate(jobs)}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield (refs[ref], *ray.get(ref))
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        if self.started:
            _ray().shutdown()
            self.started = False


def make_backend(fitness: Fitness, *, workers: int = 1, backend: str = "process") -> Backend:
    """The backend that runs ``fitness`` jobs: in process (``workers=1``), a process pool, or Ray."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if backend not in BACKENDS:
        raise unknown_choice("backend", backend, BACKENDS)
    if backend == "ray":
        return RayBackend(fitness, workers)
    return Backend(fitness) if workers == 1 else ProcessBackend(fitness, workers)


def check_backend(backend: str) -> None:
    """Raise a ConfigError now (before any work) if ``backend`` is unknown or not installed."""
    if backend not in BACKENDS:
        raise unknown_choice("backend", backend, BACKENDS)
    if backend == "ray":
        _ray()
