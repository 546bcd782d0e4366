"""FedHyBNN's Flower strategy: FedAvg (or a 1-bit rule) on the head's latent weights and BatchNorm state.

:class:`FedHyBNN` implements Flower's message-based ``Strategy`` (``configure_train``,
``aggregate_train``, ``configure_evaluate``, ``aggregate_evaluate``) and runs under its
``Strategy.start`` loop on any Flower ``Grid``: the deployment engine's (SuperLink) or the
in-process one of ``--simulate`` (:mod:`onebit.federated.simulation`).

- Before round 1 it asks every node for its client index (a Flower ``query`` message), waiting
  up to ``connect_timeout`` for all ``clients`` nodes to connect.
- Each round goes to every node still in the run. A node that returns an error (its ClientApp
  raised) is logged and left out of that round's average; a node that does not reply within
  ``round_timeout`` is logged as lost and not asked again; the round completes with the others.
- Every reply is checked (:func:`onebit.federated.uploads.check_upload`): wrong tensor names,
  shapes or dtypes, NaN or infinite values get the update rejected, with the reason in the log,
  never averaged in.
- Aggregation (:func:`onebit.federated.uploads.aggregate`) runs over the accepted uploads sorted
  by client index (the float sum's order is fixed, so a run repeats bit for bit); weights are
  the clients' example counts.
- FedBN (Li et al. 2021, arXiv:2102.07623): BatchNorm tensors are never sent; each client keeps
  its own, and evaluates the global binary weights with them (the reported accuracy is the
  clients' mean on the test rows). Otherwise the server evaluates the global head itself.
- Traffic is measured on the messages themselves: the bytes of every distinct serialized object
  of each message (Flower's ``deflate``: arrays, array chunks, records, metadata; Flower sends an
  object once per message, so identical arrays, such as freshly initialized BatchNorm tensors,
  count once), per direction and round; and the tensors' payload bytes alone.

Everything it logs also goes into ``history.json`` in the run folder (its events list).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from onebit.atomic import atomic_write_text
from onebit.errors import ConfigError
from onebit.federated.local import evaluate_head, head_state, load_head_state
from onebit.federated.uploads import aggregate, check_upload, upload_payload_bytes
from onebit.federated.workspace import Workspace

__all__ = ["FedHyBNN", "RunRecorder", "message_bytes", "record_to_numpy"]

log = logging.getLogger(__name__)


def message_bytes(message: Message) -> int:
    """Bytes of a message as Flower sends it: the sum of its serialized objects (the message,
    its records, arrays and array chunks)."""
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    return int(sum(len(obj.deflate()) for obj in get_all_nested_objects(message).values()))


def _first_line(reason: object) -> str:
    """An error reason without its traceback: the first non-empty line, at most 300 characters."""
    lines = [line.strip() for line in str(reason).split("Traceback")[0].splitlines() if line.strip()]
    return (lines[0] if lines else str(reason).strip())[:300]


def record_to_numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    """``{name: numpy array}`` of an ArrayRecord."""
    return {k: v.numpy() for k, v in record.items()}


def numpy_to_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    """An ArrayRecord of numpy arrays (sorted names)."""
    return ArrayRecord({k: Array(np.ascontiguousarray(arrays[k])) for k in sorted(arrays)})


class RunRecorder:
    """``history.json`` of a run: status, per-round records, events; rewritten atomically at each change."""

    def __init__(self, workspace: Workspace) -> None:
        self.path = workspace.dir / "history.json"
        self.data: dict[str, Any] = {"status": "running", "started": time.time(), "rounds": [], "events": [],
                                     "clients": {}, "handshake_bytes": 0, "round_started": 0}
        self.write()

    def write(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1, default=float) + "\n")

    def event(self, message: str, level: int = logging.WARNING) -> None:
        log.log(level, message)
        self.data["events"].append(message)
        self.write()

    def finish(self) -> None:
        self.data["status"] = "finished"
        self.data["seconds"] = time.time() - self.data["started"]
        self.write()

    def fail(self, exc: BaseException) -> None:
        self.data["status"] = "failed"
        self.data["error"] = f"{type(exc).__name__}: {exc}"
        self.write()


class FedHyBNN(Strategy):
    """The run's strategy; see the module docstring. ``recorder`` receives its history."""

    def __init__(self, workspace: Workspace, recorder: RunRecorder) -> None:
        self.ws, self.cfg, self.rec = workspace, workspace.config, recorder
        self.nodes: dict[int, int] = {}  # node id -> client index
        self.lost: set[int] = set()
        self.global_state: dict[str, np.ndarray] = {}
        self.round: dict[str, Any] = {}
        self.head = workspace.new_head()
        self.initial_bn: dict[str, np.ndarray] = head_state(self.head)

    # ------------------------------------------------------------------ setup

    def summary(self) -> None:
        """Log the strategy's settings."""
        c = self.cfg
        log.info("FedHyBNN: %d clients, %d rounds × %d local epoch%s, %s uploads%s, %s", c.clients, c.rounds,
                 c.local_epochs, "" if c.local_epochs == 1 else "s", c.upload, f" ({c.rule}, error feedback {c.error_feedback})" if c.upload == "sign"
                 else "", "FedBN (BatchNorm local)" if c.fedbn else "FedAvg on latent weights and BatchNorm")

    def initial_arrays(self) -> ArrayRecord:
        """The seeded initial head, communicated tensors only."""
        from onebit.train import set_seed

        set_seed(self.cfg.seed)
        self.head = self.ws.new_head()
        self.initial_bn = head_state(self.head)
        self.global_state = head_state(self.head, self.ws.communicated)
        return numpy_to_record(self.global_state)

    def handshake(self, grid: Grid) -> dict[int, int]:
        """Wait for the nodes, ask each for its client index; returns node id → client."""
        c = self.cfg
        deadline = time.monotonic() + c.connect_timeout
        while len(nodes := sorted(grid.get_node_ids())) < c.clients:
            if time.monotonic() > deadline:
                raise ConfigError(f"only {len(nodes)} of {c.clients} clients connected within {c.connect_timeout:g} s")
            time.sleep(0.5)
        messages = [Message(RecordDict({"config": ConfigRecord({"ask": "client-index"})}), dst_node_id=n,
                            message_type=MessageType.QUERY) for n in nodes]
        replies = list(grid.send_and_receive(messages, timeout=c.connect_timeout))
        total = sum(message_bytes(m) for m in messages) + sum(message_bytes(m) for m in replies)
        for reply in replies:
            if reply.has_error():
                raise ConfigError(f"node {reply.metadata.src_node_id} failed the handshake: {reply.error.reason}")
            client = int(next(iter(reply.content.metric_records.values()))["client"])
            if client in self.nodes.values() or not 0 <= client < c.clients:
                raise ConfigError(f"node {reply.metadata.src_node_id} says it is client {client}: not one of 0.."
                                  f"{c.clients - 1} or already taken")
            self.nodes[reply.metadata.src_node_id] = client
        if len(self.nodes) != c.clients:
            raise ConfigError(f"only {len(self.nodes)} of {c.clients} clients answered the handshake within "
                              f"{c.connect_timeout:g} s")
        self.rec.data["clients"] = {str(n): k for n, k in sorted(self.nodes.items(), key=lambda t: t[1])}
        self.rec.data["handshake_bytes"] = total
        self.rec.write()
        log.info("handshake: %d clients (%s bytes)", len(self.nodes), f"{total:,}")
        return self.nodes

    def _who(self, node: int) -> str:
        return f"client {self.nodes.get(node, '?')} (node {node})"

    def _active(self) -> list[int]:
        return sorted((n for n in self.nodes if n not in self.lost), key=lambda n: self.nodes[n])

    # ------------------------------------------------------------------ training

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """One train message per client still in the run, carrying the global tensors."""
        self.global_state = record_to_numpy(arrays)
        active = self._active()
        messages = [Message(RecordDict({"arrays": arrays, "config": ConfigRecord({"server-round": server_round})}),
                            dst_node_id=n, message_type=MessageType.TRAIN) for n in active]
        down = [message_bytes(m) for m in messages]
        self.round = {"round": server_round, "sent": [self.nodes[n] for n in active], "download_bytes": sum(down),
                      "download_payload_bytes": len(active) * upload_payload_bytes(self.global_state),
                      "upload_bytes": 0, "upload_payload_bytes": 0, "accepted": [], "rejected": {}, "failed": {},
                      "lost": [], "evaluation_bytes": 0, "started": time.time()}
        self._sent = active
        self.rec.data["round_started"] = server_round
        self.rec.write()
        return messages

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Check each reply, log and drop the bad ones, aggregate the rest (sorted by client)."""
        replies = list(replies)
        accepted: list[tuple[int, dict[str, np.ndarray], float, dict[str, float]]] = []
        answered = set()
        for msg in replies:
            node = msg.metadata.src_node_id
            answered.add(node)
            if msg.has_error():
                self.round["failed"][str(self.nodes.get(node, -1))] = msg.error.reason
                self.rec.event(f"round {server_round}: {self._who(node)} failed, left out of this round: "
                               f"{_first_line(msg.error.reason)}")
                continue
            size = message_bytes(msg)
            self.round["upload_bytes"] += size
            arrays, metrics, reason = self._unpack(msg)
            if reason is None:
                self.round["upload_payload_bytes"] += upload_payload_bytes(arrays)
                accepted.append((self.nodes[node], arrays, float(metrics["num-examples"]), dict(metrics)))
            else:
                self.round["rejected"][str(self.nodes.get(node, -1))] = reason
                self.rec.event(f"round {server_round}: update of {self._who(node)} rejected: {reason}")
        for node in self._sent:
            if node not in answered:
                self.lost.add(node)
                self.round["lost"].append(self.nodes[node])
                self.rec.event(f"round {server_round}: {self._who(node)} lost: no reply within "
                               f"{self.cfg.round_timeout:g} s; the round completes with the others and it is not "
                               "asked again")
        if not accepted:
            self.rec.event(f"round {server_round}: no usable update; the global model is unchanged")
            return None, None
        accepted.sort(key=lambda t: t[0])
        self.round["accepted"] = [t[0] for t in accepted]
        layout = self.ws.layout
        new = aggregate(self.global_state, [t[1] for t in accepted], [t[2] for t in accepted], self.cfg.upload,
                        self.cfg.rule, clip=layout["binary"], positive=layout["variances"])
        weights = np.array([t[2] for t in accepted])
        metrics = MetricRecord({k: float(np.average([t[3][k] for t in accepted], weights=weights))
                                for k in ("train-loss", "train-accuracy")})
        self.round.update({k.replace("-", "_"): float(v) for k, v in metrics.items()})
        return numpy_to_record(new), metrics

    def _unpack(self, msg: Message) -> tuple[dict[str, np.ndarray], dict[str, Any], str | None]:
        content = msg.content
        if "arrays" not in content.array_records or "metrics" not in content.metric_records:
            return {}, {}, "the reply lacks its 'arrays' or 'metrics' record"
        metrics = content.metric_records["metrics"]
        n = metrics.get("num-examples")
        if not isinstance(n, int | float) or not np.isfinite(n) or n <= 0:
            return {}, {}, f"num-examples is {n!r}, not a positive number"
        for key in ("train-loss", "train-accuracy"):
            if not isinstance(metrics.get(key), int | float):
                return {}, {}, f"metric {key!r} missing"
        try:
            arrays = record_to_numpy(content.array_records["arrays"])
        except Exception as exc:  # a malformed array: Flower raises its own types
            return {}, {}, f"arrays cannot be read ({exc})"
        return arrays, dict(metrics), check_upload(arrays, self.ws.spec, self.cfg.upload)

    # ------------------------------------------------------------------ evaluation

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        """Under FedBN each client evaluates the global weights with its own BatchNorm; else nobody."""
        if not self.cfg.fedbn:
            return []
        messages = [Message(RecordDict({"arrays": arrays, "config": ConfigRecord({"server-round": server_round})}),
                            dst_node_id=n, message_type=MessageType.EVALUATE) for n in self._active()]
        self.round["evaluation_bytes"] += sum(message_bytes(m) for m in messages)
        return messages

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """The clients' mean test accuracy (FedBN)."""
        accuracies = []
        for msg in replies:
            if msg.has_error():
                self.rec.event(f"round {server_round}: evaluation on {self._who(msg.metadata.src_node_id)} failed: "
                               f"{_first_line(msg.error.reason)}")
                continue
            self.round["evaluation_bytes"] += message_bytes(msg)
            m = msg.content.metric_records.get("metrics", {})
            if isinstance(m.get("accuracy"), int | float) and np.isfinite(m["accuracy"]):
                accuracies.append(float(m["accuracy"]))
        if not accuracies:
            return None
        self.round["accuracy"] = float(np.mean(accuracies))
        self.round["client_accuracies"] = accuracies
        return MetricRecord({"accuracy": self.round["accuracy"]})

    def global_head(self, arrays: ArrayRecord | dict[str, np.ndarray]) -> torch.nn.Module:
        """The head with the global tensors (under FedBN: the initial BatchNorm, which no client uses)."""
        state = arrays if isinstance(arrays, dict) else record_to_numpy(arrays)
        head = self.ws.new_head()
        load_head_state(head, {**self.initial_bn, **state})
        return head.eval()

    def evaluate_global(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        """Called by ``Strategy.start`` after each round (and before round 1): closes the round's record."""
        if not self.cfg.fedbn:
            x, y = self.ws.test_codes()
            accuracy = evaluate_head(self.global_head(arrays), x, y)["accuracy"]
        else:
            accuracy = self.round.get("accuracy") if server_round > 0 else None
        if server_round == 0:
            self.rec.data["initial_accuracy"] = accuracy
            self.rec.write()
            return None if accuracy is None else MetricRecord({"accuracy": accuracy})
        self.round["accuracy"] = accuracy
        self.round["seconds"] = time.time() - self.round.pop("started")
        self.rec.data["rounds"].append(self.round)
        self.rec.write()
        log.info("round %d: accuracy %s, upload %s bytes, download %s bytes", server_round,
                 "–" if accuracy is None else f"{accuracy:.4f}", f"{self.round['upload_bytes']:,}",
                 f"{self.round['download_bytes']:,}")
        return None if accuracy is None else MetricRecord({"accuracy": float(accuracy)})
