"""The executor's program (``_core.Plan``, csrc/executor.h) on its own: the arena's layout by
lifetimes, the steps the Python runtime runs in numpy, on every ISA and thread count, and
misuse. No torch: these run under the sanitizers too (.ci/sanitizers)."""

from __future__ import annotations

import numpy as np
import pytest

from onebit import _core


def test_arena_reuses_bytes_of_dead_values():
    # x -> a -> b -> c -> y, 1,000 floats each: a and c never live at once, b overlaps both.
    plan = _core.Plan()
    x, a, b, c, y = (plan.value(1000, False) for _ in range(5))
    for src, dst in ((x, a), (a, b), (b, c), (c, y)):
        plan.clip(src, dst, -1.0, 1.0, False)
    plan.set_io([x], [y])
    assert plan.num_steps == 4
    assert plan.arena_bytes(1) == 2 * 4032  # two 64-byte aligned blocks of 4,000 bytes
    assert plan.arena_bytes(3) == 2 * 12032
    data = np.linspace(-3, 3, 2000, dtype=np.float32).reshape(2, 1000)
    (out,) = plan.run([data], 2, 1)
    assert out.shape == (2, 1000) and out.tobytes() == np.clip(data, -1, 1).tobytes()


def test_relu_and_clip_follow_numpy_signed_zeros():
    plan = _core.Plan()
    x, r, c = plan.value(6, False), plan.value(6, False), plan.value(6, False)
    plan.clip(x, r, 0.0, 0.0, True)
    plan.clip(x, c, -1.0, 1.0, False)
    plan.set_io([x], [r, c])
    data = np.array([[-0.0, 0.0, -2.5, 0.5, 3.0, -1.0]], np.float32)
    relu, clip = plan.run([data], 1, 1)
    assert relu.tobytes() == np.maximum(data, np.float32(0)).tobytes()
    assert clip.tobytes() == np.clip(data, np.float32(-1), np.float32(1)).tobytes()


@pytest.mark.parametrize("isa", _core.available_isas())
@pytest.mark.parametrize("threads", [1, 2])
def test_elementwise_steps_are_numpys_on_every_isa(monkeypatch, isa, threads):
    """The steps the Python runtime runs in numpy (relu, clip, the gate product, concat and
    concat + affine) and the sigmoid kernel: the same bits on every ISA and thread count,
    signed zeros and extremes included (sizes large enough to be threaded)."""
    monkeypatch.setenv("ONEBIT_ISA", isa)
    rng = np.random.default_rng(7)
    n, hw, c1, c2 = 2, 40 * 40, 24, 40
    a = (rng.standard_normal((n, hw, c1)) * 3).astype(np.float32)
    b = (rng.standard_normal((n, hw, c2)) * 3).astype(np.float32)
    a.reshape(-1)[:8] = [0.0, -0.0, 1.0, -1.0, 3e38, -3e38, 1e-45, -1e-45]
    gate = rng.random((n, c1)).astype(np.float32)
    scale = rng.standard_normal(c1 + c2).astype(np.float32)
    bias = rng.standard_normal(c1 + c2).astype(np.float32)
    plan = _core.Plan()
    va, vb, vg = plan.value(hw * c1, False), plan.value(hw * c2, False), plan.value(c1, False)
    outs = [plan.value(hw * c1, False) for _ in range(4)] + [plan.value(hw * (c1 + c2), False) for _ in range(2)]
    plan.clip(va, outs[0], 0.0, 0.0, True)
    plan.clip(va, outs[1], -1.0, 1.0, False)
    plan.sigmoid(va, outs[2])
    plan.channel_mul(va, vg, outs[3], c1)
    plan.concat([va, vb], [c1, c2], outs[4])
    plan.concat([va, vb], [c1, c2], outs[5], scale, bias)
    plan.set_io([va, vb, vg], outs)
    got = plan.run([a, b, gate], n, threads)
    joined = np.concatenate([a, b], axis=-1)
    with np.errstate(over="ignore"):
        sig = (1.0 / (1.0 + np.exp(-a.astype(np.float64)))).astype(np.float32)
    expected = [np.maximum(a, np.float32(0)), np.clip(a, np.float32(-1), np.float32(1)), sig,
                a * gate[:, None, :], joined, joined * scale + bias]
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.tobytes() == np.ascontiguousarray(e).tobytes(), i
    assert _core.sigmoid(a, threads, isa=isa).tobytes() == sig.tobytes()


@pytest.mark.parametrize("isa", _core.available_isas())
@pytest.mark.parametrize("pool", [((2, 2), (2, 2), (0, 0), (0, 0)), ((3, 3), (2, 2), (1, 1), (0, 1)),
                                  ((3, 2), (1, 2), (1, 0), (1, 1))])
def test_transition_step_is_the_three_steps(monkeypatch, isa, pool):
    """maxpool(affine(concat(parts))) [→ relu] made row by row equals the concat + affine, fpool2d
    and numpy's maximum apart, for overlapping windows and asymmetric padding too."""
    monkeypatch.setenv("ONEBIT_ISA", isa)
    rng = np.random.default_rng(3)
    n, h, w, channels = 2, 13, 11, [5, 16, 3]
    parts = [rng.standard_normal((n, h, w, c)).astype(np.float32) for c in channels]
    scale = rng.standard_normal(sum(channels)).astype(np.float32)
    bias = rng.standard_normal(sum(channels)).astype(np.float32)
    scale[0] = 0.0  # a constant channel: ties everywhere
    joined = _core.channel_affine(np.concatenate(parts, axis=-1), scale, bias, 1)
    for threads in (1, 2):
        pooled = _core.fpool2d(joined, *pool[:3], False, threads, padding_end=pool[3], isa=isa)
        for relu in (False, True):
            plan = _core.Plan()
            ids = [plan.value(h * w * c, False) for c in channels]
            out = plan.value(pooled[0].size, False)
            plan.transition(ids, channels, out, h, w, scale, bias, pool, relu)
            plan.set_io(ids, [out])
            (got,) = plan.run(parts, n, threads)
            expected = np.maximum(pooled, np.float32(0)) if relu else pooled
            assert got.tobytes() == expected.tobytes(), (threads, relu)


def test_misuse_gets_a_clear_error():
    plan = _core.Plan()
    x, y = plan.value(4, False), plan.value(4, False)
    with pytest.raises(ValueError, match="already written"):
        plan.clip(x, y, 0, 0, True)
        plan.clip(x, y, 0, 0, True)
    with pytest.raises(ValueError, match="dst must hold 4 float32 per sample, value 2 holds 8 elements of 4 bytes"):
        plan.add(x, y, plan.value(8, False))
    with pytest.raises(ValueError, match="unknown value"):
        _core.Plan().add(0, 1, 2)
    with pytest.raises(ValueError, match="per_sample must be >= 1"):
        plan.value(0, False)
    orphan = _core.Plan()
    p, q, r = (orphan.value(4, False) for _ in range(3))
    orphan.clip(p, q, 0, 0, True)
    with pytest.raises(ValueError, match="before any step writes it"):
        orphan.set_io([r], [q])  # q's step reads p, which is neither an input nor written
    plan.set_io([x], [y])
    with pytest.raises(ValueError, match="must hold 8 elements"):
        plan.run([np.zeros((2, 3), np.float32)], 2, 1)
    with pytest.raises(ValueError, match="must be float32"):
        plan.run([np.zeros((1, 4), np.float64)], 1, 1)
    with pytest.raises(ValueError, match="needs 1 inputs"):
        plan.run([], 1, 1)


@pytest.mark.parametrize("threads", [1, 2])
def test_gated_conv_step_is_run_float(threads):
    """Real-to-Binary Net's fused block as one step: conv → per-sample gate → RPReLU → +
    shortcut, the gate and the shortcut read from the arena: run_float's bits."""
    rng = np.random.default_rng(11)
    n, h, w, c, o = 2, 12, 12, 64, 64
    conv = _core.BinaryConv2d(rng.integers(0, 2**63, (o, 3, 3, 1), dtype=np.uint64), c, padding=(1, 1))
    x = rng.integers(0, 2**63, (n, h, w, 1), dtype=np.uint64)
    gate = rng.random((n, o)).astype(np.float32)
    residual = rng.standard_normal((n, h, w, o)).astype(np.float32)
    scale, bias, si, sl, so = (rng.standard_normal(o).astype(np.float32) for _ in range(5))
    plan = _core.Plan()
    vx, vg = plan.value(h * w, True), plan.value(o, False)
    vr, vy = plan.value(h * w * o, False), plan.value(h * w * o, False)
    plan.bconv_float(vx, vy, conv, h, w, scale, bias, "none", None, None, vr, (si, sl, so), -1, None, gate=vg,
                     residual_last=True)
    plan.set_io([vx, vg, vr], [vy])
    (got,) = plan.run([x, gate, residual], n, threads)
    want = conv.run_float(x, scale, bias, "none", num_threads=threads, residual=residual, prelu=(si, sl, so),
                          gate=gate, residual_last=True)
    assert got.tobytes() == want.tobytes()
    bad = _core.Plan()
    bx, bg, by = bad.value(h * w, True), bad.value(o + 1, False), bad.value(h * w * o, False)
    with pytest.raises(ValueError, match="residual_last needs a residual"):
        bad.bconv_float(bx, by, conv, h, w, scale, bias, "none", None, None, -1, None, -1, None, residual_last=True)
    with pytest.raises(ValueError, match="gate must hold 64 float32 per sample"):
        bad.bconv_float(bx, by, conv, h, w, scale, bias, "none", None, None, -1, None, -1, None, gate=bg)
