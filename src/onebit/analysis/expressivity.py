"""Expressive power of binary and ternary networks (Beknazaryan 2022, arXiv:2206.13280).

The paper shows that deep ReLU networks with binary weights {±1} and sparse deep ReLU
networks with ternary weights {0, ±1} approximate β-Hölder functions on [0,1]^d, and that
networks of depth 2 with the binary activation 1_[a,b) approximate every continuous
function on [0,1]^d. This module turns both statements into things to run:

- :func:`indicator_network` builds the depth-2 network with activation 1_[a,b)
  (:class:`IndicatorNetwork`) that is constant on the cells of an n × … × n grid and
  equals f at the cell centres, so that ``sup |f − net| ≤ ω_f(√d / 2n)``
  (:func:`indicator_bound`, ω_f the modulus of continuity);
- :class:`QuantizedMLP` is a ReLU MLP whose weights are binary (``ste_sign``) or ternary
  (``ste_tern``) with real biases and one real output scale, trained on a target by
  :func:`fit_target`;
- :func:`sup_error` measures ``max |f(x) − net(x)|`` on a dense grid of [0,1]^d, for these
  networks or any model of the user's, and :func:`count_weights` counts its weights
  (all, and those that are not zero after quantization).

The targets the experiment uses (:data:`TARGETS`, e.g. ``sin(2πx) + |x − 0.3|^½``) carry
their Hölder exponent and a bound on their modulus of continuity. The experiment
``beknazaryan2022_expressivity`` (:mod:`onebit.experiments.beknazaryan2022`) runs all of it.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from onebit.errors import ConfigError, DataError, unknown_choice
from onebit.nn.layers import QuantLayer, QuantLinear
from onebit.nn.quantizers import Quantizer, SteSign, SteTern

__all__ = [
    "TARGETS",
    "WEIGHT_KINDS",
    "FitTargetResult",
    "HolderTarget",
    "Indicator",
    "IndicatorNetwork",
    "QuantizedMLP",
    "cell_centres",
    "count_weights",
    "evaluation_grid",
    "fit_target",
    "get_target",
    "indicator_bound",
    "indicator_network",
    "sup_error",
]

log = logging.getLogger(__name__)

TargetFn = Callable[[Tensor], Tensor]

# Rows × units of one chunk of the indicator net's second layer (keeps memory near 256 MB).
_CHUNK_ELEMENTS = 1 << 25


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class HolderTarget:
    """A target function on [0,1]^d with its Hölder exponent β and a modulus-of-continuity bound.

    ``fn`` maps an ``(m, d)`` tensor to ``(m,)``; ``modulus(δ)`` is an upper bound on
    ω_f(δ) = sup{|f(x) − f(y)| : ‖x − y‖₂ ≤ δ}; f is β-Hölder: ω_f(δ) ≤ C δ^β for δ ≤ 1.
    """

    name: str
    d: int
    beta: float
    formula: str
    fn: TargetFn = field(repr=False)
    modulus: Callable[[float], float] = field(repr=False)

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)


def _sin1d(x: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * x[:, 0])


def _holder1d(x: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * x[:, 0]) + (x[:, 0] - 0.3).abs().sqrt()


def _sin2d(x: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * x[:, 0]) * torch.cos(math.pi * x[:, 1])


def _holder2d(x: Tensor) -> Tensor:
    centre = torch.tensor([0.3, 0.6], dtype=x.dtype, device=x.device)
    return _sin2d(x) + (x - centre).norm(dim=1).sqrt()


# ω bounds: |sin 2πx − sin 2πy| ≤ 2π|x − y|; |√|u| − √|v|| ≤ √|u − v| (so ‖x − c‖^½ has ω(δ) ≤ √δ);
# ∇[sin(2πx₁)cos(πx₂)] has norm ≤ 2π (4π²c₁²c₂² + π²s₁²s₂² ≤ 4π²); ω of a sum ≤ the sum of the ω's.
TARGETS: dict[str, HolderTarget] = {
    t.name: t
    for t in (
        HolderTarget("sin1d", 1, 1.0, "sin(2πx)", _sin1d, lambda delta: 2 * math.pi * delta),
        HolderTarget("holder1d", 1, 0.5, "sin(2πx) + |x − 0.3|^½", _holder1d,
                     lambda delta: 2 * math.pi * delta + math.sqrt(delta)),
        HolderTarget("sin2d", 2, 1.0, "sin(2πx₁)·cos(πx₂)", _sin2d, lambda delta: 2 * math.pi * delta),
        HolderTarget("holder2d", 2, 0.5, "sin(2πx₁)·cos(πx₂) + ‖x − (0.3, 0.6)‖^½", _holder2d,
                     lambda delta: 2 * math.pi * delta + math.sqrt(delta)),
    )
}
"""The built-in targets: Lipschitz (β = 1) and ½-Hölder, in 1 and 2 dimensions."""


def get_target(name: str) -> HolderTarget:
    """The built-in target ``name`` (one of :data:`TARGETS`)."""
    if name not in TARGETS:
        raise unknown_choice("target", name, TARGETS)
    return TARGETS[name]


def _check_n(n: Any, what: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{what} must be an integer ≥ 1, got {n!r}")
    return n


def _check_d(d: Any) -> int:
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ConfigError(f"the input dimension d must be an integer ≥ 1, got {d!r}")
    return d


def _call_target(f: TargetFn, x: Tensor, what: str = "the target") -> Tensor:
    """``f(x)`` as a float64 vector of length ``len(x)``, or a DataError saying what came back."""
    try:
        y = f(x)
    except (RuntimeError, IndexError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{what} failed on inputs of shape {tuple(x.shape)}: {first}") from None
    y = torch.as_tensor(y, dtype=torch.float64)
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if tuple(y.shape) != (x.shape[0],):
        raise DataError(f"{what} returned shape {tuple(y.shape)} for inputs of shape {tuple(x.shape)}; "
                        f"expected ({x.shape[0]},) or ({x.shape[0]}, 1)")
    return y


# --------------------------------------------------------------------------- the constructive net


class Indicator(nn.Module):
    """The binary activation σ(t) = 1_[a,b)(t): 1 where a ≤ t < b, else 0."""

    def __init__(self, a: float = 0.0, b: float = 1.0) -> None:
        super().__init__()
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise ConfigError(f"the activation interval [a, b) needs finite a < b, got a={a!r}, b={b!r}")
        self.a, self.b = float(a), float(b)

    def forward(self, t: Tensor) -> Tensor:
        return ((t >= self.a) & (t < self.b)).to(t.dtype)

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}"


class IndicatorNetwork(nn.Module):
    """Depth-2 network with activation σ = 1_[a,b): piecewise constant on the n^d grid cells.

    Cells: C_κ = Π_j [κ_j/n, (κ_j+1)/n) for κ ∈ {0..n−1}^d (the last one closed at 1).

    - Hidden layer 1, d(n−1) units, thresholds of one coordinate each:
      g_{j,k}(x) = σ(a + (b−a)(x_j − k/n)/2) = 1[x_j ≥ k/n] for x_j ∈ [0, 1], k = 1..n−1.
      So s_j = Σ_k g_{j,k} = κ_j, the cell index along coordinate j.
    - Hidden layer 2, n^d units, one per cell, with the base-n code K_κ = Σ_j n^(j−1) κ_j:
      h_κ = σ((b−a)(Σ_j n^(j−1) s_j − K_κ) + (a+b)/2), which is 1 exactly when s = κ
      (the argument is (a+b)/2 ∈ [a, b) there, and ≤ a − (b−a)/2 or ≥ b + (b−a)/2 elsewhere).
      Its weight matrix has n^d equal rows (b−a)·uᵀ, u_{j,k} = n^(j−1), and is stored as u.
    - Output: net(x) = Σ_κ f(c_κ) h_κ(x) with c_κ the cell centre ((κ_j + ½)/n)_j.

    Hence net = f(c_κ) on C_κ and sup_{[0,1]^d} |f − net| ≤ ω_f(√d/(2n)). "Depth 2" counts hidden
    layers (the convention of Schmidt-Hieber 2020, used by Beknazaryan). Thresholds instead of
    interval units in layer 1 make the cells a partition in floating point too: a point within
    rounding of a boundary lands in one of the two neighbouring cells, never in none. Float64
    throughout; inputs outside [0,1]^d are not covered by the construction.
    Reference: Beknazaryan 2022, arXiv:2206.13280 (statement on depth-2 nets with 1_[a,b)).
    """

    def __init__(self, values: Tensor, n: int, d: int, a: float = 0.0, b: float = 1.0) -> None:
        super().__init__()
        self.n, self.d = _check_n(n), _check_d(d)
        self.activation = Indicator(a, b)
        a, b = self.activation.a, self.activation.b
        values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
        if values.numel() != n**d:
            raise ConfigError(f"an indicator network with n={n}, d={d} needs {n**d} cell values, got {values.numel()}")
        k = torch.arange(1, n, dtype=torch.float64)
        w1 = torch.zeros(d * (n - 1), d, dtype=torch.float64)
        for j in range(d):
            w1[j * (n - 1):(j + 1) * (n - 1), j] = (b - a) / 2
        self.register_buffer("weight1", w1)
        self.register_buffer("bias1", (a - (b - a) / 2 * k / n).repeat(d))
        self.register_buffer("code_weights", torch.tensor([float(n**j) for j in range(d)],
                                                          dtype=torch.float64).repeat_interleave(n - 1))
        codes = torch.arange(n**d, dtype=torch.float64)
        self.register_buffer("bias2", (a + b) / 2 - (b - a) * codes)
        self.register_buffer("output_weight", values)

    @property
    def hidden_units(self) -> tuple[int, int]:
        """The widths of the two hidden layers: (d(n−1), n^d)."""
        return self.d * (self.n - 1), self.n**self.d

    @property
    def num_weights(self) -> int:
        """Weights of the dense network: d(n−1) + n^d·d(n−1) + n^d (first layer one per unit)."""
        h1, h2 = self.hidden_units
        return h1 + h2 * h1 + h2

    def dense_layers(self) -> list[tuple[Tensor, Tensor]]:
        """The three affine maps (W, b) as dense tensors (for small n: layer 2 has n^d·d(n−1) entries)."""
        a, b = self.activation.a, self.activation.b
        h1, h2 = self.hidden_units
        w2 = ((b - a) * self.code_weights).expand(h2, h1).clone()
        return [(self.weight1, self.bias1), (w2, self.bias2),
                (self.output_weight.view(1, -1), torch.zeros(1, dtype=torch.float64))]

    def forward(self, x: Tensor) -> Tensor:
        x = _check_inputs(x, self.d)
        a, b = self.activation.a, self.activation.b
        g = self.activation(x @ self.weight1.T + self.bias1)          # (m, d(n−1)) thresholds
        code = g @ self.code_weights                                   # (m,) Σ_j n^(j−1) s_j
        out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
        rows = max(1, _CHUNK_ELEMENTS // self.n**self.d)
        for start in range(0, x.shape[0], rows):
            t = (b - a) * code[start:start + rows, None] + self.bias2   # (rows, n^d)
            out[start:start + rows] = self.activation(t) @ self.output_weight
        return out

    def extra_repr(self) -> str:
        return f"n={self.n}, d={self.d}, hidden=({self.hidden_units[0]}, {self.hidden_units[1]})"


def _check_inputs(x: Tensor, d: int) -> Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.dim() != 2 or x.shape[1] != d:
        raise DataError(f"inputs must have shape (m, {d}) for d = {d}, got {tuple(x.shape)}")
    return x


def cell_centres(n: int, d: int) -> Tensor:
    """The n^d cell centres ((κ_j + ½)/n)_j, in the order of the base-n code Σ_j n^(j−1) κ_j."""
    _check_n(n), _check_d(d)
    axis = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    grids = torch.meshgrid(*([axis] * d), indexing="ij")  # grids[j] varies along axis j
    # code order: κ_1 fastest, so flatten with the last axis (κ_d) slowest.
    return torch.stack([g.permute(*reversed(range(d))).reshape(-1) for g in grids], dim=1)


def indicator_network(f: TargetFn | HolderTarget, n: int, d: int, *, a: float = 0.0,
                      b: float = 1.0) -> IndicatorNetwork:
    """The depth-2 net with activation 1_[a,b) that equals ``f`` at the centres of an n^d grid.

    ``f`` maps an ``(m, d)`` float64 tensor of points in [0,1]^d to ``(m,)`` values (a
    :class:`HolderTarget` works). The net has d(n−1) + n^d hidden units and satisfies
    sup_{x∈[0,1]^d} |f(x) − net(x)| ≤ ω_f(√d/(2n)) (:func:`indicator_bound`); see
    :class:`IndicatorNetwork` for the construction. Beknazaryan 2022, arXiv:2206.13280.
    """
    n, d = _check_n(n), _check_d(d)
    if isinstance(f, HolderTarget) and f.d != d:
        raise ConfigError(f"target {f.name!r} is defined on [0,1]^{f.d}, not d = {d}")
    if n**d > 1 << 22:
        raise ConfigError(f"n^d = {n**d:,} cells is too many for an indicator network (at most {1 << 22:,})")
    values = _call_target(f, cell_centres(n, d))
    return IndicatorNetwork(values, n, d, a, b)


def indicator_bound(modulus: Callable[[float], float] | HolderTarget, n: int, d: int) -> float:
    """The bound ω_f(√d/(2n)) on the sup error of :func:`indicator_network` with n cells per axis.

    Every x in a cell is within √d/(2n) (Euclidean) of the cell centre, where the net equals
    f. ``modulus`` is δ ↦ an upper bound on ω_f(δ), or a :class:`HolderTarget`.
    """
    n, d = _check_n(n), _check_d(d)
    omega = modulus.modulus if isinstance(modulus, HolderTarget) else modulus
    return float(omega(math.sqrt(d) / (2 * n)))


# --------------------------------------------------------------------------- binary / ternary MLPs

WEIGHT_KINDS = ("binary", "ternary", "float")
"""Weight sets of :class:`QuantizedMLP`: {±1} (``ste_sign``), {0, ±1} (``ste_tern``), real."""


def _weight_quantizer(kind: str, ternary_threshold: float) -> Quantizer | None:
    if kind == "binary":
        return SteSign(clip_value=1.0)
    if kind == "ternary":
        return SteTern(threshold_value=ternary_threshold, clip_value=1.0)
    if kind == "float":
        return None
    raise unknown_choice("weight kind", kind, WEIGHT_KINDS)


class QuantizedMLP(nn.Module):
    """ReLU MLP with binary {±1} or ternary {0, ±1} weights, real biases and a real output scale.

    net(x) = α · (W_L h_{L−1}/√p_{L−1} + b_L),  h_l = ReLU(W_l h_{l−1}/√p_{l−1} + b_l),
    h_0 = 2x − 1, with W_l ∈ {±1} (``ste_sign``) or {0, ±1} (``ste_tern``: 0 where the latent
    |w| ≤ ``ternary_threshold``, its default 0.05), p_l the width of layer l, b_l and α real.
    The fixed factors 1/√p and the input map 2x − 1 only reparametrize the biases (ReLU is
    positively homogeneous: ReLU(cz + b) = c·ReLU(z + b/c)), so the functions are exactly
    those of nets with weights in {±1} (or {0, ±1}), real biases and one output scale — the
    class of Beknazaryan 2022 (arXiv:2206.13280) — while the pre-activations stay O(1) for
    training. Latent weights start uniform in [−1, 1] (clipped STE gradient, |w| ≤ 1).
    """

    def __init__(self, in_features: int, width: int, depth: int, weights: str = "binary", *,
                 ternary_threshold: float = 0.05) -> None:
        super().__init__()
        _check_d(in_features)
        _check_n(width, "width")
        _check_n(depth, "depth")
        _weight_quantizer(weights, ternary_threshold)  # validates the kind before building
        if not 0 <= ternary_threshold < 1:
            raise ConfigError(f"ternary_threshold must be in [0, 1), got {ternary_threshold!r}")
        self.in_features, self.width, self.depth, self.weights = in_features, width, depth, weights
        sizes = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(
            QuantLinear(p, q, weight_quantizer=_weight_quantizer(weights, ternary_threshold))
            for p, q in itertools.pairwise(sizes))
        self.out = QuantLinear(width, 1, weight_quantizer=_weight_quantizer(weights, ternary_threshold))
        self.output_scale = nn.Parameter(torch.ones(()))
        with torch.no_grad():
            for layer in [*self.hidden, self.out]:
                layer.weight.uniform_(-1.0, 1.0)
                layer.bias.uniform_(-0.5, 0.5)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise DataError(f"inputs must have shape (m, {self.in_features}), got {tuple(x.shape)}")
        h = 2 * x.to(self.out.weight.dtype) - 1
        for layer in self.hidden:
            h = torch.relu(layer(h / math.sqrt(layer.in_features)))
        return self.output_scale * self.out(h / math.sqrt(self.width))[:, 0]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, width={self.width}, depth={self.depth}, weights={self.weights!r}"


def count_weights(model: nn.Module) -> dict[str, int]:
    """Weights of the linear and convolution layers of ``model``: all, and the nonzero ones.

    ``nonzero`` counts the weights as the forward uses them (after a quantizer: a ternary
    layer's zeros are not counted); biases, scales and normalization are not weights here.
    """
    total = nonzero = layers = 0
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, QuantLayer):
                w = module.quantized_weight()
            elif isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                w = module.weight
            else:
                continue
            layers += 1
            total += w.numel()
            nonzero += int((w != 0).sum())
    if layers == 0:
        raise ConfigError(f"{type(model).__name__} has no linear or convolution layers to count weights of")
    return {"weights": total, "nonzero": nonzero, "layers": layers}


# --------------------------------------------------------------------------- measuring and training


def evaluation_grid(d: int, points_per_dim: int) -> Tensor:
    """The grid {0, 1/(m−1), …, 1}^d of m = ``points_per_dim`` points per axis, shape (m^d, d), float64."""
    d = _check_d(d)
    m = _check_n(points_per_dim, "points_per_dim")
    if m < 2:
        raise ConfigError(f"points_per_dim must be ≥ 2 (the grid includes 0 and 1), got {m}")
    axis = torch.linspace(0.0, 1.0, m, dtype=torch.float64)
    return torch.cartesian_prod(*([axis] * d)).reshape(-1, d)


def _model_dtype(model: nn.Module | Callable[[Tensor], Tensor]) -> torch.dtype:
    if isinstance(model, nn.Module):
        for p in list(model.parameters()) + list(model.buffers()):
            if p.is_floating_point():
                return p.dtype
    return torch.float64


def sup_error(model: nn.Module | Callable[[Tensor], Tensor], f: TargetFn | HolderTarget, d: int,
              points_per_dim: int = 4097, batch_size: int = 65536) -> float:
    """max_x |f(x) − model(x)| over :func:`evaluation_grid` (d, points_per_dim): the sup error on a grid.

    ``model`` maps an ``(m, d)`` tensor (in its own dtype) to ``(m,)`` or ``(m, 1)``. The grid
    includes the faces of [0,1]^d; with ``points_per_dim − 1`` a multiple of n it holds every
    cell corner of an n-grid indicator net, where its error is largest on a Lipschitz target.
    """
    d = _check_d(d)
    if isinstance(f, HolderTarget) and f.d != d:
        raise ConfigError(f"target {f.name!r} is defined on [0,1]^{f.d}, not d = {d}")
    grid = evaluation_grid(d, points_per_dim)
    dtype = _model_dtype(model)
    worst = 0.0
    was_training = model.training if isinstance(model, nn.Module) else False
    if isinstance(model, nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            for start in range(0, grid.shape[0], batch_size):
                x = grid[start:start + batch_size]
                pred = _call_target(lambda z: model(z.to(dtype)), x, f"the model ({type(model).__name__})")
                worst = max(worst, float((_call_target(f, x) - pred).abs().max()))
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    if not math.isfinite(worst):
        raise DataError("the model's output or the target is not finite on the grid")
    return worst


@dataclass
class FitTargetResult:
    """What :func:`fit_target` did: the loss per logged step and the final training loss."""

    steps: int
    final_loss: float
    losses: list[tuple[int, float]]


def fit_target(model: nn.Module, f: TargetFn | HolderTarget, d: int, *, steps: int = 4000,
               batch_size: int = 1024, lr: float = 3e-2, seed: int = 0, sup_weight: float = 1.0,
               log_every: int = 500) -> FitTargetResult:
    """Train ``model`` to approximate ``f`` on [0,1]^d: Adam, cosine-decayed lr, fresh uniform points each step.

    Loss per batch: mean (f − net)² + ``sup_weight`` · max (f − net)² — the max term pulls on
    the worst point, which is what :func:`sup_error` measures. Binary/ternary weights train
    through their straight-through estimators (their latent weights are clipped to [−1, 1]
    after each step, where the clipped STE passes gradients). The loss is recorded every
    ``log_every`` steps. Deterministic for a seed (CPU, fixed thread count).
    """
    d = _check_d(d)
    _check_n(steps, "steps"), _check_n(batch_size, "batch_size"), _check_n(log_every, "log_every")
    if not lr > 0:
        raise ConfigError(f"lr must be > 0, got {lr!r}")
    if isinstance(f, HolderTarget) and f.d != d:
        raise ConfigError(f"target {f.name!r} is defined on [0,1]^{f.d}, not d = {d}")
    if not sup_weight >= 0:
        raise ConfigError(f"sup_weight must be ≥ 0, got {sup_weight!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters to fit")
    generator = torch.Generator().manual_seed(seed)
    dtype = _model_dtype(model)
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    latent = [m.weight for m in model.modules() if isinstance(m, QuantLayer) and m.weight_quantizer is not None]
    model.train()
    losses: list[tuple[int, float]] = []
    loss_value = float("nan")
    for step in range(1, steps + 1):
        x = torch.rand(batch_size, d, generator=generator, dtype=torch.float64)
        y = _call_target(f, x).to(dtype)
        try:
            out = model(x.to(dtype))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"the model ({type(model).__name__}) failed on inputs of shape {tuple(x.shape)}: "
                            f"{first}") from None
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != y.shape:
            raise DataError(f"the model returned shape {tuple(out.shape)} for inputs of shape {tuple(x.shape)}; "
                            f"expected ({batch_size},) or ({batch_size}, 1)")
        sq = (out - y) ** 2
        loss = sq.mean() + sup_weight * sq.max()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            for w in latent:
                w.clamp_(-1.0, 1.0)
        loss_value = float(loss.detach())
        if step % log_every == 0 or step == steps:
            losses.append((step, loss_value))
            log.debug("fit_target step %d/%d: loss %.3g", step, steps, loss_value)
    log.info("fit_target: %d steps, final loss %.3g", steps, loss_value)
    return FitTargetResult(steps, loss_value, losses)
