"""QuickNet (larq zoo v1.0): parameter counts, structure, Keras "same" padding, export = PyTorch,
checkpoints from before the stem's ZeroPad2d became the conv's own "same" padding."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from onebit import summary
from onebit.errors import ConfigError
from onebit.models import create_model
from onebit.models.quicknet import QuickNetBlock  # importing the module registers the models
from onebit.nn import QuantConv2d
from tests.exporting import check_export, randomize_bn

# Keras's count (BatchNorm as 4 vectors) at 224×224×3 with 1000 classes: Small is the issue's
# figure; larq zoo's docs print 12,655,688 / 13,234,088 / 23,342,248, which is exactly these
# minus the moving mean and variance of every BatchNorm that has γ and β (see below).
KERAS_PARAMS = {"quicknet_small": 12_664_344, "quicknet": 13_243_720, "quicknet_large": 23_359_304}
LARQ_DOCS_PARAMS = {"quicknet_small": 12_655_688, "quicknet": 13_234_088, "quicknet_large": 23_342_248}
BLOCKS = {"quicknet_small": (4, 4, 4, 4), "quicknet": (4, 4, 4, 4), "quicknet_large": (6, 8, 12, 6)}


@pytest.fixture(scope="module")
def imagenet_models() -> dict[str, nn.Module]:
    """Each variant built once at 224×224×3 with 1000 classes (building is the slow part)."""
    torch.manual_seed(0)
    return {name: create_model(name, num_classes=1000, in_shape=(3, 224, 224)) for name in KERAS_PARAMS}


# What the reference keeps float: the stem's 3×3/2 conv, depthwise conv
# and 1×1 conv; each transition's blur-pool depthwise conv and 1×1 conv; the classifier.
FLOAT_LAYERS = ["stem.0", "stem.3", "stem.5", "section2.0.2", "section2.0.3", "section3.0.2", "section3.0.3",
                "section4.0.2", "section4.0.3", "head.3"]


@pytest.mark.parametrize("name", ["quicknet_small", "quicknet", "quicknet_large"])
def test_parameter_count_at_224(imagenet_models, name):
    model = imagenet_models[name]
    if name == "quicknet_small":  # the only one whose forward at 224 the test pays for
        assert summary(model, (3, 224, 224)).total_params == KERAS_PARAMS[name]
    counted = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for b in model.buffers() if b.is_floating_point())
    assert counted == KERAS_PARAMS[name]
    affine_bn = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.affine)
    assert counted - 2 * affine_bn == LARQ_DOCS_PARAMS[name]


@pytest.mark.parametrize("name", ["quicknet_small", "quicknet", "quicknet_large"])
def test_structure_follows_larq_zoo(imagenet_models, name):
    model = imagenet_models[name]
    binary = [m for m in model.modules() if isinstance(m, QuantConv2d) and m.is_binary]
    assert len(binary) == sum(BLOCKS[name])
    for conv in binary:
        assert conv.is_binary and conv.pad_value == 1.0 and conv.padding == (1, 1) and conv.bias is None
        assert conv.input_quantizer.name == conv.weight_quantizer.name == "ste_sign"
        assert conv.input_quantizer.clip_value == conv.weight_quantizer.clip_value == 1.25
    blocks = [m for m in model.modules() if isinstance(m, QuickNetBlock)]
    assert all(isinstance(b.act, nn.ReLU) and b.bn.eps == 1e-5 and b.bn.momentum == 0.1 for b in blocks)
    stem = model.stem
    assert [m.eps for m in stem if isinstance(m, nn.BatchNorm2d)] == [1e-3] * 3
    assert [m.affine for m in stem if isinstance(m, nn.BatchNorm2d)] == [True, False, True]
    blur = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    for section in ("section2", "section3", "section4"):
        relu, pool, dw, pw, bn = getattr(model, section)[0]
        assert isinstance(relu, nn.ReLU) and (pool.kernel_size, pool.stride, pool.padding) == (2, 1, 0)
        assert dw.groups == dw.in_channels == dw.out_channels and dw.stride == (2, 2) and dw.padding == "same"
        assert not dw.weight.requires_grad and torch.equal(dw.weight[:, 0], blur.expand_as(dw.weight[:, 0]))
        assert pw.kernel_size == (1, 1) and bn.num_features == pw.out_channels
    widths = [getattr(model, s)[-1].bn.num_features for s in ("section1", "section2", "section3", "section4")]
    assert widths == ([32, 64, 256, 512] if name == "quicknet_small" else [64, 128, 256, 512])


def test_keras_same_padding_is_bottom_right(imagenet_models):
    """At 224 the stride-2 stem convs pad (0, 1): windows centred on the odd pixels, i.e. the stride-1
    "same" conv sampled at [1::2] (PyTorch's symmetric pad samples [0::2]); ``padding="symmetric"``
    pads (1, 1) instead."""
    torch.manual_seed(1)
    model = imagenet_models["quicknet_small"]
    conv, depthwise = model.stem[0], model.stem[3]
    assert conv.padding == depthwise.padding == "same"
    assert conv.same_padding(224, 224) == depthwise.same_padding(112, 112) == [0, 1, 0, 1]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        keras = conv(x)
        dense = F.conv2d(x, conv.weight, padding=1)
        torch.testing.assert_close(keras, dense[:, :, 1::2, 1::2])
        torch.testing.assert_close(F.conv2d(x, conv.weight, stride=2, padding=1), dense[:, :, 0::2, 0::2])
        assert not torch.allclose(keras, dense[:, :, 0::2, 0::2], atol=1e-3)
    odd = create_model("quicknet_small", num_classes=10, in_shape=(3, 29, 29), width=8)  # odd: pads symmetric
    assert odd.stem[0].same_padding(29, 29) == [1, 1, 1, 1]
    sym = create_model("quicknet_small", num_classes=10, in_shape=(3, 32, 32), width=8, padding="symmetric")
    assert not any(m.padding == "same" for m in sym.modules() if isinstance(m, nn.Conv2d))
    assert type(sym.stem[0]) is nn.Conv2d and sym.stem[0].padding == (1, 1)


@pytest.mark.parametrize("name", ["quicknet_small", "quicknet", "quicknet_large"])
def test_forward_and_gradients_at_small_size(name):
    torch.manual_seed(2)
    model = create_model(name, num_classes=7, in_shape=(3, 32, 40), width=8)
    out = model(torch.randn(3, 3, 32, 40))
    assert out.shape == (3, 7)
    out.sum().backward()
    assert all(m.weight.grad is not None for m in model.modules() if isinstance(m, QuantConv2d) and m.is_binary)
    assert all(m.weight.grad is None for name_, m in model.named_modules()
               if isinstance(m, nn.Conv2d) and m.groups > 1 and name_.startswith("section"))  # blur-pool: fixed


@pytest.mark.parametrize("name,in_shape,padding,width", [
    ("quicknet_small", (3, 29, 29), "keras", 8),  # Keras padding, symmetric at this size: exact reference
    ("quicknet", (3, 32, 32), "symmetric", 8),
    ("quicknet_large", (3, 29, 33), "symmetric", 4),
])
def test_export_equals_pytorch(tmp_path, name, in_shape, padding, width):
    torch.manual_seed(3)
    model = randomize_bn(create_model(name, num_classes=10, in_shape=in_shape, width=width, padding=padding))
    x = torch.randn(150, *in_shape)
    report = check_export(model, x, tmp_path / "q.onebit")
    assert [l.name for l in report.layers if l.kind == "float"] == FLOAT_LAYERS
    binary = [l.name for l in report.layers if l.kind == "binary"]
    assert binary == [f"section{s + 1}.{i + (s > 0)}.conv" for s, n in enumerate(BLOCKS[name]) for i in range(n)]
    assert len(binary) + len(FLOAT_LAYERS) == len(report.layers)


def test_export_keras_padding_at_even_size(tmp_path):
    """At even sizes Keras pads the stride-2 stem convs (0, 1): the convs' TF-style "same" padding,
    which the engine runs exactly."""
    torch.manual_seed(4)
    model = randomize_bn(create_model("quicknet_small", num_classes=10, in_shape=(3, 32, 32), width=8))
    assert model.stem[0].same_padding(32, 32) == [0, 1, 0, 1]
    report = check_export(model, torch.randn(150, 3, 32, 32), tmp_path / "q.onebit")
    assert [l.name for l in report.layers if l.kind == "float"] == FLOAT_LAYERS


def _zeropad_construction(model: nn.Module, in_shape: tuple[int, int, int]) -> nn.Module:
    """``model`` as QuickNet was built before TF-style "same" (up to 2026-12-07): each Keras-padded float
    conv an ``nn.ZeroPad2d`` + unpadded ``nn.Conv2d`` where its pads are asymmetric, an ``nn.Conv2d`` with
    the symmetric pad otherwise; the same weights."""
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [m.register_forward_pre_hook(lambda m, args, n=n: sizes.__setitem__(n, tuple(args[0].shape[-2:])))
             for n, m in model.named_modules() if isinstance(m, QuantConv2d) and m.padding == "same"]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *in_shape))
    for hook in hooks:
        hook.remove()
    old = copy.deepcopy(model)
    for prefix in ["stem", "section2.0", "section3.0", "section4.0"]:
        seq, layers = old.get_submodule(prefix), []
        for i, m in enumerate(seq):
            if not (isinstance(m, QuantConv2d) and m.padding == "same"):
                layers.append(m)
                continue
            left, right, top, bottom = m.same_padding(*sizes[f"{prefix}.{i}"])
            symmetric = (left, top) == (right, bottom)
            conv = nn.Conv2d(m.in_channels, m.out_channels, 3, 2, (top, left) if symmetric else 0, groups=m.groups,
                             bias=False)
            conv.weight.data.copy_(m.weight)
            layers += [conv] if symmetric else [nn.ZeroPad2d((left, right, top, bottom)), conv]
        seq._modules.clear()
        seq._load_state_dict_pre_hooks.clear()
        for i, m in enumerate(layers):
            seq.add_module(str(i), m)
    return old


def test_same_padding_equals_the_zeropad_construction_and_reads_its_checkpoints():
    """At 36 x 36 the stem's two convs (36, 18) and section 2's blur-pool (8 after the 2 x 2 pool) pad (0, 1)."""
    torch.manual_seed(5)
    in_shape = (3, 36, 36)
    model = randomize_bn(create_model("quicknet_small", num_classes=10, in_shape=in_shape, width=8)).eval()
    old = _zeropad_construction(model, in_shape).eval()
    assert sum(isinstance(m, nn.ZeroPad2d) for m in old.modules()) == 3
    assert set(old.state_dict()) != set(model.state_dict())  # the later stem/transition keys shifted by one
    x = torch.randn(2, *in_shape)
    with torch.no_grad():
        expected = old(x)
        assert torch.equal(model(x), expected)
        fresh = create_model("quicknet_small", num_classes=10, in_shape=in_shape, width=8).eval()
        fresh.load_state_dict(old.state_dict())  # strict: every old key lands
        assert torch.equal(fresh(x), expected)
        fresh.load_state_dict(model.state_dict())  # and the new keys still load as they are
        assert torch.equal(fresh(x), expected)


@pytest.mark.parametrize("kwargs,match", [
    ({"in_shape": (3, 28, 28)}, "at least 29x29"),
    ({"in_shape": (3, 64, 28)}, "at least 29x29"),
    ({"in_shape": (64, 64)}, "channels, height, width"),
    ({"width": 6}, "multiple of 4"),
    ({"padding": "same"}, "keras, symmetric"),
])
def test_bad_configuration(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_model("quicknet_small", **{"num_classes": 10, "in_shape": (3, 32, 32), **kwargs})
