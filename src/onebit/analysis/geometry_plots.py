"""The figures of the geometry analysis (Anderson & Berg, arXiv:1705.07199), as PNG files.

Each function draws one figure from the results of :mod:`onebit.analysis.geometry`,
writes it atomically and returns its path: angle histograms with the 37.07° line,
sd(angle) against d on log-log axes with the ``d^(-1/2)`` law, 2-D histograms of
binarized against continuous dot products, the ternary angle curve, and overlaid angle
distributions (isotropic, anisotropic, rotated). matplotlib is imported inside each
function (Agg backend), so importing this module costs nothing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onebit.analysis.geometry import (
    BINARY_ANGLE, LayerCorrelation, LayerGeometry, binary_angle_sd, ternary_angle,
)
from onebit.atomic import atomic_write

__all__ = ["plot_angle_distributions", "plot_angle_histograms", "plot_angle_sd", "plot_dot_products",
           "plot_ternary_curve", "save_figure"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Write a matplotlib figure as PNG atomically, close it, return the path."""
    plt = _pyplot()
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
    return path


def _grid(n: int, cols: int = 4) -> tuple[int, int]:
    cols = min(cols, max(1, n))
    return math.ceil(n / cols), cols


def plot_angle_histograms(layers: Sequence[LayerGeometry], path: str | os.PathLike) -> Path:
    """One panel per binary layer: histogram of its per-filter angles, the 37.07° line and the layer's ternary mean."""
    plt = _pyplot()
    rows, cols = _grid(len(layers))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(layers):]:
        ax.axis("off")
    for ax, g in zip(axes.flat, layers):
        angles = g.angles[np.isfinite(g.angles)]
        ax.hist(angles, bins=max(5, min(40, len(angles) // 4 or 5)), color="tab:red", alpha=0.75,
                label="∠(w_c, w_b)")
        ax.axvline(BINARY_ANGLE, color="black", ls="--", lw=1.2, label=f"{BINARY_ANGLE:.2f}°")
        if math.isfinite(g.ternary_angle_mean):
            ax.axvline(g.ternary_angle_mean, color="tab:blue", ls=":", lw=1.2,
                       label=f"ternary mean {g.ternary_angle_mean:.1f}°")
        ax.set_title(f"{g.name} (d={g.d})", fontsize=9)
        ax.set_xlabel("angle (degrees)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper right")
    fig.suptitle("Angle between latent and binarized weights, per output filter")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_angle_sd(layers: Sequence[LayerGeometry], path: str | os.PathLike, *,
                  gaussian: tuple[Sequence[float], Sequence[float]] | None = None) -> Path:
    """sd of the per-filter angle against d, log-log, with the Gaussian law 20.18°·d^(−½) (slope −½).

    ``gaussian = (ds, sds)`` adds Monte-Carlo points for random Gaussian vectors.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    pts = [(g.d, g.angle_sd, g.name) for g in layers if g.filters > 1 and math.isfinite(g.angle_sd) and g.angle_sd > 0]
    ds = [d for d, _, _ in pts]
    if gaussian is not None:
        ds += list(gaussian[0])
        ax.loglog(gaussian[0], gaussian[1], "s", color="gray", label="Gaussian vectors (Monte Carlo)")
    if pts:
        ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o", color="tab:red", label="layers of the model")
        if len(pts) <= 8:  # more labels than that only overlap
            for d, sd, name in pts:
                ax.annotate(name, (d, sd), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if ds:
        grid = np.geomspace(min(ds) / 1.5, max(ds) * 1.5, 50)
        ax.loglog(grid, [binary_angle_sd(d) for d in grid], "--", color="black", label="20.18°/√d (slope −½)")
    ax.set_xlabel("d (weights per filter)")
    ax.set_ylabel("sd of the angle (degrees)")
    ax.set_title("Spread of ∠(w, sign w) against dimension")
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right")
    else:
        ax.text(0.5, 0.5, "no layer with a spread of angles", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return save_figure(fig, path)


def _hist2d(ax: Any, x: np.ndarray, y: np.ndarray, xlabel: str, ylabel: str, r: float | None) -> None:
    from matplotlib.colors import LogNorm

    if len(x) > 1 and np.ptp(x) > 0 and np.ptp(y) > 0:
        ax.hist2d(x, y, bins=60, norm=LogNorm(), cmap="viridis")
    else:
        ax.plot(x, y, ".", ms=2)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if r is not None and math.isfinite(r):
        ax.set_title(f"r = {r:.3f}", fontsize=9)


def plot_dot_products(correlations: Sequence[LayerCorrelation], path: str | os.PathLike) -> Path:
    """Per binary layer, 2-D histograms: ``A·W_b`` vs ``A·W_c`` and (binary inputs) ``A_c·W_b`` vs ``A_b·W_b``."""
    plt = _pyplot()
    shown = [c for c in correlations if c.points.get("ab_wb") is not None and len(c.points["ab_wb"])]
    rows = max(1, len(shown))
    fig, axes = plt.subplots(rows, 2, figsize=(7, 3 * rows), dpi=100, squeeze=False)
    for (ax_w, ax_a), c in zip(axes, shown):
        p = c.points
        _hist2d(ax_w, p["ab_wb"], p["ab_wc"], "A·W_b", "A·W_c", c.r_weights)
        ax_w.set_title(f"{c.name} (d={c.d}): weights, r = {c.r_weights:.3f}", fontsize=9)
        if "ac_wb" in p:
            _hist2d(ax_a, p["ac_wb"], p["ab_wb"], "A_c·W_b", "A_b·W_b", c.r_activations)
            ax_a.set_title(f"{c.name}: activations, r = {c.r_activations:.3f}", fontsize=9)
        else:
            ax_a.axis("off")
            ax_a.text(0.5, 0.5, "float input:\nno activation binarization", ha="center", va="center", fontsize=8)
    if not shown:
        axes[0][0].text(0.5, 0.5, "no dot products recorded", ha="center", va="center")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_ternary_curve(thresholds: Sequence[float], angles: Sequence[float], path: str | os.PathLike, *,
                       d: int | None = None) -> Path:
    """Mean angle between Gaussian vectors and their ternarization against the threshold t (in σ), with theory."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    grid = np.linspace(0, max(thresholds), 200)
    ax.plot(grid, [ternary_angle(t) for t in grid], "-", color="black", lw=1, label="theory (d → ∞)")
    ax.plot(thresholds, angles, "o", ms=3, color="tab:blue", label="Monte Carlo" + (f", d = {d}" if d else ""))
    i = int(np.nanargmin(angles))
    ax.axvline(thresholds[i], color="tab:blue", ls=":", lw=1)
    ax.annotate(f"min {angles[i]:.2f}° at t = {thresholds[i]:.2f}σ", (thresholds[i], angles[i]),
                xytext=(10, 25), textcoords="offset points", fontsize=8)
    ax.set_xlabel("threshold t (units of σ)")
    ax.set_ylabel("mean angle (degrees)")
    ax.set_title("Ternarization: angle against threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_angle_distributions(samples: Mapping[str, np.ndarray], path: str | os.PathLike, *, title: str = "",
                             reference: float | None = BINARY_ANGLE) -> Path:
    """Overlaid histograms of angle samples (degrees), one per label, with a reference line (37.07°)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    finite = [v[np.isfinite(v)] for v in samples.values()]
    lo = min((float(v.min()) for v in finite if v.size), default=0.0)
    hi = max((float(v.max()) for v in finite if v.size), default=90.0)
    bins = np.linspace(max(0.0, lo - 2), min(180.0, hi + 2), 90)
    for (label, _), values in zip(samples.items(), finite):
        ax.hist(values, bins=bins, alpha=0.55, density=True, label=f"{label} (mean {values.mean():.2f}°)")
    if reference is not None:
        ax.axvline(reference, color="black", ls="--", lw=1.2, label=f"arccos √(2/π) = {reference:.2f}°")
    ax.set_xlabel("angle (degrees)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path)
