"""Checkpoints: a model's weights plus what rebuilds it, in one safetensors file.

The file holds the ``state_dict`` tensors and, in the safetensors metadata under the
key ``"onebit"``, a JSON object ``{"format": "onebit-checkpoint", "version": 1,
"model": {"name", "args"}, ...}`` — the registry name and arguments from
:func:`onebit.models.create_model` — so ``load_checkpoint`` needs nothing but the file.
Writes are atomic (temporary file, fsync, rename): a crash leaves the old file or the
new one, never a torn one. No pickle is involved in reading or writing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from onebit.atomic import atomic_write
from onebit.errors import CheckpointError, MissingFileError

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "load_checkpoint", "read_checkpoint_meta", "save_checkpoint"]

CHECKPOINT_FORMAT = "onebit-checkpoint"
CHECKPOINT_VERSION = 1
_META_KEY = "onebit"


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **info: Any) -> Path:
    """Write ``model``'s weights and rebuild information to ``path`` atomically.

    The model must come from :func:`onebit.models.create_model` (it carries
    ``onebit_config``). ``info`` adds JSON-serializable fields (epoch, metrics, data).
    """
    from safetensors.torch import save_file

    config = getattr(model, "onebit_config", None)
    if config is None:
        raise CheckpointError(
            "this model was not built by onebit.models.create_model, so a checkpoint could not "
            "rebuild it; build it with create_model(name, ...)"
        )
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": config, **info}
    try:
        meta_json = json.dumps(meta)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint info must be JSON-serializable: {exc}") from None
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={_META_KEY: meta_json}))
    return path


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's metadata object, validated; tensors are not read."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"{path} is not a valid safetensors checkpoint: {_one_line(exc)}") from None
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a onebit checkpoint (no onebit metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: onebit metadata is not valid JSON: {exc}") from None
    if isinstance(meta, dict) and meta.get("format") == "onebit-model":
        raise CheckpointError(
            f"{path} is an exported .onebit model, not a training checkpoint: onebit.runtime.load and onebit bench "
            f"take it; eval and export take the checkpoint.safetensors it came from"
        )
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: metadata does not describe a {CHECKPOINT_FORMAT}")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {meta.get('version')!r} is not supported "
            f"(this onebit reads version {CHECKPOINT_VERSION})"
        )
    model = meta.get("model")
    if not (
        isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("args"), dict)
    ):
        raise CheckpointError(f"{path}: metadata lacks the model's registry name and arguments")
    return meta


def _check_safetensors_header(path: Path) -> None:
    """Refuse, in onebit's words, a file that is not a safetensors file at all (a text file, a
    ``.onebit`` model, a PyTorch pickle): 8 bytes of little-endian header length, then a JSON object."""
    expected = (f"{path} is not a onebit checkpoint: checkpoints are the .safetensors files that onebit train "
                "writes (checkpoint.safetensors, last.safetensors)")
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if len(head) < 9 or int.from_bytes(head[:8], "little") > size - 8 or head[8:9] != b"{":
        kind = "an empty file" if size == 0 else "not a safetensors file"
        raise CheckpointError(f"{expected}; this one is {kind}")


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model recorded in ``path``, load its weights; returns (model in eval mode, metadata)."""
    from safetensors.torch import load_file

    from onebit.errors import OnebitError
    from onebit.models import create_model

    meta = read_checkpoint_meta(path)
    name, args = meta["model"]["name"], dict(meta["model"]["args"])
    try:
        model = create_model(name, **args)
    except OnebitError as exc:
        raise CheckpointError(f"{path}: cannot rebuild model {name!r}: {exc}") from None
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read tensors: {_one_line(exc)}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: tensors do not match model {name!r} (missing {missing[:5]}, unexpected {extra[:5]})"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(
                f"{path}: tensor {key!r} has shape {tuple(tensor.shape)}, "
                f"model {name!r} expects {tuple(expected[key].shape)}"
            )
        if tensor.dtype != expected[key].dtype:
            raise CheckpointError(f"{path}: tensor {key!r} has dtype {tensor.dtype}, expected {expected[key].dtype}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {key!r} holds NaN or infinite values")
    model.load_state_dict(state)
    model.eval()
    return model, meta


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
