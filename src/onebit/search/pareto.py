"""Pareto fronts of accuracy against cost, and the ``pareto.png`` plot of a search.

A point (cost c, accuracy a) is on the front of a set when no other point of the set
has ``c' ≤ c`` and ``a' ≥ a`` with one of them strict: nothing is both cheaper (or as
cheap) and more accurate (or as accurate).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["pareto_front", "plot_pareto"]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(cost, accuracy)`` points, by increasing cost.

    Of several points with equal cost and accuracy the first is kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front: list[int] = []
    best = -float("inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(search: dict[str, Any], path: str | os.PathLike, cost: str | None = None) -> Path:
    """Proxy accuracy against ``cost`` (default: the first budget cost) for a ``search.json`` dict.

    Evolution candidates are coloured by generation, random-search candidates are grey
    crosses, the uniform reference nets stars labelled ×r; the front over the evolution
    and random-search candidates is a step line, the budget a dashed vertical line and the
    winner a ringed point.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from onebit.search.costs import UNITS

    budget = search.get("budget") or {}
    cost = cost or next(iter(budget), None) or "binary_macs"
    scale, unit = (1e6, "M MACs") if cost == "binary_macs" else (1e3, "kB") if cost == "bytes" else (1.0, "ms")
    evo = search["evolution"]["candidates"]
    rnd = (search.get("random_search") or {}).get("candidates", [])
    refs = search.get("references", [])

    def xy(cands: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        return [c["costs"][cost] / scale for c in cands], [100 * c["proxy_accuracy"] for c in cands]

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=100)
    if rnd:
        x, y = xy(rnd)
        ax.scatter(x, y, marker="x", color="0.55", s=30, label=f"random search ({len(rnd)})", zorder=2)
    if evo:
        x, y = xy(evo)
        sc = ax.scatter(x, y, c=[c["generation"] for c in evo], cmap="viridis", s=30, edgecolors="k",
                        linewidths=0.3, label=f"evolution ({len(evo)})", zorder=3)
        gens = sorted({c["generation"] for c in evo})
        bar = fig.colorbar(sc, ax=ax, label="generation")
        bar.set_ticks(gens if len(gens) <= 12 else gens[:: math.ceil(len(gens) / 12)])
    pool = evo + rnd
    if pool:
        px, py = xy(pool)
        front = pareto_front(list(zip(px, py)))
        fx, fy = [px[i] for i in front], [py[i] for i in front]
        ax.step(fx, fy, where="post", color="C3", lw=1.5, label="Pareto front", zorder=1)
    right = max((c["costs"][cost] for c in pool + refs), default=0.0) / scale
    for c in refs:
        x, y = c["costs"][cost] / scale, 100 * c["proxy_accuracy"]
        ax.scatter([x], [y], marker="*", s=160, color="C1", edgecolors="k", zorder=4)
        at_right = x >= 0.8 * right
        ax.annotate(f"uniform ×{c['genome'][0]:g}", (x, y), textcoords="offset points",
                    xytext=(-8 if at_right else 6, -12), ha="right" if at_right else "left", fontsize=8)
    winner = search.get("winner") or {}
    if winner.get("costs"):
        ax.scatter([winner["costs"][cost] / scale], [100 * winner["proxy_accuracy"]], s=260, facecolors="none",
                   edgecolors="C3", linewidths=2, label="winner (retrained)", zorder=5)
    if cost in budget:
        ax.axvline(budget[cost] / scale, ls="--", color="C3", lw=1, label="budget")
    xs = [c["costs"][cost] for c in pool + refs]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 100:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set(xlabel=f"{cost} ({unit if cost != 'latency' else UNITS[cost]})",
           ylabel="proxy accuracy (validation, %)",
           title=f"{search['model']} on {search['data']}: width search")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
