"""onebit.energy and onebit.rapl: hand-computed energy of two small models, the JSON table
override and its errors, the RAPL reader on a fake sysfs tree (with wrap-around), the CLI flags."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import onebit
from onebit import rapl
from onebit.cli import main
from onebit.energy import (
    DEFAULT_TABLE,
    ENERGY_KEYS,
    estimate_energy,
    load_table,
    packed_outputs,
    table_from_dict,
)
from onebit.errors import ConfigError
from onebit.nn import QuantConv2d, QuantLinear

SIGN = {"input_quantizer": "ste_sign", "weight_quantizer": "ste_sign"}

# Horowitz 2014, 45 nm (pJ); memory per 64-bit access.
FMUL, FADD, IADD32 = 3.7, 0.9, 0.1
XOR64, POPCOUNT64 = 0.1, 120 / 32 * 0.1  # derived, see onebit.energy
SRAM_1MB, SRAM_8KB, DRAM = 100.0, 10.0, 1300.0
WORD = XOR64 + POPCOUNT64 + IADD32  # 0.575 pJ per 64-bit word of a binary dot product
MAC = FMUL + FADD  # 4.6 pJ per float32 MAC


def tiny_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),                                                     # "0"
        QuantLinear(64, 100, bias=False, weight_quantizer="ste_sign"),   # "1": float input, binary weights
        nn.BatchNorm1d(100),                                              # "2"
        QuantLinear(100, 10, bias=False, **SIGN),                        # "3": binary
    )


def tiny_convnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),                                                # "0": float, with bias
        nn.BatchNorm2d(8),                                                            # "1"
        QuantConv2d(8, 70, 3, padding=1, bias=False, pad_value=1, **SIGN),           # "2": binary
        nn.BatchNorm2d(70),                                                           # "3"
        nn.MaxPool2d(2),                                                              # "4"
        nn.Flatten(),                                                                 # "5"
        QuantLinear(70 * 3 * 3, 10, bias=False, **SIGN),                             # "6": binary
    )


def sram(nbytes: int, price: float = SRAM_1MB) -> float:
    return math.ceil(nbytes / 8) * price


# --------------------------------------------------------------------------- hand-computed figures


def test_tiny_mlp_by_hand() -> None:
    s = onebit.summary(tiny_mlp(), (1, 8, 8), energy=True)
    e, f = s.energy.by_name(), s.float_energy.by_name()

    # "1": 64·100 MACs of float input and ±1 weights: 6,400 float adds; packed weights
    # 100 · ceil(64/64) · 8 = 800 B; float input 64·4 = 256 B; output read packed by "3":
    # ceil(100/64) = 2 words = 16 B. 1,072 B fit 1 MiB: SRAM.
    assert (e["1"].float_adds, e["1"].float_macs, e["1"].binary_words) == (6_400, 0, 0)
    assert (e["1"].weight_bytes, e["1"].activation_bytes, e["1"].sram_bytes) == (800, 272, 1_072)
    assert e["1"].compute_pj == pytest.approx(6_400 * FADD)  # 5,760 pJ
    assert e["1"].memory_pj == pytest.approx(sram(1_072))  # 134 accesses: 13,400 pJ
    # "2": BatchNorm, 4 vectors of 100 float32 = 1,600 B read; nothing computed.
    assert e["2"].memory_pj == pytest.approx(sram(1_600)) and e["2"].compute_pj == 0
    # "3": 10 dot products of ceil(100/64) = 2 words; weights 10·2·8 = 160 B, packed input 16 B,
    # float output 10·4 = 40 B (the last layer).
    assert e["3"].binary_words == 20
    assert e["3"].compute_pj == pytest.approx(20 * WORD)  # 11.5 pJ
    assert e["3"].memory_pj == pytest.approx(sram(160 + 16 + 40))  # 27 accesses: 2,700 pJ
    assert e["0"].total_pj == 0  # flatten: a view
    total = 6_400 * FADD + sram(1_072) + sram(1_600) + 20 * WORD + sram(216)
    assert s.energy.total_pj == pytest.approx(total) == pytest.approx(41_871.5)

    # Float twin: float32 weights, float activations, every MAC a float MAC.
    assert f["1"].memory_pj == pytest.approx(sram(6_400 * 4 + 256 + 400))
    assert f["3"].compute_pj == pytest.approx(1_000 * MAC)
    twin = 6_400 * MAC + sram(26_256) + sram(1_600) + 1_000 * MAC + sram(4_000 + 400 + 40)
    assert s.float_energy.total_pj == pytest.approx(twin) == pytest.approx(437_740.0)
    assert f["1"].float_macs == 6_400 and f["1"].float_adds == 0
    assert s.energy_ratio == pytest.approx(437_740.0 / 41_871.5)


def test_tiny_mlp_small_cache_sends_big_working_sets_to_dram() -> None:
    s = onebit.summary(tiny_mlp(), (1, 8, 8), energy=True, cache_kb=8)  # priced at the 8 KB SRAM entry
    assert s.energy.dram_bytes == 0
    assert s.energy.memory_pj == pytest.approx(sram(1_072, SRAM_8KB) + sram(1_600, SRAM_8KB) + sram(216, SRAM_8KB))
    f = s.float_energy.by_name()
    assert (f["1"].dram_bytes, f["1"].sram_bytes) == (26_256, 0)  # 26,256 B > 8,192 B
    assert f["1"].memory_pj == pytest.approx(math.ceil(26_256 / 8) * DRAM)  # 4,266,600 pJ
    assert f["3"].memory_pj == pytest.approx(sram(4_440, SRAM_8KB))


def test_tiny_convnet_by_hand() -> None:
    s = onebit.summary(tiny_convnet(), (1, 6, 6), energy=True)
    e, f = s.energy.by_name(), s.float_energy.by_name()

    # "0": float conv 1→8, 3×3, pad 1 on 6×6: 8·36 outputs · 9 = 2,592 MACs; 80 float params = 320 B;
    # input 36·4 = 144 B; output read packed by "2": 36 positions · ceil(8/64) · 8 = 288 B.
    c0 = 2_592 * MAC + sram(320 + 144 + 288)
    assert e["0"].total_pj == pytest.approx(c0)
    c1 = sram(8 * 16)  # BatchNorm2d(8): 4 vectors · 8 · 4 B
    # "2": 70·36 = 2,520 dot products · 9 positions · ceil(8/64) = 22,680 words; weights 70·9·1·8 =
    # 5,040 B; packed input 288 B; output packed for "6": 36 · ceil(70/64)=2 · 8 = 576 B.
    assert e["2"].binary_words == 22_680
    c2 = 22_680 * WORD + sram(5_040 + 288 + 576)
    assert e["2"].total_pj == pytest.approx(c2)
    c3 = sram(70 * 16)
    # "4": max-pool on packed words: reads 576 B, writes 9 positions · 2 words · 8 = 144 B.
    assert e["4"].activation_bytes == 720
    c4 = sram(720)
    assert e["5"].total_pj == 0
    # "6": 10 dot products of ceil(630/64) = 10 words; weights 10·10·8 = 800 B; input 80 B; output 40 B.
    c6 = 100 * WORD + sram(800 + 80 + 40)
    assert s.energy.total_pj == pytest.approx(c0 + c1 + c2 + c3 + c4 + c6)
    assert s.energy.compute_pj == pytest.approx(2_592 * MAC + 22_680 * WORD + 100 * WORD)

    t0 = 2_592 * MAC + sram(320 + 144 + 288 * 4)
    t2 = 2_520 * 8 * 9 * MAC + sram(70 * 8 * 9 * 4 + 288 * 4 + 2_520 * 4)
    t4 = sram(2_520 * 4 + 630 * 4)
    t6 = 6_300 * MAC + sram(6_300 * 4 + 630 * 4 + 40)
    assert f["2"].total_pj == pytest.approx(t2)
    assert s.float_energy.total_pj == pytest.approx(t0 + c1 + t2 + c3 + t4 + t6)


class ResidualMLP(nn.Module):
    """fc1's output joins a residual add: the engine writes it as float (the residual stream)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc0 = QuantLinear(16, 64, bias=False, weight_quantizer="ste_sign")
        self.bn0 = nn.BatchNorm1d(64)
        self.fc1 = QuantLinear(64, 64, bias=False, **SIGN)
        self.bn1 = nn.BatchNorm1d(64)
        self.fc2 = QuantLinear(64, 10, bias=False, **SIGN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn0(self.fc0(x))
        h = h + self.bn1(self.fc1(h))
        return self.fc2(h)


def test_residual_stream_is_written_float() -> None:
    model = ResidualMLP()
    assert packed_outputs(model, torch.zeros(1, 16)) == {"fc0", "bn0"}
    s = onebit.summary(model, (16,), energy=True)
    fc1 = s.energy.by_name()["fc1"]
    # 64 dot products of 1 word; weights 64·1·8 = 512 B; packed input 8 B; float output 64·4 = 256 B.
    assert (fc1.binary_words, fc1.weight_bytes, fc1.activation_bytes) == (64, 512, 264)
    assert fc1.total_pj == pytest.approx(64 * WORD + sram(512 + 264))
    assert s.energy.by_name()["fc2"].activation_bytes == 8 + 40  # reads bits, writes float logits
    # Without the trace, the call-order rule takes fc1's output as packed (fc2 reads bits).
    assert estimate_energy(s).by_name()["fc1"].activation_bytes == 16


def test_batch_divides_per_inference_and_amortizes_weights() -> None:
    one = onebit.summary(tiny_mlp(), (1, 8, 8), energy=True)
    four = onebit.summary(tiny_mlp(), (1, 8, 8), energy=True, batch_size=4)
    assert four.energy.compute_pj == pytest.approx(4 * one.energy.compute_pj)
    # Weights move once per batch: "3" moves 160 B of weights + 4 · (16 + 40) B of activations.
    assert four.energy.by_name()["3"].memory_pj == pytest.approx(sram(160 + 4 * 56))
    assert four.energy.per_inference_pj < one.energy.per_inference_pj


def test_table_and_dict_render_the_estimate() -> None:
    s = onebit.summary(tiny_mlp(), (1, 8, 8), energy=True)
    text = str(s)
    assert "Energy nJ" in text and "Float twin nJ" in text and "Horowitz" in text
    assert f"{s.energy_ratio:.1f}× this model's" in text
    d = json.loads(json.dumps(s.to_dict()))
    assert d["energy"]["totals"]["total_pj"] == pytest.approx(41_871.5)
    assert d["energy_ratio"] == pytest.approx(s.energy_ratio)
    plain = onebit.summary(tiny_mlp(), (1, 8, 8))
    assert plain.energy is None and "Energy" not in str(plain) and "energy" not in plain.to_dict()


# --------------------------------------------------------------------------- the table


def test_json_table_override(tmp_path: Path) -> None:
    doubled = {k: 2 * getattr(DEFAULT_TABLE, k) for k in ENERGY_KEYS}
    path = tmp_path / "process.json"
    path.write_text(json.dumps({**doubled, "source": "my 22 nm process"}))
    table = load_table(path)
    assert table.source == "my 22 nm process" and table.popcount64 == pytest.approx(0.75)
    base = onebit.summary(tiny_convnet(), (1, 6, 6), energy=True)
    mine = onebit.summary(tiny_convnet(), (1, 6, 6), energy=str(path))
    assert mine.energy.total_pj == pytest.approx(2 * base.energy.total_pj)
    assert mine.float_energy.total_pj == pytest.approx(2 * base.float_energy.total_pj)
    assert "my 22 nm process" in str(mine)
    again = estimate_energy(base, table=table)
    assert again.total_pj == pytest.approx(mine.energy.total_pj)


@pytest.mark.parametrize(("change", "fragments"), [
    (lambda d: d.pop("popcount64"), ["missing", "'popcount64'"]),
    (lambda d: d.update(popcnt=1.0), ["unknown", "'popcnt'", "valid keys", "popcount64"]),
    (lambda d: d.update(dram="1.3 nJ"), ["'dram'", "non-negative number", "'1.3 nJ'"]),
    (lambda d: d.update(xor64=-1), ["'xor64'", "non-negative"]),
    (lambda d: d.update(source=3), ["'source'", "string"]),
])
def test_table_errors_name_the_key(tmp_path: Path, change, fragments) -> None:
    data = DEFAULT_TABLE.to_dict()
    change(data)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        load_table(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message, message


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from([*ENERGY_KEYS, "source", "sram_2mb", ""]),
                       st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.text(max_size=3), st.none()),
                       max_size=14))
def test_table_reader_accepts_or_names_the_problem(data: dict) -> None:
    """Any JSON object gives a table or one ConfigError line, never another exception."""
    try:
        table = table_from_dict(data)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(getattr(table, k) == data[k] >= 0 for k in ENERGY_KEYS)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 2**40), st.data())
def test_counter_delta_undoes_one_wrap(max_range: int, data: st.DataObject) -> None:
    before = data.draw(st.integers(0, max_range - 1))
    used = data.draw(st.integers(0, max_range - 1))
    assert rapl.counter_delta(before, (before + used) % max_range, max_range) == used


def test_table_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{fp32_add: 1")
    with pytest.raises(ConfigError, match="not JSON"):
        load_table(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_table(tmp_path / "absent.json")
    with pytest.raises(ConfigError, match="JSON object"):
        table_from_dict([1, 2])
    with pytest.raises(ConfigError, match="cache_kb"):
        onebit.summary(tiny_mlp(), (1, 8, 8), energy=True, cache_kb=0)


# --------------------------------------------------------------------------- RAPL on a fake sysfs


def fake_powercap(root: Path, counters: dict[int, int], max_range: int = 1_000_000) -> Path:
    for package, value in counters.items():
        zone = root / f"intel-rapl:{package}"
        zone.mkdir(parents=True)
        (zone / "name").write_text(f"package-{package}\n")
        (zone / "energy_uj").write_text(f"{value}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
        core = root / f"intel-rapl:{package}:0"  # subzone: inside the package's count
        core.mkdir()
        (core / "name").write_text("core\n")
        (core / "energy_uj").write_text("5\n")
        (core / "max_energy_range_uj").write_text(f"{max_range}\n")
    psys = root / "intel-rapl:9"
    psys.mkdir()
    (psys / "name").write_text("psys\n")
    (psys / "energy_uj").write_text("7\n")
    (psys / "max_energy_range_uj").write_text(f"{max_range}\n")
    return root


def test_rapl_zones_and_measure_with_wraparound(tmp_path: Path) -> None:
    root = fake_powercap(tmp_path / "powercap", {0: 999_000, 1: 10})
    zones = rapl.find_zones(root)
    assert [(z.name, z.max_range_uj) for z in zones] == [("package-0", 1_000_000), ("package-1", 1_000_000)]

    def burn(zone: int, uj: int) -> None:  # what the package would count during one call
        path = root / f"intel-rapl:{zone}" / "energy_uj"
        path.write_text(str((int(path.read_text()) + uj) % 1_000_000))

    def call() -> None:
        burn(0, 500)
        burn(1, 250)

    joules, seconds = rapl.measure(call, 4, root=root, warmup=1)
    # Package 0 starts at 999,500 after warm-up and wraps: 4 · 500 µJ; package 1: 4 · 250 µJ.
    assert int((root / "intel-rapl:0" / "energy_uj").read_text()) == 1_500
    assert joules == pytest.approx((4 * 500 + 4 * 250) * 1e-6 / 4)
    assert seconds >= 0


def test_counter_delta() -> None:
    assert rapl.counter_delta(100, 350, 1_000) == 250
    assert rapl.counter_delta(900, 50, 1_000) == 150  # wrapped at 1,000
    assert rapl.counter_delta(7, 7, 1_000) == 0


def test_rapl_unavailable_says_why(tmp_path: Path) -> None:
    with pytest.raises(rapl.RaplUnavailable, match="does not exist"):
        rapl.find_zones(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(rapl.RaplUnavailable, match="no RAPL package zone"):
        rapl.find_zones(tmp_path / "empty")
    root = fake_powercap(tmp_path / "pc", {0: 1})
    (root / "intel-rapl:0" / "energy_uj").write_text("n/a\n")
    with pytest.raises(rapl.RaplUnavailable, match="not an integer"):
        rapl.find_zones(root)


# --------------------------------------------------------------------------- CLI


def test_cli_summary_energy(capsys, tmp_path: Path) -> None:
    assert main(["summary", "tfc", "--energy", "--cache-kb", "32"]) == 0
    out = capsys.readouterr().out
    assert "Energy nJ" in out and "float twin" in out and "on-chip SRAM 32 KiB" in out
    assert main(["summary", "tfc", "--energy", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["energy_ratio"] == pytest.approx(
        record["float_twin_energy"]["totals"]["total_pj"] / record["energy"]["totals"]["total_pj"])
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"fp32_add": 1.0}))
    assert main(["summary", "tfc", "--energy-table", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "missing key(s)" in err[-1] and "'fp32_mult'" in err[-1] and "Traceback" not in "".join(err)


def test_cli_bench_energy_without_and_with_rapl(capsys, tmp_path: Path, monkeypatch) -> None:
    args = ["bench", "tfc", "--energy", "--repeats", "2", "--threads", "1"]
    monkeypatch.setattr(rapl, "POWERCAP", tmp_path / "absent")
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("energy")]
    assert lines[0].startswith("energy not measured: ") and "does not exist" in lines[0]
    assert lines[1].startswith("energy estimate") and "per inference" in lines[1]

    monkeypatch.setattr(rapl, "POWERCAP", fake_powercap(tmp_path / "powercap", {0: 0}))
    assert main([*args, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["energy"]
    assert record["measured"]["zones"] == ["package-0"]  # the fake counter stands still: 0 J
    assert record["measured"]["onebit_j_per_inference"] == 0 and record["measured"]["torch_j_per_inference"] == 0
    assert record["estimate"]["ratio"] > 1
