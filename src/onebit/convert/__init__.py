"""Model import from other BNN toolkits: Larq/Keras ``.h5`` files into onebit, without TensorFlow.

``from_larq(path)`` reads a Keras 2 HDF5 model file with h5py alone and returns a PyTorch
model of onebit layers with the file's weights, equal to Larq's forward (see
``docs/larq_import.md``); it exports with ``onebit export`` like any other model.
"""

from onebit.convert.keras_file import KerasFile, read_keras_h5
from onebit.convert.larq import KerasGraph, build_graph, convert_file, from_larq, load_converted

__all__ = ["KerasFile", "KerasGraph", "build_graph", "convert_file", "from_larq", "load_converted", "read_keras_h5"]
