"""Dua 2022, "HyBNN and FedHyBNN" (arXiv:2205.09839): FedHyBNN, the HyBNN's BNN trained federated on Flower.

The paper's claim: the federated HyBNN reaches the accuracy of its non-federated equivalent
with very little communication. Reproduced with :mod:`onebit.federated` on MNIST-1D, per seed:

- one binary-latent autoencoder (STE latent, m = 64, trained on all 4,000 training rows without
  labels, frozen; shipped to the clients once) and the head of :func:`~onebit.hybrid.latent_bnn`
  (2 × 512 binary hidden units);
- **centralized**: the head trained on all training rows for 20 × 2 = 40 epochs with the clients'
  own training function (:func:`~onebit.federated.centralized_reference`);
- **federated**, 5 clients, 20 rounds × 2 local epochs (Adam, lr 3e-3, batch 32), the Flower
  ServerApp/ClientApp of :mod:`onebit.federated.apps`: IID with float32 uploads (FedAvg on latent
  weights and BatchNorm state), IID with 1-bit uploads (signs of the update + one scale per tensor,
  error feedback; server rule ``mean`` and, for its cost, ``vote``), and non-IID (Dirichlet α = 0.5
  label skew) with float32, 1-bit and FedBN.

These runs use the in-process engine (``--simulate``: the same apps, no sockets); one run (IID,
float32, seed 0) is repeated on Flower's deployment engine (a SuperLink and 5 SuperNodes on
127.0.0.1, separate processes) and compared with its in-process twin. Bytes are Flower's
serialized message objects per direction (upload = clients → server), summed over clients.

``--quick``: one seed, 2 clients, 2 rounds of 1 epoch, 1,000 training rows, 2-epoch autoencoder,
three of the runs, in process only: a smoke run, not a result.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table

log = logging.getLogger(__name__)

PAPER = "Dua 2022, HyBNN and FedHyBNN: (Federated) Hybrid Binary Neural Networks (arXiv:2205.09839)"

FULL = {"base": {"clients": 5, "rounds": 20, "local_epochs": 2, "latent_bits": 64, "estimator": "ste",
                 "vae_epochs": 30, "head_hidden": 512, "head_depth": 2, "batch_size": 32, "lr": 3e-3},
        "rows": None, "deployment": True, "runs": None}
QUICK = {"base": {"clients": 2, "rounds": 2, "local_epochs": 1, "latent_bits": 16, "estimator": "ste",
                  "vae_epochs": 2, "head_hidden": 64, "head_depth": 1, "batch_size": 32, "lr": 3e-3},
         "rows": 1000, "deployment": False, "runs": ["iid_float32", "iid_sign_mean", "dir_fedbn"]}
RUNS = {  # name → (settings over the base, label)
    "iid_float32": ({"partition": "iid", "upload": "float32"}, "IID, float32 uploads (FedAvg)"),
    "iid_sign_mean": ({"partition": "iid", "upload": "sign", "rule": "mean"}, "IID, 1-bit uploads, mean of ±α"),
    "iid_sign_vote": ({"partition": "iid", "upload": "sign", "rule": "vote"}, "IID, 1-bit uploads, majority vote"),
    "dir_float32": ({"partition": "dirichlet", "alpha": 0.5, "upload": "float32"}, "Dirichlet α=0.5, float32"),
    "dir_sign_mean": ({"partition": "dirichlet", "alpha": 0.5, "upload": "sign", "rule": "mean"},
                      "Dirichlet α=0.5, 1-bit uploads, mean"),
    "dir_fedbn": ({"partition": "dirichlet", "alpha": 0.5, "upload": "float32", "fedbn": True},
                  "Dirichlet α=0.5, float32, FedBN"),
}


def _data(rows: int | None) -> Any:
    from onebit.data import load_dataset

    data = load_dataset("mnist1d")
    if rows is not None:
        data = dataclasses.replace(data, x_train=data.x_train[:rows], y_train=data.y_train[:rows])
    return data


def _summary(result: Any) -> dict[str, Any]:
    rounds = result.rounds
    clients_per_round = [max(1, len(r["accepted"]) + len(r["rejected"])) for r in rounds]
    return {"accuracy": result.accuracy, "engine_accuracy": result.engine_accuracy,
            "upload_bytes": result.upload_bytes, "download_bytes": result.download_bytes,
            "upload_payload_bytes": result.upload_payload_bytes,
            "upload_per_client_round": float(np.mean([r["upload_bytes"] / c
                                                      for r, c in zip(rounds, clients_per_round, strict=True)])),
            "curve_accuracy": [r["accuracy"] for r in rounds],
            "curve_upload": np.cumsum([r["upload_bytes"] for r in rounds]).tolist(),
            "curve_total": result.cumulative_bytes(), "seconds": result.seconds, "encoder_bytes": result.encoder_bytes}


def _run_seed(settings: dict[str, Any], seed: int, out: Path, deployment: bool) -> dict[str, Any]:
    from onebit.federated import FederatedConfig, centralized_reference, run_federated, train_encoder

    data = _data(settings["rows"])
    base = FederatedConfig(**settings["base"], seed=seed)
    vae = train_encoder(base, data)
    r: dict[str, Any] = {"centralized": centralized_reference(base, data, vae)["accuracy"]}
    for name, (extra, _) in RUNS.items():
        if settings["runs"] is not None and name not in settings["runs"]:
            continue
        config = dataclasses.replace(base, **extra).validate()
        r[name] = _summary(run_federated(config, out / f"seed{seed}-{name}", simulate=True, data=data, vae=vae))
        log.info("seed %d %s: accuracy %.4f, upload %s bytes", seed, name, r[name]["accuracy"],
                 f"{r[name]['upload_bytes']:,}")
    if deployment:
        config = dataclasses.replace(base, **RUNS["iid_float32"][0]).validate()
        r["deployment"] = _summary(run_federated(config, out / f"seed{seed}-iid_float32-deployment", simulate=False,
                                                 data=data, vae=vae))
    return r


def _plot(per_seed: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for ax, key, label in ((axes[0], "curve_upload", "cumulative upload bytes (clients → server)"),
                           (axes[1], "curve_total", "cumulative bytes, upload + download")):
        for name, style in (("iid_float32", "C0"), ("iid_sign_mean", "C1"), ("iid_sign_vote", "C2")):
            if name not in per_seed[0]:
                continue
            x = np.mean([s[name][key] for s in per_seed], axis=0)
            y = 100 * np.mean([s[name]["curve_accuracy"] for s in per_seed], axis=0)
            ax.plot(x, y, marker=".", color=style, label=RUNS[name][1])
        central = 100 * np.mean([s["centralized"] for s in per_seed])
        ax.axhline(central, color="gray", linestyle="--", label="centralized HyBNN")
        ax.set(xscale="log", xlabel=label, ylabel="test accuracy (%)", title="FedHyBNN, MNIST-1D, IID")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@register_experiment("dua2022_fedhybnn", paper=PAPER, title="FedHyBNN: the HyBNN's BNN trained federated on Flower",
                     seeds=3, quick_seeds=1)
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """Federated against centralized HyBNN, float32 against 1-bit uploads, IID against Dirichlet."""
    from onebit.train import torch_threads

    from onebit.federated import require_flower

    require_flower()
    settings = QUICK if quick else FULL
    with torch_threads(1):
        per_seed = [_run_seed(settings, seed, out_dir / "runs", settings["deployment"] and seed == 0)
                    for seed in range(seeds)]

    def stat(name: str, key: str = "accuracy") -> tuple[float, float]:
        return mean_std([s[name][key] if name != "centralized" else s[name] for s in per_seed])

    rows = []
    central = stat("centralized")
    rows.append(["centralized (all rows, 40 epochs)", 100 * central[0], 100 * central[1], "–", "–",
                 [round(100 * s["centralized"], 2) for s in per_seed]])
    for name, (_, label) in RUNS.items():
        if name not in per_seed[0]:
            continue
        m, sd = stat(name)
        rows.append([label, 100 * m, 100 * sd, round(stat(name, "upload_bytes")[0]),
                     round(stat(name, "upload_per_client_round")[0]), [round(100 * s[name]["accuracy"], 2)
                                                                       for s in per_seed]])
    fed = stat("iid_float32")
    gap = central[0] - fed[0]
    ratio = stat("iid_float32", "upload_bytes")[0] / stat("iid_sign_mean", "upload_bytes")[0]
    payload_ratio = (stat("iid_float32", "upload_payload_bytes")[0] /
                     stat("iid_sign_mean", "upload_payload_bytes")[0])
    sign = stat("iid_sign_mean")
    vote = stat("iid_sign_vote") if "iid_sign_vote" in per_seed[0] else (float("nan"), float("nan"))
    claims = [
        Claim(f"IID, {settings['base']['clients']} clients × {settings['base']['rounds']} rounds: federated HyBNN "
              "within 1 point of centralized HyBNN", f"{100 * gap:+.2f} points (centralized − federated)", None, "",
              None if quick else bool(gap <= 0.01),
              f"federated {100 * fed[0]:.2f} ± {100 * fed[1]:.2f} %, centralized {100 * central[0]:.2f} ± "
              f"{100 * central[1]:.2f} %"),
        Claim("1-bit uploads cut upload bytes ≥ 30× against float32 (whole Flower messages)", round(ratio, 1), None,
              "×", None if quick else bool(ratio >= 30),
              f"tensors alone: {payload_ratio:.1f}×; accuracy with 1-bit uploads {100 * sign[0]:.2f} ± "
              f"{100 * sign[1]:.2f} % against float32 {100 * fed[0]:.2f} ± {100 * fed[1]:.2f} %"),
        Claim("accuracy cost of 1-bit uploads (IID, mean rule): float32 − 1-bit", round(100 * (fed[0] - sign[0]), 2),
              None, "points", None, f"majority vote instead: {100 * vote[0]:.2f} ± {100 * vote[1]:.2f} %"),
    ]
    for name in ("dir_float32", "dir_sign_mean", "dir_fedbn"):
        if name not in per_seed[0]:
            continue
        m, sd = stat(name)
        claims.append(Claim(f"non-IID: {RUNS[name][1]}", f"{100 * m:.2f} ± {100 * sd:.2f}", None, "%", None,
                            f"IID float32: {100 * fed[0]:.2f} %"))
    notes = [f"the encoder ({per_seed[0]['iid_float32']['encoder_bytes']:,} bytes) is shipped to each client once, "
             "outside the per-round traffic"]
    if "deployment" in per_seed[0]:
        dep, twin = per_seed[0]["deployment"], per_seed[0]["iid_float32"]
        same = dep["curve_accuracy"] == twin["curve_accuracy"]
        claims.append(Claim("the deployment engine (SuperLink + SuperNodes, separate processes) gives the in-process "
                            "run's accuracies, round by round (IID float32, seed 0)",
                            f"{100 * dep['accuracy']:.2f} % vs {100 * twin['accuracy']:.2f} %", None, "", same,
                            f"deployment {dep['seconds']:.0f} s, in process {twin['seconds']:.0f} s; upload "
                            f"{dep['upload_bytes']:,} vs {twin['upload_bytes']:,} bytes"))
    _plot(per_seed, out_dir / "accuracy_vs_bytes.png")
    per_round = table(["run", "round", "accuracy %", "cumulative upload bytes", "cumulative total bytes"],
                      [[RUNS[n][1], i + 1,
                        round(100 * float(np.mean([s[n]["curve_accuracy"][i] for s in per_seed])), 2),
                        round(float(np.mean([s[n]["curve_upload"][i] for s in per_seed]))),
                        round(float(np.mean([s[n]["curve_total"][i] for s in per_seed])))]
                       for n in ("iid_float32", "iid_sign_mean") for i in range(settings["base"]["rounds"])],
                      "seed means")
    return {
        "claims": claims,
        "tables": {"final test accuracy": table(["run", "mean %", "sd", "upload bytes (total)",
                                                 "upload bytes per client and round", "per seed %"], rows,
                                                f"{seeds} seed(s); MNIST-1D, 1,000 test rows"),
                   "accuracy against bytes": per_round},
        "plots": ["accuracy_vs_bytes.png"],
        "settings": {"base": settings["base"], "runs": {k: v[0] for k, v in RUNS.items()},
                     "rows": settings["rows"], "deployment_run": settings["deployment"]},
        "notes": notes,
    }
