"""What closes the accuracy gap of binary networks: the training choices added one at a time.

Starting from plain BinaryNet (Courbariaux et al. 2016: sign with the clipped
straight-through estimator, Hardtanh, squared hinge loss, Adam with the latent-weight
clip, a step-decayed learning rate), each step adds one choice of the field's recipes
to the previous step's, on two tasks:

- **MNIST-1D** (Greydanus 2020, generated locally): ``binary_cnn1d`` (float stem,
  three binary convs, float head), 4,000 training sequences (10 % validation), 1,000 test;
- **MNIST split** (``../shared/data/mnist-t10k``: rows 0–7,999 train, 8,000–9,999 test,
  as ``--split 8000:2000``): ``sfc`` (784-256-256-256-10, binary weights, binary
  activations in every hidden layer; the first layer sees the real pixels).

The steps, each a :class:`onebit.recipes.Recipe` (what ``onebit train --set`` changes):
cross-entropy instead of squared hinge → cosine decay instead of steps → augmentation
(MNIST-1D: time warp, shift, noise; MNIST: ±2-pixel shifts) → label smoothing 0.1 →
ApproxSign (Bi-Real Net's piecewise-quadratic gradient) → Bi-Real shortcuts (activation
none) → RSign and RPReLU (ReActNet) → magnitude-aware weights (a real scale per output
channel) → two steps (binary activations with real weights first) → distillation from
the float twin (replaces cross-entropy) → Real-to-Binary's attention transfer. The
float twin (both quantizers off) trains with the last single-step choices. Every run
is seeded (seed s: data order, validation split, initial weights, augmentation);
independent runs go to ``workers`` processes of one torch thread each.

``--quick``: one seed, 2 epochs, 1,000 MNIST-1D training rows, TFC on 2,000 MNIST rows:
a smoke run of every step, not a result.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table
from onebit.experiments.shared import shared_data

log = logging.getLogger(__name__)

PAPER = ("Courbariaux et al. 2016 (BinaryNet), Liu et al. 2018 (Bi-Real Net), Martinez et al. 2020 "
         "(Real-to-Binary), Liu et al. 2020 (ReActNet): their training recipes, ablated")

FLOAT = {"input_quantizer": None, "weight_quantizer": None}

# (label, what the step changes: recipe fields, and model arguments under "model_args")
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("BinaryNet", {}),
    ("+ cross-entropy", {"loss": "cross_entropy"}),
    ("+ cosine decay", {"schedule": "cosine"}),
    ("+ augmentation", {"augment": True}),
    ("+ label smoothing 0.1", {"label_smoothing": 0.1}),
    ("+ ApproxSign", {"model_args": {"input_quantizer": "approx_sign"}}),
    ("+ Bi-Real shortcuts", {"model_args": {"shortcut": True, "activation": "none"}}),
    ("+ RSign, RPReLU", {"model_args": {"input_quantizer": "rsign", "activation": "rprelu"}}),
    ("+ magnitude-aware weights", {"model_args": {"weight_quantizer": "magnitude_aware_sign"}}),
    ("+ two steps", {"two_step": "activations"}),
    ("+ distillation", {"distill": True, "label_smoothing": 0.0}),
    ("+ attention transfer", {"attention_weight": 1.0}),
]
FLOAT_TWIN = "float twin"


@dataclass(frozen=True)
class Task:
    """One data set and model of the ablation."""

    name: str
    data: str
    split: tuple[int, int] | None
    model: str
    epochs: int
    lr: float
    train_rows: int | None = None  # keep only the first rows of the training part (quick runs)


FULL = [Task("MNIST-1D", "mnist1d", None, "binary_cnn1d", 40, 3e-3),
        Task("MNIST split", "mnist-t10k", (8000, 2000), "sfc", 30, 1e-3)]
QUICK = [Task("MNIST-1D", "mnist1d", None, "binary_cnn1d", 2, 3e-3, train_rows=1000),
         Task("MNIST split", "mnist-t10k", (1600, 400), "tfc", 2, 1e-3)]


def recipes_for(task: Task) -> list[tuple[str, Any]]:
    """The cumulative recipes of :data:`STEPS` for ``task``, then the float twin's."""
    from onebit.recipes import Recipe

    recipe = Recipe(name="BinaryNet", epochs=task.epochs, batch_size=64, lr=task.lr, loss="squared_hinge",
                    schedule="step", threads=1,
                    model_args={"input_quantizer": "ste_sign", "weight_quantizer": "ste_sign", "activation": "hardtanh"})
    out = []
    single = recipe
    for label, change in STEPS:
        change = dict(change)
        model_args = {**recipe.model_args, **change.pop("model_args", {})}
        recipe = replace(recipe, name=label, model_args=model_args, **change)
        out.append((label, recipe))
        if recipe.two_step is None and not recipe.distill:
            single = recipe
    out.append((FLOAT_TWIN, replace(single, name=FLOAT_TWIN, model_args={**single.model_args, **FLOAT})))
    return out


def _load(task: Task, folder: str | None, seed: int) -> Any:
    from onebit.data import load_dataset

    data = load_dataset(folder or task.data, seed=seed, split=task.split)
    if task.train_rows is not None:
        import dataclasses

        data = dataclasses.replace(data, x_train=data.x_train[:task.train_rows], y_train=data.y_train[:task.train_rows])
    return data


def _job(task: Task, folder: str | None, label: str, recipe: Any, seed: int) -> dict[str, Any]:
    """Train one (task, step, seed); returns the test accuracy and the training time per epoch."""
    import torch

    from onebit.recipes import train_with_recipe

    torch.set_num_threads(1)
    data = _load(task, folder, seed)
    start = time.perf_counter()
    out = train_with_recipe(task.model, data, recipe, seed=seed, progress=False, verbose=False)
    seconds = time.perf_counter() - start
    log.info("%s | %s | seed %d: %.2f %% (%.0f s)", task.name, label, seed, 100 * out.result.test_accuracy, seconds)
    return {"task": task.name, "step": label, "seed": seed, "accuracy": float(out.result.test_accuracy),
            "seconds_per_epoch": seconds / recipe.epochs}


def _plot(rows: dict[str, dict[str, list[float]]], labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(7 * len(rows), 5), dpi=100, squeeze=False)
    for ax, (task, per_step) in zip(axes[0], rows.items()):
        steps = [s for s in labels if s != FLOAT_TWIN]
        means = np.array([100 * np.mean(per_step[s]) for s in steps])
        sds = np.array([100 * (np.std(per_step[s], ddof=1) if len(per_step[s]) > 1 else 0.0) for s in steps])
        x = np.arange(len(steps))
        ax.errorbar(x, means, yerr=sds, marker="o", capsize=3, label="binary network (mean ± sd over seeds)")
        twin = 100 * np.mean(per_step[FLOAT_TWIN])
        ax.axhline(twin, color="C1", linestyle="--", label=f"float twin ({twin:.2f} %)")
        ax.set_xticks(x, steps, rotation=45, ha="right", fontsize=8)
        ax.set(title=f"{task}: each step adds one choice to the previous", ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@register_experiment("bnn_training_ablation", paper=PAPER,
                     title="Training choices that close the accuracy gap, added one at a time", seeds=3,
                     quick_seeds=1)
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """BinaryNet → ReActNet/Real-to-Binary, one choice at a time, against the float twin."""
    tasks = QUICK if quick else FULL
    notes, jobs = [], []
    for task in tasks:
        folder = None
        if task.data == "mnist-t10k":
            found = shared_data("mnist-t10k")
            if found is None:
                notes.append(f"{task.name}: ../shared/data/mnist-t10k not found (set ONEBIT_SHARED_DATA); left out")
                continue
            folder = str(found)
        for label, recipe in recipes_for(task):
            jobs += [(task, folder, label, recipe, seed) for seed in range(seeds)]
    workers = 1 if quick else max(1, min(2, os.cpu_count() or 1))
    if workers == 1:
        done = [_job(*job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(_job, *zip(*jobs)))

    labels = [label for label, _ in STEPS] + [FLOAT_TWIN]
    results: dict[str, dict[str, list[float]]] = {}
    times: dict[str, dict[str, list[float]]] = {}
    for r in done:
        results.setdefault(r["task"], {}).setdefault(r["step"], []).append(r["accuracy"])
        times.setdefault(r["task"], {}).setdefault(r["step"], []).append(r["seconds_per_epoch"])
    rows, claims = [], []
    for task_name, per_step in results.items():
        previous = None
        twin = mean_std(per_step[FLOAT_TWIN])[0]
        for label in labels:
            m, sd = mean_std(per_step[label])
            gain = None if previous is None or label == FLOAT_TWIN else 100 * (m - previous)
            rows.append([task_name, label, 100 * m, 100 * sd, gain, 100 * (twin - m),
                         float(np.median(times[task_name][label])), [round(100 * v, 2) for v in per_step[label]]])
            if label != FLOAT_TWIN:
                previous = m
        first, best_label = per_step[labels[0]], max(labels[:-1], key=lambda s: np.mean(per_step[s]))
        best = mean_std(per_step[best_label])
        claims.append(Claim(
            f"{task_name}: the recipes close most of BinaryNet's gap to the float twin",
            f"best step '{best_label}': {100 * best[0]:.2f} ± {100 * best[1]:.2f} %", None, "",
            None if quick else bool(twin - best[0] < 0.5 * (twin - np.mean(first))),
            f"BinaryNet {100 * np.mean(first):.2f} %, float twin {100 * twin:.2f} %: gap "
            f"{100 * (twin - np.mean(first)):.2f} → {100 * (twin - best[0]):.2f} points"))
    plots = []
    if results:
        _plot(results, labels, out_dir / "ablation.png")
        plots.append("ablation.png")
    return {
        "claims": claims,
        "tables": {"ablation": table(
            ["task", "step", "test accuracy mean %", "sd", "gain over previous step (points)",
             "gap to float twin (points)", "seconds per epoch (median; teacher included)", "per seed %"], rows,
            f"{seeds} seed(s); each step keeps every earlier choice; one torch thread per run")},
        "plots": plots,
        "settings": {"tasks": [vars(t) for t in tasks], "steps": [[label, change] for label, change in STEPS],
                     "base": "ste_sign inputs and weights, Hardtanh, squared hinge, Adam (latent clip 1, no weight "
                             "decay), step decay (x0.1 at 50 % and 75 %), batch 64, best validation epoch kept",
                     "workers": workers},
        "notes": notes,
    }
