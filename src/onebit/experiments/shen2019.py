"""Shen, Han, Xu and Wang 2019, "Searching for Accurate Binary Neural Architectures" (arXiv:1909.07378).

Reproduced on MNIST-1D with ``binary_cnn1d`` (3 binary conv layers, genes = their widths
as ratios {0.5, 1, 2, 3, 4} of 64 channels), with onebit's own search
(:mod:`onebit.search`), per seed:

1. **width search under a binary-MAC budget** equal to the uniform ×2 net's
   (:func:`onebit.search.run_search`, ``--cost binary_macs --budget-like uniform:2``),
   with random search of the same evaluation count beside it;
2. **the same search under an engine-latency budget** (``--cost latency``: the exported
   model timed in onebit's runtime on this machine), equal to the uniform ×2 net's latency;
3. **full retraining** (15 epochs: see ``FULL``) and one test of: both searches' winners,
   random search's best, the uniform ×1, ×2 and ×4 binary nets and the float ×1 net.

Claims tested (``results.json``): the searched net at a cost no higher than uniform ×2
reaches at least uniform ×2's mean test accuracy; it beats random search of the same
evaluation count; its genome is not uniform; uniform ×4 closes at least half of the
float-to-binary gap at ×1 (the paper's premise); the latency-budget search finds a net
faster on the engine than the MAC-budget search at equal accuracy.

``--quick``: one seed, 1,000 training sequences, population 3, 2 generations, 1 proxy
epoch and 1 retraining epoch: a smoke run of every step (under a minute), not a result.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table

log = logging.getLogger(__name__)

MODEL, DATA = "binary_cnn1d", "mnist1d"
PAPER = ("Shen, Han, Xu and Wang 2019, Searching for Accurate Binary Neural Architectures, ICCV Workshops "
         "(arXiv:1909.07378)")

# Sized for 2 shared cores (the 2026-12-06 run shared them with five other experiments): 18 evaluations per
# search of 2 proxy epochs each, and 15 retraining epochs (the recipe's 40 would triple the run).
FULL = {"population": 6, "generations": 4, "elite": 2, "proxy_epochs": 2, "final_epochs": 15, "workers": 2,
        "train_rows": None, "latency_batch": 1, "latency_threads": 1, "latency_repeats": 300}
QUICK = {"population": 3, "generations": 2, "elite": 1, "proxy_epochs": 1, "final_epochs": 1, "workers": 1,
         "train_rows": 1000, "latency_batch": 1, "latency_threads": 1, "latency_repeats": 30}


def _data(seed: int, rows: int | None) -> Any:
    from onebit.data import load_dataset

    data = load_dataset(DATA, seed=seed)
    if rows is not None:  # --quick: the first rows of the (seed-shuffled) training part
        data = dataclasses.replace(data, x_train=data.x_train[:rows], y_train=data.y_train[:rows])
    return data


class _FullTraining:
    """Picklable job of the retraining pool: ``(space dict, genome, data seed)`` → TrainedCandidate dict."""

    def __init__(self, epochs: int, rows: int | None) -> None:
        self.epochs, self.rows = epochs, rows

    def __call__(self, payload: tuple[dict[str, Any], list[float], int], seed: int) -> dict[str, Any]:
        from onebit.search import ProxyTraining, SearchSpace, train_candidate

        space_dict, genome, data_seed = payload
        space = SearchSpace.from_dict(space_dict)
        training = ProxyTraining.for_data(MODEL, DATA, self.epochs)
        return train_candidate(space, genome, _data(data_seed, self.rows), training, seed=seed, export=False).to_dict()


def _search(seed: int, cost: str, out: Path, s: dict[str, Any], random_baseline: bool) -> dict[str, Any]:
    from onebit.search import SearchConfig, run_search

    config = SearchConfig(MODEL, DATA, costs=(cost,), budget_like=2.0, population=s["population"],
                          generations=s["generations"], elite=s["elite"], proxy_epochs=s["proxy_epochs"],
                          final_epochs=s["final_epochs"], seed=seed, random_baseline=random_baseline,
                          record=("binary_macs", "bytes", "latency"), latency_batch=s["latency_batch"],
                          latency_threads=s["latency_threads"], latency_repeats=s["latency_repeats"],
                          retrain=False, references=(1.0, 2.0, 4.0) if random_baseline else ())
    return run_search(config, out, workers=s["workers"], data=_data(seed, s["train_rows"]))


def _front(cands: list[dict[str, Any]], cost: str) -> list[dict[str, Any]]:
    from onebit.search import pareto_front

    return [cands[i] for i in pareto_front([(c["costs"][cost], c["proxy_accuracy"]) for c in cands])]


@register_experiment("shen2019_width_search", paper=PAPER,
                     title="Width search for binary networks: evolution under a MAC or an engine-latency budget")
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """Evolutionary width search of binary_cnn1d on MNIST-1D against uniform widths and random search."""
    from onebit.search import CostModel, make_backend, search_space

    s = QUICK if quick else FULL
    space = search_space(MODEL)  # MNIST-1D is binary_cnn1d's native input: (1, 40), 10 classes
    float_space = search_space(MODEL, model_args={"input_quantizer": None, "weight_quantizer": None})
    searches: dict[int, dict[str, dict[str, Any]]] = {}
    for seed in range(seeds):
        log.info("seed %d: width search under a binary-MAC budget", seed)
        searches[seed] = {"macs": _search(seed, "binary_macs", out_dir / f"seed{seed}" / "macs", s, True)}
        log.info("seed %d: width search under an engine-latency budget", seed)
        searches[seed]["latency"] = _search(seed, "latency", out_dir / f"seed{seed}" / "latency", s, False)

    # Full retraining of every net compared, all seeds in one pool (seed s trains with seed s).
    nets = {"float ×1": (float_space, space.uniform(1)), "uniform ×1": (space, space.uniform(1)),
            "uniform ×2": (space, space.uniform(2)), "uniform ×4": (space, space.uniform(4))}
    jobs: list[tuple[int, str, tuple[dict[str, Any], list[float], int]]] = []
    for seed in range(seeds):
        per_seed = {**nets,
                    "searched (MAC budget)": (space, _genome(searches[seed]["macs"], "evolution")),
                    "random search (MAC budget)": (space, _genome(searches[seed]["macs"], "random_search")),
                    "searched (latency budget)": (space, _genome(searches[seed]["latency"], "evolution"))}
        jobs += [(seed, name, (sp.to_dict(), list(g), seed)) for name, (sp, g) in per_seed.items()]
    log.info("retraining %d nets for %d epochs each", len(jobs), s["final_epochs"])
    trained: dict[tuple[int, str], dict[str, Any]] = {}
    with make_backend(_FullTraining(s["final_epochs"], s["train_rows"]), workers=s["workers"]) as backend:
        for i, result, seconds in backend.run([(payload, seed) for seed, _, payload in jobs]):
            seed, name, _ = jobs[i]
            trained[seed, name] = {**result, "seconds": seconds}
            log.info("seed %d, %s %s: test accuracy %.2f%% (%.0fs)", seed, name, result["widths"],
                     100 * result["test_accuracy"], seconds)

    # Engine latency and binary MACs of every retrained net, measured together (one cost model).
    costs = CostModel(space, latency_batch=s["latency_batch"], latency_threads=s["latency_threads"],
                      latency_repeats=s["latency_repeats"] * 3)
    float_costs = CostModel(float_space, latency_batch=s["latency_batch"], latency_threads=s["latency_threads"],
                            latency_repeats=s["latency_repeats"] * 3)
    measured: dict[tuple[int, str], dict[str, float]] = {}
    for (seed, name), r in trained.items():
        model = float_costs if name.startswith("float") else costs
        measured[seed, name] = model.measure(r["genome"], ["binary_macs", "latency"])
    return _report(out_dir, s, seeds, space, searches, trained, measured, quick)


def _genome(search: dict[str, Any], strategy: str) -> tuple[float, ...]:
    part = search[strategy]
    return tuple(part["candidates"][part["best"]]["genome"])


def _acc(trained: dict, seeds: int, name: str) -> list[float]:
    return [trained[seed, name]["test_accuracy"] for seed in range(seeds)]


def _fmt(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    m, sd = mean_std(values)
    return f"{scale * m:.{digits}f} ± {scale * sd:.{digits}f}"


def _report(out: Path, s: dict[str, Any], seeds: int, space: Any, searches: dict, trained: dict, measured: dict,
            quick: bool) -> dict[str, Any]:
    names = ["float ×1", "uniform ×1", "uniform ×2", "uniform ×4", "random search (MAC budget)",
             "searched (MAC budget)", "searched (latency budget)"]
    acc = {n: _acc(trained, seeds, n) for n in names}
    mean = {n: mean_std(acc[n])[0] for n in names}
    decide = (lambda v: None) if quick else (lambda v: bool(v))
    claims: list[Claim] = []

    mac_budget = [searches[seed]["macs"]["budget"]["binary_macs"] for seed in range(seeds)]
    within = all(measured[seed, "searched (MAC budget)"]["binary_macs"] <= mac_budget[seed] for seed in range(seeds))
    claims.append(Claim(
        "searched net (binary MACs ≤ uniform ×2) reaches at least uniform ×2's mean test accuracy",
        _fmt(acc["searched (MAC budget)"]), None, "% test accuracy",
        decide(within and mean["searched (MAC budget)"] >= mean["uniform ×2"]),
        f"uniform ×2: {_fmt(acc['uniform ×2'])} %; searched nets within the MAC budget: {within}; "
        f"mean ± sample std over {seeds} seed(s)"))
    claims.append(Claim(
        "searched net beats random search of the same evaluation count",
        _fmt(acc["searched (MAC budget)"]), None, "% test accuracy",
        decide(mean["searched (MAC budget)"] > mean["random search (MAC budget)"]),
        f"random search's best: {_fmt(acc['random search (MAC budget)'])} %; evaluations per search: "
        f"{[searches[seed]['macs']['evolution']['evaluations'] for seed in range(seeds)]}"))
    winners = [_genome(searches[seed]["macs"], "evolution") for seed in range(seeds)]
    claims.append(Claim(
        "the found genome is not uniform", ", ".join(space.format(g) for g in winners), None, "",
        decide(all(len(set(g)) > 1 for g in winners)), "the MAC-budget winners, one per seed"))
    gap = mean["float ×1"] - mean["uniform ×1"]
    closed = (mean["uniform ×4"] - mean["uniform ×1"]) / gap if gap > 0 else float("nan")
    claims.append(Claim(
        "premise: uniform ×4 width closes at least half of the float-to-binary gap at ×1",
        round(closed, 3), None, "of the gap",
        decide(gap > 0 and closed >= 0.5),
        f"float ×1 {_fmt(acc['float ×1'])} %, binary ×1 {_fmt(acc['uniform ×1'])} %, binary ×4 "
        f"{_fmt(acc['uniform ×4'])} %; closed = (×4 − ×1) / (float − ×1) on the means"))
    lat_mac = [measured[seed, "searched (MAC budget)"]["latency"] for seed in range(seeds)]
    lat_lat = [measured[seed, "searched (latency budget)"]["latency"] for seed in range(seeds)]
    spread = max(mean_std(acc["searched (MAC budget)"])[1], mean_std(acc["searched (latency budget)"])[1])
    equal = mean["searched (latency budget)"] >= mean["searched (MAC budget)"] - spread
    claims.append(Claim(
        "a latency-budget search finds, at equal accuracy, a net faster on the engine than a MAC-budget search",
        _fmt(lat_lat, scale=1e3, digits=1), None, "µs per call (latency-budget winner)",
        decide(mean_std(lat_lat)[0] < mean_std(lat_mac)[0] and equal),
        f"MAC-budget winner {_fmt(lat_mac, scale=1e3, digits=1)} µs; test accuracy {_fmt(acc['searched (latency budget)'])}"
        f" % vs {_fmt(acc['searched (MAC budget)'])} %; batch {s['latency_batch']}, {s['latency_threads']} thread"))

    rows = []
    for n in names:
        macs = [measured[seed, n]["binary_macs"] for seed in range(seeds)]
        lat = [measured[seed, n]["latency"] for seed in range(seeds)]
        genomes = sorted({space.format(trained[seed, n]["genome"]) for seed in range(seeds)})
        rows.append([n, "; ".join(genomes), _fmt(acc[n]), " ".join(f"{100 * a:.1f}" for a in acc[n]),
                     f"{mean_std(macs)[0] / 1e6:.3f}", f"{1e3 * mean_std(lat)[0]:.1f}"])
    tables = {"Test accuracy after full retraining": table(
        ["net", "genome(s)", "test accuracy % (mean ± std)", "per seed %", "binary MMACs", "engine µs/call"], rows,
        f"binary_cnn1d on MNIST-1D, {s['final_epochs']} epochs, seeds 0..{seeds - 1}; latency: batch "
        f"{s['latency_batch']}, {s['latency_threads']} thread, median of {3 * s['latency_repeats']} calls")}
    search_rows = []
    for seed in range(seeds):
        for key, strategy in (("macs", "evolution"), ("macs", "random_search"), ("latency", "evolution")):
            part = searches[seed][key][strategy]
            best = part["candidates"][part["best"]]
            search_rows.append([seed, f"{strategy.replace('_', ' ')} ({'MAC' if key == 'macs' else 'latency'} budget)",
                                part["evaluations"], space.format(best["genome"]), f"{100 * best['proxy_accuracy']:.2f}",
                                f"{best['costs']['binary_macs'] / 1e6:.3f}", f"{1e3 * best['costs']['latency']:.1f}"])
    tables["Searches (proxy accuracy: validation, after the proxy epochs)"] = table(
        ["seed", "search", "evaluations", "best genome", "proxy accuracy %", "binary MMACs", "engine µs/call"],
        search_rows)
    front_rows = []
    for seed in range(seeds):
        for key in ("macs", "latency"):
            cands = searches[seed][key]["evolution"]["candidates"]
            if key == "macs":
                cands = cands + searches[seed][key]["random_search"]["candidates"]
            for c in _front(cands, "latency"):
                front_rows.append([seed, "MAC budget" if key == "macs" else "latency budget",
                                   space.format(c["genome"]), f"{1e3 * c['costs']['latency']:.1f}",
                                   f"{c['costs']['binary_macs'] / 1e6:.3f}", f"{100 * c['proxy_accuracy']:.2f}"])
    tables["Fronts in the latency-accuracy plane"] = table(
        ["seed", "search", "genome", "engine µs/call", "binary MMACs", "proxy accuracy %"], front_rows,
        "Pareto-optimal candidates (proxy accuracy against engine latency) of each search; the MAC-budget "
        "search's front includes its random-search candidates")
    plots = [f"seed{seed}/macs/pareto.png" for seed in range(seeds)]
    plots += [f"seed{seed}/latency/pareto.png" for seed in range(seeds)]
    plots.append(_plot_accuracy(out, names, acc))
    plots.append(_plot_latency_fronts(out, searches, seeds))
    notes = [f"settings: population {s['population']}, {s['generations']} generations, elite {s['elite']}, "
             f"{s['proxy_epochs']} proxy epoch(s), {s['final_epochs']} retraining epochs, {s['workers']} worker(s)"]
    if quick:
        notes.append("--quick: 1,000 training rows, tiny search, 1 retraining epoch; verdicts are not decided")
    return {"claims": claims, "tables": tables, "plots": plots, "settings": dict(s), "notes": notes}


def _plot_accuracy(out: Path, names: list[str], acc: dict[str, list[float]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    means = [100 * mean_std(acc[n])[0] for n in names]
    stds = [100 * mean_std(acc[n])[1] for n in names]
    ax.bar(range(len(names)), means, yerr=stds, capsize=4, color=["C7", "C0", "C0", "C0", "C7", "C3", "C2"])
    for i, n in enumerate(names):
        ax.scatter([i] * len(acc[n]), [100 * a for a in acc[n]], color="k", s=10, zorder=3)
    ax.set_xticks(range(len(names)), [n.replace(" (", "\n(") for n in names], fontsize=8)
    ax.set(ylabel="test accuracy (%)", title="binary_cnn1d on MNIST-1D after full retraining (mean ± std, seeds)")
    low = min(min(acc[n]) for n in names) * 100
    ax.set_ylim(max(0, low - 5), 100)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "test_accuracy.png")
    plt.close(fig)
    return "test_accuracy.png"


def _plot_latency_fronts(out: Path, searches: dict, seeds: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=100)
    for key, color, label in (("macs", "C3", "MAC budget"), ("latency", "C2", "latency budget")):
        for seed in range(seeds):
            cands = searches[seed][key]["evolution"]["candidates"]
            x = [1e3 * c["costs"]["latency"] for c in cands]
            y = [100 * c["proxy_accuracy"] for c in cands]
            ax.scatter(x, y, s=14, color=color, alpha=0.35, label=f"{label} candidates" if seed == 0 else None)
            front = _front(cands, "latency")
            ax.step([1e3 * c["costs"]["latency"] for c in front], [100 * c["proxy_accuracy"] for c in front],
                    where="post", color=color, lw=1, alpha=0.8, label=f"{label} fronts" if seed == 0 else None)
            budget = searches[seed][key]["budget"]
            if key == "latency" and seed == 0:
                ax.axvline(1e3 * budget["latency"], ls="--", color="C2", lw=1, label="latency budget (seed 0)")
    ax.set(xlabel="engine latency (µs per call)", ylabel="proxy accuracy (validation, %)",
           title="Evolution candidates and fronts: MAC budget vs latency budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "latency_fronts.png")
    plt.close(fig)
    return "latency_fronts.png"
