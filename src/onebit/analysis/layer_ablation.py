"""Which layer's binarization costs the most accuracy: keep one layer float at a time, train, compare.

Anderson & Berg (arXiv:1705.07199) argue that the first layer is the one binarization
hurts most: its inputs are low-dimensional and correlated, so ``sign`` turns its weight
vectors far more than the 37° of a high-dimensional layer (their bnn_vis ``gen_plots``
runs this ablation: weights of one layer at a time left continuous). Here
:func:`float_layer_ablation` trains a fresh model per configuration and seed: all layers
binary, then each binary layer made float in turn (``part="weights"``: its weights only;
``"both"``: weights and input, a float layer as ``keep_first`` makes it), and reports each
configuration's test accuracy and its gain over the all-binary baseline: the cost of
binarizing that layer.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from onebit.analysis.geometry import binary_layers
from onebit.data import Dataset
from onebit.errors import ConfigError, unknown_choice

__all__ = ["PARTS", "AblationResult", "AblationRow", "float_layer_ablation", "make_float", "plot_ablation"]

log = logging.getLogger(__name__)

PARTS = ("weights", "both")
BASELINE = "none (all binary)"


def make_float(layer: nn.Module, part: str = "both") -> nn.Module:
    """Make one quantized layer float in place: its weight quantizer (``"weights"``) or both quantizers (``"both"``)."""
    if part not in PARTS:
        raise unknown_choice("part", part, PARTS)
    if not hasattr(layer, "weight_quantizer"):
        raise ConfigError(f"{type(layer).__name__} is not a onebit quantized layer")
    layer.weight_quantizer = None
    if part == "both":
        layer.input_quantizer = None
    return layer


@dataclass
class AblationRow:
    """One configuration: which layer is float (``BASELINE`` for none), its test accuracies over seeds."""

    layer: str
    index: int | None
    d: int | None
    accuracies: list[float]
    cost: float = math.nan  # mean accuracy gained by keeping this layer float (= what binarizing it costs)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "index": self.index, "d": self.d, "accuracies": self.accuracies,
                "mean": self.mean, "sd": self.sd, "cost": self.cost}


@dataclass
class AblationResult:
    """The baseline (all binary) and one row per binary layer kept float; accuracies are test accuracies."""

    part: str
    seeds: list[int]
    epochs: int
    baseline: AblationRow
    rows: list[AblationRow] = field(default_factory=list)

    @property
    def costliest(self) -> AblationRow:
        """The layer whose binarization costs the most (largest gain when kept float)."""
        return max(self.rows, key=lambda r: r.cost)

    def first_costs_most(self) -> bool:
        """Whether binarizing the first binary layer costs more than binarizing any later one."""
        return len(self.rows) > 1 and all(self.rows[0].cost > r.cost for r in self.rows[1:])

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "seeds": self.seeds, "epochs": self.epochs, "baseline": self.baseline.to_dict(),
                "rows": [r.to_dict() for r in self.rows]}

    def __str__(self) -> str:
        lines = [f"float layer ({self.part})  d  test accuracy (mean ± sd over {len(self.seeds)} seeds)  cost"]
        for r in [self.baseline, *self.rows]:
            cost = "" if r is self.baseline else f"  {100 * r.cost:+.2f} points"
            lines.append(f"{r.layer}  {r.d or '-'}  {100 * r.mean:.2f} ± {100 * r.sd:.2f} %{cost}")
        return "\n".join(lines)


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds must be a non-empty sequence of non-negative integers, got {seeds!r}")
    return seeds


def float_layer_ablation(
    build: Callable[[], nn.Module], data: Dataset, *, seeds: Sequence[int] = (0, 1, 2), epochs: int = 10,
    lr: float = 3e-3, batch_size: int = 64, part: str = "both", layers: Sequence[str] | None = None,
) -> AblationResult:
    """Train ``build()`` all binary, then with each binary layer float in turn; compare test accuracies.

    ``build`` returns a fresh, untrained model (called once per configuration and seed,
    after seeding, so every configuration starts from the same initial weights); each is
    trained by :func:`onebit.fit` (Adam, cosine schedule, ``epochs``, ``lr``, ``batch_size``,
    the seed) and evaluated on ``data``'s test split. ``layers`` restricts the ablation to
    some binary layers (qualified names; default: all, see
    :func:`~onebit.analysis.geometry.binary_layers`). ``cost`` of a row = its mean accuracy
    minus the all-binary mean.
    """
    from onebit.train import fit, set_seed

    if part not in PARTS:
        raise unknown_choice("part", part, PARTS)
    seeds = _check_seeds(seeds)
    if not isinstance(data, Dataset):
        raise ConfigError(f"data must be an onebit Dataset (onebit.load_dataset), got {type(data).__name__}")
    if not callable(build):
        raise ConfigError("build must be a function returning a fresh model")
    probe = build()
    names = [name for name, _ in binary_layers(probe)]
    dims = {name: int(layer.weight[0].numel()) for name, layer in binary_layers(probe)}
    if layers is not None:
        unknown = [n for n in layers if n not in dims]
        if unknown:
            raise unknown_choice("binary layer", unknown[0], names)
        names = [n for n in names if n in set(layers)]

    def train(float_layer: str | None) -> list[float]:
        accs = []
        for seed in seeds:
            set_seed(seed)
            model = build()
            if float_layer is not None:
                make_float(model.get_submodule(float_layer), part)
            result = fit(model, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
            accs.append(float(result.test_accuracy))
            log.info("ablation (%s): float layer %s, seed %d: test accuracy %.2f%%", part, float_layer or "none",
                     seed, 100 * accs[-1])
        return accs

    baseline = AblationRow(BASELINE, None, None, train(None), 0.0)
    rows = []
    all_names = [name for name, _ in binary_layers(probe)]
    for name in names:
        row = AblationRow(name, all_names.index(name), dims[name], train(name))
        row.cost = row.mean - baseline.mean
        rows.append(row)
    return AblationResult(part, seeds, epochs, baseline, rows)


def plot_ablation(results: Sequence[AblationResult], path: str | os.PathLike, *, title: str = "") -> Path:
    """Bars: test accuracy (mean ± sd) of each configuration, one group per result (e.g. per part)."""
    from onebit.analysis.geometry_plots import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * (1 + max(len(r.rows) for r in results))), 4), dpi=100)
    width = 0.8 / len(results)
    for k, res in enumerate(results):
        rows = [res.baseline, *res.rows]
        xs = [i + (k - (len(results) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, [100 * r.mean for r in rows], width, yerr=[100 * r.sd for r in rows], capsize=3,
               label=f"float part: {res.part}")
    labels = ["all binary"] + [f"{r.layer}\n(d={r.d})" for r in results[0].rows]
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("test accuracy (%)")
    low = min(100 * min(r.accuracies) for res in results for r in [res.baseline, *res.rows])
    ax.set_ylim(max(0.0, low - 5), None)
    ax.set_title(title or "One layer kept float at a time")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
