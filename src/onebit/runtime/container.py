"""The ``.onebit`` container: a safetensors file read and written with numpy alone.

Layout (the safetensors format, so standard tools can open it): an 8-byte little-endian
header length ``n``, ``n`` bytes of JSON ``{"__metadata__": {str: str}, name: {"dtype",
"shape", "data_offsets": [begin, end]}, ...}``, then the tensor bytes; offsets count
from the end of the header. The reader checks every field against the file before it
touches tensor bytes, and refuses what it cannot account for (overlapping or
out-of-range tensors, sizes that disagree with shapes, headers past ``max_header_bytes``,
files past ``max_file_bytes``). Every rejection is a :class:`ModelFileError`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from onebit.atomic import atomic_write
from onebit.errors import ModelFileError

__all__ = ["DTYPES", "MAX_FILE_BYTES", "read_container", "write_container"]

DTYPES: dict[str, np.dtype] = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}
_CODES = {dtype: code for code, dtype in DTYPES.items()}

MAX_HEADER_BYTES = 16 * 2**20
# Files larger than this are refused before anything is allocated (override per call).
MAX_FILE_BYTES = 4 * 2**30


def write_container(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> Path:
    """Write ``tensors`` and string ``metadata`` to ``path`` atomically (temporary file, rename)."""
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    offset = 0
    arrays = []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        code = _CODES.get(array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype)
        if code is None:
            raise ModelFileError(f"tensor {name!r}: dtype {array.dtype} cannot be stored; valid: {sorted(_CODES)}")
        array = array.astype(DTYPES[code], copy=False)
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
        arrays.append(array)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(len(blob).to_bytes(8, "little"))
            f.write(blob)
            for array in arrays:
                f.write(array.tobytes())

    path = atomic_write(path, write)
    return path


def read_container(
    path: str | os.PathLike, *, max_file_bytes: int = MAX_FILE_BYTES
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read and validate a container; returns (read-only tensors by name, metadata)."""
    path = Path(path)
    if not path.is_file():
        from onebit.errors import MissingFileError

        raise MissingFileError(f"model file not found: {path}")
    size = path.stat().st_size
    if size > max_file_bytes:
        raise ModelFileError(f"{path}: {size} bytes is over the limit of {max_file_bytes} (max_file_bytes)")
    if size < 8:
        raise ModelFileError(f"{path}: {size} bytes is too short for a .onebit file (truncated?)")
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    if n > MAX_HEADER_BYTES or 8 + n > size:
        raise ModelFileError(f"{path}: header length {n} does not fit the {size}-byte file (truncated or not a .onebit file)")
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: header must be a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ModelFileError(f"{path}: __metadata__ must map strings to strings")
    data = memoryview(raw)[8 + n :]
    tensors: dict[str, np.ndarray] = {}
    spans = []
    for name, entry in header.items():
        tensors[name] = _tensor(path, name, entry, data)
        spans.append((entry["data_offsets"][0], entry["data_offsets"][1], name))
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise ModelFileError(f"{path}: tensors {first!r} and {second!r} overlap")
    return tensors, metadata


def _tensor(path: Path, name: str, entry: object, data: memoryview) -> np.ndarray:
    where = f"{path}: tensor {name!r}"
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise ModelFileError(f"{where}: entry must have exactly dtype, shape and data_offsets")
    dtype = DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        raise ModelFileError(f"{where}: dtype {entry['dtype']!r} is not one of {sorted(DTYPES)}")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(type(d) is int and 0 <= d < 2**40 for d in shape):
        raise ModelFileError(f"{where}: shape {shape!r} must be a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise ModelFileError(f"{where}: data_offsets {offsets!r} must be two integers")
    begin, end = offsets
    nbytes = math.prod(shape) * dtype.itemsize
    if not 0 <= begin <= end <= len(data):
        raise ModelFileError(f"{where}: data_offsets {offsets} lie outside the {len(data)} data bytes (truncated?)")
    if end - begin != nbytes:
        raise ModelFileError(f"{where}: {end - begin} bytes stored, shape {shape} of {entry['dtype']} needs {nbytes}")
    array = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape)
    return array
