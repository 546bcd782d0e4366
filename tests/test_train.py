"""fit/evaluate, checkpoints and the run folder: determinism, atomic files, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from onebit.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint
from onebit.data import load_dataset
from onebit.errors import CheckpointError, ConfigError, DataError, MissingFileError
from onebit.models import create_model
from onebit.train import evaluate, fit


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _tiny(digits, **kw):
    return create_model("tfc", num_classes=digits.num_classes, in_shape=digits.in_shape, **kw)


def test_fit_writes_the_run_folder_and_restores_the_best_epoch(digits, tmp_path):
    model = _tiny(digits)
    r = fit(model, digits, epochs=3, batch_size=64, lr=3e-3, out_dir=tmp_path, progress=False, verbose=False,
            info={"data": "digits"})
    assert {p.name for p in tmp_path.iterdir()} == {
        "checkpoint.safetensors", "last.safetensors", "metrics.json", "curves.png", "train_state.pt"
    }
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["seed"] == 0 and metrics["data"] == "digits"
    assert len(metrics["history"]) == 3 and metrics["test_accuracy"] == r.test_accuracy
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the checkpoint is the best epoch and the returned model holds the same weights
    best, meta = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["epoch"] == r.best_epoch
    for a, b in zip(best.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    assert evaluate(best, digits.x_test, digits.y_test)["accuracy"] == r.test_accuracy


def test_fixed_seed_gives_identical_weights(digits):
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # different global state before: fit must seed everything itself
        torch.rand(7)
        m = _tiny(digits)
        fit(m, digits, epochs=2, seed=5, progress=False, verbose=False)
        runs.append(m.state_dict())
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key


def test_fit_on_arrays_and_bop(digits):
    model = _tiny(digits, dropout=0.0)
    train, (xv, yv) = digits.split_validation(0.2)
    r = fit(model, (train.x_train, train.y_train), val=(xv, yv), epochs=2, optimizer="bop",
            progress=False, verbose=False)
    assert r.test_accuracy is None and r.best_val_accuracy > 0.3
    w = model[1].weight
    assert set(w.detach().unique().tolist()) <= {-1.0, 1.0}  # Bop keeps the weights binary


def test_fit_errors(digits):
    m = _tiny(digits)
    x, y = digits.x_train, digits.y_train
    with pytest.raises(ConfigError, match="epochs"):
        fit(m, digits, epochs=0)
    with pytest.raises(ConfigError, match="unknown schedule"):
        fit(m, digits, schedule="exponential")
    with pytest.raises(ConfigError, match="unknown optimizer"):
        fit(m, digits, optimizer="lamb", epochs=1, progress=False, verbose=False)
    with pytest.raises(ConfigError, match="validation data"):
        fit(m, (x, y))
    with pytest.raises(DataError, match=r"labels must lie in \[0, 10\)"):
        fit(m, (x, y + 5), val=(x, y), epochs=1, progress=False, verbose=False)
    with pytest.raises(DataError, match="is empty"):
        fit(m, (x[:0], y[:0]), val=(x, y), epochs=1, progress=False, verbose=False)
    with pytest.raises(DataError, match="shape"):
        fit(m, (x, y[:-1]), val=(x, y), epochs=1, progress=False, verbose=False)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        fit(m, (bad, y), val=(x, y), epochs=1, progress=False, verbose=False)


def test_checkpoint_round_trip_and_atomic_write(digits, tmp_path):
    m = _tiny(digits)
    path = save_checkpoint(tmp_path / "c.safetensors", m, epoch=7)
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary left behind
    m2, meta = load_checkpoint(path)
    assert meta["epoch"] == 7 and meta["model"]["name"] == "tfc"
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    assert not m2.training


def test_checkpoint_errors(digits, tmp_path):
    with pytest.raises(MissingFileError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="create_model"):
        save_checkpoint(tmp_path / "x.safetensors", torch.nn.Linear(2, 2))
    good = save_checkpoint(tmp_path / "good.safetensors", _tiny(digits))
    data = good.read_bytes()
    for name, payload in [
        ("garbage", b"not a safetensors file at all"),
        ("truncated", data[: len(data) // 2]),
        ("empty", b""),
        ("header-only", data[:200]),
    ]:
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(payload)
        with pytest.raises(CheckpointError):
            load_checkpoint(p)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not a onebit checkpoint"):
        load_checkpoint(plain)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"w": torch.zeros(2)}, str(wrong), metadata={"onebit": json.dumps(
        {"format": "onebit-checkpoint", "version": 1, "model": {"name": "tfc", "args": {"in_shape": [1, 8, 8]}}})})
    with pytest.raises(CheckpointError, match="do not match model 'tfc'"):
        load_checkpoint(wrong)
    future = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(2)}, str(future), metadata={"onebit": json.dumps(
        {"format": "onebit-checkpoint", "version": 99, "model": {"name": "tfc", "args": {}}})})
    with pytest.raises(CheckpointError, match="version 99"):
        read_checkpoint_meta(future)
    unknown = tmp_path / "unknown.safetensors"
    save_file({"w": torch.zeros(2)}, str(unknown), metadata={"onebit": json.dumps(
        {"format": "onebit-checkpoint", "version": 1, "model": {"name": "gpt5", "args": {}}})})
    with pytest.raises(CheckpointError, match="cannot rebuild model 'gpt5'"):
        load_checkpoint(unknown)


def test_fit_and_evaluate_reject_bad_inputs_with_onebit_errors(digits):
    """Issue 5: bad shapes, labels, non-finite values, empty sets and bad sizes name the problem."""
    m = _tiny(digits)
    x, y = digits.x_train, digits.y_train
    quiet = {"epochs": 1, "progress": False, "verbose": False}
    infinite = x.copy()
    infinite[3, 0, 2, 2] = np.inf
    cases = [
        # x of the wrong rank or shape for the model
        ((x.reshape(len(x), 64), y), (x, y), DataError, r"samples have shape \(64,\), the model expects \(1, 8, 8\)"),
        ((x[:, :, :4], y), (x, y), DataError, r"samples have shape \(1, 4, 8\)"),
        ((x, y), (x[:, :, :4], y), DataError, "validation samples have shape"),
        # labels: non-integer, negative, ≥ num_classes
        ((x, y.astype(np.float32)), (x, y), DataError, "labels must be integers"),
        ((x, y - 1), (x, y), DataError, r"labels must lie in \[0, 10\).*\[-1, 8\]"),
        ((x, y), (x, y + 1), DataError, r"validation data: labels must lie in \[0, 10\)"),
        # length mismatch, empty sets, non-finite values
        ((x[:10], y[:9]), (x, y), DataError, "shape"),
        ((x, y), (x[:0], y[:0]), DataError, "validation data is empty"),
        ((infinite, y), (x, y), DataError, "NaN or infinite"),
    ]
    for train, val, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            fit(m, train, val=val, **quiet)
    for size in (0, -3, 1.5, True):
        with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
            fit(m, digits, batch_size=size, **quiet)
        with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
            evaluate(m, x, y, batch_size=size)
    with pytest.raises(ConfigError, match=r"batch_size 2000 is larger than the 1293 training samples"):
        fit(m, digits, batch_size=2000, **quiet)
    for fraction in (0.0, 1.0, -0.5, 2, "0.1"):
        with pytest.raises(ConfigError, match="validation fraction"):
            fit(m, digits, val_fraction=fraction, **quiet)
    # a model whose output width is not the data set's number of classes
    five = create_model("tfc", num_classes=5, in_shape=digits.in_shape)
    with pytest.raises(ConfigError, match="outputs 5 logits but the data set has 10 classes"):
        fit(five, digits, **quiet)
    with pytest.raises(DataError, match=r"labels must lie in \[0, 5\)"):
        evaluate(five, x, y)
    # evaluate: shape and emptiness
    with pytest.raises(DataError, match="the model expects"):
        evaluate(m, x.reshape(len(x), 64), y)
    with pytest.raises(DataError, match="is empty"):
        evaluate(m, x[:0], y[:0])
    # a model without a recorded input shape: the probing forward's failure becomes a DataError
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(DataError, match=r"cannot take samples of shape \(1, 4, 8\)"):
        fit(plain, (x[:, :, :4], y), val=(x[:, :, :4], y), **quiet)
    with pytest.raises(ConfigError, match=r"logits of shape \(N, classes\)"):
        fit(torch.nn.Flatten(0), (x, y), val=(x, y), **quiet)


def test_progress_bar_only_on_a_terminal(digits, capsys, monkeypatch):
    """Redirected stderr (a log file) gets no progress bar redraws, a terminal gets one bar per epoch."""
    m = _tiny(digits)
    fit(m, digits, epochs=1, progress=True, verbose=False)
    assert "batch" not in capsys.readouterr().err  # pytest's captured stderr is not a terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    fit(m, digits, epochs=2, progress=True, verbose=False)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "/21" in err  # 1,293 rows in batches of 64


def test_the_library_prints_nothing_and_logs_each_epoch(digits, capsys, caplog, tmp_path):
    """fit and export are quiet by default; their progress goes to the onebit.* loggers."""
    import logging

    from onebit.export import export

    with caplog.at_level(logging.INFO, logger="onebit"):
        m = _tiny(digits)
        fit(m, digits, epochs=2)
        export(m, tmp_path / "m.onebit", digits.x_test[:8])
    assert capsys.readouterr().out == ""
    messages = [r.getMessage() for r in caplog.records]
    assert [msg.split()[1] for msg in messages if msg.startswith("epoch")] == ["1/2", "2/2"]
    assert any(msg.startswith("exporting") and "checking it against PyTorch" in msg for msg in messages)
    fit(m, digits, epochs=1, verbose=True)
    assert "epoch   1/1" in capsys.readouterr().out


def test_run_files_respect_the_umask(digits, tmp_path):
    """Atomic writes go through a temporary file (mkstemp: mode 0600); the final files get 0666 & ~umask."""
    import os
    import stat

    from onebit.export import export

    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        previous = os.umask(umask)
        try:
            out = tmp_path / f"run{umask:o}"
            m = _tiny(digits)
            fit(m, digits, epochs=1, out_dir=out)
            export(m, out / "model.onebit", digits.x_test[:8])
        finally:
            os.umask(previous)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
        assert set(modes) == {"checkpoint.safetensors", "last.safetensors", "metrics.json", "curves.png",
                              "train_state.pt", "model.onebit"}
        assert all(v == mode for v in modes.values()), (oct(umask), {k: oct(v) for k, v in modes.items()})


def test_prune_run_keeps_what_was_asked(digits, tmp_path):
    from onebit.train import prune_run

    fit(_tiny(digits), digits, epochs=1, out_dir=tmp_path)
    state = (tmp_path / "train_state.pt").stat().st_size
    assert prune_run(tmp_path, "all") == {}
    assert prune_run(tmp_path, "last") == {str(tmp_path / "train_state.pt"): state}
    last = (tmp_path / "last.safetensors").stat().st_size
    assert prune_run(tmp_path, "best") == {str(tmp_path / "last.safetensors"): last}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors", "curves.png", "metrics.json"]
    with pytest.raises(ConfigError, match="unknown keep setting 'none'; valid choices: all, best, last"):
        prune_run(tmp_path, "none")


def test_torch_threads_sets_and_restores_the_count():
    from onebit.train import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before  # restored on an exception too
    with torch_threads(None):  # None leaves torch's setting alone
        assert torch.get_num_threads() == before
