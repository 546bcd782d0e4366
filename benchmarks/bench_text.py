"""Latency of sentiment classification per sentence: onebit.runtime vs PyTorch fp32, featurizer shown apart.

The pipeline of ``text_sentiment``: a raw sentence → :data:`onebit.text.datasets.DEFAULT_FEATURIZER`
(tokenizer + the training split's 2,048 word uni/bigrams, pure Python/numpy; fitted on the
tweets domain's training part) → ``binary_text_mlp`` with its default recipe's arguments.
The network runs on the engine (the exported ``.onebit`` file, random weights: latency does
not depend on them) and, as the baseline, as its float twin in PyTorch fp32 (the same
architecture with float layers), batch 1, at 1 and 2 threads; medians of ``--repeats``
calls after warm-up in interleaved rounds, min–max beside them. The featurizer is the
same code for both pipelines: it is timed once per sentence over real tweets and added
to both. Needs ``../shared/data/vader-sentences`` (or ``--data``).

The second table is the text CNN, ``binary_text_cnn`` (token embedding → binary Conv1d →
global max-pool → float classifier), on :data:`onebit.text.datasets.SEQUENCE_FEATURIZER`'s
token ids of the same tweets: the engine (the embedding a table of packed signs, looked up
straight into the XNOR-popcount convolution) against the same architecture with float
layers in PyTorch fp32, batch 1, at 1 and 2 threads, real sentences as input, medians over
interleaved rounds; the tokenizer (shared by both) apart.

    python benchmarks/bench_text.py [--repeats 300] [--data PATH/vader-sentences]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bgemm import cpu_model, load_avg  # noqa: E402

import numpy as np  # noqa: E402

from onebit.bench import bench_model, export_random_model, time_call  # noqa: E402
from onebit.recipes import recipe_for  # noqa: E402
from onebit.text.datasets import DEFAULT_FEATURIZER, SEQUENCE_FEATURIZER, vader_split  # noqa: E402

ROUNDS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--data", default=None, help="the vader-sentences folder (default: ../shared/data)")
    args = parser.parse_args()

    split = vader_split(args.data, domain="tweets")
    featurizer = DEFAULT_FEATURIZER.fit(split.train_texts)
    sentences = split.test_texts[:100]
    per_sentence = [time_call(lambda s=s: featurizer.transform([s]), max(3, args.repeats // 100)) for s in sentences]
    front = (statistics.median(t[0] for t in per_sentence), min(t[1] for t in per_sentence),
             max(t[2] for t in per_sentence))
    model_args = recipe_for("binary_text_mlp", split.name).model_args
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "binary_text_mlp.onebit"
        report = export_random_model("binary_text_mlp", path, in_shape=(featurizer.dim,), num_classes=2, **model_args)
        result = bench_model(path, batch_size=1, threads=[1, 2], repeats=args.repeats)
    print(f"# bench_text: {datetime.now(timezone.utc):%Y-%m-%d}, {cpu_model()}, load {load_avg()}, ISA {result.isa}")
    print(f"\nbinary_text_mlp {model_args} over {featurizer.dim} featurizer columns; file {report.file_bytes:,} B "
          f"(float32 state dict {report.float32_state_bytes:,} B, {report.compression:.1f}x); featurizer median "
          f"over {len(sentences)} real tweets (mean length {statistics.mean(len(s) for s in sentences):.0f} "
          f"characters)\n")
    print(result.pipeline_table("featurizer: tokenize + vocabulary lookup (Python, both pipelines)", front, "per sentence"))
    bench_cnn(split, sentences, args.repeats)


def _random_cnn(binary: bool, length: int, vocab: int):
    """binary_text_cnn with its recipe's arguments, random weights and BatchNorm statistics (latency does not
    depend on the values); ``binary=False``: the same architecture with float layers."""
    import torch

    from onebit.models import create_model

    torch.manual_seed(0)
    quant = {} if binary else {"input_quantizer": None, "weight_quantizer": None}
    model = create_model("binary_text_cnn", in_shape=(length,), num_classes=2, vocab_size=vocab,
                         **recipe_for("binary_text_cnn", "vader-sentences").model_args, **quant)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-5, 5)
            m.running_var.uniform_(10, 100)
    return model.eval()


def bench_cnn(split, sentences: list[str], repeats: int) -> None:
    """The text CNN per sentence: engine vs PyTorch fp32 (float layers), batch 1, 1 and 2 threads."""
    import torch

    from onebit.export import export
    from onebit.runtime import load
    from onebit.train import torch_threads

    featurizer = SEQUENCE_FEATURIZER.fit(split.train_texts)
    ids = [featurizer.transform([s]) for s in sentences]
    tokenize = [time_call(lambda s=s: featurizer.transform([s]), max(3, repeats // 100))[0] for s in sentences]
    binary, twin = _random_cnn(True, featurizer.sequence_length, featurizer.dim), \
        _random_cnn(False, featurizer.sequence_length, featurizer.dim)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "binary_text_cnn.onebit"
        report = export(binary, path, np.concatenate(ids[:16]))
        engines = {t: load(path, num_threads=t) for t in (1, 2)}
        calls = max(1, repeats // (ROUNDS * len(ids)))
        times: dict[tuple[str, int], list[float]] = {}
        with torch.no_grad():
            for r in range(ROUNDS):  # every side in every round: a busy phase of the shared machine weighs on all
                for t in (1, 2):
                    for x in ids[r::ROUNDS]:
                        times.setdefault(("engine", t), []).append(time_call(lambda x=x: engines[t](x), calls)[0])
                        with torch_threads(t):
                            xt = torch.from_numpy(x)
                            times.setdefault(("torch", t), []).append(time_call(lambda xt=xt: twin(xt), calls)[0])
    tok = statistics.median(tokenize)
    print(f"\nbinary_text_cnn {recipe_for('binary_text_cnn', split.name).model_args or 'default arguments'} over "
          f"{featurizer.sequence_length} token ids (vocabulary {featurizer.dim}); file {report.file_bytes:,} B "
          f"(float32 state dict {report.float32_state_bytes:,} B, {report.compression:.1f}x); "
          f"{', '.join(f'{l.name}: {l.kind}' for l in report.layers)}\n")
    print("| stage | threads | onebit ms (median) | PyTorch fp32 ms (median) | network speed-up | per sentence, end to "
          "end (onebit vs PyTorch) |\n|---|---:|---:|---:|---:|---|")
    print(f"| tokenizer → token ids (Python, both pipelines) | 1 | {1e3 * tok:.3f} | | | |")
    for t in (1, 2):
        e, p = statistics.median(times[("engine", t)]), statistics.median(times[("torch", t)])
        print(f"| network, batch 1 | {t} | {1e3 * e:.3f} | {1e3 * p:.3f} | {p / e:.1f}x | "
              f"{1e3 * (tok + e):.3f} vs {1e3 * (tok + p):.3f} ms ({(tok + p) / (tok + e):.1f}x) |")


if __name__ == "__main__":
    main()
