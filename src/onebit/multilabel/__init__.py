"""Multi-label learning: data sets, metrics, a training loop and the BR/TDNN baselines (He & Xia 2018).

The model side lives in :mod:`onebit.nn`: :class:`onebit.nn.heads.MultiLabelHead` (L sigmoid
outputs on a shared, binarized or float encoder) and :func:`onebit.nn.losses.jbce_loss` (joint
binary cross-entropy with an optional prior on label relations). The reproduction is the
experiment ``he2018_jbnn``. The data sets read files that ``river`` and ``nrclex`` ship (the
optional extra ``text``); nothing is downloaded.
"""

from onebit.multilabel.baselines import (
    THRESHOLD_GRID,
    BinaryRelevance,
    ThresholdedSoftmax,
    instance_thresholds,
    soft_target_cross_entropy,
)
from onebit.multilabel.datasets import (
    NRC_LABELS,
    YEAST_SPLITS,
    MultiLabelData,
    char_ngram_features,
    load_nrc_emotions,
    load_yeast,
    nrc_lexicon,
)
from onebit.multilabel.metrics import (
    METRICS,
    average_precision,
    hamming_loss,
    macro_f1,
    micro_f1,
    multilabel_metrics,
    one_error,
    subset_accuracy,
)
from onebit.multilabel.training import TrainLog, predict_logits, train_multilabel

__all__ = [
    "METRICS", "NRC_LABELS", "THRESHOLD_GRID", "YEAST_SPLITS", "BinaryRelevance", "MultiLabelData",
    "ThresholdedSoftmax", "TrainLog", "average_precision", "char_ngram_features", "hamming_loss",
    "instance_thresholds", "load_nrc_emotions", "load_yeast", "macro_f1", "micro_f1", "multilabel_metrics", "nrc_lexicon", "one_error",
    "predict_logits", "soft_target_cross_entropy", "subset_accuracy", "train_multilabel",
]
