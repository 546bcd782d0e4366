"""The evaluator of a search: runs candidate trainings on a backend, measures costs, remembers both.

Every search strategy (evolution, random search, the uniform reference nets) asks one
:class:`Evaluator` for fitness values and costs. It

- trains only genomes it has not scored yet (a genome's fitness is a deterministic
  function of the genome and the search seed, :func:`~onebit.search.evaluation.candidate_seed`,
  so it is never worth training twice);
- measures costs through a :class:`~onebit.search.costs.CostModel` in *this* process,
  between trainings (the workers are idle then, so latency is timed on a quiet engine);
- with a ``state_path``, writes everything it has scored to that JSON file atomically
  after every finished candidate (so also after every generation). A search killed at
  any moment and started again on the same state (``resume=True``) replays its
  decisions (they depend only on the seed and on fitness values) and finds every
  finished candidate there: it ends exactly as an uninterrupted search, only the times
  differ.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from onebit.atomic import atomic_write_text
from onebit.errors import CheckpointError, ConfigError, MissingFileError
from onebit.search.backends import Backend, Fitness, make_backend
from onebit.search.costs import CostModel, check_costs
from onebit.search.evaluation import candidate_seed
from onebit.search.space import Genome, SearchSpace

__all__ = ["STATE_VERSION", "Evaluator", "genome_key"]

log = logging.getLogger(__name__)

STATE_VERSION = 1


def genome_key(genome: Sequence[float]) -> str:
    """A genome as a JSON list of floats: its key in the state file."""
    return json.dumps([float(r) for r in genome])


class Evaluator:
    """Scores genomes of ``space`` with ``fitness`` on a backend, and measures their costs.

    ``record`` are the costs measured for every candidate (those of a budget are added by
    the strategies). ``config`` is what fixes the results of the search (it is saved in
    the state file, and a resumed search must give the same); ``workers`` and
    ``backend`` are not part of it: a search may resume with another worker count.
    """

    def __init__(
        self, space: SearchSpace, fitness: Fitness, *, seed: int = 0, cost_model: CostModel | None = None,
        record: Sequence[str] = ("binary_macs", "bytes"), workers: int = 1, backend: str = "process",
        state_path: str | os.PathLike | None = None, config: dict[str, Any] | None = None, resume: bool = False,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        self.space, self.fitness, self.seed = space, fitness, seed
        self.cost_model = cost_model or CostModel(space)
        self.record = check_costs(record) if record else []
        self.workers, self.backend_name = workers, backend
        self._backend: Backend | None = None
        self.results: dict[str, dict[str, float]] = {}
        self.stages: dict[str, Any] = {}  # finished steps of a pipeline around the search (e.g. the retraining)
        # Through JSON once, so that the copy in memory equals the one read back on resume (tuples → lists).
        self.config = json.loads(json.dumps({"seed": seed, "space": space.to_dict(), **(config or {})}))
        self.state_path = None if state_path is None else Path(state_path)
        self.trained = 0  # trainings run by this process (the rest came from the saved state)
        if self.state_path is not None:
            if resume:
                self._load()
            elif self.state_path.exists():
                raise ConfigError(f"{self.state_path} holds a search already: resume it, or choose another folder")
            else:
                self.save()
        elif resume:
            raise ConfigError("resume needs the state file of the search to continue (state_path)")

    # ------------------------------------------------------------------ state

    def _load(self) -> None:
        assert self.state_path is not None
        if not self.state_path.is_file():
            raise MissingFileError(f"{self.state_path} not found: nothing to resume")
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.state_path} cannot be read as a search state: {exc}") from None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise CheckpointError(f"{self.state_path} is not a version-{STATE_VERSION} onebit search state")
        saved = state.get("config", {})
        if saved != self.config:
            changed = sorted(k for k in set(saved) | set(self.config) if saved.get(k) != self.config.get(k))
            raise ConfigError(f"cannot resume {self.state_path.parent}: these settings differ from the search's: "
                              f"{', '.join(changed)}")
        self.results = {str(k): dict(v) for k, v in state.get("results", {}).items()}
        self.stages = dict(state.get("stages", {}))
        log.info("resuming: %d candidate%s already scored in %s", len(self.results),
                 "" if len(self.results) == 1 else "s", self.state_path)

    def save(self) -> None:
        """Write the state file (atomically); a no-op without ``state_path``."""
        if self.state_path is not None:
            atomic_write_text(self.state_path, json.dumps(
                {"version": STATE_VERSION, "config": self.config, "results": self.results, "stages": self.stages},
                indent=1) + "\n")

    # ------------------------------------------------------------------ costs and fitness

    def costs(self, genome: Sequence[float], extra: Sequence[str] = ()) -> dict[str, float]:
        """The recorded costs of ``genome`` plus ``extra`` ones (cached per architecture)."""
        names = list(dict.fromkeys([*self.record, *extra]))
        return self.cost_model.measure(genome, names) if names else {}

    def seed_of(self, genome: Sequence[float]) -> int:
        return candidate_seed(self.seed, genome)

    def known(self, genome: Sequence[float]) -> bool:
        return genome_key(genome) in self.results

    def evaluate(
        self, genomes: Sequence[Genome], on_result: Callable[[int, float, float, bool], None] | None = None,
    ) -> list[tuple[float, float]]:
        """``(fitness, seconds)`` of each genome; trains those not scored yet, in parallel on the backend.

        ``on_result(index, fitness, seconds, cached)`` is called as each result is known
        (cached ones first, then trainings as they finish).
        """
        out: dict[int, tuple[float, float]] = {}
        jobs: list[tuple[Genome, int]] = []
        job_of: dict[str, int] = {}
        waiting: dict[int, list[int]] = {}
        for i, genome in enumerate(genomes):
            key = genome_key(genome)
            if key in self.results:
                out[i] = (self.results[key]["fitness"], self.results[key]["seconds"])
                if on_result is not None:
                    on_result(i, *out[i], True)
            elif key in job_of:
                waiting[job_of[key]].append(i)
            else:
                job_of[key] = len(jobs)
                waiting[len(jobs)] = [i]
                jobs.append((tuple(genome), self.seed_of(genome)))
        if jobs:
            for j, value, seconds in self._get_backend().run(jobs):
                genome, seed = jobs[j]
                fitness = float(value)
                self.results[genome_key(genome)] = {"fitness": fitness, "seconds": seconds, "seed": seed}
                self.trained += 1
                self.save()
                for i in waiting[j]:
                    out[i] = (fitness, seconds)
                    if on_result is not None:
                        on_result(i, fitness, seconds, False)
        return [out[i] for i in range(len(genomes))]

    def _get_backend(self) -> Backend:
        if self._backend is None:
            self._backend = make_backend(self.fitness, workers=self.workers, backend=self.backend_name)
        return self._backend

    def close(self) -> None:
        """Stop the workers (a later evaluation starts them again)."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
