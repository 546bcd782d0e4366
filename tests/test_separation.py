"""Mask-based separation (onebit.audio.separation, onebit.audio.bss): patches, masks, reconstruction,
the float and binary mask networks through export and onebit.runtime, ``separate``, the ``onebit
separate`` command, and the quick run of experiment simpson2015_separation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onebit.audio.bss import bss_eval, bss_improvement
from onebit.audio.features import stft
from onebit.audio.mixtures import Mixture, Voice, ideal_binary_mask, mix_at_snr
from onebit.audio.separation import (
    SeparationConfig,
    apply_masks,
    bin_agreement,
    export_separator,
    load_separator,
    mask_logits,
    mask_network,
    mask_probabilities,
    patches,
    separate,
    threshold_masks,
    train_separator,
)
from onebit.audio.wav import write_wav
from onebit.errors import ConfigError, InputError, MissingFileError, ModelFileError
from onebit.train import torch_threads

SMALL = SeparationConfig(sample_rate=8000, n_fft=64, hop=16, context=8)


def _voice(f0: float, seconds: float, seed: int) -> np.ndarray:
    """A harmonic complex with a wobbling f0 and a syllable-like envelope: a stand-in for a voice."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(8000 * seconds)) / 8000
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
    phase = 2 * np.pi * np.cumsum(f) / 8000
    x = sum(np.sin(k * phase) / k for k in range(1, 12) if k * f0 < 3800)
    return (x * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(2, 5) * t) ** 2)).astype(np.float32)


def _mixtures(count: int, seed: int = 0) -> list[Mixture]:
    out = []
    for i in range(count):
        mixture, s1, s2 = mix_at_snr(_voice(110 + 5 * i, 0.6, seed + i), _voice(230 + 7 * i, 0.6, seed + 100 + i),
                                     (-5.0, 0.0, 5.0)[i % 3])
        out.append(Mixture(mixture, s1, s2, 8000, (-5.0, 0.0, 5.0)[i % 3], Voice("low", 175, 40),
                           Voice("high", 175, 70), "a", "b"))
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A float and a binary net trained briefly on tone mixtures, exported: {kind: (model, path)}."""
    folder = tmp_path_factory.mktemp("separation")
    data = _mixtures(6)
    out = {}
    with torch_threads(1):
        for kind in ("float", "binary"):
            torch.manual_seed(0)
            model = mask_network(SMALL, binary=kind == "binary", channels=8, depth=2)
            history = train_separator(model, data, epochs=3, batch_size=8, lr=3e-3, quiet_weight=0.1, seed=0)
            assert len(history) == 3 and history[-1] < history[0]
            export_separator(model, folder / f"{kind}.onebit", data[:2])
            out[kind] = (model, folder / f"{kind}.onebit")
    return out


def test_config_checks_and_round_trip():
    assert SeparationConfig().bins == 129
    assert SeparationConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ConfigError, match="context must be an even number"):
        SeparationConfig(context=7)
    with pytest.raises(ConfigError, match="hop <= n_fft/2"):
        SeparationConfig(n_fft=64, hop=48)
    with pytest.raises(ConfigError, match="sample_rate must be a positive integer"):
        SeparationConfig(sample_rate=0)
    with pytest.raises(ModelFileError, match="records no separation settings"):
        SeparationConfig.from_dict({"n_fft": 64})


def test_patches_cover_every_frame_with_the_floor_as_padding():
    features = np.arange(3 * 13, dtype=np.float32).reshape(3, 13)
    x, starts = patches(features, 8)
    assert x.shape == (len(starts), 1, 3, 8) and starts == [0, 4, 8]
    np.testing.assert_array_equal(x[0, 0], features[:, :8])
    np.testing.assert_array_equal(x[2, 0, :, :5], features[:, 8:])
    assert (x[2, 0, :, 5:] == -1).all()
    short, starts = patches(features[:, :3], 8)
    assert starts == [0] and (short[0, 0, :, 3:] == -1).all()


def test_threshold_masks():
    p = np.array([0.2, 0.5, 0.6, 0.95, 0.995], np.float32)
    m1, m2 = threshold_masks(p, 0.5)
    np.testing.assert_array_equal(m1, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(m2, [1, 0, 0, 0, 0])  # p = 0.5 goes to neither at α = 0.5 strictly
    m1, m2 = threshold_masks(p, 0.9)
    np.testing.assert_array_equal(m1, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(m2, [0, 0, 0, 0, 0])
    soft1, soft2 = threshold_masks(p, None)
    np.testing.assert_allclose(soft1 + soft2, 1.0)
    for bad in (0.4, 1.0, "0.9", True):
        with pytest.raises(ConfigError, match=r"alpha must be a confidence in \[0.5, 1\)"):
            threshold_masks(p, bad)


def test_all_ones_mask_returns_the_mixture_and_the_ibm_separates():
    m = _mixtures(1)[0]
    spec = stft(m.mixture, n_fft=SMALL.n_fft, hop=SMALL.hop)
    same, nothing = apply_masks(spec, [np.ones(spec.shape), np.zeros(spec.shape)], SMALL, len(m.mixture))
    np.testing.assert_allclose(same, m.mixture, atol=1e-5)
    assert not nothing.any()
    ibm = ideal_binary_mask(stft(m.source1, n_fft=64, hop=16), stft(m.source2, n_fft=64, hop=16))
    est = apply_masks(spec, [ibm, 1 - ibm], SMALL, len(m.mixture))
    figures = bss_improvement(m.sources, np.stack(est), m.mixture)
    assert (figures["sdri"] > 3).all() and (figures["siri"] > 4).all()
    assert bin_agreement(ibm, ibm, spec) == 1.0 and bin_agreement(1 - ibm, ibm, spec) == 0.0


def test_bin_agreement_counts_only_bins_above_the_floor():
    spec = np.array([[1.0, 0.5, 1e-3, 1e-4]])  # 0, −6, −60, −80 dB
    ibm = np.array([[1, 0, 1, 1]])
    assert bin_agreement(np.array([[1, 1, 0, 0]]), ibm, spec) == 0.5  # the two quiet bins do not count
    assert bin_agreement(np.array([[1, 1, 0, 0]]), ibm, spec, floor_db=-70) == pytest.approx(1 / 3)


def test_bss_eval_matches_mir_eval_and_refuses_bad_input():
    mir_eval = pytest.importorskip("mir_eval")
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 4000))
    est = ref + 0.3 * rng.standard_normal((2, 4000)) + 0.2 * ref[::-1]
    ours = bss_eval(ref, est)
    with pytest.warns(FutureWarning):
        theirs = mir_eval.separation.bss_eval_sources(ref, est, compute_permutation=False)
    for k, want in zip(("sdr", "sir", "sar"), theirs[:3]):
        np.testing.assert_allclose(ours[k], want, atol=1e-3)
    with pytest.raises(InputError, match="both be \\(sources, samples\\)"):
        bss_eval(ref, est[:, :100])
    with pytest.raises(InputError, match="longer than its 512-tap filter"):
        bss_eval(ref[:, :100], est[:, :100])
    with pytest.raises(InputError, match="silent"):
        bss_eval(np.zeros((2, 1000)), est[:, :1000])
    with pytest.raises(InputError, match="NaN"):
        bss_eval(ref, np.full_like(est, np.nan))


@pytest.mark.parametrize("kind", ["float", "binary"])
def test_engine_gives_pytorchs_logits_and_masks(trained, kind):
    model, path = trained[kind]
    engine = load_separator(path, num_threads=1)
    kinds = [layer.kind for layer in engine.layers if layer.op in ("conv2d", "dense")]
    assert kinds[0] == "float" and kinds[-1] == "float"
    assert ("binary" in kinds) == (kind == "binary")
    for m in _mixtures(3, seed=50):
        spec = stft(m.mixture, n_fft=SMALL.n_fft, hop=SMALL.hop)
        ours, theirs = mask_logits(engine, spec), mask_logits(model, spec)
        assert ours.shape == spec.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-4 * max(1.0, float(np.abs(theirs).max())), rtol=0)
        for alpha in (0.5, 0.7, 0.9, 0.99):
            for a, b in zip(threshold_masks(mask_probabilities(engine, spec), alpha),
                            threshold_masks(mask_probabilities(model, spec), alpha)):
                np.testing.assert_array_equal(a, b)


def test_trained_float_net_beats_the_mixture(trained):
    model, path = trained["float"]
    m = _mixtures(1, seed=70)[0]
    est = separate(m.mixture, path, sample_rate=8000)
    assert all(e.shape == m.mixture.shape and e.dtype == np.float32 for e in est)
    assert bss_improvement(m.sources, np.stack(est), m.mixture)["sdri"].mean() > 1.0
    again = separate(m.mixture, model, alpha=None)  # a torch module, soft masks
    assert np.abs(again[0] + again[1] - m.mixture).max() < 1e-4  # soft masks sum to 1: nothing is lost


def test_separate_refuses_bad_input(trained, tmp_path):
    _, path = trained["binary"]
    x = _mixtures(1)[0].mixture
    with pytest.raises(InputError, match="at 16000 Hz but the model separates 8000 Hz"):
        separate(x, path, sample_rate=16000)
    with pytest.raises(InputError, match="NaN"):
        separate(np.array([0.1, np.nan] * 100), path)
    with pytest.raises(InputError, match="silent"):
        separate(np.zeros(1000), path)
    with pytest.raises(InputError, match="non-empty 1-D"):
        separate(np.zeros((2, 100)), path)
    with pytest.raises(MissingFileError, match="does not exist"):
        separate(x, tmp_path / "missing.onebit")
    (tmp_path / "junk.onebit").write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError):
        separate(x, tmp_path / "junk.onebit")
    from onebit.export import export

    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 2))
    export(other, tmp_path / "other.onebit", torch.randn(4, 1, 2, 4))
    with pytest.raises(ModelFileError, match="records no separation settings"):
        separate(x, tmp_path / "other.onebit")


def test_cli_separate_writes_two_wavs_and_refuses_bad_files(trained, tmp_path, capsys):
    from onebit.audio.wav import read_wav
    from onebit.cli import main

    _, path = trained["binary"]
    m = _mixtures(1)[0]
    write_wav(tmp_path / "mix.wav", m.mixture, 8000)
    assert main(["separate", str(tmp_path / "mix.wav"), "--model", str(path), "-o", str(tmp_path / "out"),
                 "--alpha", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "source1.wav" in out and "source2.wav" in out
    for name in ("source1.wav", "source2.wav"):
        y, rate = read_wav(tmp_path / "out" / name)
        assert rate == 8000 and len(y) == len(m.mixture)
    write_wav(tmp_path / "fast.wav", m.mixture, 16000)
    (tmp_path / "text.wav").write_text("hello")
    cases = [(tmp_path / "fast.wav", path, "sampled at 16000 Hz, not the 8000 Hz"),
             (tmp_path / "text.wav", path, "not a RIFF/WAVE file"),
             (tmp_path / "none.wav", path, "no such WAV file"),
             (tmp_path / "mix.wav", tmp_path / "mix.wav", "mix.wav")]
    for i, (wav, model, message) in enumerate(cases):
        assert main(["separate", str(wav), "--model", str(model), "-o", str(tmp_path / f"bad{i}")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("onebit separate: error:") and message in err and "\n" not in err
    with pytest.raises(SystemExit):
        main(["separate", str(tmp_path / "mix.wav"), "--model", str(path), "-o", str(tmp_path / "x"),
              "--alpha", "1.5"])
    assert "--alpha" in capsys.readouterr().err


def test_quick_experiment_runs(tmp_path):
    from onebit.audio.espeak import espeak_available
    from onebit.experiments import run_experiment

    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): the experiment's speech is synthesized")
    results = run_experiment("simpson2015_separation", tmp_path / "x", quick=True)
    for name in ("alpha_tradeoff.png", "masks.png", "results.md", "runs/seed0/float.onebit",
                 "runs/seed0/binary.onebit"):
        assert (tmp_path / "x" / name).is_file()
    claims = {c["claim"]: c for c in results["claims"]}
    engine = [c for name, c in claims.items() if "onebit.runtime" in name]
    assert len(engine) == 2 and all(c["holds"] for c in engine)
    assert all(c["holds"] is None for name, c in claims.items() if "onebit.runtime" not in name)
    rows = results["tables"]["separation"]["rows"]
    assert [r[0] for r in rows[:2]] == ["IBM", "IRM"] and rows[0][5] > 5  # the IBM oracle improves SDR
