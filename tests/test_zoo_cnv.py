"""BNN-PYNQ / FINN CNV (brevitas CNV_1W1A): topology, parameter count, export → runtime equality with PyTorch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from onebit.errors import ConfigError
from onebit.export import export
from onebit.model_summary import summary
from onebit.models import create_model
from onebit.nn import QuantConv2d, QuantLinear
from tests.exporting import check_export, randomize_bn

NATIVE = (3, 32, 32)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def test_cnv_topology_and_parameter_count():
    model = create_model("cnv", num_classes=10, in_shape=NATIVE)
    convs = [m for m in model.modules() if isinstance(m, QuantConv2d)]
    linears = [m for m in model.modules() if isinstance(m, QuantLinear)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)
    ]
    assert all(c.kernel_size == (3, 3) and c.padding == (0, 0) and c.bias is None for c in convs)  # unpadded
    assert [(l.in_features, l.out_features) for l in linears] == [(256, 512), (512, 512), (512, 10)]
    assert all(l.bias is None for l in linears)
    layers = convs + linears
    assert all(l.weight_bits == 1 for l in layers)
    assert layers[0].input_bits == 32 and all(l.is_binary for l in layers[1:])  # float image into layer 1 only
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert len(bns) == 9 and all(bn.eps == 1e-4 for bn in bns)  # BN after every layer
    assert sum(isinstance(m, nn.MaxPool2d) for m in model) == 2
    s = summary(model, NATIVE)
    # 3·3·(3·64 + 64·64 + 64·128 + 128·128 + 128·256 + 256·256) + 256·512 + 512·512 + 512·10 binary weights
    assert s.binary_params == 1_542_848
    assert s.total_params == 1_542_848 + 4 * (64 + 64 + 128 + 128 + 256 + 256 + 512 + 512 + 10) == 1_550_568
    assert model(torch.randn(2, *NATIVE)).shape == (2, 10)


def test_cnv_width_scales_every_layer_and_larger_inputs_widen_the_first_fc():
    model = create_model("cnv", num_classes=43, in_shape=(3, 40, 36), width=16)
    convs = [m.out_channels for m in model.modules() if isinstance(m, QuantConv2d)]
    linears = [(l.in_features, l.out_features) for l in model.modules() if isinstance(l, QuantLinear)]
    assert convs == [16, 16, 32, 32, 64, 64]
    # 40x36 → 36x32 → pool 18x16 → 14x12 → pool 7x6 → 3x2
    assert linears == [(64 * 3 * 2, 128), (128, 128), (128, 43)]
    assert model(torch.randn(2, 3, 40, 36)).shape == (2, 43)


@pytest.mark.parametrize("in_shape", [NATIVE, (3, 36, 40)])
def test_cnv_export_equals_pytorch_with_only_the_first_input_float(tmp_path, in_shape):
    torch.manual_seed(0)
    model = randomize_bn(create_model("cnv", num_classes=10, in_shape=in_shape, width=16))
    check_export(model, torch.randn(200, *in_shape), tmp_path / "cnv.onebit")
    report = export(model, tmp_path / "cnv2.onebit", torch.randn(2, *in_shape), verbose=False)
    assert [layer.kind for layer in report.layers] == ["binary weights, float input"] + ["binary"] * 8


def test_cnv_bad_configurations_are_named():
    with pytest.raises(ConfigError, match="at least 32x32, got 28x28"):
        create_model("cnv", in_shape=(1, 28, 28))
    with pytest.raises(ConfigError, match="channels, height, width"):
        create_model("cnv", in_shape=(3, 32))
    with pytest.raises(ConfigError, match="width must be a positive integer"):
        create_model("cnv", in_shape=NATIVE, width=0)
