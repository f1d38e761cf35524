"""Kernel algebra: pure tensor functions (no torch.fx), each with its formula in the docstring.

Everything is computed in float64 on `ConvMap` values; casting back to the model's dtype is the
emitter's job. A rewrite that would not be exact raises `NotExact` with a readable reason.
"""

from .batchnorm import batchnorm_affine, fold_into_inputs, fold_into_outputs, input_response
from .borders import extend_padding, extension_is_constant
from .conv_map import (
    ConvMap,
    avgpool_map,
    conv_map,
    diagonal_map,
    identity_map,
    linear_map,
    normalize_padding,
)
from .errors import NotExact
from .groups import common_groups, regroup
from .parallel import stack_maps, sum_maps
from .sequential import check_border, compose, compose_kernels, propagate_bias
from .shape_only import aligned, is_shape_only, shape_only

__all__ = [
    "ConvMap",
    "NotExact",
    "aligned",
    "avgpool_map",
    "batchnorm_affine",
    "check_border",
    "common_groups",
    "compose",
    "compose_kernels",
    "conv_map",
    "diagonal_map",
    "extend_padding",
    "extension_is_constant",
    "fold_into_inputs",
    "fold_into_outputs",
    "identity_map",
    "input_response",
    "is_shape_only",
    "linear_map",
    "normalize_padding",
    "propagate_bias",
    "regroup",
    "shape_only",
    "stack_maps",
    "sum_maps",
]
