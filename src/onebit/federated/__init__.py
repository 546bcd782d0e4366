"""FedHyBNN: federated training of a HyBNN's binary head on Flower (Dua 2022).

:func:`run_federated` (``onebit federated``) trains the head of a :class:`~onebit.hybrid.HyBNN`
over N clients with Flower: a real ``ServerApp``/``ClientApp`` pair (:mod:`onebit.federated.apps`)
with the :class:`~onebit.federated.strategy.FedHyBNN` strategy (FedAvg on latent weights and
BatchNorm state, FedBN as an option, float32 or 1-bit uploads with majority vote or averaging,
:mod:`onebit.federated.uploads`), on Flower's deployment engine with a SuperLink and N SuperNodes
on 127.0.0.1 (:mod:`onebit.federated.deployment`) or in one process (:mod:`onebit.federated.simulation`).

Flower is optional (``pip install 'onebit[federated]'``): this package imports without it;
the functions that need it raise a ConfigError saying so. Partitioning, the upload codec and
the local training are plain numpy/PyTorch and work without it.
"""

from onebit.federated.config import FAULTS, PARTITIONS, FederatedConfig
from onebit.federated.dependency import FLOWER_HINT, flower_available, require_flower
from onebit.federated.local import client_seed, evaluate_head, head_state, load_head_state, train_head
from onebit.federated.partition import dirichlet_partition, iid_partition, partition_counts
from onebit.federated.pipeline import (
    FederatedResult, centralized_reference, load_federated_data, prepare_federated, run_federated, train_encoder,
)
from onebit.federated.uploads import (
    SIGN_RULES, UPLOADS, aggregate, check_upload, decode_signs, encode_update, pack_signs,
)
from onebit.federated.workspace import Workspace

__all__ = ["FAULTS", "FLOWER_HINT", "PARTITIONS", "SIGN_RULES", "UPLOADS", "FederatedConfig", "FederatedResult",
           "Workspace", "aggregate", "centralized_reference", "check_upload", "client_seed", "decode_signs",
           "dirichlet_partition", "encode_update", "evaluate_head", "flower_available", "head_state", "iid_partition",
           "load_federated_data", "load_head_state", "pack_signs", "partition_counts", "prepare_federated",
           "require_flower", "run_federated", "train_encoder", "train_head"]
