"""Two-speaker separation by a predicted time–frequency mask (Simpson 2015), float or binary.

A convolutional network reads the log-magnitude spectrogram of a mixture in patches of
``F = n_fft/2 + 1`` bins × ``T`` frames and predicts, for every bin of the patch, the
probability ``p(t, f)`` that speaker 1 dominates it: the ideal binary mask
``IBM = 1[|S1| > |S2|]`` is its target, through a sigmoid and binary cross-entropy
(A. J. R. Simpson, "Probabilistic Binary-Mask Cocktail-Party Source Separation in a
Convolutional Deep Neural Network", arXiv:1503.06962, 2015). Thresholding ``p`` at a
confidence ``α`` gives speaker 1's binary mask ``1[p > α]`` and speaker 2's
``1[1 − p > α]``: a higher ``α`` keeps only the bins the network is sure of, which removes
more interference (SIR rises) and more of the target (SAR falls), the paper's trade-off.
``alpha=None`` uses ``p`` itself as a soft mask (speaker 2: ``1 − p``). Each source is
rebuilt with the mixture's phase: ``ŝ = iSTFT(M ⊙ X)``.

The network (:func:`mask_network`), on input ``(2, F, T)`` (the log-magnitude patch, and a
constant channel holding each bin's frequency as a ramp from −1 to 1, so that the
translation-invariant convolutions can still tell low from high frequencies):

- float stem: 3×3 conv (``channels``), BatchNorm, Hardtanh;
- ``depth`` blocks: 3×3 conv dilated ``2^i`` along frequency (so the receptive field
  spans ``1 + 2·(2^depth − 1)`` bins: harmonics of a voice, not just a neighbourhood) and
  1 along time, BatchNorm, Hardtanh; **binary** (±1 weights and ±1 inputs, padded with
  +1) in the binary net, with Bi-Real Net's real-valued shortcut around each (``shortcut``);
- float head: one output channel from a conv ``min(F, 63)`` bins tall and 1 frame wide
  (zero-padded), so each bin's logit sees ±31 bins of its frame's features (±970 Hz at the
  default settings; each of those features already spans ±16 bins); flattened to ``F·T`` logits in
  (bin, frame) order.

First and last layers stay float, as in every published BNN. The same architecture
with float convs is the float net. Both export to ``.onebit`` (:func:`export_separator`)
and run on :mod:`onebit.runtime`; the file records the STFT settings, so
:func:`separate` needs nothing but the file and the mixture.

Input features: ``(20·log10|X| − max)/40 + 1``, floored at −80 dB below the mixture's
loudest bin (so in [−1, 1], independent of the mixture's level). A mixture is cut into
patches every ``T/2`` frames (the end padded with the floor); the logits of the
overlapping patches are averaged per bin.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onebit.errors import ConfigError, InputError, ModelFileError

if TYPE_CHECKING:  # torch stays optional: onebit.runtime runs a .onebit separator without it
    from torch import nn

    from onebit.audio.mixtures import Mixture

__all__ = [
    "SEPARATION_KEY", "SeparationConfig", "apply_masks", "bin_agreement", "export_separator", "load_separator",
    "mask_logits", "mask_network", "mask_probabilities", "mixture_features", "network_input", "patches",
    "separate",
    "separation_config",
    "threshold_masks", "train_separator",
]

log = logging.getLogger(__name__)

SEPARATION_KEY = "separation"  # the graph's source record holds the settings under this key
AGREEMENT_FLOOR_DB = -40.0
HEAD_SPAN = 63  # bins the head's kernel spans (odd; onebit.runtime's convolution kernels are at most 64 tall)


@dataclass(frozen=True)
class SeparationConfig:
    """The STFT and patch settings a mask network is trained with (and must be run with).

    ``sample_rate`` (Hz), ``n_fft`` and ``hop`` (samples, Hann window, centred frames),
    ``context``: frames ``T`` per patch, ``floor_db``: the feature floor below the loudest bin.
    """

    sample_rate: int = 8000
    n_fft: int = 256
    hop: int = 128
    context: int = 16
    floor_db: float = -80.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop", "context"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SeparationConfig.{name} must be a positive integer, got {value!r}")
        if self.n_fft < 16 or self.hop > self.n_fft // 2:
            raise ConfigError(f"SeparationConfig needs n_fft >= 16 and hop <= n_fft/2 (so that the inverse STFT is "
                              f"exact), got n_fft={self.n_fft}, hop={self.hop}")
        if self.context < 2 or self.context % 2:
            raise ConfigError(f"SeparationConfig.context must be an even number of frames >= 2, got {self.context}")
        if not (isinstance(self.floor_db, int | float) and math.isfinite(self.floor_db) and self.floor_db < 0):
            raise ConfigError(f"SeparationConfig.floor_db must be a negative number of dB, got {self.floor_db!r}")

    @property
    def bins(self) -> int:
        """``F = n_fft/2 + 1`` frequency bins."""
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Any, where: str = "the model") -> SeparationConfig:
        """The settings from a record written by :meth:`to_dict` (a ModelFileError naming ``where`` otherwise)."""
        names = {"sample_rate", "n_fft", "hop", "context", "floor_db"}
        if not isinstance(record, dict) or not names <= set(record):
            raise ModelFileError(f"{where} records no separation settings (sample_rate, n_fft, hop, context, "
                                 f"floor_db): it is not a mask network written by onebit.audio.separation")
        try:
            return cls(**{k: record[k] for k in names})
        except ConfigError as exc:
            raise ModelFileError(f"{where}: bad separation settings: {exc}") from None


# --------------------------------------------------------------------------- the network


def mask_network(config: SeparationConfig | None = None, *, binary: bool = True, channels: int = 16,
                 depth: int = 4, shortcut: bool = True) -> nn.Sequential:
    """The mask network for ``config``'s patches (module docstring); ``binary=False``: the float twin.

    Input ``(N, 2, F, T)`` (:func:`network_input`), output ``(N, F·T)`` logits (bin-major:
    ``logits.reshape(N, F, T)``).
    """
    from torch import nn

    from onebit.nn import QuantConv2d, Residual

    config = config or SeparationConfig()
    for name, value in (("channels", channels), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"mask_network: {name} must be a positive integer, got {value!r}")
    if 2 ** (depth - 1) >= config.bins:
        raise ConfigError(f"mask_network: depth {depth} dilates by {2 ** (depth - 1)} bins, more than the "
                          f"{config.bins} bins of the spectrogram")
    quant = "ste_sign" if binary else None
    layers: list[nn.Module] = [nn.Conv2d(2, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                               nn.Hardtanh()]
    for i in range(depth):
        d = 2 ** i
        body = nn.Sequential(
            QuantConv2d(channels, channels, 3, padding=(d, 1), dilation=(d, 1), bias=False, pad_value=1.0,
                        input_quantizer=quant, weight_quantizer=quant),
            nn.BatchNorm2d(channels))
        layers += [Residual(body) if shortcut else body, nn.Hardtanh()]
    # One output channel: the engine keeps images channels-last, so a flatten of several channels at the
    # graph's output would come out in another order than PyTorch's. The engine's kernels span at most 64.
    span = min(config.bins, HEAD_SPAN)
    layers += [nn.Conv2d(channels, 1, (span, 1), padding=(span // 2, 0)), nn.Flatten()]
    model = nn.Sequential(*layers)
    model.onebit_separation = {**config.to_dict(), "binary": binary, "channels": channels, "depth": depth,
                               "shortcut": shortcut}
    return model


def separation_config(model: Any, where: str = "the model") -> SeparationConfig:
    """The settings a torch mask network (:func:`mask_network`) or a loaded ``.onebit`` one carries."""
    record = getattr(model, "onebit_separation", None)
    if record is None and hasattr(model, "graph"):
        record = (model.graph.get("source") or {}).get(SEPARATION_KEY)
    return SeparationConfig.from_dict(record, where)


# --------------------------------------------------------------------------- features and patches


def mixture_features(spec: np.ndarray, config: SeparationConfig) -> np.ndarray:
    """Network input from a mixture STFT ``(frames, F)``: ``(F, frames)`` float32 in [−1, 1] (module docstring)."""
    from onebit.audio.features import log_magnitude

    db = log_magnitude(spec, floor_db=config.floor_db).astype(np.float64)
    return (((db - db.max()) / 40.0) + 1.0).T.astype(np.float32)


def _starts(frames: int, context: int) -> tuple[list[int], int]:
    """Patch start frames every ``context/2`` frames, and the padded length they cover."""
    step = context // 2
    padded = max(context, frames)
    padded += -(padded - context) % step
    return list(range(0, padded - context + 1, step)), padded


def patches(features: np.ndarray, context: int, floor: float = -1.0) -> tuple[np.ndarray, list[int]]:
    """``(N, 1, F, context)`` overlapping patches of ``features`` ``(F, frames)``, and their start frames.

    Patches start every ``context/2`` frames; the end is padded with ``floor`` so that every
    frame is covered by one or two patches.
    """
    bins, frames = features.shape
    starts, padded = _starts(frames, context)
    full = np.full((bins, padded), floor, dtype=np.float32)
    full[:, :frames] = features
    out = np.stack([full[:, s:s + context] for s in starts])[:, None]
    return np.ascontiguousarray(out), starts


def network_input(features: np.ndarray, context: int) -> tuple[np.ndarray, list[int]]:
    """The network's input ``(N, 2, F, context)`` from features ``(F, frames)``: :func:`patches`, and the
    frequency ramp (−1 at 0 Hz to 1 at Nyquist) as a second channel; and the patches' start frames."""
    x, starts = patches(features, context)
    ramp = np.broadcast_to(np.linspace(-1.0, 1.0, x.shape[2], dtype=np.float32)[:, None], x.shape[2:])
    return np.ascontiguousarray(np.concatenate([x, np.broadcast_to(ramp, x.shape)], axis=1)), starts


def _run(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's logits for patches ``x``: a torch module (eval, no grad) or an onebit.runtime model."""
    if hasattr(model, "graph"):  # onebit.runtime.Model
        return np.concatenate([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    import torch

    from onebit.nn.modes import eval_mode

    with eval_mode(model), torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + batch_size])).numpy()
                               for i in range(0, len(x), batch_size)])


def mask_logits(model: Any, spec: np.ndarray, config: SeparationConfig | None = None) -> np.ndarray:
    """Speaker 1's mask logits ``(frames, F)`` for a mixture STFT ``(frames, F)`` (overlapping patches averaged).

    ``model``: a torch mask network or a loaded ``.onebit`` one (:func:`load_separator`).
    """
    config = config or separation_config(model)
    spec = np.asarray(spec)
    if spec.ndim != 2 or spec.shape[1] != config.bins:
        raise InputError(f"the mixture STFT must be (frames, {config.bins}) for n_fft={config.n_fft}, got {spec.shape}")
    x, starts = network_input(mixture_features(spec, config), config.context)
    logits = _run(model, x)
    if logits.shape[1:] != (config.bins * config.context,):
        raise ModelFileError(f"the mask network outputs {logits.shape[1:]} per patch, not the "
                             f"{config.bins}×{config.context} logits its settings describe")
    logits = logits.reshape(len(x), config.bins, config.context)
    frames = spec.shape[0]
    total = np.zeros((config.bins, starts[-1] + config.context), np.float64)
    count = np.zeros(total.shape[1], np.float64)
    for s, block in zip(starts, logits):
        total[:, s:s + config.context] += block
        count[s:s + config.context] += 1
    return (total / count)[:, :frames].T.astype(np.float32)


def mask_probabilities(model: Any, spec: np.ndarray, config: SeparationConfig | None = None) -> np.ndarray:
    """``p(t, f) = σ(logit)``: the predicted probability that speaker 1 dominates each bin, ``(frames, F)``."""
    logits = mask_logits(model, spec, config).astype(np.float64)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def threshold_masks(probability: np.ndarray, alpha: float | None = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Masks of speakers 1 and 2 from ``p``: ``1[p > α]`` and ``1[1 − p > α]``; ``alpha=None``: ``p`` and ``1 − p``.

    ``α`` in [0.5, 1): at 0.5 every bin goes to exactly one speaker (ties to speaker 2);
    above, the bins the network is not ``α``-sure of are dropped from both.
    """
    p = np.asarray(probability, dtype=np.float32)
    if alpha is None:
        return p, (1.0 - p).astype(np.float32)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.5 <= alpha < 1.0:
        raise ConfigError(f"alpha must be a confidence in [0.5, 1) or None (soft masks), got {alpha!r}")
    return (p > alpha).astype(np.float32), ((1.0 - p) > alpha).astype(np.float32)


def apply_masks(spec: np.ndarray, masks: Sequence[np.ndarray], config: SeparationConfig,
                length: int) -> list[np.ndarray]:
    """``iSTFT(M ⊙ X)`` for each mask: the sources rebuilt with the mixture's phase, ``length`` samples each."""
    from onebit.audio.features import istft

    return [istft(np.asarray(spec) * m, n_fft=config.n_fft, hop=config.hop, length=length) for m in masks]


def bin_agreement(predicted: np.ndarray, ibm: np.ndarray, spec: np.ndarray,
                  floor_db: float = AGREEMENT_FLOOR_DB) -> float:
    """Fraction of the mixture's bins above ``floor_db`` (relative to its loudest bin) where ``predicted == IBM``.

    ``predicted``: a 0/1 mask (or probabilities, thresholded at 0.5); bins quieter than
    ``floor_db`` are left out (their mask does not change what is heard).
    """
    magnitude = np.abs(np.asarray(spec)).astype(np.float64)
    db = 20.0 * np.log10(np.maximum(magnitude, 1e-12))
    loud = db > db.max() + floor_db
    if not loud.any():
        raise InputError("the mixture has no bin above the agreement floor")
    return float(np.mean((np.asarray(predicted) > 0.5)[loud] == (np.asarray(ibm) > 0.5)[loud]))


# --------------------------------------------------------------------------- training


def _training_patches(mixtures: Sequence[Mixture], config: SeparationConfig,
                      quiet_weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input patches, IBM patches and per-bin loss weights (1 above the agreement floor, ``quiet_weight`` below)."""
    from onebit.audio.features import stft
    from onebit.audio.mixtures import ideal_binary_mask

    xs, ys, ws = [], [], []
    for m in mixtures:
        if m.sample_rate != config.sample_rate:
            raise ConfigError(f"a training mixture is at {m.sample_rate} Hz, the config at {config.sample_rate} Hz")
        spec = stft(m.mixture, n_fft=config.n_fft, hop=config.hop)
        ibm = ideal_binary_mask(stft(m.source1, n_fft=config.n_fft, hop=config.hop),
                                stft(m.source2, n_fft=config.n_fft, hop=config.hop))
        feats = mixture_features(spec, config)
        weight = np.where(feats > 1.0 + AGREEMENT_FLOOR_DB / 40.0, 1.0, quiet_weight).astype(np.float32)
        x, _ = network_input(feats, config.context)
        y, _ = patches(ibm.T, config.context, floor=0.0)
        w, _ = patches(weight, config.context, floor=0.0)
        xs.append(x)
        ys.append(y.reshape(len(y), -1))
        ws.append(w.reshape(len(w), -1))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def train_separator(model: nn.Module, mixtures: Sequence[Mixture], *, epochs: int = 10, batch_size: int = 32,
                    lr: float = 3e-3, quiet_weight: float = 1.0, seed: int = 0,
                    progress: bool = False) -> list[float]:
    """Train ``model`` (from :func:`mask_network`) on ``mixtures``' IBMs with binary cross-entropy; returns the
    mean training loss of each epoch.

    ``quiet_weight``: the loss weight of bins more than 40 dB below their mixture's loudest
    bin (1: plain BCE, as the paper; smaller spends less of the network on silence, where
    the IBM is decided by noise-level differences that are not heard).

    Adam (lr cosine-annealed to 0 over the run), latent binary weights clipped to [−1, 1]
    after every step (BinaryNet); patches shuffled with ``seed``. Runs on torch's current
    thread setting (wrap it in :func:`onebit.train.torch_threads` to fix it).
    """
    import torch
    from torch import nn

    from onebit.optim import make_optimizer

    config = separation_config(model, "the model to train")
    if not mixtures:
        raise ConfigError("train_separator needs at least one training mixture")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"train_separator: {name} must be a positive integer, got {value!r}")
    if isinstance(quiet_weight, bool) or not isinstance(quiet_weight, int | float) or not 0 <= quiet_weight <= 1:
        raise ConfigError(f"train_separator: quiet_weight must be in [0, 1], got {quiet_weight!r}")
    x, y, w = _training_patches(mixtures, config, float(quiet_weight))
    x_t, y_t, w_t = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(w)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model, "adam", lr=lr)
    steps = epochs * math.ceil(len(x) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    history = []
    bar = _bar(epochs * math.ceil(len(x) / batch_size), progress)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            optimizer.zero_grad()
            weight = w_t[idx]
            loss = (nn.functional.binary_cross_entropy_with_logits(model(x_t[idx]), y_t[idx], reduction="none")
                    * weight).sum() / weight.sum().clamp_min(1.0)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
            if bar is not None:
                bar.update(1)
        history.append(total / len(x))
        log.info("epoch %d/%d: training loss %.4f (%d patches)", epoch + 1, epochs, history[-1], len(x))
    if bar is not None:
        bar.close()
    model.eval()
    return history


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="training the mask network", unit="batch", leave=False)


# --------------------------------------------------------------------------- export, load, separate


def export_separator(model: nn.Module, path: str | os.PathLike, mixtures: Sequence[Mixture] | np.ndarray) -> Any:
    """Write ``model`` to a ``.onebit`` file holding its separation settings; returns the export report.

    The exporter checks the file against PyTorch on example patches: those of ``mixtures``
    (a list of :class:`~onebit.audio.mixtures.Mixture`, or inputs ``(N, 2, F, T)``).
    """
    from onebit.audio.features import stft
    from onebit.export import export

    config = separation_config(model, "the model to export")
    if isinstance(mixtures, np.ndarray):
        example = mixtures
    else:
        example = np.concatenate([network_input(mixture_features(stft(m.mixture, n_fft=config.n_fft, hop=config.hop),
                                                                 config), config.context)[0] for m in mixtures])
    record = {k: v for k, v in model.onebit_separation.items()}
    return export(model, path, example[:64], info={SEPARATION_KEY: record})


def load_separator(path: str | os.PathLike, num_threads: int | None = None) -> Any:
    """A ``.onebit`` mask network loaded with :mod:`onebit.runtime` (no torch needed), its settings checked."""
    from onebit import runtime

    path = Path(path)
    if not path.is_file():
        from onebit.errors import MissingFileError

        raise MissingFileError(f"model file {path} does not exist")
    model = runtime.load(path, num_threads=num_threads)
    config = separation_config(model, str(path))
    if model.in_shape != (2, config.bins, config.context):
        raise ModelFileError(f"{path}: input {model.in_shape} does not match its separation settings "
                             f"(2, {config.bins}, {config.context})")
    return model


def separate(mixture: np.ndarray, model: Any, *, sample_rate: int | None = None,
             alpha: float | None = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Separate a two-speaker ``mixture`` (1-D float samples) into ``(source1, source2)`` (float32, same length).

    ``model``: a ``.onebit`` file (run on onebit.runtime, no torch), a loaded one, or a torch
    mask network. ``sample_rate``: the mixture's rate; it must be the model's (given as
    None, the model's is assumed). ``alpha``: threshold of the probabilistic mask
    (:func:`threshold_masks`); None for soft masks. Source 1 is the voice the model was
    trained to pick (the lower, male voice for the networks trained on
    :mod:`onebit.audio.mixtures`).
    """
    from onebit.audio.features import stft

    if isinstance(model, str | os.PathLike):
        model = load_separator(model)
    config = separation_config(model)
    if sample_rate is not None and sample_rate != config.sample_rate:
        raise InputError(f"the mixture is at {sample_rate} Hz but the model separates {config.sample_rate} Hz audio; "
                         f"resample the mixture to {config.sample_rate} Hz")
    x = np.asarray(mixture)
    if x.dtype.kind not in "biuf" or x.ndim != 1 or x.size == 0:
        raise InputError(f"the mixture must be a non-empty 1-D array of samples, got dtype {x.dtype}, shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError("the mixture holds NaN or infinite samples")
    if not np.any(x):
        raise InputError("the mixture is silent (all samples are 0): nothing to separate")
    spec = stft(x.astype(np.float32), n_fft=config.n_fft, hop=config.hop)
    masks = threshold_masks(mask_probabilities(model, spec, config), alpha)
    s1, s2 = apply_masks(spec, masks, config, len(x))
    return s1, s2
