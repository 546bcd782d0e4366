"""The binary latent code of HyBNN's autoencoder: two ways to train through a sign.

The encoder outputs one logit ℓ_j per latent bit; the code is ``z = sign(ℓ)`` (sign(0) = +1),
m bits per input. Training needs a gradient through that sign; two estimators:

- ``"ste"`` — deterministic: ``z = sign(ℓ)`` in the forward pass, ``∂z/∂ℓ = 1_{|ℓ| ≤ 1}`` in the
  backward pass (BinaryNet's straight-through estimator). No prior, no KL term: a binary
  autoencoder.
- ``"gumbel"`` — variational: the bits are Bernoulli with ``q_j = σ(ℓ_j)`` (probability of +1),
  relaxed during training by the Gumbel-sigmoid (binary Concrete) sample
  ``z = 2·σ((ℓ + log u − log(1 − u)) / τ) − 1``, ``u ~ U(0, 1)``, temperature τ; the loss adds
  ``KL(q ‖ Bernoulli(½)) = Σ_j [q_j log q_j + (1 − q_j) log(1 − q_j) + log 2]``. At inference the
  code is the mode, ``sign(ℓ)``, the same bits as the STE version's.

References: Maddison, Mnih, Teh, "The Concrete Distribution", ICLR 2017 (arXiv:1611.00712);
Jang, Gu, Poole, "Categorical Reparameterization with Gumbel-Softmax", ICLR 2017
(arXiv:1611.01144); Courbariaux et al. 2016 (arXiv:1602.02830) for the STE; Dua 2022,
"HyBNN and FedHyBNN" (arXiv:2205.09839) for the binary latent space in front of a BNN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from onebit.errors import ConfigError
from onebit.nn.quantizers import ste_sign

__all__ = ["ESTIMATORS", "bernoulli_kl", "binary_code", "gumbel_sigmoid", "sample_latent"]

ESTIMATORS = ("ste", "gumbel")


def binary_code(logits: Tensor) -> Tensor:
    """The ±1 code of ``logits``: ``sign(ℓ)`` with sign(0) = +1 (no gradient)."""
    return torch.where(logits < 0, -1.0, 1.0).to(logits.dtype)


def gumbel_sigmoid(logits: Tensor, temperature: float, generator: torch.Generator | None = None) -> Tensor:
    """A relaxed ±1 sample: ``2·σ((ℓ + log u − log(1 − u)) / τ) − 1`` with ``u ~ U(0, 1)``.

    As τ → 0 it tends to ``sign(ℓ + L)`` with logistic noise L, i.e. a Bernoulli(σ(ℓ)) draw of ±1.
    """
    if not (isinstance(temperature, int | float) and temperature > 0 and math.isfinite(temperature)):
        raise ConfigError(f"temperature must be a positive number, got {temperature!r}")
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).clamp_(1e-6, 1 - 1e-6)
    noise = torch.log(u) - torch.log1p(-u)
    return 2.0 * torch.sigmoid((logits + noise) / temperature) - 1.0


def bernoulli_kl(logits: Tensor) -> Tensor:
    """``KL(Bernoulli(σ(ℓ)) ‖ Bernoulli(½))`` summed over the last axis, per row (nats).

    ``Σ_j [q log q + (1 − q) log(1 − q) + log 2]`` with ``q = σ(ℓ)``, computed with
    ``log q = logσ(ℓ)`` and ``log(1 − q) = logσ(−ℓ)`` so that large logits do not overflow.
    """
    q = torch.sigmoid(logits)
    kl = q * F.logsigmoid(logits) + (1 - q) * F.logsigmoid(-logits) + math.log(2.0)
    return kl.sum(dim=-1)


def sample_latent(logits: Tensor, estimator: str, *, training: bool, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """The latent the decoder sees: the estimator's training-time value, or ``sign(ℓ)`` at inference."""
    if estimator not in ESTIMATORS:
        from onebit.errors import unknown_choice

        raise unknown_choice("latent estimator", estimator, ESTIMATORS)
    if not training:
        return binary_code(logits)
    if estimator == "ste":
        return ste_sign(logits, 1.0)
    return gumbel_sigmoid(logits, temperature, generator)
