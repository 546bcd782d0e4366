"""Search per-layer widths of a binary net under a cost budget (Shen et al. 2019).

    python examples/width_search.py [--quick]

Each gene is a per-layer expansion ratio of the base widths; an evolutionary search scores
each candidate by its validation accuracy after a short training, keeping only those whose
binary MACs fit the budget (here: the MACs of the uniform ×2 network). Random search with the
same number of evaluations is the baseline. ``onebit search`` does the same from the command
line, retrains and exports the winner; see docs/shen2019_width_search.md.
"""

from __future__ import annotations

import argparse

from onebit.data import load_dataset
from onebit.search import CostModel, ProxyTraining, evolve, random_search, search_space

if __name__ == "__main__":  # the search may spawn worker processes, which import this file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast run")
    args = parser.parse_args()

    data = load_dataset("mnist1d")
    if args.quick:
        data = data.few_shot(60, seed=0)  # 600 training rows
    space = search_space("binary_cnn1d", num_classes=data.num_classes, in_shape=data.in_shape)
    budget = CostModel(space).measure(space.uniform(2.0), ["binary_macs"])  # what uniform x2 costs
    training = ProxyTraining(epochs=1 if args.quick else 3)
    size = dict(population=4, generations=2) if args.quick else dict(population=8, generations=5)

    evolution = evolve(space, data=data, training=training, budget=budget, **size, seed=0)
    baseline = random_search(space, data=data, training=training, budget=budget, evaluations=evolution.evaluations,
                             seed=0)
    for result in (evolution, baseline):
        best = result.best
        print(f"{result.strategy}: {result.evaluations} evaluations, best genome {best.genome} (widths "
              f"{best.widths}), {best.costs['binary_macs']:,.0f} binary MACs, proxy accuracy {best.fitness:.2%}")
    print(f"budget: {budget['binary_macs']:,.0f} binary MACs (uniform x2)")
