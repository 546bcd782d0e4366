"""Transfer learning with frozen binary features: cutting, packed-bit exports, heads, the command, the experiment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import onebit
from onebit.checkpoint import save_checkpoint
from onebit.cli import main
from onebit.errors import ConfigError, DataError
from onebit.models import create_model
from onebit.nn import QuantConv2d, eval_mode
from onebit.transfer import FeatureExtractor, fit_head, head_accuracy, layer_names, load_head, transfer
from tests.exporting import randomize_bn


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def digits():
    return onebit.load_dataset("digits")


def _tfc(digits, classes=10):
    torch.manual_seed(0)
    return randomize_bn(create_model("tfc", num_classes=classes, in_shape=digits.in_shape))


def test_cut_keeps_the_layers_up_to_the_named_one_and_freezes_them(digits):
    model = _tfc(digits)
    assert layer_names(model) == [str(i) for i in range(16)]  # quantizers inside a layer are not cut points
    extractor = FeatureExtractor(model, "12")
    assert extractor.num_features == 64 and extractor.in_shape == (1, 8, 8)
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not extractor.backbone.training  # frozen: BatchNorm keeps its running statistics
    features = extractor.features(digits.x_test)
    assert features.shape == (360, 64) and set(np.unique(features)) <= {-1.0, 1.0}
    with torch.no_grad():  # sign(Hardtanh(BN(...))) of the model's own layers 0..12
        h = torch.from_numpy(digits.x_test)
        for layer in list(model)[:13]:
            h = layer(h)
    np.testing.assert_array_equal(features, np.where(h.numpy() < 0, -1.0, 1.0))
    floats = FeatureExtractor(model, "12", binarize=False).features(digits.x_test)
    np.testing.assert_array_equal(np.where(floats < 0, -1.0, 1.0), features)


def test_unknown_cut_names_the_layers(digits):
    with pytest.raises(ConfigError, match=r"unknown layer '13x' \(did you mean '13'\?\); valid choices: 0, 1, 10"):
        FeatureExtractor(_tfc(digits), "13x")
    with pytest.raises(ConfigError, match="needs a torch module"):
        FeatureExtractor("tfc", "3")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"takes inputs of shape \(1, 8, 8\)"):
        FeatureExtractor(_tfc(digits), "12").features(np.zeros((2, 1, 28, 28), np.float32))


def _conv_net() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.Hardtanh(),
        QuantConv2d(64, 64, 3, padding=1, bias=False, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.BatchNorm2d(64), nn.Hardtanh(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 16, 10),
    )
    return randomize_bn(net)


@pytest.mark.parametrize("case", ["dense", "conv1d", "conv2d", "residual"])
def test_exported_extractor_outputs_the_packed_features_exactly(case, digits, tmp_path):
    """The engine returns 1 bit per feature; unpacked they equal PyTorch's ±1 features, in PyTorch's order
    (image features are channels-last in the engine and are reordered)."""
    if case == "dense":
        model, cut, x = _tfc(digits), "12", digits.x_test
    elif case == "conv1d":
        torch.manual_seed(2)
        model, cut = randomize_bn(create_model("binary_cnn1d")), "14"  # cut at the max-pool: (64, 5) → 320
        x = np.random.default_rng(0).standard_normal((200, 1, 40)).astype(np.float32)
    elif case == "conv2d":
        model, cut, x = _conv_net(), "6", digits.x_test  # (64, 4, 4) → 1,024 features
    else:  # a Bi-Real block's output: a residual add, cut by torch.fx inside the network
        torch.manual_seed(3)
        model, cut = randomize_bn(create_model("birealnet18", in_shape=(3, 32, 32), num_classes=10)), "6"
        x = np.random.default_rng(1).standard_normal((16, 3, 32, 32)).astype(np.float32)
    extractor = FeatureExtractor(model, cut, in_shape=x.shape[1:])
    report = extractor.export(tmp_path / "f.onebit", x[:32])
    engine = onebit.load(tmp_path / "f.onebit")
    bits = engine(x)
    features = extractor.features(x)
    assert engine.out_bits and bits.dtype == np.uint64 and bits.shape == (len(x), -(-features.shape[1] // 64))
    np.testing.assert_array_equal(engine(x, unpack=True), features)
    np.testing.assert_array_equal(engine.unpack(bits), features)
    assert report.max_abs_diff == 0.0
    assert engine(x[:0]).shape == (0, bits.shape[1]) and engine(x[:0], unpack=True).shape == (0, features.shape[1])
    with pytest.raises(ConfigError, match="predict needs logits"):
        engine.predict(x)


def test_float_models_refuse_unpacking(digits, tmp_path):
    model = _tfc(digits)
    onebit.export_model(model, tmp_path / "m.onebit", digits.x_test[:8])
    engine = onebit.load(tmp_path / "m.onebit")
    assert not engine.out_bits
    with pytest.raises(ConfigError, match="unpack=True is for a model whose output is packed bits"):
        engine(digits.x_test[:2], unpack=True)
    with pytest.raises(ConfigError, match="only a binarizing extractor"):
        FeatureExtractor(model, "12", binarize=False).export(tmp_path / "x.onebit", digits.x_test[:8])


def test_export_leaves_every_module_in_its_own_mode(digits, tmp_path):
    """A frozen (eval) backbone inside a module in training mode stays in eval mode through an export."""
    backbone = _tfc(digits).eval()
    wrapper = nn.Sequential(backbone)
    wrapper.training = True
    onebit.export_model(wrapper, tmp_path / "w.onebit", digits.x_test[:8])
    assert wrapper.training and not any(m.training for m in backbone.modules())
    with eval_mode(wrapper):
        assert not wrapper.training
    assert wrapper.training and not backbone.training


def test_fit_head_learns_and_checks_its_input():
    rng = np.random.default_rng(0)
    centers = np.where(rng.random((3, 128)) < 0.5, -1.0, 1.0)
    y = np.repeat(np.arange(3), 10)
    x = np.where(rng.random((30, 128)) < 0.15, -centers[y], centers[y]).astype(np.float32)  # 15 % bits flipped
    head = fit_head(x, y, seed=0)
    assert head_accuracy(head, x, y) == 1.0
    binary = fit_head(x, y, binary=True, seed=0)
    assert head_accuracy(binary, x, y) == 1.0
    mlp = fit_head(x, y, hidden=16, seed=0)
    assert isinstance(mlp, nn.Sequential) and head_accuracy(mlp, x, y) == 1.0
    np.testing.assert_array_equal(fit_head(x, y, seed=0).weight.detach(), head.weight.detach())  # seeded
    with pytest.raises(DataError, match=r"features \(N, F\) and labels \(N,\)"):
        fit_head(x, y[:5])
    with pytest.raises(DataError, match=r"labels must lie in \[0, 2\)"):
        fit_head(x, y, classes=2)
    with pytest.raises(DataError, match="NaN"):
        fit_head(np.full_like(x, np.nan), y)
    with pytest.raises(DataError, match="the head takes 128 features, got 64"):
        head_accuracy(head, x[:, :64], y)


def test_transfer_trains_a_head_on_the_engines_features(digits, tmp_path):
    source, target = digits.subset_classes([0, 1, 2, 3, 4]), digits.subset_classes([5, 6, 7, 8, 9])
    model = _tfc(digits, classes=5)
    onebit.fit(model, source, epochs=3, lr=3e-3)
    result = transfer(model, "12", target.few_shot(5, seed=0), tmp_path / "out", seed=0, info={"note": "test"})
    assert result.identical_features and result.identical_outputs
    assert result.accuracy == result.torch_accuracy and result.accuracy > 0.4  # chance: 0.2
    assert (result.features, result.classes, result.train_samples, result.test_samples) == (64, 5, 25, 179)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["accuracy"] == result.accuracy and saved["info"] == {"note": "test"}
    head, meta = load_head(tmp_path / "out" / "head.safetensors")
    assert meta["features"] == 64 and meta["cut"] == "12"
    engine = onebit.load(tmp_path / "out" / "extractor.onebit")
    with torch.no_grad():
        predicted = head(torch.from_numpy(engine(target.x_test, unpack=True))).argmax(1).numpy()
    assert (predicted == target.y_test).mean() == result.accuracy
    with pytest.raises(DataError, match="takes inputs of shape"):
        transfer(model, "12", onebit.load_dataset("mnist1d"), tmp_path / "bad")


def test_transfer_command(digits, tmp_path, capsys):
    model = _tfc(digits)
    checkpoint = save_checkpoint(tmp_path / "source.safetensors", model, info={"data": "digits"})
    out = tmp_path / "run"
    args = ["transfer", "--from", str(checkpoint), "--cut", "12", "--data", "digits", "--classes", "5,6,7,8,9",
            "--shots", "4", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "64 binary features at layer '12' of tfc" in text and "identical to the engine's" in text
    assert sorted(p.name for p in out.iterdir()) == ["extractor.onebit", "head.safetensors", "results.json"]
    assert main([*args[:-1], str(tmp_path / "json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train_samples"] == 20 and report["classes"] == 5 and report["identical_outputs"]
    assert main([*args[:3], "--cut", "99", *args[5:-1], str(tmp_path / "x")]) == 2
    assert "unknown layer '99'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args[:7], "--classes", "5", "--out", str(tmp_path / "y")])
    assert "--classes: expected two or more distinct class indices" in capsys.readouterr().err
    assert main([*args[:7], "--classes", "5,60", "--out", str(tmp_path / "z")]) == 2
    assert "[60] are not among them" in capsys.readouterr().err


def test_quick_experiment_runs(tmp_path):
    from onebit.experiments import run_experiment

    results = run_experiment("leroux2017_transfer", tmp_path / "x", quick=True)
    assert (tmp_path / "x" / "transfer.png").is_file() and (tmp_path / "x" / "results.md").is_file()
    claims = {c["claim"]: c for c in results["claims"]}
    identical = [c for name, c in claims.items() if "equal PyTorch's exactly" in name]
    assert identical and all(c["holds"] for c in identical)
    assert all(c["holds"] is None for name, c in claims.items() if "2 seed-sd" in name)  # quick decides nothing


@pytest.mark.parametrize("record,message", [
    (None, "needs an output_bits record with its 1024 features"),
    ({"features": 1000, "chw": None}, "needs an output_bits record with its 1024 features"),
    ({"features": 1024, "chw": [64, 4, 5]}, "chw must be three positive integers with product 1024"),
    ({"features": 1024, "chw": [64, 4, "4"]}, "chw must be three positive integers"),
])
def test_a_packed_output_needs_a_consistent_record(record, message, digits, tmp_path):
    from onebit.errors import ModelFileError
    from onebit.runtime.container import read_container, write_container
    from onebit.runtime.model import META_KEY

    FeatureExtractor(_conv_net(), "6").export(tmp_path / "f.onebit", digits.x_test[:8])
    tensors, metadata = read_container(tmp_path / "f.onebit")
    graph = json.loads(metadata[META_KEY])
    assert graph["output_bits"] == {"features": 1024, "chw": [64, 4, 4]}
    if record is None:
        del graph["output_bits"]
    else:
        graph["output_bits"] = record
    write_container(tmp_path / "g.onebit", {k: np.array(v) for k, v in tensors.items()}, {META_KEY: json.dumps(graph)})
    with pytest.raises(ModelFileError, match=message):
        onebit.load(tmp_path / "g.onebit")
