"""Lingashetty 2010, "Delta Learning Rule for the Active Sites Model" (arXiv:1007.0417), on Kak's
B-matrix approach (arXiv:0906.0798): memories of ±1 patterns retrieved from single clamped
neurons, stored by the Hebbian rule or by the delta (Widrow–Hoff) rule, and a multi-level neuron.

Reproduced with :mod:`onebit.memory` (the functions a user calls). Per trial: ``k`` random ±1
patterns of ``N`` neurons, stored as the Hebbian ``T`` and as the delta rule's ``W`` (η = 0.5/N,
until ``max ‖x − W x‖_∞ < 10⁻⁶``, ≤ 200 epochs); each neuron clamped to each memory's value
there, the B-matrix iteration in the spreading order of the proximity matrix (neurons on a
line, ``P = |i − j|``; the same with neurons at random points of the unit square in a second
table); a memory counts as retrieved when it has at least one active site. Per seed: the mean
over its trials; reported: mean ± sd over seeds.

Engine: the same counts through onebit's packed kernels, each retrieval checked state by state
and step by step against the numpy reference of the matrix it runs: the Hebbian ``T`` and the
8-bit quantized delta ``W`` in the float-input kernel (exact), ``sgn(T)`` and ``sgn(W)`` in
the XNOR-popcount kernel. Capacity curves for ``N`` ∈ {16, 32, 64, 128}; the multi-level
neuron (``L`` = 2, 3, 4 levels, :mod:`onebit.memory.multilevel`) at ``N = 32``.

``--quick``: 1 seed, 2 trials, k ∈ {1, 5}, a smoke run.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table

log = logging.getLogger(__name__)

PAPER = ("K. C. Lingashetty 2010, Delta Learning Rule for the Active Sites Model (arXiv:1007.0417); S. Kak 2009, "
         "Single Neuron Memories and the Network's Proximity Matrix (arXiv:0906.0798)")
ENGINE_VARIANTS = ("hebbian float-input", "delta 8-bit float-input", "hebbian xnor", "delta xnor")


@dataclass(frozen=True)
class Settings:
    """The sizes of one run."""

    n: int
    ks: tuple[int, ...]
    trials: int
    curve_ns: tuple[int, ...]
    curve_ks: tuple[int, ...]
    curve_trials: tuple[int, ...]
    levels: tuple[int, ...]
    level_trials: int
    quant_bits: int = 8
    ablation_epochs: tuple[int, ...] = ()


FULL = Settings(n=32, ks=(1, 3, 5, 7, 9), trials=40, curve_ns=(16, 32, 64, 128), curve_ks=(1, 2, 3, 5, 7, 9, 12, 16),
                curve_trials=(40, 40, 16, 6), levels=(2, 3, 4), level_trials=20, ablation_epochs=(1, 2, 5, 200))
QUICK = Settings(n=32, ks=(1, 5), trials=2, curve_ns=(16,), curve_ks=(1, 5), curve_trials=(2,), levels=(2, 3),
                 level_trials=1)


def _store(x: np.ndarray, levels: int = 2) -> dict[str, tuple[np.ndarray, float]]:
    """The two rules' matrices and their multi-level gains."""
    from onebit.memory import delta_rule, hebbian

    energy = float((x * x).sum(axis=1).mean())
    return {"hebbian": (hebbian(x, levels), 1.0), "delta": (delta_rule(x, levels=levels).weights, energy)}


def _checked_sites(w_engine: np.ndarray, w_ref: np.ndarray, x: np.ndarray, p: np.ndarray,
                   engine: str) -> tuple[np.ndarray, int, int]:
    """Active sites through ``engine``; (sites, retrievals, those whose states or step counts differ from numpy's)."""
    from onebit.memory import retrieve

    sites = np.zeros(x.shape, dtype=bool)
    differ = 0
    for i in range(x.shape[1]):
        starts, which = np.unique(x[:, i], return_inverse=True)
        a = retrieve(w_engine, i, starts, p, engine=engine, num_threads=1)
        r = retrieve(w_ref, i, starts, p)
        differ += int(not (np.array_equal(a.states, r.states) and a.iterations == r.iterations))
        sites[:, i] = (a.states[which] == x).all(axis=1)
    return sites, x.shape[1], differ


def _summary(sites: np.ndarray) -> tuple[int, int, float]:
    """(memories retrieved, neurons that are an active site of some memory, mean active sites per memory)."""
    return int(sites.any(axis=1).sum()), int(sites.any(axis=0).sum()), float(sites.sum(axis=1).mean())


def _main(settings: Settings, seeds: int) -> dict[str, Any]:
    """N = settings.n: both rules on both proximities, and the engine variants (line proximity)."""
    from onebit.memory import (active_sites, binarize_weights, line_proximity, point_proximity, quantize_weights,
                               random_patterns)

    n = settings.n
    line = line_proximity(n)
    out: dict[str, Any] = {"per_seed": {}, "single_all_sites": True, "exact": [0, 0]}
    for seed in range(seeds):
        rng = np.random.default_rng(10_000 + seed)
        for k in settings.ks:
            acc: dict[str, list[tuple[int, int, float]]] = {}
            for _ in range(settings.trials):
                x = random_patterns(k, n, rng=rng)
                points = point_proximity(rng.random((n, 2)))
                mats = _store(x)
                for rule, (w, _) in mats.items():
                    s = active_sites(w, x, line)
                    acc.setdefault(rule, []).append(_summary(s))
                    acc.setdefault(f"{rule} (2-D points)", []).append(_summary(active_sites(w, x, points)))
                    if rule == "hebbian" and k == 1 and not s.all():
                        out["single_all_sites"] = False
                q, _ = quantize_weights(mats["delta"][0], settings.quant_bits)
                runs = {"hebbian float-input": (mats["hebbian"][0], mats["hebbian"][0], "float-input"),
                        "delta 8-bit float-input": (q, q, "float-input"),
                        "hebbian xnor": (mats["hebbian"][0], binarize_weights(mats["hebbian"][0]), "xnor"),
                        "delta xnor": (mats["delta"][0], binarize_weights(mats["delta"][0]), "xnor")}
                for name, (w_engine, w_ref, engine) in runs.items():
                    s, count, differ = _checked_sites(w_engine, w_ref, x, line, engine)
                    out["exact"][0] += count
                    out["exact"][1] += differ
                    acc.setdefault(name, []).append(_summary(s))
            for name, rows in acc.items():
                out["per_seed"].setdefault((name, k), []).append(tuple(np.mean(rows, axis=0)))
        log.info("seed %d: N=%d done", seed, n)
    return out


def _curves(settings: Settings, seeds: int) -> dict[tuple[str, int, int], list[float]]:
    """Memories retrieved (mean over trials, one value per seed) per rule, N and k; line proximity."""
    from onebit.memory import active_sites, line_proximity, memories_retrieved, random_patterns

    got: dict[tuple[str, int, int], list[float]] = {}
    for n, trials in zip(settings.curve_ns, settings.curve_trials):
        line = line_proximity(n)
        for seed in range(seeds):
            rng = np.random.default_rng(20_000 + 100 * n + seed)
            for k in settings.curve_ks:
                counts: dict[str, list[int]] = {"hebbian": [], "delta": []}
                for _ in range(trials):
                    x = random_patterns(k, n, rng=rng)
                    for rule, (w, _) in _store(x).items():
                        counts[rule].append(memories_retrieved(active_sites(w, x, line)))
                for rule, c in counts.items():
                    got.setdefault((rule, n, k), []).append(float(np.mean(c)))
        log.info("capacity curve N=%d done", n)
    return got


def _multilevel(settings: Settings, seeds: int) -> dict[tuple[str, int, int], list[tuple[int, int, float]]]:
    """Per rule, levels L and k: (memories retrieved, active neurons, sites per memory) per seed, N = settings.n."""
    from onebit.memory import active_sites, line_proximity, random_patterns

    n = settings.n
    line = line_proximity(n)
    got: dict[tuple[str, int, int], list[tuple[int, int, float]]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(30_000 + seed)
        for levels in settings.levels:
            for k in settings.ks:
                acc: dict[str, list[tuple[int, int, float]]] = {}
                for _ in range(settings.level_trials):
                    x = random_patterns(k, n, levels, rng=rng)
                    for rule, (w, gain) in _store(x, levels).items():
                        acc.setdefault(rule, []).append(_summary(active_sites(w, x, line, levels=levels, gain=gain)))
                for rule, rows in acc.items():
                    got.setdefault((rule, levels, k), []).append(tuple(np.mean(rows, axis=0)))
    return got


def _epochs_ablation(settings: Settings, seeds: int) -> dict[int, list[tuple[float, float]]]:
    """k = 5, N = settings.n: (Hebbian, delta) memories retrieved per seed for delta rules stopped after
    ``settings.ablation_epochs`` epochs (the last: the default, trained to convergence)."""
    from onebit.memory import active_sites, delta_rule, hebbian, line_proximity, memories_retrieved, random_patterns

    line = line_proximity(settings.n)
    got: dict[int, list[tuple[float, float]]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(40_000 + seed)
        xs = [random_patterns(5, settings.n, rng=rng) for _ in range(settings.trials)]
        heb = float(np.mean([memories_retrieved(active_sites(hebbian(x), x, line)) for x in xs]))
        for epochs in settings.ablation_epochs:
            delta = [memories_retrieved(active_sites(delta_rule(x, epochs=epochs).weights, x, line)) for x in xs]
            got.setdefault(epochs, []).append((heb, float(np.mean(delta))))
    return got


def _ms(values: list[float], digits: int = 2) -> str:
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _plot(settings: Settings, main: dict[str, Any], curves: dict, levels: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), dpi=100)
    ax = axes[0]
    for i, n in enumerate(settings.curve_ns):
        for rule, style in (("hebbian", "-"), ("delta", "--")):
            ys = [mean_std(curves[(rule, n, k)])[0] for k in settings.curve_ks]
            ax.plot(settings.curve_ks, ys, style, marker="o", color=f"C{i}", label=f"{rule}, N={n}")
    ax.plot(settings.curve_ks, settings.curve_ks, ":", color="grey", label="all k")
    ax.set(xlabel="stored memories k", ylabel="memories retrieved (≥ 1 active site)",
           title="capacity, line proximity (numpy reference)")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    for name in ("hebbian", "delta", *ENGINE_VARIANTS):
        ys = [mean_std([r[0] for r in main["per_seed"][(name, k)]])[0] for k in settings.ks]
        ax.plot(settings.ks, ys, marker="o", label=name)
    ax.set(xlabel="stored memories k", ylabel="memories retrieved", title=f"engine paths, N={settings.n}")
    ax.legend(fontsize=7)
    ax = axes[2]
    for i, lv in enumerate(settings.levels):
        for rule, style in (("hebbian", "-"), ("delta", "--")):
            ys = [mean_std([r[0] for r in levels[(rule, lv, k)]])[0] for k in settings.ks]
            ax.plot(settings.ks, ys, style, marker="o", color=f"C{i}", label=f"{rule}, L={lv}")
    ax.set(xlabel="stored memories k", ylabel="memories retrieved", title=f"multi-level neurons, N={settings.n}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@register_experiment("lingashetty2010_delta_rule", paper=PAPER,
                     title="Delta rule vs Hebbian rule in the B-matrix active-sites memory, binary and multi-level",
                     seeds=3, quick_seeds=1)
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """Memories retrieved from single neurons: Hebbian vs delta rule, on numpy and onebit's packed kernels."""
    settings = QUICK if quick else FULL
    main = _main(settings, seeds)
    curves = _curves(settings, seeds)
    levels = _multilevel(settings, seeds)
    ablation = _epochs_ablation(settings, seeds)
    _plot(settings, main, curves, levels, out_dir / "lingashetty2010_capacity.png")

    def retrieved(name: str, k: int) -> list[float]:
        return [r[0] for r in main["per_seed"][(name, k)]]

    decide = (lambda ok: None) if quick else (lambda ok: bool(ok))
    n = settings.n
    compared = [k for k in settings.ks if k in (3, 5, 7, 9)]
    means = {k: (mean_std(retrieved("hebbian", k))[0], mean_std(retrieved("delta", k))[0]) for k in compared}
    curve_single = all(curves[("hebbian", m, 1)] == [1.0] * seeds for m in settings.curve_ns if 1 in settings.curve_ks)
    total, differ = main["exact"]
    claims = [
        Claim("one stored memory: the Hebbian network retrieves it from every neuron",
              "every neuron, every trial" if main["single_all_sites"] and curve_single else "not from every neuron",
              "every neuron (Kak; Lingashetty)", "", bool(main["single_all_sites"] and curve_single),
              f"N={n}, {settings.trials} trials × {seeds} seed(s), and N ∈ {list(settings.curve_ns)} in the curves"),
    ]
    for k in compared:
        h, d = means[k]
        claims.append(Claim(
            f"k={k}, N={n}: the delta rule retrieves at least as many memories as the Hebbian rule",
            f"delta {_ms(retrieved('delta', k))} vs Hebbian {_ms(retrieved('hebbian', k))}", None, "memories",
            decide(d >= h), f"mean ± sd over {seeds} seed(s) of the mean over {settings.trials} trials; the paper's "
            "table could not be read (its text was not available), so no paper figure is quoted"))
    if 5 in compared:
        h, d = means[5]
        claims.append(Claim(f"k=5, N={n}: the delta rule retrieves ≥ 1 memory more than the Hebbian rule",
                            f"{d - h:+.2f}", None, "memories", decide(d - h >= 1.0),
                            "the issue's acceptance bar; gap of the means over seeds"))
    claims.append(Claim(
        "packed engine retrievals equal the numpy reference of the matrix they run (states and step counts)",
        f"{total - differ:,} of {total:,} retrievals identical", None, "", total > 0 and differ == 0,
        "Hebbian T and 8-bit delta W in the float-input kernel; sgn(T), sgn(W) in the XNOR-popcount kernel"))
    for name, ref in (("delta 8-bit float-input", "delta"), ("delta xnor", "delta"), ("hebbian xnor", "hebbian")):
        cost = [mean_std(retrieved(ref, k))[0] - mean_std(retrieved(name, k))[0] for k in compared]
        claims.append(Claim(f"capacity cost of the engine path '{name}' against the real-valued {ref} matrix",
                            ", ".join(f"k={k}: {c:+.2f}" for k, c in zip(compared, cost)), None, "memories lost",
                            None, "positive = fewer memories retrieved on the engine path"))

    rows = []
    for k in settings.ks:
        for name in ("hebbian", "delta", "hebbian (2-D points)", "delta (2-D points)", *ENGINE_VARIANTS):
            r = main["per_seed"][(name, k)]
            rows.append([k, name, _ms([v[0] for v in r]), _ms([v[1] for v in r], 1), _ms([v[2] for v in r], 2)])
    curve_rows = [[rule, m, k, _ms(curves[(rule, m, k)])] for m in settings.curve_ns for k in settings.curve_ks
                  for rule in ("hebbian", "delta")]
    level_rows = [[lv, k, rule, _ms([v[0] for v in levels[(rule, lv, k)]]), _ms([v[1] for v in levels[(rule, lv, k)]], 1)]
                  for lv in settings.levels for k in settings.ks for rule in ("hebbian", "delta")]
    for lv in settings.levels:
        if lv == 2:
            continue
        claims.append(Claim(f"multi-level neurons (L={lv}) beside binary (L=2), N={n}: memories retrieved, "
                            "Hebbian / delta",
                            "; ".join(f"k={k}: {mean_std([v[0] for v in levels[('hebbian', lv, k)]])[0]:.2f} / "
                                      f"{mean_std([v[0] for v in levels[('delta', lv, k)]])[0]:.2f} (binary "
                                      f"{mean_std([v[0] for v in levels[('hebbian', 2, k)]])[0]:.2f} / "
                                      f"{mean_std([v[0] for v in levels[('delta', 2, k)]])[0]:.2f})"
                                      for k in settings.ks), None, "memories", None,
                            "levels −1 + 2j/(L−1), nearest-level quantizer of the fragment-normalized field"))
    ablation_rows = [[epochs, _ms([h for h, _ in r]), _ms([d for _, d in r]), _ms([d - h for h, d in r])]
                     for epochs, r in ablation.items()]
    tables = {} if not ablation_rows else {"delta rule stopped early, k=5": table(
        ["delta epochs", "Hebbian", "delta", "gap"], ablation_rows,
        f"N={n}, η = 0.5/N, memories retrieved, mean ± sd over {seeds} seed(s) of {settings.trials} trials "
        "(other patterns than the main table); 200: the default, converged (W x = x)")}
    return {
        "claims": claims,
        "tables": {**tables,
            f"memories retrieved and active sites, N={n}": table(
                ["k", "rule / path", "memories retrieved", "active neurons", "active sites per memory"], rows,
                f"mean ± sd over {seeds} seed(s) of the mean over {settings.trials} trials; line proximity unless "
                "'2-D points'; active neurons: neurons from which some memory is retrieved"),
            "capacity curves (line proximity)": table(["rule", "N", "k", "memories retrieved"], curve_rows,
                                                      f"trials per seed: {dict(zip(settings.curve_ns, settings.curve_trials))}"),
            f"multi-level neurons, N={n}": table(["levels L", "k", "rule", "memories retrieved", "active neurons"],
                                                 level_rows, f"{settings.level_trials} trials per seed"),
        },
        "plots": ["lingashetty2010_capacity.png"],
        "settings": {**asdict(settings), "delta_rule": "eta 0.5/N, tol 1e-6, ≤ 200 epochs, from W = 0",
                     "proximity": "line |i − j| (ties: lower index first); second table: random points in [0,1]²",
                     "patterns": "uniform random ±1 (synthetic: the claim is about random patterns)"},
        "notes": [
            "The paper's tables could not be read in this environment, so no paper numbers are quoted; the claims "
            "are the issue's acceptance criteria, put to the test.",
            "Retrieval counts a memory when the fixed point reached from some neuron clamped to that memory's value "
            "equals the whole memory (its active sites).",
        ],
    }
