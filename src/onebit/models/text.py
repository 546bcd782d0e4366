"""Binary text classifiers (onebit.text): a binary MLP over bag-of-n-grams rows, and a binary CNN over token ids.

**binary_text_mlp**:

``QuantLinear(dim → hidden; float input, binary weights) → BN → act →
[QuantLinear(hidden → hidden; binary) → BN (+ shortcut) → act] × (depth − 1) → Dropout →
Linear (float classifier)``.

The input is a row of :class:`onebit.text.features.TextFeaturizer` (hashed word and
character n-gram presence, L2-normalized). Its first layer is a bag-of-n-grams embedding
with ±1 entries: ``h = Σ_g x_g · sign(E_g)``, the sum of the binary embedding rows of the
sentence's grams weighted by their feature values (fastText's EmbeddingBag, Joulin et al.
2017, "Bag of Tricks for Efficient Text Classification", with 1-bit weights; the engine
runs it as a float-input × 1-bit-weight product). The hidden layers are binary (XNOR-
popcount on packed bits: sign of the activations, sign of the weights), with BiReal's
real-valued shortcut and ReActNet's RSign/RPReLU where asked; the classifier stays float,
as in published BNNs. With both quantizers None the same module is the float twin.

**binary_text_cnn**: ``TokenEmbedding(V → D) → [QuantConv1d(k; 1-bit input and weights) → BN
(+ shortcut from the second block on) → act] × depth (no act after the last) → global max-pool
over the L positions → Dropout → Linear`` (Kim 2014, "Convolutional Neural Networks for Sentence Classification",
arXiv:1408.5882, with binary convolutions). Its input is a sentence's ``L`` token ids
(:meth:`onebit.text.features.TextFeaturizer.sequences`; ``onebit train`` builds them with
:data:`onebit.text.datasets.SEQUENCE_FEATURIZER`). The first convolution binarizes the
embedding, so the exported file stores the table as packed signs (``sign(E)[id] =
sign(E[id])``, :mod:`onebit.runtime.embedding`) and the engine's XNOR-popcount convolution
reads the looked-up words directly. With both quantizers None it is the float twin (float
table, float convolutions).
"""

from __future__ import annotations

import math

from torch import nn

from onebit.errors import ConfigError
from onebit.models.registry import register_model
from onebit.nn import QuantConv1d, QuantizerSpec, QuantLinear, Residual, channel_quantizer, make_activation
from onebit.nn.embedding import TokenEmbedding

CNN_PAPER = ("onebit binary text CNN (Kim 2014, Convolutional Neural Networks for Sentence Classification, "
             "arXiv:1408.5882, with 1-bit convolutions)")
PAPER = ("onebit binary bag-of-n-grams text classifier (feature hashing: Weinberger et al. 2009; "
         "bag of n-grams: Joulin et al. 2017, arXiv:1607.01759)")


@register_model(family="onebit", paper=PAPER, in_shape=(2048,), num_classes=2)
def binary_text_mlp(
    num_classes: int,
    in_shape: tuple[int, ...],
    hidden: int = 128,
    depth: int = 2,
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    dropout_in: float = 0.3,
    dropout: float = 0.3,
    shortcut: bool = True,
    activation: str = "hardtanh",
    scaling: str | None = None,
) -> nn.Module:
    """Binary MLP over featurized text ``(dim,)``: a float-input, binary-weight bag-of-n-grams layer,
    ``depth − 1`` binary hidden layers (shortcut around each), float classifier.

    ``dropout_in`` drops input features while training (whole n-grams); ``dropout`` acts
    before the classifier (0.3 each: on VADER's pooled domains they lifted the binary net from
    76.7 % to 77.4 % and stopped it overfitting after two epochs; docs/text_sentiment.md). ``input_quantizer``/``weight_quantizer``: the binary layers'
    (the first layer's input is the float row); None for both is the float twin.
    """
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ConfigError(f"hidden must be a positive integer, got {hidden!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"depth must be a positive integer (hidden layers), got {depth!r}")
    for name, p in (("dropout_in", dropout_in), ("dropout", dropout)):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {p!r}")
    width = math.prod(in_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    if dropout_in:
        layers.append(nn.Dropout(dropout_in))
    layers += [QuantLinear(width, hidden, bias=False, input_quantizer=None, weight_quantizer=weight_quantizer,
                           scaling=scaling),
               nn.BatchNorm1d(hidden), make_activation(activation, hidden)]
    for _ in range(depth - 1):
        unit = nn.Sequential(
            QuantLinear(hidden, hidden, bias=False, input_quantizer=channel_quantizer(input_quantizer, hidden),
                        weight_quantizer=weight_quantizer, scaling=scaling),
            nn.BatchNorm1d(hidden),
        )
        layers += [Residual(unit) if shortcut else unit, make_activation(activation, hidden)]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, num_classes))
    return nn.Sequential(*layers)


@register_model(family="onebit", paper=CNN_PAPER, in_shape=(48,), num_classes=2)
def binary_text_cnn(
    num_classes: int,
    in_shape: tuple[int, ...],
    vocab_size: int = 4096,
    embed_dim: int = 64,
    channels: int = 64,
    kernel_size: int = 3,
    depth: int = 1,
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    embedding_quantizer: QuantizerSpec = None,
    token_dropout: float = 0.1,
    dropout: float = 0.3,
    activation: str = "hardtanh",
) -> nn.Module:
    """Binary CNN over token ids ``(L,)``: embedding, ``depth`` binary Conv1d blocks, global max-pool, float classifier.

    ``vocab_size`` must be the featurizer's ``dim`` (ids run over ``[0, dim)``; 4096 is
    :data:`onebit.text.datasets.SEQUENCE_FEATURIZER`'s). ``embedding_quantizer`` binarizes the
    table itself (a ±1 embedding; None: a float table, binarized by the first conv's input sign
    anyway). ``input_quantizer``/``weight_quantizer``: the convolutions' (None for both: the
    float twin). ``token_dropout`` replaces tokens by padding while training; ``dropout`` acts
    before the classifier. The defaults (one block of 64 channels, Kim's single convolution layer)
    keep 3 seeds × 6 tasks of the ``text_sentiment`` experiment affordable on two CPU cores.
    """
    for name, v, low in (("vocab_size", vocab_size, 3), ("embed_dim", embed_dim, 1), ("channels", channels, 1),
                         ("depth", depth, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {v!r}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be a positive odd integer (same-length padding), got {kernel_size!r}")
    if len(in_shape) != 1 or in_shape[0] < 1:
        raise ConfigError(f"binary_text_cnn takes token ids of shape (L,), got in_shape {tuple(in_shape)}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    length = in_shape[0]
    layers: list[nn.Module] = [TokenEmbedding(vocab_size, embed_dim, weight_quantizer=embedding_quantizer,
                                              token_dropout=token_dropout)]
    width = embed_dim
    for i in range(depth):
        unit = nn.Sequential(
            QuantConv1d(width, channels, kernel_size, padding=kernel_size // 2, bias=False,
                        input_quantizer=channel_quantizer(input_quantizer, width), weight_quantizer=weight_quantizer),
            nn.BatchNorm1d(channels),
        )
        layers.append(Residual(unit) if i > 0 else unit)
        if i < depth - 1:  # the last block's real values go to the pool: a clipping activation would saturate the max
            layers.append(make_activation(activation, channels))
        width = channels
    layers += [nn.MaxPool1d(length), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(channels, num_classes))
    return nn.Sequential(*layers)
