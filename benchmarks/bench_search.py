"""Width search throughput: proxy evaluations per minute with 1 and 2 workers (process pool).

The workload is the search's own: :class:`onebit.search.ProxyFitness` (``binary_cnn1d``
on MNIST-1D, ``--proxy-epochs`` epochs per candidate, one torch thread each) over the same
fixed set of genomes, run by :func:`onebit.search.make_backend` in this process
(``workers=1``) and by a pool of 2 spawned workers. Each pool is warmed up first (every
worker imports torch and trains one candidate), so the table shows steady-state
throughput, not start-up. Rounds alternate between the worker counts; the table gives
the median over rounds, the ratio of the medians, and the machine's load average
meanwhile (the host is shared: a load above the core count means other processes took
part of the CPUs and the ratio says more about them than about the pool).

Usage: ``python benchmarks/bench_search.py [--candidates 8] [--proxy-epochs 2] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import datetime, timezone

from onebit.bench import cpu_name
from onebit.data import load_dataset
from onebit.search import ProxyFitness, ProxyTraining, candidate_seed, make_backend, search_space


def _throughput(fitness: ProxyFitness, genomes: list, workers: int) -> tuple[float, tuple[float, float, float]]:
    """(evaluations per minute, load averages) of one round after a warm-up of every worker."""
    with make_backend(fitness, workers=workers) as backend:
        warm = [((0.5, 0.5, 0.5), i) for i in range(workers)]
        list(backend.run(warm))
        start = time.perf_counter()
        list(backend.run([(g, candidate_seed(0, g)) for g in genomes]))
        seconds = time.perf_counter() - start
    return 60 * len(genomes) / seconds, os.getloadavg()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=8, help="genomes per round (default: 8)")
    parser.add_argument("--proxy-epochs", type=int, default=2, help="training epochs per candidate (default: 2)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per worker count (default: 2)")
    args = parser.parse_args()
    data = load_dataset("mnist1d")
    space = search_space("binary_cnn1d")
    rng = random.Random(0)
    genomes = [space.random(rng) for _ in range(args.candidates)]
    fitness = ProxyFitness(space, data, ProxyTraining.for_data("binary_cnn1d", "mnist1d", args.proxy_epochs))
    rates: dict[int, list[float]] = {1: [], 2: []}
    loads: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for workers in (1, 2):
            rate, load = _throughput(fitness, genomes, workers)
            rates[workers].append(rate)
            loads[workers].append(load[0])
    print(f"Width-search proxy evaluations, binary_cnn1d on MNIST-1D, {args.proxy_epochs} epochs each, "
          f"{args.candidates} genomes per round, {args.rounds} rounds; {cpu_name()}, {os.cpu_count()} cores; "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| workers | evaluations / minute, median (min–max) | vs 1 worker | 1-min load average |")
    print("|--------:|---------------------------------------:|------------:|-------------------:|")
    base = statistics.median(rates[1])
    for workers in (1, 2):
        r = rates[workers]
        print(f"| {workers} | {statistics.median(r):.1f} ({min(r):.1f}–{max(r):.1f}) | "
              f"{statistics.median(r) / base:.2f}× | {statistics.median(loads[workers]):.1f} |")


if __name__ == "__main__":
    main()
