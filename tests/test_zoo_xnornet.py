"""XNOR-Net AlexNet and ResNet-18: structure as in jiecaoyu/XNOR-Net-PyTorch, parameter counts at
224×224, and export → runtime equal to the PyTorch eval forward at small sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import onebit.runtime as rt
from onebit import summary
from onebit.errors import ConfigError
from onebit.export import export
from onebit.models import create_model
from onebit.models.xnornet import SignDropoutLinear, XnorUnit
from onebit.nn import QuantConv2d
from tests.exporting import check_export, randomize_bn


def test_alexnet_at_224_has_the_reference_layers_and_parameter_count():
    """jiecaoyu's AlexNet at 224×224 (stem padded by 2): 6×6×256 features; BatchNorm counted with
    its four vectors."""
    model = create_model("xnornet_alexnet", num_classes=1000, in_shape=(3, 224, 224))
    bn, conv = lambda c: 4 * c, lambda cin, cout, k: cin * cout * k * k + cout
    want = (conv(3, 96, 11) + bn(96) + bn(96) + conv(96, 256, 5) + bn(256) + conv(256, 384, 3) + bn(384)
            + conv(384, 384, 3) + bn(384) + conv(384, 256, 3) + bn(256 * 36) + conv(256 * 36, 4096, 1)
            + bn(4096) + conv(4096, 4096, 1) + bn(4096) + conv(4096, 1000, 1))
    assert want == 62_452_840
    assert summary(model, (3, 224, 224)).total_params == want
    units = [m for m in model.modules() if isinstance(m, XnorUnit)]
    assert len(units) == 6
    for unit in units:  # BN → sign → conv (α-scaled weights) → ReLU
        assert [type(m) for m in unit][0] in (nn.BatchNorm1d, nn.BatchNorm2d) and isinstance(unit[2], nn.ReLU)
        assert unit.conv.input_quantizer.name == "ste_sign" and unit.conv.weight_quantizer.name == "xnor_sign"
    assert [u.conv.dropout for u in units[4:]] == [0.0, 0.5]  # dropout after the second binary FC's sign
    first, last = model.features[0], model.classifier[-1]
    assert type(first) is nn.Conv2d and first.padding == (2, 2) and type(last) is nn.Linear


def test_resnet18_at_224_parameter_count():
    model = create_model("xnornet_resnet18", num_classes=1000, in_shape=(3, 224, 224))
    bn = lambda c: 4 * c  # noqa: E731
    want = 3 * 64 * 49 + bn(64)
    cin = 64
    for stage in range(4):
        out = 64 * 2**stage
        for _ in range(2):
            want += bn(cin) + cin * out * 9 + bn(out) + out * out * 9
            if cin != out:
                want += cin * out + bn(out)  # float 1×1 shortcut and its BatchNorm
            cin = out
    want += bn(512) + 512 * 1000 + 1000
    assert want == 11_699_368
    assert summary(model, (3, 224, 224)).total_params == want
    assert sum(isinstance(m, QuantConv2d) and m.is_binary for m in model.modules()) == 16


def test_dropout_zeroes_the_binarized_input_while_training():
    """jiecaoyu drops after BinActive: dropped inputs are 0, the rest ±1 scaled by 1/(1 − p)."""
    torch.manual_seed(0)
    layer = SignDropoutLinear(1000, 1, dropout=0.5, input_quantizer="ste_sign", weight_quantizer="xnor_sign")
    seen = layer.quantized_input(torch.randn(1, 1000))
    assert set(seen.unique().tolist()) == {-2.0, 0.0, 2.0}
    layer.eval()
    assert set(layer.quantized_input(torch.randn(1, 1000)).unique().tolist()) == {-1.0, 1.0}
    with pytest.raises(ConfigError, match="dropout"):
        SignDropoutLinear(4, 2, dropout=1.0)


@pytest.mark.parametrize("positive", [False, True])
def test_alexnet_exports_at_a_small_size(tmp_path, positive):
    """99×99 gives 2×2×40 features (40: not a multiple of 64), so the BatchNorm1d over the flattened
    features is permuted from (C, H, W) to the runtime's (H, W, C). Every binary conv folds
    ReLU → max-pool → BatchNorm → sign into thresholds; positive BatchNorm scales also fold the stem's."""
    torch.manual_seed(1)
    model = randomize_bn(create_model("xnornet_alexnet", num_classes=10, in_shape=(3, 99, 99),
                                       channels=(24, 64, 48, 64, 40), hidden=96), positive=positive)
    report = export(model, tmp_path / "a.onebit", torch.randn(4, 3, 99, 99), verbose=False)
    assert [layer.kind for layer in report.layers] == ["float"] + ["binary"] * 6 + ["float"]
    assert [layer.name for layer in report.layers if layer.kind == "float"] == ["features.0", "classifier.4"]
    out = model(torch.randn(2, 3, 99, 99))
    assert out.shape == (2, 10)
    check_export(model, torch.randn(120, 3, 99, 99), tmp_path / "a.onebit")
    layers = rt.load(tmp_path / "a.onebit").layers
    convs = [layer for layer in layers if layer.op == "conv2d" and layer.kind == "binary"]
    assert [layer.out_bits for layer in convs] == [True, True, True, False]  # the last feeds the flatten
    ops = [layer.op for layer in layers]
    # conv→ReLU→pool→BN→sign folded: no float pool, affine or sign between binary convs; the last binary
    # FC's ReLU→BN ends its float stage (post_scale/post_bias), not an affine node
    assert ops.count("sign") == (1 if positive else 2) and ops.count("affine") == (0 if positive else 2)
    if positive:  # stem → BN → ReLU → pool → BN → sign: the float conv writes bits
        assert ops[:3] == ["to_nhwc", "conv2d", "conv2d"] and layers[1].out_bits


@pytest.mark.parametrize("positive", [False, True])
def test_resnet18_exports_at_a_small_size(tmp_path, positive):
    """Only the stem, the three downsampling shortcuts and the classifier stay float; the first unit of
    every block writes bits for the second (ReLU → BN → sign in its thresholds)."""
    torch.manual_seed(2)
    model = randomize_bn(create_model("xnornet_resnet18", num_classes=10, in_shape=(3, 32, 32), width=16),
                          positive=positive)
    report = export(model, tmp_path / "r.onebit", torch.randn(4, 3, 32, 32), verbose=False)
    floats = [layer.name for layer in report.layers if layer.kind == "float"]
    assert floats == ["0", "6.shortcut.0", "8.shortcut.0", "10.shortcut.0", "16"]
    assert sum(layer.kind == "binary" for layer in report.layers) == 16
    check_export(model, torch.randn(120, 3, 32, 32), tmp_path / "r.onebit")
    layers = rt.load(tmp_path / "r.onebit", fuse=False).layers  # the graph's nodes one by one
    binary = [layer.out_bits for layer in layers if layer.op == "conv2d" and layer.kind == "binary"]
    assert binary == [True, False] * 8
    ops = [layer.op for layer in layers]
    assert ops.count("add") == 8 and ops.count("sign") == 8
    assert ops.count("affine") == (0 if positive else 8) + 1  # a positive BN before a sign is the sign's shift


def test_too_small_or_malformed_inputs_are_refused():
    with pytest.raises(ConfigError, match="at least 63x63"):
        create_model("xnornet_alexnet", num_classes=10, in_shape=(3, 62, 62))
    create_model("xnornet_alexnet", num_classes=10, in_shape=(3, 63, 63), channels=(8, 8, 8, 8, 8), hidden=8)
    with pytest.raises(ConfigError, match="at least 32x32"):
        create_model("xnornet_resnet18", num_classes=10, in_shape=(3, 28, 28))
    with pytest.raises(ConfigError, match="channels, height, width"):
        create_model("xnornet_resnet18", num_classes=10, in_shape=(784,))
    with pytest.raises(ConfigError, match="channels must be 5"):
        create_model("xnornet_alexnet", num_classes=10, in_shape=(3, 99, 99), channels=(8, 8))
    with pytest.raises(ConfigError, match="width"):
        create_model("xnornet_resnet18", num_classes=10, in_shape=(3, 32, 32), width=0)
