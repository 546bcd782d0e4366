"""Convolutional BNNs through export and the runtime: equal to the PyTorch eval forward.

Binary convs with every padding value, strides, dilation, groups and kernel sizes; max-pool
folded before BatchNorm (pooled on packed bits after the threshold) and after it; XNOR-Net's
conv → ReLU → max-pool → BatchNorm → sign folded into thresholds; BatchNorm before a sign.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import onebit.runtime as rt
from onebit.errors import ExportError
from onebit.export import export
from onebit.models import create_model
from onebit.nn import QuantConv2d, QuantLinear
from tests.exporting import check_export, randomize_bn


@pytest.mark.parametrize("pad_value", [-1.0, 0.0, 1.0])
def test_binarynet_cnn_equals_pytorch_on_1000_inputs(tmp_path, pad_value):
    """VGG-small shape at reduced width (40 channels: not a multiple of 64) on 16x16 inputs."""
    torch.manual_seed(0)
    model = create_model("binarynet_cnn", num_classes=10, in_shape=(3, 16, 16), channels=(40, 64, 128), hidden=96,
                         pad_value=pad_value)
    randomize_bn(model)
    x = torch.randn(1000, 3, 16, 16)
    check_export(model, x, tmp_path / "vgg.onebit")
    kinds = [layer.kind for layer in rt.load(tmp_path / "vgg.onebit").layers if layer.op in ("conv2d", "dense")]
    assert kinds == ["binary weights, float input"] + ["binary"] * 8


@pytest.mark.parametrize("kernel,stride,dilation,groups,cin", [
    (1, 1, 1, 1, 70), (3, 2, 1, 1, 65), (5, 1, 2, 1, 64), (7, 2, 1, 1, 3), (3, 1, 1, 2, 128),
])
def test_binary_conv_geometries(tmp_path, kernel, stride, dilation, groups, cin):
    torch.manual_seed(1)
    pad = dilation * (kernel - 1) // 2
    size = (11 + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    pooled = (size + 2 - 3) // 2 + 1
    model = nn.Sequential(
        QuantConv2d(cin, 64, 3, padding=1, weight_quantizer="ste_sign"), nn.BatchNorm2d(64), nn.Hardtanh(),
        QuantConv2d(64, cin, 1, input_quantizer="ste_sign", weight_quantizer="ste_sign"), nn.BatchNorm2d(cin),
        QuantConv2d(cin, 128, kernel, stride=stride, padding=pad, dilation=dilation, groups=groups, pad_value=0.0,
                    input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.BatchNorm2d(128), nn.Hardtanh(), nn.MaxPool2d(3, 2, padding=1),
        nn.Flatten(), QuantLinear(128 * pooled * pooled, 10, input_quantizer="ste_sign", weight_quantizer="xnor_sign"),
        nn.BatchNorm1d(10),
    )
    # ties=1: on an AVX2-only CPU one sample of (1, 1, 1, 1, 70) sits on a sign tie (margin < 1e-5).
    check_export(randomize_bn(model), torch.randn(64, cin, 11, 11), tmp_path / "g.onebit", ties=1)


def test_float_head_after_binary_conv(tmp_path):
    """A binary conv ending in float (ReLU, pooled before BN) feeding a float classifier."""
    torch.manual_seed(2)
    model = nn.Sequential(
        QuantConv2d(3, 64, 3, padding=1, weight_quantizer="ste_sign"), nn.BatchNorm2d(64), nn.Hardtanh(),
        QuantConv2d(64, 32, 3, padding=1, pad_value=-1.0, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.MaxPool2d(2), nn.BatchNorm2d(32), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
    )
    check_export(randomize_bn(model), torch.randn(100, 3, 8, 8), tmp_path / "h.onebit")


def test_unsupported_conv_constructs_are_named(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Upsample(scale_factor=2), nn.Flatten(), nn.Linear(128, 2))
    with pytest.raises(ExportError, match=r"layer '1' \(Upsample\)"):
        export(model, tmp_path / "m.onebit", torch.randn(2, 3, 4, 4), verbose=False)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding="same", padding_mode="reflect"), nn.Flatten(), nn.Linear(128, 2))
    with pytest.raises(ExportError, match="only zero-mode padding"):
        export(model, tmp_path / "m.onebit", torch.randn(2, 3, 4, 4), verbose=False)
    model = nn.Sequential(nn.Conv2d(3, 8, 3))
    with pytest.raises(ExportError, match="output has shape"):
        export(model, tmp_path / "m.onebit", torch.randn(2, 3, 4, 4), verbose=False)


def test_binary_conv1d_net_runs_as_1xk_convs(tmp_path):
    """MNIST-1D's binary_cnn1d (float stem, binary 1-D convs padded with +1, MaxPool1d) exports exactly."""
    torch.manual_seed(3)
    model = randomize_bn(create_model("binary_cnn1d", num_classes=10, in_shape=(1, 40), channels=64))
    check_export(model, torch.randn(500, 1, 40), tmp_path / "c1d.onebit")
    kinds = [layer.kind for layer in rt.load(tmp_path / "c1d.onebit").layers if layer.op in ("conv2d", "dense")]
    assert kinds == ["float", "binary", "binary", "binary", "float"]


@pytest.mark.parametrize("name,shape,args", [
    ("binary_cnn1d", (1, 40), {"shortcut": True, "input_quantizer": "rsign", "activation": "rprelu",
                                "scaling": "learned"}),
    ("binary_cnn1d", (1, 40), {"shortcut": True, "activation": "none", "input_quantizer": "approx_sign",
                                "weight_quantizer": "magnitude_aware_sign", "widths": [32, 64, 48]}),
    ("binary_cnn2d", (1, 8, 8), {"channels": 32, "shortcut": True, "input_quantizer": "rsign", "activation": "rprelu",
                                 "weight_quantizer": "magnitude_aware_sign"}),
    ("binary_cnn2d", (1, 28, 28), {"depth": 3, "channels": 16}),
    ("sfc", (1, 8, 8), {"shortcut": True, "input_quantizer": "rsign", "activation": "rprelu", "dropout": 0.0}),
    ("binarynet_mlp", (1, 40), {"hidden": 96, "depth": 3, "shortcut": True, "activation": "none",
                                "input_quantizer": "approx_sign", "weight_quantizer": "magnitude_aware_sign",
                                "scaling": "learned"}),
])
def test_the_recipes_model_choices_export_exactly(tmp_path, name, shape, args):
    """Shortcuts, RSign, RPReLU, magnitude-aware weights and learned scales (the recipes' choices) run in the
    engine exactly as in PyTorch, with random thresholds, slopes and scales."""
    torch.manual_seed(5)
    model = randomize_bn(create_model(name, num_classes=10, in_shape=shape, **args))
    with torch.no_grad():
        for key, p in model.named_parameters():
            if key.endswith(("shift", "shift_in", "shift_out")):
                p.normal_(0.0, 0.3)
            elif key.endswith(("slope", "scale")):
                p.uniform_(0.2, 1.5)
    check_export(model, torch.randn(200, *shape), tmp_path / "m.onebit")
    kinds = [layer.kind for layer in rt.load(tmp_path / "m.onebit").layers if layer.op in ("conv2d", "dense")]
    assert "binary" in kinds


def test_pool_after_the_activation_on_bits_with_odd_channels(tmp_path):
    """MaxPool after BN + Hardtanh runs on packed bits (AND of ±1); 70 channels leave tail bits."""
    torch.manual_seed(4)
    model = nn.Sequential(
        QuantConv2d(3, 70, 3, padding=1, weight_quantizer="ste_sign"), nn.BatchNorm2d(70), nn.Hardtanh(),
        nn.MaxPool2d(2),
        QuantConv2d(70, 64, 3, padding=1, pad_value=1.0, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.BatchNorm2d(64), nn.Flatten(), nn.Linear(64 * 4 * 4, 10),
    )
    check_export(randomize_bn(model), torch.randn(100, 3, 8, 8), tmp_path / "p.onebit")


def test_bireal_residual_net_equals_pytorch(tmp_path):
    """Bi-Real blocks: a real-valued shortcut (identity, or AvgPool → 1x1 conv → BN) around every binary conv."""
    from onebit.nn import BiRealBlock

    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
        BiRealBlock(64, 64), BiRealBlock(64, 64, pad_value=1.0), BiRealBlock(64, 128, stride=2),
        BiRealBlock(128, 128, pad_value=-1.0), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )
    check_export(randomize_bn(model), torch.randn(200, 3, 12, 12), tmp_path / "bireal.onebit")
    ops = [layer.op for layer in rt.load(tmp_path / "bireal.onebit", fuse=False).layers]
    assert ops.count("add") == 4 and ops.count("avgpool2d") == 2
    fused = [layer.name for layer in rt.load(tmp_path / "bireal.onebit").layers]
    assert sum("+add" in name for name in fused) == 4  # each add runs in its conv's kernel (runtime/fusion.py)


class _DenseBlock(nn.Module):
    """BinaryDenseNet-style growth: new binary features concatenated to the input."""

    def __init__(self, channels: int, growth: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv = QuantConv2d(channels, growth, 3, padding=1, pad_value=1.0, input_quantizer="ste_sign",
                                weight_quantizer="ste_sign")
        self.post = nn.BatchNorm2d(growth)

    def forward(self, x):
        return torch.cat([x, self.post(self.conv(self.bn(x)))], dim=1)


def test_dense_concat_and_reactnet_blocks_equal_pytorch(tmp_path):
    """Concatenation along channels, RSign (learned threshold) and RPReLU."""
    from onebit.nn import RPReLU, RSign

    torch.manual_seed(6)
    conv = QuantConv2d(96, 64, 3, padding=1, input_quantizer=RSign(96), weight_quantizer="ste_sign")
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), _DenseBlock(64, 32),
        conv, nn.BatchNorm2d(64), RPReLU(64), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 4 * 4, 10),
    )
    with torch.no_grad():
        conv.input_quantizer.shift.uniform_(-0.5, 0.5)
        model[5].slope.uniform_(0, 0.5)
        model[5].shift_in.uniform_(-0.2, 0.2)
        model[5].shift_out.uniform_(-0.2, 0.2)
    check_export(randomize_bn(model), torch.randn(200, 3, 8, 8), tmp_path / "dense.onebit")


def test_birealnet18_exports_at_a_small_size(tmp_path):
    """The registered Bi-Real Net-18 (reduced width, 32x32) runs in the engine as in PyTorch;
    only the stem, the downsampling shortcuts and the classifier stay float."""
    torch.manual_seed(7)
    model = randomize_bn(create_model("birealnet18", num_classes=10, in_shape=(3, 32, 32), width=16))
    report = export(model, tmp_path / "b18.onebit", torch.randn(4, 3, 32, 32), verbose=False)
    kinds = [layer.kind for layer in report.layers]
    assert kinds.count("binary") == 16 and kinds.count("float") == 1 + 3 + 1
    check_export(model, torch.randn(100, 3, 32, 32), tmp_path / "b18.onebit")


def _ops(path) -> list[str]:
    return [layer.op for layer in rt.load(path).layers]


def test_xnor_order_relu_pool_bn_sign_folds_into_thresholds(tmp_path):
    """conv → ReLU → (max-pool) → BN → sign (XNOR-Net) becomes integer thresholds, the pool running on packed
    bits; a learned scale of either sign (alpha < 0 keeps the pool on floats) and zero padding."""
    torch.manual_seed(8)

    def unit(cin, cout, **kw):
        return [nn.BatchNorm2d(cin), QuantConv2d(cin, cout, 3, padding=1, input_quantizer="ste_sign",
                                                weight_quantizer="xnor_sign", **kw), nn.ReLU()]

    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
        *unit(32, 70), nn.MaxPool2d(2),
        *unit(70, 64, pad_value=1.0), nn.MaxPool2d(3, 1, padding=1),
        *unit(64, 64, scaling="learned"), nn.MaxPool2d(2),
        nn.BatchNorm2d(64), nn.Flatten(), nn.Linear(64 * 2 * 2, 10),
    )
    learned = model[11]
    with torch.no_grad():
        learned.scale.uniform_(-1, 1)
    path = tmp_path / "x.onebit"
    check_export(randomize_bn(model), torch.randn(200, 3, 8, 8), path)
    layers = rt.load(path).layers
    ops = [layer.op for layer in layers]
    # the float stem (ReLU → BN → sign) and both pooled binary convs write bits, pooled on bits
    assert ops[:4] == ["to_nhwc", "conv2d", "conv2d", "conv2d"] and all(layer.out_bits for layer in layers[1:4])
    assert layers[2].out_shape == (4, 4, 70) and layers[3].out_shape == (4, 4, 64)
    assert ops[4:] == ["conv2d", "maxpool2d", "affine", "flatten", "dense"]  # alpha < 0: pooled after the stage


def test_relu_then_bn_on_a_float_output_and_identities_between(tmp_path):
    """QuickNet's binary conv → ReLU → BN → residual add: one float stage relu(y·scale + bias)·post_scale +
    post_bias, no separate affine node; Dropout/Identity between a layer and its sign do not stop the fold."""
    torch.manual_seed(9)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = QuantConv2d(64, 64, 3, padding=1, pad_value=1.0, bias=False, input_quantizer="ste_sign",
                                    weight_quantizer="ste_sign")
            self.act, self.bn = nn.ReLU(), nn.BatchNorm2d(64)

        def forward(self, x):
            return self.bn(self.act(self.conv(x))) + x

    model = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), Block(), Block(),
        QuantConv2d(64, 64, 3, padding=1, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.BatchNorm2d(64), nn.Dropout(0.3), nn.Identity(),
        QuantConv2d(64, 32, 3, padding=1, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.BatchNorm2d(32), nn.Flatten(), nn.Linear(32 * 6 * 6, 10),
    )
    check_export(randomize_bn(model), torch.randn(200, 3, 6, 6), tmp_path / "q.onebit")
    layers = rt.load(tmp_path / "q.onebit").layers
    assert [layer.op for layer in layers].count("affine") == 0
    convs = [layer for layer in layers if layer.op == "conv2d" and layer.kind == "binary"]
    assert [layer.out_bits for layer in convs] == [False, False, True, False]


def test_batchnorm_over_flattened_image_features_and_positive_bn_as_sign_shift(tmp_path):
    """A BatchNorm1d over a flattened (C, H, W) image is permuted to the runtime's (H, W, C) order, as an
    affine node and as the shift of a sign node (positive scales: a·x + b ≥ 0 ⇔ x ≥ −b/a)."""
    torch.manual_seed(10)
    for positive in (False, True):
        model = nn.Sequential(
            nn.Conv2d(3, 20, 3), nn.Flatten(), nn.BatchNorm1d(20 * 4 * 4),
            QuantLinear(20 * 4 * 4, 64, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
            nn.BatchNorm1d(64), nn.Hardtanh(),
            QuantLinear(64, 10, input_quantizer="ste_sign", weight_quantizer="ste_sign"), nn.BatchNorm1d(10),
        )
        randomize_bn(model)
        if positive:
            with torch.no_grad():
                model[2].weight.abs_()
        path = tmp_path / f"f{positive}.onebit"
        check_export(model, torch.randn(300, 3, 6, 6), path)
        ops = _ops(path)
        assert ops.count("sign") == 1 and ops.count("affine") == (0 if positive else 1)


@pytest.mark.parametrize("pads,stride,groups", [
    ((0, 1, 0, 1), 2, 1), ((1, 0, 2, 0), 1, 1), ((0, 2, 1, 0), 2, 4), ((3, 1, 0, 0), 1, 1),
])
def test_zero_pad_folds_into_the_float_conv_after_it(tmp_path, pads, stride, groups):
    """ZeroPad2d (left, right, top, bottom) before a float conv (Keras "same" padding): exported as
    one conv with a larger kernel and symmetric padding, equal to PyTorch."""
    torch.manual_seed(11)
    model = nn.Sequential(
        nn.ZeroPad2d(pads), nn.Conv2d(4, 8, 3, stride=stride, padding=1, groups=groups), nn.BatchNorm2d(8),
        nn.ReLU(), nn.Flatten(), nn.LazyLinear(5),
    )
    model(torch.randn(1, 4, 9, 10))
    check_export(randomize_bn(model), torch.randn(100, 4, 9, 10), tmp_path / "pad.onebit")
    assert [layer.op for layer in rt.load(tmp_path / "pad.onebit").layers].count("conv2d") == 1


@pytest.mark.parametrize("model,match", [
    (nn.Sequential(nn.ZeroPad2d(1), QuantConv2d(4, 8, 3, input_quantizer="ste_sign", weight_quantizer="ste_sign")),
     "float convolution"),
    (nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(4, 8, 3, dilation=2)), "dilation 1"),
    (nn.Sequential(nn.ZeroPad2d(1), nn.ReLU(), nn.Conv2d(4, 8, 3)), "directly before float Conv2d"),
    (nn.Sequential(nn.ConstantPad2d(1, 0.5), nn.Conv2d(4, 8, 3)), "value 0"),
])
def test_zero_pad_anywhere_else_is_refused(tmp_path, model, match):
    with pytest.raises(ExportError, match=match):
        export(nn.Sequential(model, nn.Flatten()), tmp_path / "bad.onebit", torch.randn(2, 4, 8, 8), verbose=False)
