"""Op views: typed, form-independent access to the ops fxrep rewrites.

Each view's ``from_node(node)`` recognises the module form (``nn.Conv2d``), the functional form
(``F.conv2d``) and the ATen form (``aten.conv2d``) alike and returns None for anything else, so
passes never index ``node.args``.
"""

from ._graph import (
    constant_value,
    dims,
    dtype_of,
    example_value,
    rank,
    size_at_unit_batch,
    static_shape,
    tensor_constant,
)
from .activation import Activation
from .arithmetic import Arithmetic
from .batchnorm import BatchNorm
from .border_fill import BorderFill
from .concat import Cat
from .conv import Conv
from .identity import Identity
from .kinds import VIEWS, op_kind, target_name
from .layout import Layout
from .linear import Linear
from .no_op import NoOp
from .pad import Pad
from .pool import AvgPool, MaxPool
from .reduce import AdaptiveAvgPool, Mean

__all__ = [
    "VIEWS",
    "Activation",
    "AdaptiveAvgPool",
    "Arithmetic",
    "AvgPool",
    "BatchNorm",
    "BorderFill",
    "Cat",
    "Conv",
    "Identity",
    "Layout",
    "Linear",
    "MaxPool",
    "Mean",
    "NoOp",
    "Pad",
    "constant_value",
    "dims",
    "dtype_of",
    "example_value",
    "op_kind",
    "rank",
    "size_at_unit_batch",
    "static_shape",
    "target_name",
    "tensor_constant",
]
