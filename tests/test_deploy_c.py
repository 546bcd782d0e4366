"""onebit.deploy.to_c: the exported C, compiled with gcc -std=c99 -Wall -Wextra -Werror -pedantic, gives
onebit.runtime's outputs bit for bit (host), and its predictions on an emulated Cortex-M4/M7 (QEMU MPS2).

Inputs are multiples of 1/16 (the digits data set's pixels are): sums of such values are exact in
float32 in any order, so the runtime's float kernels (whatever order their SIMD sums in) and the C
fmaf chains agree to the last bit, and the logits are compared for equality, not a tolerance.
Each model is exported and compiled once per module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import onebit.deploy.c
from onebit.deploy import to_c
from onebit.deploy.c import SUPPORTED_OPS
from onebit.deploy.cbuild import build_cortex_m, build_host, missing_cortex_m_tools, read_main_output, run_qemu
from onebit.errors import ConfigError, ExportError
from onebit.runtime import load, pack_bits
from onebit.runtime.container import write_container

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host C compiler (gcc) on PATH")
_CORTEX_M = missing_cortex_m_tools()
needs_cortex_m = pytest.mark.skipif(_CORTEX_M is not None, reason=f"Cortex-M toolchain absent: {_CORTEX_M}")


def _inputs(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.round(rng.uniform(-2, 2, (n, *shape)) * 16) / 16).astype(np.float32)


def _runtime(path: Path, x: np.ndarray) -> np.ndarray:
    """onebit.runtime's logits, 16 rows a call: up to 16 rows its float dense layers run the fmaf chain of
    its FloatConv2d, which the C code runs too (beyond, numpy's BLAS, which rounds by its own blocking,
    within the runtime's documented 1e-5 × max |logit|)."""
    model = load(path, num_threads=1)
    return np.concatenate([model(x[i : i + 16]) for i in range(0, len(x), 16)])


def _host_outputs(path: Path, out: Path, x: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    to_c(path, out, samples=x, **kwargs)
    text = subprocess.run([str(build_host(out))], capture_output=True, text=True, check=True).stdout
    preds, logits, _ = read_main_output(text)
    return preds, logits


# ---------------------------------------------------------------- hand-written graphs: every node kind


class _Graph:
    """A .onebit graph written node by node with random tensors (the runtime checks it on load)."""

    def __init__(self, in_shape: tuple[int, ...], seed: int):
        self.rng = np.random.default_rng(seed)
        self.in_shape, self.nodes, self.tensors = in_shape, [], {}

    def _tensor(self, node: dict, key: str, array: np.ndarray) -> None:
        name = f"{node['name']}.{key}"
        self.tensors[name] = array
        node.setdefault("tensors", {})[key] = name

    def floats(self, *shape: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
        return self.rng.uniform(low, high, shape).astype(np.float32)

    def bits(self, rows: int, channels: int, lead: tuple[int, ...] = ()) -> np.ndarray:
        signs = np.where(self.rng.random((rows, *lead, channels)) < 0.5, -1.0, 1.0).astype(np.float32)
        return pack_bits(signs)

    def add(self, op: str, inputs: list[str], **attrs) -> str:
        out = f"v{len(self.nodes)}"
        node = {"op": op, "name": f"n{len(self.nodes)}_{op}", "inputs": inputs, "output": out}
        tensors = attrs.pop("tensors", {})
        node.update(attrs)
        for key, array in tensors.items():
            self._tensor(node, key, array)
        self.nodes.append(node)
        return out

    def threshold_stage(self, n: int, k: int) -> dict:
        spread = int(np.sqrt(k))  # y = K - 2 popcount has spread sqrt(K) on random bits
        return {"threshold": self.rng.integers(-spread, spread + 1, n).astype(np.int32),
                "flip": np.where(self.rng.random(n) < 0.3, -1, 1).astype(np.int8)}

    def float_stage(self, n: int, post: bool = False) -> dict:
        stage = {"scale": self.floats(n, low=0.05, high=0.3), "bias": self.floats(n)}
        if post:
            stage.update(post_scale=self.floats(n, low=0.5, high=1.5), post_bias=self.floats(n))
        return stage

    def write(self, path: Path, output: str, **extra) -> Path:
        graph = {**extra, "format": "onebit-model", "version": 2, "input": {"name": "input", "shape": list(self.in_shape),
                 "dtype": "float32"}, "output": output, "nodes": self.nodes, "source": {"model": None}}
        write_container(path, self.tensors, {"onebit": json.dumps(graph)})
        return path


def _conv(g: _Graph, src: str, cin: int, cout: int, kernel, *, bits_in: bool, out: str, pad_value: int = 1,
          stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups: int = 1, pool=None, act: str = "none",
          post: bool = False, float_weights: bool = False) -> str:
    cg = cin // groups
    if float_weights:
        weight = g.floats(cout, *kernel, cg)
    else:
        weight = g.bits(cout, cg, tuple(kernel))
    k = cg * kernel[0] * kernel[1]
    tensors = {"weight": weight, **(g.threshold_stage(cout, k) if bits_in and out == "bits" else g.float_stage(cout, post))}
    attrs = dict(cin=cin, cout=cout, groups=groups, kernel=list(kernel), stride=list(stride), padding=list(padding),
                 dilation=list(dilation), pad_value=pad_value, weights="float" if float_weights else "bits", out=out,
                 tensors=tensors)
    if out == "float":
        attrs["act"] = act
    if pool is not None:
        attrs["pool"] = {"kernel": list(pool[0]), "stride": list(pool[1]), "padding": list(pool[2])}
    return g.add("conv2d", [src], **attrs)


def _dense(g: _Graph, src: str, k: int, n: int, *, bits_in: bool, out: str, act: str = "none", post: bool = False,
           float_weights: bool = False) -> str:
    weight = g.floats(n, k) if float_weights else g.bits(n, k)
    tensors = {"weight": weight, **(g.threshold_stage(n, k) if bits_in and out == "bits" else g.float_stage(n, post))}
    attrs = dict(k=k, n=n, weights="float" if float_weights else "bits", out=out, tensors=tensors)
    if out == "float":
        attrs["act"] = act
    return g.add("dense", [src], **attrs)


def _image_graph(path: Path) -> Path:
    """Every node kind on an image: float conv (pad +1) → affine → shifted sign → binary convs with pad −1
    (3×3 pool with padding), pad 0 (groups 2, dilation 2), a binary max-pool of bits with padding, pad +1
    (stride 2, float output with an affine after hardtanh), a residual add, RPReLU, concat, average and
    float max-pools, hardtanh, float-input dense with binary weights → bits, threshold dense, dense with a
    float output, ReLU, a float dense."""
    g = _Graph((3, 9, 9), seed=1)
    v = g.add("to_nhwc", ["input"])
    v = _conv(g, v, 3, 40, (3, 3), bits_in=False, out="float", pad_value=1, padding=(1, 1), act="relu",
              float_weights=True)
    v = g.add("affine", [v], tensors={"scale": g.floats(40, low=0.5, high=2), "bias": g.floats(40)})
    v = g.add("sign", [v], tensors={"shift": g.floats(40, low=-0.5, high=0.5)})
    v = _conv(g, v, 40, 128, (3, 3), bits_in=True, out="bits", pad_value=-1, padding=(1, 1),
              pool=((3, 3), (2, 2), (1, 1)))  # (5, 5, 128)
    v = _conv(g, v, 128, 64, (3, 3), bits_in=True, out="bits", pad_value=0, padding=(2, 2), dilation=(2, 2), groups=2)
    v = g.add("maxpool2d", [v], pool={"kernel": [2, 2], "stride": [1, 1], "padding": [1, 1]})  # (6, 6, 64) bits
    a = _conv(g, v, 64, 48, (3, 3), bits_in=True, out="float", pad_value=1, stride=(2, 2), padding=(1, 1),
              act="hardtanh", post=True)  # (3, 3, 48)
    b = _conv(g, v, 64, 48, (2, 2), bits_in=True, out="float", pad_value=1, stride=(2, 2), act="relu")
    s = g.add("add", [a, b])
    s = g.add("act", [s], act="prelu", tensors={"shift_in": g.floats(48, low=-0.2, high=0.2),
                                                "slope": g.floats(48, low=0.1, high=0.5),
                                                "shift_out": g.floats(48, low=-0.2, high=0.2)})
    c = g.add("concat", [s, a])  # (3, 3, 96)
    c = g.add("avgpool2d", [c], pool={"kernel": [2, 2], "stride": [1, 1], "padding": [1, 1]})  # (4, 4, 96)
    c = g.add("maxpool2d", [c], pool={"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0]})  # (2, 2, 96)
    c = g.add("act", [c], act="hardtanh", low=-0.5, high=2.0)
    c = g.add("flatten", [c])  # 384
    d = _dense(g, c, 384, 100, bits_in=False, out="bits")
    d = _dense(g, d, 100, 70, bits_in=True, out="bits")
    d = _dense(g, d, 70, 50, bits_in=True, out="float", act="relu", post=True)
    d = g.add("act", [d], act="relu")
    d = _dense(g, d, 50, 10, bits_in=False, out="float", float_weights=True)
    return g.write(path, d)


def _signal_graph(path: Path) -> Path:
    """A 1-D signal (C, L) = (4, 30): float-input conv with binary weights, zero padding and a pool → 70
    channels (a partial word), a binary conv with pad −1 to a float output, a sign with no shift, a pad +1
    conv, a flatten of packed bits, a binary dense with a float output."""
    g = _Graph((4, 30), seed=2)
    v = g.add("to_nhwc", ["input"])
    v = _conv(g, v, 4, 70, (1, 5), bits_in=False, out="bits", pad_value=0, padding=(0, 2),
              pool=((1, 2), (1, 2), (0, 0)))  # (1, 15, 70)
    v = _conv(g, v, 70, 33, (1, 3), bits_in=True, out="float", pad_value=-1, padding=(0, 1), act="none")
    v = g.add("sign", [v])
    v = _conv(g, v, 33, 64, (1, 3), bits_in=True, out="bits", pad_value=1, padding=(0, 1))  # (1, 15, 64)
    v = g.add("flatten", [v])
    v = _dense(g, v, 960, 10, bits_in=True, out="float")
    return g.write(path, v)


def _gate_graph(path: Path) -> Path:
    """Real-to-Binary Net's data-dependent gate: a float conv's (H, W, C) output times a per-sample
    (C,) vector, global average pool → float dense (ReLU) → float dense → sigmoid, then a shifted sign,
    a binary conv and a binary dense."""
    g = _Graph((3, 6, 6), seed=6)
    v = g.add("to_nhwc", ["input"])
    x = _conv(g, v, 3, 24, (3, 3), bits_in=False, out="float", pad_value=0, padding=(1, 1), act="relu",
              float_weights=True)  # (6, 6, 24)
    p = g.add("avgpool2d", [x], pool={"kernel": [6, 6], "stride": [1, 1], "padding": [0, 0]})  # (1, 1, 24)
    p = g.add("flatten", [p])
    p = _dense(g, p, 24, 8, bits_in=False, out="float", act="relu", float_weights=True)
    p = _dense(g, p, 8, 24, bits_in=False, out="float", float_weights=True)
    p = g.add("sigmoid", [p])
    v = g.add("channel_mul", [x, p])
    v = g.add("sign", [v], tensors={"shift": g.floats(24, low=0.0, high=0.3)})
    v = _conv(g, v, 24, 64, (3, 3), bits_in=True, out="bits", pad_value=1, stride=(2, 2), padding=(1, 1))  # (3, 3, 64)
    v = g.add("flatten", [v])
    v = _dense(g, v, 576, 10, bits_in=True, out="float")
    return g.write(path, v)


def _same_padding_graph(path: Path) -> Path:
    """TensorFlow's "same" padding of strided convs: the odd padded row and column after the image
    (``padding_end``), on a float-input conv (pad 0) and binary convs (pad −1, pad +1 with a pool)."""
    g = _Graph((3, 10, 10), seed=5)
    v = g.add("to_nhwc", ["input"])
    v = _conv(g, v, 3, 64, (3, 3), bits_in=False, out="bits", pad_value=0, stride=(2, 2), float_weights=True)
    g.nodes[-1]["padding_end"] = [1, 1]  # (10 + 0 + 1 - 3) // 2 + 1 = 5
    v = _conv(g, v, 64, 64, (3, 3), bits_in=True, out="bits", pad_value=-1, stride=(2, 2))
    g.nodes[-1]["padding_end"] = [2, 1]  # (5 + 2 - 3) // 2 + 1 = 3, (5 + 1 - 3) // 2 + 1 = 2
    v = _conv(g, v, 64, 32, (2, 2), bits_in=True, out="float", pad_value=1, act="none", pool=((2, 1), (1, 1), (0, 0)))
    g.nodes[-1]["padding_end"] = [1, 1]  # (3 + 1 - 2) + 1 = 3, (2 + 1 - 2) + 1 = 2; pooled (2, 2)
    v = g.add("flatten", [v])
    v = _dense(g, v, 128, 10, bits_in=False, out="float", float_weights=True)
    return g.write(path, v)


# ---------------------------------------------------------------- fixtures: export and compile once


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deploy_c")


def _zoo(work: Path, name: str, **kwargs) -> Path:
    from onebit.bench import export_random_model

    path = work / f"{name}.onebit"
    export_random_model(name, path, **kwargs)
    return path


def _pretrained(work: Path, name: str, data: str) -> tuple[Path, np.ndarray]:
    import torch

    from onebit.data import load_dataset
    from onebit.export import export
    from onebit.models import create_model

    dataset = load_dataset(data)
    model = create_model(name, pretrained=data).eval()
    path = work / f"{name}-{data}.onebit"
    with torch.no_grad():
        export(model, path, dataset.x_test[:16])
    return path, dataset.x_test


@pytest.fixture(scope="module")
def digits_models(work: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Shipped pretrained models on the digits test set: an MLP (tfc) and a conv net with residual
    shortcuts, RPReLU and pooling (binary_cnn2d)."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    return {name: _pretrained(work, name, "digits") for name in ("tfc", "binary_cnn2d")}


# ---------------------------------------------------------------- host: bit-exact against the runtime


@needs_gcc
@pytest.mark.parametrize("graph", [_image_graph, _signal_graph, _gate_graph], ids=["image", "signal", "gate"])
def test_every_node_kind_bit_exact(work: Path, graph) -> None:
    path = graph(work / f"{graph.__name__}.onebit")
    model = load(path, num_threads=1)
    x = _inputs(model.in_shape, 24, seed=3)
    preds, logits = _host_outputs(path, work / graph.__name__, x)
    expected = model(x)
    np.testing.assert_array_equal(logits, expected)  # the integer parts exact, the float ones to the last bit
    np.testing.assert_array_equal(preds, expected.argmax(1))
    assert len({row.tobytes() for row in logits}) == len(x)  # every input its own logits: nothing constant


@needs_gcc
def test_asymmetric_padding_bit_exact(work: Path) -> None:
    import inspect

    import onebit.runtime.ops

    if "padding_end" not in inspect.getsource(onebit.runtime.ops.conv2d):
        pytest.skip("this onebit.runtime has no asymmetric conv padding (padding_end)")
    path = _same_padding_graph(work / "same.onebit")
    model = load(path, num_threads=1)
    x = _inputs(model.in_shape, 12, seed=6)
    _, logits = _host_outputs(path, work / "same", x)
    np.testing.assert_array_equal(logits, model(x))


@needs_gcc
def test_64_bit_words_and_prefix_bit_exact(work: Path) -> None:
    path = _signal_graph(work / "signal64.onebit")
    model = load(path, num_threads=1)
    x = _inputs(model.in_shape, 8, seed=4)
    _, logits = _host_outputs(path, work / "signal64", x, word_bits=64, prefix="kws")  # kws_run, KWS_INPUT_SIZE
    np.testing.assert_array_equal(logits, model(x))
    assert "void kws_run(const float *input, float *output);" in (work / "signal64" / "model.h").read_text()


@needs_gcc
@pytest.mark.parametrize("name", ["lfc", "cnv", "binary_kws"])
def test_zoo_models_bit_exact(work: Path, name: str) -> None:
    """lfc (784 → 3×1024 → 10), cnv (BNN-PYNQ's VGG: six unpadded convs, two pools) and the keyword
    spotter (1-D convs, residual adds, RPReLU, float max-pools) at their native sizes, random weights."""
    pytest.importorskip("torch")
    path = _zoo(work, name)
    model = load(path, num_threads=1)
    x = _inputs(model.in_shape, 4 if name in ("cnv", "lfc") else 8, seed=5)
    preds, logits = _host_outputs(path, work / f"c_{name}", x)
    expected = model(x)
    np.testing.assert_array_equal(logits, expected)
    np.testing.assert_array_equal(preds, expected.argmax(1))


@needs_gcc
def test_pretrained_digits_bit_exact(work: Path, digits_models) -> None:
    for name, (path, x_test) in digits_models.items():
        x = x_test[:100]
        preds, logits = _host_outputs(path, work / f"host_{name}", x)
        expected = _runtime(path, x)
        np.testing.assert_array_equal(logits, expected, err_msg=name)
        np.testing.assert_array_equal(preds, expected.argmax(1), err_msg=name)
        whole = load(path, num_threads=1)(x)  # one batch of 100: BLAS for the float classifier
        np.testing.assert_allclose(logits, whole, rtol=0, atol=1e-5 * np.abs(whole).max(), err_msg=name)
        np.testing.assert_array_equal(preds, whole.argmax(1), err_msg=name)


# ---------------------------------------------------------------- emulated Cortex-M


@needs_cortex_m
@pytest.mark.parametrize(("name", "board"), [("binary_cnn2d", "mps2-an386"), ("tfc", "mps2-an500")])
def test_cortex_m_predictions_equal_runtime(work: Path, digits_models, name: str, board: str) -> None:
    """Cross-compiled for a Cortex-M4F (AN386) or M7 (AN500), run under QEMU with semihosting on the first
    100 digits test images: the same predictions and logits as onebit.runtime."""
    path, x_test = digits_models[name]
    x = x_test[:100]
    out = work / f"m_{name}_{board}"
    to_c(path, out, samples=x)
    build = build_cortex_m(out, board, systick=True)
    preds, logits, ticks = read_main_output(run_qemu(build.elf, board))
    expected = _runtime(path, x)
    assert len(preds) == 100 and len(ticks) == 100
    np.testing.assert_array_equal(preds, expected.argmax(1))
    np.testing.assert_array_equal(logits, expected)
    assert build.flash_bytes > 0 and build.ram_bytes >= to_c(path, out).arena_bytes


# ---------------------------------------------------------------- the arena, budgets, errors


def test_arena_reuses_memory_by_liveness(work: Path) -> None:
    path = _image_graph(work / "arena.onebit")
    result = to_c(path, work / "arena")
    assert 0 < result.arena_bytes < result.unplanned_bytes
    text = (work / "arena" / "model.c").read_text()
    assert "malloc" not in text and f"bytes[{result.arena_bytes}]" in text
    assert "float32 layers" in str(result) and "n1_conv2d" in str(result)  # the float first layer is named


def test_budgets_fail_naming_the_numbers(work: Path) -> None:
    path = _image_graph(work / "budget.onebit")
    result = to_c(path, work / "budget_ok", flash_kb=1024, ram_kb=1024)
    with pytest.raises(ExportError, match=rf"{result.const_bytes:,} bytes, over the flash budget of 1 KiB "
                                          r"\(1,024 bytes\); the largest layer is 'n4_conv2d' \(9,856 bytes\)"):
        to_c(path, work / "budget", flash_kb=1)
    with pytest.raises(ExportError, match=rf"arena is {result.arena_bytes:,} bytes, over the RAM budget of 0.5 KiB "
                                          r"\(512 bytes\); the peak is at layer"):
        to_c(path, work / "budget", ram_kb=0.5)
    assert not (work / "budget").exists()  # nothing written


def test_unsupported_models_fail_naming_the_node(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _image_graph(work / "unsupported.onebit")
    monkeypatch.setattr(onebit.deploy.c, "SUPPORTED_OPS", tuple(op for op in SUPPORTED_OPS if op != "concat"))
    with pytest.raises(ExportError, match=r"node 11 \('n11_concat'\) is a 'concat', which the C export does not "
                                          r"support; supported: to_nhwc, flatten"):
        to_c(path, work / "unsupported")
    monkeypatch.undo()
    g = _Graph((8,), seed=0)
    v = _dense(g, "input", 8, 4, bits_in=False, out="bits")
    features = g.write(work / "features.onebit", v, output_bits={"features": 4, "chw": None})
    with pytest.raises(ExportError, match="outputs packed bits"):
        to_c(features, work / "features")
    with pytest.raises(ConfigError, match="word_bits must be 32 or 64"):
        to_c(path, work / "x", word_bits=16)
    with pytest.raises(ConfigError, match="samples must be float32 of shape"):
        to_c(path, work / "x", samples=np.zeros((2, 3), np.float32))


def test_deploy_c_imports_no_torch() -> None:
    code = ("import sys, builtins\nreal = builtins.__import__\n"
            "def guard(name, *a, **k):\n    assert not name.startswith('torch'), name\n    return real(name, *a, **k)\n"
            "builtins.__import__ = guard\nimport onebit.deploy.c, onebit.deploy.cbuild\nprint('ok')")
    import sys

    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


def test_cli_export_format_c(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from onebit.cli import main

    path = _signal_graph(work / "cli.onebit")
    assert main(["export", str(path), "--format", "c", "-o", str(work / "cli_c")]) == 0
    assert "activation arena" in capsys.readouterr().out
    assert {p.name for p in (work / "cli_c").iterdir()} >= {"model.h", "model.c", "main.c"}
    if shutil.which("gcc") is not None:  # the example main.c without samples: one zero input
        text = subprocess.run([str(build_host(work / "cli_c", samples=False))], capture_output=True, text=True,
                              check=True).stdout
        preds, logits, _ = read_main_output(text)
        np.testing.assert_array_equal(logits, load(path, num_threads=1)(np.zeros((1, 4, 30), np.float32)))
    assert main(["export", str(path), "--format", "c", "-o", str(work / "cli_small"), "--flash-kb", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "over the flash budget of 0.5 KiB (512 bytes)" in err
