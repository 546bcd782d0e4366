"""A whole width search in a run folder: references, evolution, random search, retraining, outputs.

:func:`run_search` is what ``onebit search`` runs:

1. the uniform reference nets (×1, ×2, ×4 by default) get the same proxy score as every
   candidate, so the plot places the search against them;
2. :func:`~onebit.search.evolution.evolve` under the budget, given as numbers or "like"
   a uniform net (``budget_like=2``: the costs of the uniform ×2 net);
3. :func:`~onebit.search.evolution.random_search` with the evolution's number of
   evaluations, the baseline;
4. the evolution's best genome retrained from scratch with the full schedule
   (``final_epochs``, default the model/data recipe's) and tested once, into
   ``OUT/winner/`` (checkpoint, metrics, ``model.onebit`` scored by the runtime).

The run folder holds ``search.json`` (rewritten after every generation; every candidate
with its genome, widths, costs, proxy accuracy, generation and wall time), ``pareto.png``,
``state.json`` (what a killed search resumes from: :func:`resume_search`, ``onebit search
--resume OUT``), ``latency_cache.json`` when latency is measured, and ``winner/``. A
resumed search ends with the same ``search.json`` as an uninterrupted one; only the
``run`` record (dates, worker count, backend) and wall times differ (:func:`strip_times`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from onebit.atomic import atomic_write_text
from onebit.errors import ConfigError, MissingFileError
from onebit.search.backends import check_backend
from onebit.search.costs import CostModel, check_costs, format_cost
from onebit.search.evaluation import ProxyFitness, ProxyTraining, train_candidate
from onebit.search.evaluator import Evaluator
from onebit.search.evolution import (
    Candidate, EvolutionSettings, SearchResult, check_reachable, evolve, random_search, score_genomes,
)
from onebit.search.pareto import plot_pareto
from onebit.search.space import DEFAULT_CHOICES, SearchSpace, search_space

__all__ = ["SEARCH_VERSION", "SearchConfig", "resume_search", "run_search", "strip_times"]

log = logging.getLogger(__name__)

SEARCH_VERSION = 1
STATE_FILE = "state.json"


@dataclass(frozen=True)
class SearchConfig:
    """Everything that fixes a search's results (not how it runs: workers and backend are not here).

    ``budget``: maxima per cost name (``budget_like`` is then ignored); else ``budget_like``:
    the costs (``costs``) of the uniform net of that ratio (default 2); both None: an
    unconstrained search. ``record``: costs measured for
    every candidate besides the budget's. ``final_epochs=None``: the recipe's epochs.
    """

    model: str
    data: str
    costs: tuple[str, ...] = ("binary_macs",)
    budget: dict[str, float] | None = None
    budget_like: float | None = 2.0
    model_args: dict[str, Any] = field(default_factory=dict)
    choices: tuple[float, ...] = DEFAULT_CHOICES
    population: int = 8
    generations: int = 5
    parents: int | None = None
    elite: int | None = None
    mutation_rate: float | None = None
    over_budget: str = "repair"
    proxy_epochs: int = 3
    final_epochs: int | None = None
    seed: int = 0
    random_baseline: bool = True
    references: tuple[float, ...] = (1.0, 2.0, 4.0)
    record: tuple[str, ...] = ("binary_macs", "bytes")
    latency_batch: int = 1
    latency_threads: int = 1
    latency_repeats: int = 200
    retrain: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "costs", tuple(check_costs(self.costs)))
        object.__setattr__(self, "record", tuple(check_costs(self.record)) if self.record else ())
        object.__setattr__(self, "choices", tuple(float(c) for c in self.choices))
        object.__setattr__(self, "references", tuple(float(r) for r in self.references))
        if self.budget is not None:
            object.__setattr__(self, "budget_like", None)  # explicit maxima win over the default uniform:2
            if not isinstance(self.budget, dict) or not self.budget:
                raise ConfigError(f"budget must map cost names to maxima, got {self.budget!r}")
            check_costs(list(self.budget))
            object.__setattr__(self, "costs", tuple(self.budget))
        if self.budget_like is not None and not (isinstance(self.budget_like, int | float) and self.budget_like > 0):
            raise ConfigError(f"budget_like must be a positive width ratio, got {self.budget_like!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("proxy_epochs", "latency_batch", "latency_threads", "latency_repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.final_epochs is not None and (not isinstance(self.final_epochs, int) or self.final_epochs < 1):
            raise ConfigError(f"final_epochs must be a positive integer, got {self.final_epochs!r}")
        if any(r <= 0 or not math.isfinite(r) for r in self.references):
            raise ConfigError(f"references must be positive width ratios, got {list(self.references)}")

    def settings(self, genes: int) -> EvolutionSettings:
        return EvolutionSettings.make(genes, population=self.population, generations=self.generations,
                                      parents=self.parents, elite=self.elite, mutation_rate=self.mutation_rate,
                                      over_budget=self.over_budget)

    def check(self) -> SearchSpace:
        """Check everything that needs no data (model, knobs, data name, evolution settings); returns the
        space at the model's native size."""
        from onebit.data import check_dataset_spec

        space = search_space(self.model, model_args=self.model_args, choices=self.choices)
        self.settings(len(space.genes))
        check_dataset_spec(self.data)
        return space

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("costs", "choices", "references", "record"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) and k != "model_args" else v
                      for k, v in d.items() if k in known})


def strip_times(obj: Any) -> Any:
    """``search.json`` without what differs between two runs of the same search: the ``run`` record
    (dates, workers, backend) and every ``*seconds`` field."""
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if k != "run" and not k.endswith("seconds")}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


def _resolve_budget(config: SearchConfig, space: SearchSpace, costs: CostModel) -> tuple[dict[str, float], str]:
    if config.budget is not None:
        return {k: float(v) for k, v in config.budget.items()}, "given"
    if config.budget_like is None:
        return {}, "none"
    names = list(config.costs)
    budget = {name: float(v) for name, v in costs.measure(space.uniform(config.budget_like), names).items()}
    if config.budget_like >= space.choices[0]:
        # Every cost grows with width, so a uniform net at least as wide as the cheapest genome
        # leaves it room; a measured latency can still say otherwise (timing noise on a loaded
        # machine), and then the budget is the cheapest genome's measured cost, not one no genome fits.
        cheapest = costs.measure(space.cheapest(), names)
        for name in names:
            if cheapest[name] > budget[name]:
                log.warning("the %s of the uniform x%g net measured %s, under the cheapest genome's %s (timing "
                            "noise): the budget is the cheapest genome's", name, config.budget_like,
                            format_cost(name, budget[name]), format_cost(name, cheapest[name]))
                budget[name] = float(cheapest[name])
    return budget, f"uniform:{config.budget_like:g}"


def run_search(
    config: SearchConfig, out_dir: str | os.PathLike, *, workers: int = 1, backend: str = "process",
    resume: bool = False, data: Any = None,
) -> dict[str, Any]:
    """Run (or with ``resume=True`` continue) the search ``config`` in ``out_dir``; returns ``search.json``.

    ``data``: the :class:`~onebit.data.Dataset` to use (default: ``load_dataset(config.data,
    seed=config.seed)``). Progress goes to the ``onebit.search`` loggers: a line per
    candidate and per generation.
    """
    from onebit.data import load_dataset

    config.check()
    check_backend(backend)
    out = Path(out_dir)
    if not resume and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"search folder {out} already exists and is not empty; choose another --out or --resume it")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()
    if data is None:
        data = load_dataset(config.data, seed=config.seed)
    elif getattr(data, "name", None) != config.data:
        raise ConfigError(f"the data set given is {getattr(data, 'name', data)!r}, the search config says "
                          f"{config.data!r}")
    space = search_space(config.model, num_classes=data.num_classes, in_shape=data.in_shape,
                         model_args=config.model_args, choices=config.choices)
    settings = config.settings(len(space.genes))
    proxy = ProxyTraining.for_data(config.model, data.name, config.proxy_epochs)
    uses_latency = "latency" in (*config.costs, *config.record)
    costs = CostModel(space, latency_batch=config.latency_batch, latency_threads=config.latency_threads,
                      latency_repeats=config.latency_repeats)
    cache = out / "latency_cache.json"
    if resume and uses_latency:
        costs.attach_cache(cache)  # the latencies the search was run with, not new measurements
    budget, source = _resolve_budget(config, space, costs)
    check_reachable(space, costs, budget)  # before any folder is made or candidate trained
    out.mkdir(parents=True, exist_ok=True)
    if uses_latency and not resume:
        costs.attach_cache(cache)
    fitness = ProxyFitness(space, data, proxy, split_seed=config.seed)
    run_config = {k: v for k, v in config.to_dict().items() if k != "seed"}
    with Evaluator(space, fitness, seed=config.seed, cost_model=costs, record=config.record or config.costs,
                   workers=workers, backend=backend, state_path=out / STATE_FILE, config=run_config,
                   resume=resume) as ev:
        if budget:
            log.info("budget (%s): %s", source, ", ".join(f"{n} ≤ {format_cost(n, v)}" for n, v in budget.items()))
        record: dict[str, Any] = {
            "version": SEARCH_VERSION, "model": config.model, "data": data.name, "seed": config.seed,
            "config": config.to_dict(), "space": space.to_dict(), "proxy_training": proxy.to_dict(),
            "budget": budget, "budget_source": source, "evolution_settings": settings.to_dict(),
            "latency_settings": costs.settings() if uses_latency else None,
            "references": [], "evolution": None, "random_search": None, "winner": None, "status": "running",
            "run": {"started": started, "workers": workers, "backend": backend, "resumed": resume},
        }

        def write(status: str = "running") -> None:
            record["status"] = status
            record["run"]["wall_seconds"] = time.perf_counter() - clock
            record["run"]["trained_in_this_run"] = ev.trained
            _write_json(out / "search.json", record)

        refs = [(space.uniform(r), "reference", None) for r in config.references]
        record["references"] = [c.to_dict() for c in score_genomes(ev, refs, generation=0, first_id=0,
                                                                   budget=budget, label="uniform reference")]
        write()

        def on_generation(result: SearchResult) -> None:
            record["evolution"] = result.to_dict()
            write()

        evo = evolve(space, evaluator=ev, budget=budget, population=settings.population,
                     generations=settings.generations, parents=settings.parents, elite=settings.elite,
                     mutation_rate=settings.mutation_rate, over_budget=settings.over_budget,
                     on_generation=on_generation)
        record["evolution"] = evo.to_dict()
        if config.random_baseline:
            rnd = random_search(space, evaluations=evo.evaluations, budget=budget, evaluator=ev)
            record["random_search"] = rnd.to_dict()
            write()
        ev.close()  # the workers are done; the retraining runs here
        assert evo.best is not None
        record["winner"] = _winner(config, space, data, evo.best, ev, out)
        write("done")
    plot_pareto(record, out / "pareto.png")
    log.info("wrote %s", out / "search.json")
    return record


def _winner(config: SearchConfig, space: SearchSpace, data: Any, best: Candidate, ev: Evaluator,
            out: Path) -> dict[str, Any]:
    """The best genome, retrained in full into ``out/winner`` (once: a resumed search reads it back)."""
    winner: dict[str, Any] = {"candidate": best.id, "genome": list(best.genome), "widths": best.widths,
                              "costs": best.costs, "proxy_accuracy": best.fitness}
    if not config.retrain:
        return winner
    if "winner" not in ev.stages:
        from onebit.recipes import recipe_for

        epochs = config.final_epochs or recipe_for(config.model, data.name).epochs
        full = ProxyTraining.for_data(config.model, data.name, epochs)
        log.info("retraining the winner %s from scratch: %d epochs, seed %d, into %s", space.format(best.genome),
                 epochs, config.seed, out / "winner")
        trained = train_candidate(space, best.genome, data, full, seed=config.seed, out_dir=out / "winner")
        result = trained.to_dict()
        result["out_dir"] = "winner"
        ev.stages["winner"] = result
        ev.save()
    done = ev.stages["winner"]
    winner.update({k: done[k] for k in ("best_val_accuracy", "test_accuracy", "runtime_test_accuracy", "epochs",
                                        "seed")})
    winner["run_dir"] = done["out_dir"]
    log.info("winner %s (widths %s): test accuracy %.2f%% after %d epochs (runtime on model.onebit: %s)",
             space.format(best.genome), best.widths, 100 * winner["test_accuracy"], winner["epochs"],
             "n/a" if winner["runtime_test_accuracy"] is None else f"{100 * winner['runtime_test_accuracy']:.2f}%")
    return winner


def resume_search(out_dir: str | os.PathLike, *, workers: int = 1, backend: str = "process") -> dict[str, Any]:
    """Continue the search in ``out_dir`` (killed or finished) with its recorded settings."""
    import json

    path = Path(out_dir) / STATE_FILE
    if not path.is_file():
        raise MissingFileError(f"{path} not found: nothing to resume (is {out_dir} a search folder?)")
    try:
        config = SearchConfig.from_dict(dict(json.loads(path.read_text())["config"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} cannot be read as a search state: {exc}") from None
    return run_search(config, out_dir, workers=workers, backend=backend, resume=True)


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    import json

    atomic_write_text(path, json.dumps(obj, indent=1, default=float) + "\n")
