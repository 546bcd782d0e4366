"""The quasi network of a stochastic binary-weight ReLU network (Zhang, Yin & Wang 2022).

Under stochastic rounding a binary weight is ``w = +1`` with probability ``(1 + θ)/2``
and ``−1`` otherwise, so ``E[w] = θ`` and ``Var[w] = 1 − θ²`` for a latent ``θ ∈ [−1, 1]``.
A unit's pre-activation ``z = s·Σ_j w_j x_j`` (``s = 1/√fan_in``) is a sum of many
independent terms, hence about Gaussian with

    μ = s·Σ_j θ_j m_j,        σ² = s²·Σ_j (1 − θ_j²) m_j²   (input taken as its mean m)

and the ReLU's expected output is the smoothed activation (the "quasi" ReLU)

    E[ReLU(z)] = μ·Φ(μ/σ) + σ·φ(μ/σ),    E[ReLU(z)²] = (μ² + σ²)·Φ(μ/σ) + μσ·φ(μ/σ).

:class:`QuasiBinaryNet` propagates the mean through these layers: a network with
continuous parameters θ and a smooth activation, whose NTK the paper studies. Its
``variant="carry"`` also carries each unit's variance ``v`` to the next layer, where
``σ² = s²·Σ_j [(1 − θ_j²) m_j² + v_j]`` (units taken as independent: the mean-field
assumption). :meth:`QuasiBinaryNet.sample_forward` and
:meth:`QuasiBinaryNet.sample_network` draw the stochastic binary-weight networks the quasi
network stands for, and :func:`monte_carlo_moments` averages them.

Reference: K. Zhang, M. Yin, Y.-X. Wang, "Why Quantization Improves Generalization: NTK
of Binary Weight Neural Networks", arXiv:2206.05916 (2022).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from onebit.errors import ConfigError, DataError, unknown_choice

__all__ = ["QUASI_VARIANTS", "MonteCarloMoments", "QuasiBinaryNet", "QuasiLinear", "monte_carlo_moments",
           "quasi_relu", "quasi_relu_moments"]

log = logging.getLogger(__name__)

QUASI_VARIANTS = ("mean", "carry")

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _normal_parts(mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """σ, Φ(μ/σ) and φ(μ/σ), with σ floored just above 0 (σ → 0 gives the plain ReLU)."""
    sigma = torch.sqrt(var.clamp_min(torch.finfo(var.dtype).tiny ** 0.5))
    t = mean / sigma
    return sigma, torch.special.ndtr(t), torch.exp(-0.5 * t * t) * _INV_SQRT_2PI


def quasi_relu(mean: Tensor, var: Tensor) -> Tensor:
    """E[ReLU(z)] for z ~ N(mean, var): ``μΦ(μ/σ) + σφ(μ/σ)`` (Zhang et al. 2022, the quasi ReLU).

    Smooth in μ and σ; equals ReLU(μ) as σ → 0. Elementwise; ``var`` must be ≥ 0.
    """
    sigma, cdf, pdf = _normal_parts(mean, var)
    return mean * cdf + sigma * pdf


def quasi_relu_moments(mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of ReLU(z) for z ~ N(mean, var).

    ``E = μΦ(t) + σφ(t)``, ``E[ReLU²] = (μ² + σ²)Φ(t) + μσφ(t)`` with t = μ/σ; the
    variance is ``E[ReLU²] − E²`` (floored at 0 against rounding).
    """
    sigma, cdf, pdf = _normal_parts(mean, var)
    first = mean * cdf + sigma * pdf
    second = (mean * mean + sigma * sigma) * cdf + mean * sigma * pdf
    return first, (second - first * first).clamp_min(0.0)


class QuasiLinear(nn.Module):
    """A stochastic binary-weight linear layer, held as θ = E[w] ∈ [−1, 1] (out × in).

    ``moments(m, v)`` gives the pre-activation's Gaussian mean and variance
    ``μ = s·θm``, ``σ² = s²·[(1 − θ²)·m² + Σ v]`` with ``s = 1/√in_features``;
    ``forward(x)`` is ``μ`` (the layer's expected output). θ is clamped to [−1, 1] in
    every use (a probability must stay one); it starts uniform in ``[−init_range, init_range]``.
    """

    def __init__(self, in_features: int, out_features: int, *, init_range: float = 1.0,
                 generator: torch.Generator | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(init_range, int | float) and 0.0 <= init_range <= 1.0):
            raise ConfigError(f"init_range must be a number in [0, 1], got {init_range!r}")
        self.in_features, self.out_features = in_features, out_features
        self.scale = 1.0 / math.sqrt(in_features)
        theta = (torch.rand(out_features, in_features, generator=generator, dtype=torch.float64) * 2 - 1) * init_range
        self.theta = nn.Parameter(theta.to(dtype or torch.get_default_dtype()))

    def probabilities(self) -> Tensor:
        """P(w = +1) = (1 + θ)/2, per weight."""
        return (1.0 + self.theta.detach().clamp(-1.0, 1.0)) / 2.0

    def moments(self, mean: Tensor, var: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Pre-activation mean and variance for inputs of mean ``mean`` (and variance ``var``), both (N, in)."""
        theta = self.theta.clamp(-1.0, 1.0)
        s2 = self.scale * self.scale
        mu = self.scale * (mean @ theta.T)
        sigma2 = s2 * ((mean * mean) @ (1.0 - theta * theta).T)
        if var is not None:
            sigma2 = sigma2 + s2 * var.sum(dim=-1, keepdim=True)
        return mu, sigma2

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * (x @ self.theta.clamp(-1.0, 1.0).T)

    def sample_weight(self, samples: int, generator: torch.Generator | None = None) -> Tensor:
        """``samples`` draws of the ±1 weight matrix, shaped (samples, out, in)."""
        p = self.probabilities()
        u = torch.rand((samples, *p.shape), generator=generator, dtype=p.dtype)
        return (u < p).to(p.dtype).mul_(2.0).sub_(1.0)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class QuasiBinaryNet(nn.Module):
    """The quasi network of a binary-weight ReLU MLP: ``in → hidden… → out`` (Zhang et al. 2022).

    Each hidden layer maps the previous layer's mean ``m`` (and, with ``variant="carry"``,
    its variance ``v``) through :meth:`QuasiLinear.moments` and the quasi ReLU
    (:func:`quasi_relu_moments`); the output layer is linear, so ``forward(x)`` returns
    ``s·θ_L m_{L−1}``, the expected output of the stochastic binary-weight net (exact
    for one hidden layer up to the Gaussian approximation of its pre-activations).
    Inputs are flattened to (N, in_features). ``variant``: ``"mean"`` (the paper's quasi
    network: the input of each layer is taken as its mean) or ``"carry"``.
    """

    def __init__(self, in_features: int, hidden: int | Sequence[int], out_features: int = 1, *,
                 variant: str = "mean", init_range: float = 1.0, seed: int = 0,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if variant not in QUASI_VARIANTS:
            raise unknown_choice("quasi variant", variant, QUASI_VARIANTS)
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        for w in widths:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ConfigError(f"hidden widths must be positive integers, got {hidden!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        generator = torch.Generator().manual_seed(seed)
        sizes = [in_features, *widths, out_features]
        self.variant = variant
        self.in_features, self.out_features = in_features, out_features
        self.layers = nn.ModuleList(
            QuasiLinear(a, b, init_range=init_range, generator=generator, dtype=dtype)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    @property
    def depth(self) -> int:
        """The number of hidden layers."""
        return len(self.layers) - 1

    def _flat(self, x: Tensor | np.ndarray) -> Tensor:
        x = torch.as_tensor(x)
        if x.dim() < 1 or x.shape[0] < 1:
            raise DataError(f"the quasi network needs a batch of at least one input, got shape {tuple(x.shape)}")
        x = x.reshape(x.shape[0], -1) if x.dim() != 1 else x.reshape(1, -1)
        if x.shape[1] != self.in_features:
            raise DataError(f"inputs have {x.shape[1]} features per sample, the quasi network takes "
                            f"{self.in_features}")
        return x.to(self.layers[0].theta.dtype)

    def _check_layer(self, layer: int | None) -> int:
        last = len(self.layers) - 1
        if layer is None:
            return last
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer <= last:
            raise ConfigError(f"layer must be an integer in [0, {last}] (0 = first hidden layer, "
                              f"{last} = output), got {layer!r}")
        return layer

    def forward_moments(self, x: Tensor | np.ndarray, layer: int | None = None) -> tuple[Tensor, Tensor]:
        """Mean and variance of layer ``layer``'s output (hidden: after the ReLU; default: the output)."""
        stop = self._check_layer(layer)
        mean, var = self._flat(x), None
        for i, lin in enumerate(self.layers):
            mu, sigma2 = lin.moments(mean, var)
            if i == len(self.layers) - 1:
                return mu, sigma2
            mean, act_var = quasi_relu_moments(mu, sigma2)
            if i == stop:
                return mean, act_var
            var = act_var if self.variant == "carry" else None
        raise AssertionError("unreachable")

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_moments(x)[0]

    @torch.no_grad()
    def sample_forward(self, x: Tensor | np.ndarray, samples: int, generator: torch.Generator | None = None,
                       layer: int | None = None) -> Tensor:
        """Outputs of ``samples`` independently drawn binary-weight nets, shaped (samples, N, width).

        Every weight of every layer is drawn anew per sample (±1 with P(+1) = (1 + θ)/2);
        the nets compute ``ReLU(s·W x)`` per hidden layer and ``s·W h`` at the output.
        """
        _check_count("samples", samples)
        stop = self._check_layer(layer)
        h = self._flat(x).unsqueeze(0).expand(samples, -1, -1)
        for i, lin in enumerate(self.layers[:stop + 1]):
            w = lin.sample_weight(samples, generator).to(h.dtype)
            h = lin.scale * torch.bmm(h, w.transpose(1, 2))
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h

    @torch.no_grad()
    def sample_network(self, generator: torch.Generator | None = None) -> nn.Sequential:
        """One draw of the stochastic net as an onebit binary-weight MLP (QuantLinear layers).

        Each layer is a :class:`~onebit.nn.QuantLinear` with ``weight_quantizer="ste_sign"``,
        float inputs, its ±1 draw as weight and the factor ``s = 1/√in`` as its learned scale
        (so :func:`onebit.summary` counts 1-bit weights), with ReLU between layers.
        """
        from onebit.nn import QuantLinear

        modules: list[nn.Module] = [nn.Flatten()]
        for i, lin in enumerate(self.layers):
            layer = QuantLinear(lin.in_features, lin.out_features, bias=False, weight_quantizer="ste_sign",
                                scaling="learned", dtype=lin.theta.dtype)
            layer.weight.copy_(lin.sample_weight(1, generator)[0])
            layer.scale.fill_(lin.scale)
            modules.append(layer)
            if i < len(self.layers) - 1:
                modules.append(nn.ReLU())
        return nn.Sequential(*modules)


@dataclass(frozen=True)
class MonteCarloMoments:
    """Monte-Carlo mean, standard deviation and standard error (std/√samples) per output, over sampled nets."""

    mean: Tensor
    std: Tensor
    std_error: Tensor
    samples: int


def monte_carlo_moments(net: QuasiBinaryNet, x: Tensor | np.ndarray, samples: int = 1000, *, seed: int = 0,
                        layer: int | None = None, block: int = 64) -> MonteCarloMoments:
    """Mean and standard error of the outputs of ``samples`` sampled binary-weight nets.

    Drawn ``block`` nets at a time (memory: block × the largest weight matrix); sums are
    accumulated in float64, so the result does not depend on ``block`` beyond the draws.
    The standard error ``std/√samples`` is what a quasi-vs-MC comparison is measured in.
    """
    _check_count("samples", samples)
    _check_count("block", block)
    generator = torch.Generator().manual_seed(seed)
    total = total_sq = None
    done = 0
    while done < samples:
        b = min(block, samples - done)
        out = net.sample_forward(x, b, generator, layer=layer).to(torch.float64)
        s1, s2 = out.sum(0), (out * out).sum(0)
        total = s1 if total is None else total + s1
        total_sq = s2 if total_sq is None else total_sq + s2
        done += b
    assert total is not None and total_sq is not None
    mean = total / samples
    var = (total_sq - samples * mean * mean).clamp_min(0.0) / max(samples - 1, 1)
    std = var.sqrt()
    log.info("Monte Carlo over %d sampled binary-weight nets", samples)
    return MonteCarloMoments(mean, std, std / math.sqrt(samples), samples)


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer (n ≥ 1), got {value!r}")
