"""Architectures, the registry (timm's) and reference-checkpoint import."""

from .baselines import BiRealNet18, ReActNetA, XnorResNet18
from .bnext import BNext, BNext18, bnext_extra_params, bnext_layer_sites
from .plan import LayerSite
from .registry import BNEXT_NAMES, DEFAULT_RESOLUTION, check_model_name, create_model, list_models
from .spec import BNEXT_SIZES, BNextSpec, SpecError, named_spec

__all__ = [
    "BNEXT_NAMES",
    "BNEXT_SIZES",
    "BNext",
    "BNext18",
    "BNextSpec",
    "BiRealNet18",
    "DEFAULT_RESOLUTION",
    "LayerSite",
    "ReActNetA",
    "SpecError",
    "XnorResNet18",
    "bnext_extra_params",
    "bnext_layer_sites",
    "check_model_name",
    "create_model",
    "list_models",
    "named_spec",
]
