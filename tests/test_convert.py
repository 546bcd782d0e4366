"""onebit.convert: Larq/Keras .h5 files into onebit, checked against Larq's own outputs.

The fixtures under tests/fixtures/larq were made with Larq itself by scripts/make_larq_fixtures.py
(tensorflow-cpu 2.16.2, tf-keras 2.16.0, larq 0.14.0, larq-zoo 2.4.0): each .h5 beside Larq's
outputs on fixed inputs (.npz). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onebit.cli import main
from onebit.errors import MissingFileError, ModelFileError
from onebit.nn import QuantConv2d
from onebit import _core
from tests.conftest import kernel_settings, pack_pm, random_pm
from tests.exporting import check_export
from tests.test_bconv import ref_conv

h5py = pytest.importorskip("h5py")
from onebit.convert import KerasFile, build_graph, from_larq, load_converted  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "larq"
ALL = sorted(p.stem for p in FIXTURES.glob("*.h5"))
CONVERTIBLE = [n for n in ALL if n != "zoo_dorefanet"]
# The engine runs 1-bit input quantizers (sign) and 1- or 32-bit weights; this fixture holds
# others on purpose (ste_tern, dorefa, heaviside).
NOT_EXPORTABLE = {"quantizers"}
# paddings: exported by test_cli_convert_writes_checkpoint_and_engine_file.
EXPORTED = [n for n in CONVERTIBLE if n not in NOT_EXPORTABLE and n != "paddings"]


def _load(name: str) -> tuple[torch.nn.Module, torch.Tensor, np.ndarray]:
    data = np.load(FIXTURES / f"{name}.npz")
    logits = "logits" in data
    model = from_larq(FIXTURES / f"{name}.h5", logits=logits)
    x = torch.from_numpy(data["x"].astype(np.float32))
    if x.dim() == 4:
        x = x.permute(0, 3, 1, 2).contiguous()  # Keras NHWC -> onebit NCHW
    return model, x, data["logits"] if logits else data["y"]


def test_fixtures_cover_every_family_and_case():
    expected = {"quantizers", "paddings", "depthwise", "zoo_quicknet", "zoo_birealnet", "zoo_binary_densenet28", "zoo_resnet_e18", "zoo_binary_alexnet", "zoo_xnornet",
                "zoo_dorefanet", "zoo_real_to_binary"}
    assert expected <= set(ALL)


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_converted_model_equals_larq(name):
    model, x, expected = _load(name)
    with torch.no_grad():
        y = model(x).numpy()
    assert y.shape == expected.shape
    assert np.abs(y - expected).max() <= 1e-4 * np.abs(expected).max(), name


@pytest.mark.parametrize("name", EXPORTED)
def test_converted_model_exports_and_runs_on_the_engine(name, tmp_path):
    model, x, _ = _load(name)
    check_export(model, x, tmp_path / f"{name}.onebit")


# Larq-zoo files becoming onebit's registered zoo models: tests/test_convert_zoo.py.


ARCHITECTURES = json.loads(gzip.decompress((FIXTURES / "architectures.json.gz").read_bytes()))
# Larq-zoo families that onebit cannot represent, and the layer or quantizer the error names.
NOT_CONVERTIBLE = {"dorefanet": "magnitude_aware_sign_unclipped", "meliusnet22": r"\(Lambda\)"}


def _keras_count(model: torch.nn.Module) -> int:
    """Parameters as Keras counts them: BatchNorm's mean and variance, and γ/β only where the layer has them."""
    count = 0
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            count += 2 * m.num_features + sum(p.numel() for p in (m.weight, m.bias) if p.requires_grad)
        else:
            count += sum(p.numel() for p in m.parameters(recurse=False))
    return count


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_full_size_larq_zoo_architectures_convert_at_their_parameter_counts(name):
    """Each full-size Larq-zoo model (224 x 224, 1000 classes; the architecture of the file, no weights)."""
    keras = KerasFile(Path(f"{name}.h5"), ARCHITECTURES[name]["config"], None, "")
    if name in NOT_CONVERTIBLE:
        with pytest.raises(ModelFileError, match=NOT_CONVERTIBLE[name]):
            build_graph(keras)
        return
    assert _keras_count(build_graph(keras)) == ARCHITECTURES[name]["params"]


def test_unsupported_quantizer_is_named():
    with pytest.raises(ModelFileError, match="magnitude_aware_sign_unclipped"):
        from_larq(FIXTURES / "zoo_dorefanet.h5")


def _rewrite_config(src: Path, dst: Path, change) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        change(config)
        f.attrs["model_config"] = json.dumps(config)
    return dst


def test_unsupported_layer_is_named(tmp_path):
    def swap(config):
        layer = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Flatten")
        layer["class_name"] = "LSTM"

    path = _rewrite_config(FIXTURES / "paddings.h5", tmp_path / "m.h5", swap)
    with pytest.raises(ModelFileError, match=r"layer 'flatten.*' \(LSTM\) is not supported"):
        from_larq(path)


def test_keras_model_without_larq_is_refused(tmp_path):
    def strip(config):
        config["config"]["layers"] = [layer for layer in config["config"]["layers"]
                                      if layer["class_name"] == "InputLayer"]
        config["config"]["name"] = "plain"

    path = _rewrite_config(FIXTURES / "depthwise.h5", tmp_path / "plain.h5", strip)
    with pytest.raises(ModelFileError, match="without any Larq layer or quantizer: not a Larq model"):
        from_larq(path)


def test_keras3_archive_gets_how_to_resave(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(ModelFileError, match="Keras 3 '.keras' archive.*save\\('model.h5'\\)"):
        from_larq(path)


def test_weights_only_and_missing_and_non_hdf5_files(tmp_path):
    with h5py.File(tmp_path / "weights.h5", "w") as f:
        f.attrs["layer_names"] = []
    with pytest.raises(ModelFileError, match="no model architecture"):
        from_larq(tmp_path / "weights.h5")
    with pytest.raises(MissingFileError):
        from_larq(tmp_path / "absent.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ModelFileError, match="not an HDF5 file"):
        from_larq(tmp_path / "text.h5")


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0.0, 0.98))
def test_truncated_file_fails_in_one_line(fraction, tmp_path):
    data = (FIXTURES / "paddings.h5").read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFileError) as err:
        from_larq(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name,keras_name", [("paddings", "paddings")])
def test_cli_convert_writes_checkpoint_and_engine_file(name, keras_name, tmp_path, capsys):
    ckpt, engine = tmp_path / "c.safetensors", tmp_path / "c.onebit"
    assert main(["convert", str(FIXTURES / f"{name}.h5"), "-o", str(ckpt), "--onebit", str(engine)]) == 0
    assert f"converted {keras_name!r}" in capsys.readouterr().out
    model, meta = load_converted(ckpt)  # a graph's checkpoint, or a zoo model's (load_checkpoint)
    _, x, expected = _load(name)
    with torch.no_grad():
        y = model(x).numpy()
    assert np.abs(y - expected).max() <= 1e-4 * np.abs(expected).max()
    from onebit.runtime import load

    assert np.abs(load(engine)(x.numpy()) - y).max() <= 1e-4 * np.abs(y).max()


def test_cli_convert_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert main(["convert", str(tmp_path / "bad.h5"), "-o", str(tmp_path / "c.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("onebit convert: error:") and "\n" not in err


# ---- TensorFlow's "same" padding in QuantConv2d, and on the engine

@pytest.mark.parametrize("pad_value", [-1.0, 0.0, 1.0])
@pytest.mark.parametrize("size,stride,kernel", [(8, 2, 3), (9, 2, 3), (8, 2, 4), (10, 3, 3), (7, 1, 2)])
def test_same_padding_is_tensorflows(pad_value, size, stride, kernel):
    torch.manual_seed(0)
    conv = QuantConv2d(4, 5, kernel, stride=stride, padding="same", bias=False, pad_value=pad_value,
                       input_quantizer="ste_sign", weight_quantizer="ste_sign")
    x = torch.randn(2, 4, size, size)
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before, after = total // 2, total - total // 2
    xq = F.pad(torch.where(x >= 0, 1.0, -1.0), (before, after, before, after), value=pad_value)
    expected = F.conv2d(xq, torch.where(conv.weight >= 0, 1.0, -1.0), stride=stride)
    y = conv(x)
    assert y.shape[-2:] == (out, out)
    assert torch.equal(y, expected)


@pytest.mark.parametrize("pad_value", [-1.0, 0.0, 1.0])
def test_asymmetric_same_padding_runs_exactly_on_the_engine(pad_value, tmp_path):
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        QuantConv2d(3, 8, 3, stride=2, padding="same", bias=False, weight_quantizer="ste_sign"),  # float input
        torch.nn.BatchNorm2d(8),
        QuantConv2d(8, 64, 3, stride=2, padding="same", bias=False, pad_value=pad_value,
                    input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        torch.nn.BatchNorm2d(64),
        QuantConv2d(64, 16, 2, padding="same", bias=False, pad_value=pad_value,
                    input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        torch.nn.BatchNorm2d(16),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 4 * 4, 10),
    )
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-2, 2)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    check_export(model, torch.randn(16, 3, 16, 16), tmp_path / "same.onebit")


@kernel_settings(16)
@given(data=st.data())
def test_engine_convs_with_padding_end_equal_the_reference(data):
    """The kernels' ``padding_end`` (bottom/right padding differing from top/left) on binary and float inputs,
    every pad value, against a reference that pads the input first and convolves without padding."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    k, s = data.draw(st.sampled_from([(3, 2), (2, 1), (4, 2), (3, 3), (1, 2)]))
    h, w, c, o = (data.draw(st.integers(k, 9)), data.draw(st.integers(k, 9)), data.draw(st.sampled_from([5, 64, 70])),
                  data.draw(st.integers(1, 9)))
    top, left = data.draw(st.integers(0, k // 2)), data.draw(st.integers(0, k // 2))
    bottom, right = top + data.draw(st.integers(0, 1)), left + data.draw(st.integers(0, 1))
    pad_value = data.draw(st.sampled_from([-1, 0, 1]))
    x_pm, w_pm = random_pm(rng, 2, h, w, c), random_pm(rng, o, k, k, c)
    padded = np.pad(x_pm.astype(np.int64), ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value)
    want = ref_conv(padded, w_pm, 1, (s, s), (0, 0), (1, 1), pad_value)
    conv = _core.BinaryConv2d(pack_pm(w_pm), c, 1, (s, s), (top, left), (1, 1), pad_value, padding_end=(bottom, right))
    np.testing.assert_array_equal(conv.run(pack_pm(x_pm)), want)
    fconv = _core.FloatConv2d(w_pm.astype(np.float32), c, 1, (s, s), (top, left), (1, 1), float(pad_value),
                              padding_end=(bottom, right))
    np.testing.assert_array_equal(fconv.run(x_pm.astype(np.float32)), want)
