"""High-dimensional geometry of binary layers (Anderson & Berg, arXiv:1705.07199, ICLR 2018).

Binarization works, the paper argues, because in high dimension ``sign`` barely turns a
vector: for ``w ~ N(0, I_d)`` the angle between ``w`` and ``sign(w)`` concentrates at
``arccos(√(2/π)) = 37.07°`` with a spread shrinking like ``d^(-1/2)``, while two
independent vectors are ~90° apart. A dot product with the binarized weight then stays
close to the one with the continuous weight: their correlation is ``√(2/π) ≈ 0.80``, and
``2/π ≈ 0.64`` when the activations are binarized too. Ternarizing at ``|w| > t·σ``
turns the vector less, down to ~25.9° at ``t ≈ 0.61``. Low-dimensional, correlated
vectors (anisotropic variance, such as first-layer inputs) are turned much more; a
random rotation restores the 37° (the transform the paper recommends).

This module measures all of that on any onebit model: :func:`layer_geometry` (angles of
every layer with 1-bit weights), :func:`dot_product_correlation` (Pearson r of the dot
products on real activations), :func:`analyze_geometry` (both, as a
:class:`GeometryReport` that prints a table and saves JSON and PNGs), plus the
closed-form references (:func:`ternary_angle`, :func:`binary_angle_sd`) and the
synthetic vectors of the paper's figures (:func:`gaussian_vectors`,
:func:`random_rotation`). Reference code: github.com/alexanderganderson/bnn_vis.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onebit.atomic import atomic_write_text
from onebit.errors import ConfigError, DataError
from onebit.nn.layers import QuantLayer

__all__ = [
    "BINARY_ANGLE",
    "CORRELATION_BOTH",
    "CORRELATION_WEIGHTS",
    "TERNARY_BEST_ANGLE",
    "TERNARY_BEST_THRESHOLD",
    "GeometryReport",
    "LayerCorrelation",
    "LayerGeometry",
    "analyze_geometry",
    "best_ternary_threshold",
    "binarization_angles",
    "binary_angle_sd",
    "binary_layers",
    "dot_product_correlation",
    "gaussian_vectors",
    "layer_geometry",
    "random_rotation",
    "ternarization_angles",
    "ternary_angle",
    "vector_angles",
]

log = logging.getLogger(__name__)

#: ``arccos(√(2/π))`` in degrees: the angle between a Gaussian vector and its sign as d → ∞.
BINARY_ANGLE = math.degrees(math.acos(math.sqrt(2.0 / math.pi)))
#: ``√(2/π)``: correlation of ``a·w`` with ``a·sign(w)`` for Gaussian ``w`` (the cosine of 37.07°).
CORRELATION_WEIGHTS = math.sqrt(2.0 / math.pi)
#: ``2/π``: correlation of ``a·w`` with ``sign(a)·sign(w)`` for Gaussian ``a`` and ``w``.
CORRELATION_BOTH = 2.0 / math.pi


def _normal_pdf(t: float) -> float:
    return math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)


def _normal_sf(t: float) -> float:
    return 0.5 * math.erfc(t / math.sqrt(2.0))


def ternary_angle(threshold: float) -> float:
    """Angle (degrees) between ``w ~ N(0, σ²I)`` and its ternarization at ``|w| > t·σ``, as d → ∞.

    ``cos θ(t) = E[|w|·1(|w|>t)] / √(E[w²]·P(|w|>t)) = 2φ(t) / √(2(1 − Φ(t)))``, with φ, Φ
    the standard normal density and distribution. ``t = 0`` is plain binarization (37.07°).
    """
    t = float(threshold)
    if not (t >= 0 and math.isfinite(t)):
        raise ConfigError(f"threshold must be a finite number ≥ 0 (in units of σ), got {threshold!r}")
    tail = _normal_sf(t)
    if tail <= 0.0:
        return 0.0
    return math.degrees(math.acos(min(1.0, 2.0 * _normal_pdf(t) / math.sqrt(2.0 * tail))))


def best_ternary_threshold() -> tuple[float, float]:
    """``(t*, θ(t*))``: the threshold (in σ) that minimizes :func:`ternary_angle`, and that angle.

    Golden-section search on [0, 2] (θ is unimodal there): t* ≈ 0.612, θ ≈ 25.85°.
    """
    lo, hi = 0.0, 2.0
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(80):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if ternary_angle(a) < ternary_angle(b):
            hi = b
        else:
            lo = a
    t = 0.5 * (lo + hi)
    return t, ternary_angle(t)


TERNARY_BEST_THRESHOLD, TERNARY_BEST_ANGLE = best_ternary_threshold()


def binary_angle_sd(d: int | float) -> float:
    """Standard deviation (degrees) of the angle between ``w ~ N(0, I_d)`` and ``sign(w)``, large d.

    Delta method on ``cos θ = Σ|w_i| / (√d·‖w‖)``: ``Var(cos θ) ≈ (1 − 3/π)/d`` and
    ``sd(θ) = √((1 − 3/π) / ((1 − 2/π)·d))`` radians ≈ 20.18°/√d: the ``d^(-1/2)`` law.
    """
    if not (isinstance(d, int | float) and not isinstance(d, bool) and d >= 1):
        raise ConfigError(f"d must be a number ≥ 1, got {d!r}")
    return math.degrees(math.sqrt((1.0 - 3.0 / math.pi) / ((1.0 - 2.0 / math.pi) * d)))


# --------------------------------------------------------------------------- vectors and angles


def _as_rows(w: Tensor | np.ndarray, what: str) -> np.ndarray:
    """``w`` as a float64 matrix with one vector per row (the first axis; a 1-D array is one vector)."""
    if isinstance(w, Tensor):
        w = w.detach().cpu().double().numpy()
    arr = np.asarray(w, dtype=np.float64)
    if arr.ndim == 0 or arr.size == 0:
        raise DataError(f"{what} must be a non-empty array of vectors, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{what} holds NaN or infinite values")
    return arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(arr.shape[0], -1)


def vector_angles(u: Tensor | np.ndarray, v: Tensor | np.ndarray) -> np.ndarray:
    """Angle in degrees between each row of ``u`` and the same row of ``v``: ``arccos(u·v / (‖u‖‖v‖))``.

    Rows are the first axis (a weight ``(out, in, k)`` gives one vector per output filter).
    A row of zeros has no direction: its angle is NaN.
    """
    a, b = _as_rows(u, "u"), _as_rows(v, "v")
    if a.shape != b.shape:
        raise DataError(f"u and v must have the same shape, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("ij,ij->i", a, b) / norms
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def binarization_angles(w: Tensor | np.ndarray) -> np.ndarray:
    """Per vector (row; per output filter for a weight): the angle in degrees between ``w`` and ``sign(w)``.

    sign(0) = +1 as everywhere in onebit. For Gaussian rows the angles concentrate at
    :data:`BINARY_ANGLE` = 37.07° with sd :func:`binary_angle_sd`.
    """
    rows = _as_rows(w, "w")
    return vector_angles(rows, np.where(rows >= 0, 1.0, -1.0))


def ternarization_angles(w: Tensor | np.ndarray, threshold: float = TERNARY_BEST_THRESHOLD) -> np.ndarray:
    """Per vector: the angle in degrees between ``w`` and ``sign(w)·1(|w| > t·σ)``.

    ``t = threshold`` is in units of σ, the standard deviation of *all* of ``w`` (the
    paper's per-layer σ); a row ternarized to all zeros gives NaN. For Gaussian rows the
    angles concentrate at :func:`ternary_angle` ``(t)``.
    """
    t = float(threshold)
    if not (t >= 0 and math.isfinite(t)):
        raise ConfigError(f"threshold must be a finite number ≥ 0 (in units of σ), got {threshold!r}")
    rows = _as_rows(w, "w")
    cut = t * rows.std()
    return vector_angles(rows, np.where(np.abs(rows) > cut, np.where(rows >= 0, 1.0, -1.0), 0.0))


def _check_count(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"{what} must be a positive integer, got {n!r}")
    return int(n)


def gaussian_vectors(n: int, d: int, *, decay: float = 0.0, seed: int = 0) -> np.ndarray:
    """``n`` random vectors of dimension ``d``: component i ~ N(0, e^(−2·decay·i)), independent.

    ``decay = 0`` is the isotropic Gaussian of the paper's angle figures; ``decay > 0`` the
    anisotropic one of its "exponential covariance" figure (bnn_vis uses 0.1, with the
    components scaled by ``e^(k(i − d/2))``: the same vectors up to order and scale).
    """
    n, d = _check_count(n, "n"), _check_count(d, "d")
    if not (math.isfinite(decay) and decay >= 0):
        raise ConfigError(f"decay must be a finite number ≥ 0, got {decay!r}")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * np.exp(-decay * np.arange(d))


def random_rotation(d: int, *, seed: int = 0) -> np.ndarray:
    """A ``d × d`` rotation drawn uniformly (Haar measure on SO(d)).

    QR of a Gaussian matrix with the signs of R's diagonal moved into Q (Mezzadri 2007),
    then one column flipped if needed so that det = +1. ``x @ R`` rotates row vectors.
    """
    d = _check_count(d, "d")
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


# --------------------------------------------------------------------------- layers of a model


def binary_layers(model: nn.Module) -> list[tuple[str, QuantLayer]]:
    """The ``(qualified name, layer)`` of every onebit quantized layer whose weight quantizer outputs 1 bit.

    These are the layers whose geometry the paper studies (binary weights; their input
    may be float, as in a first layer). A ConfigError if the model has none.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"expected a torch module, got {type(model).__name__}")
    found = [(name or type(m).__name__, m) for name, m in model.named_modules()
             if isinstance(m, QuantLayer) and m.weight_quantizer is not None and m.weight_bits == 1]
    if not found:
        raise ConfigError(
            f"{type(model).__name__} has no binary layers (no QuantLinear/QuantConv layer with a 1-bit weight "
            "quantizer); the geometry analysis needs binary weights (a float twin, or a float model before "
            "onebit.binarize, has none)"
        )
    return found


def _quantizer_name(q: Any) -> str | None:
    return None if q is None else (getattr(q, "name", "") or type(q).__name__)


@dataclass
class LayerGeometry:
    """Angles between one layer's latent weights and their binarized (and ternarized) version.

    ``angles`` holds one angle per output filter (degrees); ``d`` is the filter's
    dimension (fan-in: in_features, or in_channels/groups × kernel size).
    """

    name: str
    kind: str
    d: int
    filters: int
    weight_quantizer: str | None
    input_quantizer: str | None
    angle_mean: float
    angle_sd: float
    ternary_threshold: float
    ternary_angle_mean: float
    ternary_angle_sd: float
    angles: np.ndarray = field(repr=False)
    ternary_angles: np.ndarray = field(repr=False)

    @property
    def binary_input(self) -> bool:
        """Whether the layer quantizes its input too (else it sees float activations, as a first layer)."""
        return self.input_quantizer is not None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "d": self.d, "filters": self.filters,
                "weight_quantizer": self.weight_quantizer, "input_quantizer": self.input_quantizer,
                "angle_mean": _finite(self.angle_mean), "angle_sd": _finite(self.angle_sd),
                "ternary_threshold": self.ternary_threshold, "ternary_angle_mean": _finite(self.ternary_angle_mean),
                "ternary_angle_sd": _finite(self.ternary_angle_sd), "angles": [_finite(v) for v in self.angles],
                "ternary_angles": [_finite(v) for v in self.ternary_angles]}


def _finite(value: float | None) -> float | None:
    """``value`` as a float for JSON, None where it is missing or not finite (an undefined angle or r)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _stats(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else 0.0


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not (
            threshold >= 0 and math.isfinite(threshold)):
        raise ConfigError(f"ternary_threshold must be a finite number ≥ 0 (in units of σ), got {threshold!r}")
    return float(threshold)


@torch.no_grad()
def layer_geometry(model: nn.Module, *, ternary_threshold: float = TERNARY_BEST_THRESHOLD) -> list[LayerGeometry]:
    """For every layer with binary weights: per-filter angles between ``W_c`` and ``W_b``, their mean/sd, and d.

    ``W_c`` is the latent (float) weight, ``W_b`` the weight the layer runs with
    (``quantized_weight()``: sign, or α·sign for XNOR/Bi-Real scaling, which leaves the
    angle unchanged). The same statistics for ternarization at ``|w| > t·σ_layer``
    (``t = ternary_threshold``) show what one more level would buy. The paper's finding:
    trained layers sit near 37° (and their sd falls like ``d^(-1/2)``).
    """
    threshold = _check_threshold(ternary_threshold)
    out = []
    for name, layer in binary_layers(model):
        w_c = layer.weight.detach()
        w_b = layer.quantized_weight().detach()
        angles = vector_angles(w_c.reshape(w_c.shape[0], -1), w_b.reshape(w_b.shape[0], -1))
        tern = ternarization_angles(w_c, threshold)
        mean, sd = _stats(angles)
        t_mean, t_sd = _stats(tern)
        if np.nanmax(angles, initial=0.0) < 1e-6:
            log.info("layer %s: latent weights are already ±1 (angle 0); a file that stores only the signs (such "
                     "as onebit's shipped pretrained weights) has no latent weights to measure", name)
        out.append(LayerGeometry(
            name=name, kind=type(layer).__name__, d=int(w_c[0].numel()), filters=int(w_c.shape[0]),
            weight_quantizer=_quantizer_name(layer.weight_quantizer),
            input_quantizer=_quantizer_name(layer.input_quantizer), angle_mean=mean, angle_sd=sd,
            ternary_threshold=threshold, ternary_angle_mean=t_mean, ternary_angle_sd=t_sd,
            angles=angles, ternary_angles=tern,
        ))
    return out


# --------------------------------------------------------------------------- dot products on real data


class _Pearson:
    """Pearson r of two streams, merged batch by batch in float64 (Chan et al.'s pairwise update)."""

    def __init__(self) -> None:
        self.n = 0
        self.mx = self.my = self.sxx = self.syy = self.sxy = 0.0

    def update(self, x: Tensor, y: Tensor) -> None:
        x, y = x.reshape(-1).double(), y.reshape(-1).double()
        n = x.numel()
        if n == 0:
            return
        mx, my = float(x.mean()), float(y.mean())
        dx, dy = x - mx, y - my
        sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
        total = self.n + n
        ex, ey = mx - self.mx, my - self.my
        self.sxx += sxx + ex * ex * self.n * n / total
        self.syy += syy + ey * ey * self.n * n / total
        self.sxy += sxy + ex * ey * self.n * n / total
        self.mx += ex * n / total
        self.my += ey * n / total
        self.n = total

    @property
    def r(self) -> float:
        if self.n < 2 or self.sxx <= 0 or self.syy <= 0:
            return math.nan
        return self.sxy / math.sqrt(self.sxx * self.syy)


@dataclass
class LayerCorrelation:
    """How well one layer's binarized dot products track the continuous ones, on real activations.

    ``A_c`` is the layer's input before its input quantizer (the continuous activation),
    ``A_b = q_in(A_c)`` after it; ``W_c`` the latent weight, ``W_b`` the binarized one. ``A``
    is what the layer actually sees (``A_b``, or ``A_c`` for a float-input layer):

    - ``r_weights``: Pearson r of ``A·W_b`` against ``A·W_c`` (weight binarization);
    - ``r_activations``: r of ``A_c·W_b`` against ``A_b·W_b`` (activation binarization);
    - ``r_both``: r of ``A_b·W_b`` against ``A_c·W_c`` (both at once).

    The last two are None for a layer with a float input. ``count`` dot products went
    into each r; ``points`` keeps a random subsample (``"ab_wb"``, ``"ab_wc"``, ``"ac_wb"``,
    ``"ac_wc"``) for the 2-D histograms.
    """

    name: str
    d: int
    count: int
    r_weights: float
    r_activations: float | None
    r_both: float | None
    points: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "d": self.d, "count": self.count, "r_weights": _finite(self.r_weights),
                "r_activations": _finite(self.r_activations), "r_both": _finite(self.r_both)}


def _padded(layer: QuantLayer, a: Tensor) -> Tensor:
    """``a`` padded the way the layer pads its (quantized) input: ``pad_value``, or its padding mode."""
    pads = getattr(layer, "_reversed_padding_repeated_twice", None)
    if not pads or not any(pads):
        return a
    if layer.padding_mode == "zeros":  # type: ignore[attr-defined]
        return F.pad(a, pads, mode="constant", value=layer.pad_value)  # type: ignore[attr-defined]
    return F.pad(a, pads, mode=layer.padding_mode)  # type: ignore[attr-defined]


def _dot(layer: QuantLayer, a: Tensor, w: Tensor) -> Tensor:
    """The layer's linear map of ``a`` by ``w`` with its own padding, stride, dilation and groups; no scale or bias."""
    if isinstance(layer, nn.Linear):
        return F.linear(a, w)
    conv = layer._conv  # type: ignore[attr-defined]
    return conv(_padded(layer, a), w, None, layer.stride, 0, layer.dilation, layer.groups)  # type: ignore[attr-defined]


def _as_input(x: Tensor | np.ndarray) -> Tensor:
    if isinstance(x, Tensor):
        t = x.detach().cpu().float()
    else:
        try:
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise DataError(f"x must be a numeric array of shape (N, ...), got {type(x).__name__}: {exc}") from None
    if t.ndim < 2 or len(t) == 0:
        raise DataError(f"x must be a batch of samples of shape (N, ...) with N ≥ 1, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise DataError("x holds NaN or infinite values")
    return t


def _expected_in_shape(model: nn.Module) -> tuple[int, ...] | None:
    args = (getattr(model, "onebit_config", None) or {}).get("args", {})
    shape = args.get("in_shape")
    return tuple(shape) if shape else None


def _check_batch_size(batch_size: int) -> int:
    return _check_count(batch_size, "batch_size")


class _Collector:
    """Forward pre-hook on one binary layer: the dot products of each batch, folded into three Pearson r."""

    def __init__(self, name: str, layer: QuantLayer, keep_per_sample: float, generator: torch.Generator) -> None:
        self.name, self.layer = name, layer
        self.quantized_input = layer.input_quantizer is not None
        self.weights, self.activations, self.both = _Pearson(), _Pearson(), _Pearson()
        self.keep_per_sample = keep_per_sample  # dot products kept for plotting, per input sample
        self.generator = generator
        self.points: dict[str, list[Tensor]] = {"ab_wb": [], "ab_wc": [], "ac_wb": [], "ac_wc": []}

    def __call__(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        layer = self.layer
        a_c = inputs[0].detach().float()
        w_c = layer.weight.detach().float()
        w_b = layer.quantized_weight().detach().float()
        a_b = layer.quantized_input(a_c).detach().float() if self.quantized_input else a_c
        ab_wb, ab_wc = _dot(layer, a_b, w_b).reshape(-1), _dot(layer, a_b, w_c).reshape(-1)
        self.weights.update(ab_wb, ab_wc)
        products = {"ab_wb": ab_wb, "ab_wc": ab_wc}
        if self.quantized_input:
            ac_wb, ac_wc = _dot(layer, a_c, w_b).reshape(-1), _dot(layer, a_c, w_c).reshape(-1)
            self.activations.update(ac_wb, ab_wb)
            self.both.update(ab_wb, ac_wc)
            products.update(ac_wb=ac_wb, ac_wc=ac_wc)
        keep = min(ab_wb.numel(), math.ceil(self.keep_per_sample * a_c.shape[0]))
        idx = torch.randint(ab_wb.numel(), (keep,), generator=self.generator)
        for key, values in products.items():
            self.points[key].append(values[idx].clone())

    def result(self) -> LayerCorrelation:
        w = self.layer.weight
        return LayerCorrelation(
            name=self.name, d=int(w[0].numel()), count=self.weights.n, r_weights=self.weights.r,
            r_activations=self.activations.r if self.quantized_input else None,
            r_both=self.both.r if self.quantized_input else None,
            points={k: torch.cat(v).numpy().astype(np.float64) for k, v in self.points.items() if v},
        )


def dot_product_correlation(
    model: nn.Module, x: Tensor | np.ndarray, *, batch_size: int = 256, max_points: int = 20_000, seed: int = 0,
) -> list[LayerCorrelation]:
    """Per binary layer: Pearson r of binarized against continuous dot products, on real activations.

    Runs ``model`` (eval mode, no gradients) on the inputs ``x`` (``(N, ...)``, the
    model's input shape) and, at every layer with binary weights, takes its input
    ``A_c`` as it arrives and forms ``A·W_b`` vs ``A·W_c`` (weight binarization),
    ``A_c·W_b`` vs ``A_b·W_b`` (activation binarization) and ``A_b·W_b`` vs ``A_c·W_c``
    (both); see :class:`LayerCorrelation`. Convolutions use the layer's own padding
    (``pad_value``) for every product, so ``A_b·W_b`` is exactly what the layer computes
    (before its scale and bias). r pools every output position, channel and sample, as
    the paper's histograms do (bnn_vis ``gen_plots``). For Gaussian ``A`` and ``W``
    (a single :class:`~onebit.nn.QuantLinear`), r is √(2/π) ≈ 0.80, √(2/π) and 2/π ≈ 0.64.
    ``max_points`` dot products per layer (drawn with ``seed``) are kept for plots.
    """
    layers = binary_layers(model)
    batch_size = _check_batch_size(batch_size)
    max_points = _check_count(max_points, "max_points")
    inputs = _as_input(x)
    expected = _expected_in_shape(model)
    if expected is not None and tuple(inputs.shape[1:]) != expected:
        raise DataError(f"x has samples of shape {tuple(inputs.shape[1:])}, the model expects {expected}")
    generator = torch.Generator().manual_seed(seed)
    n = len(inputs)
    collectors = [_Collector(name, layer, max_points / n, generator) for name, layer in layers]
    handles = [layer.register_forward_pre_hook(c) for (_, layer), c in zip(layers, collectors)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                batch = inputs[start:start + batch_size]
                try:
                    model(batch)
                except RuntimeError as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise DataError(
                        f"x with samples of shape {tuple(inputs.shape[1:])} does not fit the model: {first}"
                    ) from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    results = [c.result() for c in collectors]
    for r in results:
        if r.count == 0:
            log.info("layer %s never ran on these inputs: no correlation for it", r.name)
    return results


# --------------------------------------------------------------------------- the report


@dataclass
class GeometryReport:
    """Everything :func:`analyze_geometry` measured: per-layer angles and, with data, dot-product correlations.

    ``str(report)`` is the per-layer table; :meth:`save` writes ``geometry.json`` and the
    plots (angle histograms with the 37° line, sd(angle) against d on log-log axes with
    the −½ slope, and the 2-D histograms of the dot products).
    """

    layers: list[LayerGeometry]
    correlations: list[LayerCorrelation] | None = None
    samples: int = 0
    source: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per binary layer: angles, d, and the correlations where measured."""
        corr = {c.name: c for c in self.correlations or []}
        rows = []
        for g in self.layers:
            c = corr.get(g.name)
            rows.append({"layer": g.name, "kind": g.kind, "d": g.d, "filters": g.filters,
                         "input": g.input_quantizer or "float", "angle_mean": _finite(g.angle_mean),
                         "angle_sd": _finite(g.angle_sd), "ternary_angle_mean": _finite(g.ternary_angle_mean),
                         "ternary_angle_sd": _finite(g.ternary_angle_sd),
                         "r_weights": None if c is None else _finite(c.r_weights),
                         "r_activations": None if c is None else _finite(c.r_activations),
                         "r_both": None if c is None else _finite(c.r_both)})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"reference": {"binary_angle": BINARY_ANGLE, "ternary_threshold": self.layers[0].ternary_threshold
                              if self.layers else TERNARY_BEST_THRESHOLD,
                              "ternary_angle_gaussian": ternary_angle(self.layers[0].ternary_threshold)
                              if self.layers else TERNARY_BEST_ANGLE,
                              "correlation_weights": CORRELATION_WEIGHTS, "correlation_both": CORRELATION_BOTH},
                "samples": self.samples, **self.source, "table": self.rows(),
                "layers": [g.to_dict() for g in self.layers],
                "correlations": None if self.correlations is None else [c.to_dict() for c in self.correlations]}

    def __str__(self) -> str:
        def num(v: float | None, fmt: str) -> str:
            return "–" if v is None or not math.isfinite(v) else format(v, fmt)

        header = ("layer", "kind", "d", "filters", "input", "angle °", "ternary °", "r(W)", "r(A)", "r(A,W)")
        lines = [header]
        for r in self.rows():
            lines.append((r["layer"], r["kind"], str(r["d"]), str(r["filters"]), r["input"],
                          f"{num(r['angle_mean'], '.2f')} ± {num(r['angle_sd'], '.2f')}",
                          f"{num(r['ternary_angle_mean'], '.2f')} ± {num(r['ternary_angle_sd'], '.2f')}",
                          num(r["r_weights"], ".3f"), num(r["r_activations"], ".3f"), num(r["r_both"], ".3f")))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = ["  ".join(c.ljust(w) if i < 5 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
                for line in lines]
        t = self.layers[0].ternary_threshold if self.layers else TERNARY_BEST_THRESHOLD
        text.append(f"Gaussian reference: binary {BINARY_ANGLE:.2f}°, ternary at {t:.2f}σ {ternary_angle(t):.2f}°; "
                    f"r(W) = √(2/π) = {CORRELATION_WEIGHTS:.3f}, r(A,W) = 2/π = {CORRELATION_BOTH:.3f}.")
        if self.correlations is None:
            text.append("No data: correlations not measured (they need inputs of the model's shape).")
        return "\n".join(text)

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write ``geometry.json``, ``angles.png``, ``angle_sd.png`` and (with data) ``dot_products.png``."""
        from onebit.analysis.geometry_plots import plot_angle_histograms, plot_angle_sd, plot_dot_products

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        paths = [atomic_write_text(out / "geometry.json", json.dumps(self.to_dict(), indent=1) + "\n"),
                 plot_angle_histograms(self.layers, out / "angles.png"),
                 plot_angle_sd(self.layers, out / "angle_sd.png")]
        if self.correlations:
            paths.append(plot_dot_products(self.correlations, out / "dot_products.png"))
        return paths


def analyze_geometry(
    model: nn.Module, x: Tensor | np.ndarray | None = None, *, ternary_threshold: float = TERNARY_BEST_THRESHOLD,
    batch_size: int = 256, max_points: int = 20_000, seed: int = 0,
) -> GeometryReport:
    """:func:`layer_geometry` of ``model`` and, when inputs ``x`` are given, :func:`dot_product_correlation` on them.

    Without ``x`` only the weights are analyzed (a zoo model with random weights and no
    data set of its input shape still gets its angle table).
    """
    layers = layer_geometry(model, ternary_threshold=ternary_threshold)
    if x is None:
        return GeometryReport(layers, None, 0)
    correlations = dot_product_correlation(model, x, batch_size=batch_size, max_points=max_points, seed=seed)
    return GeometryReport(layers, correlations, len(x))
