"""The resumable state of a training run: ``train_state.pt`` in the run folder.

Written atomically (temporary file, fsync, rename) at the end of every epoch, so a run
killed at any moment leaves the last finished epoch intact. It holds everything the
next epoch depends on: the weights, the optimizer and learning-rate schedule state, the
random generators (batch order, dropout), the history and the best epoch so far; with
fixed seeds on CPU a resumed run ends with the same weights as an uninterrupted one.
It is read with ``torch.load(weights_only=True)``: tensors and plain Python values only,
never arbitrary pickled objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from onebit.atomic import atomic_write
from onebit.errors import CheckpointError, MissingFileError

STATE_FILE = "train_state.pt"
STATE_VERSION = 1


def save_train_state(out_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain values) to ``out_dir/train_state.pt`` atomically."""
    atomic_write(out_dir / STATE_FILE, lambda tmp: torch.save({"version": STATE_VERSION, **state}, tmp))


def load_train_state(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The state saved in a run folder; a clear error if it is missing or not one."""
    path = Path(out_dir) / STATE_FILE
    if not path.is_file():
        raise MissingFileError(f"{path} not found: nothing to resume (is {out_dir} a run folder with a finished epoch?)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle (refused by weights_only), ...
        raise CheckpointError(f"{path} cannot be read as a training state: {' '.join(str(exc).split())[:300]}") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path} is not a version-{STATE_VERSION} onebit training state")
    return state
