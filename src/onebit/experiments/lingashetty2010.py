"""Lingashetty 2010, "Delta Learning Rule for the Active Sites Model" (arXiv:1007.0417), on Kak's
B-matrix approach (arXiv:0906.0798): memories of ±1 patterns retrieved from single clamped
neurons, stored by the Hebbian rule or by the delta (Widrow–Hoff) rule, and a multi-level neuron.

Reproduced with :mod:`onebit.memory` (the functions a user calls). Per trial: ``k`` random ±1
patterns of ``N`` neurons, stored as the Hebbian ``T`` and as the delta rule's ``W`` (η = 0.5/N,
until ``max ‖x − W x‖_∞ < 10⁻⁶``, ≤ 200 epochs); each neuron clamped to each memory's value
there, the B-matrix iteration in the spreading order of the proximity matrix (neurons on a
line, ``P = |i − j|``), sgn(0) = +1; a memory counts as retrieved when it has at least one
active site. Per seed: the mean over its trials; reported: mean ± sd over seeds, and the
Hebbian-to-delta gap paired per trial with its 95 % CI over all trials.

The papers' text was not available, so the choices it would settle are measured side by side on
the same patterns (:data:`READINGS`): neurons at random 2-D points, a zero field leaving the
neuron silent (sgn(0) = 0), the plain index order, the delta ``W``'s other triangle, the delta
rule stopped as soon as every memory is a fixed point of ``sgn(W x)``.

Engine: the same counts through onebit's packed kernels (the first ``engine_trials`` trials),
each retrieval checked state by state and step by step against the numpy reference of the
matrix it runs: the Hebbian ``T`` and the 8-bit quantized delta ``W`` in the float-input kernel
(exact), ``sgn(T)`` and ``sgn(W)`` in the XNOR-popcount kernel. Capacity curves for ``N`` ∈
{16, 32, 64, 128}; the multi-level neuron (``L`` = 2, 3, 4 levels,
:mod:`onebit.memory.multilevel`) at ``N = 32``.

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
    engine_trials: int
    gap_trials: int
    quant_bits: int = 8
    ablation_epochs: tuple[int, ...] = ()


FULL = Settings(n=32, ks=(1, 3, 5, 7, 9), trials=70, curve_ns=(16, 32, 64, 128), curve_ks=(1, 2, 3, 5, 7, 9, 12, 16),
                curve_trials=(40, 40, 16, 6), levels=(2, 3, 4), level_trials=20, engine_trials=20, gap_trials=400,
                ablation_epochs=(1, 2, 5, 200))
QUICK = Settings(n=32, ks=(1, 5), trials=2, curve_ns=(16,), curve_ks=(1, 5), curve_trials=(2,), levels=(2, 3),
                 level_trials=1, engine_trials=1, gap_trials=2)

# Readings of the method that the papers' unavailable text would settle, measured beside the main one on
# the same patterns: (name, proximity: "line" / "points" / "index", ties: retrieval's zero-field rule).
READINGS = (
    ("main: line, sgn(0)=+1, delta converged", "line", "plus"),
    ("neurons at random 2-D points", "points", "plus"),
    ("zero field leaves the neuron silent (sgn(0)=0)", "line", "silent"),
    ("index order i, i+1, …, N−1, 0, … (no proximity)", "index", "plus"),
    ("delta's B from Wᵀ (other triangle)", "line", "plus"),
    ("delta stopped once sgn(W x) = x for every memory", "line", "plus"),
)


def _store(x: np.ndarray, levels: int = 2) -> dict[str, tuple[np.ndarray, float]]:
    """The two rules' matrices and their multi-level gains."""
    from onebit.memory import delta_rule, hebbian

    energy = float((x * x).sum(axis=1).mean())
    return {"hebbian": (hebbian(x, levels), 1.0), "delta": (delta_rule(x, levels=levels).weights, energy)}


def index_proximity(n: int) -> np.ndarray:
    """``P[i, j] = (j − i) mod n``: from neuron i the activity runs i, i+1, …, n−1, 0, …, i−1 (Kak's
    B-matrix in the neurons' own index order, rotated to start at the clamped neuron)."""
    idx = np.arange(n)
    return ((idx[None, :] - idx[:, None]) % n).astype(np.float64)


def delta_until_sign_fixed(x: np.ndarray, max_epochs: int = 200) -> np.ndarray:
    """The delta rule (default η) stopped after the first epoch where ``sgn(W x_m) = x_m`` for every memory."""
    from onebit.memory import delta_rule

    w = np.zeros((x.shape[1], x.shape[1]))
    for _ in range(max_epochs):
        w = delta_rule(x, epochs=1, init=w).weights
        if np.array_equal(np.where(x @ w.T >= 0, 1.0, -1.0), x):
            break
    return w


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
    """N = settings.n: both rules under every reading of :data:`READINGS`, per trial (paired: the same
    patterns for all), and the engine variants (line proximity) on the first ``engine_trials`` trials."""
    from onebit.memory import active_sites, binarize_weights, line_proximity, point_proximity, quantize_weights, \
        random_patterns

    n = settings.n
    fixed = {"line": line_proximity(n), "index": index_proximity(n)}
    # trials[(name, k)]: per trial (seed, memories retrieved, active neurons, sites per memory)
    out: dict[str, Any] = {"trials": {}, "single_all_sites": True, "exact": [0, 0]}

    def record(name: str, k: int, seed: int, sites: np.ndarray) -> None:
        out["trials"].setdefault((name, k), []).append((seed, *_summary(sites)))

    for seed in range(seeds):
        rng = np.random.default_rng(10_000 + seed)
        for k in settings.ks:
            for trial in range(settings.trials):
                x = random_patterns(k, n, rng=rng)
                prox = {**fixed, "points": point_proximity(rng.random((n, 2)))}
                mats = _store(x)
                for rule, (w, _) in mats.items():
                    for reading, proximity, ties in READINGS:
                        if reading.startswith("delta's B from"):
                            w_r = w.T if rule == "delta" else w
                        elif reading.startswith("delta stopped"):
                            w_r = delta_until_sign_fixed(x) if rule == "delta" else w
                        else:
                            w_r = w
                        s = active_sites(w_r, x, prox[proximity], ties=ties)
                        record(rule if reading.startswith("main") else f"{rule} | {reading}", k, seed, s)
                        if reading.startswith("main") and rule == "hebbian" and k == 1 and not s.all():
                            out["single_all_sites"] = False
                if trial >= settings.engine_trials:
                    continue
                q, _ = quantize_weights(mats["delta"][0], settings.quant_bits)
                runs = {"hebbian float-input": (mats["hebbian"][0], mats["hebbian"][0], "float-input"),
                        "delta 8-bit float-input": (q, q, "float-input"),
                        "hebbian xnor": (mats["hebbian"][0], binarize_weights(mats["hebbian"][0]), "xnor"),
                        "delta xnor": (mats["delta"][0], binarize_weights(mats["delta"][0]), "xnor")}
                for name, (w_engine, w_ref, engine) in runs.items():
                    s, count, differ = _checked_sites(w_engine, w_ref, x, fixed["line"], engine)
                    out["exact"][0] += count
                    out["exact"][1] += differ
                    record(name, k, seed, s)
                    if name.endswith("float-input"):  # the same trials on the numpy path, for the cost column
                        ref = name.split()[0]
                        record(f"{ref} (engine trials)", k, seed, active_sites(mats[ref][0], x, fixed["line"]))
        log.info("seed %d: N=%d done", seed, n)
    out["per_seed"] = {key: [tuple(np.mean([r[1:] for r in rows if r[0] == sd], axis=0)) for sd in range(seeds)]
                       for key, rows in out["trials"].items()}
    return out


def paired_gap(delta: list[tuple], hebbian: list[tuple]) -> tuple[float, float, int]:
    """Per-trial ``delta − Hebbian`` memories retrieved (the same patterns): (mean, 95 % CI half-width
    1.96 sd/√n, n)."""
    g = np.array([d[1] for d in delta], dtype=np.float64) - np.array([h[1] for h in hebbian], dtype=np.float64)
    half = 1.96 * float(g.std(ddof=1)) / np.sqrt(len(g)) if len(g) > 1 else float("nan")
    return float(g.mean()), half, len(g)


def _gap_sample(settings: Settings, seeds: int) -> dict[int, list[tuple[int, int, int]]]:
    """The claims' sample: for k ∈ {3, 5, 7, 9} ∩ settings.ks, ``gap_trials`` fresh trials per seed of the
    main reading only; per trial (seed, Hebbian memories retrieved, delta memories retrieved)."""
    from onebit.memory import active_sites, line_proximity, memories_retrieved, random_patterns

    line = line_proximity(settings.n)
    got: dict[int, list[tuple[int, int, int]]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(50_000 + seed)
        for k in [k for k in settings.ks if k in (3, 5, 7, 9)]:
            for _ in range(settings.gap_trials):
                x = random_patterns(k, settings.n, rng=rng)
                heb, delta = (memories_retrieved(active_sites(w, x, line)) for w, _ in _store(x).values())
                got.setdefault(k, []).append((seed, heb, delta))
    log.info("claims sample done")
    return got


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
    sample = _gap_sample(settings, seeds)
    curves = _curves(settings, seeds)
    levels = _multilevel(settings, seeds)
    ablation = _epochs_ablation(settings, seeds)
    _plot(settings, main, curves, levels, out_dir / "lingashetty2010_capacity.png")

    def retrieved(name: str, k: int) -> list[float]:
        return [r[0] for r in main["per_seed"][(name, k)]]

    def gap(reading: str, k: int) -> tuple[float, float, int]:
        name = "" if reading.startswith("main") else f" | {reading}"
        return paired_gap(main["trials"][(f"delta{name}", k)], main["trials"][(f"hebbian{name}", k)])

    decide = (lambda ok: None) if quick else (lambda ok: bool(ok))
    n = settings.n
    pooled = seeds * settings.trials
    compared = [k for k in settings.ks if k in (3, 5, 7, 9)]

    def sample_seeds(k: int, column: int) -> list[float]:
        return [float(np.mean([r[column] for r in sample[k] if r[0] == sd])) for sd in range(seeds)]

    def sample_gap(k: int) -> tuple[float, float, int]:
        return paired_gap([(0, r[2]) for r in sample[k]], [(0, r[1]) for r in sample[k]])

    big = seeds * settings.gap_trials
    curve_single = all(curves[("hebbian", m, 1)] == [1.0] * seeds for m in settings.curve_ns if 1 in settings.curve_ks)
    total, differ = main["exact"]
    claims = [
        Claim("one stored memory: the Hebbian network retrieves it from every neuron",
              "every neuron, every trial" if main["single_all_sites"] and curve_single else "not from every neuron",
              "every neuron (Kak; Lingashetty)", "", bool(main["single_all_sites"] and curve_single),
              f"N={n}, {settings.trials} trials × {seeds} seed(s), and N ∈ {list(settings.curve_ns)} in the curves"),
    ]
    for k in compared:
        g, half, count = sample_gap(k)
        claims.append(Claim(
            f"k={k}, N={n}: the delta rule retrieves at least as many memories as the Hebbian rule",
            f"delta {_ms(sample_seeds(k, 2))} vs Hebbian {_ms(sample_seeds(k, 1))}; gap {g:+.2f} ± {half:.2f}",
            None, "memories", decide(g >= 0.0),
            f"main reading; mean ± sd over {seeds} seed(s) of the mean over {settings.gap_trials} trials, and the "
            f"paired per-trial gap delta − Hebbian, mean ± 95 % CI over {count} trials (patterns of their own); the "
            "paper's text was not available, so no paper figure is quoted"))
    if 5 in compared:
        g, half, count = sample_gap(5)
        claims.append(Claim(f"k=5, N={n}: the delta rule retrieves ≥ 1 memory more than the Hebbian rule",
                            f"{g:+.2f} ± {half:.2f}", None, "memories", decide(g >= 1.0),
                            f"the issue's acceptance bar, on the mean gap; paired per-trial gap, mean ± 95 % CI over "
                            f"{count} trials ({seeds} seed(s) × {settings.gap_trials}); the table 'readings of the "
                            "method' gives it under the other readings"))
    claims.append(Claim(
        "packed engine retrievals equal the numpy reference of the matrix they run (states and step counts)",
        f"{total - differ:,} of {total:,} retrievals identical", None, "", total > 0 and differ == 0,
        "Hebbian T and 8-bit delta W in the float-input kernel; sgn(T), sgn(W) in the XNOR-popcount kernel"))
    for name, ref in (("delta 8-bit float-input", "delta"), ("delta xnor", "delta"), ("hebbian xnor", "hebbian")):
        cost = [-paired_gap(main["trials"][(name, k)], main["trials"][(f"{ref} (engine trials)", k)])[0]
                for k in compared]
        claims.append(Claim(f"capacity cost of the engine path '{name}' against the real-valued {ref} matrix",
                            ", ".join(f"k={k}: {c:+.2f}" for k, c in zip(compared, cost)), None, "memories lost",
                            None, f"positive = fewer memories retrieved on the engine path; on the first "
                            f"{settings.engine_trials} trials of each seed"))

    rows = []
    for k in settings.ks:
        for name in ("hebbian", "delta", "hebbian | neurons at random 2-D points",
                     "delta | neurons at random 2-D points", *ENGINE_VARIANTS):
            r = main["per_seed"][(name, k)]
            rows.append([k, name, _ms([v[0] for v in r]), _ms([v[1] for v in r], 1), _ms([v[2] for v in r], 2)])
    reading_rows = []
    for reading, _, _ in READINGS:
        name = "" if reading.startswith("main") else f" | {reading}"
        for k in compared:
            g, half, count = gap(reading, k)
            reading_rows.append([reading, k, _ms(retrieved(f"hebbian{name}", k)), _ms(retrieved(f"delta{name}", k)),
                                 f"{g:+.2f} ± {half:.2f}"])
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
                f"mean ± sd over {seeds} seed(s) of the mean over {settings.trials} trials (engine paths: the first "
                f"{settings.engine_trials}); line proximity unless '2-D points'; active neurons: neurons from which "
                "some memory is retrieved"),
            f"claims sample, N={n}": table(
                ["k", "Hebbian", "delta", "gap delta − Hebbian", "trials where delta < Hebbian"],
                [[k, _ms(sample_seeds(k, 1)), _ms(sample_seeds(k, 2)), "{:+.2f} ± {:.2f}".format(*sample_gap(k)[:2]),
                  sum(r[2] < r[1] for r in sample[k])] for k in compared],
                f"main reading, {big} trials per k ({seeds} seed(s) × {settings.gap_trials}), patterns of their own: "
                "memories retrieved, mean ± sd over seeds; gap paired per trial, mean ± 95 % CI"),
            f"readings of the method, N={n}": table(
                ["reading", "k", "Hebbian", "delta", "gap delta − Hebbian"], reading_rows,
                f"memories retrieved, mean ± sd over {seeds} seed(s) of {settings.trials} trials; gap: paired per "
                f"trial, mean ± 95 % CI over {pooled} trials; all readings on the same patterns. Each row changes "
                "one thing from the main reading"),
            "capacity curves (line proximity)": table(["rule", "N", "k", "memories retrieved"], curve_rows,
                                                      f"trials per seed: {dict(zip(settings.curve_ns, settings.curve_trials))}"),
            f"multi-level neurons, N={n}": table(["levels L", "k", "rule", "memories retrieved", "active neurons"],
                                                 level_rows, f"{settings.level_trials} trials per seed"),
        },
        "plots": ["lingashetty2010_capacity.png"],
        "settings": {**asdict(settings), "delta_rule": "eta 0.5/N, tol 1e-6, ≤ 200 epochs, from W = 0",
                     "readings": [r[0] for r in READINGS],
                     "proximity": "line |i − j| (ties: lower index first); second table: random points in [0,1]²",
                     "patterns": "uniform random ±1 (synthetic: the claim is about random patterns)"},
        "notes": [
            "The paper's tables could not be read in this environment, so no paper numbers are quoted; the claims "
            "are the issue's acceptance criteria, put to the test.",
            "Retrieval counts a memory when the fixed point reached from some neuron clamped to that memory's value "
            "equals the whole memory (its active sites).",
        ],
    }
