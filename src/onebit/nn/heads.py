"""Multi-label heads: L independent sigmoid outputs on one shared encoder (He & Xia 2018).

In the joint binary neural network (JBNN; He & Xia, NLPCC 2018, arXiv:1802.00891)
"binary" means binary relevance: one yes/no output per label, ``p_j = σ(w_jᵀ h(x) + b_j)``,
all on one encoder ``h``, trained together with the joint binary cross-entropy
(:func:`onebit.nn.losses.jbce_loss`). Label j is predicted when ``p_j > 0.5``, i.e. when its
logit is > 0: there is no learned threshold. The encoder can be binarized or float alike;
:func:`multilabel_mlp` builds the MLP encoder used by the ``he2018_jbnn`` experiment, whose
binarized version exports to ``.onebit`` like any onebit model (the head returns logits, so
:func:`labels_from_logits` turns the runtime's output into the same label sets).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from onebit.errors import ConfigError
from onebit.nn.layers import QuantLinear

__all__ = ["MultiLabelHead", "labels_from_logits", "multilabel_mlp"]


def labels_from_logits(logits: np.ndarray | Tensor) -> np.ndarray:
    """The predicted label sets, a boolean (N, L) array: ``σ(z) > 0.5`` ⇔ ``z > 0``."""
    z = logits.detach().cpu().numpy() if isinstance(logits, Tensor) else np.asarray(logits)
    if z.ndim != 2:
        raise ConfigError(f"expected logits of shape (N, labels), got shape {z.shape}")
    return z > 0


class MultiLabelHead(nn.Module):
    """``encoder`` (N, ...) → (N, features), then one float linear layer to ``num_labels`` logits.

    ``forward`` returns the logits ``z`` (N, L) (what the loss and the exporter take);
    :meth:`probabilities` is ``σ(z)`` and :meth:`predict` the label sets ``z > 0``.
    """

    def __init__(self, encoder: nn.Module, features: int, num_labels: int) -> None:
        super().__init__()
        for name, value in (("features", features), ("num_labels", num_labels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(encoder, nn.Module):
            raise ConfigError(f"encoder must be a torch module, got {type(encoder).__name__}")
        self.encoder = encoder
        self.classifier = nn.Linear(features, num_labels)

    @property
    def num_labels(self) -> int:
        return self.classifier.out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.encoder(x))

    @torch.no_grad()
    def probabilities(self, x: Tensor) -> Tensor:
        """``σ(z)`` (N, L) in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self(x))
        finally:
            self.train(was_training)

    def predict(self, x: Tensor) -> np.ndarray:
        """The predicted label sets (N, L) booleans, ``p_j > 0.5``, in eval mode."""
        return self.probabilities(x).numpy() > 0.5


def multilabel_mlp(
    in_features: int, num_labels: int, hidden: int = 256, depth: int = 2, *, binary: bool = True,
    dropout: float = 0.0,
) -> MultiLabelHead:
    """An MLP encoder with a :class:`MultiLabelHead` (``num_labels`` logits).

    ``Linear(in, hidden) → BN → Hardtanh`` (float: first layers stay float, as in every
    published BNN), then ``depth − 1`` times ``QuantLinear(hidden, hidden) → BN → Hardtanh``
    with sign-binarized inputs and weights (``binary=True``; ``binary=False`` gives the
    same network in float), then the float head; ``dropout`` > 0 puts a Dropout before the head
    only (training only: a dropped input to a binary layer would become sign(0) = +1, not 0). ``num_labels=1`` is one binary-relevance net.
    """
    for name, value in (("in_features", in_features), ("num_labels", num_labels), ("hidden", hidden),
                        ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(dropout, int | float) and 0.0 <= dropout < 1.0):
        raise ConfigError(f"dropout must be a number in [0, 1), got {dropout!r}")
    quantizer = "ste_sign" if binary else None
    layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.Hardtanh()]
    for _ in range(depth - 1):
        layers += [QuantLinear(hidden, hidden, bias=False, input_quantizer=quantizer, weight_quantizer=quantizer),
                   nn.BatchNorm1d(hidden), nn.Hardtanh()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return MultiLabelHead(nn.Sequential(*layers), hidden, num_labels)
