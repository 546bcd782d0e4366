"""Beknazaryan 2022, "Expressive power of binary and ternary neural networks" (arXiv:2206.13280).

Two parts, both with :mod:`onebit.analysis.expressivity` (the functions a user calls):

1. **The constructive depth-2 net with activation 1_[a,b)** (:func:`indicator_network`) on a
   Lipschitz and a ½-Hölder target in d = 1 (n = 1 … 1024 cells per axis) and d = 2
   (n = 1 … 128): its sup error on a grid that contains every cell corner, against the bound
   ω_f(√d/(2n)) (:func:`indicator_bound`), and the log-log slope of the error against n on
   the Lipschitz targets (fitted over n ≥ 8, the asymptotic regime).
2. **Trained ReLU MLPs** (:class:`QuantizedMLP`, depth 3) with binary {±1} (``ste_sign``),
   ternary {0, ±1} (``ste_tern``) and, for reference, real weights, real biases and one output
   scale, on the ½-Hölder targets sin(2πx) + |x − 0.3|^½ and its 2-D analogue: sup error on a
   dense grid (:func:`sup_error`) against the number of weights (:func:`count_weights`), for
   several widths and seeds (the experiment's seeds), with the rate W^(−β/d) drawn beside it.

Claims (from the issue that asked for this reproduction): the constructive net's error
stays under its bound for every n and falls with slope ≤ −0.9 on a Lipschitz target; the
trained nets' error falls with size; ternary ≤ binary at equal size; both < 0.1 at ≤ 10⁴
weights. The targets are synthetic functions: the paper's claims are about approximating
function classes on [0,1]^d, not about a data set.

``--quick``: n ≤ 64 (d = 1) and ≤ 8 (d = 2), two widths, 100 training steps, coarse grids:
a smoke run of every step in a few seconds, not a result.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from typing import Any

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table

log = logging.getLogger(__name__)

PAPER = ("Beknazaryan 2022, Expressive power of binary and ternary neural networks (arXiv:2206.13280)")

FULL = {"n_1d": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], "n_2d": [1, 2, 4, 8, 16, 32, 64, 128],
        "grid_1d": 4097, "grid_2d": 257, "indicator_targets": ["sin1d", "holder1d", "sin2d", "holder2d"],
        "trained_targets": ["holder1d", "holder2d"], "kinds": ["binary", "ternary", "float"],
        "widths": [8, 16, 32, 48, 64], "depth": 3, "steps": 4000, "batch_size": 1024, "lr": 3e-2,
        "sup_weight": 1.0, "ternary_threshold": 0.05, "slope_from_n": 8,
        "intervals": [[0.0, 1.0], [-2.0, -1.5], [3.0, 10.0]], "interval_cases": [["holder1d", 512], ["holder2d", 64]]}
QUICK = {"n_1d": [1, 4, 16, 64], "n_2d": [1, 2, 4, 8], "grid_1d": 257, "grid_2d": 33,
         "indicator_targets": ["sin1d", "holder1d", "sin2d", "holder2d"],
         "trained_targets": ["holder1d", "holder2d"], "kinds": ["binary", "ternary", "float"],
         "widths": [4, 8], "depth": 3, "steps": 100, "batch_size": 256, "lr": 3e-2,
         "sup_weight": 1.0, "ternary_threshold": 0.05, "slope_from_n": 4,
         "intervals": [[0.0, 1.0], [-2.0, -1.5]], "interval_cases": [["holder1d", 16], ["holder2d", 4]]}
LIPSCHITZ = ("sin1d", "sin2d")
MAX_WEIGHTS = 10_000
ERROR_LIMIT = 0.1


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    var = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / var if var > 0 else float("nan")


def _indicator_part(s: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    from onebit.analysis.expressivity import get_target, indicator_bound, indicator_network, sup_error

    rows: dict[str, list[dict[str, Any]]] = {}
    for name in s["indicator_targets"]:
        target = get_target(name)
        ns, grid = (s["n_1d"], s["grid_1d"]) if target.d == 1 else (s["n_2d"], s["grid_2d"])
        rows[name] = []
        for n in ns:
            net = indicator_network(target, n, target.d)
            err = sup_error(net, target, target.d, grid)
            bound = indicator_bound(target, n, target.d)
            rows[name].append({"n": n, "hidden": list(net.hidden_units), "weights": net.num_weights,
                               "sup_error": err, "bound": bound})
            log.info("indicator net %s n=%d: sup error %.4g, bound %.4g", name, n, err, bound)
    return rows


def _interval_part(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The construction with other activation intervals [a, b) (the paper: any interval works)."""
    from onebit.analysis.expressivity import get_target, indicator_bound, indicator_network, sup_error

    rows = []
    for name, n in s["interval_cases"]:
        target = get_target(name)
        grid = s["grid_1d"] if target.d == 1 else s["grid_2d"]
        for a, b in s["intervals"]:
            err = sup_error(indicator_network(target, n, target.d, a=a, b=b), target, target.d, grid)
            rows.append({"target": name, "n": n, "a": a, "b": b, "sup_error": err,
                         "bound": indicator_bound(target, n, target.d)})
            log.info("indicator net %s n=%d on [%g, %g): sup error %.4g", name, n, a, b, err)
    return rows


def _trained_part(s: dict[str, Any], seeds: int) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    from onebit.analysis.expressivity import (
        QuantizedMLP,
        count_weights,
        fit_target,
        get_target,
        sup_error,
    )
    from onebit.train import set_seed

    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for name in s["trained_targets"]:
        target = get_target(name)
        grid = s["grid_1d"] if target.d == 1 else s["grid_2d"]
        for kind in s["kinds"]:
            for width in s["widths"]:
                runs[name, kind, width] = []
                for seed in range(seeds):
                    set_seed(seed)
                    model = QuantizedMLP(target.d, width, s["depth"], kind, ternary_threshold=s["ternary_threshold"])
                    fit = fit_target(model, target, target.d, steps=s["steps"], batch_size=s["batch_size"],
                                     lr=s["lr"], seed=seed, sup_weight=s["sup_weight"])
                    err = sup_error(model, target, target.d, grid)
                    counts = count_weights(model)
                    runs[name, kind, width].append({"seed": seed, "sup_error": err, **counts,
                                                    "final_loss": fit.final_loss})
                    log.info("%s %s width %d seed %d: %d weights (%d nonzero), sup error %.4f", name, kind, width,
                             seed, counts["weights"], counts["nonzero"], err)
    return runs


@register_experiment("beknazaryan2022_expressivity", paper=PAPER,
                     title="Expressive power of binary and ternary networks: the 1_[a,b) depth-2 construction "
                           "and trained binary/ternary ReLU nets on Hölder targets")
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """Depth-2 1_[a,b) nets against their bound; trained binary/ternary ReLU MLPs' sup error against size."""
    from onebit.train import torch_threads

    s = QUICK if quick else FULL
    with torch_threads(1):  # small nets: one thread is fastest on a shared 2-core machine, and repeatable
        indicator = _indicator_part(s)
        intervals = _interval_part(s)
        trained = _trained_part(s, seeds)
    return _report(out_dir, s, seeds, indicator, intervals, trained, quick)


def _fmt(values: list[float], digits: int = 4) -> str:
    m, sd = mean_std(values)
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def _errors(trained: dict, name: str, kind: str, width: int) -> list[float]:
    return [r["sup_error"] for r in trained[name, kind, width]]


def _report(out: Path, s: dict[str, Any], seeds: int, indicator: dict, intervals: list[dict[str, Any]],
            trained: dict, quick: bool) -> dict[str, Any]:
    from onebit.analysis.expressivity import get_target

    decide = (lambda v: None) if quick else (lambda v: bool(v))
    claims: list[Claim] = []

    # 1. the constructive net
    under = {name: all(r["sup_error"] <= r["bound"] for r in rows) for name, rows in indicator.items()}
    ratio = max(r["sup_error"] / r["bound"] for rows in indicator.values() for r in rows)
    n_max = max(max(s["n_1d"]), max(s["n_2d"]))
    claims.append(Claim(
        "the depth-2 1_[a,b) net's sup error stays under ω_f(√d/2n) for every n tested",
        f"{sum(under.values())}/{len(under)} targets", None, "",
        decide(all(under.values()) and max(s["n_1d"]) >= 512),
        f"largest error/bound ratio {ratio:.7f}; n up to {max(s['n_1d'])} (d = 1) and {max(s['n_2d'])} (d = 2); "
        f"targets {', '.join(indicator)}; largest n overall {n_max}"))
    under_all = sum(r["sup_error"] <= r["bound"] for r in intervals)
    claims.append(Claim(
        "the construction works with any activation interval [a, b): sup error under the bound for each",
        f"{under_all}/{len(intervals)} cases", None, "", decide(under_all == len(intervals)),
        "; ".join(f"{r['target']} n={r['n']} [{r['a']:g}, {r['b']:g}): {r['sup_error']:.4g} (bound {r['bound']:.4g})"
                  for r in intervals)))
    for name in LIPSCHITZ:
        if name not in indicator:
            continue
        rows = [r for r in indicator[name] if r["n"] >= s["slope_from_n"]]
        slope = loglog_slope([r["n"] for r in rows], [r["sup_error"] for r in rows])
        slope_all = loglog_slope([r["n"] for r in indicator[name]], [r["sup_error"] for r in indicator[name]])
        claims.append(Claim(
            f"on the Lipschitz target {get_target(name).formula} (d = {get_target(name).d}) the sup error falls "
            f"with log-log slope ≤ −0.9 in n", round(slope, 4), None, "",
            decide(slope <= -0.9),
            f"least-squares slope over n = {rows[0]['n']}…{rows[-1]['n']}; over all n tested (from "
            f"{indicator[name][0]['n']}, where the error saturates at the target's range) {slope_all:.3f}; "
            f"the bound's slope is −1"))

    # 2. trained nets
    kinds = [k for k in ("binary", "ternary") if k in s["kinds"]]
    weights = {name: [trained[name, kinds[0], w][0]["weights"] for w in s["widths"]] for name in s["trained_targets"]}
    for name in s["trained_targets"]:
        target = get_target(name)
        for kind in kinds:
            means = [mean_std(_errors(trained, name, kind, w))[0] for w in s["widths"]]
            slope = loglog_slope(weights[name], means)
            monotone = all(b < a for a, b in itertools.pairwise(means))
            claims.append(Claim(
                f"trained {kind}-weight ReLU nets on {target.formula}: the sup error decreases with size",
                round(slope, 3), None, "log-log slope in W",
                decide(slope < 0 and means[-1] < means[0]),
                f"mean sup error by weights {dict(zip(weights[name], [round(m, 4) for m in means]))}; strictly "
                f"decreasing at every step: {monotone}; the rate W^(−β/d) has slope {-target.beta / target.d:.3f}"))
        if "binary" in kinds and "ternary" in kinds:
            per_size = []
            for w, nw in zip(s["widths"], weights[name]):
                b, t = _errors(trained, name, "binary", w), _errors(trained, name, "ternary", w)
                per_size.append((nw, mean_std(t)[0] <= mean_std(b)[0], _fmt(t, 3), _fmt(b, 3)))
            wins = sum(p[1] for p in per_size)
            claims.append(Claim(
                f"ternary ≤ binary sup error at equal size on {target.formula}", f"{wins}/{len(per_size)} sizes",
                None, "", decide(wins == len(per_size)),
                "; ".join(f"W={nw}: ternary {t} vs binary {b}" for nw, _, t, b in per_size)))
        for kind in kinds:
            small = [(nw, _errors(trained, name, kind, w)) for w, nw in zip(s["widths"], weights[name])
                     if nw <= MAX_WEIGHTS]
            best_w, best = min(small, key=lambda p: mean_std(p[1])[0]) if small else (None, [float("nan")])
            claims.append(Claim(
                f"trained {kind}-weight nets reach sup error < {ERROR_LIMIT} with ≤ 10⁴ weights on {target.formula}",
                _fmt(best), None, "sup error (mean ± std)", decide(small and mean_std(best)[0] < ERROR_LIMIT),
                f"best mean over sizes ≤ 10⁴ weights: W = {best_w}; per seed {[round(e, 4) for e in best]}"))

    tables: dict[str, Any] = {}
    for name, rows in indicator.items():
        target = get_target(name)
        tables[f"Depth-2 1_[a,b) net on {target.formula} (d = {target.d}, β = {target.beta:g})"] = table(
            ["n", "hidden units (layer 1, layer 2)", "weights (dense)", "sup error", "bound ω(√d/2n)", "error/bound"],
            [[r["n"], f"{r['hidden'][0]}, {r['hidden'][1]}", r["weights"], r["sup_error"], r["bound"],
              r["sup_error"] / r["bound"]] for r in rows],
            f"sup over a grid of {s['grid_1d'] if target.d == 1 else s['grid_2d']} points per axis (every cell corner "
            f"included)")
    tables["Depth-2 net with other activation intervals [a, b)"] = table(
        ["target", "n", "a", "b", "sup error", "bound ω(√d/2n)"],
        [[r["target"], r["n"], r["a"], r["b"], r["sup_error"], r["bound"]] for r in intervals])
    for name in s["trained_targets"]:
        target = get_target(name)
        rows = []
        for kind in s["kinds"]:
            for w in s["widths"]:
                rs = trained[name, kind, w]
                rows.append([kind, w, rs[0]["weights"], round(mean_std([r["nonzero"] for r in rs])[0]),
                             _fmt([r["sup_error"] for r in rs]), " ".join(f"{r['sup_error']:.4f}" for r in rs)])
        tables[f"Trained depth-{s['depth']} ReLU MLPs on {target.formula} (d = {target.d})"] = table(
            ["weights", "width", "W (weights)", "nonzero weights (mean)", "sup error (mean ± std)", "per seed"], rows,
            f"{s['steps']} Adam steps, batch {s['batch_size']}, lr {s['lr']} (cosine), seeds 0..{seeds - 1}; sup over "
            f"a grid of {s['grid_1d'] if target.d == 1 else s['grid_2d']} points per axis")
    plots = [_plot_indicator(out, indicator), _plot_trained(out, s, trained, weights)]
    notes = [f"settings: {s}"]
    if quick:
        notes.append("--quick: small n, two widths, 100 steps, coarse grids; verdicts are not decided")
    return {"claims": claims, "tables": tables, "plots": plots, "settings": dict(s), "notes": notes}


def _plot_indicator(out: Path, indicator: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from onebit.analysis.expressivity import get_target

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=100)
    for i, (name, rows) in enumerate(indicator.items()):
        target = get_target(name)
        ns = [r["n"] for r in rows]
        ax.loglog(ns, [r["sup_error"] for r in rows], "o-", color=f"C{i}", label=f"{target.formula} (d={target.d})")
        ax.loglog(ns, [r["bound"] for r in rows], "--", color=f"C{i}", lw=1, alpha=0.8)
    ax.plot([], [], "k--", lw=1, label="bound ω_f(√d/2n)")
    ax.set(xlabel="cells per axis n", ylabel="sup error on the grid",
           title="Depth-2 net with activation 1_[a,b): sup error and its bound")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "indicator_error.png")
    plt.close(fig)
    return "indicator_error.png"


def _plot_trained(out: Path, s: dict[str, Any], trained: dict, weights: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from onebit.analysis.expressivity import get_target

    names = s["trained_targets"]
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), dpi=100, squeeze=False)
    colors = {"binary": "C3", "ternary": "C2", "float": "C7"}
    for ax, name in zip(axes[0], names):
        target = get_target(name)
        ws = weights[name]
        for kind in s["kinds"]:
            errs = [_errors(trained, name, kind, w) for w in s["widths"]]
            means = [mean_std(e)[0] for e in errs]
            stds = [mean_std(e)[1] for e in errs]
            ax.errorbar(ws, means, yerr=stds, fmt="o-", capsize=3, color=colors.get(kind, "C0"),
                        label=f"{kind} weights (mean ± std)")
        rate = -target.beta / target.d
        first = mean_std(_errors(trained, name, s["kinds"][0], s["widths"][0]))[0]
        ax.loglog(ws, [first * (w / ws[0]) ** rate for w in ws], "k:", lw=1.2,
                  label=f"rate W^({rate:g}) (β/d = {target.beta:g}/{target.d})")
        ax.axhline(ERROR_LIMIT, color="k", lw=0.8, alpha=0.4, label=f"{ERROR_LIMIT} (the acceptance limit)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel="weights W", ylabel="sup error on the grid", title=f"{target.formula} (d = {target.d})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"Trained depth-{s['depth']} ReLU MLPs: sup error against size")
    fig.tight_layout()
    fig.savefig(out / "trained_error.png")
    plt.close(fig)
    return "trained_error.png"
