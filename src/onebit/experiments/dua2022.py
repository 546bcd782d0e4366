"""Dua 2022, "HyBNN and FedHyBNN: (Federated) Hybrid Binary Neural Networks" (arXiv:2205.09839): HyBNN.

A full-precision autoencoder with an m-bit binary latent space, trained without labels and
frozen, feeds a task BNN; the paper's claim is that this beats a BNN on binarized input by a
wide margin. Reproduced with :mod:`onebit.hybrid`, per seed and data set:

- **HyBNN**: :class:`~onebit.hybrid.BinaryLatentVAE` (MLP encoder 512-256 → m = 64 logits, mirror
  decoder) trained on the training rows, in two versions: straight-through sign (``"ste"``) and
  Gumbel-sigmoid relaxation with a KL term to Bernoulli(½) (``"gumbel"``, β = 1, τ 1 → 0.3);
  then the task BNN (:func:`~onebit.hybrid.latent_bnn`: 2 binary hidden layers of 512, every
  weight and activation ±1) trained on the codes with :func:`onebit.fit`.
- **Baselines, same BNN budget** (the same 2 × 512 binary hidden layers): the BNN on
  ``sign(x − μ)`` (the sign of the standardized input) and on ``sign(x − t)`` with one pixel
  threshold t (the midpoint of the training range: 0.5 for MNIST's [0, 1] pixels).
- **Bits curve**: m ∈ {16, 32, 64, 128, 256} (STE).
- **Engine**: the STE HyBNN (m = 64) exported to one ``.onebit`` (float encoder + binary head) and
  run by onebit's engine; its predictions are compared with PyTorch's.

Data: MNIST-1D (4,000 / 1,000, generated locally) and the real MNIST test set of
``../shared/data/mnist-t10k`` split in file order, rows 0–7,999 for training and 8,000–9,999 for
testing (``--split 8000:2000``). "Beats by more than 2 seed-sd" is tested as
``mean(HyBNN) − mean(baseline) > 2·max(sd(HyBNN), sd(baseline))`` (sample sd over seeds).

``--quick``: one seed, MNIST-1D and 1,500 MNIST rows, 2-epoch autoencoders, m ∈ {16, 32}: a
smoke run, not a result.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table
from onebit.experiments.shared import shared_data

log = logging.getLogger(__name__)

PAPER = ("Dua 2022, HyBNN and FedHyBNN: (Federated) Hybrid Binary Neural Networks (arXiv:2205.09839)")
METHODS = {"hybnn_ste": "HyBNN, STE latent", "hybnn_gumbel": "HyBNN, Gumbel-sigmoid latent + KL",
           "bnn_sign": "BNN on sign(x − μ)", "bnn_threshold": "BNN on sign(x − t)"}


@dataclass(frozen=True)
class Setting:
    """One data set's training budget."""

    name: str
    vae_epochs: int
    head_epochs: int
    bits: tuple[int, ...]
    main_bits: int = 64
    vae_hidden: tuple[int, ...] = (512, 256)
    head_hidden: int = 512
    head_depth: int = 2
    rows: tuple[int, int] | None = None  # (train, test) rows kept (--quick)


FULL = [Setting("MNIST-1D", 30, 30, (16, 32, 64, 128, 256)), Setting("MNIST", 15, 30, (16, 32, 64, 128, 256))]
QUICK = [Setting("MNIST-1D", 2, 2, (16, 32), 32, (64,), 64, 1, (1000, 500)),
         Setting("MNIST", 2, 2, (16, 32), 32, (64,), 64, 1, (1000, 500))]


def _data(setting: Setting) -> Any:
    from onebit.data import load_dataset

    if setting.name == "MNIST-1D":
        data = load_dataset("mnist1d")
    else:
        folder = shared_data("mnist-t10k")
        if folder is None:
            return None
        data = load_dataset(folder, split=(8000, 2000))
    if setting.rows is not None:
        train, test = setting.rows
        data = dataclasses.replace(data, x_train=data.x_train[:train], y_train=data.y_train[:train],
                                   x_test=data.x_test[:test], y_test=data.y_test[:test])
    return data


def _hybnn(setting: Setting, data: Any, bits: int, estimator: str, seed: int) -> tuple[Any, float]:
    from onebit.hybrid import BinaryLatentVAE, fit_hybnn, fit_vae
    from onebit.train import set_seed

    set_seed(seed)
    vae = BinaryLatentVAE(data.in_shape, bits, hidden=setting.vae_hidden, estimator=estimator)
    fit_vae(vae, data.x_train, epochs=setting.vae_epochs, seed=seed)
    result = fit_hybnn(vae, data, hidden=setting.head_hidden, depth=setting.head_depth, epochs=setting.head_epochs,
                       seed=seed)
    return result.model, result.test_accuracy


def _baseline(setting: Setting, data: Any, mode: str, seed: int) -> float:
    from onebit.hybrid import input_binarized_bnn
    from onebit.train import fit, set_seed

    set_seed(seed)
    model = input_binarized_bnn(data, mode, hidden=setting.head_hidden, depth=setting.head_depth)
    return float(fit(model, data, epochs=setting.head_epochs, lr=3e-3, seed=seed).test_accuracy)


def _engine_check(model: Any, data: Any, path: Path) -> dict[str, Any]:
    import torch

    from onebit.hybrid import export_hybnn
    from onebit.runtime import load

    report = export_hybnn(model, path, data.x_test[:64])
    engine = load(path)(data.x_test)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(data.x_test)).numpy()
    return {"same_predictions": bool((engine.argmax(1) == ref.argmax(1)).all()),
            "engine_accuracy": float((engine.argmax(1) == data.y_test).mean()),
            "torch_accuracy": float((ref.argmax(1) == data.y_test).mean()), "file_bytes": report.file_bytes}


def _run_setting(setting: Setting, data: Any, seeds: int, out: Path) -> dict[str, Any]:
    from onebit.hybrid import latent_bnn

    r: dict[str, Any] = {k: [] for k in METHODS}
    r["curve"] = {m: [] for m in setting.bits}
    r["engine"] = []
    for seed in range(seeds):
        for m in setting.bits:
            model, acc = _hybnn(setting, data, m, "ste", seed)
            r["curve"][m].append(acc)
            if m == setting.main_bits:
                r["hybnn_ste"].append(acc)
                r["engine"].append(_engine_check(model, data, out / f"{setting.name}-seed{seed}-hybnn.onebit"))
        r["hybnn_gumbel"].append(_hybnn(setting, data, setting.main_bits, "gumbel", seed)[1])
        r["bnn_sign"].append(_baseline(setting, data, "sign", seed))
        r["bnn_threshold"].append(_baseline(setting, data, "threshold", seed))
        log.info("%s seed %d: %s", setting.name, seed, {k: round(r[k][-1], 4) for k in METHODS})
    features = int(np.prod(data.in_shape))
    r["budget"] = {"head_binary_weights": sum(p.numel() for n, p in latent_bnn(
        setting.main_bits, data.num_classes, hidden=setting.head_hidden, depth=setting.head_depth).named_parameters()
        if n.endswith("weight") and p.dim() == 2),
        "baseline_binary_weights": sum(p.numel() for n, p in latent_bnn(
            features, data.num_classes, hidden=setting.head_hidden, depth=setting.head_depth).named_parameters()
            if n.endswith("weight") and p.dim() == 2)}
    return r


def _plot_curve(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), dpi=100, squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items()):
        bits = sorted(r["curve"])
        means = [100 * np.mean(r["curve"][m]) for m in bits]
        sds = [100 * (np.std(r["curve"][m], ddof=1) if len(r["curve"][m]) > 1 else 0.0) for m in bits]
        ax.errorbar(bits, means, yerr=sds, marker="o", capsize=3, label="HyBNN (STE latent)")
        for key, style in (("bnn_sign", "--"), ("bnn_threshold", ":")):
            ax.axhline(100 * np.mean(r[key]), linestyle=style, color="gray", label=METHODS[key])
        ax.set(xscale="log", xlabel="latent bits m", ylabel="test accuracy (%)", title=name)
        ax.set_xticks(bits, [str(b) for b in bits])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@register_experiment("dua2022_hybnn", paper=PAPER, title="HyBNN: a binary-latent autoencoder in front of a BNN",
                     seeds=3, quick_seeds=1)
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """HyBNN against the same BNN on binarized input, STE against Gumbel latents, bits against accuracy."""
    from onebit.train import torch_threads

    settings = QUICK if quick else FULL
    results: dict[str, dict[str, Any]] = {}
    notes = []
    with torch_threads(1):  # small nets: one thread repeats bit for bit and is faster on a busy machine
        for setting in settings:
            data = _data(setting)
            if data is None:
                notes.append(f"{setting.name}: ../shared/data/mnist-t10k not found (set ONEBIT_SHARED_DATA); left out")
                continue
            results[setting.name] = _run_setting(setting, data, seeds, out_dir)

    claims, rows, curve_rows, budget_rows = [], [], [], []
    for s in settings:
        if s.name not in results:
            continue
        r = results[s.name]
        stats = {k: mean_std(r[k]) for k in METHODS}
        for k, label in METHODS.items():
            m, sd = stats[k]
            rows.append([s.name, label, 100 * m, 100 * sd, [round(100 * v, 2) for v in r[k]]])
        for other in ("bnn_sign", "bnn_threshold"):
            margin = stats["hybnn_ste"][0] - stats[other][0]
            needed = 2 * max(stats["hybnn_ste"][1], stats[other][1])
            claims.append(Claim(
                f"{s.name}: HyBNN (m = {s.main_bits}) beats the {METHODS[other]} by more than 2 seed-sd",
                f"{100 * margin:+.2f} points (needed > {100 * needed:.2f})", None, "",
                None if quick else bool(margin > needed),
                f"HyBNN {100 * stats['hybnn_ste'][0]:.2f} ± {100 * stats['hybnn_ste'][1]:.2f} %, baseline "
                f"{100 * stats[other][0]:.2f} ± {100 * stats[other][1]:.2f} %"))
        diff = stats["hybnn_gumbel"][0] - stats["hybnn_ste"][0]
        claims.append(Claim(f"{s.name}: Gumbel-sigmoid (variational) latent − STE latent, m = {s.main_bits}",
                            round(100 * diff, 2), None, "points", None,
                            f"Gumbel {100 * stats['hybnn_gumbel'][0]:.2f} ± {100 * stats['hybnn_gumbel'][1]:.2f} %, "
                            f"STE {100 * stats['hybnn_ste'][0]:.2f} ± {100 * stats['hybnn_ste'][1]:.2f} %"))
        same = [e["same_predictions"] for e in r["engine"]]
        claims.append(Claim(f"{s.name}: the HyBNN exported to one .onebit predicts as PyTorch does on every test row",
                            f"{sum(same)} of {len(same)} seeds", None, "", all(same),
                            f"engine accuracy {[round(100 * e['engine_accuracy'], 2) for e in r['engine']]} %, "
                            f"file {r['engine'][0]['file_bytes']:,} bytes"))
        for m in sorted(r["curve"]):
            mean, sd = mean_std(r["curve"][m])
            curve_rows.append([s.name, m, 100 * mean, 100 * sd, [round(100 * v, 2) for v in r["curve"][m]]])
        budget_rows.append([s.name, r["budget"]["head_binary_weights"], r["budget"]["baseline_binary_weights"]])
    plots = []
    if results:
        _plot_curve(results, out_dir / "bits_curve.png")
        plots.append("bits_curve.png")
    return {
        "claims": claims,
        "tables": {
            "test accuracy": table(["data", "method", "mean %", "sd", "per seed %"], rows,
                                   f"{seeds} seed(s); HyBNN m = {settings[0].main_bits} latent bits"),
            "latent bits against accuracy": table(["data", "bits m", "mean %", "sd", "per seed %"], curve_rows,
                                                  "HyBNN with the STE latent"),
            "BNN budget": table(["data", "HyBNN head binary weights", "baseline BNN binary weights"], budget_rows,
                                "the same hidden widths and depth; the input layer's width differs"),
        },
        "plots": plots,
        "settings": {"settings": [dataclasses.asdict(s) for s in settings], "head_lr": 3e-3, "head_batch": 64,
                     "vae_lr": 1e-3, "vae_batch": 128, "gumbel": {"beta": 1.0, "temperature": [1.0, 0.3]}},
        "notes": notes,
    }
