"""Transfer learning with frozen binary features (Leroux et al. 2017).

A trained model cut at a layer is a fixed binary feature extractor
(:class:`FeatureExtractor`; exported, the engine returns the packed feature bits); only a
small head is trained per task (:func:`fit_head`); :func:`transfer` does both for a
checkpoint and a target data set (``onebit transfer``). The paper's reproduction is the
experiment ``leroux2017_transfer`` (:mod:`onebit.experiments.leroux2017`).
"""

from onebit.transfer.features import FeatureExtractor, layer_names
from onebit.transfer.head import cross_validate_head, fit_head, head_accuracy, make_head
from onebit.transfer.pipeline import TransferResult, load_head, save_head, select_cut, transfer

__all__ = ["FeatureExtractor", "TransferResult", "cross_validate_head", "fit_head", "head_accuracy", "layer_names",
           "load_head", "make_head", "save_head", "select_cut", "transfer"]
