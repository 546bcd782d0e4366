"""HyBNN: a frozen float encoder with a binary latent code in front of a task BNN (Dua 2022).

``HyBNN(encoder, head)`` computes ``head(encoder(x))``: the encoder (a trained, frozen
:class:`~onebit.hybrid.vae.BinaryLatentVAE`'s) gives m logits, the head's first binary layer
signs them (its input quantizer; sign(0) = +1, the same bits as
:meth:`BinaryLatentVAE.codes`) and the rest is a binary MLP (:func:`latent_bnn`: BinaryNet's
``[QuantLinear → BN → Hardtanh] × depth → QuantLinear → BN``, every weight and every
activation ±1). :func:`fit_hybnn` trains the head on the frozen codes with
:func:`onebit.fit`; :func:`export_hybnn` writes the whole model to ONE ``.onebit`` file: the
encoder's float layers run as float layers in the engine, the latent signs are packed to bits
and the head runs on XNOR-popcount.

Reference: Dua, "HyBNN and FedHyBNN: (Federated) Hybrid Binary Neural Networks",
arXiv:2205.09839 (2022).
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from onebit.data import Dataset
from onebit.errors import ConfigError, DataError
from onebit.hybrid.vae import BinaryLatentVAE, Standardize
from onebit.models.mlp import BinaryMLP

__all__ = ["HyBNN", "HyBNNResult", "export_hybnn", "fit_hybnn", "latent_bnn", "latent_dataset"]

log = logging.getLogger(__name__)


def latent_bnn(latent_bits: int, num_classes: int, *, hidden: int = 256, depth: int = 2) -> BinaryMLP:
    """The task BNN on ``latent_bits`` ±1 inputs: ``depth`` binary hidden layers of ``hidden`` units.

    Every layer has binary weights and binary inputs (the first signs its input, so it takes
    the encoder's logits or ±1 codes alike); BatchNorm after each (BinaryNet's MLP).
    """
    if isinstance(latent_bits, bool) or not isinstance(latent_bits, int) or latent_bits < 1:
        raise ConfigError(f"latent_bits must be a positive integer, got {latent_bits!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer ≥ 2, got {num_classes!r}")
    return BinaryMLP(num_classes, (latent_bits,), hidden, depth, first_input_quantizer="ste_sign")


class HyBNN(nn.Module):
    """``head(encoder(x))``: a frozen float encoder with m logits, a binary head on their signs."""

    def __init__(self, encoder: nn.Module, head: nn.Module, latent_bits: int,
                 in_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self.latent_bits = int(latent_bits)
        self.in_shape = None if in_shape is None else tuple(in_shape)
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()

    @classmethod
    def from_vae(cls, vae: BinaryLatentVAE, head: nn.Module) -> HyBNN:
        """The HyBNN of a trained autoencoder's encoder and a head (the encoder is frozen)."""
        return cls(vae.encoder, head, vae.latent_bits, vae.in_shape)

    def train(self, mode: bool = True) -> HyBNN:
        """The encoder stays in eval mode: it is frozen."""
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))


def latent_dataset(vae: BinaryLatentVAE, data: Dataset) -> Dataset:
    """``data`` with every input replaced by its ±1 code (shape ``(latent_bits,)``), labels unchanged."""
    if tuple(data.in_shape) != vae.in_shape:
        raise DataError(f"the autoencoder takes inputs of shape {vae.in_shape}, data set {data.name!r} has "
                        f"{tuple(data.in_shape)}")
    return Dataset(name=f"{data.name}-latent{vae.latent_bits}", x_train=vae.codes(data.x_train),
                   y_train=data.y_train, x_test=vae.codes(data.x_test), y_test=data.y_test,
                   in_shape=(vae.latent_bits,), num_classes=data.num_classes, class_names=data.class_names,
                   source=f"{data.source}; {vae.latent_bits}-bit codes of a {vae.estimator} binary-latent VAE")


@dataclass
class HyBNNResult:
    """What :func:`fit_hybnn` returns: the model and the head's training result (its test accuracy
    is the HyBNN's: the head on the test inputs' codes)."""

    model: HyBNN
    fit: Any  # onebit.train.FitResult

    @property
    def test_accuracy(self) -> float:
        return float(self.fit.test_accuracy)


def fit_hybnn(vae: BinaryLatentVAE, data: Dataset, *, hidden: int = 256, depth: int = 2, epochs: int = 40,
              batch_size: int = 64, lr: float = 3e-3, seed: int = 0, **fit_kwargs: Any) -> HyBNNResult:
    """Train a :func:`latent_bnn` head on the frozen ``vae``'s codes of ``data`` (labels used here only).

    The head is trained by :func:`onebit.fit` (Adam, latent weights clipped to [−1, 1], the best
    validation epoch kept; ``fit_kwargs`` go to it), then joined to the encoder.
    """
    from onebit.train import fit, set_seed

    vae.freeze()
    codes = latent_dataset(vae, data)
    set_seed(seed)
    head = latent_bnn(vae.latent_bits, data.num_classes, hidden=hidden, depth=depth)
    result = fit(head, codes, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, **fit_kwargs)
    log.info("HyBNN (%d latent bits, head %d×%d): test accuracy %.4f", vae.latent_bits, depth, hidden,
             result.test_accuracy)
    return HyBNNResult(HyBNN.from_vae(vae, head), result)


def export_hybnn(model: HyBNN, path: str | os.PathLike, example: np.ndarray, **kwargs: Any) -> Any:
    """Write the whole HyBNN (float encoder + binary head) to one ``.onebit`` file, checked against
    PyTorch on ``example``; returns the :class:`~onebit.export.ExportReport`."""
    from onebit.export import export

    if not isinstance(model, HyBNN):
        raise ConfigError(f"export_hybnn needs a HyBNN, got {type(model).__name__}")
    example = np.asarray(example, dtype=np.float32)
    if model.in_shape is not None and tuple(example.shape[1:]) != model.in_shape:
        raise DataError(f"the HyBNN takes inputs of shape {model.in_shape}, the example has {example.shape[1:]}")
    plain = copy.deepcopy(model)
    for name, module in list(plain.named_modules()):
        if isinstance(module, Standardize):  # a plain BatchNorm1d for the tracer (the same numbers)
            parent, _, attr = name.rpartition(".")
            setattr(plain.get_submodule(parent) if parent else plain, attr, module.as_batchnorm())
    info = {"hybnn": {"latent_bits": model.latent_bits, "in_shape": list(model.in_shape or example.shape[1:])},
            **kwargs.pop("info", {})}
    with torch.no_grad():
        return export(plain, path, example, info=info, **kwargs)
