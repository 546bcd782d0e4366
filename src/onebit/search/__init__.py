"""Width search for binary networks (Shen, Han, Xu and Wang 2019, arXiv:1909.07378).

Keep a network's topology, choose how many channels each binary layer gets: a genome is
one expansion ratio per layer (or group of layers), evolved under a cost budget, with
fitness the validation accuracy of a briefly trained candidate. The costs are onebit's
own: exact binary MACs and packed bytes, and the latency of the exported model in
onebit's runtime on this machine.

- :mod:`onebit.search.space`: genes, choices, rounding to 64-channel words, the zoo's spaces.
- :mod:`onebit.search.costs`: binary MACs, packed bytes, engine latency; budgets.
- :mod:`onebit.search.evaluation`: proxy fitness, derived seeds, the full retraining.
- :mod:`onebit.search.backends`: in process, a process pool, or Ray.
- :mod:`onebit.search.evaluator`: runs and remembers evaluations; the resumable state.
- :mod:`onebit.search.evolution`: the evolutionary algorithm and random search.
- :mod:`onebit.search.pareto`: Pareto fronts and ``pareto.png``.
- :mod:`onebit.search.pipeline`: a whole search in a run folder (``onebit search``).

Nothing in onebit's core imports this package.
"""

from onebit.search.backends import BACKENDS, make_backend
from onebit.search.costs import COSTS, CostModel, over_budget
from onebit.search.evaluation import ProxyFitness, ProxyTraining, candidate_seed, train_candidate
from onebit.search.evaluator import Evaluator
from onebit.search.evolution import Candidate, EvolutionSettings, SearchResult, evolve, random_search
from onebit.search.pareto import pareto_front, plot_pareto
from onebit.search.pipeline import SearchConfig, resume_search, run_search, strip_times
from onebit.search.space import DEFAULT_CHOICES, Gene, SearchSpace, round_width, search_space, searchable_models

__all__ = [
    "BACKENDS", "COSTS", "DEFAULT_CHOICES", "Candidate", "CostModel", "Evaluator", "EvolutionSettings", "Gene",
    "ProxyFitness", "ProxyTraining", "SearchConfig", "SearchResult", "SearchSpace", "candidate_seed", "evolve",
    "make_backend", "over_budget", "pareto_front", "plot_pareto", "random_search", "resume_search",
    "round_width", "run_search", "search_space", "searchable_models", "strip_times", "train_candidate",
]
