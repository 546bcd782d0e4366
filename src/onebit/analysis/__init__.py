"""Analysis of binary networks: why they work, where they fail and what they can represent.

- :mod:`~onebit.analysis.geometry`: the high-dimensional geometry of binarization (Anderson &
  Berg 2017): angles between latent and binarized weights (~37° in high dimension), dot-product
  correlations on real activations, ternary thresholds; :mod:`~onebit.analysis.layer_ablation`
  makes one layer float at a time.
- :mod:`~onebit.analysis.quasi`, :mod:`~onebit.analysis.ntk`, :mod:`~onebit.analysis.kernels`,
  :mod:`~onebit.analysis.spectra`: the neural tangent kernel of binary-weight networks through
  their quasi neural network (Zhang, Yin & Wang 2022) and its eigenvalue decay.
- :mod:`~onebit.analysis.expressivity`: constructive approximation by binary and ternary
  networks (Beknazaryan 2022).

Nothing below this package imports it.
"""

from onebit.analysis.expressivity import (
    IndicatorNetwork,
    QuantizedMLP,
    fit_target,
    indicator_bound,
    indicator_network,
    sup_error,
)
from onebit.analysis.geometry import (
    GeometryReport,
    LayerCorrelation,
    LayerGeometry,
    analyze_geometry,
    binarization_angles,
    dot_product_correlation,
    layer_geometry,
    ternarization_angles,
)
from onebit.analysis.kernels import KernelRidgeClassifier, arccos_kernel, kernel_matrix, relu_ntk
from onebit.analysis.layer_ablation import float_layer_ablation
from onebit.analysis.ntk import empirical_ntk
from onebit.analysis.quasi import QuasiBinaryNet, monte_carlo_moments
from onebit.analysis.spectra import fit_spectrum, kernel_spectrum

__all__ = [
    "GeometryReport", "IndicatorNetwork", "KernelRidgeClassifier", "LayerCorrelation", "LayerGeometry",
    "QuantizedMLP", "QuasiBinaryNet", "analyze_geometry", "arccos_kernel", "binarization_angles",
    "dot_product_correlation", "empirical_ntk", "fit_spectrum", "fit_target", "float_layer_ablation",
    "indicator_bound", "indicator_network", "kernel_matrix", "kernel_spectrum", "layer_geometry",
    "monte_carlo_moments", "relu_ntk", "sup_error", "ternarization_angles",
]
