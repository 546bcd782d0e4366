"""QONNX export (onebit.deploy.qonnx): QONNX's own executor and onnxruntime against the PyTorch forward."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
pytest.importorskip("qonnx")
ort = pytest.importorskip("onnxruntime")

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.change_batchsize import ChangeBatchSize
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.util.cleanup import cleanup_model

import onebit.deploy
from onebit.checkpoint import save_checkpoint
from onebit.cli import main
from onebit.data import load_dataset
from onebit.deploy.qonnx import QONNX_DOMAIN, check_qonnx, expand_quantizers, to_qonnx
from onebit.errors import ConfigError, ExportError
from onebit.models import create_model
from onebit.nn import (
    QuantConv1d,
    QuantConv2d,
    QuantLinear,
    Residual,
    RPReLU,
    RSign,
    SteHeaviside,
    SteTern,
)

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-t10k"


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """1,000 real handwritten digits (scikit-learn's 8×8 set, train then test rows), pixels in [0, 1]."""
    d = load_dataset("digits")
    return np.concatenate([d.x_train, d.x_test])[:1000]


def _onnxruntime_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """The quantizers expanded to standard ops, the batch axis set by QONNX's ChangeBatchSize, run by
    onnxruntime without graph optimizations: its Conv+BatchNormalization fusion rounds differently, which
    can move a BatchNorm output lying within float rounding of 0 across the sign (docs/deploy_qonnx.md)."""
    expanded = expand_quantizers(onnx.load(str(path)))
    onnx.checker.check_model(expanded)
    assert all(n.domain == "" for n in expanded.graph.node)
    batched = ModelWrapper(expanded).transform(ChangeBatchSize(len(x))).model
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(batched.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"global_in": np.ascontiguousarray(x, dtype=np.float32)})[0]


def _agree(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)) <= 1e-4


@pytest.mark.parametrize("name", ["tfc", "sfc", "lfc"])
def test_bnn_pynq_fc_pretrained_matches_pytorch_on_1000_digits(name: str, digits: np.ndarray, tmp_path: Path) -> None:
    model = create_model(name, pretrained="digits")
    path = to_qonnx(model, tmp_path / f"{name}.onnx", in_shape=digits.shape[1:])
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = [(n.op_type, n.domain) for n in proto.graph.node]
    # 4 binary weight matrices and 3 binary activations (the first layer takes the real-valued pixels)
    assert ops.count(("BipolarQuant", QONNX_DOMAIN)) == 7
    assert ops.count(("MatMul", "")) == 4 and ops.count(("BatchNormalization", "")) == 4
    assert ("Clip", "") not in ops  # each Hardtanh went into the next layer's sign

    result = check_qonnx(path, model, digits)  # QONNX's executor, one batch of 1,000
    assert result["samples"] == 1000 and result["same_prediction"] == 1.0 and result["max_rel_err"] <= 1e-4
    _agree(_onnxruntime_logits(path, digits), result["torch_logits"])


def test_qonnx_cleanup_shapes_and_datatypes(digits: np.ndarray, tmp_path: Path) -> None:
    path = to_qonnx(create_model("tfc", pretrained="digits"), tmp_path / "tfc.onnx", in_shape=digits.shape[1:])
    model = cleanup_model(ModelWrapper(str(path)))
    assert model.check_all_tensor_shapes_specified()
    model = model.transform(InferDataTypes())
    quants = model.get_nodes_by_op_type("BipolarQuant")
    activations = [n for n in quants if model.get_initializer(n.input[0]) is None]
    assert len(activations) == 3
    assert all(model.get_tensor_datatype(n.output[0]) == DataType["BIPOLAR"] for n in quants)
    assert model.get_tensor_shape("global_in") == [1, 1, 8, 8] and model.get_tensor_shape("global_out") == [1, 10]


@pytest.mark.skipif(not MNIST.is_dir(), reason="../shared/data/mnist-t10k (the real MNIST test set) is absent")
def test_cnv_matches_pytorch(tmp_path: Path) -> None:
    """CNV at full width on real MNIST digits padded to 32×32 and repeated on 3 channels, scaled to [−1, 1];
    BatchNorm statistics from one training-mode pass over 256 of them (no trained CNV ships)."""
    images = load_dataset(str(MNIST), split=(9000, 1000)).x_test[:288]
    x = np.repeat(np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2))), 3, axis=1) * 2.0 - 1.0
    torch.manual_seed(0)
    model = create_model("cnv")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.momentum = None  # cumulative average: the statistics of the calibration batch
    with torch.no_grad():
        model.train()(torch.from_numpy(x[:256]))
    model.eval()
    path = to_qonnx(model, tmp_path / "cnv.onnx", in_shape=(3, 32, 32))
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("BipolarQuant") == 9 + 8 and ops.count("Conv") == 6 and ops.count("MaxPool") == 2
    test = x[256:]  # 32 inputs not used for the statistics
    result = check_qonnx(path, model, test)
    assert result["same_prediction"] == 1.0 and result["max_rel_err"] <= 1e-4
    assert len(set(result["torch_logits"].argmax(1))) > 1
    _agree(_onnxruntime_logits(path, test), result["torch_logits"])


def _calibrated(model: nn.Module, x: np.ndarray) -> nn.Module:
    """``model`` in eval mode with BatchNorm statistics of ``x`` (one training-mode pass, cumulative average)
    and RSign/RPReLU parameters drawn away from their zero start."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.momentum = None
            if isinstance(m, RSign | RPReLU):
                for p in m.parameters():
                    p.normal_(0, 0.2)
        model.train()(torch.from_numpy(x))
    return model.eval()


def test_every_supported_layer_and_quantizer_matches_pytorch(digits: np.ndarray, tmp_path: Path) -> None:
    """±1 and zero padding, TensorFlow 'same' padding with stride 2, RSign, RPReLU, a residual, scaled weights,
    the threshold quantizers (heaviside, ternary), DoReFa, float first and last layers, pooling, 1-D convs."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        QuantConv2d(8, 16, 3, padding=1, pad_value=-1.0, input_quantizer=RSign(8),
                    weight_quantizer="magnitude_aware_sign", bias=False),
        nn.BatchNorm2d(16), RPReLU(16),
        Residual(nn.Sequential(QuantConv2d(16, 16, 3, padding=1, pad_value=1.0, input_quantizer="approx_sign",
                                           weight_quantizer="xnor_sign", scaling="learned"), nn.BatchNorm2d(16))),
        nn.MaxPool2d(2),
        QuantConv2d(16, 16, 3, stride=2, padding="same", input_quantizer=SteHeaviside(strict=True),
                    weight_quantizer="ste_sign"),
        nn.BatchNorm2d(16), nn.AvgPool2d(2), nn.Flatten(),
        QuantLinear(16, 12, input_quantizer=SteTern(threshold_value=0.3), weight_quantizer="ste_sign"),
        nn.BatchNorm1d(12),
        QuantLinear(12, 12, input_quantizer="dorefa", weight_quantizer="ste_sign"), nn.BatchNorm1d(12),
        nn.Hardtanh(), nn.Linear(12, 10),
    )
    x = digits[:300] * 2.0 - 1.0
    model = _calibrated(model, x)
    path = to_qonnx(model, tmp_path / "zoo.onnx", in_shape=(1, 8, 8))
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"BipolarQuant", "MultiThreshold", "Quant", "Pad", "PRelu", "Add", "AveragePool", "Clip"} <= ops
    result = check_qonnx(path, model, x)
    assert len(set(result["torch_logits"].argmax(1))) > 1
    _agree(_onnxruntime_logits(path, x), result["torch_logits"])

    conv1d = nn.Sequential(
        QuantConv1d(1, 8, 3, padding=1, pad_value=-1.0, input_quantizer=SteTern(threshold_value=0.3),
                    weight_quantizer="ste_sign"),
        nn.BatchNorm1d(8), nn.Hardtanh(), nn.MaxPool1d(2, padding=1), nn.Flatten(),
        QuantLinear(8 * 33, 10, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
    )
    seq = x.reshape(len(x), 1, 64)
    conv1d = _calibrated(conv1d, seq)
    path = to_qonnx(conv1d, tmp_path / "conv1d.onnx", in_shape=(1, 64))
    result = check_qonnx(path, conv1d, seq)
    _agree(_onnxruntime_logits(path, seq), result["torch_logits"])


def test_fold_thresholds_writes_multithreshold(digits: np.ndarray, tmp_path: Path) -> None:
    """layer → BatchNorm → sign as layer → MultiThreshold: decreasing channels (γ < 0, weights and bias negated),
    a constant channel (γ = 0), a float first layer with bias, a learned scale, max-pool between."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Hardtanh(), nn.MaxPool2d(2),
        QuantConv2d(8, 16, 3, padding=1, pad_value=-1.0, input_quantizer="ste_sign", weight_quantizer="ste_sign",
                    scaling="learned"),
        nn.BatchNorm2d(16), nn.Hardtanh(), nn.Flatten(),
        QuantLinear(256, 32, input_quantizer="ste_sign", weight_quantizer="magnitude_aware_sign"),
        nn.BatchNorm1d(32), nn.Hardtanh(),
        QuantLinear(32, 10, input_quantizer="ste_sign", weight_quantizer="ste_sign"), nn.BatchNorm1d(10),
    )
    x = digits[:300] * 2.0 - 1.0
    model = _calibrated(model, x)
    with torch.no_grad():
        for bn in (model[1], model[5], model[9]):
            bn.weight[::3] *= -1.0
            bn.bias.normal_(0.0, 0.5)
        model[9].weight[1] = 0.0
        model[4].scale.uniform_(0.5, 2.0)
    path = to_qonnx(model, tmp_path / "fold.onnx", in_shape=(1, 8, 8), fold_thresholds=True)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("MultiThreshold") == 3 and ops.count("BatchNormalization") == 1 and "Clip" not in ops
    result = check_qonnx(path, model, x)
    assert len(set(result["torch_logits"].argmax(1))) > 1
    _agree(_onnxruntime_logits(path, x), result["torch_logits"])
    unfolded = check_qonnx(to_qonnx(model, tmp_path / "plain.onnx", in_shape=(1, 8, 8)), model, x)
    np.testing.assert_array_equal(unfolded["qonnx_logits"].argmax(1), result["qonnx_logits"].argmax(1))


def test_unsupported_pieces_fail_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"^1: Unflatten has no QONNX form"):
        to_qonnx(nn.Sequential(nn.Flatten(), nn.Unflatten(1, (8, 8))), tmp_path / "a.onnx", in_shape=(1, 8, 8))
    bad = nn.Sequential(nn.Flatten(), QuantLinear(64, 4, input_quantizer="ste_sign", weight_quantizer="dorefa"))
    bad[1].weight_quantizer.mode = "weights"
    with pytest.raises(ExportError, match=r"^1\.weight_quantizer: quantizer DoReFa has no QONNX form"):
        to_qonnx(bad, tmp_path / "b.onnx", in_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="needs in_shape"):
        to_qonnx(nn.Sequential(nn.Flatten()), tmp_path / "c.onnx")
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        to_qonnx(nn.Sequential(nn.Flatten()), tmp_path / "c.onnx", in_shape=(4,), batch_size=0)
    assert not (tmp_path / "a.onnx").exists()


def test_check_qonnx_detects_a_different_model(digits: np.ndarray, tmp_path: Path) -> None:
    model = create_model("tfc", pretrained="digits")
    path = to_qonnx(model, tmp_path / "tfc.onnx", in_shape=(1, 8, 8))
    with torch.no_grad():
        model[-1].bias[0] += 100.0  # the last BatchNorm's shift: class 0 wins everywhere in PyTorch only
    with pytest.raises(ExportError, match="QONNX execution differs from PyTorch"):
        check_qonnx(path, model, digits[:50])


def test_cli_export_qonnx_from_checkpoint(digits: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = create_model("tfc", pretrained="digits")
    ckpt = save_checkpoint(tmp_path / "tfc.safetensors", model, info={"data": "digits"})
    out = tmp_path / "model.onnx"
    assert main(["export", str(ckpt), "--format", "qonnx", "-o", str(out)]) == 0
    assert "model.onnx" in capsys.readouterr().out
    result = check_qonnx(out, model, digits[:100])
    assert result["same_prediction"] == 1.0
    assert to_qonnx(ckpt, tmp_path / "lib.onnx").read_bytes() == out.read_bytes()  # in_shape from the checkpoint
    assert onebit.deploy.to_qonnx is to_qonnx


def test_cli_without_onnx_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    ckpt = save_checkpoint(tmp_path / "tfc.safetensors", create_model("tfc", in_shape=(1, 8, 8)), info={"data": "digits"})
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    assert main(["export", str(ckpt), "--format", "qonnx", "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["onebit export: error: QONNX export needs the optional extra 'onnx': pip install 'onebit[onnx]'"]
