"""Pretrained weights shipped inside the package, one safetensors file per (model, data set).

``create_model(name, pretrained=True)`` (or ``pretrained="mnist1d"``) calls
:func:`load_pretrained`. The files live in ``onebit/models/weights/`` as
``<model>-<data>.safetensors`` and are written by :func:`save_pretrained`
(``scripts/train_pretrained.py`` trains and writes all of them).

Format: each binary weight — one whose quantized value is ``±α_c`` with one ``α_c``
per output channel — is stored as its sign bits, ``<key>.sign_bits`` (uint8,
``numpy.packbits`` of ``w < 0`` over the flattened tensor, bit 1 = −1), plus
``<key>.alpha`` (float32, per output channel) when a weight quantizer scales
(``xnor_sign``, ``magnitude_aware_sign``). Every other tensor (BatchNorm, float layers)
is stored as is. Loading therefore sets each binary layer's latent weight to ``±1``
(``±α_c`` where the quantizer scales): the network computes what the trained one
did, and fine-tuning starts from those latent values, not the trained ones.
The safetensors metadata key ``"onebit"`` holds ``{"format": "onebit-pretrained",
"version": 1, "model": {"name", "args"}, "data", "recipe", "seed",
"runtime_test_accuracy", ...}``; the runtime accuracy is the one measured by
``onebit.runtime`` on the data set's test split after export, which
``tests/test_pretrained.py`` measures again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from onebit.errors import CheckpointError, ConfigError

__all__ = [
    "PRETRAINED_FORMAT", "PRETRAINED_VERSION", "WEIGHTS_DIR", "list_pretrained", "load_pretrained",
    "pack_state", "read_pretrained_meta", "save_pretrained", "unpack_state", "weights_path",
]

PRETRAINED_FORMAT = "onebit-pretrained"
PRETRAINED_VERSION = 1
WEIGHTS_DIR = Path(__file__).parent / "weights"
_META_KEY = "onebit"
_BITS, _ALPHA = ".sign_bits", ".alpha"


def weights_path(model: str, data: str) -> Path:
    """Where the shipped weights of ``model`` trained on ``data`` live (the file may not exist)."""
    return WEIGHTS_DIR / f"{model}-{data}.safetensors"


def list_pretrained(model: str | None = None) -> list[tuple[str, str]]:
    """The shipped (model, data set) pairs, in the order of :data:`onebit.recipes.PRETRAINED`."""
    from onebit.recipes import PRETRAINED

    return [(m, d) for m, d in PRETRAINED if (model is None or m == model) and weights_path(m, d).is_file()]


def _binary_weights(model: nn.Module) -> dict[str, Tensor]:
    """State keys of binary weights -> their quantized value (±α per output channel)."""
    from onebit.nn.layers import QuantLayer

    found: dict[str, Tensor] = {}
    for prefix, module in model.named_modules():
        if not isinstance(module, QuantLayer) or module.weight_quantizer is None:
            continue
        with torch.no_grad():
            q = module.quantized_weight().detach().float()
        magnitude = q.abs().reshape(q.shape[0], -1)
        alpha = magnitude[:, :1]
        if bool((alpha > 0).all()) and bool((magnitude == alpha).all()):
            found[f"{prefix}.weight" if prefix else "weight"] = q
    return found


def pack_state(model: nn.Module) -> dict[str, Tensor]:
    """The tensors of a pretrained file: binary weights as sign bits (+ α), the rest as is."""
    binary = _binary_weights(model)
    tensors: dict[str, Tensor] = {}
    for key, tensor in model.state_dict().items():
        if key not in binary:
            tensors[key] = tensor.detach().cpu().contiguous().clone()
            continue
        q = binary[key]
        bits = np.packbits((q < 0).reshape(-1).numpy())
        tensors[key + _BITS] = torch.from_numpy(bits)
        alpha = q.abs().reshape(q.shape[0], -1)[:, 0].contiguous()
        if not bool((alpha == 1).all()):
            tensors[key + _ALPHA] = alpha.to(tensor.dtype)
    return tensors


def unpack_state(tensors: dict[str, Tensor], model: nn.Module, where: str) -> dict[str, Tensor]:
    """The ``state_dict`` of ``model`` rebuilt from a pretrained file's tensors; checks every shape."""
    expected = model.state_dict()
    state: dict[str, Tensor] = {}
    for key, like in expected.items():
        if key + _BITS in tensors:
            bits = tensors[key + _BITS]
            n = like.numel()
            if bits.dtype != torch.uint8 or bits.dim() != 1 or bits.numel() != (n + 7) // 8:
                raise CheckpointError(f"{where}: {key}{_BITS} must be {(n + 7) // 8} uint8 values for shape "
                                      f"{tuple(like.shape)}, got {bits.dtype} of shape {tuple(bits.shape)}")
            negative = np.unpackbits(bits.numpy(), count=n).reshape(like.shape).astype(bool)
            weight = torch.from_numpy(np.where(negative, -1.0, 1.0)).to(like.dtype)
            alpha = tensors.get(key + _ALPHA)
            if alpha is not None:
                if alpha.shape != (like.shape[0],):
                    raise CheckpointError(f"{where}: {key}{_ALPHA} has shape {tuple(alpha.shape)}, "
                                          f"expected ({like.shape[0]},)")
                weight = weight * alpha.to(like.dtype).reshape((-1,) + (1,) * (like.dim() - 1))
            state[key] = weight
        elif key in tensors:
            tensor = tensors[key]
            if tensor.shape != like.shape or tensor.dtype != like.dtype:
                raise CheckpointError(f"{where}: tensor {key!r} is {tensor.dtype} {tuple(tensor.shape)}, "
                                      f"the model expects {like.dtype} {tuple(like.shape)}")
            state[key] = tensor
        else:
            raise CheckpointError(f"{where}: tensor {key!r} of the model is missing")
    known = set(expected) | {k + _BITS for k in expected} | {k + _ALPHA for k in expected}
    extra = sorted(set(tensors) - known)
    if extra:
        raise CheckpointError(f"{where}: unexpected tensors {extra[:5]}")
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{where}: tensor {key!r} holds NaN or infinite values")
    return state


def save_pretrained(path: str | os.PathLike, model: nn.Module, **meta: Any) -> Path:
    """Write ``model`` (built by ``create_model``) in the pretrained format with ``meta`` (JSON values)."""
    from safetensors.torch import save_file

    config = getattr(model, "onebit_config", None)
    if config is None:
        raise CheckpointError("pretrained weights need a model built by onebit.models.create_model")
    header = {"format": PRETRAINED_FORMAT, "version": PRETRAINED_VERSION, "model": config, **meta}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(pack_state(model), str(tmp), metadata={_META_KEY: json.dumps(header, sort_keys=True)})
    os.chmod(tmp, 0o644)  # package data: readable by everyone
    os.replace(tmp, path)
    return path


def read_pretrained_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata object of a pretrained file, validated; tensors are not read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
        meta = json.loads(raw) if raw is not None else None
    except Exception as exc:  # safetensors and json raise their own error types
        raise CheckpointError(f"{path} is not a valid pretrained weights file: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != PRETRAINED_FORMAT:
        raise CheckpointError(f"{path}: metadata does not describe {PRETRAINED_FORMAT} weights")
    if meta.get("version") != PRETRAINED_VERSION:
        raise CheckpointError(f"{path}: pretrained format version {meta.get('version')!r} is not supported "
                              f"(this onebit reads version {PRETRAINED_VERSION})")
    return meta


def _shipped_list() -> str:
    return ", ".join(f"{m} on {d}" for m, d in list_pretrained()) or "none"


def _choose_data(name: str, pretrained: bool | str) -> str:
    shipped = [d for _, d in list_pretrained(name)]
    if not shipped:
        raise ConfigError(
            f"model {name!r} has no shipped pretrained weights: its data sets (ImageNet, CIFAR-10 or MNIST) "
            f"are not bundled with onebit. Train it yourself, e.g. "
            f"onebit train --model {name} --data /path/to/cifar-10-batches-py (then load_checkpoint). "
            f"Shipped pairs: {_shipped_list()}"
        )
    if pretrained is True:
        return shipped[0]
    if not isinstance(pretrained, str) or pretrained not in shipped:
        raise ConfigError(
            f"no shipped weights of model {name!r} for data set {pretrained!r}; "
            f"pretrained must be True or one of: {', '.join(shipped)}"
        )
    return pretrained


def load_pretrained(
    name: str,
    pretrained: bool | str = True,
    *,
    num_classes: int | None = None,
    in_shape: tuple[int, ...] | list[int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """The model ``name`` with its shipped weights, in eval mode.

    ``pretrained=True`` takes the model's first shipped data set, a string names one.
    The weights fix ``num_classes``, ``in_shape`` and the model arguments: pass them
    only to check them (a different value is a :class:`ConfigError`). The returned
    model's ``onebit_pretrained`` attribute holds the file's metadata.
    """
    from safetensors.torch import load_file

    from onebit.models.registry import create_model

    data = _choose_data(name, pretrained)
    path = weights_path(name, data)
    meta = read_pretrained_meta(path)
    args = dict(meta["model"]["args"])
    given = {"num_classes": num_classes, "in_shape": list(in_shape) if in_shape is not None else None, **kwargs}
    for key, value in given.items():
        if value is None and key in ("num_classes", "in_shape"):
            continue
        recorded = args.get(key, _default_arg(name, key))
        if _json(value) != _json(recorded):
            raise ConfigError(
                f"the shipped weights of {name} on {data} were trained with {key}={recorded!r}, got {key}={value!r}; "
                f"leave {key} out, or train your own with onebit train --model {name} --data {data} -M {key}=..."
            )
    model = create_model(name, **args)
    model.load_state_dict(unpack_state(load_file(str(path)), model, str(path)))
    model.eval()
    model.onebit_pretrained = meta
    return model


def _default_arg(name: str, key: str) -> Any:
    import inspect

    from onebit.models.registry import model_info

    params = inspect.signature(model_info(name).builder).parameters
    param = params.get(key)
    if param is None:
        valid = [p for p in params if p not in ("num_classes", "in_shape")]
        raise ConfigError(f"unknown argument {key!r} for model {name!r}; valid: {', '.join(valid)}")
    return param.default


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)  # tuples and lists compare equal
