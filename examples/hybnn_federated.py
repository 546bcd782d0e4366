"""A hybrid BNN (binary-latent autoencoder + BNN) and its federated training on Flower (Dua 2022).

    python examples/hybnn_federated.py [--quick]

An autoencoder whose latent code is bits is trained without labels and frozen; a binary MLP
classifies the codes; the whole model exports to one ``.onebit`` file. Then the same binary
head is trained federated by Flower clients (in one process here; ``onebit federated`` without
``--simulate`` runs a SuperLink and N SuperNodes on 127.0.0.1), with 1-bit uploads.
Federated training needs ``pip install 'onebit[federated]'``. See docs/dua2022_hybnn.md and
docs/dua2022_fedhybnn.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onebit
from onebit.federated import FederatedConfig, flower_available, run_federated
from onebit.hybrid import BinaryLatentVAE, export_hybnn, fit_hybnn, fit_vae

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a small, fast run")
args = parser.parse_args()
epochs = 2 if args.quick else 30

data = onebit.load_dataset("digits")
vae = BinaryLatentVAE(data.in_shape, latent_bits=32, hidden=(128,), estimator="ste")
fit_vae(vae, data.x_train, epochs=epochs, seed=0)  # no labels
result = fit_hybnn(vae, data, hidden=128, depth=1, epochs=epochs, seed=0)
print(f"HyBNN on digits (32 latent bits): test accuracy {result.test_accuracy:.2%}")

with tempfile.TemporaryDirectory() as tmp:
    export_hybnn(result.model, Path(tmp) / "hybnn.onebit", data.x_test[:64])  # float encoder + binary head
    engine = onebit.load(Path(tmp) / "hybnn.onebit")
    print(f"onebit.runtime on hybnn.onebit: test accuracy {(engine.predict(data.x_test) == data.y_test).mean():.2%}")

    if not flower_available():
        print("federated part skipped: pip install 'onebit[federated]'")
    else:
        config = FederatedConfig(data="digits", clients=3, rounds=2 if args.quick else 10, local_epochs=1,
                                 latent_bits=32, vae_hidden=(128,), vae_epochs=epochs, head_hidden=128, head_depth=1,
                                 upload="sign")
        fed = run_federated(config, Path(tmp) / "fed", simulate=True)
        print(f"FedHyBNN, 3 clients, 1-bit uploads: test accuracy {fed.accuracy:.2%}, "
              f"{fed.upload_bytes:,} bytes uploaded in {len(fed.rounds)} rounds")
