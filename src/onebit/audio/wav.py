"""WAV files in and out (RIFF/WAVE PCM and IEEE float), and explicit resampling.

:func:`read_wav` returns float32 samples: integer PCM scaled into [-1, 1) (int16 / 2**15,
int32 and 24-bit / 2**31, uint8 (x - 128) / 2**7), float PCM as stored. It never resamples
behind the caller's back: a ``sample_rate`` that differs from the file's is an error, and
:func:`resample` (polyphase, ``scipy.signal.resample_poly``) converts on request. Every file
that is missing, not a WAV, truncated, empty or holds NaN/inf samples raises one onebit
error naming the file and the problem. Reading and writing use ``scipy.io.wavfile``
(scipy is imported on first use: ``pip install scipy``).
"""

from __future__ import annotations

import importlib
import io
import math
import os
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np

from onebit.atomic import atomic_write
from onebit.errors import (
    ConfigError,
    DataError,
    InputError,
    MissingFileError,
    unknown_choice,
)

__all__ = ["SUBTYPES", "read_wav", "resample", "write_wav"]

SUBTYPES = ("PCM_16", "FLOAT")
"""Sample formats :func:`write_wav` writes: 16-bit integer PCM or 32-bit IEEE float."""

_SCIPY_HINT = "pip install scipy"


def _scipy(module: str) -> ModuleType:
    """``scipy.<module>``, or a ConfigError saying how to install scipy."""
    try:
        return importlib.import_module(f"scipy.{module}")
    except ImportError:
        raise ConfigError(f"onebit.audio needs scipy for this, which is not installed: {_SCIPY_HINT}") from None


def _rate(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value < 2**32:
        raise ConfigError(f"{name} must be a positive integer number of samples per second, got {value!r}")
    return int(value)


def _to_float(data: np.ndarray, path: Path) -> np.ndarray:
    """Samples as float32: integer PCM scaled by its full range, float as stored."""
    kind, size = data.dtype.kind, data.dtype.itemsize
    if kind == "u" and size == 1:
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if kind == "i":  # scipy reads 24-bit PCM left-justified into int32
        return (data.astype(np.float64) / float(2 ** (8 * size - 1))).astype(np.float32)
    if kind == "f":
        return data.astype(np.float32)
    raise DataError(f"{path}: unsupported WAV sample format {data.dtype} (need 8/16/24/32-bit PCM or float)")


def read_wav(path: str | os.PathLike, sample_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Samples (float32) and sample rate of a WAV file.

    ``mono=True`` returns a 1-D array (the mean of the channels); ``mono=False`` returns
    ``(samples, channels)``, even for one channel. With ``sample_rate`` given, a file at another
    rate raises a :class:`ConfigError` (call :func:`resample` to convert). Raises
    :class:`MissingFileError` for a missing file and :class:`DataError` for one that is not a
    RIFF/WAVE file, is truncated or corrupt, holds no samples, or holds NaN/infinite samples.
    """
    path = Path(path)
    if sample_rate is not None:
        sample_rate = _rate("sample_rate", sample_rate)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such WAV file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a WAV file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) < 12 or raw[:4] not in (b"RIFF", b"RIFX", b"RF64") or raw[8:12] != b"WAVE":
        what = "empty file" if not raw else f"starts with {raw[:12]!r}"
        raise DataError(f"{path}: not a RIFF/WAVE file ({what})")
    wavfile = _scipy("io.wavfile")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rate, data = wavfile.read(io.BytesIO(raw))
        # scipy's parser raises ValueError, EOFError, struct.error, ... on bad bytes: any of them means a bad file
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{path}: corrupt or truncated WAV file ({type(exc).__name__}: {exc})") from None
    for w in caught:
        text = str(w.message)
        if "EOF" in text or "prematurely" in text or "Incomplete" in text:
            raise DataError(f"{path}: truncated WAV file ({text})")
    if data.ndim == 2 and data.shape[1] == 0:
        raise DataError(f"{path}: WAV file declares 0 channels")
    if data.size == 0:
        raise DataError(f"{path}: WAV file holds no samples")
    if not 0 < rate:
        raise DataError(f"{path}: WAV file declares a sample rate of {rate} Hz")
    x = _to_float(data, path)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: WAV file holds {int(np.sum(~np.isfinite(x)))} NaN or infinite samples")
    if sample_rate is not None and rate != sample_rate:
        raise ConfigError(f"{path}: sampled at {rate} Hz, not the {sample_rate} Hz asked for "
                          "(onebit does not resample silently: call onebit.audio.resample)")
    if x.ndim == 1:
        x = x[:, None]
    if mono:
        x = x.mean(axis=1, dtype=np.float64).astype(np.float32)
    return np.ascontiguousarray(x), int(rate)


def write_wav(path: str | os.PathLike, signal: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write ``signal`` (``(samples,)`` or ``(samples, channels)``) as a WAV file, atomically.

    ``subtype="PCM_16"`` clips to [-1, 1] and stores ``round(x * 2**15)`` (capped at 32767), so
    :func:`read_wav` returns every value to within ``2**-16``; ``"FLOAT"`` stores float32 as is.
    The file appears complete or not at all (:func:`onebit.atomic.atomic_write`). Returns ``path``.
    """
    path = Path(path)
    sample_rate = _rate("sample_rate", sample_rate)
    if subtype not in SUBTYPES:
        raise unknown_choice("subtype", subtype, SUBTYPES)
    x = np.asarray(signal)
    if x.dtype.kind not in "biuf":
        raise InputError(f"signal must be a real-valued array, got dtype {x.dtype}")
    if x.ndim not in (1, 2) or x.size == 0:
        raise InputError(f"signal must be a non-empty array (samples,) or (samples, channels), got shape {x.shape}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError(f"signal holds {int(np.sum(~np.isfinite(x)))} NaN or infinite samples")
    if not path.parent.is_dir():
        raise MissingFileError(f"{path}: the folder {path.parent} does not exist")
    if subtype == "PCM_16":
        data = np.clip(np.round(np.clip(x, -1.0, 1.0) * 32768.0), -32768, 32767).astype(np.int16)
    else:
        data = x.astype(np.float32)
    wavfile = _scipy("io.wavfile")
    return atomic_write(path, lambda tmp: wavfile.write(tmp, sample_rate, data))


def resample(signal: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """``signal`` (1-D, or ``(samples, channels)``) resampled from ``orig_rate`` to ``target_rate`` Hz, float32.

    Polyphase filtering (``scipy.signal.resample_poly`` with ``up/down = target/orig`` reduced
    by their gcd, Kaiser window with beta 5): exact rational rate change, deterministic,
    ``ceil(n * up / down)`` samples out. Returns a float32 copy when the rates are equal.
    """
    orig_rate, target_rate = _rate("orig_rate", orig_rate), _rate("target_rate", target_rate)
    x = np.asarray(signal)
    if x.dtype.kind not in "biuf" or x.ndim not in (1, 2) or x.size == 0:
        raise InputError(f"signal must be a non-empty real array (samples,) or (samples, channels), "
                         f"got dtype {x.dtype}, shape {x.shape}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError("signal holds NaN or infinite samples")
    if orig_rate == target_rate:
        return x.astype(np.float32)
    g = math.gcd(orig_rate, target_rate)
    signal_mod = _scipy("signal")
    return signal_mod.resample_poly(x, target_rate // g, orig_rate // g, axis=0).astype(np.float32)
