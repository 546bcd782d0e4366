"""onebit.summary: hand-computed parameter, byte and MAC counts, rendering, errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import onebit
from onebit.errors import ConfigError
from onebit.nn import QuantConv1d, QuantConv2d, QuantLinear, RPReLU, RSign
from onebit.model_summary import LayerRow, Summary, packed_weight_bytes, summary

SIGN = {"input_quantizer": "ste_sign", "weight_quantizer": "ste_sign"}


def binarynet_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        QuantLinear(64, 256, bias=False, weight_quantizer="ste_sign"),  # float input
        nn.BatchNorm1d(256),
        QuantLinear(256, 256, bias=False, **SIGN),
        nn.BatchNorm1d(256),
        QuantLinear(256, 10, bias=False, **SIGN),
        nn.BatchNorm1d(10),
    )


def small_convnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),  # float first layer, with bias
        nn.BatchNorm2d(32),
        QuantConv2d(32, 64, 3, padding=1, bias=False, pad_value=1, **SIGN),
        nn.BatchNorm2d(64),
        nn.MaxPool2d(2),
        nn.Flatten(),
        QuantLinear(64 * 4 * 4, 10, bias=False, **SIGN),
        nn.BatchNorm1d(10),
    )


def by_name(s: Summary) -> dict[str, LayerRow]:
    return {r.name: r for r in s.rows}


# --------------------------------------------------------------------------- (a) MLP


def test_binarynet_mlp_exact_numbers() -> None:
    s = onebit.summary(binarynet_mlp(), (1, 8, 8))
    rows = by_name(s)
    assert [r.name for r in s.rows] == ["0", "1", "2", "3", "4", "5", "6"]
    assert [r.kind for r in s.rows] == [
        "Flatten", "QuantLinear", "BatchNorm1d", "QuantLinear", "BatchNorm1d", "QuantLinear", "BatchNorm1d",
    ]
    assert rows["0"].output_shape == (1, 64)  # flatten 1·8·8
    assert rows["0"].params == 0 and rows["0"].packed_bytes == 0

    # fc1: 64·256 = 16,384 binary weights; packed 256 out · ceil(64/64)=1 word · 8 B = 2,048 B;
    # float32 16,384·4 = 65,536 B; MACs 64·256 = 16,384, float (float input).
    fc1 = rows["1"]
    assert (fc1.weight_bits, fc1.input_bits) == (1, 32)
    assert (fc1.binary_params, fc1.float_params) == (16_384, 0)
    assert (fc1.packed_bytes, fc1.float32_bytes) == (2_048, 65_536)
    assert (fc1.binary_macs, fc1.float_macs) == (0, 16_384)
    assert fc1.float_reason == "first layer: float input"

    # bn1: 4 vectors · 256 = 1,024 float params, 4,096 B both ways; no MACs.
    assert (rows["2"].float_params, rows["2"].packed_bytes, rows["2"].float32_bytes) == (1_024, 4_096, 4_096)
    assert (rows["2"].binary_macs, rows["2"].float_macs) == (0, 0)
    assert rows["2"].weight_bits is None and rows["2"].input_bits is None

    # fc2: 256·256 = 65,536 binary; packed 256 · ceil(256/64)=4 · 8 = 8,192 B; MACs 65,536 binary.
    fc2 = rows["3"]
    assert (fc2.binary_params, fc2.packed_bytes, fc2.float32_bytes) == (65_536, 8_192, 262_144)
    assert (fc2.binary_macs, fc2.float_macs) == (65_536, 0)
    assert fc2.float_reason is None

    # fc3: 256·10 = 2,560 binary; packed 10 · 4 · 8 = 320 B; MACs 2,560 binary.
    fc3 = rows["5"]
    assert (fc3.binary_params, fc3.packed_bytes, fc3.binary_macs) == (2_560, 320, 2_560)
    # bn3: 4 · 10 = 40 params, 160 B.
    assert (rows["6"].float_params, rows["6"].packed_bytes) == (40, 160)

    # totals
    assert s.binary_params == 16_384 + 65_536 + 2_560 == 84_480
    assert s.float_params == 1_024 + 1_024 + 40 == 2_088
    assert s.low_bit_params == 0
    assert s.total_params == 84_480 + 2_088 == 86_568
    assert s.packed_bytes == 2_048 + 4_096 + 8_192 + 4_096 + 320 + 160 == 18_912
    assert s.float32_bytes == 4 * 86_568 == 346_272
    assert s.compression == pytest.approx(346_272 / 18_912)  # 18.31×
    assert s.binary_macs == 65_536 + 2_560 == 68_096
    assert s.float_macs == 16_384
    assert s.binary_mac_fraction == pytest.approx(68_096 / 84_480)  # 80.6 %


def test_batch_size_scales_macs_and_shapes_only() -> None:
    one = summary(binarynet_mlp(), (1, 8, 8))
    four = summary(binarynet_mlp(), (1, 8, 8), batch_size=4)
    assert four.binary_macs == 4 * 68_096 and four.float_macs == 4 * 16_384
    assert four.total_params == one.total_params and four.packed_bytes == one.packed_bytes
    assert by_name(four)["1"].output_shape == (4, 256)
    assert four.binary_mac_fraction == pytest.approx(one.binary_mac_fraction)


# --------------------------------------------------------------------------- (b) conv net


def test_small_convnet_exact_numbers() -> None:
    s = summary(small_convnet(), (1, 8, 8))
    rows = by_name(s)
    assert [r.kind for r in s.rows] == [
        "Conv2d", "BatchNorm2d", "QuantConv2d", "BatchNorm2d", "MaxPool2d", "Flatten", "QuantLinear", "BatchNorm1d",
    ]
    # conv1 (float): weight 32·1·3·3 = 288 + bias 32 = 320 float params, 1,280 B both ways;
    # MACs: 32·8·8 = 2,048 outputs · (1/1) in-channels · 9 = 18,432 float.
    c1 = rows["0"]
    assert c1.output_shape == (1, 32, 8, 8)
    assert (c1.weight_bits, c1.input_bits) == (32, 32)
    assert (c1.float_params, c1.packed_bytes, c1.float32_bytes) == (320, 1_280, 1_280)
    assert (c1.binary_macs, c1.float_macs) == (0, 18_432)
    assert c1.float_reason == "first layer: not quantized"
    # bn: 4·32 = 128 params, 512 B.
    assert (rows["1"].float_params, rows["1"].packed_bytes) == (128, 512)
    # qconv: 64·32·9 = 18,432 binary; packed 64 out · 9 positions · ceil(32/64)=1 word · 8 = 4,608 B;
    # float32 18,432·4 = 73,728 B; MACs 64·8·8 = 4,096 outputs · 32 · 9 = 1,179,648 binary.
    q = rows["2"]
    assert (q.binary_params, q.packed_bytes, q.float32_bytes) == (18_432, 4_608, 73_728)
    assert (q.binary_macs, q.float_macs) == (1_179_648, 0)
    # bn: 4·64 = 256 params, 1,024 B.
    assert (rows["3"].float_params, rows["3"].packed_bytes) == (256, 1_024)
    # pool 8×8 → 4×4, flatten 64·4·4 = 1,024
    assert rows["4"].output_shape == (1, 64, 4, 4) and rows["5"].output_shape == (1, 1_024)
    # fc: 1,024·10 = 10,240 binary; packed 10 · ceil(1024/64)=16 · 8 = 1,280 B; MACs 10,240 binary.
    fc = rows["6"]
    assert (fc.binary_params, fc.packed_bytes, fc.binary_macs) == (10_240, 1_280, 10_240)
    # bn: 4·10 = 40, 160 B.
    assert (rows["7"].float_params, rows["7"].packed_bytes) == (40, 160)

    assert s.binary_params == 18_432 + 10_240 == 28_672
    assert s.float_params == 320 + 128 + 256 + 40 == 744
    assert s.total_params == 29_416
    assert s.packed_bytes == 1_280 + 512 + 4_608 + 1_024 + 1_280 + 160 == 8_864
    assert s.float32_bytes == 4 * 29_416 == 117_664
    assert s.compression == pytest.approx(117_664 / 8_864)  # 13.27×
    assert s.binary_macs == 1_179_648 + 10_240 == 1_189_888
    assert s.float_macs == 18_432
    assert s.binary_mac_fraction == pytest.approx(1_189_888 / (1_189_888 + 18_432))  # 98.47 %


def test_conv1d_stride_macs() -> None:
    # length 64, kernel 5, stride 2: out length floor((64 − 5)/2) + 1 = 30.
    # MACs 32 out-ch · 30 · 16 in-ch · 5 = 76,800; packed 32 · 5 positions · ceil(16/64)=1 · 8 = 1,280 B.
    m = nn.Sequential(QuantConv1d(16, 32, 5, stride=2, bias=False, **SIGN))
    s = summary(m, (16, 64))
    row = s.rows[0]
    assert row.output_shape == (1, 32, 30)
    assert (row.binary_macs, row.packed_bytes, row.binary_params) == (76_800, 1_280, 2_560)


# --------------------------------------------------------------------------- (c) special layers


def test_grouped_and_depthwise_convs() -> None:
    m = nn.Sequential(
        # depthwise: weight (32, 1, 3, 3) = 288 binary; packed 32 · 9 · ceil(1/64)=1 · 8 = 2,304 B
        # (more than float32's 288·4 = 1,152 B: every kernel position pads to a whole word);
        # MACs 32·8·8 = 2,048 outputs · 1 · 9 = 18,432.
        QuantConv2d(32, 32, 3, padding=1, groups=32, bias=False, pad_value=-1, **SIGN),
        # grouped, groups 4, 32 → 64: weight (64, 8, 3, 3) = 4,608; packed 64 · 9 · 1 · 8 = 4,608 B;
        # MACs 64·8·8 = 4,096 · 8 · 9 = 294,912.
        QuantConv2d(32, 64, 3, padding=1, groups=4, bias=False, pad_value=-1, **SIGN),
    )
    s = summary(m, (32, 8, 8))
    dw, gr = s.rows
    assert (dw.binary_params, dw.packed_bytes, dw.float32_bytes, dw.binary_macs) == (288, 2_304, 1_152, 18_432)
    assert (gr.binary_params, gr.packed_bytes, gr.binary_macs) == (4_608, 4_608, 294_912)
    assert s.float_macs == 0 and s.binary_mac_fraction == 1.0
    assert s.float_layers == []


def test_scaled_ternary_and_dorefa_weights() -> None:
    m = nn.Sequential(
        # magnitude-aware: 100·20 = 2,000 binary; packed 20 · ceil(100/64)=2 · 8 = 320 + α 20·4 = 80
        # → 400 B; bias 20 float → 80 B; row 480 B; float32 (2,000 + 20)·4 = 8,080 B; MACs 2,000 binary.
        QuantLinear(100, 20, input_quantizer="approx_sign", weight_quantizer="magnitude_aware_sign"),
        # ternary weights (2 bits): 20·64 = 1,280 low-bit; packed 2 planes · 64 · 1 · 8 = 1,024 B;
        # MACs 1,280, float (not both 1-bit).
        QuantLinear(20, 64, bias=False, input_quantizer="ste_sign", weight_quantizer="ste_tern"),
        # DoReFa 3-bit weights: 64·8 = 512 low-bit; packed 3 planes · 8 · 1 · 8 = 192 B; MACs 512 float.
        QuantLinear(64, 8, bias=False, input_quantizer="ste_sign",
                    weight_quantizer=onebit.nn.DoReFa(k_bit=3, mode="weights")),
    )
    s = summary(m, (100,))
    mag, tern, dore = s.rows
    assert (mag.binary_params, mag.float_params) == (2_000, 20)
    assert packed_weight_bytes(m[0]) == 320 + 80
    assert (mag.packed_bytes, mag.float32_bytes, mag.binary_macs) == (480, 8_080, 2_000)
    assert (tern.weight_bits, tern.low_bit_params, tern.binary_params) == (2, 1_280, 0)
    assert (tern.packed_bytes, tern.binary_macs, tern.float_macs) == (1_024, 0, 1_280)
    assert tern.float_reason == "2-bit weights"
    assert (dore.weight_bits, dore.low_bit_params, dore.packed_bytes, dore.float_macs) == (3, 512, 192, 512)
    assert dore.float_reason == "last layer: 3-bit weights"
    assert s.low_bit_params == 1_280 + 512
    assert s.total_params == s.binary_params + s.low_bit_params + s.float_params == 2_020 + 1_792


def test_xnor_conv_learned_scale_and_rsign_folded() -> None:
    # xnor_sign conv 64 → 128, 3×3, RSign(64) input quantizer, learned scale, bias:
    # weight 128·64·9 = 73,728 binary → 128 · 9 · 1 · 8 = 9,216 B + α 128·4 = 512 B;
    # float: RSign shift 64 + scale 128 + bias 128 = 320 → 1,280 B. Row packed 9,216 + 512 + 1,280 = 11,008.
    conv = QuantConv2d(64, 128, 3, padding=1, input_quantizer=RSign(64), weight_quantizer="xnor_sign",
                       scaling="learned")
    m = nn.Sequential(RSign(64), RPReLU(64), conv)  # the standalone RSign/RPReLU are rows
    s = summary(m, (64, 4, 4))
    assert [r.kind for r in s.rows] == ["RSign", "RPReLU", "QuantConv2d"]
    rs, rp, row = s.rows
    assert (rs.float_params, rs.packed_bytes, rs.binary_macs + rs.float_macs) == (64, 256, 0)
    assert (rp.float_params, rp.packed_bytes) == (3 * 64, 768)
    assert (row.binary_params, row.float_params) == (73_728, 320)
    assert row.packed_bytes == 9_216 + 512 + 1_280 == 11_008
    # RSign is 1-bit: MACs binary, 128·4·4 = 2,048 outputs · 64 · 9 = 1,179,648.
    assert (row.binary_macs, row.float_macs) == (1_179_648, 0)
    assert s.total_params == sum(p.numel() for p in m.parameters())


def test_shared_module_and_tied_weights_count_once() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = QuantLinear(32, 32, bias=False, **SIGN)
            self.tied = QuantLinear(32, 32, bias=False, **SIGN)
            self.tied.weight = self.fc.weight
            self.unused = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.tied(self.fc(self.fc(x)))

    s = summary(Twice(), (32,))
    rows = by_name(s)
    # fc: called twice → MACs 2 · 32·32 = 2,048; weight counted once (1,024), packed 32 · 1 · 8 = 256.
    assert rows["fc"].calls == 2
    assert (rows["fc"].binary_macs, rows["fc"].binary_params, rows["fc"].packed_bytes) == (2_048, 1_024, 256)
    # tied: shares fc's weight → no params of its own, but its MACs count.
    assert (rows["tied"].params, rows["tied"].packed_bytes, rows["tied"].binary_macs) == (0, 0, 1_024)
    # unused: never called, still counted: 16 + 4 = 20 float params.
    assert rows["unused"].output_shape is None and rows["unused"].float_params == 20
    assert s.total_params == 1_024 + 20 == sum(p.numel() for p in Twice().parameters())
    assert "fc (×2)" in str(s) and "(not called)" in str(s)


def test_packed_weight_bytes_direct() -> None:
    assert packed_weight_bytes(nn.Linear(10, 3)) == 4 * 30  # float weight: 4 B each (bias not included)
    assert packed_weight_bytes(QuantLinear(65, 3, weight_quantizer="ste_sign")) == 3 * 2 * 8  # ceil(65/64) = 2
    assert packed_weight_bytes(QuantConv2d(128, 2, (3, 5), weight_quantizer="ste_sign")) == 2 * 15 * 2 * 8
    with pytest.raises(ConfigError, match="no weight"):
        packed_weight_bytes(nn.ReLU())


def test_total_params_match_parameters_plus_bn_statistics() -> None:
    for model in (binarynet_mlp(), small_convnet()):
        s = summary(model, (1, 8, 8))
        running = sum(
            m.running_mean.numel() + m.running_var.numel()
            for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        )
        assert s.total_params == sum(p.numel() for p in model.parameters()) + running
        assert s.float32_bytes == 4 * s.total_params


# --------------------------------------------------------------------------- (d) rendering


def test_rendered_table() -> None:
    s = summary(binarynet_mlp(), (1, 8, 8))
    text = str(s)
    for header in ("#", "Module", "Kind", "Output shape", "Weight bits", "Input bits", "Params", "Packed bytes",
                   "Float32 bytes", "Binary MACs", "Float MACs"):
        assert header in text
    assert "86,568 = binary 84,480 + float 2,088" in text
    assert "packed 18,912 B" in text and "float32 346,272 B" in text and "18.3×" in text
    assert "binary 68,096 + float 16,384 (binary 80.6%)" in text
    # the count, then each float layer by its row number and module name (module "1" is not a count)
    assert "Float layers: 1 of 3 layers with weights: #2 (module 1, QuantLinear): first layer: float input" in text
    # rows are numbered 1..N without gaps, although parameter-free modules (Hardtanh) have no row
    lines = text.splitlines()
    header_line = next(line for line in lines if line.lstrip().startswith("#  Module"))
    first, rule = lines.index(header_line) + 2, lines.index(header_line) + 2 + len(s.rows)
    assert [int(line.split()[0]) for line in lines[first:rule]] == list(range(1, len(s.rows) + 1))
    assert [line.split()[1] for line in lines[first:rule]] == [r.name for r in s.rows]
    # every table line has the same column layout: the header's column starts line up with the rows'
    row_line = next(line for line in lines[first:rule] if "QuantLinear" in line and line.endswith(" 0"))
    assert len(row_line) == len(header_line)
    assert str(s) == s.table() and repr(s)  # print() works and repr does not crash

    conv = str(summary(small_convnet(), (1, 8, 8)))
    assert "Float layers: 1 of 3 layers with weights: #1 (module 0, Conv2d): first layer: not quantized" in conv
    assert "13.3×" in conv and "98.5%" in conv


def test_rendered_without_float_layers_and_with_low_bit() -> None:
    m = nn.Sequential(QuantLinear(64, 64, bias=False, **SIGN))
    assert "Float layers: none" in str(summary(m, (64,)))
    m = nn.Sequential(QuantLinear(64, 64, bias=False, input_quantizer="ste_sign", weight_quantizer="ste_tern"))
    assert "low-bit 4,096" in str(summary(m, (64,)))


def test_to_dict_is_json_serializable() -> None:
    s = summary(small_convnet(), (1, 8, 8), batch_size=2)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["input_shape"] == [1, 8, 8] and d["batch_size"] == 2
    assert d["totals"]["total_params"] == 29_416 and d["totals"]["packed_bytes"] == 8_864
    assert d["totals"]["binary_macs"] == 2 * 1_189_888
    assert d["rows"][2]["output_shape"] == [2, 64, 8, 8] and d["rows"][2]["params"] == 18_432
    assert d["float_layers"] == {"0": "first layer: not quantized"}


def test_public_names() -> None:
    import onebit.model_summary  # noqa: F401  (importing the module must not shadow the function)

    assert onebit.Summary is Summary
    assert onebit.summary(binarynet_mlp(), (1, 8, 8)).total_params == 86_568


# --------------------------------------------------------------------------- modes, BN stats


def test_training_mode_and_bn_statistics_are_restored() -> None:
    model = small_convnet()
    model.train()
    model[1].eval()  # mixed modes survive too
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    summary(model, (1, 8, 8), batch_size=3)
    assert [m.training for m in model.modules()] == modes
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())

    model.eval()
    summary(model, (1, 8, 8))
    assert not any(m.training for m in model.modules())


# --------------------------------------------------------------------------- (e) errors


@pytest.mark.parametrize("shape", [(), (0, 8), (-1,), "8x8", 8, (1.0, 8), (True, 8), None])
def test_bad_input_shape(shape: object) -> None:
    with pytest.raises(ConfigError, match="input_shape"):
        summary(binarynet_mlp(), shape)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_size", [0, -2, 1.5, True])
def test_bad_batch_size(batch_size: object) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        summary(binarynet_mlp(), (1, 8, 8), batch_size=batch_size)  # type: ignore[arg-type]


def test_not_a_module() -> None:
    with pytest.raises(ConfigError, match="nn.Module"):
        summary("resnet", (3, 32, 32))  # type: ignore[arg-type]


def test_forward_failure_is_one_line_config_error() -> None:
    model = small_convnet().train()
    with pytest.raises(ConfigError) as info:
        summary(model, (3, 8, 8))  # conv1 wants 1 input channel
    msg = str(info.value)
    assert "\n" not in msg
    assert "(3, 8, 8)" in msg and "RuntimeError" in msg and "channels" in msg
    assert isinstance(info.value, ValueError) and info.value.__suppress_context__
    # the model is left as it was: training mode, no hooks
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())

    with pytest.raises(ConfigError, match=r"\(1, 4, 4\).*mat1 and mat2"):
        summary(binarynet_mlp(), (1, 4, 4))  # flatten gives 16 features, fc1 wants 64
