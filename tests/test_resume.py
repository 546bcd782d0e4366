"""Crash-safe training: a run killed with SIGKILL at random moments resumes to the same weights.

``onebit train`` writes ``train_state.pt`` atomically after every epoch; ``--resume RUN_DIR``
continues from it. With fixed seeds on CPU the resumed run must end byte-identical to an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from onebit.checkpoint import load_checkpoint
from onebit.errors import CheckpointError, MissingFileError
from onebit.train_state import STATE_FILE, load_train_state

ARGS = ["--model", "binarynet_mlp", "-M", "hidden=512", "--epochs", "8", "--no-progress"]


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onebit.cli", "train", *args], capture_output=True, text=True,
                          timeout=300)


def _epochs_done(run) -> int:
    try:
        return len(json.loads((run / "metrics.json").read_text())["history"])
    except (OSError, ValueError, KeyError):
        return 0


def test_killed_runs_resume_to_the_uninterrupted_weights(tmp_path):
    reference = tmp_path / "reference"
    assert _train(*ARGS, "--out", str(reference)).returncode == 0
    want = (reference / "last.safetensors").read_bytes()
    rng = random.Random(0)
    killed_after = []
    for trial in range(3):
        run = tmp_path / f"killed{trial}"
        proc = subprocess.Popen([sys.executable, "-m", "onebit.cli", "train", *ARGS, "--out", str(run)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target, deadline = rng.randint(1, 6), time.monotonic() + 120
        while _epochs_done(run) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside the next epoch (or its checkpoint writes)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # What the kill left is loadable: the last finished epoch's state and checkpoint.
        state = load_train_state(run)
        assert 1 <= state["epoch"] <= 8
        killed_after.append(state["epoch"])
        load_checkpoint(run / "last.safetensors")
        resumed = _train("--resume", str(run), "--no-progress")
        assert resumed.returncode == 0, resumed.stderr
        assert (run / "last.safetensors").read_bytes() == want, f"trial {trial}: killed after epoch {state['epoch']}"
        assert _epochs_done(run) == 8
    assert min(killed_after) < 8, killed_after  # the kills did land mid-run


REACTNET = ["--model", "tfc", "--recipe", "reactnet", "--epochs", "6", "--no-progress"]


def _recipe_epochs_done(run) -> int:
    """Epochs finished over every step of a multi-step run: teacher, stage 1, and the last step."""
    return sum(_epochs_done(folder) for folder in (run / "teacher", run / "stage1", run))


def test_killed_multi_step_runs_resume_to_the_uninterrupted_weights(tmp_path):
    """ReActNet's recipe (teacher 6 epochs, then 3 + 3 two-step epochs), killed anywhere, resumes exactly."""
    reference = tmp_path / "reference"
    assert _train(*REACTNET, "--out", str(reference)).returncode == 0
    want = (reference / "last.safetensors").read_bytes()
    rng = random.Random(1)
    for trial, target in enumerate((rng.randint(1, 5), rng.randint(6, 8), rng.randint(9, 11))):
        run = tmp_path / f"killed{trial}"
        proc = subprocess.Popen([sys.executable, "-m", "onebit.cli", "train", *REACTNET, "--out", str(run)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while _recipe_epochs_done(run) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumed = _train("--resume", str(run), "--no-progress")
        assert resumed.returncode == 0, resumed.stderr
        assert (run / "last.safetensors").read_bytes() == want, f"trial {trial}: killed after {target} epochs"
        assert _recipe_epochs_done(run) == 12


def test_resume_errors_are_one_line(tmp_path):
    proc = _train("--resume", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / STATE_FILE).write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_train_state(tmp_path)
    with pytest.raises(MissingFileError):
        load_train_state(tmp_path / "missing")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_planted_pickle_is_refused(tmp_path):
    """``torch.load(weights_only=True)``: a state file that would run code is refused, not executed."""
    torch.save({"version": 1, "payload": _Exploit()}, tmp_path / STATE_FILE)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_train_state(tmp_path)


def test_fit_resume_refuses_changed_settings_and_continues_otherwise(tmp_path):
    from onebit.data import load_dataset
    from onebit.errors import ConfigError
    from onebit.models import create_model
    from onebit.train import fit

    data = load_dataset("digits")

    def run(epochs, resume):
        torch.manual_seed(0)
        model = create_model("tfc", num_classes=10, in_shape=data.in_shape)
        return fit(model, data, epochs=epochs, out_dir=tmp_path, progress=False, verbose=False, resume=resume)

    first = run(2, False)
    with pytest.raises(ConfigError, match="settings differ from the run's: epochs"):
        run(3, True)
    again = run(2, True)  # nothing left to train: the same result, read back
    assert [r.val_loss for r in again.history] == [r.val_loss for r in first.history]
    assert again.test_accuracy == first.test_accuracy
