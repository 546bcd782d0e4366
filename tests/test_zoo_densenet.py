"""BinaryDenseNet 28/37/45 (larq zoo): parameter counts, topology, export → runtime equality with PyTorch."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from onebit.errors import ConfigError
from onebit.export import export
from onebit.model_summary import summary
from onebit.models import create_model
from onebit.models.binarydensenet import DenseLayer
from onebit.nn import QuantConv2d, SteSign
from tests.exporting import check_export, randomize_bn

NATIVE = (3, 224, 224)
BLOCKS = {"binarydensenet28": (6, 6, 6, 5), "binarydensenet37": (6, 8, 12, 6),
          "binarydensenet37_dilated": (6, 8, 12, 6), "binarydensenet45": (6, 12, 14, 8)}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def test_binarydensenet28_topology_and_published_parameter_count():
    """The issue's figure: 5,150,504 parameters at 224x224x3 with 1000 classes (BN as four vectors)."""
    model = create_model("binarydensenet28", num_classes=1000, in_shape=NATIVE)
    s = summary(model, NATIVE)
    assert s.total_params == 5_150_504
    assert sum(p.numel() for p in model.parameters()) == 5_131_496  # larq zoo docs' table: trainable only
    binary = [m for m in model.modules() if isinstance(m, QuantConv2d)]
    floats = [m for m in model.modules() if type(m) is nn.Conv2d]
    # dense blocks of 6, 6, 6, 5 layers growing by 64; transitions round(C // r / 32) · 32 with r = 2.7, 2.7, 2.2
    assert [c.in_channels for c in binary] == (
        [64 + 64 * i for i in range(6)] + [160 + 64 * i for i in range(6)]
        + [192 + 64 * i for i in range(6)] + [256 + 64 * i for i in range(5)]
    )
    assert s.binary_params == sum(c.in_channels * 64 * 9 for c in binary)
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in floats] == [
        (3, 64, (7, 7), (2, 2)), (448, 160, (1, 1), (1, 1)), (544, 192, (1, 1), (1, 1)), (576, 256, (1, 1), (1, 1))
    ]
    assert (model[-1].in_features, model[-1].out_features) == (576, 1000) and model[-1].bias is not None
    for c in binary:  # larq zoo: SteSign(clip_value=1.3) on input and kernel, zero "same" padding, no bias
        assert isinstance(c.input_quantizer, SteSign) and c.input_quantizer.clip_value == 1.3
        assert isinstance(c.weight_quantizer, SteSign) and c.weight_quantizer.clip_value == 1.3
        assert (c.kernel_size, c.padding, c.pad_value, c.bias) == ((3, 3), (1, 1), 0.0, None)
    stem = list(model)[:4]
    assert [type(m) for m in stem] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]


@pytest.mark.parametrize("name,params,trainable,features", [
    ("binarydensenet37", 8_734_120, 8_702_248, 640), ("binarydensenet37_dilated", 8_734_120, 8_702_248, 640),
    ("binarydensenet45", 13_939_240, 13_889_512, 800),
])
def test_native_parameter_counts_match_larq_zoo(name, params, trainable, features):
    """Built for 224x224x3 / 1000 classes; the summary's forward runs at 64x64 to stay fast (the weights of a
    fully convolutional net with a global pool do not depend on the image size). ``params``: larq zoo's
    docstrings (BN as four vectors); ``trainable``: its docs' table (without BN's moving mean and variance)."""
    model = create_model(name, num_classes=1000, in_shape=NATIVE)
    assert summary(model, (3, 64, 64)).total_params == params
    assert sum(p.numel() for p in model.parameters()) == trainable
    assert model[-1].in_features == features  # larq zoo's test_prediction last_feature_dim
    assert sum(isinstance(m, DenseLayer) for m in model) == sum(BLOCKS[name])


def test_dilated_variant_keeps_the_resolution_of_its_last_two_blocks():
    model = create_model("binarydensenet37_dilated", num_classes=10, in_shape=(3, 64, 64), initial_filters=32,
                         growth_rate=16)
    dilations = [c.dilation[0] for c in model.modules() if isinstance(c, QuantConv2d)]
    assert dilations == [1] * 14 + [2] * 12 + [4] * 6
    assert all(c.padding == c.dilation for c in model.modules() if isinstance(c, QuantConv2d))
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert [p.kernel_size for p in pools] == [3, 2]  # the stem's and the first transition's only
    features = model[:-4](torch.randn(2, 3, 64, 64))  # before the head's ReLU, pool, flatten, dense
    assert features.shape[2:] == (8, 8)  # stride 8: 64 / 4 (stem) / 2


def test_small_inputs_take_larq_zoos_cifar_stem():
    model = create_model("binarydensenet28", num_classes=10, in_shape=(3, 32, 32), initial_filters=32, growth_rate=16)
    assert isinstance(model[0], nn.Conv2d) and (model[0].kernel_size, model[0].stride) == ((3, 3), (1, 1))
    assert isinstance(model[1], DenseLayer)  # no BN, ReLU or pool after the 3x3 stem
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name,in_shape", [
    ("binarydensenet28", (3, 64, 64)),  # ImageNet stem
    ("binarydensenet37", (3, 50, 50)),  # the smallest input that takes the ImageNet stem
    ("binarydensenet37_dilated", (3, 50, 50)),  # dilated binary convs, no pooling in two transitions
    ("binarydensenet45", (3, 16, 16)),  # CIFAR stem
])
def test_export_equals_pytorch_and_keeps_exactly_the_papers_float_layers(tmp_path, name, in_shape):
    torch.manual_seed(0)
    model = randomize_bn(create_model(name, num_classes=10, in_shape=in_shape, initial_filters=32, growth_rate=16))
    report = check_export(model, torch.randn(100, *in_shape), tmp_path / "m.onebit", reference="float64")
    # float: the stem conv, the 1x1 conv of each transition and the classifier; every dense-layer conv binary
    blocks = BLOCKS[name]
    want = ["float"]
    for i, count in enumerate(blocks):
        want += ["binary"] * count + ["float"] * (i < len(blocks) - 1)
    assert [layer.kind for layer in report.layers] == want + ["float"]


def test_bad_configurations_are_named():
    with pytest.raises(ConfigError, match="channels, height, width"):
        create_model("binarydensenet28", in_shape=(3, 32))
    with pytest.raises(ConfigError, match="too small.*halve 3 more times"):
        create_model("binarydensenet28", in_shape=(3, 7, 40))  # CIFAR stem: needs 8x8
    with pytest.raises(ConfigError, match="stem gives 16x5"):
        create_model("binarydensenet45", in_shape=(3, 64, 20))  # ImageNet stem: 20 → 5, then three pools
    with pytest.raises(ConfigError, match="transition 1 would have 0 channels"):
        create_model("binarydensenet28", in_shape=(3, 32, 32), initial_filters=1, growth_rate=1)
    with pytest.raises(ConfigError, match="growth_rate must be a positive integer"):
        create_model("binarydensenet37", in_shape=(3, 32, 32), growth_rate=0)
    with pytest.raises(ConfigError, match="pad_value"):
        create_model("binarydensenet37", in_shape=(3, 32, 32), pad_value=0.5)


def test_export_check_falls_back_to_float64_where_float32_pytorch_flips_a_sign(tmp_path):
    """Input 25 of the case above: float32 PyTorch binarizes one value on the wrong side of a sign (see
    ``_check``). ``export``'s own check must not call that a onebit bug: it re-runs the forward in float64,
    which the runtime matches, and says so in the report."""
    torch.manual_seed(0)
    model = randomize_bn(create_model("binarydensenet45", num_classes=10, in_shape=(3, 16, 16), initial_filters=32,
                                       growth_rate=16))
    x = torch.randn(100, 3, 16, 16)[25:26]
    with torch.no_grad():
        float32_gap = (model(x) - copy.deepcopy(model).double()(x.double())).abs().max().item()
    assert float32_gap > 0.1  # the flip is there
    report = export(model, tmp_path / "m.onebit", x, verbose=False)
    assert report.reference == "float64" and report.max_abs_diff < 1e-4
    assert "float64" in str(report)
