"""Quantized layers equal the same computation done by hand with ±1 integers and the declared padding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import onebit
from onebit.errors import ConfigError
from onebit.nn import BiRealBlock, QuantConv1d, QuantConv2d, QuantLinear, RPReLU


def pm1(a: np.ndarray) -> np.ndarray:
    """sign with sign(0) = +1, as integers."""
    return np.where(a >= 0, 1, -1).astype(np.int64)


def conv2d_by_hand(x, w, stride, padding, dilation, groups, pad_value):
    """Direct convolution over explicit loops; x: (N, C, H, W) ints, w: (O, C/g, kh, kw) ints."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    xp = np.full((n, c, h + 2 * ph, wd + 2 * pw), pad_value, dtype=np.int64)
    xp[:, :, ph : ph + h, pw : pw + wd] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow), dtype=np.int64)
    og = o // groups
    for b, oc, i, j in itertools.product(range(n), range(o), range(oh), range(ow)):
        g = oc // og
        acc = 0
        for ic, u, v in itertools.product(range(cg), range(kh), range(kw)):
            acc += xp[b, g * cg + ic, i * sh + u * dh, j * sw + v * dw] * w[oc, ic, u, v]
        out[b, oc, i, j] = acc
    return out


CONV_CASES = [
    # (in, out, k, stride, padding, dilation, groups, pad_value, H, W)
    (3, 4, 3, 1, 1, 1, 1, -1.0, 5, 5),
    (3, 4, 3, 1, 1, 1, 1, 0.0, 5, 6),
    (3, 4, 3, 1, 1, 1, 1, 1.0, 4, 5),
    (4, 6, 3, 2, 1, 1, 2, -1.0, 7, 7),
    (4, 4, 3, 1, 2, 2, 4, 1.0, 6, 5),  # depthwise, dilated
    (2, 3, 5, 2, 2, 1, 1, 0.0, 9, 8),
    (2, 2, 1, 1, 0, 1, 1, 1.0, 3, 3),
]


@pytest.mark.parametrize("cin,cout,k,stride,pad,dil,groups,pad_value,h,w", CONV_CASES)
def test_binary_conv2d_equals_hand_computation(cin, cout, k, stride, pad, dil, groups, pad_value, h, w):
    torch.manual_seed(0)
    layer = QuantConv2d(
        cin, cout, k, stride=stride, padding=pad, dilation=dil, groups=groups, bias=False,
        input_quantizer="ste_sign", weight_quantizer="ste_sign", pad_value=pad_value,
    )
    x = torch.randn(2, cin, h, w)
    x[0, 0, 0, 0] = 0.0  # sign(0) = +1
    got = layer(x).detach().numpy()
    want = conv2d_by_hand(
        pm1(x.numpy()), pm1(layer.weight.detach().numpy()), (stride, stride), (pad, pad), (dil, dil),
        groups, int(pad_value),
    )
    assert np.array_equal(got, want.astype(np.float32))


def test_padding_value_matters_and_same_padding_is_supported():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 4, 4)
    outs = []
    for pv in (-1.0, 0.0, 1.0):
        layer = QuantConv2d(2, 3, 3, padding="same", bias=False, input_quantizer="ste_sign",
                            weight_quantizer="ste_sign", pad_value=pv)
        with torch.no_grad():
            layer.weight.fill_(1.0)
        outs.append(layer(x))
    # the corner sees 5 padded positions per channel: 2 channels × 5 × pad value
    assert outs[1][0, 0, 0, 0] - outs[0][0, 0, 0, 0] == 10
    assert outs[2][0, 0, 0, 0] - outs[1][0, 0, 0, 0] == 10
    assert torch.equal(outs[0][0, :, 1:3, 1:3], outs[2][0, :, 1:3, 1:3])  # interior unaffected


def test_binary_conv1d_equals_hand_computation():
    torch.manual_seed(2)
    layer = QuantConv1d(3, 4, 3, stride=2, padding=2, dilation=2, bias=False,
                        input_quantizer="ste_sign", weight_quantizer="ste_sign", pad_value=-1.0)
    x = torch.randn(2, 3, 11)
    got = layer(x).detach().numpy()
    want = conv2d_by_hand(pm1(x.numpy())[:, :, None, :], pm1(layer.weight.detach().numpy())[:, :, None, :],
                          (1, 2), (0, 2), (1, 2), 1, -1)[:, :, 0, :]
    assert np.array_equal(got, want.astype(np.float32))


def test_binary_linear_equals_hand_computation_with_scale_and_bias():
    torch.manual_seed(3)
    layer = QuantLinear(70, 5, input_quantizer="ste_sign", weight_quantizer="ste_sign", scaling="learned")
    with torch.no_grad():
        layer.scale.copy_(torch.arange(1.0, 6.0))
        layer.bias.copy_(torch.arange(5.0) / 10)
    x = torch.randn(4, 70)
    xi, wi = pm1(x.numpy()), pm1(layer.weight.detach().numpy())
    want = (xi @ wi.T) * np.arange(1, 6) + np.arange(5) / 10
    assert np.allclose(layer(x).detach().numpy(), want, atol=1e-5)
    # XNOR-popcount identity: dot = K − 2·(number of disagreeing positions)
    assert np.array_equal(xi @ wi.T, 70 - 2 * ((xi[:, None, :] != wi[None, :, :]).sum(-1)))


def test_float_input_binary_weight_linear():
    layer = QuantLinear(3, 2, bias=False, weight_quantizer="ste_sign")
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.3, -0.2, 0.0], [-1.0, 2.0, -0.5]]))
    x = torch.tensor([[1.5, 2.0, -1.0]])
    assert torch.allclose(layer(x), torch.tensor([[1.5 - 2.0 - 1.0, -1.5 + 2.0 + 1.0]]))
    assert not layer.is_binary and layer.weight_bits == 1 and layer.input_bits == 32


def test_magnitude_aware_conv_equals_alpha_times_binary_conv():
    torch.manual_seed(4)
    layer = QuantConv2d(3, 4, 3, padding=1, bias=False, input_quantizer="approx_sign",
                        weight_quantizer="magnitude_aware_sign", pad_value=1.0)
    x = torch.randn(1, 3, 5, 5)
    w = layer.weight.detach().numpy()
    alpha = np.abs(w).mean(axis=(1, 2, 3))
    want = conv2d_by_hand(pm1(x.numpy()), pm1(w), (1, 1), (1, 1), (1, 1), 1, 1) * alpha[None, :, None, None]
    assert np.allclose(layer(x).detach().numpy(), want, atol=1e-5)


def test_gradients_reach_latent_weights_and_inputs():
    layer = QuantConv2d(2, 2, 3, padding=1, input_quantizer="ste_sign", weight_quantizer="ste_sign",
                        pad_value=-1.0)
    x = (torch.rand(1, 2, 4, 4) - 0.5).requires_grad_()
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_layer_argument_errors():
    with pytest.raises(ConfigError, match="pad_value must be one of"):
        QuantConv2d(2, 2, 3, pad_value=0.5)
    with pytest.raises(ConfigError, match="padding_mode='zeros'"):
        QuantConv2d(2, 2, 3, padding=1, padding_mode="reflect", pad_value=1.0)
    with pytest.raises(ConfigError, match="unknown scaling"):
        QuantLinear(2, 2, scaling="mean")
    with pytest.raises(ConfigError, match="unknown quantizer"):
        QuantLinear(2, 2, input_quantizer="sing")


def test_reflect_padding_mode_still_works_like_torch():
    torch.manual_seed(5)
    q = QuantConv2d(2, 3, 3, padding=1, padding_mode="reflect")
    ref = nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")
    ref.load_state_dict(q.state_dict())
    x = torch.randn(1, 2, 5, 5)
    assert torch.allclose(q(x), ref(x), atol=1e-6)


def test_float_quant_layers_equal_torch_layers():
    torch.manual_seed(6)
    q = QuantConv2d(4, 6, 3, stride=2, padding=1, groups=2)
    ref = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    ref.load_state_dict(q.state_dict())
    x = torch.randn(2, 4, 7, 7)
    assert torch.allclose(q(x), ref(x), atol=1e-6)


def test_rprelu_formula():
    m = RPReLU(2)
    with torch.no_grad():
        m.shift_in.copy_(torch.tensor([1.0, -1.0]))
        m.slope.copy_(torch.tensor([0.5, 0.1]))
        m.shift_out.copy_(torch.tensor([0.0, 2.0]))
    x = torch.tensor([[0.0, 0.0], [3.0, -3.0]])
    # z = x − γ; PReLU; + ζ
    assert torch.allclose(m(x), torch.tensor([[-0.5, 3.0], [2.0, 1.8]]))


def test_bireal_block_shortcut_and_shapes():
    torch.manual_seed(7)
    block = BiRealBlock(4, 4).eval()
    x = torch.randn(2, 4, 6, 6)
    assert torch.allclose(block(x), block.bn(block.conv(x)) + x)
    down = BiRealBlock(4, 8, stride=2).eval()
    assert down(x).shape == (2, 8, 3, 3)
    assert isinstance(down.shortcut[0], nn.AvgPool2d)
    with pytest.raises(ConfigError, match="stride"):
        BiRealBlock(4, 4, stride=3)


def _float_mlp():
    return nn.Sequential(
        nn.Flatten(), nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(),
        nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4),
    )


def test_binarize_keeps_first_and_last_float_and_shares_parameters():
    model = _float_mlp()
    w_mid = model[4].weight
    onebit.binarize(model)
    assert type(model[1]) is nn.Linear and type(model[7]) is nn.Linear
    assert isinstance(model[4], QuantLinear) and model[4].is_binary
    assert model[4].weight is w_mid
    assert isinstance(model[3], nn.Hardtanh) and isinstance(model[6], nn.Hardtanh)
    assert model(torch.randn(3, 1, 4, 4)).shape == (3, 4)


def test_binarize_options():
    model = onebit.binarize(_float_mlp(), keep_first=False, keep_last=False, activation="keep")
    assert all(isinstance(model[i], QuantLinear) for i in (1, 4, 7))
    assert isinstance(model[3], nn.ReLU)
    model = onebit.binarize(_float_mlp(), keep=["4"])
    assert not any(isinstance(m, QuantLinear) for m in model)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 2, 1))
    onebit.binarize(conv, weight_quantizer="magnitude_aware_sign", pad_value=1.0)
    assert isinstance(conv[1], QuantConv2d) and conv[1].pad_value == 1.0


def test_binarize_errors():
    with pytest.raises(ConfigError, match="not convertible layers.*valid names: 1, 4, 7"):
        onebit.binarize(_float_mlp(), keep=["fc9"])
    with pytest.raises(ConfigError, match="found no"):
        onebit.binarize(nn.Sequential(nn.ReLU()))
    with pytest.raises(ConfigError, match="unknown activation"):
        onebit.binarize(_float_mlp(), activation="relu")
    with pytest.raises(ConfigError, match="unknown quantizer"):
        onebit.binarize(_float_mlp(), input_quantizer="sgn")
