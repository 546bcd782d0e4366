"""Training a BiMoNN to imitate a morphological operator, and scoring its binarization.

As the reference's DGMM 2022 configs: Adam (learning rate 0.01, 0.1 for one config), batches
of 64, the loss computed on the interior only (a border of ``k//2`` pixels masked: the BiSE's
replicate padding and the target's background border disagree there), the loss per case of
the configs (Dice for most single operations, MSE for openings and top-hats, BCE for one).
The reference's Dice (``MaskedDiceLoss``) squeezes ``(N, 1, H, W)`` to ``(N, H, W)`` and sums
over axis 1, so it is a Dice **per image column**, ``1 − 2Σ_i p t / (Σ_i t² + Σ_i p² + 10⁻⁶)``
averaged over images and columns; ``loss="dice"`` is that, ``"dice_image"`` the per-image Dice.
The reference draws 200,000 fresh Diskorect images (one epoch of 3,125 batches of 64); here
the images come from a pool drawn once, sampled with replacement, for ``steps`` batches.

``stop_when_exact``: every ``check_every`` steps the net is binarized; training stops once every
BiSE and LUI is activated (exact before projection) and the binarized net makes no error on the
current training batch, three checks in a row (a convergence test on the training data only;
the reference trains the full epoch; its ``ConvergenceBinary`` observable records the step from
which each unit's exact (S, operation) stays the same).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from onebit.errors import ConfigError, unknown_choice
from onebit.morphology.data import OPERATIONS
from onebit.nn.morphological import BiMoNN, MorphologicalNet

__all__ = ["ARCHITECTURES", "LOSSES", "TrainResult", "dice", "evaluate", "pixel_error", "train_bimonn"]

# channels of the BiMoNN per target operation (the reference's "adapt" channels)
ARCHITECTURES = {"dilation": [1, 1], "erosion": [1, 1], "opening": [1, 1, 1], "closing": [1, 1, 1],
                 "white_tophat": [1, 2, 1], "black_tophat": [1, 2, 1]}
LOSSES = ("dice", "dice_image", "mse", "bce")


def _masked(pred: torch.Tensor, target: torch.Tensor, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    if border:
        return pred[..., border:-border, border:-border], target[..., border:-border, border:-border]
    return pred, target


def _loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "mse":
        return ((pred - target) ** 2).mean()
    if kind == "bce":
        return torch.nn.functional.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), target)
    if kind == "dice":  # the reference's: per (image, column), sums over the rows
        p, t = pred.flatten(0, 1), target.flatten(0, 1)
        return (1 - 2 * (p * t).sum(1) / ((t ** 2).sum(1) + (p ** 2).sum(1) + 1e-6)).mean()
    p, t = pred.flatten(1), target.flatten(1)  # soft Dice per image: 1 − 2Σpt / (Σt² + Σp²)
    return (1 - 2 * (p * t).sum(1) / ((t ** 2).sum(1) + (p ** 2).sum(1) + 1e-6)).mean()


@dataclass
class TrainResult:
    """A trained BiMoNN, its loss curve (every 10 steps), its training CPU time, the steps run
    and the step where the early stop fired (None: ran all steps)."""

    model: BiMoNN
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    stopped_at: int | None = None


def _all_activated(model: BiMoNN) -> bool:
    return all(bool(a.all()) for a in model.is_activated()) and all(
        bool(layer.lui.is_activated().all()) for layer in model.layers)


def train_bimonn(x: np.ndarray, y: np.ndarray, operation: str, kernel_size: int = 7, *, loss: str = "dice",
                 steps: int = 3125, batch_size: int = 64, lr: float = 0.01, seed: int = 0,
                 stop_when_exact: bool = False, check_every: int = 100) -> TrainResult:
    """Fit a BiMoNN (channels from :data:`ARCHITECTURES`) on images ``x`` → targets ``y``
    (uint8 0/1, ``(n, H, W)``), border of ``kernel_size // 2`` masked in the loss; optionally
    stop early once the net is exact on the training batches (module docstring)."""
    if operation not in ARCHITECTURES:
        raise unknown_choice("morphological operation", operation, OPERATIONS)
    if loss not in LOSSES:
        raise unknown_choice("loss", loss, LOSSES)
    if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
        raise ConfigError(f"check_every must be a positive integer, got {check_every!r}")
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 3 or x.shape != y.shape or len(x) == 0:
        raise ConfigError(f"x and y must be (n, H, W) arrays of one shape, got {x.shape} and {y.shape}")
    if not (np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all()):
        raise ConfigError("x and y must be binary images (every value 0 or 1)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = BiMoNN(ARCHITECTURES[operation], kernel_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt = torch.from_numpy(x.astype(np.float32))[:, None]
    yt = torch.from_numpy(y.astype(np.float32))[:, None]
    border = kernel_size // 2
    result = TrainResult(model)
    start = time.process_time()
    streak, step = 0, 0
    for step in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(x), batch_size))
        pred, target = _masked(model(xt[idx]), yt[idx], border)
        value = _loss(loss, pred, target)
        opt.zero_grad()
        value.backward()
        opt.step()
        if step % 10 == 0:
            result.losses.append(float(value.detach()))
        if stop_when_exact and (step + 1) % check_every == 0:
            exact = _all_activated(model)
            if exact:
                with torch.no_grad():
                    out = model.binarized()(xt[idx])
                got, want = _masked(out, yt[idx], border)
                exact = bool((got == want).all())
            streak = streak + 1 if exact else 0
            if streak == 3:
                result.stopped_at = step + 1
                break
    result.seconds, result.steps = time.process_time() - start, (step + 1 if steps else 0)
    return result


def pixel_error(pred: np.ndarray, target: np.ndarray, border: int = 0) -> float:
    """Fraction of pixels that differ, ``border`` pixels from each edge left out."""
    p, t = (np.asarray(a)[..., border:a.shape[-2] - border, border:a.shape[-1] - border] for a in (pred, target))
    return float((p != t).mean())


def dice(pred: np.ndarray, target: np.ndarray, border: int = 0) -> float:
    """Mean over images of ``2|P ∩ T| / (|P| + |T|)`` (1 where both are empty), border left out."""
    p, t = (np.asarray(a, bool)[..., border:a.shape[-2] - border, border:a.shape[-1] - border] for a in (pred, target))
    p, t = p.reshape(len(p), -1), t.reshape(len(t), -1)
    inter, total = (p & t).sum(1), p.sum(1) + t.sum(1)
    return float(np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1)).mean())


def evaluate(net: MorphologicalNet | BiMoNN, x: np.ndarray, y: np.ndarray, border: int) -> dict[str, float]:
    """Pixel error and Dice of ``net`` on ``x`` → ``y`` (a BiMoNN's output is thresholded at ½)."""
    with torch.no_grad():
        out = net(torch.from_numpy(np.asarray(x, np.float32))[:, None])[:, 0].numpy()
    pred = (out > 0.5).astype(np.uint8)
    return {"pixel_error": pixel_error(pred, y, border), "dice": dice(pred, y, border)}
