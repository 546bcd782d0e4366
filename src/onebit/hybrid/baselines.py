"""The baselines HyBNN is measured against: the same task BNN on directly binarized input.

A vanilla BNN cannot take real-valued input into a binary layer without binarizing it first;
the two usual ways, each a fixed :class:`~onebit.hybrid.vae.Standardize` shift in front of the
same :func:`~onebit.hybrid.model.latent_bnn` (whose first layer signs its input):

- ``"sign"``: ``sign((x − μ)/σ) = sign(x − μ)``, per feature, μ the training mean (the sign of the
  standardized input);
- ``"threshold"``: ``sign(x − t)`` with one global pixel threshold t, by default the midpoint of the
  training values' range (0.5 for pixels in [0, 1], the classic MNIST binarization).

Same BNN budget: the head has the HyBNN head's hidden widths and depth; only its input width
differs (the input's features instead of m latent bits).
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from onebit.data import Dataset
from onebit.errors import ConfigError, unknown_choice
from onebit.hybrid.model import latent_bnn
from onebit.hybrid.vae import Standardize

__all__ = ["BINARIZATIONS", "InputBinarizer", "input_binarized_bnn"]

BINARIZATIONS = ("sign", "threshold")


class InputBinarizer(nn.Sequential):
    """``Flatten → x − shift``: the next binary layer's sign makes it ``sign(x − μ)`` or ``sign(x − t)``."""

    def __init__(self, x_train: np.ndarray, mode: str = "sign", threshold: float | None = None) -> None:
        if mode not in BINARIZATIONS:
            raise unknown_choice("input binarization", mode, BINARIZATIONS)
        x = np.asarray(x_train, dtype=np.float32).reshape(len(x_train), -1)
        shift = Standardize(x.shape[1])
        if mode == "sign":
            shift.shift(x.mean(0))
            self.threshold = None
        else:
            t = float(threshold) if threshold is not None else 0.5 * (float(x.min()) + float(x.max()))
            if not math.isfinite(t):
                raise ConfigError(f"threshold must be a finite number, got {threshold!r}")
            shift.shift(t)
            self.threshold = t
        super().__init__(nn.Flatten(), shift)
        self.mode = mode

    def binarize(self, x: np.ndarray) -> np.ndarray:
        """The ±1 input the BNN sees (float32, sign(0) = +1)."""
        import torch

        with torch.no_grad():
            return np.where(self(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy() < 0, -1.0, 1.0
                            ).astype(np.float32)


def input_binarized_bnn(data: Dataset, mode: str = "sign", *, hidden: int = 256, depth: int = 2,
                        threshold: float | None = None) -> nn.Sequential:
    """``InputBinarizer → latent_bnn``: the task BNN on the binarized input of ``data`` (statistics
    from its training part), the same hidden widths and depth as a HyBNN head."""
    binarizer = InputBinarizer(data.x_train, mode, threshold)
    features = math.prod(data.in_shape)
    return nn.Sequential(binarizer, latent_bnn(features, data.num_classes, hidden=hidden, depth=depth))
