"""Binary morphological networks (BiMoNN, Aouad & Talbot, DGMM 2022): data, targets,
training, and the export of a binarized network to onebit's packed engine.

The neurons live in :mod:`onebit.nn.morphological`; this package holds what the paper's
experiments need around them: structuring elements (:mod:`.selems`), the Diskorect
generator, thresholded MNIST and ``scipy.ndimage`` targets (:mod:`.data`), the training
loop (:mod:`.training`), and the ``.onebit`` path (:mod:`.engine`).
"""

from onebit.morphology.data import OPERATIONS, diskorect, mnist_binary, morphological_target
from onebit.morphology.engine import MorphologyEngine, export_morphology
from onebit.morphology.selems import SELEMS, dcross, disk, hstick, structuring_element
from onebit.morphology.training import TrainResult, dice, evaluate, pixel_error, train_bimonn

__all__ = [
    "OPERATIONS", "SELEMS", "MorphologyEngine", "TrainResult", "dcross", "dice", "disk", "diskorect", "evaluate",
    "export_morphology", "hstick", "mnist_binary", "morphological_target", "pixel_error", "structuring_element",
    "train_bimonn",
]
