"""The folder of one federated run: what the launcher writes and the Flower apps read.

::

    RUN_DIR/
      federated.json          the FederatedConfig and what follows from it (tensor names and shapes)
      encoder.safetensors     the frozen binary-latent autoencoder (trained before the run)
      clients/client_K.npz    client K's training rows (x, y): the only data client K reads
      test.npz                the test rows, read by the server (and by clients under FedBN)
      history.json            written by the ServerApp: per-round accuracy, bytes, lost and rejected clients
      global_head.safetensors the final aggregated head (written by the ServerApp)

The apps find the folder through the Flower run config key ``run-dir``. Each client derives
its ±1 codes from its own rows with the shipped encoder; the encoder file's size is reported
as a one-off download, apart from the per-round traffic.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from onebit.atomic import atomic_write, atomic_write_text
from onebit.data import Dataset
from onebit.errors import CheckpointError, MissingFileError
from onebit.federated.config import FederatedConfig
from onebit.federated.local import head_state
from onebit.hybrid.model import latent_bnn
from onebit.hybrid.vae import BinaryLatentVAE

__all__ = ["FORMAT", "RUN_DIR_KEY", "Workspace", "write_workspace"]

FORMAT = "onebit-fedhybnn"
RUN_DIR_KEY = "run-dir"


def _head_layout(model: nn.Module) -> dict[str, list[str]]:
    """Which of the head's tensors are binary latent weights, BatchNorm tensors, BatchNorm variances."""
    from onebit.optim import binary_parameters

    binary_ids = {id(p) for p in binary_parameters(model)}
    binary = [n for n, p in model.named_parameters() if id(p) in binary_ids]
    bn_modules = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    state = head_state(model)
    bn = [k for k in state if any(k.startswith(f"{m}.") for m in bn_modules)]
    return {"binary": binary, "batchnorm": bn, "variances": [k for k in bn if k.endswith("running_var")]}


def write_workspace(run_dir: str | os.PathLike, config: FederatedConfig, data: Dataset, vae: BinaryLatentVAE,
                    parts: Sequence[np.ndarray]) -> Path:
    """Write a run folder for ``config``: the encoder, each client's rows (``parts``: row indices of
    ``data``'s training part), the test rows and ``federated.json``."""
    from safetensors.torch import save_file

    run = Path(run_dir)
    (run / "clients").mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in vae.state_dict().items()}
    atomic_write(run / "encoder.safetensors", lambda tmp: save_file(tensors, tmp))
    for k, rows in enumerate(parts):
        _save_npz(run / "clients" / f"client_{k}.npz", x=data.x_train[rows], y=data.y_train[rows])
    _save_npz(run / "test.npz", x=data.x_test, y=data.y_test)
    head = latent_bnn(config.latent_bits, data.num_classes, hidden=config.head_hidden, depth=config.head_depth)
    layout = _head_layout(head)
    shapes = {k: list(v.shape) for k, v in head_state(head).items()}
    communicated = [k for k in shapes if not (config.fedbn and k in layout["batchnorm"])]
    meta = {"format": FORMAT, "version": 1, "config": config.to_dict(), "data": data.name,
            "in_shape": list(data.in_shape), "num_classes": data.num_classes, "shapes": shapes,
            "communicated": sorted(communicated), "layout": layout, "client_rows": [len(p) for p in parts],
            "test_rows": len(data.y_test)}
    atomic_write_text(run / "federated.json", json.dumps(meta, indent=1) + "\n")
    return run


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


class Workspace:
    """A run folder opened for reading (by the ServerApp, a ClientApp or the launcher)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.dir = Path(run_dir)
        path = self.dir / "federated.json"
        if not path.is_file():
            raise MissingFileError(f"not a federated run folder (no federated.json): {self.dir}")
        try:
            self.meta: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not readable JSON: {exc}") from None
        if self.meta.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a onebit federated run (format {self.meta.get('format')!r})")
        self.config = FederatedConfig.from_dict(self.meta["config"])
        self.in_shape = tuple(self.meta["in_shape"])
        self.num_classes = int(self.meta["num_classes"])
        self.shapes: dict[str, tuple[int, ...]] = {k: tuple(v) for k, v in self.meta["shapes"].items()}
        self.communicated: list[str] = list(self.meta["communicated"])
        self.layout: dict[str, list[str]] = self.meta["layout"]

    @property
    def spec(self) -> dict[str, tuple[int, ...]]:
        """Name → shape of every tensor a client uploads (sorted names)."""
        return {k: self.shapes[k] for k in self.communicated}

    def new_head(self) -> nn.Module:
        """An untrained head of the run's architecture."""
        c = self.config
        return latent_bnn(c.latent_bits, self.num_classes, hidden=c.head_hidden, depth=c.head_depth)

    def encoder(self) -> BinaryLatentVAE:
        """The frozen autoencoder shipped with the run."""
        return _load_vae(str(self.dir), _stamp(self.dir / "encoder.safetensors"))

    def client_codes(self, client: int) -> tuple[np.ndarray, np.ndarray]:
        """Client ``client``'s ±1 codes and labels (its rows through the encoder)."""
        return _codes(str(self.dir), f"clients/client_{int(client)}.npz",
                      _stamp(self.dir / "clients" / f"client_{int(client)}.npz"))

    def test_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """The test rows' codes and labels."""
        return _codes(str(self.dir), "test.npz", _stamp(self.dir / "test.npz"))

    def client_rows(self) -> list[int]:
        return list(self.meta["client_rows"])

    def payload_float32_bytes(self) -> int:
        """Bytes of one float32 upload's tensors (the 1-bit modes are measured against this)."""
        return 4 * sum(math.prod(s) for s in self.spec.values())


def _stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        raise MissingFileError(f"missing file of a federated run: {path}") from None


@lru_cache(maxsize=4)
def _load_vae(run_dir: str, stamp: float) -> BinaryLatentVAE:
    from safetensors.torch import load_file

    ws = Workspace(run_dir)
    c = ws.config
    vae = BinaryLatentVAE(ws.in_shape, c.latent_bits, hidden=c.vae_hidden, estimator=c.estimator, beta=c.beta)
    try:
        vae.load_state_dict(load_file(str(Path(run_dir) / "encoder.safetensors")))
    except Exception as exc:  # safetensors and torch raise their own types for a bad file
        raise CheckpointError(f"encoder of {run_dir} cannot be loaded: {' '.join(str(exc).split())[:200]}") from None
    return vae.freeze()


@lru_cache(maxsize=16)
def _codes(run_dir: str, name: str, stamp: float) -> tuple[np.ndarray, np.ndarray]:
    with np.load(Path(run_dir) / name) as f:
        x, y = f["x"], f["y"]
    ws = Workspace(run_dir)
    return ws.encoder().codes(x), y.astype(np.int64)
