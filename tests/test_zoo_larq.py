"""Larq zoo's BinaryAlexNet, BinaryResNetE18 and Real-to-Binary Net in onebit's zoo.

Their parameter counts at 224 × 224 (61,859,192; 11,699,368; 11,995,624, Keras counting)
are checked for every registered model by tests/test_cli.py
(test_summary_with_no_options_is_the_published_network); here: structure and the engine.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from onebit.errors import ConfigError
from onebit.models import create_model
from tests.exporting import check_export, randomize_bn


def test_binary_alexnet_batchnorm_has_no_scale_and_exports(tmp_path):
    model = create_model("binary_alexnet", num_classes=10, in_shape=(3, 64, 64), dense=128)
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert len(bns) == 8 and all("weight" not in dict(bn.named_parameters()) for bn in bns)
    assert all(torch.equal(bn.weight, torch.ones_like(bn.bias)) for bn in bns)
    assert not any(k.endswith(".weight") and "bn" in k for k in model.state_dict())
    torch.manual_seed(0)
    check_export(randomize_bn(model), torch.randn(8, 3, 64, 64), tmp_path / "alexnet.onebit")


def test_binary_alexnet_too_small_input_is_refused():
    with pytest.raises(ConfigError, match="at least 61x61"):
        create_model("binary_alexnet", num_classes=10, in_shape=(3, 32, 32))


@pytest.mark.parametrize("size", [32, 64])  # the small-input stem, and the ImageNet one
def test_binary_resnet_e18_exports(size, tmp_path):
    model = create_model("binary_resnet_e18", num_classes=10, in_shape=(3, size, size), width=8)
    blocks = [m for m in model.modules() if type(m).__name__ == "ResNetEBlock"]
    assert len(blocks) == 16 and sum(not isinstance(b.shortcut, nn.Identity) for b in blocks) == 3
    torch.manual_seed(1)
    check_export(randomize_bn(model), torch.randn(8, 3, size, size), tmp_path / "resnet_e.onebit")


def test_binary_resnet_e18_sizes_that_do_not_halve_are_refused():
    with pytest.raises(ConfigError, match="divisible by 8"):
        create_model("binary_resnet_e18", num_classes=10, in_shape=(3, 56, 56), width=8)


def test_real_to_binary_net_has_16_gated_half_blocks_and_refuses_sizes_that_do_not_halve():
    """Its export to the engine (the gates as sigmoid and channel_mul nodes): tests/test_real_to_binary_export.py."""
    model = create_model("real_to_binary_net", num_classes=10, in_shape=(3, 32, 32), width=8).eval()
    assert sum(type(m).__name__ == "RealToBinaryHalfBlock" for m in model.modules()) == 16
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError, match="divisible by 8"):  # 48 → 12 → 6 → 3: the shortcut's 1 would broadcast to 2
        create_model("real_to_binary_net", num_classes=10, in_shape=(3, 48, 48), width=8)
