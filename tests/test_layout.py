"""NCHW -> NHWC copy (onebit._core.nchw_to_nhwc), the runtime's first step on an image."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onebit import _core
from tests.conftest import kernel_settings


@kernel_settings(100)
@given(
    shape=st.tuples(st.integers(0, 3), st.integers(1, 40), st.integers(1, 9), st.integers(1, 9)),
    threads=st.integers(1, 3),
)
def test_nchw_to_nhwc_is_the_transpose(shape, threads):
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    y = _core.nchw_to_nhwc(x, threads)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_nchw_to_nhwc_large_image_threads(threads):
    """Big enough to be split across threads (a 3 x 224 x 224 image)."""
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    np.testing.assert_array_equal(_core.nchw_to_nhwc(x, threads), x.transpose(0, 2, 3, 1))


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((1, 3, 4, 4), np.float64), "float32"),
        (np.zeros((3, 4, 4), np.float32), "4-D"),
        (np.zeros((1, 3, 4, 8), np.float32)[..., ::2], "C-contiguous"),
    ],
)
def test_nchw_to_nhwc_errors(x, match):
    with pytest.raises(ValueError, match=match):
        _core.nchw_to_nhwc(x)
