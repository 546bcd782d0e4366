"""HyBNN: a float autoencoder with a binary latent space feeding a task BNN (Dua 2022).

:class:`BinaryLatentVAE` (:mod:`onebit.hybrid.vae`) learns, without labels, an m-bit code of
the input (straight-through sign or Gumbel-sigmoid relaxation, :mod:`onebit.hybrid.latent`);
:func:`fit_hybnn` trains a binary MLP on the frozen codes and joins both into a
:class:`HyBNN` (:mod:`onebit.hybrid.model`), which :func:`export_hybnn` writes to one
``.onebit`` file. :func:`input_binarized_bnn` (:mod:`onebit.hybrid.baselines`) is the same
BNN on directly binarized input. The reproduction is the experiment ``dua2022_hybnn``
(:mod:`onebit.experiments.dua2022`); the federated training of the head is
:mod:`onebit.federated`.
"""

from onebit.hybrid.baselines import BINARIZATIONS, InputBinarizer, input_binarized_bnn
from onebit.hybrid.latent import ESTIMATORS, bernoulli_kl, binary_code, gumbel_sigmoid, sample_latent
from onebit.hybrid.model import HyBNN, HyBNNResult, export_hybnn, fit_hybnn, latent_bnn, latent_dataset
from onebit.hybrid.vae import BinaryLatentVAE, Standardize, VAEHistory, fit_vae

__all__ = ["BINARIZATIONS", "ESTIMATORS", "BinaryLatentVAE", "HyBNN", "HyBNNResult", "InputBinarizer", "Standardize",
           "VAEHistory", "bernoulli_kl", "binary_code", "export_hybnn", "fit_hybnn", "fit_vae", "gumbel_sigmoid",
           "input_binarized_bnn", "latent_bnn", "latent_dataset", "sample_latent"]
