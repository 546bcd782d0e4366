"""``run_federated``: one FedHyBNN run from settings to a trained, exported model (what ``onebit federated`` runs).

1. :func:`prepare_federated`: load the data, deal the training rows to the clients (IID or
   Dirichlet), train the binary-latent autoencoder on the training rows (no labels; or take the
   one given), freeze it and write the run folder (:mod:`onebit.federated.workspace`).
2. Run the Flower apps on the deployment engine (:class:`~onebit.federated.deployment.LocalDeployment`:
   a SuperLink and N SuperNodes on 127.0.0.1) or in one process (``simulate=True``).
3. Read the ServerApp's history, export the final HyBNN (encoder + aggregated binary head) to
   ``hybnn.onebit`` and measure it on the test rows with onebit's engine, write ``results.json``.

:func:`centralized_reference` trains the same head on all training rows with the same local
training function, for ``rounds × local_epochs`` epochs: the non-federated equivalent.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onebit.atomic import atomic_write_text
from onebit.data import Dataset
from onebit.errors import ConfigError
from onebit.federated.config import FederatedConfig
from onebit.federated.dependency import require_flower
from onebit.federated.local import evaluate_head, train_head
from onebit.federated.partition import dirichlet_partition, iid_partition
from onebit.federated.workspace import Workspace, write_workspace
from onebit.hybrid.vae import BinaryLatentVAE, fit_vae

__all__ = ["FederatedResult", "centralized_reference", "load_federated_data", "prepare_federated", "run_federated",
           "train_encoder"]

log = logging.getLogger(__name__)


@dataclass
class FederatedResult:
    """What one run measured. Bytes are per direction, summed over clients; ``*_payload_*`` count the
    tensors' data only, the others whole serialized messages."""

    run_dir: str
    engine: str
    accuracy: float | None
    initial_accuracy: float | None
    rounds: list[dict[str, Any]]
    upload_bytes: int
    download_bytes: int
    upload_payload_bytes: int
    download_payload_bytes: int
    evaluation_bytes: int
    handshake_bytes: int
    encoder_bytes: int
    events: list[str]
    lost: list[int]
    rejected: dict[str, str]
    failed: dict[str, str]
    seconds: float
    engine_accuracy: float | None = None
    model_path: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def upload_bytes_per_round(self) -> list[int]:
        return [int(r["upload_bytes"]) for r in self.rounds]

    def cumulative_bytes(self) -> list[int]:
        """Upload + download bytes after each round."""
        return list(np.cumsum([int(r["upload_bytes"]) + int(r["download_bytes"]) for r in self.rounds]).tolist())


def load_federated_data(config: FederatedConfig) -> Dataset:
    """The data set the config names (``split`` re-splits a one-part folder)."""
    from onebit.data import check_dataset_spec, load_dataset

    check_dataset_spec(config.data)
    return load_dataset(config.data, split=config.split)


def _partition(config: FederatedConfig, data: Dataset) -> list[np.ndarray]:
    if config.partition == "iid":
        return iid_partition(data.y_train, config.clients, seed=config.seed)
    return dirichlet_partition(data.y_train, config.clients, config.alpha, seed=config.seed,
                               min_size=max(config.batch_size, 2))


def train_encoder(config: FederatedConfig, data: Dataset) -> BinaryLatentVAE:
    """The config's binary-latent autoencoder trained on ``data``'s training rows (seeded), frozen."""
    from onebit.train import set_seed

    set_seed(config.seed)
    vae = BinaryLatentVAE(data.in_shape, config.latent_bits, hidden=config.vae_hidden, estimator=config.estimator,
                          beta=config.beta)
    fit_vae(vae, data.x_train, epochs=config.vae_epochs, seed=config.seed)
    return vae.freeze()


def prepare_federated(config: FederatedConfig, run_dir: str | os.PathLike, *, data: Dataset | None = None,
                      vae: BinaryLatentVAE | None = None) -> Workspace:
    """Write the run folder of ``config`` (training the encoder unless ``vae`` is given); returns it opened."""
    config.validate()
    data = load_federated_data(config) if data is None else data
    if vae is None:
        vae = train_encoder(config, data)
    elif vae.latent_bits != config.latent_bits or vae.in_shape != tuple(data.in_shape):
        raise ConfigError(f"the given autoencoder has {vae.latent_bits} bits for inputs {vae.in_shape}; the config "
                          f"asks for {config.latent_bits} bits, the data has {tuple(data.in_shape)}")
    parts = _partition(config, data)
    write_workspace(run_dir, config, data, vae.freeze(), parts)
    return Workspace(run_dir)


def _check_out(run_dir: Path) -> None:
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ConfigError(f"folder {run_dir} already exists and is not empty; choose another --out")


def run_federated(config: FederatedConfig, run_dir: str | os.PathLike, *, simulate: bool = False,
                  port: int | None = None, data: Dataset | None = None, vae: BinaryLatentVAE | None = None,
                  export: bool = True, timeout: float = 6 * 3600.0) -> FederatedResult:
    """Run FedHyBNN for ``config`` into the empty folder ``run_dir``; see the module docstring."""
    require_flower()
    config.validate()
    run = Path(run_dir)
    _check_out(run)
    if port is not None and not simulate:
        from onebit.federated.deployment import check_port_free

        check_port_free(port)
    start = time.perf_counter()
    ws = prepare_federated(config, run, data=data, vae=vae)
    if simulate:
        from onebit.federated.simulation import simulate as run_in_process

        log.info("FedHyBNN in one process (simulation): %d clients, %d rounds", config.clients, config.rounds)
        run_in_process(ws.dir, config.clients)
        history = json.loads((ws.dir / "history.json").read_text())
        engine = "simulation"
    else:
        from onebit.federated.deployment import LocalDeployment

        with LocalDeployment(ws.dir, port=port, timeout=timeout) as deployment:
            history = deployment.run()
        engine = "deployment"
    result = _result(ws, history, engine, time.perf_counter() - start)
    if export:
        _export(ws, result)
    atomic_write_text(ws.dir / "results.json", json.dumps(result.to_dict(), indent=1, default=float) + "\n")
    return result


def _result(ws: Workspace, history: dict[str, Any], engine: str, seconds: float) -> FederatedResult:
    rounds = history["rounds"]
    total = lambda key: int(sum(int(r.get(key, 0)) for r in rounds))  # noqa: E731
    rejected = {f"round {r['round']} client {k}": v for r in rounds for k, v in r.get("rejected", {}).items()}
    failed = {f"round {r['round']} client {k}": v for r in rounds for k, v in r.get("failed", {}).items()}
    return FederatedResult(
        run_dir=str(ws.dir), engine=engine, accuracy=rounds[-1].get("accuracy") if rounds else None,
        initial_accuracy=history.get("initial_accuracy"), rounds=rounds, upload_bytes=total("upload_bytes"),
        download_bytes=total("download_bytes"), upload_payload_bytes=total("upload_payload_bytes"),
        download_payload_bytes=total("download_payload_bytes"), evaluation_bytes=total("evaluation_bytes"),
        handshake_bytes=int(history.get("handshake_bytes", 0)),
        encoder_bytes=(ws.dir / "encoder.safetensors").stat().st_size, events=list(history.get("events", [])),
        lost=sorted({k for r in rounds for k in r.get("lost", [])}), rejected=rejected, failed=failed,
        seconds=seconds, settings=ws.config.to_dict())


def _export(ws: Workspace, result: FederatedResult) -> None:
    """``hybnn.onebit``: the encoder and the aggregated head in one file, measured by the engine."""
    import torch
    from safetensors.torch import load_file

    from onebit.hybrid.model import HyBNN, export_hybnn
    from onebit.runtime import load

    if ws.config.fedbn:
        log.info("FedBN: every client keeps its own BatchNorm, so there is no single global model to export")
        return
    head = ws.new_head()
    head.load_state_dict(load_file(str(ws.dir / "global_head.safetensors")), strict=False)
    model = HyBNN.from_vae(ws.encoder(), head.eval()).eval()
    with np.load(ws.dir / "test.npz") as f:
        x, y = f["x"], f["y"]
    path = ws.dir / "hybnn.onebit"
    export_hybnn(model, path, x[:64])
    logits = load(path)(x)
    result.engine_accuracy = float((logits.argmax(1) == y).mean())
    result.model_path = str(path)
    with torch.no_grad():
        torch_accuracy = float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    log.info("hybnn.onebit: engine test accuracy %.4f (PyTorch %.4f)", result.engine_accuracy, torch_accuracy)


def centralized_reference(config: FederatedConfig, data: Dataset, vae: BinaryLatentVAE) -> dict[str, float]:
    """Test accuracy of the same head trained on all training rows for ``rounds × local_epochs`` epochs
    with the federated clients' training function (the non-federated equivalent)."""
    from onebit.hybrid.model import latent_bnn
    from onebit.train import set_seed

    config.validate()
    x, y = vae.codes(data.x_train), data.y_train
    set_seed(config.seed)
    head = latent_bnn(config.latent_bits, data.num_classes, hidden=config.head_hidden, depth=config.head_depth)
    train_head(head, x, y, epochs=config.rounds * config.local_epochs, batch_size=config.batch_size, lr=config.lr,
               seed=config.seed)
    return evaluate_head(head, vae.codes(data.x_test), data.y_test)
