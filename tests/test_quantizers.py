"""Each quantizer's forward and pseudo-gradient against its formula, at 0 and the clip edges."""

from __future__ import annotations

import math

import pytest
import torch

from onebit.errors import ConfigError
from onebit.nn import (
    QUANTIZERS,
    DoReFa,
    Quantizer,
    RSign,
    SteTern,
    approx_sign,
    dorefa,
    get_quantizer,
    magnitude_aware_sign,
    sign,
    ste_heaviside,
    ste_sign,
    ste_tern,
    swish_sign,
    xnor_sign,
)

# Points that exercise 0 (sign(0) = +1), -0.0, the clip edges ±1 and beyond.
X = [-2.0, -1.0, -0.5, -0.0, 0.0, 0.25, 1.0, 1.0001, 3.0]


def grad_of(fn, values, upstream=None):
    x = torch.tensor(values, requires_grad=True)
    y = fn(x)
    g = torch.ones_like(y) if upstream is None else upstream
    y.backward(g)
    return y.detach(), x.grad


def test_sign_maps_zero_and_negative_zero_to_plus_one():
    assert sign(torch.tensor([-0.0, 0.0, -1e-30, 1e-30])).tolist() == [1.0, 1.0, -1.0, 1.0]


def test_ste_sign_forward_and_clipped_gradient():
    y, g = grad_of(lambda x: ste_sign(x, clip_value=1.0), X)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1, 1, 1]
    # gradient passes where |x| <= 1, edges included
    assert g.tolist() == [0, 1, 1, 1, 1, 1, 1, 0, 0]


def test_ste_sign_other_clip_and_no_clip():
    _, g = grad_of(lambda x: ste_sign(x, clip_value=0.5), X)
    assert g.tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0]
    _, g = grad_of(lambda x: ste_sign(x, clip_value=None), X)
    assert g.tolist() == [1.0] * len(X)


def test_ste_sign_gradient_scales_upstream():
    _, g = grad_of(lambda x: ste_sign(x), [0.5, 2.0], upstream=torch.tensor([3.0, 5.0]))
    assert g.tolist() == [3.0, 0.0]


def test_approx_sign_gradient_is_2_minus_2_abs_x():
    y, g = grad_of(approx_sign, X)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1, 1, 1]
    expected = [max(0.0, 2 - 2 * abs(v)) for v in X]
    assert torch.allclose(g, torch.tensor(expected))
    assert g[4] == 2.0 and g[1] == 0.0 and g[6] == 0.0  # peak at 0, zero at the edges


@pytest.mark.parametrize("beta", [1.0, 5.0, 10.0])
def test_swish_sign_gradient_matches_derivative_of_signswish(beta):
    y, g = grad_of(lambda x: swish_sign(x, beta), X)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1, 1, 1]
    # d/dx [2σ(βx)(1 + βx(1 − σ(βx))) − 1], computed by autograd on the smooth function
    xs = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    s = torch.sigmoid(beta * xs)
    (2 * s * (1 + beta * xs * (1 - s)) - 1).sum().backward()
    assert torch.allclose(g.double(), xs.grad, atol=1e-6)
    assert g[4].item() == pytest.approx(beta / 2 * 2)  # at 0: β(2 − 0)/(1 + 1) = β


def test_swish_sign_is_finite_for_huge_inputs():
    _, g = grad_of(lambda x: swish_sign(x, 5.0), [-1e6, 1e6, 200.0])
    assert torch.isfinite(g).all() and g.abs().max() < 1e-20


def test_magnitude_aware_sign_scales_per_output_channel_and_stops_gradient_on_alpha():
    w = torch.tensor([[0.5, -1.5, 0.0], [2.0, 2.0, -2.0]], requires_grad=True)
    y = magnitude_aware_sign(w)
    alpha = torch.tensor([[2.0 / 3.0], [2.0]])
    assert torch.allclose(y, alpha * torch.tensor([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]]))
    y.sum().backward()
    # d/dw = α · 1[|w| ≤ 1]; no term from α (stop-gradient)
    expected = alpha * torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(w.grad, expected)


def test_magnitude_aware_sign_on_conv_weight_uses_all_but_first_axis():
    w = torch.randn(4, 3, 3, 3)
    y = magnitude_aware_sign(w)
    assert torch.allclose(y.abs().amax(dim=(1, 2, 3)), w.abs().mean(dim=(1, 2, 3)))


def test_xnor_sign_forward_and_paper_gradient():
    w = torch.tensor([[0.5, -1.5, 0.0, 0.25]], requires_grad=True)
    y = xnor_sign(w)
    alpha = (0.5 + 1.5 + 0.0 + 0.25) / 4
    assert torch.allclose(y, alpha * torch.tensor([[1.0, -1.0, 1.0, 1.0]]))
    g = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    y.backward(g)
    # ∂C/∂w_i = g_i (1/n + α · 1[|w_i| ≤ 1]), n = 4
    expected = g * (0.25 + alpha * torch.tensor([[1.0, 0.0, 1.0, 1.0]]))
    assert torch.allclose(w.grad, expected)


def test_scaled_quantizers_need_an_output_channel_axis():
    with pytest.raises(ConfigError, match="output-channel axis"):
        magnitude_aware_sign(torch.randn(5))


def test_ste_heaviside_maps_zero_to_one():
    y, g = grad_of(ste_heaviside, X)
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert g.tolist() == [0, 1, 1, 1, 1, 1, 1, 0, 0]


def test_ste_tern_fixed_threshold_is_exclusive():
    y, g = grad_of(lambda x: ste_tern(x, threshold_value=0.5), [-1.0, -0.5, -0.49, 0.0, 0.5, 0.51, 2.0])
    assert y.tolist() == [-1, 0, 0, 0, 0, 1, 1]
    assert g.tolist() == [1, 1, 1, 1, 1, 1, 0]


def test_ste_tern_twn_rule():
    x = torch.tensor([-2.0, -0.5, 0.1, 0.3, 1.1])
    delta = 0.7 * x.abs().mean().item()  # 0.7 · 0.8 = 0.56
    assert delta == pytest.approx(0.56)
    y = ste_tern(x, ternary_weight_networks=True)
    assert y.tolist() == [-1, 0, 0, 0, 1]


@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_dorefa_activations(k):
    n = 2**k - 1
    xs = [-0.5, 0.0, 0.1, 0.5, 0.74, 1.0, 1.5]
    y, g = grad_of(lambda x: dorefa(x, k, "activations"), xs)
    expected = [round(min(max(v, 0.0), 1.0) * n) / n for v in xs]
    # torch.round rounds half to even, as does Python's round
    assert torch.allclose(y, torch.tensor(expected))
    assert g.tolist() == [0, 1, 1, 1, 1, 1, 0]  # clip gradient: passes on [0, 1]


@pytest.mark.parametrize("k", [1, 2, 4])
def test_dorefa_weights(k):
    w = torch.tensor([-3.0, -0.2, 0.0, 0.4, 1.0], requires_grad=True)
    y = dorefa(w, k, "weights")
    t = torch.tanh(w.detach())
    t = t / (2 * t.abs().max()) + 0.5
    n = 2**k - 1
    assert torch.allclose(y.detach(), 2 * torch.round(t * n) / n - 1)
    assert y.detach().abs().max() <= 1.0
    y.sum().backward()
    # identity through the rounding: d/dw [2 t(w)] with max|tanh| held constant
    m = torch.tanh(torch.tensor(3.0))
    assert torch.allclose(w.grad, 2 * (1 - torch.tanh(w.detach()) ** 2) / (2 * m))


def test_registry_names_and_round_trip_config():
    expected = {
        "ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign", "xnor_sign",
        "ste_heaviside", "ste_tern", "dorefa",
    }
    assert expected <= set(QUANTIZERS)
    for name, cls in QUANTIZERS.items():
        q = cls()
        assert q.name == name
        clone = get_quantizer(name, **q.config())
        assert type(clone) is cls and clone.config() == q.config()


def test_bits_and_flags():
    assert get_quantizer("ste_sign").bits == 1 and get_quantizer("ste_sign").signed
    assert get_quantizer("ste_heaviside").bits == 1 and not get_quantizer("ste_heaviside").signed
    assert get_quantizer("ste_tern").bits == 2
    assert get_quantizer("dorefa", k_bit=3).bits == 3
    assert get_quantizer("magnitude_aware_sign").scaled and get_quantizer("xnor_sign").scaled
    assert RSign(4).bits == 1 and RSign(4).signed


def test_get_quantizer_errors_name_the_choices():
    with pytest.raises(ConfigError, match="unknown quantizer 'sgn'.*ste_sign"):
        get_quantizer("sgn")
    with pytest.raises(ConfigError, match="bad arguments for quantizer 'ste_sign'"):
        get_quantizer("ste_sign", beta=3)
    with pytest.raises(ConfigError, match="registered name"):
        get_quantizer(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="clip_value"):
        get_quantizer("ste_sign", clip_value=-1)
    with pytest.raises(ConfigError, match="k_bit"):
        DoReFa(k_bit=0)
    with pytest.raises(ConfigError, match="mode"):
        DoReFa(mode="both")
    with pytest.raises(ConfigError, match="threshold_value"):
        SteTern(threshold_value=-0.1)
    assert get_quantizer(None) is None and get_quantizer("none") is None
    q = get_quantizer("approx_sign")
    assert get_quantizer(q) is q and isinstance(q, Quantizer)


def test_rsign_shifts_per_channel_with_approx_sign_gradient():
    q = RSign(2)
    with torch.no_grad():
        q.shift.copy_(torch.tensor([0.5, -0.5]))
    x = torch.tensor([[0.4, -0.4], [0.5, -0.6]], requires_grad=True)
    y = q(x)
    assert y.tolist() == [[-1, 1], [1, -1]]  # sign(x − β), sign(0) = +1
    y.sum().backward()
    d = x.detach() - q.shift.detach()
    assert torch.allclose(x.grad, torch.clamp(2 - 2 * d.abs(), min=0))
    assert torch.allclose(q.shift.grad, -torch.clamp(2 - 2 * d.abs(), min=0).sum(0))
    with pytest.raises(ConfigError, match="2 channels"):
        q(torch.randn(3, 5))


def test_swish_sign_gradient_formula_at_edges():
    beta = 5.0
    _, g = grad_of(lambda x: swish_sign(x, beta), [1.0, -1.0])
    bx = beta
    expected = beta * (2 - bx * math.tanh(bx / 2)) / (1 + math.cosh(bx))
    assert g.tolist() == pytest.approx([expected, expected], rel=1e-5)
