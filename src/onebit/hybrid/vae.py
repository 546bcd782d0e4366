"""HyBNN's full-precision autoencoder with a binary latent space (Dua 2022).

``BinaryLatentVAE(in_shape, latent_bits=m)``: a float MLP encoder
``x → (x − μ)/σ → [Linear → BN → ReLU]× → Linear → ℓ ∈ ℝ^m``, the m-bit code ``z = sign(ℓ)``
(:mod:`onebit.hybrid.latent`: trained through a straight-through sign, ``estimator="ste"``, or
as Bernoulli bits relaxed by a Gumbel-sigmoid with a KL term to the Bernoulli(½) prior,
``estimator="gumbel"``), and a mirror-image float decoder back to the standardized input.
Trained without labels by :func:`fit_vae` on the loss

    L = ½·‖x̃ − dec(z)‖² + β·KL(q(z|x) ‖ Bernoulli(½)^m)        (x̃ = standardized x; KL only for "gumbel")

(a unit-variance Gaussian likelihood), then frozen: :meth:`BinaryLatentVAE.codes` gives the
±1 codes a task BNN learns from. The standardization is a fixed ``BatchNorm1d`` without affine
parameters that never leaves eval mode, so the exporter folds it like any BatchNorm.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from onebit.errors import ConfigError, DataError, unknown_choice
from onebit.hybrid.latent import ESTIMATORS, bernoulli_kl, binary_code, sample_latent
from onebit.nn.modes import eval_mode

__all__ = ["BinaryLatentVAE", "Standardize", "VAEHistory", "fit_vae"]

log = logging.getLogger(__name__)


class Standardize(nn.BatchNorm1d):
    """Fixed per-feature ``(x − μ) / √(σ² + ε)``: a BatchNorm1d without affine parameters, always in eval mode.

    ``fit(x)`` sets μ and σ² from data (flattened rows); ``shift_only=True`` keeps μ and
    sets the scale to 1 (``σ² = 1 − ε``), a pure shift ``x − μ``.
    """

    def __init__(self, features: int, eps: float = 1e-5) -> None:
        super().__init__(features, eps=eps, affine=False, momentum=0.0)
        self.eval()

    def train(self, mode: bool = True) -> Standardize:
        """Stays in eval mode: the statistics are fixed, never the batch's."""
        return super().train(False)

    @torch.no_grad()
    def fit(self, x: np.ndarray | Tensor, *, shift_only: bool = False) -> Standardize:
        """Take μ (and σ², unless ``shift_only``) per feature from the rows of ``x``."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(len(x), -1)
        if x.shape[1] != self.num_features:
            raise DataError(f"expected rows of {self.num_features} features, got {x.shape[1]}")
        self.running_mean.copy_(x.mean(0))
        if shift_only:
            self.running_var.fill_(1.0 - self.eps)
        else:
            self.running_var.copy_(x.var(0, unbiased=False).clamp_min(1e-6))
        return self

    def as_batchnorm(self) -> nn.BatchNorm1d:
        """The same computation as a plain ``BatchNorm1d`` in eval mode (what the exporter traces)."""
        bn = nn.BatchNorm1d(self.num_features, eps=self.eps, affine=False)
        bn.load_state_dict(self.state_dict())
        return bn.eval()

    @torch.no_grad()
    def shift(self, mean: float | np.ndarray) -> Standardize:
        """Make it a pure shift ``x − μ`` (scale 1: ``σ² = 1 − ε``) with ``mean`` per feature or one for all."""
        self.running_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).expand(self.num_features))
        self.running_var.fill_(1.0 - self.eps)
        return self


def _mlp(sizes: Sequence[int]) -> list[nn.Module]:
    """``[Linear → BN → ReLU]`` for each consecutive pair of ``sizes`` but the last, which is a plain Linear."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU()]
    return layers


class BinaryLatentVAE(nn.Module):
    """A float MLP autoencoder whose latent code is ``latent_bits`` signs.

    ``hidden``: the encoder's hidden widths (the decoder mirrors them); ``estimator``: ``"ste"``
    or ``"gumbel"`` (see :mod:`onebit.hybrid.latent`); ``beta``: weight of the KL term
    (``"gumbel"`` only); ``temperature``: the Gumbel-sigmoid τ, which :func:`fit_vae` anneals.
    """

    def __init__(self, in_shape: Sequence[int], latent_bits: int = 64, *, hidden: Sequence[int] = (512, 256),
                 estimator: str = "gumbel", beta: float = 1.0) -> None:
        super().__init__()
        if estimator not in ESTIMATORS:
            raise unknown_choice("latent estimator", estimator, ESTIMATORS)
        in_shape = tuple(int(d) for d in in_shape)
        if not in_shape or min(in_shape) < 1:
            raise ConfigError(f"in_shape must be positive integers, got {in_shape!r}")
        if isinstance(latent_bits, bool) or not isinstance(latent_bits, int) or latent_bits < 1:
            raise ConfigError(f"latent_bits must be a positive integer, got {latent_bits!r}")
        hidden = tuple(hidden)
        if not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden):
            raise ConfigError(f"hidden must be positive integers, got {hidden!r}")
        if not (isinstance(beta, int | float) and beta >= 0 and math.isfinite(beta)):
            raise ConfigError(f"beta must be a non-negative number, got {beta!r}")
        features = math.prod(in_shape)
        self.in_shape, self.latent_bits, self.hidden = in_shape, latent_bits, hidden
        self.estimator, self.beta, self.temperature = estimator, float(beta), 1.0
        self.encoder = nn.Sequential(nn.Flatten(), Standardize(features), *_mlp([features, *hidden, latent_bits]))
        self.decoder = nn.Sequential(*_mlp([latent_bits, *reversed(hidden), features]))

    @property
    def standardize(self) -> Standardize:
        """The encoder's fixed input standardization."""
        return self.encoder[1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(reconstruction of the standardized input, logits ℓ)``; the latent is sampled as in training."""
        logits = self.encoder(x)
        z = sample_latent(logits, self.estimator, training=self.training, temperature=self.temperature)
        return self.decoder(z), logits

    def loss(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(total, reconstruction, KL)``, each a mean over the batch (KL is 0 for ``"ste"``)."""
        recon, logits = self(x)
        target = self.standardize(x.reshape(len(x), -1))
        rec = 0.5 * ((recon - target) ** 2).sum(dim=1).mean()
        kl = bernoulli_kl(logits).mean() if self.estimator == "gumbel" else torch.zeros((), dtype=rec.dtype)
        return rec + self.beta * kl, rec, kl

    @torch.no_grad()
    def codes(self, x: np.ndarray | Tensor, batch_size: int = 2048) -> np.ndarray:
        """The ±1 codes ``sign(ℓ(x))``, float32 ``(N, latent_bits)``."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if tuple(x.shape[1:]) != self.in_shape:
            raise DataError(f"the autoencoder takes inputs of shape {self.in_shape}, got samples of shape "
                            f"{tuple(x.shape[1:])}")
        with eval_mode(self):
            parts = [binary_code(self.encoder(chunk)) for chunk in x.split(batch_size)] if len(x) else []
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.latent_bits), np.float32)

    def freeze(self) -> BinaryLatentVAE:
        """No gradients and eval mode from here on (the encoder of a trained HyBNN is fixed)."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()


@dataclass
class VAEHistory:
    """Per-epoch training losses of :func:`fit_vae` (means over the epoch's batches)."""

    loss: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)
    seconds: float = 0.0


def fit_vae(vae: BinaryLatentVAE, x: np.ndarray, *, epochs: int = 30, batch_size: int = 128, lr: float = 1e-3,
            temperature: tuple[float, float] = (1.0, 0.3), seed: int = 0, verbose: bool = False) -> VAEHistory:
    """Train ``vae`` without labels on the rows of ``x``; sets its standardization from ``x`` first.

    Adam, cosine-decayed learning rate, shuffled mini-batches; the Gumbel-sigmoid temperature
    falls geometrically from ``temperature[0]`` to ``temperature[1]`` over the epochs. Leaves the
    model in eval mode (call :meth:`BinaryLatentVAE.freeze` to fix it).
    """
    from onebit.train import set_seed

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ConfigError(f"batch_size must be an integer ≥ 2, got {batch_size!r}")
    if not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    t0, t1 = (float(t) for t in temperature)
    if not (t0 > 0 and t1 > 0):
        raise ConfigError(f"temperature must be two positive numbers (start, end), got {temperature!r}")
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    if tuple(xt.shape[1:]) != vae.in_shape:
        raise DataError(f"the autoencoder takes inputs of shape {vae.in_shape}, got samples of shape "
                        f"{tuple(xt.shape[1:])}")
    if len(xt) < batch_size:
        raise ConfigError(f"batch_size {batch_size} is larger than the {len(xt)} training rows")
    if not torch.isfinite(xt).all():
        raise DataError("the training inputs hold NaN or infinite values")
    set_seed(seed)
    vae.standardize.fit(xt)
    opt = torch.optim.Adam([p for p in vae.parameters() if p.requires_grad], lr=lr)
    steps = epochs * (len(xt) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    generator = torch.Generator().manual_seed(seed)
    history = VAEHistory()
    start = time.perf_counter()
    for epoch in range(epochs):
        vae.temperature = t0 * (t1 / t0) ** (epoch / max(1, epochs - 1))
        vae.train()
        order = torch.randperm(len(xt), generator=generator)
        sums = np.zeros(3)
        batches = 0
        for i in range(0, len(xt) - batch_size + 1, batch_size):  # full batches only (BatchNorm)
            total, rec, kl = vae.loss(xt[order[i:i + batch_size]])
            if not torch.isfinite(total):
                raise ConfigError(f"autoencoder training diverged (loss {total.item()}) at epoch {epoch + 1}; "
                                  "lower the lr")
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            schedule.step()
            sums += (total.item(), rec.item(), kl.item())
            batches += 1
        loss, rec, kl = sums / max(1, batches)
        history.loss.append(loss)
        history.reconstruction.append(rec)
        history.kl.append(kl)
        history.temperature.append(vae.temperature)
        message = (f"autoencoder epoch {epoch + 1}/{epochs}: loss {loss:.3f} (reconstruction {rec:.3f}, "
                   f"KL {kl:.3f}), τ {vae.temperature:.3f}")
        log.info(message)
        if verbose:
            print(message)
    history.seconds = time.perf_counter() - start
    return history
