"""The model zoo: a registry of the published BNN families, one file per family."""

from onebit.models import (  # noqa: F401  (registers the models)
    binarydensenet, bireal, binarynet, bnn_pynq, cnn, kws, quicknet, reactnet, text, xnornet,
)
from onebit.models.registry import (
    IMAGENET, ModelInfo, check_model_args, create_model, list_models, model_info, register_model,
)

__all__ = ["IMAGENET", "ModelInfo", "check_model_args", "create_model", "list_models", "model_info", "register_model"]
