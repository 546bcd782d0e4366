"""What a federated client uploads, and how the server checks and aggregates it (numpy only).

Two upload modes for a model state ``{name: float32 array}``:

- ``"float32"``: the client's trained state itself, 32 bits per value. The server takes the
  example-weighted mean, FedAvg: ``G ← Σ_i (n_i/n)·L_i`` (McMahan et al. 2017, arXiv:1602.05629).
- ``"sign"``: 1 bit per value. The client sends the signs of its update ``Δ_i = L_i − G``,
  every tensor's flattened in sorted name order and packed 8 to a byte into ONE ``uint8`` array
  (:data:`SIGNS_KEY`; bit 1 = −1, sign(0) = +1, as everywhere in onebit), and one float32 scale
  per tensor, ``α_i = mean|Δ_i|`` (:data:`SCALES_KEY`). Two arrays rather than one per tensor:
  each array costs Flower ~300 bytes of framing, which at 1 bit per weight is not negligible.
  With error feedback (Karimireddy et al. 2019, arXiv:1901.09847) the client adds the residual
  it kept from the previous round, ``Δ_i ← Δ_i + e_i``, and keeps ``e_i = Δ_i − α_i·sign(Δ_i)``. The server applies one of:

  - ``"vote"`` (signSGD with majority vote, Bernstein et al. 2018, arXiv:1810.05291):
    ``G ← G + ᾱ·sign(Σ_i n_i·sign(Δ_i))`` with ``ᾱ = Σ_i (n_i/n)·α_i``; a tied vote moves nothing;
  - ``"mean"`` (averaging the scaled ±1): ``G ← G + Σ_i (n_i/n)·α_i·sign(Δ_i)``.

Either way the server clips binary latent weights back to [−1, 1] (``clip`` names them), as the
clients' optimizers do, and keeps BatchNorm variances positive.

:func:`check_upload` is what stands between a client and the average: an upload with missing or
extra tensors, a wrong shape or dtype, or a NaN/infinite value is rejected with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from onebit.errors import ConfigError, unknown_choice

__all__ = ["SCALES_KEY", "SIGNS_KEY", "SIGN_RULES", "UPLOADS", "aggregate", "check_upload", "decode_signs",
           "encode_update", "pack_signs", "upload_payload_bytes"]

UPLOADS = ("float32", "sign")
SIGN_RULES = ("vote", "mean")
SIGNS_KEY = "_signs"  # a sign upload's packed bits: every tensor's Δ, flattened, in sorted key order
SCALES_KEY = "_scales"  # a sign upload's per-tensor scales, float32, in sorted key order

State = Mapping[str, np.ndarray]


def pack_signs(values: np.ndarray) -> np.ndarray:
    """The signs of ``values`` (flattened), 8 per byte, least significant bit first; bit 1 = −1."""
    return np.packbits(np.asarray(values).reshape(-1) < 0, bitorder="little")


def decode_signs(bits: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """±1 float32 array of ``shape`` from :func:`pack_signs`'s bytes."""
    n = math.prod(shape)
    flat = np.unpackbits(np.asarray(bits, dtype=np.uint8), count=n, bitorder="little")
    return np.where(flat.astype(bool), np.float32(-1), np.float32(1)).reshape(tuple(shape))


def encode_update(local: State, global_state: State, mode: str,
                  residual: State | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """The upload of a client whose state went from ``global_state`` to ``local``, and its new residual.

    ``mode="float32"``: the local state (no residual). ``mode="sign"``: packed signs of
    ``Δ = local − global (+ residual)`` per tensor and :data:`SCALES_KEY` (one ``mean|Δ|`` per
    tensor, sorted key order); the new residual ``Δ − α·sign(Δ)`` is returned when ``residual``
    is given (error feedback), else None.
    """
    if mode not in UPLOADS:
        raise unknown_choice("upload mode", mode, UPLOADS)
    keys = sorted(global_state)
    if sorted(local) != keys:
        raise ConfigError(f"the local state has tensors {sorted(local)}, the global one {keys}")
    if mode == "float32":
        return {k: np.ascontiguousarray(local[k], dtype=np.float32) for k in keys}, None
    scales = np.zeros(len(keys), np.float32)
    deltas: list[np.ndarray] = []
    new_residual: dict[str, np.ndarray] = {}
    for i, k in enumerate(keys):
        delta = np.asarray(local[k], np.float64) - np.asarray(global_state[k], np.float64)
        if residual is not None:
            delta = delta + np.asarray(residual[k], np.float64)
        scales[i] = np.float32(np.abs(delta).mean()) if delta.size else np.float32(0)
        deltas.append(delta.reshape(-1))
        if residual is not None:
            signs = np.where(delta < 0, -1.0, 1.0)
            new_residual[k] = (delta - float(scales[i]) * signs).astype(np.float32)
    out = {SIGNS_KEY: pack_signs(np.concatenate(deltas) if deltas else np.zeros(0)), SCALES_KEY: scales}
    return out, (new_residual if residual is not None else None)


def check_upload(arrays: Mapping[str, np.ndarray], spec: Mapping[str, Sequence[int]], mode: str) -> str | None:
    """None if ``arrays`` is a well-formed ``mode`` upload of tensors shaped as ``spec``; else why not."""
    expected = set(spec) if mode == "float32" else {SIGNS_KEY, SCALES_KEY}
    got = set(arrays)
    if got != expected:
        missing, extra = sorted(expected - got), sorted(got - expected)
        return "tensors " + "; ".join(p for p in (f"missing {missing}" if missing else "",
                                                  f"unexpected {extra}" if extra else "") if p)
    if mode == "float32":
        for k, shape in spec.items():
            a = np.asarray(arrays[k])
            if a.dtype != np.float32 or tuple(a.shape) != tuple(shape):
                return f"tensor {k!r} is {a.dtype} {tuple(a.shape)}, expected float32 {tuple(shape)}"
            if not np.isfinite(a).all():
                return f"tensor {k!r} holds NaN or infinite values"
        return None
    n = (sum(math.prod(shape) for shape in spec.values()) + 7) // 8
    bits = np.asarray(arrays[SIGNS_KEY])
    if bits.dtype != np.uint8 or tuple(bits.shape) != (n,):
        return f"signs are {bits.dtype} {tuple(bits.shape)}, expected {n} packed bytes (uint8)"
    s = np.asarray(arrays[SCALES_KEY])
    if s.dtype != np.float32 or s.shape != (len(spec),):
        return f"scales are {s.dtype} {tuple(s.shape)}, expected float32 ({len(spec)},)"
    if not np.isfinite(s).all() or (s < 0).any():
        return "scales hold NaN, infinite or negative values"
    return None


def _split_signs(bits: np.ndarray, shapes: Sequence[Sequence[int]]) -> list[np.ndarray]:
    sizes = [math.prod(s) for s in shapes]
    flat = decode_signs(bits, (sum(sizes),))
    return [part.reshape(tuple(s)) for part, s in zip(np.split(flat, np.cumsum(sizes)[:-1]), shapes, strict=True)]


def aggregate(global_state: State, uploads: Sequence[State], weights: Sequence[float], mode: str,
              rule: str = "vote", clip: Iterable[str] = (), positive: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """The new global state from checked uploads (in a fixed order: the sum's order is the caller's).

    ``weights``: each client's example count; ``clip``: tensors clipped to [−1, 1] (binary latent
    weights); ``positive``: tensors kept ≥ 1e-5 (BatchNorm running variances).
    """
    if mode not in UPLOADS:
        raise unknown_choice("upload mode", mode, UPLOADS)
    if rule not in SIGN_RULES:
        raise unknown_choice("sign aggregation rule", rule, SIGN_RULES)
    if not uploads or len(uploads) != len(weights):
        raise ConfigError(f"aggregate needs one weight per upload, got {len(uploads)} uploads, {len(weights)} weights")
    w = np.asarray(weights, np.float64)
    if not (np.isfinite(w).all() and (w > 0).all()):
        raise ConfigError(f"weights must be positive numbers, got {list(weights)}")
    w = w / w.sum()
    keys = sorted(global_state)
    shapes = [np.shape(global_state[k]) for k in keys]
    signs = [] if mode == "float32" else [_split_signs(u[SIGNS_KEY], shapes) for u in uploads]
    new: dict[str, np.ndarray] = {}
    for i, k in enumerate(keys):
        if mode == "float32":
            value = sum(wi * np.asarray(u[k], np.float64) for wi, u in zip(w, uploads, strict=True))
        else:
            s_i = [s[i].astype(np.float64) for s in signs]
            alphas = np.array([float(u[SCALES_KEY][i]) for u in uploads])
            if rule == "vote":
                step = float(w @ alphas) * np.sign(sum(wi * s for wi, s in zip(w, s_i, strict=True)))
            else:
                step = sum(wi * a * s for wi, a, s in zip(w, alphas, s_i, strict=True))
            value = np.asarray(global_state[k], np.float64) + step
        new[k] = np.asarray(value, np.float32).reshape(shapes[i])
    for k in clip:
        if k in new:
            np.clip(new[k], -1.0, 1.0, out=new[k])
    for k in positive:
        if k in new:
            np.maximum(new[k], np.float32(1e-5), out=new[k])
    return new


def upload_payload_bytes(arrays: Mapping[str, np.ndarray]) -> int:
    """Bytes of the tensors' data alone (what the mode's encoding costs, without message framing)."""
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))
