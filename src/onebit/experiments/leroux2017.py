"""Leroux et al. 2017, "Transfer Learning with Binary Neural Networks" (arXiv:1711.10761).

A BNN trained once on a source task is kept fixed; only a small head is trained per target
task, on the frozen network's ±1 features. Reproduced with onebit's own transfer tools
(:mod:`onebit.transfer`), for two (source, target) pairs, per seed:

- **MNIST-1D**: source = classes 0–4 (the training part's rows of those classes),
  ``binary_cnn1d`` (float stem, three binary convs, float head) cut after its last binary
  block (``"15"``: 320 features); target = classes 5–9 with 10 labelled training examples
  per class, tested on every class-5–9 row of the test part.
- **real MNIST** (``../shared/data/mnist-t10k``, the 10,000 test images only): rows
  0–7,999 are the training pool, rows 8,000–9,999 the test rows (file order, as
  ``--split 8000:2000``); source = digits 0–4 of the pool, LFC (784-1024³, binary) cut
  after its third hidden layer (``"12"``: 1,024 features); target = digits 5–9, 10
  examples per class from the pool, tested on the test rows' digits 5–9.

Compared on the target task: **(a)** the frozen binary backbone + a logistic-regression
head, its features computed by onebit's engine from the exported extractor (and checked
bit for bit against PyTorch's); **(a_cv)** the same with the cut chosen among every
block's output by 5-fold cross-validation of the head on the 50 labelled examples (no
test data involved, :func:`onebit.transfer.select_cut`); **(b)** the same architecture in float, trained
identically, its float activations at the same cut + the same head; **(c)** the
architecture trained from scratch on the 50 target examples; **(d)** a randomly
initialised frozen binary backbone + head. A table gives the head's accuracy at every
candidate cut, for the trained and the random backbone. "Beats by more than 2 seed-sd" is tested as
``mean(a) − mean(x) > 2·max(sd(a), sd(x))`` with sample standard deviations over seeds.

``--quick``: one seed, one source epoch, two candidate cuts, TFC instead of LFC: a smoke run, not a result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table
from onebit.experiments.shared import shared_data

log = logging.getLogger(__name__)

PAPER = ("Leroux, Bohez, Verbelen, Vankeirsbilck, Simoens and Dhoedt 2017, Transfer Learning with Binary "
         "Neural Networks (arXiv:1711.10761)")
SOURCE, TARGET, SHOTS = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9], 10
FLOAT = {"input_quantizer": None, "weight_quantizer": None}  # the float twin of a zoo model
METHODS = {"a": "frozen binary backbone + head", "a_cv": "the same, cut chosen by cross-validation",
           "b": "float backbone + head", "c": "trained from scratch on the target examples",
           "d": "random frozen binary backbone + head"}


@dataclass(frozen=True)
class Pair:
    """One source → target transfer setting."""

    name: str
    model: str
    cut: str  # the cut: after the last binary block / hidden layer
    candidates: tuple[str, ...]  # every block's output: the ablation, and what cross-validation chooses from
    source_epochs: int
    lr: float
    scratch_epochs: int


_CNN1D_CUTS, _FC_CUTS = ("2", "6", "10", "15"), ("4", "8", "12")
FULL = [Pair("MNIST-1D", "binary_cnn1d", "15", _CNN1D_CUTS, 40, 3e-3, 100),
        Pair("MNIST", "lfc", "12", _FC_CUTS, 10, 1e-3, 100)]
QUICK = [Pair("MNIST-1D", "binary_cnn1d", "15", ("10", "15"), 1, 3e-3, 3),
         Pair("MNIST", "tfc", "12", ("8", "12"), 1, 1e-3, 3)]


def _data(pair: Pair) -> Any:
    from onebit.data import load_dataset

    if pair.name == "MNIST-1D":
        return load_dataset("mnist1d")
    folder = shared_data("mnist-t10k")
    return None if folder is None else load_dataset(folder, split=(8000, 2000))


def _run_seed(pair: Pair, data: Any, seed: int, out: Path) -> dict[str, Any]:
    """The four target accuracies of one seed, and whether the engine matched PyTorch exactly."""
    from onebit.models import create_model
    from onebit.train import fit, set_seed
    from onebit.transfer import FeatureExtractor, fit_head, head_accuracy, transfer

    source, target = data.subset_classes(SOURCE), data.subset_classes(TARGET)
    few = target.few_shot(SHOTS, seed=seed)
    shape = dict(num_classes=len(SOURCE), in_shape=data.in_shape)

    def trained(float_twin: bool) -> tuple[Any, float]:
        set_seed(seed)
        model = create_model(pair.model, **shape, **(FLOAT if float_twin else {}))
        result = fit(model, source, epochs=pair.source_epochs, lr=pair.lr, seed=seed)
        return model, float(result.test_accuracy)

    binary, source_binary = trained(False)
    info = {"pair": pair.name, "seed": seed, "source_classes": SOURCE, "target_classes": TARGET}
    a = transfer(binary, pair.cut, few, out / f"{pair.name}-seed{seed}", seed=seed, info=info)
    a_cv = transfer(binary, list(pair.candidates), few, out / f"{pair.name}-seed{seed}-cv", seed=seed, info=info)
    floating, source_float = trained(True)
    extractor = FeatureExtractor(floating, pair.cut, binarize=False)
    head = fit_head(extractor.features(few.x_train), few.y_train, classes=len(TARGET), seed=seed)
    b = head_accuracy(head, extractor.features(few.x_test), few.y_test)

    set_seed(seed)
    scratch = create_model(pair.model, num_classes=len(TARGET), in_shape=data.in_shape)
    # 50 examples leave nothing to hold out: the examples themselves pick the epoch (train accuracy, then loss).
    c = float(fit(scratch, few, val=(few.x_train, few.y_train), epochs=pair.scratch_epochs,
                  batch_size=min(16, len(few.y_train)), lr=pair.lr, seed=seed).test_accuracy)

    set_seed(seed)
    random_model = create_model(pair.model, **shape)

    def frozen(model: Any, cut: str) -> float:  # head accuracy on a frozen backbone's ±1 features at `cut`
        extractor = FeatureExtractor(model, cut)
        head = fit_head(extractor.features(few.x_train), few.y_train, classes=len(TARGET), seed=seed)
        return head_accuracy(head, extractor.features(few.x_test), few.y_test)

    d = frozen(random_model, pair.cut)
    by_cut = {cut: (frozen(binary, cut), frozen(random_model, cut)) for cut in pair.candidates}
    log.info("%s seed %d: (a) %.4f (a, cv %s) %.4f (b) %.4f (c) %.4f (d) %.4f", pair.name, seed, a.accuracy,
             a_cv.cut, a_cv.accuracy, b, c, d)
    return {"a": a.accuracy, "a_cv": a_cv.accuracy, "b": b, "c": c, "d": d, "cv_cut": a_cv.cut, "by_cut": by_cut,
            "identical": a.identical_features and a.identical_outputs and a_cv.identical_features
            and a_cv.identical_outputs, "source_binary": source_binary, "source_float": source_float,
            "features": a.features, "target_test": a.test_samples}


def _plot(rows: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 4), dpi=100, squeeze=False)
    for ax, (pair, per_method) in zip(axes[0], rows.items()):
        keys = list(METHODS)
        means = [100 * np.mean(per_method[k]) for k in keys]
        sds = [100 * (np.std(per_method[k], ddof=1) if len(per_method[k]) > 1 else 0.0) for k in keys]
        ax.bar(keys, means, yerr=sds, capsize=4, color=["C0", "C9", "C1", "C2", "C7"])
        ax.set(title=f"{pair}: target classes 5–9, {SHOTS} shots per class", ylabel="target test accuracy (%)",
               ylim=(0, 100))
        labels = [f"({k})\n" + METHODS[k].replace(" + ", "\n+ ") for k in keys]
        ax.set_xticks(range(len(keys)), labels, fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@register_experiment("leroux2017_transfer", paper=PAPER, title="Transfer learning with frozen binary features",
                     seeds=5, quick_seeds=1)
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """Frozen binary backbone + head against float features, from-scratch and random backbones."""
    from onebit.train import torch_threads

    pairs = QUICK if quick else FULL
    pair_of = {p.name: p for p in pairs}
    results: dict[str, dict[str, list[Any]]] = {}
    notes = []
    with torch_threads(1):  # small nets: one thread is faster on a busy machine and repeats bit for bit
        for pair in pairs:
            data = _data(pair)
            if data is None:
                notes.append(f"{pair.name}: ../shared/data/mnist-t10k not found (set ONEBIT_SHARED_DATA); left out")
                continue
            per_seed = [_run_seed(pair, data, seed, out_dir / "runs") for seed in range(seeds)]
            results[pair.name] = {k: [r[k] for r in per_seed] for k in per_seed[0]}

    claims, rows = [], []
    for name, r in results.items():
        stats = {k: mean_std(r[k]) for k in METHODS}
        for k, label in METHODS.items():
            m, sd = stats[k]
            rows.append([name, f"({k}) {label}", 100 * m, 100 * sd, [round(100 * v, 2) for v in r[k]]])
        for ours, other in (("a", "c"), ("a", "d"), ("a_cv", "c"), ("a_cv", "d")):
            margin = stats[ours][0] - stats[other][0]
            needed = 2 * max(stats[ours][1], stats[other][1])
            which = f"cut {pair_of[name].cut}" if ours == "a" else "cut chosen by 5-fold cross-validation"
            claims.append(Claim(
                f"{name}: frozen binary features ({which}) beat ({other}) {METHODS[other]} by more than 2 seed-sd",
                f"{100 * margin:+.2f} points (needed > {100 * needed:.2f})", None, "",
                None if quick else bool(margin > needed),
                f"({ours}) {100 * stats[ours][0]:.2f} ± {100 * stats[ours][1]:.2f} %, ({other}) "
                f"{100 * stats[other][0]:.2f} ± {100 * stats[other][1]:.2f} %"))
        price = stats["b"][0] - stats["a"][0]
        claims.append(Claim(f"{name}: price of binary features, (b) − (a)", round(100 * price, 2), None, "points",
                            None, f"float backbone {100 * stats['b'][0]:.2f} %, binary {100 * stats['a'][0]:.2f} %"))
        claims.append(Claim(f"{name}: the head's outputs from the engine's packed features equal PyTorch's exactly",
                            f"{sum(r['identical'])} of {len(r['identical'])} seeds", None, "",
                            all(r["identical"]), "features unpacked from the .onebit extractor's output bits"))
    plots = []
    if results:
        _plot({name: {k: r[k] for k in METHODS} for name, r in results.items()}, out_dir / "transfer.png")
        plots.append("transfer.png")
    pair_rows = []
    for name, r in results.items():
        for cut in pair_of[name].candidates:
            trained_acc = [row[cut][0] for row in r["by_cut"]]
            random_acc = [row[cut][1] for row in r["by_cut"]]
            pair_rows.append([name, cut, 100 * mean_std(trained_acc)[0], 100 * mean_std(trained_acc)[1],
                              100 * mean_std(random_acc)[0], 100 * mean_std(random_acc)[1],
                              sum(c == cut for c in r["cv_cut"])])
    source_rows = [[name, 100 * mean_std(r["source_binary"])[0], 100 * mean_std(r["source_float"])[0],
                    r["features"][0], r["target_test"][0]] for name, r in results.items()]
    return {
        "claims": claims,
        "tables": {
            "target accuracy": table(["pair", "method", "mean %", "sd", "per seed %"], rows,
                                     f"{SHOTS} labelled examples per target class; {seeds} seed(s)"),
            "features by cut": table(["pair", "cut", "trained backbone %", "sd", "random backbone %", "sd",
                                      "seeds whose cross-validation chose it"], pair_rows,
                                     "the same head on the ±1 features of each block's output (PyTorch's features)"),
            "source tasks": table(["pair", "binary source test %", "float source test %", "features",
                                   "target test rows"], source_rows, "the backbones on their own task (classes 0–4)"),
        },
        "plots": plots,
        "settings": {"pairs": [vars(p) for p in pairs], "shots": SHOTS, "head": "logistic regression, 300 Adam "
                     "steps full batch, lr 1e-2, weight decay 1e-3", "source_classes": SOURCE,
                     "target_classes": TARGET},
        "notes": notes,
    }
