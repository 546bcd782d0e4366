"""Quantizers: the forward map of a binary (or few-bit) layer and its pseudo-gradient.

Sign and step functions have zero gradient almost everywhere, so BNNs train through a
pseudo-gradient (straight-through estimator, STE). Each quantizer here is a
``torch.autograd.Function`` (the math) wrapped in an ``nn.Module`` (the configuration),
registered under a string name so layers and checkpoints can refer to it.

Conventions shared with export and runtime: sign(0) = +1; a quantizer's ``bits`` is
the precision of its output (1 for ±1 or {0, 1}); ``config()`` returns the keyword
arguments that rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from onebit.errors import ConfigError, unknown_choice

__all__ = [
    "QUANTIZERS",
    "ApproxSign",
    "DoReFa",
    "MagnitudeAwareSign",
    "Quantizer",
    "SteHeaviside",
    "SteSign",
    "SteTern",
    "SwishSign",
    "XnorSign",
    "approx_sign",
    "dorefa",
    "get_quantizer",
    "magnitude_aware_sign",
    "register_quantizer",
    "sign",
    "ste_heaviside",
    "ste_sign",
    "ste_tern",
    "swish_sign",
    "xnor_sign",
]

QUANTIZERS: dict[str, type[Quantizer]] = {}


def register_quantizer(name: str) -> Callable[[type[Quantizer]], type[Quantizer]]:
    """Class decorator: make a quantizer available by ``name`` in layers and checkpoints."""

    def wrap(cls: type[Quantizer]) -> type[Quantizer]:
        if name in QUANTIZERS:
            raise ConfigError(f"quantizer name {name!r} is already registered")
        cls.name = name
        QUANTIZERS[name] = cls
        return cls

    return wrap


def sign(x: Tensor) -> Tensor:
    """sign with sign(0) = +1 (also for -0.0), values in {-1, +1}; no gradient."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def _check_clip(clip_value: float | None) -> float | None:
    if clip_value is not None and not clip_value > 0:
        raise ConfigError(f"clip_value must be > 0 or None (no clipping), got {clip_value!r}")
    return None if clip_value is None else float(clip_value)


def _clipped(x: Tensor, grad: Tensor, clip_value: float | None) -> Tensor:
    """Straight-through gradient, zeroed where |x| > clip_value (the edges pass)."""
    if clip_value is None:
        return grad
    return torch.where(x.abs() <= clip_value, grad, torch.zeros_like(grad))


class _SteSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, clip_value: float | None) -> Tensor:
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return sign(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return _clipped(x, grad, ctx.clip_value), None


class _ApproxSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


class _SwishSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, beta: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.beta = beta
        return sign(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        bx = ctx.beta * x
        # cosh overflows for |bx| > ~88 in float32; the gradient there is 0 anyway.
        bx = bx.clamp(-80.0, 80.0)
        d = ctx.beta * (2.0 - bx * torch.tanh(bx / 2.0)) / (1.0 + torch.cosh(bx))
        return grad * d, None


class _SteHeaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, clip_value: float | None, strict: bool = False) -> Tensor:
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return ((x > 0) if strict else (x >= 0)).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return _clipped(x, grad, ctx.clip_value), None, None


class _SteTern(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, threshold: Tensor, clip_value: float | None) -> Tensor:
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return torch.where(x.abs() > threshold, sign(x), torch.zeros_like(x))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return _clipped(x, grad, ctx.clip_value), None, None


class _RoundIdentity(torch.autograd.Function):
    """round(x·n)/n forward, identity backward (DoReFa's quantize_k)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, levels: int) -> Tensor:
        return torch.round(x * levels) / levels

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


class _XnorSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, w: Tensor, clip_value: float | None) -> Tensor:
        alpha = _channel_mean_abs(w)
        ctx.save_for_backward(w, alpha)
        ctx.clip_value = clip_value
        return alpha * sign(w)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        w, alpha = ctx.saved_tensors
        n = w[0].numel()
        return grad / n + alpha * _clipped(w, grad, ctx.clip_value), None


def _channel_mean_abs(w: Tensor) -> Tensor:
    """α_c = mean |w| over every axis but the first (the output channel), kept broadcastable."""
    if w.dim() < 2:
        raise ConfigError(
            f"per-output-channel weight scaling needs a weight with an output-channel axis, "
            f"got shape {tuple(w.shape)}"
        )
    return w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)


def ste_sign(x: Tensor, clip_value: float | None = 1.0) -> Tensor:
    """sign(x) forward; gradient ``g · 1[|x| ≤ clip_value]`` (BinaryNet's STE)."""
    return _SteSign.apply(x, _check_clip(clip_value))


def approx_sign(x: Tensor) -> Tensor:
    """sign(x) forward; gradient ``g · max(0, 2 − 2|x|)`` (Bi-Real Net's ApproxSign)."""
    return _ApproxSign.apply(x)


def swish_sign(x: Tensor, beta: float = 5.0) -> Tensor:
    """sign(x) forward; gradient of 2σ(βx)(1 + βx(1 − σ(βx))) − 1 (BNN+ SignSwish):
    ``g · β(2 − βx·tanh(βx/2)) / (1 + cosh(βx))``."""
    return _SwishSign.apply(x, float(beta))


def magnitude_aware_sign(w: Tensor, clip_value: float | None = 1.0) -> Tensor:
    """``α_c · sign(w)`` with α_c = mean |w_c| per output channel (Bi-Real Net).

    α carries no gradient (stop-gradient, as in Larq); sign uses the clipped STE.
    """
    alpha = _channel_mean_abs(w).detach()
    return alpha * ste_sign(w, clip_value)


def xnor_sign(w: Tensor, clip_value: float | None = 1.0) -> Tensor:
    """``α_c · sign(w)``, α_c = mean |w_c| (XNOR-Net), with the paper's gradient
    ``∂C/∂w_i = g_i · (1/n + α_c · 1[|w_i| ≤ clip_value])``, n = weights per channel."""
    return _XnorSign.apply(w, _check_clip(clip_value))


def ste_heaviside(x: Tensor, clip_value: float | None = 1.0, strict: bool = False) -> Tensor:
    """Step to {0, 1}: 1 where x ≥ 0 (matching sign(0) = +1), or with ``strict`` 1 where
    x > 0 (Larq's ``ste_heaviside``, which maps 0 to 0); gradient ``g · 1[|x| ≤ clip_value]``."""
    return _SteHeaviside.apply(x, _check_clip(clip_value), bool(strict))


def ste_tern(
    x: Tensor,
    threshold_value: float = 0.05,
    ternary_weight_networks: bool = False,
    clip_value: float | None = 1.0,
) -> Tensor:
    """Ternary {-1, 0, +1}: sign(x) where |x| > Δ, else 0; clipped STE gradient.

    Δ = ``threshold_value``, or with ``ternary_weight_networks`` the TWN rule
    Δ = 0.7 · mean |x| over the whole tensor (Li & Liu 2016), Δ carrying no gradient.
    The threshold is exclusive; Larq's ``ste_tern`` (``sign(sign(x + Δ) + sign(x − Δ))``)
    gives ±1 at |x| = Δ, which ``onebit.convert`` reproduces with Δ' = the next float32 below Δ.
    """
    if ternary_weight_networks:
        delta = 0.7 * x.detach().abs().mean()
    else:
        if not threshold_value >= 0:
            raise ConfigError(f"threshold_value must be ≥ 0, got {threshold_value!r}")
        delta = torch.tensor(float(threshold_value), dtype=x.dtype, device=x.device)
    return _SteTern.apply(x, delta, _check_clip(clip_value))


def dorefa(x: Tensor, k_bit: int = 2, mode: str = "activations") -> Tensor:
    """DoReFa-Net k-bit quantizer (Zhou et al. 2016), identity gradient through the rounding.

    activations: q_k(clip(x, 0, 1)) in [0, 1], gradient zero outside [0, 1].
    weights: t = tanh(w) / (2·max|tanh(w)|) + 1/2 (the max carries no gradient),
    output 2·q_k(t) − 1 in [−1, 1]. q_k(t) = round(t·(2^k − 1)) / (2^k − 1).
    """
    if not isinstance(k_bit, int) or isinstance(k_bit, bool) or not 1 <= k_bit <= 16:
        raise ConfigError(f"k_bit must be an integer in 1..16, got {k_bit!r}")
    levels = 2**k_bit - 1
    if mode == "activations":
        return _RoundIdentity.apply(torch.clamp(x, 0.0, 1.0), levels)
    if mode == "weights":
        t = torch.tanh(x)
        t = t / (2.0 * t.detach().abs().max().clamp_min(1e-12)) + 0.5
        return 2.0 * _RoundIdentity.apply(t, levels) - 1.0
    raise unknown_choice("dorefa mode", mode, ["activations", "weights"])


class Quantizer(nn.Module):
    """Base class: a named, configurable quantizer module.

    ``bits`` is the output precision; ``signed`` says whether the 1-bit output is ±1
    (XNOR-popcount ready) rather than {0, 1}; ``scaled`` says whether the output carries
    a per-output-channel real factor α (weights only).
    """

    name: ClassVar[str] = ""
    bits: int = 1
    signed: bool = True
    scaled: bool = False

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this quantizer: ``QUANTIZERS[name](**config())``."""
        return {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


@register_quantizer("ste_sign")
class SteSign(Quantizer):
    """sign(x), sign(0) = +1; straight-through gradient clipped at ``clip_value`` (BinaryNet)."""

    def __init__(self, clip_value: float | None = 1.0) -> None:
        super().__init__()
        self.clip_value = _check_clip(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return ste_sign(x, self.clip_value)

    def config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}


@register_quantizer("approx_sign")
class ApproxSign(Quantizer):
    """sign(x) with Bi-Real Net's piecewise-polynomial gradient max(0, 2 − 2|x|)."""

    def forward(self, x: Tensor) -> Tensor:
        return approx_sign(x)


@register_quantizer("swish_sign")
class SwishSign(Quantizer):
    """sign(x) with the SignSwish gradient of BNN+ (Darabi et al. 2018), sharpness β."""

    def __init__(self, beta: float = 5.0) -> None:
        super().__init__()
        if not beta > 0:
            raise ConfigError(f"beta must be > 0, got {beta!r}")
        self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        return swish_sign(x, self.beta)

    def config(self) -> dict[str, Any]:
        return {"beta": self.beta}


@register_quantizer("magnitude_aware_sign")
class MagnitudeAwareSign(Quantizer):
    """Weights: α_c · sign(w), α_c = mean |w_c| per output channel, stop-gradient on α."""

    scaled = True

    def __init__(self, clip_value: float | None = 1.0) -> None:
        super().__init__()
        self.clip_value = _check_clip(clip_value)

    def forward(self, w: Tensor) -> Tensor:
        return magnitude_aware_sign(w, self.clip_value)

    def config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}


@register_quantizer("xnor_sign")
class XnorSign(Quantizer):
    """Weights: α_c · sign(w), α_c = mean |w_c| (XNOR-Net), with the paper's gradient."""

    scaled = True

    def __init__(self, clip_value: float | None = 1.0) -> None:
        super().__init__()
        self.clip_value = _check_clip(clip_value)

    def forward(self, w: Tensor) -> Tensor:
        return xnor_sign(w, self.clip_value)

    def config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}


@register_quantizer("ste_heaviside")
class SteHeaviside(Quantizer):
    """Step to {0, 1} (1 where x ≥ 0; ``strict``: x > 0, as Larq) with a clipped straight-through gradient."""

    signed = False

    def __init__(self, clip_value: float | None = 1.0, strict: bool = False) -> None:
        super().__init__()
        self.clip_value = _check_clip(clip_value)
        self.strict = bool(strict)

    def forward(self, x: Tensor) -> Tensor:
        return ste_heaviside(x, self.clip_value, self.strict)

    def config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value, **({"strict": True} if self.strict else {})}


@register_quantizer("ste_tern")
class SteTern(Quantizer):
    """Ternary {-1, 0, +1} with a fixed threshold or TWN's Δ = 0.7·mean|x|; clipped STE."""

    bits = 2

    def __init__(
        self,
        threshold_value: float = 0.05,
        ternary_weight_networks: bool = False,
        clip_value: float | None = 1.0,
    ) -> None:
        super().__init__()
        if not threshold_value >= 0:
            raise ConfigError(f"threshold_value must be ≥ 0, got {threshold_value!r}")
        self.threshold_value = float(threshold_value)
        self.ternary_weight_networks = bool(ternary_weight_networks)
        self.clip_value = _check_clip(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return ste_tern(x, self.threshold_value, self.ternary_weight_networks, self.clip_value)

    def config(self) -> dict[str, Any]:
        return {
            "threshold_value": self.threshold_value,
            "ternary_weight_networks": self.ternary_weight_networks,
            "clip_value": self.clip_value,
        }


@register_quantizer("dorefa")
class DoReFa(Quantizer):
    """DoReFa-Net k-bit quantizer for ``mode="activations"`` or ``mode="weights"``."""

    def __init__(self, k_bit: int = 2, mode: str = "activations") -> None:
        super().__init__()
        if mode not in ("activations", "weights"):
            raise unknown_choice("dorefa mode", mode, ["activations", "weights"])
        if not isinstance(k_bit, int) or isinstance(k_bit, bool) or not 1 <= k_bit <= 16:
            raise ConfigError(f"k_bit must be an integer in 1..16, got {k_bit!r}")
        self.k_bit = k_bit
        self.mode = mode
        self.bits = k_bit
        # 1-bit activations are {0, 1}; 1-bit weights are {-1, +1}.
        self.signed = mode == "weights"

    def forward(self, x: Tensor) -> Tensor:
        return dorefa(x, self.k_bit, self.mode)

    def config(self) -> dict[str, Any]:
        return {"k_bit": self.k_bit, "mode": self.mode}


def get_quantizer(spec: str | Quantizer | None, **kwargs: Any) -> Quantizer | None:
    """A quantizer from a registered name (plus keyword arguments), an instance, or None."""
    if spec is None:
        if kwargs:
            raise ConfigError(f"quantizer arguments {sorted(kwargs)} given without a quantizer")
        return None
    if isinstance(spec, Quantizer):
        if kwargs:
            raise ConfigError("quantizer arguments can only accompany a quantizer name")
        return spec
    if isinstance(spec, str):
        if spec.lower() in ("none", "float"):
            return get_quantizer(None, **kwargs)
        if spec == "rsign":
            raise ConfigError(
                "'rsign' holds one learned threshold per input channel: give a layer RSign(channels), or use a "
                "model that builds one per layer (binary_cnn1d, binary_cnn2d, binarynet_mlp, binarynet_cnn, tfc, "
                "sfc, lfc; the ReActNet models have it built in)"
            )
        if spec not in QUANTIZERS:
            raise unknown_choice("quantizer", spec, QUANTIZERS)
        try:
            return QUANTIZERS[spec](**kwargs)
        except TypeError as exc:
            raise ConfigError(f"bad arguments for quantizer {spec!r}: {exc}") from None
    raise ConfigError(
        f"a quantizer must be a registered name, a Quantizer instance or None, got {type(spec).__name__}"
    )
