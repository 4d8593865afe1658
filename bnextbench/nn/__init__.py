"""Binary building blocks: quantizers that carry their precision and the layers built on them."""

from .layers import (
    PReLU,
    QuantConv2d,
    QuantLinear,
    RPReLU,
    apply_constraints,
    aux_conv,
    aux_linear,
    is_binary,
    layer_precision,
)
from .quantizers import (
    ApproxSign,
    HardSign,
    MinMaxQuantizer,
    PreQuantized,
    ProgressiveSign,
    ScaledSign,
    binary_sign,
    precision_of,
)

__all__ = [
    "ApproxSign",
    "HardSign",
    "MinMaxQuantizer",
    "PReLU",
    "PreQuantized",
    "ProgressiveSign",
    "QuantConv2d",
    "QuantLinear",
    "RPReLU",
    "ScaledSign",
    "apply_constraints",
    "aux_conv",
    "aux_linear",
    "binary_sign",
    "is_binary",
    "layer_precision",
    "precision_of",
]
