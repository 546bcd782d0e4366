"""Evolutionary width search (Shen et al. 2019, arXiv:1909.07378) and its honest baseline, random search.

:func:`evolve` runs a generational evolutionary algorithm over genomes of a
:class:`~onebit.search.space.SearchSpace`:

1. Generation 0: ``population`` distinct genomes drawn uniformly at random.
2. Each genome's fitness is its validation accuracy after a brief training
   (:class:`~onebit.search.evaluation.ProxyFitness`), or any ``fitness(genome, seed)``.
3. Generation ``g + 1``: the ``elite`` fittest genomes of generation ``g`` pass
   unchanged (elitism: the best fitness never decreases); the rest are offspring of two
   parents drawn from the ``parents`` fittest (top-k): **uniform crossover** (each gene
   from either parent with probability ½), then **per-gene mutation** (each gene, with
   probability ``mutation_rate``, default ``1 / genes``, becomes another choice drawn
   uniformly). Offspring already evaluated in this search are bred again, so every
   evaluation is a new genome.
4. A **budget** (``{"binary_macs": 2.46e6}``, any costs of :data:`~onebit.search.costs.COSTS`)
   constrains every genome. An over-budget genome is *repaired* (``over_budget="repair"``:
   a gene drawn at random among those above the smallest choice is lowered one choice,
   until the genome fits) or *rejected* (``"reject"``: it is discarded and another is
   bred); the log says which, genome by genome.

Ranking: higher fitness first; ties go to the lower cost (the first budget cost), then
to the smaller genome. Every random draw comes from a generator seeded by the search
seed, and every training from the genome's own derived seed, so a seed fixes the whole
search, whatever the backend or worker count.

:func:`random_search` draws distinct genomes uniformly among those within the budget
(rejection sampling) and scores them the same way: with the same number of evaluations
it is the baseline any search method has to beat.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from onebit.errors import ConfigError, unknown_choice
from onebit.search.costs import CostModel, check_costs, format_cost, over_budget
from onebit.search.evaluation import ProxyFitness, ProxyTraining, derive_seed
from onebit.search.evaluator import Evaluator
from onebit.search.space import Genome, SearchSpace

__all__ = ["OVER_BUDGET", "Candidate", "EvolutionSettings", "SearchResult", "check_reachable", "evolve",
           "random_search", "score_genomes"]

log = logging.getLogger(__name__)

OVER_BUDGET = ("repair", "reject")
_TRIES = 100  # breeding attempts per wanted offspring before the search says the space is exhausted


@dataclass
class Candidate:
    """One scored genome of a search, as written to ``search.json``."""

    id: int
    genome: Genome
    widths: list[int]
    costs: dict[str, float]
    fitness: float  # proxy accuracy: validation accuracy after the proxy training
    generation: int
    origin: str  # "initial", "offspring", "random" or "reference"
    seed: int
    seconds: float  # wall time of its training (as first trained, when it came from a saved state)
    repaired_from: Genome | None = None
    feasible: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["genome"] = list(self.genome)
        d["repaired_from"] = None if self.repaired_from is None else list(self.repaired_from)
        d["proxy_accuracy"] = d.pop("fitness")
        d["wall_seconds"] = d.pop("seconds")
        return d


@dataclass
class SearchResult:
    """What a strategy found: every candidate, per-generation summaries, the best candidate."""

    strategy: str
    candidates: list[Candidate] = field(default_factory=list)
    generations: list[dict[str, Any]] = field(default_factory=list)
    best: Candidate | None = None
    budget: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def evaluations(self) -> int:
        """Distinct genomes scored by this strategy."""
        return len(self.candidates)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "settings": self.settings, "budget": self.budget,
                "evaluations": self.evaluations, "best": None if self.best is None else self.best.id,
                "generations": self.generations, "candidates": [c.to_dict() for c in self.candidates]}


@dataclass(frozen=True)
class EvolutionSettings:
    """The evolutionary algorithm's parameters (defaults: see :func:`EvolutionSettings.make`)."""

    population: int
    generations: int
    parents: int
    elite: int
    mutation_rate: float
    over_budget: str = "repair"
    crossover: str = "uniform"

    @classmethod
    def make(cls, genes: int, *, population: int = 8, generations: int = 5, parents: int | None = None,
             elite: int | None = None, mutation_rate: float | None = None,
             over_budget: str = "repair") -> EvolutionSettings:
        """Checked settings; ``parents`` defaults to half the population (at least 2), ``elite`` to a
        quarter (at least 1), ``mutation_rate`` to ``1 / genes``."""
        for name, value, low in (("population", population, 2), ("generations", generations, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer ≥ {low}, got {value!r}")
        parents = max(2, population // 2) if parents is None else parents
        elite = max(1, population // 4) if elite is None else elite
        mutation_rate = 1.0 / genes if mutation_rate is None else mutation_rate
        if isinstance(parents, bool) or not isinstance(parents, int) or not 1 <= parents <= population:
            raise ConfigError(f"parents (top-k) must be an integer from 1 to the population {population}, "
                              f"got {parents!r}")
        if isinstance(elite, bool) or not isinstance(elite, int) or not 0 <= elite < population:
            raise ConfigError(f"elite must be an integer from 0 to population − 1 = {population - 1}, got {elite!r}")
        if not (isinstance(mutation_rate, int | float) and 0 <= mutation_rate <= 1):
            raise ConfigError(f"mutation_rate must lie in [0, 1], got {mutation_rate!r}")
        if over_budget not in OVER_BUDGET:
            raise unknown_choice("over-budget policy", over_budget, OVER_BUDGET)
        return cls(population, generations, parents, elite, float(mutation_rate), over_budget)

    @property
    def evaluations(self) -> int:
        """Evaluations of a full run: the first population, then ``population − elite`` per generation."""
        return self.population + (self.generations - 1) * (self.population - self.elite)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- shared


def _rank_key(primary: str | None) -> Callable[[Candidate], tuple]:
    return lambda c: (-c.fitness, c.costs.get(primary, 0.0) if primary else 0.0, c.genome)


def _primary(budget: dict[str, float], evaluator: Evaluator) -> str | None:
    return next(iter(budget), evaluator.record[0] if evaluator.record else None)


def _check_budget(budget: dict[str, float] | None) -> dict[str, float]:
    if budget is None:
        return {}
    if not isinstance(budget, dict):
        raise ConfigError(f"budget must map cost names to maxima, e.g. {{'binary_macs': 2.5e6}}, got {budget!r}")
    check_costs(list(budget)) if budget else None
    for name, value in budget.items():
        if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
            raise ConfigError(f"the {name} budget must be a positive number, got {value!r}")
    return {k: float(v) for k, v in budget.items()}


def check_reachable(space: SearchSpace, cost_model: CostModel, budget: dict[str, float]) -> None:
    """Raise a ConfigError if ``budget`` is below the cheapest genome (every gene at the smallest
    choice): no genome could fit."""
    if not budget:
        return
    cheapest = space.cheapest()
    costs = cost_model.measure(cheapest, list(budget))
    over = over_budget(costs, budget)
    if over:
        name = over[0]
        raise ConfigError(
            f"the {name} budget {format_cost(name, budget[name])} is below the cheapest genome's "
            f"{format_cost(name, costs[name])} ({space.format(cheapest)}, widths {space.widths(cheapest)}): "
            f"no genome fits; raise the budget")


def _describe(space: SearchSpace, c: Candidate, budget: dict[str, float]) -> str:
    widths = "-".join(map(str, c.widths))
    costs = ", ".join(format_cost(n, v) for n, v in c.costs.items())
    flag = "" if c.feasible else " (over the budget)"
    return f"{space.format(c.genome)} widths {widths}: {costs}{flag}"


@contextmanager
def _evaluator(
    space: SearchSpace, evaluator: Evaluator | None, fitness: Callable[[Sequence[float], int], float] | None,
    data: Any, training: ProxyTraining | None, seed: int, record: Sequence[str], workers: int, backend: str,
) -> Iterator[Evaluator]:
    if evaluator is not None:
        if evaluator.space != space:
            raise ConfigError("the evaluator belongs to another search space")
        yield evaluator
        return
    if fitness is None:
        if data is None:
            raise ConfigError("give the data set to train candidates on (data=...), or a fitness function")
        fitness = ProxyFitness(space, data, training or ProxyTraining(), split_seed=seed)
    with Evaluator(space, fitness, seed=seed, record=record, workers=workers, backend=backend) as ev:
        yield ev


def score_genomes(
    evaluator: Evaluator, genomes: Sequence[tuple[Genome, str, Genome | None]], *, generation: int,
    first_id: int, budget: dict[str, float], label: str,
) -> list[Candidate]:
    """Score ``(genome, origin, repaired_from)`` triples as candidates ``first_id, first_id + 1, ...``,
    logging one progress line per candidate as its result arrives."""
    space = evaluator.space
    out: list[Candidate] = []
    for i, (genome, origin, repaired) in enumerate(genomes):
        costs = evaluator.costs(genome, list(budget))
        out.append(Candidate(first_id + i, genome, space.widths(genome), costs, math.nan, generation, origin,
                             evaluator.seed_of(genome), math.nan, repaired, not over_budget(costs, budget)))
    done = [0]

    def report(i: int, fitness: float, seconds: float, cached: bool) -> None:
        c = out[i]
        c.fitness, c.seconds = fitness, seconds
        done[0] += 1
        how = "from the saved state" if cached else f"{seconds:.1f}s"
        log.info("%s #%d (%d/%d): %s -> validation accuracy %.2f%% (%s)", label, c.id, done[0], len(out),
                 _describe(space, c, budget), 100 * fitness, how)

    evaluator.evaluate([c.genome for c in out], report)
    return out


# --------------------------------------------------------------------------- evolution


class _Breeder:
    """Draws, repairs or rejects genomes for one search; counts what it did."""

    def __init__(self, evaluator: Evaluator, budget: dict[str, float], policy: str, rng: random.Random) -> None:
        self.ev, self.budget, self.policy, self.rng = evaluator, budget, policy, rng
        self.space = evaluator.space
        self.repaired = self.rejected = 0

    def over(self, genome: Genome) -> list[str]:
        return over_budget(self.ev.costs(genome, list(self.budget)), self.budget) if self.budget else []

    def admit(self, genome: Genome, what: str) -> tuple[Genome | None, Genome | None]:
        """``(genome to score, the genome it was repaired from)``; ``(None, None)`` when rejected."""
        over = self.over(genome)
        if not over:
            return genome, None
        costs = self.ev.costs(genome, list(self.budget))
        why = ", ".join(f"{n} {format_cost(n, costs[n])} > {format_cost(n, self.budget[n])}" for n in over)
        if self.policy == "reject":
            self.rejected += 1
            log.info("%s %s over the budget (%s): rejected", what, self.space.format(genome), why)
            return None, None
        original, values = genome, list(genome)
        choices = self.space.choices
        while over:
            lowerable = [i for i, r in enumerate(values) if r > choices[0]]
            if not lowerable:
                return None, None  # only possible with a noisy cost (latency) right at the cheapest genome
            i = self.rng.choice(lowerable)
            values[i] = choices[choices.index(values[i]) - 1]
            over = self.over(tuple(values))
        self.repaired += 1
        log.info("%s %s over the budget (%s): repaired to %s", what, self.space.format(original), why,
                 self.space.format(values))
        return tuple(values), original

    def mutate(self, genome: Genome, rate: float) -> Genome:
        out = list(genome)
        for i, r in enumerate(out):
            if self.rng.random() < rate:
                out[i] = self.rng.choice([c for c in self.space.choices if c != r])
        return tuple(out)


def evolve(
    space: SearchSpace,
    fitness: Callable[[Sequence[float], int], float] | None = None,
    *,
    data: Any = None,
    training: ProxyTraining | None = None,
    budget: dict[str, float] | None = None,
    record: Sequence[str] = ("binary_macs", "bytes"),
    population: int = 8,
    generations: int = 5,
    parents: int | None = None,
    elite: int | None = None,
    mutation_rate: float | None = None,
    over_budget: str = "repair",
    seed: int = 0,
    workers: int = 1,
    backend: str = "process",
    evaluator: Evaluator | None = None,
    on_generation: Callable[[SearchResult], None] | None = None,
) -> SearchResult:
    """Evolve width genomes of ``space``; returns every candidate, per-generation summaries and the best.

    Fitness: ``fitness(genome, seed)`` if given, else the validation accuracy of the genome's
    model after ``training`` (proxy epochs) on ``data`` (a :class:`~onebit.data.Dataset`).
    ``evaluator`` (shared with other strategies, resumable) replaces ``fitness``/``data``/
    ``workers``/``backend``. ``on_generation(result so far)`` is called after every generation.
    See the module docstring for the algorithm.
    """
    settings = EvolutionSettings.make(len(space.genes), population=population, generations=generations,
                                      parents=parents, elite=elite, mutation_rate=mutation_rate,
                                      over_budget=over_budget)
    budget = _check_budget(budget)
    with _evaluator(space, evaluator, fitness, data, training, seed, record, workers, backend) as ev:
        return _evolve(ev, settings, budget, on_generation)


def _evolve(ev: Evaluator, s: EvolutionSettings, budget: dict[str, float],
            on_generation: Callable[[SearchResult], None] | None) -> SearchResult:
    space = ev.space
    check_reachable(space, ev.cost_model, budget)
    rng = random.Random(derive_seed(ev.seed, "evolution"))
    breeder = _Breeder(ev, budget, s.over_budget, rng)
    rank = _rank_key(_primary(budget, ev))
    result = SearchResult("evolution", budget=budget, settings=s.to_dict())
    seen: set[Genome] = set()
    log.info("evolution: population %d, %d generations, top-%d parents, %d elite, mutation rate %.3g, "
             "over-budget genomes %sed; space of %d genomes", s.population, s.generations, s.parents, s.elite,
             s.mutation_rate, s.over_budget, space.size)

    def fill(count: int, draw: Callable[[], Genome], origin: str, generation: int) -> list[tuple]:
        picked: list[tuple] = []
        tries = 0
        while len(picked) < count and tries < _TRIES * count:
            tries += 1
            genome, repaired = breeder.admit(draw(), f"generation {generation} {origin}")
            if genome is None or genome in seen:
                continue
            seen.add(genome)
            picked.append((genome, origin, repaired))
        if len(picked) < count:
            log.warning("generation %d: only %d of %d new genomes found within the budget after %d draws "
                        "(the reachable space is nearly exhausted)", generation, len(picked), count, tries)
        return picked

    current: list[Candidate] = []
    for generation in range(s.generations):
        breeder.repaired = breeder.rejected = 0
        if generation == 0:
            wanted = fill(s.population, lambda: space.random(rng), "initial", 0)
            elites: list[Candidate] = []
        else:
            ranked = sorted(current, key=rank)
            elites, pool = ranked[:s.elite], ranked[:s.parents]

            def offspring() -> Genome:
                a, b = rng.sample(pool, 2) if len(pool) >= 2 else (pool[0], pool[0])
                child = tuple(x if rng.random() < 0.5 else y for x, y in zip(a.genome, b.genome))
                return breeder.mutate(child, s.mutation_rate)

            wanted = fill(s.population - len(elites), offspring, "offspring", generation)
        new = score_genomes(ev, wanted, generation=generation, first_id=len(result.candidates), budget=budget,
                            label=f"evolution generation {generation}")
        result.candidates += new
        current = elites + new
        best = min(current, key=rank)
        fitnesses = [c.fitness for c in current]
        result.generations.append({
            "generation": generation, "population": [c.id for c in current], "new": len(new),
            "repaired": breeder.repaired, "rejected": breeder.rejected, "best": best.id,
            "best_fitness": best.fitness, "mean_fitness": statistics.fmean(fitnesses),
        })
        result.best = min(result.candidates, key=rank)
        log.info("evolution generation %d/%d: best %s %.2f%%, population mean %.2f%%, %d new (%d repaired, "
                 "%d rejected over the budget), %d evaluations so far", generation + 1, s.generations,
                 space.format(best.genome), 100 * best.fitness, 100 * statistics.fmean(fitnesses), len(new),
                 breeder.repaired, breeder.rejected, result.evaluations)
        ev.save()
        if on_generation is not None:
            on_generation(result)
        if not new and generation > 0:
            log.warning("evolution stops after generation %d: no new genome to evaluate", generation)
            break
    return result


# --------------------------------------------------------------------------- random search


def random_search(
    space: SearchSpace,
    fitness: Callable[[Sequence[float], int], float] | None = None,
    *,
    evaluations: int,
    data: Any = None,
    training: ProxyTraining | None = None,
    budget: dict[str, float] | None = None,
    record: Sequence[str] = ("binary_macs", "bytes"),
    seed: int = 0,
    workers: int = 1,
    backend: str = "process",
    evaluator: Evaluator | None = None,
) -> SearchResult:
    """Score ``evaluations`` distinct genomes drawn uniformly among those within ``budget``.

    The same fitness and evaluator arguments as :func:`evolve`; give it the evolution's
    evaluation count for a fair comparison. Over-budget draws are rejected (rejection
    sampling keeps the draw uniform over the feasible genomes).
    """
    if isinstance(evaluations, bool) or not isinstance(evaluations, int) or evaluations < 1:
        raise ConfigError(f"evaluations must be a positive integer, got {evaluations!r}")
    budget = _check_budget(budget)
    with _evaluator(space, evaluator, fitness, data, training, seed, record, workers, backend) as ev:
        check_reachable(space, ev.cost_model, budget)
        rng = random.Random(derive_seed(ev.seed, "random_search"))
        breeder = _Breeder(ev, budget, "reject", rng)
        drawn: list[tuple] = []
        seen: set[Genome] = set()
        tries = 0
        while len(drawn) < evaluations and tries < _TRIES * evaluations:
            tries += 1
            genome = space.random(rng)
            if genome in seen:
                continue
            seen.add(genome)
            if not breeder.over(genome):
                drawn.append((genome, "random", None))
        rejected = len(seen) - len(drawn)
        if len(drawn) < evaluations:
            log.warning("random search: only %d distinct genomes within the budget (of %d asked)", len(drawn),
                        evaluations)
        log.info("random search: %d genomes drawn uniformly within the budget (%d over-budget draws rejected)",
                 len(drawn), rejected)
        result = SearchResult("random", budget=budget, settings={"evaluations": evaluations})
        result.candidates = score_genomes(ev, drawn, generation=0, first_id=0, budget=budget, label="random search")
        result.best = min(result.candidates, key=_rank_key(_primary(budget, ev)))
        result.generations.append({"generation": 0, "population": [c.id for c in result.candidates],
                                   "new": len(drawn), "repaired": 0, "rejected": rejected, "best": result.best.id,
                                   "best_fitness": result.best.fitness,
                                   "mean_fitness": statistics.fmean(c.fitness for c in result.candidates)})
        ev.save()
        log.info("random search: best %s %.2f%% of %d evaluations", space.format(result.best.genome),
                 100 * result.best.fitness, result.evaluations)
        return result
