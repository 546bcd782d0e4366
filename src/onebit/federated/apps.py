"""FedHyBNN's Flower apps: ``server_app`` (a ``ServerApp``) and ``client_app`` (a ``ClientApp``).

The same two objects run under Flower's deployment engine (a SuperLink and SuperNodes, the
ServerApp and ClientApps in their own processes; :mod:`onebit.federated.deployment`) and in one
process with ``--simulate`` (:mod:`onebit.federated.simulation`). Both find their run folder
(:mod:`onebit.federated.workspace`) through the run config key ``run-dir``; a client knows its
index from its node config key ``partition-id`` (``flower-supernode --node-config``).

Client side, per training message: the client's codes (its own rows through the shipped,
frozen encoder), the global tensors loaded into a fresh head (under FedBN with its own
BatchNorm tensors from the node's persistent ``context.state``), ``local_epochs`` of training
(:func:`onebit.federated.local.train_head`, seeded by run seed, round and client), then the
upload (:func:`onebit.federated.uploads.encode_update`: float32 state, or packed signs of the
update with per-tensor scales; the error-feedback residual also lives in ``context.state``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from onebit.atomic import atomic_write
from onebit.federated.local import client_seed, evaluate_head, head_state, load_head_state, train_head
from onebit.federated.strategy import FedHyBNN, RunRecorder, numpy_to_record, record_to_numpy
from onebit.federated.uploads import SCALES_KEY, SIGNS_KEY, encode_update
from onebit.federated.workspace import RUN_DIR_KEY, Workspace

__all__ = ["SIMULATED_KEY", "NodeDisconnected", "client_app", "run_server", "server_app"]

log = logging.getLogger(__name__)

SIMULATED_KEY = "onebit-simulated"  # run config key set by the in-process engine


class NodeDisconnected(Exception):
    """Raised by a client with an injected ``disconnect`` fault under ``--simulate``: the in-process
    grid then treats its node as gone (no reply, now or later)."""


# ---------------------------------------------------------------------------------------------- server

server_app = ServerApp()


@server_app.main()
def _server_main(grid: Grid, context: Context) -> None:
    run_server(grid, context.run_config[RUN_DIR_KEY])


def run_server(grid: Grid, run_dir: str | Path) -> None:
    """The ServerApp's body: handshake, ``rounds`` rounds of FedHyBNN, the final head saved."""
    ws = Workspace(run_dir)
    recorder = RunRecorder(ws)
    handler = logging.FileHandler(ws.dir / "server.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger("onebit.federated").addHandler(handler)
    try:
        strategy = FedHyBNN(ws, recorder)
        strategy.handshake(grid)
        result = strategy.start(grid=grid, initial_arrays=strategy.initial_arrays(), num_rounds=ws.config.rounds,
                                timeout=ws.config.round_timeout, evaluate_fn=strategy.evaluate_global)
        final = record_to_numpy(result.arrays) if result.arrays is not None and len(result.arrays) else \
            strategy.global_state
        _save_head(ws.dir / "global_head.safetensors", head_state(strategy.global_head(final)))
        recorder.finish()
    except BaseException as exc:
        recorder.fail(exc)
        raise
    finally:
        logging.getLogger("onebit.federated").removeHandler(handler)
        handler.close()


def _save_head(path: Path, state: dict[str, np.ndarray]) -> None:
    import torch
    from safetensors.torch import save_file

    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))


# ---------------------------------------------------------------------------------------------- client

client_app = ClientApp()


def _client(context: Context) -> int:
    return int(context.node_config["partition-id"])


@client_app.query()
def _query(msg: Message, context: Context) -> Message:
    client = _client(context)
    ws = Workspace(context.run_config[RUN_DIR_KEY])
    rows = ws.client_rows()[client]
    return Message(RecordDict({"metrics": MetricRecord({"client": client, "num-examples": rows})}), reply_to=msg)


def _load_local(model: object, context: Context, ws: Workspace) -> None:
    if ws.config.fedbn and "local-bn" in context.state.array_records:
        load_head_state(model, record_to_numpy(context.state.array_records["local-bn"]))


@client_app.train()
def _train(msg: Message, context: Context) -> Message:
    import torch

    torch.set_num_threads(1)
    ws = Workspace(context.run_config[RUN_DIR_KEY])
    cfg, client = ws.config, _client(context)
    server_round = int(msg.content["config"]["server-round"])
    fault = cfg.fault(client, server_round)
    if fault == "crash":
        raise RuntimeError(f"injected crash of client {client} in round {server_round}")
    if fault == "disconnect":
        if context.run_config.get(SIMULATED_KEY):
            raise NodeDisconnected(f"client {client} disconnects in round {server_round}")
        time.sleep(10 * cfg.round_timeout)  # the launcher kills this node's SuperNode meanwhile
    x, y = ws.client_codes(client)
    model = ws.new_head()
    _load_local(model, context, ws)
    global_state = record_to_numpy(msg.content["arrays"])
    load_head_state(model, global_state)
    stats = train_head(model, x, y, epochs=cfg.local_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                       seed=client_seed(cfg.seed, server_round, client))
    local = head_state(model)
    if cfg.fedbn:
        context.state.array_records["local-bn"] = numpy_to_record({k: local[k] for k in ws.layout["batchnorm"]})
    residual = None
    if cfg.upload == "sign" and cfg.error_feedback:
        stored = context.state.array_records.get("residual")
        residual = record_to_numpy(stored) if stored is not None else {
            k: np.zeros_like(v) for k, v in global_state.items()}
    upload, residual = encode_update({k: local[k] for k in global_state}, global_state, cfg.upload, residual)
    if residual is not None:
        context.state.array_records["residual"] = numpy_to_record(residual)
    if fault == "nan":
        key = SCALES_KEY if cfg.upload == "sign" else sorted(global_state)[0]
        upload[key] = upload[key].copy()
        upload[key].reshape(-1)[0] = np.nan
    elif fault == "shape":
        key = SIGNS_KEY if cfg.upload == "sign" else sorted(global_state)[0]
        upload[key] = np.concatenate([upload[key].reshape(-1), upload[key].reshape(-1)[:1]])
    metrics = MetricRecord({"num-examples": int(stats["examples"]), "train-loss": stats["loss"],
                            "train-accuracy": stats["accuracy"], "client": client})
    return Message(RecordDict({"arrays": numpy_to_record(upload), "metrics": metrics}), reply_to=msg)


@client_app.evaluate()
def _evaluate(msg: Message, context: Context) -> Message:
    import torch

    torch.set_num_threads(1)
    ws = Workspace(context.run_config[RUN_DIR_KEY])
    model = ws.new_head()
    _load_local(model, context, ws)
    load_head_state(model, record_to_numpy(msg.content["arrays"]))
    x, y = ws.test_codes()
    stats = evaluate_head(model, x, y)
    metrics = MetricRecord({"num-examples": int(stats["examples"]), "accuracy": stats["accuracy"],
                            "loss": stats["loss"]})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
