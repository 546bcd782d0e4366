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

# One torch thread (the recipe's is two): resuming must be exact at any fixed count, and on a busy 2-core
# machine a second OpenMP thread mostly spin-waits (5x the CPU time).
ARGS = ["--model", "binarynet_mlp", "-M", "hidden=512", "--epochs", "8", "--threads", "1", "--no-progress"]


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onebit.cli", "train", *args], capture_output=True, text=True,
                          timeout=300)


def _epochs_done(run) -> int:
    try:
        return len(json.loads((run / "metrics.json").read_text())["history"])
    except (OSError, ValueError, KeyError):
        return 0


def _kill_after(proc: subprocess.Popen, done, target: int, linger: float = 0.0) -> None:
    """SIGKILL ``proc`` once ``done()`` reaches ``target`` epochs (and ``linger`` seconds more)."""
    deadline = time.monotonic() + 120
    while done() < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(linger)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_killed_runs_resume_to_the_uninterrupted_weights(tmp_path):
    """One run killed twice (the second time while resuming from the first kill), then resumed to the end."""
    reference = tmp_path / "reference"
    assert _train(*ARGS, "--out", str(reference)).returncode == 0
    want = (reference / "last.safetensors").read_bytes()
    rng = random.Random(0)
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "onebit.cli", "train", *ARGS, "--out", str(run)]
    killed_after = []
    for target in (rng.randint(1, 3), rng.randint(4, 5)):
        target = max([target, *(k + 1 for k in killed_after)])  # the resumed run trains an epoch first
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # somewhere inside the next epoch (or its checkpoint writes)
        _kill_after(proc, lambda: _epochs_done(run), target, rng.uniform(0.0, 0.3))
        # What the kill left is loadable: the last finished epoch's state and checkpoint.
        state = load_train_state(run)
        assert 1 <= state["epoch"] <= 8
        killed_after.append(state["epoch"])
        load_checkpoint(run / "last.safetensors")
        command = [sys.executable, "-m", "onebit.cli", "train", "--resume", str(run), "--no-progress"]
    resumed = _train("--resume", str(run), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "last.safetensors").read_bytes() == want, f"killed after epochs {killed_after}"
    assert _epochs_done(run) == 8
    assert killed_after[0] < killed_after[1] < 8, killed_after  # both kills landed mid-run, the second one later


REACTNET = ["--model", "tfc", "--recipe", "reactnet", "--epochs", "6", "--no-progress"]


def _recipe_epochs_done(run) -> int:
    """Epochs finished over every step of a multi-step run: teacher, stage 1, and the last step."""
    return sum(_epochs_done(folder) for folder in (run / "teacher", run / "stage1", run))


def test_killed_multi_step_runs_resume_to_the_uninterrupted_weights(tmp_path):
    """ReActNet's recipe (teacher 6 epochs, then 3 + 3 two-step epochs), killed once in each step (each kill
    but the first interrupting a resumed run), resumes exactly."""
    reference = tmp_path / "reference"
    assert _train(*REACTNET, "--out", str(reference)).returncode == 0
    want = (reference / "last.safetensors").read_bytes()
    rng = random.Random(1)
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "onebit.cli", "train", *REACTNET, "--out", str(run)]
    killed_after = []
    for target in (rng.randint(1, 5), rng.randint(6, 8), rng.randint(9, 11)):
        target = max([target, *(k + 1 for k in killed_after)])
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _kill_after(proc, lambda: _recipe_epochs_done(run), target)
        killed_after.append(_recipe_epochs_done(run))
        command = [sys.executable, "-m", "onebit.cli", "train", "--resume", str(run), "--no-progress"]
    assert killed_after[-1] < 12, killed_after  # the last kill did land mid-run
    resumed = _train("--resume", str(run), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "last.safetensors").read_bytes() == want, f"killed after {killed_after} epochs"
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
