"""Tests of onebit.data: built-in data sets, folder layouts, IDX and CIFAR readers."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import random
import struct
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from onebit import data
from onebit.data import Dataset, list_datasets, load_dataset, read_idx, write_idx
from onebit.errors import ConfigError, DataError, MissingFileError

MNIST_T10K_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
IDX_DTYPES = ["u1", "i1", "<i2", ">i2", "<i4", ">i4", "<f4", ">f4", "<f8", ">f8"]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- helpers


def make_dataset(labels: list[int], num_classes: int = 3) -> Dataset:
    """A tiny data set whose x_train[i, 0, 0] is i, so rows can be traced."""
    n = len(labels)
    x = np.zeros((n, 1, 2), dtype=np.float32)
    x[:, 0, 0] = np.arange(n)
    return Dataset(
        name="tiny",
        x_train=x,
        y_train=np.asarray(labels, dtype=np.int64),
        x_test=np.zeros((2, 1, 2), dtype=np.float32),
        y_test=np.zeros(2, dtype=np.int64),
        in_shape=(1, 2),
        num_classes=num_classes,
        class_names=tuple(str(c) for c in range(num_classes)),
        source="test",
    )


def idx_bytes(array: np.ndarray, compress: bool = False) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("a.idx.gz" if compress else "a.idx")
        write_idx(path, array)
        return path.read_bytes()


def write_mnist_folder(
    folder: Path, n_train: int = 30, n_test: int = 12, shape: tuple[int, ...] = (5, 4),
    gz: bool = False, dotted: bool = False, seed: int = 0,
) -> dict[str, np.ndarray]:
    """Synthetic MNIST-layout files; train image i has pixel [0, 0] == i (to trace rows)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "train-labels": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "t10k-labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    arrays["train-images"].reshape(n_train, -1)[:, 0] = np.arange(n_train)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        kind = "idx3-ubyte" if "images" in stem else "idx1-ubyte"
        name = f"{stem}.{kind}" if dotted else f"{stem}-{kind}"
        write_idx(folder / (name + (".gz" if gz else "")), array)
    return arrays


class Py2StylePickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), as the real CIFAR files do."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes_as_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes_as_str


def dump_cifar_pickle(path: Path, obj: object, style: str) -> None:
    if style == "py2":
        buffer = io.BytesIO()
        Py2StylePickler(buffer, protocol=2).dump(obj)
        content = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    else:
        content = pickle.dumps(obj, protocol=2)
    path.write_bytes(content)


def write_cifar_folder(folder: Path, rows: int = 4, style: str = "py3", meta: bool = True) -> dict[str, dict]:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    batches = {}
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        batch = {
            b"batch_label": f"batch {i}".encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, rows)],
            b"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}_{r}.png".encode() for r in range(rows)],
        }
        dump_cifar_pickle(folder / name, batch, style)
        batches[name] = batch
    if meta:
        names = [b"plane", b"car", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
        dump_cifar_pickle(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072}, style)
    return batches


def sorted_rows(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1)
    return flat[np.lexsort(flat.T[::-1])]


# --------------------------------------------------------------------------- import hygiene


def test_import_does_not_pull_in_torch_or_sklearn() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import onebit.data\n"
        "assert onebit.data.list_datasets() == ['digits', 'espeak-digits', 'fsdd', 'mnist1d']\n"
        "assert 'sklearn' not in sys.modules and 'mnist1d' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_list_datasets() -> None:
    assert list_datasets() == ["digits", "espeak-digits", "fsdd", "mnist1d"]


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_digits_shapes_and_ranges(digits: Dataset) -> None:
    assert (len(digits.y_train), len(digits.y_test)) == (1437, 360)
    assert digits.x_train.shape == (1437, 1, 8, 8) and digits.x_test.shape == (360, 1, 8, 8)
    assert digits.in_shape == (1, 8, 8) and digits.num_classes == 10
    assert digits.class_names == tuple("0123456789")
    for x, y in ((digits.x_train, digits.y_train), (digits.x_test, digits.y_test)):
        assert x.dtype == np.float32 and x.flags.c_contiguous and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == 1.0
        assert set(np.unique(x * 16)) <= set(range(17))  # 0..16 scaled by 1/16, exactly
        assert set(y.tolist()) == set(range(10))


def test_digits_test_split_is_fixed_and_stratified(digits: Dataset) -> None:
    other = load_dataset("digits", seed=7)
    np.testing.assert_array_equal(other.x_test, digits.x_test)
    np.testing.assert_array_equal(other.y_test, digits.y_test)
    # the seed only orders the training rows
    assert not np.array_equal(other.y_train, digits.y_train)
    np.testing.assert_array_equal(sorted_rows(other.x_train), sorted_rows(digits.x_train))
    again = load_dataset("digits", seed=7)
    np.testing.assert_array_equal(again.x_train, other.x_train)
    total = np.bincount(np.concatenate([digits.y_train, digits.y_test]), minlength=10)
    test_counts = np.bincount(digits.y_test, minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * total) < 1)


# --------------------------------------------------------------------------- split_validation


def test_split_validation_is_stratified_and_deterministic(digits: Dataset) -> None:
    rest, (x_val, y_val) = digits.split_validation(0.1, seed=3)
    assert len(y_val) == 144 and len(rest.y_train) == 1437 - 144
    assert x_val.shape == (144, 1, 8, 8) and x_val.dtype == np.float32 and y_val.dtype == np.int64
    counts = np.bincount(digits.y_train, minlength=10)
    assert np.all(np.abs(np.bincount(y_val, minlength=10) - 0.1 * counts) < 1)
    np.testing.assert_array_equal(rest.x_test, digits.x_test)
    np.testing.assert_array_equal(
        sorted_rows(np.concatenate([rest.x_train, x_val])), sorted_rows(digits.x_train)
    )
    _, (x_same, _) = digits.split_validation(0.1, seed=3)
    _, (x_other, _) = digits.split_validation(0.1, seed=4)
    np.testing.assert_array_equal(x_same, x_val)
    assert not np.array_equal(x_other, x_val)


@given(
    labels=st.lists(st.integers(0, 2), min_size=2, max_size=60),
    fraction=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**32),
)
@FAST
def test_split_validation_partitions_rows_in_class_proportion(labels: list[int], fraction: float, seed: int) -> None:
    dataset = make_dataset(labels)
    n = len(labels)
    n_val = int(np.ceil(fraction * n - 1e-9))
    if n_val >= n:
        with pytest.raises(DataError, match="non-empty"):
            dataset.split_validation(fraction, seed)
        return
    rest, (x_val, y_val) = dataset.split_validation(fraction, seed)
    kept, held = rest.x_train[:, 0, 0].astype(int), x_val[:, 0, 0].astype(int)
    assert len(held) == n_val
    assert sorted([*kept, *held]) == list(range(n))
    y = np.asarray(labels)
    np.testing.assert_array_equal(rest.y_train, y[kept])
    np.testing.assert_array_equal(y_val, y[held])
    assert np.all(np.abs(np.bincount(y_val, minlength=3) - n_val * np.bincount(y, minlength=3) / n) < 1)


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, 1.5, float("nan"), float("inf"), "0.1", None, True])
def test_split_validation_rejects_bad_fractions(fraction: object) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        make_dataset([0, 1, 2, 0, 1, 2]).split_validation(fraction)  # type: ignore[arg-type]


def test_split_validation_rejects_empty_parts_and_bad_seeds() -> None:
    with pytest.raises(DataError, match="non-empty"):
        make_dataset([0, 1]).split_validation(0.9)
    with pytest.raises(ConfigError, match="seed"):
        make_dataset([0, 1, 2]).split_validation(0.5, seed=-1)


# --------------------------------------------------------------------------- Dataset checks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x_train": np.zeros((3, 1, 2), dtype=np.float64)}, "float32"),
        ({"y_train": np.zeros(3, dtype=np.int32)}, "int64"),
        ({"x_train": np.zeros((3, 2, 1), dtype=np.float32)}, "shape"),
        ({"x_train": np.zeros((3, 1, 4), dtype=np.float32)[:, :, ::2]}, "contiguous"),
        ({"y_train": np.array([0, 1, 3])}, "outside"),
        ({"y_train": np.array([0, -1, 2])}, "outside"),
        ({"y_train": np.array([0, 1])}, "rows"),
        ({"x_test": np.zeros((0, 1, 2), dtype=np.float32), "y_test": np.zeros(0, dtype=np.int64)}, "empty"),
        ({"x_train": np.full((3, 1, 2), np.nan, dtype=np.float32)}, "NaN"),
        ({"class_names": ("a", "b")}, "class_names"),
        ({"num_classes": 1, "class_names": ("a",)}, "num_classes"),
        ({"in_shape": (1, 0)}, "in_shape"),
        ({"in_shape": 2}, "in_shape"),
        ({"in_shape": [1, 2], "class_names": "abc"}, "class_names"),
        ({"name": ""}, "name"),
    ],
)
def test_dataset_validation_names_the_problem(change: dict, message: str) -> None:
    fields = dict(
        name="tiny", x_train=np.zeros((3, 1, 2), dtype=np.float32), y_train=np.array([0, 1, 2]),
        x_test=np.zeros((1, 1, 2), dtype=np.float32), y_test=np.array([0]), in_shape=(1, 2),
        num_classes=3, class_names=("a", "b", "c"), source="test",
    )
    fields.update(change)
    with pytest.raises(DataError, match=message):
        Dataset(**fields)


def test_dataset_repr_is_short(digits: Dataset) -> None:
    assert repr(digits) == "Dataset(name='digits', train=1437, test=360, in_shape=(1, 8, 8), num_classes=10)"


# --------------------------------------------------------------------------- mnist1d


def test_mnist1d_generates_without_touching_global_rngs() -> None:
    data._generate_mnist1d.cache_clear()  # generate here, once, to see its effect on the RNGs
    np.random.seed(1234)
    random.seed(1234)
    numpy_before, python_before = np.random.get_state(), random.getstate()
    first = load_dataset("mnist1d")
    numpy_after, python_after = np.random.get_state(), random.getstate()
    assert python_after == python_before
    assert numpy_after[0] == numpy_before[0] and numpy_after[2:] == numpy_before[2:]
    np.testing.assert_array_equal(numpy_after[1], numpy_before[1])

    assert first.x_train.shape == (4000, 1, 40) and first.x_test.shape == (1000, 1, 40)
    assert first.in_shape == (1, 40) and first.num_classes == 10
    assert first.x_train.dtype == np.float32 and first.y_train.dtype == np.int64
    assert set(first.y_test.tolist()) == set(range(10))
    # cached and handed out as copies: mutating one load cannot change the next
    first.x_test[:] = 0
    second = load_dataset("mnist1d")
    assert second.x_test.any() and second.x_test.flags.writeable
    assert data._generate_mnist1d.cache_info().hits >= 1


# --------------------------------------------------------------------------- IDX


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the hypothesis tests (a function-scoped tmp_path is not reset per example)."""
    return tmp_path_factory.mktemp("idx")


@given(
    array=st.sampled_from(IDX_DTYPES).flatmap(
        lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    ),
    compress=st.booleans(),
)
@FAST
def test_idx_round_trip(scratch: Path, array: np.ndarray, compress: bool) -> None:
    path = scratch / ("round.idx.gz" if compress else "round.idx")
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.shape == array.shape and back.dtype == array.dtype.newbyteorder("=")
    assert back.dtype.isnative and back.flags.writeable
    assert back.tobytes() == array.astype(back.dtype).tobytes()  # bit-exact, NaN payloads included


def test_idx_header_is_big_endian_and_gzip_is_deterministic(tmp_path: Path) -> None:
    array = np.arange(6, dtype="<i2").reshape(2, 3)
    write_idx(tmp_path / "a", array)
    assert (tmp_path / "a").read_bytes() == (
        b"\x00\x00\x0b\x02" + struct.pack(">II", 2, 3) + array.astype(">i2").tobytes()
    )
    write_idx(tmp_path / "a.gz", array)
    first = (tmp_path / "a.gz").read_bytes()
    write_idx(tmp_path / "a.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == first
    assert gzip.decompress(first) == (tmp_path / "a").read_bytes()


@pytest.mark.parametrize(
    "array", [np.zeros(3, dtype=np.int64), np.zeros(3, dtype=bool), np.zeros(3, dtype=np.float16), np.array(1, np.uint8)]
)
def test_write_idx_rejects_what_idx_cannot_hold(tmp_path: Path, array: np.ndarray) -> None:
    with pytest.raises(DataError, match="IDX"):
        write_idx(tmp_path / "a.idx", array)


def test_write_idx_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        write_idx(tmp_path / "nowhere" / "a.idx", np.zeros(2, np.uint8))


SMALL_IDX = [
    idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4)),
    idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), compress=True),
    idx_bytes(np.linspace(-1, 1, 10, dtype=">f4")),
    idx_bytes(np.arange(12, dtype=np.int32).reshape(3, 4), compress=True),
]


@given(
    base=st.sampled_from(SMALL_IDX),
    cut=st.one_of(st.none(), st.integers(0, 120)),
    edits=st.lists(st.tuples(st.integers(0, 119), st.integers(0, 255)), max_size=4),
    tail=st.binary(max_size=6),
)
@settings(max_examples=300, deadline=None)
def test_corrupt_idx_raises_only_data_error(
    scratch: Path, base: bytes, cut: int | None, edits: list, tail: bytes
) -> None:
    content = bytearray(base if cut is None else base[:cut])
    for position, value in edits:
        if position < len(content):
            content[position] = value
    content += tail
    path = scratch / "mutated.idx"
    path.write_bytes(bytes(content))
    try:
        result = read_idx(path)
    except DataError:
        return
    assert isinstance(result, np.ndarray)  # a mutation may leave a valid file


@given(content=st.binary(max_size=64))
@settings(max_examples=200, deadline=None)
def test_random_bytes_raise_only_data_error(scratch: Path, content: bytes) -> None:
    path = scratch / "random.idx"
    path.write_bytes(content)
    try:
        read_idx(path)
    except DataError:
        pass


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ((2**32 - 1, 2**32 - 1, 2**32 - 1), "limit"),  # 2**96 bytes: over the size limit
        ((1000, 1000, 1000), "declare"),  # 1 GB: under the limit, but the file holds 10 bytes
    ],
)
def test_gigantic_declared_dims_are_rejected_without_allocating(
    tmp_path: Path, compress: bool, dims: tuple[int, ...], message: str
) -> None:
    content = b"\x00\x00\x08\x03" + struct.pack(">III", *dims) + bytes(10)
    path = tmp_path / "huge.idx"
    path.write_bytes(gzip.compress(content) if compress else content)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=message):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_idx_header_errors_are_specific(tmp_path: Path) -> None:
    cases = {
        b"\x00\x00": "too short",
        b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"x": "not an IDX file",
        b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"x": "type code 0x07",
        b"\x00\x00\x08\x00": "0 dimensions",
        b"\x00\x00\x08\x40" + bytes(4 * 64): "64 dimensions",
        b"\x00\x00\x08\x02" + struct.pack(">I", 1): "truncated IDX header",
        b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"ab": "declare 3 payload bytes but the file holds 2",
        b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"abcd": "declare 3 payload bytes but the file holds 4",
    }
    for i, (content, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.idx"
        path.write_bytes(content)
        with pytest.raises(DataError, match=message) as info:
            read_idx(path)
        assert str(path) in str(info.value)
    # the same checks behind gzip, where the length is only known by decompressing
    (tmp_path / "long.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"abcd"))
    with pytest.raises(DataError, match="holds more"):
        read_idx(tmp_path / "long.gz")


def test_idx_gzip_errors_name_the_file(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    cases = {"truncated.gz": good[:-12], "crc.gz": good[:-8] + bytes(8), "garbage.gz": b"\x1f\x8b" + bytes(30)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=name):
            read_idx(tmp_path / name)


def test_read_idx_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="no such file"):
        read_idx(tmp_path / "absent.idx")
    with pytest.raises(DataError, match="folder"):
        read_idx(tmp_path)


# --------------------------------------------------------------------------- MNIST layout


@pytest.mark.parametrize(("gz", "dotted"), [(False, False), (True, False), (False, True), (True, True)])
def test_mnist_layout_folder_loads(tmp_path: Path, gz: bool, dotted: bool) -> None:
    arrays = write_mnist_folder(tmp_path / "fashion", gz=gz, dotted=dotted)
    dataset = load_dataset(tmp_path / "fashion", seed=5)
    assert dataset.name == "fashion" and dataset.in_shape == (1, 5, 4) and dataset.num_classes == 10
    assert dataset.x_train.shape == (30, 1, 5, 4) and dataset.x_test.shape == (12, 1, 5, 4)
    np.testing.assert_array_equal(dataset.x_test[:, 0], arrays["t10k-images"] / np.float32(255))
    np.testing.assert_array_equal(dataset.y_test, arrays["t10k-labels"])
    order = np.rint(dataset.x_train[:, 0, 0, 0] * 255).astype(int)  # pixel [0, 0] is the row index
    assert sorted(order) == list(range(30)) and list(order) != list(range(30))
    np.testing.assert_array_equal(dataset.x_train[:, 0], arrays["train-images"][order] / np.float32(255))
    np.testing.assert_array_equal(dataset.y_train, arrays["train-labels"][order])
    same = load_dataset(str(tmp_path / "fashion"), seed=5)
    np.testing.assert_array_equal(same.x_train, dataset.x_train)


def test_mnist_layout_more_labels_and_channels(tmp_path: Path) -> None:
    folder = tmp_path / "wide"
    write_mnist_folder(folder, shape=(3, 4, 4))
    write_idx(folder / "train-labels-idx1-ubyte", (np.arange(30) % 13).astype(np.uint8))
    dataset = load_dataset(folder)
    assert dataset.in_shape == (3, 4, 4) and dataset.num_classes == 13 and len(dataset.class_names) == 13


def test_mnist_layout_label_count_mismatch(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_mnist_folder(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(11, dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: holds 11 labels but t10k-images-idx3-ubyte holds 12"):
        load_dataset(folder)


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("t10k-images-idx3-ubyte", np.zeros((12, 4, 5), np.uint8), "train images are"),
        ("t10k-images-idx3-ubyte", np.zeros((12, 5, 4), np.float32), "uint8 images"),
        ("t10k-images-idx3-ubyte", np.zeros((12, 20), np.uint8), "uint8 images"),
        ("t10k-labels-idx1-ubyte", np.zeros((12, 1), np.uint8), "1-D"),
        ("t10k-labels-idx1-ubyte", np.full(12, -1, np.int8), "negative"),
    ],
)
def test_mnist_layout_bad_contents(tmp_path: Path, name: str, array: np.ndarray, message: str) -> None:
    folder = tmp_path / "m"
    write_mnist_folder(folder)
    write_idx(folder / name, array)
    with pytest.raises(DataError, match=message):
        load_dataset(folder)


def test_missing_and_unknown_data_sets(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="no such data set folder"):
        load_dataset(tmp_path / "absent")
    with pytest.raises(MissingFileError):
        load_dataset(str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match=r"unknown data set 'mnist'.*digits, espeak-digits, fsdd, mnist1d"):
        load_dataset("mnist")
    with pytest.raises(ConfigError, match="unknown data set"):
        load_dataset("")
    with pytest.raises(ConfigError):
        load_dataset(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="seed"):
        load_dataset("digits", seed=-1)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(DataError, match="is a file"):
        load_dataset(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no data set found.*train-images-idx3-ubyte.*data_batch_1"):
        load_dataset(tmp_path / "empty")


def test_folder_with_only_test_files_asks_for_a_split(tmp_path: Path) -> None:
    arrays = write_mnist_folder(tmp_path / "m")
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / "m" / name).unlink()
    with pytest.raises(DataError, match=r"holds only the test part \(12 images\).*--split 9:3.*split=\(9, 3\)"):
        load_dataset(tmp_path / "m")
    dataset = load_dataset(tmp_path / "m", split="8:4", seed=3)
    assert (len(dataset.y_train), len(dataset.y_test)) == (8, 4)
    # file order: the first 8 rows train (shuffled by the seed), the next 4 test (in order)
    np.testing.assert_array_equal(dataset.x_test[:, 0], arrays["t10k-images"][8:] / np.float32(255))
    np.testing.assert_array_equal(np.sort(dataset.y_train), np.sort(arrays["t10k-labels"][:8]))
    assert "split 8:4 of 12 test rows in file order" in dataset.source
    with pytest.raises(DataError, match=r"split 10:4 needs 14 rows, it holds 12"):
        load_dataset(tmp_path / "m", split=(10, 4))


def test_folder_with_half_a_part_names_the_missing_file(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "m")
    (tmp_path / "m" / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="incomplete MNIST-layout folder, missing train-labels-idx1-ubyte"):
        load_dataset(tmp_path / "m")


def test_split_pools_train_then_test_rows(tmp_path: Path, digits: Dataset) -> None:
    arrays = write_mnist_folder(tmp_path / "m")
    dataset = load_dataset(tmp_path / "m", split=(35, 7))
    pooled = np.concatenate([arrays["train-images"], arrays["t10k-images"]])
    np.testing.assert_array_equal(dataset.x_test[:, 0], pooled[35:] / np.float32(255))
    again = load_dataset("digits", split=(1000, 797))
    assert (len(again.y_train), len(again.y_test)) == (1000, 797)
    np.testing.assert_array_equal(again.x_test[-360:], digits.x_test)  # digits' own test rows come last


@pytest.mark.parametrize("split", ["8000", "0:5", "5:0", "a:b", "1:2:3", (1,), (1.5, 2), True])
def test_bad_splits_are_refused(split: object) -> None:
    with pytest.raises(ConfigError, match="split must be TRAIN:TEST"):
        load_dataset("digits", split=split)  # type: ignore[arg-type]


def test_check_dataset_spec_reads_no_data(tmp_path: Path) -> None:
    from onebit.data import check_dataset_spec

    assert check_dataset_spec("digits") == "digits"
    write_mnist_folder(tmp_path / "fashion")
    assert check_dataset_spec(tmp_path / "fashion") == "fashion"
    with pytest.raises(ConfigError, match=r"unknown data set 'mnist1' \(did you mean 'mnist1d'\?\)"):
        check_dataset_spec("mnist1")


# --------------------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("style", ["py3", "py2"])
def test_cifar_folder_loads(tmp_path: Path, style: str) -> None:
    batches = write_cifar_folder(tmp_path / "cifar-10-batches-py", style=style)
    dataset = load_dataset(tmp_path / "cifar-10-batches-py", seed=0)
    assert dataset.name == "cifar10" and dataset.in_shape == (3, 32, 32) and dataset.num_classes == 10
    assert dataset.class_names[:2] == ("plane", "car")
    assert dataset.x_train.shape == (20, 3, 32, 32) and dataset.x_test.shape == (4, 3, 32, 32)
    test = batches["test_batch"]
    np.testing.assert_array_equal(dataset.x_test, test[b"data"].reshape(4, 3, 32, 32) / np.float32(255))
    np.testing.assert_array_equal(dataset.y_test, test[b"labels"])
    train_x = np.concatenate([batches[f"data_batch_{k}"][b"data"] for k in range(1, 6)])
    np.testing.assert_array_equal(
        sorted_rows(dataset.x_train), sorted_rows(train_x.reshape(20, 3, 32, 32) / np.float32(255))
    )
    from_parent = load_dataset(tmp_path, seed=0)  # the folder that holds cifar-10-batches-py
    np.testing.assert_array_equal(from_parent.x_train, dataset.x_train)


def test_cifar_without_meta_uses_cifar10_names(tmp_path: Path) -> None:
    write_cifar_folder(tmp_path / "cifar-10-batches-py", meta=False)
    assert load_dataset(tmp_path / "cifar-10-batches-py").class_names[0] == "airplane"


class RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


class RunsEval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("payload", [RunsShell, RunsEval])
@pytest.mark.parametrize("victim", ["data_batch_1", "test_batch", "batches.meta"])
def test_malicious_cifar_pickle_is_refused(tmp_path: Path, payload: type, victim: str, protocol: int) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder)
    marker = tmp_path / "pwned"
    (folder / victim).write_bytes(pickle.dumps({b"data": payload(marker), b"labels": [0]}, protocol=protocol))
    with pytest.raises(DataError, match=f"{victim}: refusing to load .* global (posix|nt|os|builtins|__builtin__)"):
        load_dataset(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2]}, "3 labels for 4 images"),
        ({b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4}, r"\(N, 3072\)"),
        ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, "uint8"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]}, "0..9"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, "x"]}, "ints"),
        ({b"labels": [0] * 4}, "b'data'"),
        ([1, 2, 3], "dict"),
    ],
)
def test_bad_cifar_batches(tmp_path: Path, batch: object, message: str) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder)
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=message):
        load_dataset(folder)


def test_truncated_or_incomplete_cifar(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder)
    content = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match="data_batch_2: not a readable CIFAR batch"):
        load_dataset(folder)
    (folder / "data_batch_5").unlink()
    with pytest.raises(DataError, match="missing data_batch_5"):
        load_dataset(folder)


# --------------------------------------------------------------------------- real MNIST test set


def test_real_mnist_t10k(mnist_t10k_dir: Path) -> None:
    images = read_idx(mnist_t10k_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_t10k_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == MNIST_T10K_CLASS_COUNTS
    with pytest.raises(DataError, match=r"holds only the test part \(10,000 images\).*--split 8000:2000"):
        load_dataset(mnist_t10k_dir)
    dataset = load_dataset(mnist_t10k_dir, split=(8000, 2000))
    assert dataset.x_train.shape == (8000, 1, 28, 28) and dataset.x_test.shape == (2000, 1, 28, 28)
    np.testing.assert_array_equal(dataset.y_test, labels[8000:])


@pytest.mark.parametrize("stem", ["train", "t10k"])
def test_mnist_layout_with_an_empty_part_is_refused(tmp_path: Path, stem: str) -> None:
    """Issue 5: an empty training or test part is a DataError naming its file, never an index error later."""
    folder = tmp_path / "m"
    write_mnist_folder(folder)
    write_idx(folder / f"{stem}-images-idx3-ubyte", np.zeros((0, 5, 4), np.uint8))
    write_idx(folder / f"{stem}-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(DataError, match=rf"{stem}-(images|labels)-idx.-ubyte: holds no"):
        load_dataset(folder)


def test_subset_classes_relabels_in_the_order_given(digits: Dataset) -> None:
    five = digits.subset_classes([9, 5])
    assert five.num_classes == 2 and five.class_names == ("9", "5") and five.name == "digits[9,5]"
    np.testing.assert_array_equal(five.x_train, digits.x_train[np.isin(digits.y_train, [5, 9])])
    np.testing.assert_array_equal(five.y_train, np.where(digits.y_train[np.isin(digits.y_train, [5, 9])] == 9, 0, 1))
    with pytest.raises(ConfigError, match="at least two distinct class indices"):
        digits.subset_classes([3, 3])
    with pytest.raises(ConfigError, match=r"classes 0..9; \[12\] are not among them"):
        digits.subset_classes([1, 12])


def test_few_shot_draws_k_rows_per_class(digits: Dataset) -> None:
    few = digits.few_shot(4, seed=2)
    assert np.bincount(few.y_train).tolist() == [4] * 10 and len(few.y_test) == len(digits.y_test)
    np.testing.assert_array_equal(few.x_train, digits.few_shot(4, seed=2).x_train)  # the seed fixes the draw
    assert not np.array_equal(few.x_train, digits.few_shot(4, seed=3).x_train)
    with pytest.raises(DataError, match="fewer than 1000 shots"):
        digits.few_shot(1000)
    with pytest.raises(ConfigError, match="shots must be a positive integer"):
        digits.few_shot(0)
