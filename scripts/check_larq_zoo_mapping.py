"""Check that every full-size Larq-zoo architecture maps onto onebit's registered zoo model.

For each Larq-zoo model in ``tests/fixtures/larq/architectures.json.gz`` (the Keras configuration
of the 224 x 224, 1000-class model, made by ``scripts/make_larq_fixtures.py``; no weights), build
the converted graph, give it random weights and BatchNorm statistics, and run
:func:`onebit.convert.zoo.to_zoo_model`, which copies them into ``create_model``'s model and
checks (in float64) that both compute the same function. Prints the ``onebit_config`` or
``None`` (not mapped) per model. Too slow for the test suite (about a minute on one core):

    python scripts/check_larq_zoo_mapping.py [NAME ...]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import torch
from torch import nn

from onebit.convert import KerasFile, build_graph
from onebit.convert.zoo import to_zoo_model
from onebit.errors import ModelFileError

ARCHITECTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "larq" / "architectures.json.gz"


def randomize(graph: nn.Module, seed: int = 0) -> None:
    """Random conv/dense weights (std 1/√fan-in), BatchNorm statistics and affine terms, PReLU slopes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in graph.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0, 1 / m.weight[0].numel() ** 0.5, generator=g)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.normal_(0, 0.3, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                if m.weight.requires_grad:
                    m.weight.uniform_(0.5, 1.5, generator=g)
                if m.bias.requires_grad:
                    m.bias.normal_(0, 0.3, generator=g)
            elif isinstance(m, nn.PReLU):
                m.weight.uniform_(0.05, 0.4, generator=g)


def main() -> None:
    architectures = json.loads(gzip.decompress(ARCHITECTURES.read_bytes()))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"Larq-zoo models (default: all): {', '.join(sorted(architectures))}")
    names = parser.parse_args().names or sorted(architectures)
    unknown = [n for n in names if n not in architectures]
    if unknown:
        parser.error(f"unknown Larq-zoo models {unknown}; valid: {', '.join(sorted(architectures))}")
    torch.set_num_threads(1)
    for name in names:
        start = time.perf_counter()
        try:
            graph = build_graph(KerasFile(Path(f"{name}.h5"), architectures[name]["config"], None, ""))
        except ModelFileError as exc:
            print(f"{name:26s} does not convert: {exc}")
            continue
        randomize(graph)
        model = to_zoo_model(graph)
        config = None if model is None else model.onebit_config
        print(f"{name:26s} {config}  ({time.perf_counter() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
