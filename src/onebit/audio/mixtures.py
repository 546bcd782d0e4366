"""Two-speaker mixtures of synthesized speech, and their ideal masks (the separation targets).

The speech is **synthesized by espeak-ng** (:func:`onebit.audio.espeak.synthesize`), not
recorded: fixed sentences (the first five Harvard lists, IEEE Recommended Practice for
Speech Quality Measurements, 1969, public domain) spoken by espeak-ng voice variants at
chosen speeds and pitches. That makes the data set small, reproducible bit for bit on
one espeak-ng version, and free of licences.

A mixture puts a **speaker 1** voice (one of espeak-ng's male variants ``m1``–``m8``,
lower pitch) against a **speaker 2** voice (a female variant ``f1``–``f5``, higher pitch)
at a chosen signal-to-signal ratio ``snr_db = 10·log10(Σ s1² / Σ s2²)`` (0 and ±5 dB
by default). "Speaker 1" is therefore always the male voice (pitch 20–45 on espeak-ng's
scale against 55–85), which is what makes the target of a mask well defined: a network
learns to pick the lower voice. Train and test use disjoint voice variants, accents and
sentences (:data:`TRAIN_VOICES`, :data:`TEST_VOICES`; lists 1–4 against list 5), so the
test measures separation of unseen voices saying unseen sentences.

Targets on the STFT ``S1``, ``S2`` of the two (scaled) sources:

- ideal binary mask ``IBM(t, f) = 1[|S1(t, f)| > |S2(t, f)|]`` (Wang 2005);
- ideal ratio mask ``IRM(t, f) = |S1| / (|S1| + |S2|)`` (the amplitude ratio; its
  complement ``1 − IRM`` is speaker 2's), 0.5 where both are silent.

Synthesis takes ~45 ms per sentence here (measured: 160 mixtures in 14 s), so nothing is
cached on disk; each (sentence, voice, speed, pitch, rate) is synthesized once per process
(memoized).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from onebit.errors import ConfigError, DataError

__all__ = [
    "HARVARD_SENTENCES", "SPLITS", "TEST_VOICES", "TRAIN_VOICES", "Mixture", "Voice", "generate_mixtures",
    "ideal_binary_mask", "ideal_ratio_mask", "mix_at_snr",
]

# Harvard sentences, lists 1–5 (IEEE 1969; public domain). Lists 1–4 train, list 5 tests.
HARVARD_SENTENCES: tuple[str, ...] = (
    # list 1
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "Large size in stockings is hard to sell.",
    # list 2
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds.",
    # list 3
    "The small pup gnawed a hole in the sock.", "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.", "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.", "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.", "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.", "Read verse out loud for pleasure.",
    # list 4
    "Hoist the load to your left shoulder.", "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.", "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.", "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.", "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.", "What joy there is in living.",
    # list 5
    "A king ruled the state in the early days.", "The ship was torn apart on the sharp reef.",
    "Sickness kept him home the third week.", "The wide road shimmered in the hot sun.",
    "The lazy cow lay in the cool grass.", "Lift the square stone over the fence.",
    "The rope will bind the seven books at once.", "Hop over the fence and plunge in.",
    "The friendly gang left the drug store.", "Mesh wire keeps chicks inside.",
)
SPLITS = ("train", "test")
_SENTENCES = {"train": range(40), "test": range(40, 50)}

# espeak-ng voices: accent + variant. Speaker 1 = male variants, speaker 2 = female variants;
# train and test share neither a variant nor an accent (every accent × variant pair of a split is a voice).
_TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
_TEST_ACCENTS = ("en-us-nyc", "en-029")
TRAIN_VOICES: dict[int, tuple[str, ...]] = {
    1: tuple(f"{a}+{v}" for a in _TRAIN_ACCENTS for v in ("m1", "m2", "m3", "m4", "m5")),
    2: tuple(f"{a}+{v}" for a in _TRAIN_ACCENTS for v in ("f1", "f2", "f3")),
}
TEST_VOICES: dict[int, tuple[str, ...]] = {
    1: tuple(f"{a}+{v}" for a in _TEST_ACCENTS for v in ("m6", "m7", "m8")),
    2: tuple(f"{a}+{v}" for a in _TEST_ACCENTS for v in ("f4", "f5")),
}
_VOICES = {"train": TRAIN_VOICES, "test": TEST_VOICES}
# espeak-ng speed (words per minute) and pitch (0–99) ranges drawn from per speaker.
SPEEDS = (140, 200)
PITCHES = {1: (20, 45), 2: (55, 85)}  # apart, so that speaker 1 is the lower voice
PEAK = 0.9  # a mixture is scaled so that its largest |sample| is this (no clipping in a 16-bit WAV)


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an espeak-ng voice (``accent+variant``), speed (words/min) and pitch (0–99)."""

    voice: str
    speed: int
    pitch: int

    def __str__(self) -> str:
        return f"{self.voice} (speed {self.speed}, pitch {self.pitch})"


@dataclass
class Mixture:
    """A two-speaker mixture ``mixture = source1 + source2`` (float32, equal lengths) and what made it."""

    mixture: np.ndarray
    source1: np.ndarray
    source2: np.ndarray
    sample_rate: int
    snr_db: float
    speaker1: Voice
    speaker2: Voice
    text1: str
    text2: str

    @property
    def sources(self) -> np.ndarray:
        """The two sources stacked, ``(2, samples)``."""
        return np.stack([self.source1, self.source2])


def mix_at_snr(source1: np.ndarray, source2: np.ndarray, snr_db: float,
               peak: float = PEAK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mixture, s1, s2)``: both cut to the shorter length, ``s2`` scaled so that
    ``10·log10(Σ s1² / Σ s2²) = snr_db``, then all three scaled so that ``max |mixture| = peak``."""
    s1 = np.asarray(source1, dtype=np.float64).ravel()
    s2 = np.asarray(source2, dtype=np.float64).ravel()
    n = min(len(s1), len(s2))
    if n == 0:
        raise DataError("cannot mix an empty signal")
    s1, s2 = s1[:n], s2[:n]
    if not (np.isfinite(s1).all() and np.isfinite(s2).all()):
        raise DataError("cannot mix signals holding NaN or infinite values")
    e1, e2 = float(np.sum(s1 ** 2)), float(np.sum(s2 ** 2))
    if e1 == 0.0 or e2 == 0.0:
        raise DataError("cannot mix at a given SNR: one of the sources is silent")
    if not np.isfinite(snr_db):
        raise ConfigError(f"snr_db must be a finite number of dB, got {snr_db!r}")
    s2 = s2 * np.sqrt(e1 / (e2 * 10.0 ** (snr_db / 10.0)))
    mixture = s1 + s2
    scale = peak / float(np.max(np.abs(mixture)))
    return tuple((x * scale).astype(np.float32) for x in (mixture, s1, s2))  # type: ignore[return-value]


@functools.lru_cache(maxsize=4096)
def _speech(text: str, voice: str, speed: int, pitch: int, sample_rate: int) -> np.ndarray:
    from onebit.audio.espeak import synthesize

    audio = synthesize(text, voice=voice, speed=speed, pitch=pitch, sample_rate=sample_rate)
    audio.setflags(write=False)
    return audio


def generate_mixtures(
    count: int, split: str = "train", *, seed: int = 0, sample_rate: int = 8000,
    snrs: Sequence[float] = (-5.0, 0.0, 5.0),
) -> list[Mixture]:
    """``count`` mixtures of the ``split`` (``"train"`` or ``"test"``), the same for the same arguments.

    Mixture ``i`` takes SNR ``snrs[i % len(snrs)]``; its two voices (variant, speed, pitch)
    and two different sentences are drawn from the split's own (disjoint) sets with
    ``numpy.random.default_rng([seed, split])``. Needs espeak-ng (a clear error says how to
    install it where it is absent).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid choices: {', '.join(SPLITS)}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"count must be a positive integer, got {count!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 4000 <= sample_rate <= 48000:
        raise ConfigError(f"sample_rate must be an integer number of Hz in [4000, 48000], got {sample_rate!r}")
    snrs = [float(s) for s in snrs]
    if not snrs or not all(np.isfinite(s) for s in snrs):
        raise ConfigError(f"snrs must be one or more finite numbers of dB, got {snrs!r}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    voices, sentences = _VOICES[split], list(_SENTENCES[split])
    out = []
    for i in range(count):
        speakers = []
        for who in (1, 2):
            name = voices[who][int(rng.integers(len(voices[who])))]
            speakers.append(Voice(name, int(rng.integers(SPEEDS[0], SPEEDS[1] + 1)),
                                  int(rng.integers(PITCHES[who][0], PITCHES[who][1] + 1))))
        first, second = rng.choice(sentences, size=2, replace=False)
        text1, text2 = HARVARD_SENTENCES[int(first)], HARVARD_SENTENCES[int(second)]
        a = _speech(text1, speakers[0].voice, speakers[0].speed, speakers[0].pitch, sample_rate)
        b = _speech(text2, speakers[1].voice, speakers[1].speed, speakers[1].pitch, sample_rate)
        snr = snrs[i % len(snrs)]
        mixture, s1, s2 = mix_at_snr(a, b, snr)
        out.append(Mixture(mixture, s1, s2, sample_rate, snr, speakers[0], speakers[1], text1, text2))
    return out


def _check_pair(spec1: np.ndarray, spec2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.abs(np.asarray(spec1)), np.abs(np.asarray(spec2))
    if a.shape != b.shape:
        raise DataError(f"the two sources' spectrograms differ in shape: {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("a source spectrogram holds NaN or infinite values")
    return a, b


def ideal_binary_mask(spec1: np.ndarray, spec2: np.ndarray) -> np.ndarray:
    """``IBM = 1[|S1| > |S2|]`` (float32 0/1), from the two sources' STFTs (complex or magnitudes)."""
    a, b = _check_pair(spec1, spec2)
    return (a > b).astype(np.float32)


def ideal_ratio_mask(spec1: np.ndarray, spec2: np.ndarray) -> np.ndarray:
    """``IRM = |S1| / (|S1| + |S2|)`` (float32 in [0, 1]; 0.5 where both are 0): speaker 1's soft mask."""
    a, b = _check_pair(spec1, spec2)
    total = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        irm = np.where(total > 0, a / np.where(total > 0, total, 1.0), 0.5)
    return irm.astype(np.float32)
