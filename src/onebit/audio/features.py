"""Spectral features of a 1-D signal: STFT and its inverse, mel filter bank, log-mel, MFCC.

numpy only. The formulas follow librosa 0.11's defaults so that features computed here can
be compared with features published with librosa (``mfcc`` reproduces
``librosa.feature.mfcc(y=x, sr=sr, n_mfcc=13)`` to float rounding):

- STFT frame ``t`` holds ``rfft(w * x[t*hop - n_fft//2 : t*hop + n_fft//2])`` when centred
  (``center=True`` pads ``n_fft // 2`` samples on both sides, with zeros by default: librosa's
  ``pad_mode="constant"`` since 0.10), with the periodic window ``w`` of
  ``scipy.signal.get_window(window, n_fft)``.
- The inverse is the weighted overlap-add of Griffin & Lim (1984): the sum of windowed
  frames divided by the sum of squared windows; it reconstructs exactly wherever that sum
  is nonzero (the NOLA condition, :func:`check_nola`).
- Mel scale and filter areas are Slaney's (Auditory Toolbox, 1998), as ``librosa.filters.mel``
  with ``htk=False, norm="slaney"``.
- MFCC = orthonormal DCT-II of the log-mel power spectrogram (Davis & Mermelstein, 1980).

Arrays are ``(frames, bins)``: time first, as the rest of onebit stores sequences.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from onebit.errors import ConfigError, InputError, unknown_choice

__all__ = ["PAD_MODES", "WINDOWS", "check_cola", "check_nola", "dct_ortho", "frame_signal", "get_window", "hz_to_mel",
           "istft", "log_magnitude", "log_mel", "mel_filterbank", "mel_to_hz", "mfcc", "normalize_utterance",
           "pad_or_crop", "power_to_db", "stft"]

# Generalized cosine windows w[n] = sum_k (-1)^k a_k cos(2 pi k n / N) (periodic: N = n_fft).
_COSINE_WINDOWS = {
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.5, 0.08),
    "boxcar": (1.0,),
}
WINDOWS = (*_COSINE_WINDOWS, "bartlett")
"""The window names :func:`stft` and :func:`istft` accept (periodic, as scipy's ``fftbins=True``)."""

PAD_MODES = ("constant", "reflect")
"""How a centred :func:`stft` pads the signal's ends: zeros (librosa's default) or a mirror image."""


# --------------------------------------------------------------------------- validation


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _signal(signal: object, name: str = "signal") -> np.ndarray:
    """``signal`` as a float64 1-D array, or an InputError saying why it cannot be one."""
    x = np.asarray(signal)
    if x.dtype.kind not in "biuf":
        raise InputError(f"{name} must be a real-valued array, got dtype {x.dtype}")
    if x.ndim != 1:
        raise InputError(f"{name} must be 1-D (one channel of samples), got shape {x.shape}")
    if x.size == 0:
        raise InputError(f"{name} is empty (0 samples)")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} holds {int(np.sum(~np.isfinite(x)))} NaN or infinite samples")
    return x


def _sample_rate(sample_rate: object) -> int:
    return _positive_int("sample_rate", sample_rate)


# --------------------------------------------------------------------------- windows and STFT


def get_window(window: str, n_fft: int) -> np.ndarray:
    """The periodic window of length ``n_fft`` (float64), equal to ``scipy.signal.get_window(window, n_fft)``.

    Periodic (DFT-even) windows are the ones whose shifted copies overlap-add to a constant
    (``hann`` at ``hop = n_fft / k``); valid names are :data:`WINDOWS`.
    """
    n_fft = _positive_int("n_fft", n_fft)
    if window not in WINDOWS:
        raise unknown_choice("window", window, WINDOWS)
    n = np.arange(n_fft, dtype=np.float64)
    if window == "bartlett":  # the symmetric triangle of length n_fft + 1, last sample dropped
        return 1.0 - np.abs(2.0 * n / n_fft - 1.0)
    w = np.zeros(n_fft)
    for k, a in enumerate(_COSINE_WINDOWS[window]):
        w += (-1) ** k * a * np.cos(2.0 * np.pi * k * n / n_fft)
    return w


def _stft_args(n_fft: object, hop: object, window: str, pad_mode: str = "constant") -> np.ndarray:
    n_fft = _positive_int("n_fft", n_fft, minimum=2)
    _positive_int("hop", hop)
    if pad_mode not in PAD_MODES:
        raise unknown_choice("pad_mode", pad_mode, PAD_MODES)
    return get_window(window, n_fft)


def stft(signal: np.ndarray, n_fft: int = 512, hop: int = 128, window: str = "hann", center: bool = True,
         *, pad_mode: str = "constant") -> np.ndarray:
    """Short-time Fourier transform of a real 1-D signal: complex64, shaped ``(frames, n_fft // 2 + 1)``.

    ``S[t, f] = sum_n w[n] x[t*hop + n - p] exp(-2 pi i f n / n_fft)`` with ``p = n_fft // 2``
    when ``center`` (the signal padded by ``p`` samples on both sides, so frame ``t`` is centred
    on sample ``t*hop``; ``1 + len(x) // hop`` frames), else ``p = 0`` (``1 + (len(x) - n_fft) // hop``
    frames; the signal must hold at least ``n_fft`` samples). ``pad_mode="constant"`` pads
    zeros, librosa's default since 0.10; ``"reflect"`` mirrors the signal (torch.stft's default
    and librosa's before 0.10). Equals ``librosa.stft(x, n_fft=n_fft, hop_length=hop).T``.
    """
    return _stft64(signal, n_fft, hop, window, center, pad_mode).astype(np.complex64)


def _stft64(signal: np.ndarray, n_fft: int, hop: int, window: str, center: bool, pad_mode: str) -> np.ndarray:
    """:func:`stft` in complex128 (the features below compute in float64, as librosa does on float64 input)."""
    x = _signal(signal)
    w = _stft_args(n_fft, hop, window, pad_mode)
    n_fft, hop = len(w), int(hop)
    if center:
        pad = n_fft // 2
        if pad_mode == "reflect" and len(x) < 2:
            raise InputError("reflect padding needs a signal of at least 2 samples; use pad_mode='constant'")
        x = np.pad(x, pad, mode=pad_mode)
    if len(x) < n_fft:
        raise InputError(f"signal of {len(x)} samples is shorter than n_fft={n_fft} (and center=False); "
                         "use center=True or a smaller n_fft")
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    return np.fft.rfft(frames * w, axis=-1)


def istft(spec: np.ndarray, n_fft: int = 512, hop: int = 128, window: str = "hann", center: bool = True,
          length: int | None = None) -> np.ndarray:
    """Inverse of :func:`stft` by weighted overlap-add: float32 1-D signal.

    ``y[n] = sum_t w[n - t*hop] frame_t[n - t*hop] / sum_t w[n - t*hop]^2`` (Griffin & Lim, 1984),
    where ``frame_t = irfft(S[t], n_fft)``. Samples where the sum of squared windows is below
    1e-10 (none for :func:`check_nola` pairs with ``center=True``; the first sample under a Hann
    window with ``center=False``) are set to 0. ``istft(stft(x), length=len(x))`` returns ``x``
    to float32 rounding whenever :func:`check_nola` holds (e.g. Hann with ``hop <= n_fft / 2``):
    within 1e-6 of a unit-variance signal for ``hop <= n_fft / 4``, 1e-4 for ``hop = n_fft / 2``,
    where the last few samples can lie under one frame's window edge alone, which amplifies
    the complex64 rounding. Without ``length`` the output holds ``hop * (frames - 1)`` samples
    when centred; with it, the output is cut or extended to exactly ``length`` samples (what
    lies past the last frame's reach is 0).
    """
    w = _stft_args(n_fft, hop, window)
    n_fft, hop = len(w), int(hop)
    S = np.asarray(spec)
    if S.ndim != 2 or S.shape[1] != n_fft // 2 + 1:
        raise InputError(f"spec must be shaped (frames, n_fft // 2 + 1) = (frames, {n_fft // 2 + 1}) "
                         f"for n_fft={n_fft}, got shape {S.shape}")
    if S.shape[0] == 0:
        raise InputError("spec holds 0 frames")
    if S.dtype.kind not in "biufc":
        raise InputError(f"spec must be a numeric (complex) array, got dtype {S.dtype}")
    if not np.all(np.isfinite(S)):
        raise InputError("spec holds NaN or infinite values")
    if length is not None:
        length = _positive_int("length", length, minimum=0)
    frames = np.fft.irfft(S.astype(np.complex128), n=n_fft, axis=-1) * w
    total = n_fft + hop * (len(S) - 1)
    y = np.zeros(total)
    norm = np.zeros(total)
    w2 = w * w
    for t, frame in enumerate(frames):
        y[t * hop:t * hop + n_fft] += frame
        norm[t * hop:t * hop + n_fft] += w2
    ok = norm > 1e-10
    y[ok] /= norm[ok]
    y[~ok] = 0.0
    start = n_fft // 2 if center else 0
    stop = total - n_fft // 2 if center else total
    if length is not None:
        stop = start + length
    y = y[start:stop]
    if length is not None and len(y) < length:
        y = np.pad(y, (0, length - len(y)))
    return y.astype(np.float32)


def _window_sums(n_fft: int, hop: int, window: str, power: int) -> np.ndarray:
    """``sum_k w[n + k*hop]^power`` over one hop period ``n in [0, hop)``: the steady-state overlap-add."""
    w = _stft_args(n_fft, hop, window)
    hop = int(hop)
    padded = np.pad(w**power, (0, -len(w) % hop))
    return padded.reshape(-1, hop).sum(axis=0)


def check_nola(n_fft: int, hop: int, window: str = "hann") -> bool:
    """Whether :func:`istft` inverts :func:`stft` exactly for this window and hop.

    True when the overlap-added squared windows are nonzero everywhere (the "nonzero
    overlap-add" constraint; same answer as ``scipy.signal.check_NOLA(window, n_fft, n_fft - hop)``
    for ``hop <= n_fft``). A hop larger than ``n_fft`` leaves samples no frame covers: False.
    """
    if int(_positive_int("hop", hop)) > _positive_int("n_fft", n_fft, minimum=2):
        return False
    return bool(np.all(_window_sums(n_fft, hop, window, 2) > 1e-10))


def check_cola(n_fft: int, hop: int, window: str = "hann") -> bool:
    """Whether the windows overlap-add to a constant (COLA; ``scipy.signal.check_COLA(window, n_fft, n_fft - hop)``).

    COLA is what plain overlap-add without the division of :func:`istft` needs (Hann at
    ``hop = n_fft / k``, boxcar at ``hop = n_fft``). :func:`istft` needs only the weaker
    :func:`check_nola`: every COLA pair with ``hop <= n_fft`` is also NOLA.
    """
    if int(_positive_int("hop", hop)) > _positive_int("n_fft", n_fft, minimum=2):
        return False
    sums = _window_sums(n_fft, hop, window, 1)
    return bool(np.max(np.abs(sums - np.median(sums))) < 1e-10)


# --------------------------------------------------------------------------- decibels


def log_magnitude(spec: np.ndarray, floor_db: float = -80.0) -> np.ndarray:
    """Log-magnitude in dB, float32: ``20 log10(max(|S|, 1e-5))`` clipped below at ``max + floor_db``.

    The same numbers as ``librosa.amplitude_to_db(|S|, ref=1.0, amin=1e-5, top_db=-floor_db)``:
    0 dB is an amplitude of 1; ``floor_db`` (negative) is the range kept below the loudest bin,
    so silence does not dominate the scale.
    """
    S = np.asarray(spec)
    if S.dtype.kind not in "biufc" or S.size == 0:
        raise InputError(f"spec must be a non-empty numeric array, got dtype {S.dtype}, shape {S.shape}")
    if not np.all(np.isfinite(S)):
        raise InputError("spec holds NaN or infinite values")
    if not np.isfinite(floor_db) or floor_db >= 0:
        raise ConfigError(f"floor_db must be a negative number of dB (e.g. -80.0), got {floor_db!r}")
    db = 20.0 * np.log10(np.maximum(np.abs(S).astype(np.float64), 1e-5))
    return np.maximum(db, db.max() + floor_db).astype(np.float32)


def power_to_db(power: np.ndarray, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """Power in dB (float64): ``10 log10(max(P, amin))``, clipped below at ``max - top_db``.

    ``librosa.power_to_db(P, ref=1.0, amin=amin, top_db=top_db)``; ``top_db=None`` keeps all.
    """
    P = np.asarray(power)
    if P.dtype.kind not in "biuf" or P.size == 0:
        raise InputError(f"power must be a non-empty real array, got dtype {P.dtype}, shape {P.shape}")
    P = P.astype(np.float64)
    if not np.all(np.isfinite(P)):
        raise InputError("power holds NaN or infinite values")
    if not amin > 0:
        raise ConfigError(f"amin must be positive, got {amin!r}")
    if top_db is not None and not top_db >= 0:
        raise ConfigError(f"top_db must be >= 0 or None, got {top_db!r}")
    db = 10.0 * np.log10(np.maximum(P, amin))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db


# --------------------------------------------------------------------------- mel scale

_F_SP = 200.0 / 3  # Hz per mel below 1 kHz (Slaney)
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear (3 bands per 200 Hz) below 1 kHz, logarithmic above (``librosa.hz_to_mel``)."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_part = hz >= _MIN_LOG_HZ
    return np.where(log_part, _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel` (``librosa.mel_to_hz``)."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters, shaped ``(n_mels, n_fft // 2 + 1)`` (float64), as ``librosa.filters.mel``.

    ``n_mels + 2`` edge frequencies equally spaced on :func:`hz_to_mel` between ``fmin`` and
    ``fmax`` (default ``sample_rate / 2``); filter ``m`` rises from edge ``m`` to ``m + 1`` and
    falls to ``m + 2``, scaled by ``2 / (f[m + 2] - f[m])`` so each has unit area in Hz (Slaney
    normalization). Warns when a filter falls between two FFT bins and is all zero (too many
    mels for this ``n_fft``).
    """
    return _checked_mel_basis(sample_rate, n_fft, n_mels, fmin, fmax, as_float32=False).copy()


def _checked_mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None,
                       as_float32: bool) -> np.ndarray:
    """The (cached, read-only) filter bank after checking the arguments; warns about empty filters."""
    sample_rate = _sample_rate(sample_rate)
    n_fft = _positive_int("n_fft", n_fft, minimum=2)
    n_mels = _positive_int("n_mels", n_mels)
    nyquist = sample_rate / 2.0
    fmax = nyquist if fmax is None else float(fmax)
    if not (0.0 <= float(fmin) < fmax <= nyquist):
        raise ConfigError(f"need 0 <= fmin < fmax <= sample_rate / 2 = {nyquist:g} Hz, got fmin={fmin!r}, "
                          f"fmax={fmax!r}")
    weights = _mel_basis(sample_rate, n_fft, n_mels, float(fmin), fmax, as_float32)
    empty = int(np.sum(weights.max(axis=1) == 0))
    if empty:
        warnings.warn(f"{empty} of {n_mels} mel filters are empty (they fall between FFT bins of n_fft={n_fft} "
                      f"at {sample_rate} Hz): use fewer mels or a larger n_fft", UserWarning, stacklevel=3)
    return weights


@lru_cache(maxsize=16)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, as_float32: bool) -> np.ndarray:
    """:func:`mel_filterbank` for checked arguments, cached (MFCCs of many utterances share one bank);
    ``as_float32`` rounds the weights to float32 (kept as float64), as ``librosa.filters.mel`` stores them."""
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    if as_float32:
        weights = weights.astype(np.float32).astype(np.float64)
    weights.flags.writeable = False
    return weights


def dct_ortho(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Orthonormal DCT-II along ``axis`` (float64): ``scipy.fft.dct(x, type=2, norm="ortho")``.

    ``X[k] = s_k sum_n x[n] cos(pi k (2n + 1) / (2N))`` with ``s_0 = sqrt(1/N)``, ``s_k = sqrt(2/N)``.
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    k = np.arange(n)[:, None]
    basis = np.cos(np.pi * k * (2 * np.arange(n)[None, :] + 1) / (2 * n)) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return np.moveaxis(x @ basis.T, -1, axis)


def _log_mel_db(signal: np.ndarray, sample_rate: int, n_fft: int, hop: int, n_mels: int, fmin: float,
                fmax: float | None, top_db: float | None) -> np.ndarray:
    """log-mel power in dB, float64 ``(frames, n_mels)``: librosa.feature.melspectrogram + power_to_db."""
    power = np.abs(_stft64(signal, n_fft, hop, "hann", True, "constant")) ** 2
    mel = power @ _checked_mel_basis(sample_rate, n_fft, n_mels, fmin, fmax, as_float32=True).T
    return power_to_db(mel, amin=1e-10, top_db=top_db)


def log_mel(signal: np.ndarray, sample_rate: int, n_fft: int = 2048, hop: int = 512, n_mels: int = 128,
            fmin: float = 0.0, fmax: float | None = None, top_db: float | None = 80.0) -> np.ndarray:
    """Log-mel power spectrogram in dB, float32 ``(frames, n_mels)``.

    ``10 log10(max(M, 1e-10))`` clipped at ``top_db`` below the maximum, where ``M = |STFT|^2 @ F.T``
    with the centred, zero-padded Hann :func:`stft` and :func:`mel_filterbank` ``F``: the same
    as ``librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=sr, ...)).T``.
    """
    return _log_mel_db(signal, sample_rate, n_fft, hop, n_mels, fmin, fmax, top_db).astype(np.float32)


def mfcc(signal: np.ndarray, sample_rate: int, n_mfcc: int = 13, n_fft: int = 2048, hop: int = 512,
         n_mels: int = 128) -> np.ndarray:
    """Mel-frequency cepstral coefficients, float32 ``(frames, n_mfcc)``.

    The first ``n_mfcc`` coefficients of the orthonormal DCT-II (:func:`dct_ortho`) of
    :func:`log_mel` (``top_db=80``): ``librosa.feature.mfcc(y=x, sr=sample_rate, n_mfcc=n_mfcc).T``
    with librosa's defaults (Davis & Mermelstein, 1980).
    """
    n_mfcc = _positive_int("n_mfcc", n_mfcc)
    n_mels = _positive_int("n_mels", n_mels)
    if n_mfcc > n_mels:
        raise ConfigError(f"n_mfcc={n_mfcc} is more than n_mels={n_mels}: the DCT has only n_mels coefficients")
    db = _log_mel_db(signal, sample_rate, n_fft, hop, n_mels, 0.0, None, 80.0)
    return dct_ortho(db, axis=-1)[:, :n_mfcc].astype(np.float32)


# --------------------------------------------------------------------------- fixed-size views


def frame_signal(signal: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """Overlapping frames ``(1 + (len(x) - frame_length) // hop, frame_length)`` of a 1-D signal, no padding.

    Frame ``t`` is ``x[t*hop : t*hop + frame_length]`` (``librosa.util.frame(x, ...).T``); trailing
    samples that do not fill a frame are dropped. A copy, not a view.
    """
    x = np.asarray(signal)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"signal must be a non-empty 1-D array, got shape {x.shape}")
    frame_length = _positive_int("frame_length", frame_length)
    hop = _positive_int("hop", hop)
    if len(x) < frame_length:
        raise InputError(f"signal of {len(x)} samples is shorter than one frame of {frame_length}")
    return np.lib.stride_tricks.sliding_window_view(x, frame_length)[::hop].copy()


def pad_or_crop(x: np.ndarray, length: int, axis: int = 0, mode: str = "center", value: float = 0.0) -> np.ndarray:
    """``x`` cut or padded with ``value`` to exactly ``length`` entries along ``axis``.

    ``mode="center"`` keeps the middle (a crop drops ``(n - length) // 2`` entries before, the
    rest after) or pads evenly (``(length - n) // 2`` before, the rest after); ``mode="start"``
    keeps the beginning and pads at the end. For sequences ``(frames, features)`` of varying
    length that a fixed-input classifier needs at one length.
    """
    x = np.asarray(x)
    length = _positive_int("length", length)
    if x.ndim == 0:
        raise InputError("x must have at least one axis, got a scalar")
    if not -x.ndim <= axis < x.ndim:
        raise ConfigError(f"axis {axis} is out of range for an array of {x.ndim} dimensions")
    if mode not in ("center", "start"):
        raise unknown_choice("mode", mode, ("center", "start"))
    n = x.shape[axis]
    if n >= length:
        start = (n - length) // 2 if mode == "center" else 0
        return np.take(x, np.arange(start, start + length), axis=axis)
    before = (length - n) // 2 if mode == "center" else 0
    widths = [(0, 0)] * x.ndim
    widths[axis] = (before, length - n - before)
    return np.pad(x, widths, mode="constant", constant_values=value)


def normalize_utterance(features: np.ndarray, axis: int = 0, eps: float = 1e-5) -> np.ndarray:
    """Cepstral mean and variance normalization (CMVN) of one utterance, float32.

    ``(x - mean) / sqrt(var + eps)`` with mean and variance over ``axis`` (the frames), so each
    coefficient has zero mean and unit variance within the utterance: removes a constant
    channel (microphone, speaker) offset in the cepstrum (Viikki & Laurila, 1998).
    """
    x = np.asarray(features)
    if x.dtype.kind not in "biuf" or x.size == 0:
        raise InputError(f"features must be a non-empty real array, got dtype {x.dtype}, shape {x.shape}")
    if not -x.ndim <= axis < x.ndim:
        raise ConfigError(f"axis {axis} is out of range for an array of {x.ndim} dimensions")
    if not eps > 0:
        raise ConfigError(f"eps must be positive, got {eps!r}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError("features hold NaN or infinite values")
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True)
    return ((x - mean) / np.sqrt(var + eps)).astype(np.float32)
