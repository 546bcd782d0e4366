"""``--simulate``: the same ServerApp and ClientApp in one process, on an in-process Flower ``Grid``.

:class:`LocalGrid` implements Flower's ``Grid`` interface: ``send_and_receive`` hands each
message to the ``ClientApp`` of its destination node, in the order sent, each node with its own
``Context`` (node config ``partition-id``/``num-partitions``, a persistent ``state``) as a
SuperNode keeps it. A ClientApp that raises gives the error reply Flower's runtime gives
(``ClientApp raised an exception``); one that raises
:class:`~onebit.federated.apps.NodeDisconnected` makes its node vanish (no reply, now or later),
which is what the server sees of a killed SuperNode once the round times out, without waiting.

It runs no network, no processes, no Ray: quick tests and sweeps. The deployment engine
(:mod:`onebit.federated.deployment`) runs the very same apps for real.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from pathlib import Path

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid

from onebit.federated.apps import SIMULATED_KEY, NodeDisconnected, client_app, run_server
from onebit.federated.workspace import RUN_DIR_KEY

__all__ = ["LocalGrid", "simulate"]

log = logging.getLogger(__name__)

CLIENT_APP_RAISED_EXCEPTION = 2  # flwr.common.constant.ErrorCode


class LocalGrid(Grid):
    """N in-process nodes, node ids ``1000 + k`` for client k."""

    def __init__(self, app: ClientApp, clients: int, run_config: dict[str, object]) -> None:
        from flwr.common.constant import SUPERLINK_NODE_ID
        from flwr.supercore.run import Run
        from flwr.supercore.task_identity import TaskIdentity

        # What Flower's ServerApp process sets before its main runs (flwr.server.compat.app does the same).
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
        self.app = app
        self._run = Run.create_empty(run_id=1)
        self.contexts = {1000 + k: Context(run_id=1, node_id=1000 + k,
                                           node_config={"partition-id": k, "num-partitions": clients},
                                           state=RecordDict(), run_config=dict(run_config)) for k in range(clients)}
        self.gone: set[int] = set()
        self._replies: dict[str, Message] = {}

    def set_run(self, run: object) -> None:
        self._run = run

    @property
    def run(self) -> object:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return [n for n in self.contexts if n not in self.gone]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = msg.object_id
            node = msg.metadata.dst_node_id
            ids.append(msg.metadata.message_id)
            if node not in self.contexts or node in self.gone:
                continue
            try:
                reply = self.app(msg, self.contexts[node])
            except NodeDisconnected as exc:
                log.info("simulated node %d vanished: %s", node, exc)
                self.gone.add(node)
                continue
            except Exception as exc:  # what Flower's SuperNode does with a ClientApp exception
                reason = f"ClientApp raised an exception: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
                reply = Message(Error(code=CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)
            self._replies[msg.metadata.message_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return list(self.pull_messages(list(self.push_messages(messages))))


def simulate(run_dir: str | Path, clients: int) -> None:
    """Run the ServerApp's body with ``clients`` in-process ClientApps on the run folder ``run_dir``."""
    grid = LocalGrid(client_app, clients, {RUN_DIR_KEY: str(run_dir), SIMULATED_KEY: True})
    flower_log = logging.getLogger("flwr")
    level = flower_log.level
    flower_log.setLevel(logging.WARNING)  # Flower's per-round INFO lines; onebit logs its own summary per round
    try:
        run_server(grid, run_dir)
    finally:
        flower_log.setLevel(level)
