"""FedHyBNN (onebit.federated): partitions, the 1-bit codec and aggregation rules against brute force, fault
handling in the in-process engine, the command, Flower as an optional extra, and the real deployment engine
(a SuperLink and SuperNodes on 127.0.0.1: loopback only, faults survived, nothing left running)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

import onebit
from onebit.cli import main
from onebit.errors import ConfigError
from onebit.experiments import run_experiment
from onebit.federated import (
    FederatedConfig, aggregate, check_upload, decode_signs, dirichlet_partition, encode_update, iid_partition,
    pack_signs, partition_counts, prepare_federated, run_federated, train_encoder,
)
from onebit.federated.uploads import SCALES_KEY, SIGNS_KEY

REPO = Path(__file__).resolve().parents[1]
flwr = pytest.importorskip("flwr", reason="Flower is the optional extra 'federated' (pip install 'onebit[federated]')")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def digits():
    return onebit.load_dataset("digits")


SMALL = dict(data="digits", rounds=2, local_epochs=1, latent_bits=16, vae_epochs=2, vae_hidden=(64,), head_hidden=64,
             head_depth=1, batch_size=32)


@pytest.fixture(scope="module")
def encoder(digits):
    torch.set_num_threads(1)
    return train_encoder(FederatedConfig(**SMALL), digits)


# ------------------------------------------------------------------------------------------ partitions


def test_iid_partition_deals_every_row_once_in_near_equal_parts():
    y = np.arange(1003) % 10
    parts = iid_partition(y, 4, seed=3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1003))
    assert {len(p) for p in parts} == {250, 251}
    assert all(np.array_equal(a, b) for a, b in zip(parts, iid_partition(y, 4, seed=3)))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, iid_partition(y, 4, seed=4)))


def test_dirichlet_partition_skews_labels_more_for_small_alpha():
    y = np.random.default_rng(0).integers(0, 10, 4000)
    for alpha in (0.1, 100.0):
        parts = dirichlet_partition(y, 5, alpha, seed=0, min_size=32)
        assert sorted(np.concatenate(parts).tolist()) == list(range(4000))
        assert min(len(p) for p in parts) >= 32
    counts = {a: partition_counts(y, dirichlet_partition(y, 5, a, seed=0), 10) for a in (0.1, 100.0)}
    share = {a: (c / c.sum(1, keepdims=True)).max(1).mean() for a, c in counts.items()}  # biggest class share
    assert share[0.1] > 0.5 > 0.2 > share[100.0]
    with pytest.raises(ConfigError, match="Dirichlet concentration α must be a positive number, got 0"):
        dirichlet_partition(y, 5, 0)
    with pytest.raises(ConfigError, match="3 training rows cannot be dealt to 5 clients"):
        iid_partition(np.arange(3), 5)
    with pytest.raises(ConfigError, match="number of clients must be a positive integer, got 0"):
        iid_partition(y, 0)


# ------------------------------------------------------------------------------------------ uploads


def _states(rng, n=3):
    shapes = {"a.weight": (5, 7), "b.bias": (3,), "c.running_var": (4,)}
    glob = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    locs = [{k: (v + rng.standard_normal(v.shape)).astype(np.float32) for k, v in glob.items()} for _ in range(n)]
    return shapes, glob, locs


def test_sign_packing_round_trips_with_bit_one_for_minus_one():
    v = np.array([0.5, -0.1, 0.0, -3.0, 2.0, -0.0, 1.0, -1.0, -7.0])
    bits = pack_signs(v)
    assert bits.dtype == np.uint8 and bits.shape == (2,)
    assert bits[0] == 0b10001010 and bits[1] == 0b1  # little bit order: element i is bit i; sign(0) = sign(-0) = +1
    np.testing.assert_array_equal(decode_signs(bits, (3, 3)), np.where(v < 0, -1, 1).reshape(3, 3))


def test_sign_upload_encodes_the_update_with_per_tensor_scales_and_residual():
    rng = np.random.default_rng(0)
    shapes, glob, locs = _states(rng, 1)
    residual = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    upload, new_residual = encode_update(locs[0], glob, "sign", residual)
    assert set(upload) == {SIGNS_KEY, SCALES_KEY}
    keys = sorted(shapes)
    deltas = [np.float64(locs[0][k]) - glob[k] + residual[k] for k in keys]
    flat = np.concatenate([d.reshape(-1) for d in deltas])
    np.testing.assert_array_equal(decode_signs(upload[SIGNS_KEY], flat.shape), np.where(flat < 0, -1, 1))
    np.testing.assert_allclose(upload[SCALES_KEY], [np.abs(d).mean() for d in deltas], rtol=1e-6)
    for k, d, a in zip(keys, deltas, upload[SCALES_KEY]):
        np.testing.assert_allclose(new_residual[k], d - a * np.where(d < 0, -1, 1), rtol=1e-5, atol=1e-6)
    assert upload[SIGNS_KEY].nbytes == math.ceil(sum(math.prod(s) for s in shapes.values()) / 8)
    float_upload, none = encode_update(locs[0], glob, "float32")
    assert none is None and all(np.array_equal(float_upload[k], locs[0][k]) for k in keys)


def test_aggregation_rules_equal_their_formulas():
    rng = np.random.default_rng(1)
    shapes, glob, locs = _states(rng, 3)
    w = [100.0, 300.0, 200.0]
    p = np.array(w) / sum(w)
    keys = sorted(shapes)
    new = aggregate(glob, [encode_update(l, glob, "float32")[0] for l in locs], w, "float32")
    for k in keys:
        np.testing.assert_allclose(new[k], sum(pi * l[k] for pi, l in zip(p, locs)), rtol=1e-6)
    uploads = [encode_update(l, glob, "sign")[0] for l in locs]
    signs = [[np.where(l[k] - glob[k] < 0, -1.0, 1.0) for k in keys] for l in locs]
    alphas = [[np.abs(np.float64(l[k]) - glob[k]).mean() for k in keys] for l in locs]
    vote = aggregate(glob, uploads, w, "sign", "vote")
    mean = aggregate(glob, uploads, w, "sign", "mean")
    for i, k in enumerate(keys):
        alpha_bar = sum(pi * a[i] for pi, a in zip(p, alphas))
        np.testing.assert_allclose(vote[k], glob[k] + alpha_bar * np.sign(sum(pi * s[i] for pi, s in zip(p, signs))),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mean[k], glob[k] + sum(pi * a[i] * s[i] for pi, a, s in zip(p, alphas, signs)),
                                   rtol=1e-5, atol=1e-6)
    clipped = aggregate(glob, uploads, w, "sign", "mean", clip=["a.weight"], positive=["c.running_var"])
    assert np.abs(clipped["a.weight"]).max() <= 1.0 and clipped["c.running_var"].min() >= 1e-5
    with pytest.raises(ConfigError, match=r"unknown sign aggregation rule 'avg'"):
        aggregate(glob, uploads, w, "sign", "avg")


def test_check_upload_rejects_what_must_not_be_averaged():
    rng = np.random.default_rng(2)
    shapes, glob, locs = _states(rng, 1)
    good, _ = encode_update(locs[0], glob, "float32")
    assert check_upload(good, shapes, "float32") is None
    bad = dict(good, **{"a.weight": good["a.weight"].copy()})
    bad["a.weight"][0, 0] = np.nan
    assert check_upload(bad, shapes, "float32") == "tensor 'a.weight' holds NaN or infinite values"
    assert "expected float32 (5, 7)" in check_upload(dict(good, **{"a.weight": np.zeros((7, 5), np.float32)}),
                                                     shapes, "float32")
    assert "expected float32" in check_upload(dict(good, **{"b.bias": np.zeros(3, np.float64)}), shapes, "float32")
    assert check_upload({k: v for k, v in good.items() if k != "b.bias"}, shapes,
                        "float32") == "tensors missing ['b.bias']"
    signs, _ = encode_update(locs[0], glob, "sign")
    assert check_upload(signs, shapes, "sign") is None
    assert "expected 6 packed bytes" in check_upload(dict(signs, **{SIGNS_KEY: signs[SIGNS_KEY][:-1]}), shapes, "sign")
    assert "scales hold NaN" in check_upload(dict(signs, **{SCALES_KEY: np.full(3, np.nan, np.float32)}),
                                             shapes, "sign")
    assert "unexpected ['a.weight']" in check_upload(dict(signs, **{"a.weight": glob["a.weight"]}), shapes, "sign")


# ------------------------------------------------------------------------------------------ config


def test_config_names_the_bad_field():
    with pytest.raises(ConfigError, match="clients must be an integer ≥ 1, got 0"):
        FederatedConfig(clients=0).validate()
    with pytest.raises(ConfigError, match=r"unknown partition 'idd'; valid choices: dirichlet, iid"):
        FederatedConfig(partition="idd").validate()
    with pytest.raises(ConfigError, match=r"unknown fault 'crsh' \(did you mean 'crash'\?\)"):
        FederatedConfig(faults=[{"kind": "crsh", "client": 0, "round": 1}]).validate()
    with pytest.raises(ConfigError, match=r"a fault's client must be in \[0, 5\), got 7"):
        FederatedConfig(faults=[{"kind": "crash", "client": 7, "round": 1}]).validate()
    config = FederatedConfig(faults=[{"kind": "nan", "client": 1, "round": 3}]).validate()
    assert FederatedConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ConfigError, match="unknown federated settings"):
        FederatedConfig.from_dict({"clients": 2, "client": 3})


# ------------------------------------------------------------------------------------------ in-process engine


def test_simulated_run_survives_crash_nan_shape_and_disconnect(digits, encoder, tmp_path):
    faults = [{"kind": "nan", "client": 0, "round": 1}, {"kind": "crash", "client": 1, "round": 1},
              {"kind": "shape", "client": 2, "round": 2}, {"kind": "disconnect", "client": 3, "round": 2}]
    config = FederatedConfig(**SMALL, clients=4, upload="sign", faults=faults)
    result = run_federated(config, tmp_path / "run", simulate=True, data=digits, vae=encoder)
    r1, r2 = result.rounds
    assert r1["sent"] == [0, 1, 2, 3] and r1["accepted"] == [2, 3]
    assert list(r1["rejected"]) == ["0"] and r1["rejected"]["0"].startswith("scales hold NaN")
    assert list(r1["failed"]) == ["1"] and "injected crash of client 1 in round 1" in r1["failed"]["1"]
    assert r2["accepted"] == [0, 1] and "expected 245 packed bytes" in r2["rejected"]["2"] and r2["lost"] == [3]
    text = "\n".join(result.events)
    for needle in ("round 1: update of client 0", "rejected: scales hold NaN", "round 1: client 1",
                   "failed, left out of this round", "round 2: update of client 2", "round 2: client 3",
                   "lost: no reply"):
        assert needle in text
    assert result.lost == [3] and result.accuracy is not None and math.isfinite(result.accuracy)
    assert result.engine_accuracy == pytest.approx(result.accuracy)  # hybnn.onebit on the engine
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["status"] == "finished" and history["events"] == result.events


def test_simulated_runs_repeat_and_sign_uploads_carry_one_bit_per_value(digits, encoder, tmp_path):
    config = FederatedConfig(**SMALL, clients=2)
    a = run_federated(config, tmp_path / "a", simulate=True, data=digits, vae=encoder)
    b = run_federated(config, tmp_path / "b", simulate=True, data=digits, vae=encoder)
    assert [r["accuracy"] for r in a.rounds] == [r["accuracy"] for r in b.rounds]
    assert a.accuracy > 0.2  # 2 rounds on 16-bit codes of the digits, far above chance
    s = run_federated(dataclasses.replace(config, upload="sign"), tmp_path / "s", simulate=True, data=digits,
                      vae=encoder)
    values = sum(math.prod(v) for v in json.loads((tmp_path / "s" / "federated.json").read_text())["shapes"].values())
    tensors = len(json.loads((tmp_path / "s" / "federated.json").read_text())["shapes"])
    per_upload = math.ceil(values / 8) + 4 * tensors  # packed signs + one float32 scale per tensor
    assert s.upload_payload_bytes == 2 * 2 * per_upload  # 2 rounds × 2 clients
    assert a.upload_payload_bytes == 2 * 2 * 4 * values
    # Whole messages add Flower's framing (~1.5 kB a message), which weighs on this tiny head (1,674 values):
    assert 5 < a.upload_bytes / s.upload_bytes < a.upload_payload_bytes / s.upload_payload_bytes < 32


def test_fedbn_keeps_batchnorm_local(digits, encoder, tmp_path):
    config = FederatedConfig(**SMALL, clients=2, fedbn=True, partition="dirichlet", alpha=0.5)
    result = run_federated(config, tmp_path / "run", simulate=True, data=digits, vae=encoder)
    meta = json.loads((tmp_path / "run" / "federated.json").read_text())
    assert set(meta["communicated"]) == set(meta["layout"]["binary"])  # no BatchNorm tensor leaves a client
    assert meta["layout"]["batchnorm"] and not set(meta["layout"]["batchnorm"]) & set(meta["communicated"])
    assert len(result.rounds[-1]["client_accuracies"]) == 2 and result.model_path is None


# ------------------------------------------------------------------------------------------ the command


def test_command_runs_a_simulated_federation(tmp_path, capsys):
    out = tmp_path / "fed"
    assert main(["federated", "--simulate", "--clients", "2", "--rounds", "1", "--local-epochs", "1", "--data",
                 "digits", "--vae-epochs", "1", "--latent-bits", "8", "--head-hidden", "32", "--head-depth", "1",
                 "--upload", "sign", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["engine"] == "simulation" and len(result["rounds"]) == 1 and result["upload_bytes"] > 0
    assert (out / "hybnn.onebit").is_file() and (out / "results.json").is_file()


def _error(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    return capsys.readouterr().err.strip()


def test_command_rejects_bad_input_in_one_line(tmp_path, capsys):
    assert "argument --clients: expected a positive integer, got '0'" in _error(
        capsys, ["federated", "--clients", "0", "--out", str(tmp_path / "a")])
    assert _error(capsys, ["federated", "--upload", "sgn", "--out", str(tmp_path / "b")]) == (
        "onebit federated: error: unknown upload 'sgn' (did you mean 'sign'?); valid choices: float32, sign")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert _error(capsys, ["federated", "--port", str(port), "--out", str(tmp_path / "c")]) == (
            f"onebit federated: error: port {port} on 127.0.0.1 is in use; choose another --port or leave it out to "
            "let onebit pick a free one")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("")
    assert "already exists and is not empty" in _error(capsys, ["federated", "--out", str(tmp_path / "d")])
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()  # nothing done for a bad argument


def test_federated_imports_without_flower_and_says_how_to_install(tmp_path):
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, *a):\n"
            "        if name == 'flwr' or name.startswith('flwr.'):\n"
            "            raise ImportError('blocked')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import onebit.federated as f\n"
            "assert not f.flower_available()\n"
            "from onebit.federated import FederatedConfig, run_federated, iid_partition\n"
            "iid_partition(__import__('numpy').arange(10), 2)\n"
            "try:\n"
            "    run_federated(FederatedConfig(), sys.argv[1])\n"
            "except Exception as e:\n"
            "    print(type(e).__name__, e)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ConfigError" in proc.stdout and "pip install 'onebit[federated]'" in proc.stdout
    assert not (tmp_path / "x").exists()


def test_quick_experiment_runs_end_to_end(tmp_path):
    results = run_experiment("dua2022_fedhybnn", tmp_path / "run", quick=True)
    assert (tmp_path / "run" / "accuracy_vs_bytes.png").is_file()
    assert all(c["holds"] is None for c in results["claims"])


# ------------------------------------------------------------------------------------------ deployment engine


def _tagged(tag: str) -> list[int]:
    """Live processes whose environment holds ONEBIT_TEST_TAG=tag."""
    needle = f"ONEBIT_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0") and \
                        (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _listening(pids: list[int]) -> list[str]:
    """host:port of every listening TCP socket the processes hold (from /proc/net/tcp{,6})."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    out = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                addr, port = parts[1].split(":")
                raw = bytes.fromhex(addr)
                host = socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6,
                                        b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
                out.append(f"{host}:{int(port, 16)}")
    return out


pytestmark_linux = pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="needs Linux /proc")


@pytestmark_linux
@pytest.mark.slow
def test_deployment_on_loopback_survives_faults_and_leaves_nothing_running(digits, encoder, tmp_path):
    from onebit.federated.deployment import LocalDeployment, marked_processes

    faults = [{"kind": "crash", "client": 1, "round": 1}, {"kind": "disconnect", "client": 2, "round": 2}]
    # The disconnected client is waited for round_timeout seconds: 30, twice a healthy round on a loaded machine.
    config = FederatedConfig(**SMALL, clients=3, upload="sign", round_timeout=30.0, faults=faults)
    prepare_federated(config, tmp_path / "dep", data=digits, vae=encoder)
    with LocalDeployment(tmp_path / "dep") as deployment:
        pids = marked_processes(deployment.marker)
        assert len(pids) >= 4  # SuperLink, 3 SuperNodes (and Flower's SuperExecs)
        listening = _listening(pids)
        assert listening and all(a.startswith("127.0.0.1:") for a in listening), listening
        history = deployment.run()
        marker = deployment.marker
    assert marked_processes(marker) == []
    events = "\n".join(history["events"])
    assert "round 1: client 1" in events and "injected crash of client 1 in round 1" in events
    assert "round 2: client 2" in events and "lost: no reply within 30 s" in events
    assert [r["accepted"] for r in history["rounds"]] == [[0, 2], [0, 1]]
    twin = run_federated(config, tmp_path / "sim", simulate=True, data=digits, vae=encoder)
    assert [r["accuracy"] for r in history["rounds"]] == [r["accuracy"] for r in twin.rounds]  # the same apps


@pytestmark_linux
@pytest.mark.slow
def test_ctrl_c_and_failures_stop_every_process(digits, encoder, tmp_path, monkeypatch):
    tag = uuid.uuid4().hex
    env = dict(os.environ, ONEBIT_TEST_TAG=tag, PYTHONPATH=str(REPO / "src"))
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "onebit.cli", "federated", "--clients", "2", "--rounds", "50",
                             "--local-epochs", "1", "--data", "digits", "--vae-epochs", "1", "--latent-bits", "8",
                             "--head-hidden", "32", "--head-depth", "1", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in test_cli
    try:
        deadline = time.monotonic() + 240
        while not (out / "history.json").is_file() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert proc.poll() is None and len(_tagged(tag)) >= 4  # the run is under way
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in err.decode()
    assert _tagged(tag) == []
    # a run that fails (here: it cannot finish within its time limit) stops its processes too
    failed_tag = uuid.uuid4().hex
    monkeypatch.setenv("ONEBIT_TEST_TAG", failed_tag)  # inherited by every process the deployment starts
    config = FederatedConfig(**SMALL, clients=2)
    with pytest.raises(ConfigError, match="did not finish within 1 s"):
        run_federated(config, tmp_path / "failed", data=digits, vae=encoder, timeout=1.0)
    assert (tmp_path / "failed" / "logs" / "superlink.log").is_file()  # it did start
    assert _tagged(failed_tag) == []
