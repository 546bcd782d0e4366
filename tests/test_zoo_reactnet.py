"""ReActNet-A and ReActNet-ResNet18: shape and size of the reference, forward order, export equality."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from onebit import summary
from onebit.checkpoint import load_checkpoint, save_checkpoint
from onebit.errors import ConfigError
from onebit.export import export
from onebit.models import create_model
from onebit.models.reactnet import ReActBiRealBlock, ReActBlock
from onebit.nn import QuantLayer, RPReLU, RSign, sign
from tests.exporting import check_export, randomize_bn, randomize_react


def _float_layers(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, QuantLayer)]


@pytest.mark.parametrize("name,params,binary", [
    # liuzechun/ReActNet reactnet.py / birealnet.py at 224x224x3, 1000 classes, BatchNorm as 4 vectors
    # (29,343,592 and 11,704,424 PyTorch parameters + 21,888 and 9,600 BN running statistics).
    ("reactnet_a", 29_365_480, 28_253_184),
    ("reactnet_resnet18", 11_714_024, 10_985_472),
])
def test_parameter_count_at_imagenet_size(name, params, binary):
    model = create_model(name, num_classes=1000, in_shape=(3, 224, 224))
    s = summary(model, (3, 224, 224))
    assert (s.total_params, s.binary_params) == (params, binary)


def test_reactnet_a_blocks_follow_the_reference_stages():
    """stage_out_channel = [32, 64, 128×2, 256×2, 512×6, 1024×2]; stride 2 where it changes, except 32 → 64."""
    model = create_model("reactnet_a", num_classes=1000, in_shape=(3, 224, 224))
    blocks = [m for m in model if isinstance(m, ReActBlock)]
    got = [(b.conv3x3.in_channels, b.conv3x3.stride[0], len(b.pointwise) * b.conv3x3.in_channels) for b in blocks]
    assert got == [(32, 1, 64), (64, 2, 128), (128, 1, 128), (128, 2, 256), (256, 1, 256), (256, 2, 512)] + \
        [(512, 1, 512)] * 5 + [(512, 2, 1024), (1024, 1, 1024)]
    assert (model[0].kernel_size, model[0].stride, model[0].out_channels) == ((3, 3), (2, 2), 32)
    for b in blocks:  # the width-doubling 1×1 convs share one RSign (the reference's move21)
        assert all(c.input_quantizer is b.pointwise[0].input_quantizer for c in b.pointwise)
        assert b.conv3x3.weight_quantizer.name == "magnitude_aware_sign" and b.conv3x3.pad_value == 0.0


def test_reactnet_resnet18_blocks():
    model = create_model("reactnet_resnet18", num_classes=1000, in_shape=(3, 224, 224))
    blocks = [m for m in model if isinstance(m, ReActBiRealBlock)]
    assert [(b.conv.in_channels, b.conv.out_channels, b.conv.stride[0]) for b in blocks] == \
        [(64, 64, 1)] * 4 + [(64, 128, 2)] + [(128, 128, 1)] * 3 + [(128, 256, 2)] + [(256, 256, 1)] * 3 + \
        [(256, 512, 2)] + [(512, 512, 1)] * 3
    assert all(isinstance(b.conv.input_quantizer, RSign) and isinstance(b.act, RPReLU) for b in blocks)


def test_reactnet_a_block_forward_matches_the_reference_order():
    """The width-doubling stride-2 block written out op by op (reference BasicBlock.forward)."""
    torch.manual_seed(3)
    block = randomize_react(randomize_bn(ReActBlock(8, 16, stride=2)))
    x = torch.randn(4, 8, 6, 6)

    def alpha_sign(w):
        return w.abs().mean(dim=(1, 2, 3), keepdim=True) * sign(w)

    def rprelu(act, v):
        ch = (1, -1, 1, 1)
        v = v - act.shift_in.view(ch)
        return torch.where(v >= 0, v, act.slope.view(ch) * v) + act.shift_out.view(ch)

    with torch.no_grad():
        b1 = block.conv3x3.input_quantizer.shift.view(1, -1, 1, 1)
        out1 = block.bn1(F.conv2d(sign(x - b1), alpha_sign(block.conv3x3.weight), stride=2, padding=1))
        out1 = rprelu(block.act1, out1 + F.avg_pool2d(x, 2))
        a = sign(out1 - block.pointwise[0].input_quantizer.shift.view(1, -1, 1, 1))
        out2 = torch.cat([bn(F.conv2d(a, alpha_sign(c.weight))) + out1 for c, bn in zip(block.pointwise, block.bn2)], 1)
        torch.testing.assert_close(block(x), rprelu(block.act2, out2))


@pytest.mark.parametrize("name", ["reactnet_a", "reactnet_resnet18"])
def test_forward_small_and_gradients(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_shape=(3, 64, 32), width=4)
    y = model(torch.randn(2, 3, 64, 32))
    assert y.shape == (2, 5)
    y.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name,width,pad_value", [
    ("reactnet_a", 8, 0.0), ("reactnet_resnet18", 8, 0.0), ("reactnet_resnet18", 8, -1.0),
])
def test_export_equals_pytorch_and_only_the_paper_float_layers_are_float(tmp_path, name, width, pad_value):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_shape=(3, 32, 32), width=width, pad_value=pad_value)
    randomize_react(randomize_bn(model))
    # float64 reference: on an AVX2-only CPU float32 PyTorch breaks a sign tie of reactnet_a the other way.
    check_export(model, torch.randn(150, 3, 32, 32), tmp_path / "m.onebit", reference="float64")
    report = export(model, tmp_path / "m.onebit", torch.zeros(1, 3, 32, 32), verbose=False)
    floats = _float_layers(model)
    # First conv and classifier (+ Bi-Real's 1×1 downsampling shortcuts) stay float, as in the paper.
    assert len(floats) == (2 if name == "reactnet_a" else 5)
    weighted = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert {layer.name: layer.kind for layer in report.layers} == \
        {n: "float" if n in floats else "binary" for n in weighted}
    assert sum(layer.kind == "binary" for layer in report.layers) == (31 if name == "reactnet_a" else 16)


def test_checkpoint_round_trip_keeps_the_shared_rsign(tmp_path):
    torch.manual_seed(0)
    model = randomize_react(randomize_bn(create_model("reactnet_a", num_classes=4, in_shape=(3, 32, 32), width=2)))
    save_checkpoint(tmp_path / "c.safetensors", model)
    loaded, _ = load_checkpoint(tmp_path / "c.safetensors")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    block = loaded[2]
    assert block.pointwise[0].input_quantizer is block.pointwise[1].input_quantizer


@pytest.mark.parametrize("name", ["reactnet_a", "reactnet_resnet18"])
@pytest.mark.parametrize("kwargs,match", [
    ({"in_shape": (3, 16, 16)}, "multiples of 32"),
    ({"in_shape": (3, 48, 64)}, "multiples of 32"),
    ({"in_shape": (1, 28)}, "channels, height, width"),
    ({"width": 0}, "width must be a positive integer"),
])
def test_bad_arguments(name, kwargs, match):
    args = {"in_shape": (3, 32, 32), **kwargs}
    with pytest.raises(ConfigError, match=match):
        create_model(name, num_classes=10, **args)


def test_block_arguments_are_checked():
    with pytest.raises(ConfigError, match="out_channels must be 8 or 16"):
        ReActBlock(8, 24)
    with pytest.raises(ConfigError, match="stride must be 1 or 2"):
        ReActBlock(8, 8, stride=3)
