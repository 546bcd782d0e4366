"""The model registry and the first zoo entries: shapes, layer kinds, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from onebit.errors import ConfigError
from onebit.models import create_model, list_models, model_info
from onebit.model_summary import summary
from onebit.nn import QuantConv1d, QuantConv2d, QuantLinear, Residual, RPReLU


def test_registry_lists_the_starting_zoo():
    assert {"binarynet_mlp", "tfc", "sfc", "lfc", "binary_cnn1d"} <= set(list_models())
    assert list_models("*fc") == ["lfc", "sfc", "tfc"]
    assert model_info("lfc").family == "BNN-PYNQ"


@pytest.mark.parametrize("name,hidden", [("tfc", 64), ("sfc", 256), ("lfc", 1024)])
def test_bnn_pynq_topologies(name, hidden):
    m = create_model(name, num_classes=10, in_shape=(1, 28, 28))
    linears = [l for l in m.modules() if isinstance(l, QuantLinear)]
    assert [(l.in_features, l.out_features) for l in linears] == [
        (784, hidden), (hidden, hidden), (hidden, hidden), (hidden, 10)
    ]
    # 1-bit weights everywhere; 1-bit activations into every layer but the first
    assert all(l.weight_bits == 1 for l in linears)
    assert linears[0].input_bits == 32 and all(l.is_binary for l in linears[1:])
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_binarynet_mlp_is_sized_by_the_data():
    m = create_model("binarynet_mlp", num_classes=3, in_shape=(1, 8, 8), hidden=32)
    linears = [l for l in m.modules() if isinstance(l, QuantLinear)]
    assert (linears[0].in_features, linears[-1].out_features) == (64, 3)
    full = create_model("binarynet_mlp", num_classes=10, in_shape=(1, 28, 28))
    s = summary(full, (1, 28, 28))
    # 784·4096 + 2·4096² + 4096·10 binary weights
    assert s.binary_params == 784 * 4096 + 2 * 4096 * 4096 + 4096 * 10


def test_float_twin_has_no_quantizers_and_same_shapes():
    b = create_model("sfc", num_classes=10, in_shape=(1, 8, 8))
    f = create_model("sfc", num_classes=10, in_shape=(1, 8, 8), input_quantizer=None, weight_quantizer=None)
    assert [p.shape for p in b.parameters()] == [p.shape for p in f.parameters()]
    assert all(l.input_quantizer is None and l.weight_quantizer is None
               for l in f.modules() if isinstance(l, QuantLinear))


def test_binary_cnn1d():
    m = create_model("binary_cnn1d", num_classes=10, in_shape=(1, 40))
    convs = [c for c in m.modules() if isinstance(c, QuantConv1d)]
    assert len(convs) == 3 and all(c.is_binary and c.pad_value == 1.0 for c in convs)
    assert isinstance(m[0], nn.Conv1d) and isinstance(m[-1], nn.Linear)  # float stem and head
    assert m(torch.randn(4, 1, 40)).shape == (4, 10)
    with pytest.raises(ConfigError, match="channels, length"):
        create_model("binary_cnn1d", in_shape=(1, 8, 8))


def test_binary_cnn2d_and_the_recipes_model_choices():
    m = create_model("binary_cnn2d", num_classes=10, in_shape=(1, 8, 8))
    convs = [c for c in m.modules() if isinstance(c, QuantConv2d)]
    assert len(convs) == 2 and all(c.is_binary and c.pad_value == 1.0 for c in convs)
    assert isinstance(m[0], nn.Conv2d) and isinstance(m[-1], nn.Linear) and m(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    react = create_model("binary_cnn2d", num_classes=10, in_shape=(1, 8, 8), shortcut=True, input_quantizer="rsign",
                         activation="rprelu")
    assert [type(c.input_quantizer).__name__ for c in react.modules() if isinstance(c, QuantConv2d)] == ["RSign"] * 2
    assert sum(isinstance(x, RPReLU) for x in react.modules()) == 2
    mlp = create_model("tfc", num_classes=10, in_shape=(1, 8, 8), shortcut=True)
    assert sum(isinstance(x, Residual) for x in mlp.modules()) == 2  # hidden→hidden layers only
    with pytest.raises(ConfigError, match="unknown activation 'relu'"):
        create_model("binary_cnn1d", activation="relu")
    with pytest.raises(ConfigError, match="pools 3 times"):
        create_model("binary_cnn2d", in_shape=(1, 4, 4), depth=3)


def test_create_model_records_its_config():
    m = create_model("tfc", num_classes=4, in_shape=(1, 8, 8), dropout=0.0)
    assert m.onebit_config == {"name": "tfc", "args": {"num_classes": 4, "in_shape": [1, 8, 8], "dropout": 0.0}}


def test_create_model_errors():
    with pytest.raises(ConfigError, match="unknown model 'resnet'; valid choices: .*lfc"):
        create_model("resnet")
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['width'\].*valid: .*dropout"):
        create_model("lfc", width=3)
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("lfc", num_classes=1)
    with pytest.raises(ConfigError, match="in_shape"):
        create_model("lfc", in_shape=(0, 3))
    with pytest.raises(ConfigError, match="JSON"):
        create_model("lfc", input_quantizer=object())
    with pytest.raises(ConfigError, match="unknown quantizer"):
        create_model("lfc", weight_quantizer="sgn")


def test_birealnet_matches_the_reference_parameter_count():
    """BiRealNet-18 at 224x224x3 with 1,000 classes: 11,699,112 parameters counting BatchNorm's
    four vectors as Keras does (Larq zoo's figure)."""

    model = create_model("birealnet18", num_classes=1000, in_shape=(3, 224, 224))
    assert summary(model, (3, 224, 224)).total_params == 11_699_112
    with pytest.raises(ConfigError, match="at least 32x32"):
        create_model("birealnet34", num_classes=10, in_shape=(3, 16, 16))
