"""Reading a Keras 2 HDF5 model file (``model.save("m.h5")``) with h5py alone: no TensorFlow.

The file holds the architecture as JSON in the root attribute ``model_config`` and the
weights under ``model_weights/<layer>/`` in the order the attribute ``weight_names`` of
each layer group lists them (``kernel:0``, ``bias:0``, ``gamma:0``, ...). A weights-only
file (``save_weights``) has no architecture; a Keras 3 ``.keras`` file is a zip archive,
not HDF5. Each gets one line saying so.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onebit.errors import MissingFileError, ModelFileError

__all__ = ["KerasFile", "read_keras_h5"]

_KERAS3 = ("{path} is a Keras 3 '.keras' archive, which onebit does not read; re-save it as Keras 2 HDF5 "
           "in the environment that trained it: with tf-keras (TF_USE_LEGACY_KERAS=1) "
           "`tf.keras.models.load_model(path).save('model.h5')`")


@dataclass
class KerasFile:
    """The parts of a Keras HDF5 model file: ``config`` (the ``model_config`` JSON),
    ``weights`` (layer name → arrays in Keras order, with their short names; None when only
    the architecture is known, as when a converted checkpoint is rebuilt)."""

    path: Path
    config: dict[str, Any]
    weights: dict[str, list[tuple[str, np.ndarray]]] | None
    keras_version: str


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_keras_h5(path: str | os.PathLike) -> KerasFile:
    """Architecture and weights of the Keras HDF5 model file at ``path``."""
    try:
        import h5py
    except ImportError:
        raise ModelFileError("reading Keras files needs h5py: pip install 'onebit[larq]'") from None
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    if zipfile.is_zipfile(path):
        raise ModelFileError(_KERAS3.format(path=path))
    if not h5py.is_hdf5(path):
        raise ModelFileError(f"{path} is not an HDF5 file (a Keras 2 '.h5' model file is expected)")
    try:
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs:
                raise ModelFileError(
                    f"{path} holds no model architecture (attribute 'model_config'): a weights-only file from "
                    "save_weights? Save the whole model with model.save('model.h5')"
                )
            config = json.loads(_text(f.attrs["model_config"]))
            version = _text(f.attrs.get("keras_version", "unknown"))
            root = f["model_weights"] if "model_weights" in f else f
            weights: dict[str, list[tuple[str, np.ndarray]]] = {}
            for name in root.attrs.get("layer_names", []):
                group = root[_text(name)]
                arrays = []
                for weight_name in group.attrs.get("weight_names", []):
                    full = _text(weight_name)
                    short = full.rsplit("/", 1)[-1].split(":")[0]
                    arrays.append((short, np.asarray(group[full], dtype=np.float32)))
                weights[_text(name)] = arrays
    except ModelFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:  # truncated, corrupt or inconsistent HDF5
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{path} is corrupt or truncated: {first}") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(f"{path}: model_config is not a Keras model configuration")
    return KerasFile(path, config, weights, version)
