"""Sentiment of human-rated sentences with a binary text classifier, per domain and across domains.

Data: the VADER sentences (Hutto & Gilbert, ICWSM 2014; ``../shared/data/vader-sentences``):
tweets, movie-review snippets and Amazon-review snippets, each rated by about 20 people;
valence > 0.5 is positive, < −0.5 negative, the rest left out (onebit.text.datasets).

- **Per domain**: a fixed stratified 80/20 split of each domain.
- **Cross-domain**: train on two domains, test on every rated sentence of the third.

Features: :data:`onebit.text.datasets.DEFAULT_FEATURIZER` (what ``onebit train --data
vader-sentences`` uses), fitted on each task's training texts only. Models, on the same
rows: ``binary_text_mlp`` (a 1-bit-weight bag-of-n-grams layer, binary hidden layer, float
classifier; its default recipe), its float twin (both quantizers None, the same recipe),
and scikit-learn's logistic regression, the honest linear baseline: its C chosen from
{0.1, 1, 10} on the same 10 % validation rows the networks select their best epoch on,
trained on the same 90 %. Every binary network is exported to ``.onebit``; the engine's
predictions are compared with PyTorch's on the whole test part. Latency per sentence
(featurizer, engine and PyTorch fp32 at batch 1, one thread) is measured on the tweets
model; ``benchmarks/bench_text.py`` measures it at 1 and 2 threads.

The text CNN row: ``binary_text_cnn`` (token embedding → binary Conv1d → global max-pool →
float classifier) on the same texts as token ids
(:data:`onebit.text.datasets.SEQUENCE_FEATURIZER`, its vocabulary fitted on each task's
training texts), its default recipe, the same seeds and validation fraction; each exported
(the embedding as a table of packed signs) and checked against PyTorch on the whole test
part; its latency per sentence (tokenizer + engine against tokenizer + PyTorch fp32, the
same architecture with float layers) on the tweets model.

``--quick``: the tweets domain and the → amazon cross-domain task, 600 training sentences,
1 epoch: a smoke run, not a result.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table

log = logging.getLogger(__name__)

PAPER = ("Hutto & Gilbert, VADER (ICWSM 2014) rated sentences; binary bag-of-n-grams classifier "
         "(feature hashing / vocabularies: Weinberger et al. 2009; Joulin et al. 2017, arXiv:1607.01759)")
MODEL = "binary_text_mlp"
CNN = "binary_text_cnn"
FLOAT = {"input_quantizer": None, "weight_quantizer": None}
VAL_FRACTION = 0.1
LR_C = (0.1, 1.0, 10.0)


def _tasks(quick: bool) -> list[tuple[str, dict[str, str]]]:
    """(task name, vader_split arguments)."""
    from onebit.text.datasets import DOMAINS

    if quick:
        return [("tweets", {"domain": "tweets"}), ("→ amazon", {"test_domain": "amazon"})]
    return ([(d, {"domain": d}) for d in DOMAINS]
            + [(f"→ {d}", {"test_domain": d}) for d in DOMAINS])


def _recipe(data_name: str, quick: bool, model: str = MODEL) -> Any:
    from onebit.recipes import recipe_for

    recipe = recipe_for(model, data_name)
    return dataclasses.replace(recipe, epochs=1) if quick else recipe


def _logistic_regression(data: Any) -> dict[str, Any]:
    """C from LR_C on the validation rows (the networks' split, seed 0), then test accuracy."""
    from sklearn.linear_model import LogisticRegression

    rest, (x_val, y_val) = data.split_validation(VAL_FRACTION, seed=0)
    scores = {c: LogisticRegression(C=c, max_iter=5000).fit(rest.x_train, rest.y_train).score(x_val, y_val)
              for c in LR_C}
    best = max(LR_C, key=lambda c: (scores[c], -c))
    model = LogisticRegression(C=best, max_iter=5000).fit(rest.x_train, rest.y_train)
    return {"C": best, "val_accuracy": float(scores[best]), "accuracy": float(model.score(data.x_test, data.y_test))}


def _engine_check(model: Any, data: Any, path: Path) -> dict[str, Any]:
    """Export ``model`` with its featurizer; compare the engine with PyTorch on every test row."""
    import torch

    from onebit.export import export
    from onebit.runtime import load

    report = export(model, path, data.x_test[:64], info=data.export_info())
    engine = load(path, num_threads=1)(data.x_test)
    with torch.no_grad():
        reference = model(torch.from_numpy(data.x_test)).numpy()
    return {"file_bytes": int(report.file_bytes), "float32_state_bytes": int(report.float32_state_bytes),
            "same_predictions": bool((engine.argmax(1) == reference.argmax(1)).all()),
            "max_abs_logit_difference": float(np.abs(engine - reference).max()),
            "engine_accuracy": float((engine.argmax(1) == data.y_test).mean())}


def _split(split_args: dict[str, str], quick: bool) -> Any:
    from onebit.text.datasets import vader_split

    split = vader_split(**split_args)
    if quick:
        keep = np.random.default_rng(0).permutation(len(split.y_train))[:600]
        split = dataclasses.replace(split, train_texts=[split.train_texts[i] for i in keep], y_train=split.y_train[keep])
    return split


def cnn_task(name: str, split_args: dict[str, str], seeds: int, quick: bool, out_dir: Path) -> dict[str, Any]:
    """The text CNN row of one task: ``binary_text_cnn`` on token ids, per seed test accuracy and engine check."""
    from onebit.recipes import train_with_recipe
    from onebit.text.datasets import SEQUENCE_FEATURIZER
    from onebit.train import torch_threads

    data = _split(split_args, quick).featurize(SEQUENCE_FEATURIZER)
    recipe = _recipe(data.name, quick, CNN)
    runs, engines = [], []
    slug = name.replace("→ ", "to-")
    for seed in range(seeds):
        with torch_threads(1):
            out = train_with_recipe(CNN, data, recipe, seed=seed, val_fraction=VAL_FRACTION, progress=False,
                                    verbose=False)
        runs.append(float(out.result.test_accuracy))
        log.info("%s | %s | seed %d: %.2f %%", name, CNN, seed, 100 * runs[-1])
        engines.append(_engine_check(out.model.eval(), data, out_dir / "models" / f"cnn-{slug}-seed{seed}.onebit"))
    return {"task": name, "runs": runs, "engines": engines}


def _task(name: str, split_args: dict[str, str], seeds: int, quick: bool, out_dir: Path) -> dict[str, Any]:
    from onebit.recipes import train_with_recipe
    from onebit.text.datasets import DEFAULT_FEATURIZER
    from onebit.train import torch_threads

    data = _split(split_args, quick).featurize(DEFAULT_FEATURIZER)
    recipe = _recipe(data.name, quick)
    lr = _logistic_regression(data)
    runs: dict[str, list[float]] = {"binary": [], "float": []}
    engines = []
    slug = name.replace("→ ", "to-")
    for seed in range(seeds):
        for kind in ("binary", "float"):
            with torch_threads(1):
                out = train_with_recipe(MODEL, data, recipe, seed=seed, model_args=FLOAT if kind == "float" else None,
                                        val_fraction=VAL_FRACTION, progress=False, verbose=False)
            runs[kind].append(float(out.result.test_accuracy))
            log.info("%s | %s | seed %d: %.2f %%", name, kind, seed, 100 * runs[kind][-1])
            if kind == "binary":
                engines.append(_engine_check(out.model.eval(), data, out_dir / "models" / f"{slug}-seed{seed}.onebit"))
    cnn = cnn_task(name, split_args, seeds, quick, out_dir)
    runs["cnn"] = cnn["runs"]
    return {"task": name, "train": len(data.y_train), "test": len(data.y_test), "runs": runs, "lr": lr,
            "engines": engines, "cnn_engines": cnn["engines"], "positive_share": float(data.y_test.mean()),
            "source": data.source}


def cnn_latency(path: Path, sentences: list[str], repeats: int) -> dict[str, Any]:
    """Per sentence at batch 1, one thread, medians of interleaved rounds: tokenizer (token ids), engine
    (the file), PyTorch fp32 (``binary_text_cnn`` with float layers, the file's architecture)."""
    import torch

    from onebit.bench import time_call
    from onebit.models import create_model
    from onebit.text import TextClassifier
    from onebit.train import torch_threads

    classifier = TextClassifier(path, num_threads=1)
    args = {**classifier.model.graph["source"]["model"]["args"], "input_quantizer": None, "weight_quantizer": None}
    twin = create_model(CNN, **args).eval()
    ids = [classifier.features([s]) for s in sentences]
    tokenize = [time_call(lambda s=s: classifier.features([s]), max(1, repeats // len(sentences)))[0]
                for s in sentences]
    engine, torch_fp32 = [], []
    with torch_threads(1), torch.no_grad():
        for r in range(10):  # interleaved rounds: a busy phase of the shared machine weighs on both alike
            for x in ids[r::10]:
                t = torch.from_numpy(x)
                engine.append(time_call(lambda x=x: classifier.model(x), max(1, repeats // len(sentences)))[0])
                torch_fp32.append(time_call(lambda t=t: twin(t), max(1, repeats // len(sentences)))[0])
    return {"sentences": len(sentences), "featurizer_ms": 1e3 * float(np.median(tokenize)),
            "engine_ms": 1e3 * float(np.median(engine)), "torch_fp32_ms": 1e3 * float(np.median(torch_fp32))}


def _latency(path: Path, sentences: list[str], repeats: int) -> dict[str, Any]:
    """Per sentence at batch 1, one thread: featurizer, engine (the file), PyTorch fp32 (its float twin)."""
    from onebit.bench import bench_model, time_call
    from onebit.text import TextClassifier

    classifier = TextClassifier(path, num_threads=1)
    featurize = [time_call(lambda s=s: classifier.features([s]), max(1, repeats // len(sentences)))[0]
                 for s in sentences]
    row = bench_model(path, batch_size=1, threads=[1], repeats=repeats).rows[0]
    return {"sentences": len(sentences), "featurizer_ms": 1e3 * float(np.median(featurize)),
            "engine_ms": 1e3 * row.onebit[0], "engine_min_max_ms": [1e3 * row.onebit[1], 1e3 * row.onebit[2]],
            "torch_fp32_ms": None if row.torch is None else 1e3 * row.torch[0],
            "torch_min_max_ms": None if row.torch is None else [1e3 * row.torch[1], 1e3 * row.torch[2]]}


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    x = np.arange(len(results))
    ax.bar(x - 0.3, [100 * r["lr"]["accuracy"] for r in results], 0.2, label="logistic regression (same features)",
           color="C7")
    for offset, kind, label, color in ((-0.1, "float", "float twin", "C1"), (0.1, "binary", "binary_text_mlp", "C0"),
                                       (0.3, "cnn", "binary_text_cnn", "C2")):
        stats = [mean_std(r["runs"][kind]) for r in results]
        ax.bar(x + offset, [100 * m for m, _ in stats], 0.2, yerr=[100 * s for _, s in stats], capsize=3,
               label=label, color=color)
    ax.set_xticks(x, [r["task"] for r in results])
    ax.axvline(2.5, color="k", lw=0.5) if len(results) == 6 else None
    ax.set(ylabel="test accuracy (%)", ylim=(50, 100),
           title="VADER sentences, positive vs negative: per domain (left), cross-domain (right)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@register_experiment("text_sentiment", paper=PAPER,
                     title="Binary text classifier on human-rated sentences: per domain and cross-domain, "
                           "against its float twin and logistic regression", seeds=3, quick_seeds=1)
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """Test accuracy of binary_text_mlp, its float twin and logistic regression on VADER's three domains
    and three cross-domain splits; engine == PyTorch; latency per sentence; file size."""
    from onebit.experiments.shared import shared_data
    from onebit.text.datasets import DEFAULT_FEATURIZER, vader_split

    if shared_data("vader-sentences") is None:
        from onebit.errors import MissingFileError

        raise MissingFileError("text_sentiment needs ../shared/data/vader-sentences (or $ONEBIT_SHARED_DATA); "
                               "it is not in this checkout")
    results = [_task(name, args, seeds, quick, out_dir) for name, args in _tasks(quick)]
    engines = [e for r in results for e in r["engines"]]
    cnn_engines = [e for r in results for e in r["cnn_engines"]]
    all_same = all(e["same_predictions"] for e in engines)
    cnn_same = all(e["same_predictions"] for e in cnn_engines)
    sentences = vader_split(domain="tweets").test_texts[:50]
    latency = _latency(out_dir / "models" / "tweets-seed0.onebit", sentences, 20 if quick else 300)
    cnn_lat = cnn_latency(out_dir / "models" / "cnn-tweets-seed0.onebit", sentences, 20 if quick else 300)

    rows = []
    for r in results:
        b, f, c = mean_std(r["runs"]["binary"]), mean_std(r["runs"]["float"]), mean_std(r["runs"]["cnn"])
        rows.append([r["task"], r["train"], r["test"], round(100 * r["positive_share"], 1), 100 * r["lr"]["accuracy"],
                     r["lr"]["C"], 100 * f[0], 100 * f[1], 100 * b[0], 100 * b[1], 100 * (f[0] - b[0]),
                     [round(100 * v, 1) for v in r["runs"]["binary"]], 100 * c[0], 100 * c[1],
                     [round(100 * v, 1) for v in r["runs"]["cnn"]]])

    def average(kind: str, cross: bool) -> tuple[float, float]:
        chosen = [r for r in results if r["task"].startswith("→") == cross]
        if kind == "lr":
            return float(np.mean([r["lr"]["accuracy"] for r in chosen])), 0.0
        per_seed = [np.mean([r["runs"][kind][i] for r in chosen]) for i in range(seeds)]
        return mean_std(per_seed)

    claims = []
    for cross, label in ((False, "per domain (mean of the domains)"), (True, "cross-domain (mean of the 3 held-out "
                                                                            "domains)")):
        if not any(r["task"].startswith("→") == cross for r in results):
            continue
        b, f, lr = average("binary", cross), average("float", cross), average("lr", cross)
        c = average("cnn", cross)
        claims += [
            Claim(f"Binary text CNN (binary_text_cnn, token ids) accuracy, {label}", round(100 * c[0], 2), None, "%",
                  None, f"± {100 * c[1]:.2f} over {seeds} seed(s); binary MLP {100 * b[0]:.2f} %, logistic "
                  f"regression {100 * lr[0]:.2f} %"),
            Claim(f"Binary classifier accuracy, {label}", round(100 * b[0], 2), None, "%", None,
                  f"± {100 * b[1]:.2f} over {seeds} seed(s); float twin {100 * f[0]:.2f} ± {100 * f[1]:.2f} %; "
                  f"logistic regression {100 * lr[0]:.2f} %"),
            Claim(f"Gap to the float twin, {label}", round(100 * (f[0] - b[0]), 2), None, "points", None,
                  "float twin minus binary"),
            Claim(f"Binary classifier minus logistic regression, {label}", round(100 * (b[0] - lr[0]), 2), None,
                  "points", None, "negative: the linear baseline is better"),
        ]
    sizes, cnn_sizes = engines[0], cnn_engines[0]
    claims += [
        Claim("The exported binary text CNNs (embedding as packed signs) predict what PyTorch predicts", cnn_same, True,
              "", cnn_same, f"{len(cnn_engines)} models; max |logit difference| "
              f"{max(e['max_abs_logit_difference'] for e in cnn_engines):.2e}"),
        Claim("Size of the text CNN's .onebit file (tweets, seed 0; vocabulary included)", cnn_sizes["file_bytes"],
              None, "bytes", None, f"float32 state dict {cnn_sizes['float32_state_bytes']:,} B "
              f"({cnn_sizes['float32_state_bytes'] / cnn_sizes['file_bytes']:.1f}× larger)"),
        Claim("Text CNN latency per sentence, batch 1, 1 thread: engine vs PyTorch fp32 (network only)",
              round(cnn_lat["engine_ms"], 4), None, "ms", None,
              f"PyTorch fp32 {cnn_lat['torch_fp32_ms']:.3f} ms ({cnn_lat['torch_fp32_ms'] / cnn_lat['engine_ms']:.1f}× "
              f"the engine); tokenizer {cnn_lat['featurizer_ms']:.3f} ms (medians)"),
        Claim("The exported .onebit files predict what PyTorch predicts (every test sentence, every model)", all_same,
              True, "", all_same, f"{len(engines)} models; max |logit difference| "
              f"{max(e['max_abs_logit_difference'] for e in engines):.2e}"),
        Claim("Size of the .onebit file (tweets, seed 0; featurizer vocabulary included)", sizes["file_bytes"], None,
              "bytes", None, f"float32 state dict {sizes['float32_state_bytes']:,} B "
              f"({sizes['float32_state_bytes'] / sizes['file_bytes']:.1f}× larger)"),
        Claim("Latency per sentence, batch 1, 1 thread: featurizer + engine vs featurizer + PyTorch fp32",
              round(latency["featurizer_ms"] + latency["engine_ms"], 4), None, "ms", None,
              f"featurizer {latency['featurizer_ms']:.3f} ms, engine {latency['engine_ms']:.3f} ms, PyTorch fp32 "
              f"{latency['torch_fp32_ms']:.3f} ms (medians)" if latency["torch_fp32_ms"] is not None else ""),
    ]
    tables = {
        "accuracy": table(["task", "train", "test", "positive %", "logistic regression %", "LR C", "float twin %",
                           "sd", "binary %", "sd", "gap (points)", "binary per seed", "text CNN %", "sd",
                           "text CNN per seed"], rows,
                          f"{seeds} seed(s); test accuracy; tasks '→ D' train on the two other domains and test on D"
                          f"{' (quick: 600 training sentences, 1 epoch)' if quick else ''}"),
        "engine": table(["task", "seed", "file bytes", "same predictions", "max |logit diff|", "engine accuracy %"],
                        [[r["task"], i, e["file_bytes"], e["same_predictions"], e["max_abs_logit_difference"],
                          100 * e["engine_accuracy"]] for r in results for i, e in enumerate(r["engines"])],
                        "every binary model exported and run by onebit.runtime on its whole test part"),
        "cnn_engine": table(["task", "seed", "file bytes", "same predictions", "max |logit diff|", "engine accuracy %"],
                            [[r["task"], i, e["file_bytes"], e["same_predictions"], e["max_abs_logit_difference"],
                              100 * e["engine_accuracy"]] for r in results for i, e in enumerate(r["cnn_engines"])],
                            "every binary_text_cnn exported and run by onebit.runtime on its whole test part"),
        "latency": table(["stage", "median ms", "min–max ms"],
                         [["featurizer (per sentence, numpy/Python)", latency["featurizer_ms"], "–"],
                          ["engine, batch 1, 1 thread", latency["engine_ms"], latency["engine_min_max_ms"]],
                          ["PyTorch fp32 float twin, batch 1, 1 thread", latency["torch_fp32_ms"],
                           latency["torch_min_max_ms"]]],
                         f"tweets model; featurizer over {latency['sentences']} test sentences"),
        "cnn_latency": table(["stage", "median ms"],
                             [["tokenizer → token ids (per sentence, Python)", cnn_lat["featurizer_ms"]],
                              ["text CNN on the engine, batch 1, 1 thread", cnn_lat["engine_ms"]],
                              ["text CNN in PyTorch fp32 (float layers), batch 1, 1 thread", cnn_lat["torch_fp32_ms"]]],
                             f"binary_text_cnn, tweets model; over {cnn_lat['sentences']} test sentences"),
    }
    _plot(results, out_dir / "text_sentiment.png")
    from onebit.recipes import recipe_for

    return {"claims": claims, "tables": tables, "plots": ["text_sentiment.png"],
            "settings": {"model": MODEL, "recipe": _recipe("vader-sentences", quick).to_dict(),
                         "cnn_model": CNN, "cnn_recipe": _recipe("vader-sentences", quick, CNN).to_dict(),
                         "default_recipe": recipe_for(MODEL, "vader-sentences").to_dict(),
                         "featurizer": {k: v for k, v in dataclasses.asdict(DEFAULT_FEATURIZER).items()
                                        if k != "vocabulary"},
                         "tasks": [r["task"] for r in results], "val_fraction": VAL_FRACTION, "lr_C": list(LR_C),
                         "sources": {r["task"]: r["source"] for r in results}},
            "notes": ["Logistic regression is deterministic: one fit per task (no seed spread).",
                      "Latency: medians of interleaved calls on a shared machine; benchmarks/bench_text.py has "
                      "1 and 2 threads."]}
