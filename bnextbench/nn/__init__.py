"""Binary building blocks: quantizers that carry their precision and the layers built on them."""

from .config import cpu_kernels, set_cpu_kernels, use_cpu_kernels
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
    "cpu_kernels",
    "is_binary",
    "layer_precision",
    "precision_of",
    "set_cpu_kernels",
    "use_cpu_kernels",
]
