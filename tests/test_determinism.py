"""The engine's results do not depend on the thread count or the ISA path.

Three exported models (an MLP whose first layer has binary weights on float inputs; a conv
net with Bi-Real residual blocks and a binary max-pool on packed bits; a conv net with a
float first layer and a classifier with binary weights on float inputs) run in one
subprocess per ISA this CPU has (forced with ONEBIT_ISA, which the runtime reads once per
process):

* for one ISA, 1, 2, 3 and 8 threads give the same logits, byte for byte;
* across ISAs, every layer fed the same inputs (the scalar path's values) gives the same
  bytes (the integer parts are bit-exact, and so is every float op after them), except the
  float-input products (dense/conv2d on float inputs, where a SIMD kernel may round
  differently from the scalar path), whose float outputs agree within FLOAT_LAYER_RTOL of
  the layer's largest |output|, and whose packed signs differ in at most MAX_FLIPPED of
  the bits;
* the logits agree within LOGIT_RTOL of the largest |logit| (README, Safety). Measured on
  these models: the MLP's and the residual net's logits identical on every ISA (no sign
  flipped after a float-input layer); the third's classifier (binary weights on float
  inputs: onebit's kernel on AVX2/AVX-512, numpy's BLAS on the scalar path) differs by
  2.1e-7 of the largest |logit|, AVX2 and AVX-512 identical.

Training with a fixed seed is reproducible on CPU: tests/test_train.py
(test_fixed_seed_gives_identical_weights, in-process) and tests/test_cli.py
(test_train_with_a_fixed_seed_repeats_exactly, two processes, byte-identical files).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from onebit import _core
from onebit.export import export
from onebit.models import create_model
from onebit.nn import BiRealBlock, QuantConv2d, QuantLinear
from tests.exporting import randomize_bn

ISAS = _core.available_isas()
THREADS = (1, 2, 3, 8)
# Float-input products: fgemm_bw's bound is 2^-17 * sum|x| per output (csrc/fgemm_bw.h);
# measured here, up to 2.1e-7 of the layer's largest |output| (scalar path vs SIMD paths).
FLOAT_LAYER_RTOL = 1e-5
# ... so the signs packed after it may differ only for values at their threshold's rounding.
MAX_FLIPPED = 1e-4
LOGIT_RTOL = 1e-5
# The runtime's layer kinds whose products run in floats (onebit's fgemm_bw or numpy's BLAS).
FLOAT_PRODUCTS = ("float", "binary weights, float input")

# Run in each ISA's subprocess: argv = folder, model names. Writes <model>-<isa>.npz with
# the logits per thread count, and (given the scalar path's values) each layer's output
# computed from the scalar path's inputs.
_RUNNER = """
import json, os, sys
import numpy as np
import onebit.runtime as rt
folder, isa = sys.argv[1], os.environ["ONEBIT_ISA"]
for name in sys.argv[2:]:
    x = np.load(f"{folder}/{name}-x.npy")
    out = {}
    for t in (1, 2, 3, 8):
        out[f"logits-{t}"] = rt.load(f"{folder}/{name}.onebit", num_threads=t)(x)
    model = rt.load(f"{folder}/{name}.onebit", num_threads=2)
    reference = f"{folder}/{name}-scalar.npz"
    values = {"input": x} if isa == "scalar" else dict(np.load(reference))
    for layer in model.layers:  # fused as load() fuses them (runtime/fusion.py)
        if isa == "scalar":
            layer.run(values, 2)  # the scalar path end to end: the reference values
        else:
            mine = {v: values[v] for v in layer.inputs}
            layer.run(mine, 2)
            for v in (layer.output, *layer.also_writes):
                out[f"layer-{v}"] = mine[v]
    if isa == "scalar":
        out.update(values)
        layers = [(l.name, l.op, l.kind, v) for l in model.layers for v in (l.output, *l.also_writes)]
        json.dump({"layers": layers, "output": model.graph["output"]}, open(f"{folder}/{name}-layers.json", "w"))
    np.savez(f"{folder}/{name}-{isa}.npz", **out)
"""


def _models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)
    mlp = create_model("binarynet_mlp", num_classes=10, in_shape=(1, 16, 16), hidden=200)
    residual = nn.Sequential(
        QuantConv2d(3, 64, 3, padding=1, bias=False, weight_quantizer="ste_sign"), nn.BatchNorm2d(64),
        BiRealBlock(64, 64), BiRealBlock(64, 128, stride=2),
        QuantConv2d(128, 64, 3, padding=1, pad_value=-1.0, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.MaxPool2d(2), nn.BatchNorm2d(64), nn.Hardtanh(), nn.Flatten(),
        QuantLinear(64 * 4 * 4, 10, input_quantizer="ste_sign", weight_quantizer="ste_sign"), nn.BatchNorm1d(10),
    )
    # A float first conv and a classifier with binary weights on float inputs.
    float_first = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.Hardtanh(),
        QuantConv2d(32, 64, 3, padding=1, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.BatchNorm2d(64), nn.Hardtanh(), nn.MaxPool2d(2),
        nn.Flatten(), QuantLinear(64 * 8 * 8, 64, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.BatchNorm1d(64), nn.Hardtanh(),
        QuantLinear(64, 10, input_quantizer=None, weight_quantizer="ste_sign"), nn.BatchNorm1d(10),
    )
    return {"mlp": (randomize_bn(mlp, 1), (1, 16, 16)), "residual": (randomize_bn(residual, 2), (3, 16, 16)),
            "float_first": (randomize_bn(float_first, 3), (3, 16, 16))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Exports the models and runs them in one subprocess per ISA; returns the folder."""
    folder = tmp_path_factory.mktemp("determinism")
    names = []
    for i, (name, (model, in_shape)) in enumerate(_models().items()):
        x = np.random.default_rng(i).standard_normal((24, *in_shape)).astype(np.float32)
        export(model, folder / f"{name}.onebit", torch.from_numpy(x[:8]), verbose=False)
        np.save(folder / f"{name}-x.npy", x)
        names.append(name)
    for isa in ISAS:  # scalar first: the others read its values
        proc = subprocess.run([sys.executable, "-c", _RUNNER, str(folder), *names],
                              env={**os.environ, "ONEBIT_ISA": isa}, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    return folder


@pytest.mark.parametrize("name", ["mlp", "residual", "float_first"])
@pytest.mark.parametrize("isa", ISAS)
def test_thread_counts_give_identical_bytes(runs, name, isa):
    folder = runs
    got = np.load(folder / f"{name}-{isa}.npz")
    for t in THREADS[1:]:
        assert got[f"logits-{t}"].tobytes() == got["logits-1"].tobytes(), f"{name} {isa}: {t} threads differ from 1"


@pytest.mark.parametrize("name", ["mlp", "residual", "float_first"])
def test_isas_agree_layer_by_layer_and_on_the_logits(runs, name):
    """Same inputs per layer: the same bytes on every ISA, but for the float-input products."""
    folder = runs
    ref = np.load(folder / f"{name}-scalar.npz")
    info = json.loads((folder / f"{name}-layers.json").read_text())
    for isa in ISAS[1:]:
        got = np.load(folder / f"{name}-{isa}.npz")
        for layer, op, kind, value in info["layers"]:
            mine, want = got[f"layer-{value}"], ref[value]
            assert mine.shape == want.shape and mine.dtype == want.dtype, (name, isa, layer)
            if op in ("dense", "conv2d") and kind in FLOAT_PRODUCTS and mine.dtype == np.float32:
                assert np.abs(mine - want).max() <= FLOAT_LAYER_RTOL * np.abs(want).max(), (name, isa, layer)
            elif op in ("dense", "conv2d") and kind in FLOAT_PRODUCTS:
                # Packed signs of a float product: only a value within rounding of its
                # threshold can come out the other way.
                flipped = np.unpackbits((mine ^ want).view(np.uint8)).sum()
                assert flipped <= MAX_FLIPPED * want.size * 64, (name, isa, layer, flipped)
            else:
                assert mine.tobytes() == want.tobytes(), f"{name} {isa}: layer {layer} ({op}, {kind}) differs"
        logits, want = got["logits-1"], ref[info["output"]]
        assert np.abs(logits - want).max() <= LOGIT_RTOL * np.abs(want).max(), (name, isa)
        np.testing.assert_array_equal(logits.argmax(1), want.argmax(1))
