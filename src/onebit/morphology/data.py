"""Binary images for morphological learning and their ``scipy.ndimage`` targets.

- :func:`diskorect`: the reference's "Diskorect" images (``generate_forms3.py``,
  ``get_random_rotated_diskorect``, arguments of the DGMM 2022 configs): 20 random
  rotated rectangles or ellipses, then 10 smaller holes, 2 % salt noise, the whole image
  inverted with probability ½, and a frame of background of width ``border``. Synthetic
  by design: the paper's claim is about recovering an operator, not about a data set.
- :func:`mnist_binary`: real MNIST digits resized (bicubic) and thresholded at 30/255,
  as the reference's ``MnistMorphoDataset``.
- :func:`morphological_target`: dilation, erosion, opening, closing, white and black
  top-hat by ``scipy.ndimage`` (``binary_dilation``/``binary_erosion`` and their
  compositions, ``border_value=0``: pixels outside the image are background; white
  top-hat ``x ∧ ¬opening(x)``, black top-hat ``closing(x) ∧ ¬x``). scipy's dilation by
  ``S`` is a BiSE dilation by the reflected kernel ``S[::-1, ::-1]``, the same for the
  symmetric disk, stick and cross (see :mod:`onebit.nn.morphological`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from onebit.errors import ConfigError, DataError, unknown_choice

__all__ = ["OPERATIONS", "diskorect", "mnist_binary", "morphological_target"]

OPERATIONS = ("dilation", "erosion", "opening", "closing", "white_tophat", "black_tophat")


def _rotated_rect(x: float, y: float, width: float, height: float, angle: float) -> list[tuple[float, float]]:
    rect = np.array([(0, 0), (width, 0), (width, height), (0, height), (0, 0)], float)
    t = np.pi / 180.0 * angle
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return [tuple(p) for p in rect @ R + np.array([x, y])]


def diskorect(n: int, size: int = 50, *, seed: int = 0, n_shapes: int = 20, max_shape: int = 20, n_holes: int = 10,
              max_hole: int = 10, noise: float = 0.02, p_invert: float = 0.5, border: int = 4) -> np.ndarray:
    """``n`` Diskorect images ``(n, size, size)`` of uint8 0/1 (the reference generator).

    Each shape is, with probability ½, a rectangle of sides in ``[1, max)`` rotated by up to
    45° or an ellipse of radii in ``[1, max/2)``, at a random corner/centre; holes are the
    same with ``max_hole``; then salt noise, inversion, and the background frame."""
    from PIL import Image, ImageDraw

    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ConfigError(f"size must be an integer of at least 8, got {size!r}")
    if not 0 <= 2 * border < size:
        raise ConfigError(f"border must be in [0, {(size - 1) // 2}] for size {size}, got {border!r}")
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        img = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(img)

        def shape(biggest: int, fill: int) -> None:
            x, y = rng.integers(0, size - 2), rng.integers(0, size - 2)
            if rng.random() < 0.5:
                w, h = rng.integers(1, biggest), rng.integers(1, biggest)
                draw.polygon(_rotated_rect(x, y, w, h, rng.random() * 45), fill=fill)
            else:
                rx, ry = rng.integers(1, biggest // 2), rng.integers(1, biggest // 2)
                draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=fill)

        for _ in range(n_shapes):
            shape(max_shape, 1)
        for _ in range(n_holes):
            shape(max_hole, 0)
        a = np.asarray(img, np.uint8).copy()
        a[rng.random((size, size)) < noise] = 1
        if rng.random() < p_invert:
            a = 1 - a
        if border:
            a[:border], a[-border:], a[:, :border], a[:, -border:] = 0, 0, 0, 0
        out[i] = a
    return out


def mnist_binary(folder: str | os.PathLike, n: int | None = None, size: int = 50, threshold: int = 30,
                 first: int = 0) -> np.ndarray:
    """MNIST images from an IDX folder (the ``t10k`` images), resized to ``size × size``
    (bicubic) and thresholded (``≥ threshold`` of 255): uint8 0/1 ``(n, size, size)``."""
    from PIL import Image

    from onebit.data import read_idx

    folder = Path(folder)
    files = [folder / f for f in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte")]
    path = next((f for f in files if f.exists()), None)
    if path is None:
        raise DataError(f"{folder}: no t10k-images-idx3-ubyte(.gz) file (the MNIST test images)")
    images = read_idx(path)
    rows = images[first:] if n is None else images[first:first + n]
    if n is not None and len(rows) < n:
        raise DataError(f"{path}: asked for {n} images from row {first}, the file has {len(images)}")
    out = np.empty((len(rows), size, size), np.uint8)
    for i, img in enumerate(rows):
        big = np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))
        out[i] = big >= threshold
    return out


def morphological_target(x: np.ndarray, operation: str, S: np.ndarray) -> np.ndarray:
    """``operation`` of each binary image ``x[..., H, W]`` by ``S`` (``scipy.ndimage``, pixels
    outside the image are background); uint8 0/1 of ``x``'s shape."""
    from scipy import ndimage

    if operation not in OPERATIONS:
        raise unknown_choice("morphological operation", operation, OPERATIONS)
    x = np.asarray(x)
    if x.ndim < 2 or not np.isin(x, (0, 1)).all():
        raise ConfigError(f"x must hold binary images (values 0 or 1, shape (..., H, W)), got {x.dtype} {x.shape}")
    S = np.asarray(S, bool)
    if S.ndim != 2 or S.shape[0] % 2 == 0 or S.shape[1] % 2 == 0 or not S.any():
        raise ConfigError(f"S must be a non-empty 2-D mask of odd sides, got shape {S.shape}")
    full = S.reshape((1,) * (x.ndim - 2) + S.shape)  # each image on its own: a flat structure over the batch axes
    xb = x.astype(bool)
    kw = {"structure": full, "border_value": 0}
    if operation == "dilation":
        result = ndimage.binary_dilation(xb, **kw)
    elif operation == "erosion":
        result = ndimage.binary_erosion(xb, **kw)
    elif operation == "opening":
        result = ndimage.binary_dilation(ndimage.binary_erosion(xb, **kw), **kw)
    elif operation == "closing":
        result = ndimage.binary_erosion(ndimage.binary_dilation(xb, **kw), **kw)
    elif operation == "white_tophat":
        result = xb & ~ndimage.binary_dilation(ndimage.binary_erosion(xb, **kw), **kw)
    else:
        result = ndimage.binary_erosion(ndimage.binary_dilation(xb, **kw), **kw) & ~xb
    return result.astype(np.uint8)
