"""fxrep's public pass API: everything a rewrite pass needs, in one import (listed in docs/api.md).

The built-in passes in ``fxrep.passes`` import only this module (a test enforces it), so a custom
pass written against it can do anything a built-in one does::

    from fxrep import pass_api as api

    @dataclass(frozen=True)
    class MyPass(api.Pass):
        name: ClassVar[str] = "my_pass"

        def __call__(self, gm):
            result = api.PassResult()
            rewriter = api.Rewriter(gm)
            for node in list(gm.graph.nodes):
                conv = api.Conv.from_node(node)
                ...
            rewriter.finish()
            return result.absorb(rewriter)

Five groups, nothing else: op views, values and tensors of the graph, the kernel algebra, the
rewriter and the pass base (with the cost model and the affine-region toolkit), and declarative
patterns. Everything else is internal to fxrep, or public in its own module (``fxrep.ops``,
``fxrep.algebra``, ``fxrep.affine``, ``fxrep.cost``, ``fxrep.patterns``).
"""

from . import affine
from .affine import AffineValue, constant_nodes, is_side_effect_only
from .algebra import (
    ConvMap,
    NotExact,
    batchnorm_affine,
    compose,
    conv_map,
    diagonal_map,
    fold_into_outputs,
    identity_map,
    stack_maps,
    sum_maps,
)
from .cost import CostModel
from .match import Match, attempt
from .ops import (
    Activation,
    Arithmetic,
    AvgPool,
    BatchNorm,
    BorderFill,
    Cat,
    Conv,
    Identity,
    Linear,
    MaxPool,
    NoOp,
    Pad,
    constant_value,
    dims,
    dtype_of,
    example_value,
    has_hooks,
    op_kind,
    rank,
    static_shape,
    tensor_constant,
)
from .pass_base import CostDecision, Pass, PassResult, Refusal, module_path_of
from .patterns import Branch, Pattern, PatternError, PatternMatch, PatternPass, constant, named, sum_of
from .rewriter import Rewriter

__all__ = [
    # op views
    "Activation",
    "Arithmetic",
    "AvgPool",
    "BatchNorm",
    "BorderFill",
    "Cat",
    "Conv",
    "Identity",
    "Linear",
    "MaxPool",
    "NoOp",
    "Pad",
    "has_hooks",
    "op_kind",
    # values and tensors
    "AffineValue",
    "constant_nodes",
    "constant_value",
    "dims",
    "dtype_of",
    "example_value",
    "is_side_effect_only",
    "rank",
    "static_shape",
    "tensor_constant",
    # kernel algebra
    "ConvMap",
    "NotExact",
    "batchnorm_affine",
    "compose",
    "conv_map",
    "diagonal_map",
    "fold_into_outputs",
    "identity_map",
    "stack_maps",
    "sum_maps",
    # rewriter, pass base and results, cost model, affine regions
    "CostDecision",
    "CostModel",
    "Match",
    "Pass",
    "PassResult",
    "Refusal",
    "Rewriter",
    "affine",
    "attempt",
    "module_path_of",
    # patterns
    "Branch",
    "Pattern",
    "PatternError",
    "PatternMatch",
    "PatternPass",
    "constant",
    "named",
    "sum_of",
]
