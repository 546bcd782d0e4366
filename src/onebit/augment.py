"""Training-time data augmentation for the in-memory data sets, drawn from the run's generator.

Two families, chosen by the shape of a sample (:func:`augmentation_for`):

- ``"shift"`` for images ``(C, H, W)`` (digits, MNIST): every image moves by a random
  whole number of pixels, ``dy, dx ∈ [−s, s]`` with ``s = max(1, round(H / 14))`` (1 pixel
  on 8×8 digits, 2 on 28×28 MNIST), filling with 0, the background of images scaled to
  [0, 1]. A random crop of the image zero-padded by ``s``, as in the BNN literature's
  CIFAR/MNIST recipes.
- ``"signal"`` for sequences ``(C, L)`` (MNIST-1D): the transformations MNIST-1D is
  generated with, applied again (Greydanus 2020): a time scale ``x'(t) = x(c + (t − c)/a)``
  with ``a ~ U(0.9, 1.1)`` about the centre c (linear interpolation, edges held), a
  shift of ``[−3, 3]`` samples (edges held), and Gaussian noise with σ = 0.05 × the
  batch's standard deviation.

The random numbers come from the ``torch.Generator`` the training loop shuffles with,
so a seed fixes them and a resumed run draws the same ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from onebit.errors import ConfigError, unknown_choice

__all__ = ["AUGMENTATIONS", "Augmentation", "augmentation_for", "shift_images", "warp_signals"]

AUGMENTATIONS = ("shift", "signal")

Augmentation = Callable[[Tensor, torch.Generator], Tensor]


def shift_images(x: Tensor, generator: torch.Generator, max_shift: int) -> Tensor:
    """Move each image of ``x`` (N, C, H, W) by its own random (dy, dx) in [−max_shift, max_shift]², zero-filled."""
    if x.dim() != 4:
        raise ConfigError(f"shift_images needs images (N, C, H, W), got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    s = max_shift
    offsets = torch.randint(0, 2 * s + 1, (n, 2), generator=generator)
    padded = F.pad(x, (s, s, s, s))
    rows = (offsets[:, 0, None] + torch.arange(h)).view(n, 1, h, 1).expand(n, x.shape[1], h, w + 2 * s)
    cropped = padded.gather(2, rows)
    cols = (offsets[:, 1, None] + torch.arange(w)).view(n, 1, 1, w).expand(n, x.shape[1], h, w)
    return cropped.gather(3, cols)


def warp_signals(
    x: Tensor, generator: torch.Generator, max_shift: int = 3, scale: float = 0.1, noise: float = 0.05,
) -> Tensor:
    """Time-scale, shift and add noise to each sequence of ``x`` (N, C, L), as MNIST-1D's generator does."""
    if x.dim() != 3:
        raise ConfigError(f"warp_signals needs sequences (N, C, L), got shape {tuple(x.shape)}")
    n, c, length = x.shape
    a = 1.0 + scale * (2.0 * torch.rand(n, 1, generator=generator) - 1.0)
    shift = torch.randint(-max_shift, max_shift + 1, (n, 1), generator=generator).to(x.dtype)
    t = torch.arange(length, dtype=x.dtype).view(1, -1)
    centre = (length - 1) / 2.0
    src = (centre + (t - centre) / a - shift).clamp(0, length - 1)  # where each output sample reads from
    lo = src.floor().long().clamp(max=length - 2) if length > 1 else src.floor().long()
    frac = (src - lo.to(x.dtype)).unsqueeze(1)
    lo = lo.unsqueeze(1).expand(n, c, length)
    left = x.gather(2, lo)
    right = x.gather(2, (lo + 1).clamp(max=length - 1))
    out = left + frac * (right - left)
    sigma = noise * float(x.std()) if x.numel() > 1 else 0.0
    return out + sigma * torch.randn(out.shape, generator=generator, dtype=x.dtype)


def augmentation_for(name: str, sample_shape: tuple[int, ...]) -> Augmentation:
    """The augmentation ``name`` (one of :data:`AUGMENTATIONS`) for samples of ``sample_shape``."""
    if name not in AUGMENTATIONS:
        raise unknown_choice("augmentation", name, AUGMENTATIONS)
    shape = tuple(sample_shape)
    if name == "shift":
        if len(shape) != 3:
            raise ConfigError(f"the shift augmentation is for images (C, H, W), the samples have shape {shape}")
        s = max(1, round(shape[1] / 14))
        return lambda x, g: shift_images(x, g, s)
    if len(shape) != 2:
        raise ConfigError(f"the signal augmentation is for sequences (C, L), the samples have shape {shape}")
    return warp_signals


def default_augmentation(sample_shape: tuple[int, ...]) -> str | None:
    """The augmentation that suits samples of this shape: images shift, sequences warp, vectors none."""
    return {3: "shift", 2: "signal"}.get(len(tuple(sample_shape)))
