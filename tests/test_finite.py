"""The runtime's input check (onebit._core.all_finite): no NaN or infinity, on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onebit import _core
from tests.conftest import kernel_settings

ISAS = _core.available_isas()
SPECIAL = [np.nan, -np.nan, np.inf, -np.inf, np.float32(np.nan) * -1]


@pytest.mark.parametrize("isa", ISAS)
@kernel_settings(100)
@given(
    n=st.integers(0, 10_000),
    at=st.floats(0, 1, exclude_max=True),
    special=st.sampled_from(SPECIAL + [None]),
    seed=st.integers(0, 2**32 - 1),
)
def test_all_finite_matches_numpy(isa, n, at, special, seed):
    x = (np.random.default_rng(seed).standard_normal(n) * 1e30).astype(np.float32)
    if special is not None and n:
        x[int(at * n)] = special
    assert _core.all_finite(x, isa=isa) == bool(np.isfinite(x).all())


@pytest.mark.parametrize("isa", ISAS)
def test_all_finite_edges(isa):
    f32 = np.finfo(np.float32)
    finite = np.array([f32.max, -f32.max, f32.tiny, f32.smallest_subnormal, 0.0, -0.0], np.float32)
    assert _core.all_finite(finite.reshape(2, 3), isa=isa)
    for bits in (0x7F800000, 0xFF800000, 0x7F800001, 0x7FC00000, 0xFFFFFFFF):  # inf, -inf, NaNs
        x = np.zeros((3, 4, 5), np.float32)
        x.reshape(-1).view(np.uint32)[37] = bits
        assert not _core.all_finite(x, isa=isa)


def test_all_finite_errors():
    with pytest.raises(ValueError, match="float32"):
        _core.all_finite(np.zeros(4, np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.all_finite(np.zeros((4, 4), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="bogus"):
        _core.all_finite(np.zeros(4, np.float32), isa="bogus")
