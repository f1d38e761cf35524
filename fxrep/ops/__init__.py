"""Op views: typed, form-independent access to the ops fxrep rewrites.

Each view's ``from_node(node)`` recognises the module form (``nn.Conv2d``), the functional form
(``F.conv2d``) and the ATen form (``aten.conv2d``) alike and returns None for anything else, so
passes never index ``node.args``. `view_of(node, views)` is the one dispatch over them (`VIEWS`
gives the precedence where two recognise a node).

Helpers for code that reads nodes the views do not cover: `has_hooks` (a module's user hooks),
`is_hashable` (a call target usable as a dict key) and `per_axis` (an int or ints, one per axis).
"""

from ._binding import is_hashable, per_axis
from ._graph import (
    constant_value,
    dims,
    dtype_of,
    example_value,
    has_hooks,
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
from .kinds import NAMED_VIEWS, VIEWS, View, op_kind, target_name, view_of
from .layout import Layout
from .linear import Linear
from .no_op import NoOp
from .pad import Pad
from .pool import AvgPool, MaxPool
from .reduce import AdaptiveAvgPool, Mean

__all__ = [
    "NAMED_VIEWS",
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
    "View",
    "constant_value",
    "dims",
    "dtype_of",
    "example_value",
    "has_hooks",
    "is_hashable",
    "op_kind",
    "per_axis",
    "rank",
    "size_at_unit_batch",
    "static_shape",
    "target_name",
    "tensor_constant",
    "view_of",
]
