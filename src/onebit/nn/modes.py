"""``eval_mode(model)``: run a model in eval mode and give every module its own mode back.

``model.train(was_training)`` after a forward is not a restore: it sets *every* submodule
to the top module's flag, so a frozen backbone held in eval mode inside a model (a
feature extractor, a teacher) silently goes back to training mode, and its BatchNorm to
batch statistics. This restores each module's flag as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block ``model`` is in eval mode; afterwards each module has its former mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
