"""The empirical neural tangent kernel of any PyTorch model, and a real-weight ReLU MLP in NTK parameterization.

The empirical NTK of a network f with parameters p is the Gram matrix of its parameter
Jacobians (Jacot, Gabriel & Hongler 2018):

    Θ(x, x')_{kl} = Σ_p ∂f_k(x)/∂p · ∂f_l(x')/∂p.

:func:`empirical_ntk` computes it with ``torch.func`` (``vmap`` of ``jacrev`` over the
samples, through ``functional_call``), in blocks of samples sized to a memory budget, in
float64 by default (a kernel's small eigenvalues need the precision). It works on any
module: a trained onebit network, a :class:`~onebit.analysis.quasi.QuasiBinaryNet`, or the
real-weight :class:`NTKReLUNet`, whose empirical NTK tends to the analytic
:func:`~onebit.analysis.kernels.relu_ntk` as its width grows (the error falls like 1/√width).

Reference for the use made of it here: K. Zhang, M. Yin, Y.-X. Wang, "Why Quantization
Improves Generalization: NTK of Binary Weight Neural Networks", arXiv:2206.05916 (2022).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from onebit.errors import ConfigError, DataError, unknown_choice

__all__ = ["NTK_OUTPUTS", "NTKReLUNet", "empirical_ntk", "relative_error"]

log = logging.getLogger(__name__)

NTK_OUTPUTS = ("mean", "full")


class NTKReLUNet(nn.Module):
    """A real-weight ReLU MLP in NTK parameterization: the counterpart of the binary-weight net.

    ``h⁰ = x`` (flattened), ``zˡ = σ_w Wˡ hˡ⁻¹/√fan_in + σ_b bˡ``, ``hˡ = ReLU(zˡ)``, output
    ``z^L``; every W and b drawn from N(0, 1) (biases only where ``bias_std > 0``). Its NTK at
    infinite width is :func:`onebit.analysis.kernels.relu_ntk` with the same ``weight_std``,
    ``bias_std`` and ``depth = len(hidden)`` (Jacot et al. 2018).
    """

    def __init__(self, in_features: int, hidden: int | Sequence[int], out_features: int = 1, *,
                 weight_std: float = 1.0, bias_std: float = 0.0, seed: int = 0,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        sizes = [in_features, *widths, out_features]
        for w in sizes:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ConfigError(f"layer widths must be positive integers, got in={in_features!r}, "
                                  f"hidden={hidden!r}, out={out_features!r}")
        if not (isinstance(weight_std, int | float) and weight_std > 0):
            raise ConfigError(f"weight_std must be a positive number, got {weight_std!r}")
        if not (isinstance(bias_std, int | float) and bias_std >= 0):
            raise ConfigError(f"bias_std must be a number ≥ 0, got {bias_std!r}")
        generator = torch.Generator().manual_seed(seed)
        dtype = dtype or torch.get_default_dtype()
        self.in_features, self.weight_std, self.bias_std = in_features, float(weight_std), float(bias_std)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(b, a, generator=generator, dtype=torch.float64).to(dtype))
            for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.randn(b, generator=generator, dtype=torch.float64).to(dtype)) for b in sizes[1:]
        ) if bias_std > 0 else None

    def forward(self, x: Tensor) -> Tensor:
        h = x.reshape(x.shape[0], -1)
        last = len(self.weights) - 1
        for i, w in enumerate(self.weights):
            h = self.weight_std * (h @ w.T) / math.sqrt(w.shape[1])
            if self.biases is not None:
                h = h + self.bias_std * self.biases[i]
            if i < last:
                h = torch.relu(h)
        return h


def relative_error(estimate: Any, reference: Any) -> float:
    """Relative Frobenius error ``‖estimate − reference‖_F / ‖reference‖_F``."""
    a, b = np.asarray(estimate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"the two matrices differ in shape: {a.shape} and {b.shape}")
    norm = np.linalg.norm(b)
    if norm == 0:
        raise DataError("the reference matrix is zero: a relative error is undefined")
    return float(np.linalg.norm(a - b) / norm)


def _as_batch(x: Any, what: str, dtype: torch.dtype) -> Tensor:
    try:
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"{what} must be a numeric array shaped (N, ...), got {type(x).__name__} ({exc})") from None
    if t.dim() < 1 or t.shape[0] < 1:
        raise DataError(f"{what} must hold at least one sample (shape (N, ...), N ≥ 1), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise DataError(f"{what} holds NaN or infinite values")
    return t.detach().to(dtype)


def empirical_ntk(model: nn.Module, x: Any, x2: Any = None, *, output: str = "mean",
                  dtype: torch.dtype = torch.float64, memory_mb: float = 1024.0) -> np.ndarray:
    """The empirical NTK of ``model`` between the samples ``x`` and ``x2`` (default: ``x``).

    ``output="mean"``: shape (N1, N2), the per-output kernels averaged over the model's
    output units, ``(1/c)·Σ_k ⟨∂f_k(x)/∂p, ∂f_k(x')/∂p⟩`` (at infinite width each equals the
    scalar NTK); ``output="full"``: shape (N1, N2, c, c). The derivatives are taken with
    respect to every parameter with ``requires_grad`` (freeze one to leave it out), with the
    model in eval mode (BatchNorm uses its running statistics), in ``dtype``. Jacobians are
    computed ``block`` samples at a time so that one block's (block × c × parameters) fits
    ``memory_mb``; a block of ``x2`` is cached when all of them fit, else recomputed.
    Quantizers with a straight-through estimator contribute their surrogate gradient.
    """
    from torch.func import functional_call, jacrev, vmap

    if output not in NTK_OUTPUTS:
        raise unknown_choice("NTK output", output, NTK_OUTPUTS)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"empirical_ntk needs a torch module, got {type(model).__name__}")
    if not (isinstance(memory_mb, int | float) and memory_mb > 0):
        raise ConfigError(f"memory_mb must be a positive number, got {memory_mb!r}")
    params = {n: p.detach().to(dtype) for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters: its NTK is zero")
    buffers = {n: b.to(dtype) if b.is_floating_point() else b for n, b in model.named_buffers()}
    xa = _as_batch(x, "x", dtype)
    xb = xa if x2 is None else _as_batch(x2, "x2", dtype)
    if xb.shape[1:] != xa.shape[1:]:
        raise DataError(f"x2 samples have shape {tuple(xb.shape[1:])}, x samples {tuple(xa.shape[1:])}")

    def single(p: dict[str, Tensor], xi: Tensor) -> Tensor:
        return functional_call(model, (p, buffers), (xi.unsqueeze(0),)).reshape(-1)

    was_training = model.training
    model.eval()
    try:
        try:
            with torch.no_grad():
                width = single(params, xa[0]).numel()
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"samples of shape {tuple(xa.shape[1:])} do not fit {type(model).__name__}: "
                            f"{first}") from None
        n_params = sum(p.numel() for p in params.values())
        per_sample = width * n_params * torch.finfo(dtype).bits // 8
        block = max(1, min(len(xa), int(memory_mb * 2**20 // (3 * per_sample))))
        jacobian = _jacobian_fn(single, params, xa[:1], vmap, jacrev)
        log.info("empirical NTK: %d × %d samples, %d outputs, %d parameters, blocks of %d", len(xa), len(xb),
                 width, n_params, block)
        kernel = _assemble(jacobian, xa, None if x2 is None else xb, block, output, width, per_sample, memory_mb)
    finally:
        model.train(was_training)
    return kernel.cpu().numpy()


def _jacobian_fn(single: Callable[..., Tensor], params: dict[str, Tensor], probe: Tensor, vmap: Any,
                 jacrev: Any) -> Callable[[Tensor], Tensor]:
    """A function: samples (B, ...) → flattened Jacobians (B, c, P). ``vmap(jacrev)`` where the
    model allows it; else plain autograd, one sample and one output at a time (an
    ``autograd.Function`` without functorch support, such as a straight-through sign)."""
    names = list(params)
    batched = vmap(jacrev(single), in_dims=(None, 0))

    def vectorized(xs: Tensor) -> Tensor:
        jac = batched(params, xs)
        return torch.cat([jac[n].reshape(len(xs), jac[n].shape[1], -1) for n in names], dim=2)

    try:
        vectorized(probe)
        return vectorized
    except (RuntimeError, NotImplementedError) as exc:
        log.info("torch.func does not run this model (%s); Jacobians by autograd, one sample at a time",
                 str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def looped(xs: Tensor) -> Tensor:
        rows = []
        for xi in xs:
            leaves = {n: p.clone().requires_grad_(True) for n, p in params.items()}
            with torch.enable_grad():
                out = single(leaves, xi)
                grads = [torch.autograd.grad(o, list(leaves.values()), retain_graph=True, allow_unused=True)
                         for o in out]
            rows.append(torch.stack([torch.cat([(torch.zeros_like(leaves[n]) if g is None else g).reshape(-1)
                                                for n, g in zip(names, gs, strict=True)]) for gs in grads]))
        return torch.stack(rows)

    return looped


def _assemble(jacobian: Callable[[Tensor], Tensor], xa: Tensor, xb: Tensor | None, block: int, output: str,
              width: int, per_sample: int, memory_mb: float) -> Tensor:
    symmetric = xb is None
    other = xa if xb is None else xb
    starts_a = list(range(0, len(xa), block))
    starts_b = list(range(0, len(other), block))
    cache_b = len(other) * per_sample <= memory_mb * 2**20 / 2
    cached: dict[int, Tensor] = {}
    n2 = len(other)
    shape = (len(xa), n2) if output == "mean" else (len(xa), n2, width, width)
    kernel = torch.zeros(shape, dtype=xa.dtype)

    def jac_b(start: int) -> Tensor:
        if start in cached:
            return cached[start]
        j = jacobian(other[start:start + block])
        if cache_b:
            cached[start] = j
        return j

    for sa in starts_a:
        ja = jac_b(sa) if symmetric else jacobian(xa[sa:sa + block])
        for sb in starts_b:
            if symmetric and sb < sa:
                continue
            jb = ja if symmetric and sb == sa else jac_b(sb)
            if output == "mean":
                part = torch.einsum("akp,bkp->ab", ja, jb) / width
            else:
                part = torch.einsum("akp,blp->abkl", ja, jb)
            kernel[sa:sa + len(ja), sb:sb + len(jb)] = part
            if symmetric and sb != sa:
                kernel[sb:sb + len(jb), sa:sa + len(ja)] = part.transpose(0, 1) if output == "mean" \
                    else part.permute(1, 0, 3, 2)
    return kernel
