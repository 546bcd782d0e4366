"""The model zoo: a registry of the published BNN families, one file per family."""

from onebit.models import (  # noqa: F401  (registers the models)
    binary_alexnet, binarydensenet, bireal, binarynet, bnn_pynq, cnn, kws, quicknet, reactnet, real_to_binary,
    resnet_e, text, xnornet,
)
from onebit.models.registry import (
    IMAGENET, ModelInfo, check_model_args, create_model, list_models, model_info, register_model,
)

__all__ = ["IMAGENET", "ModelInfo", "check_model_args", "create_model", "list_models", "model_info", "register_model"]
