"""fxrep's public pass API: everything a rewrite pass needs, in one import.

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
            result.modified, result.counts = rewriter.modified, rewriter.counts
            return result

Contents: pass types (`Pass`, `PassResult`, `Refusal`, `CostDecision`, `Match`), the `Rewriter`,
op views (`Conv`, `BatchNorm`, ...), the kernel algebra (`ConvMap`, `sum_maps`, `compose`, ...),
affine regions (`affine`: `find_regions`, `evaluate_region`, `plan_region`, `emit_plan`, `AffineValue`)
and the cost model (`CostModel`, op signatures).
"""

from . import affine, algebra
from .affine import (
    AffineOp,
    AffineValue,
    Region,
    Source,
    affine_op,
    constant_nodes,
    find_regions,
    is_side_effect_only,
)
from .algebra import (
    ConvMap,
    NotExact,
    avgpool_map,
    batchnorm_affine,
    compose,
    conv_map,
    diagonal_map,
    identity_map,
    linear_map,
    regroup,
    stack_maps,
    sum_maps,
)
from .capture import graph_level, shapes_are_guarded
from .cost import CPU, GPU, TARGETS, ConvSignature, CostModel, ElementwiseSignature, PoolSignature, Target
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
    op_kind,
    rank,
    static_shape,
    tensor_constant,
)
from .ops._graph import has_hooks
from .pass_base import CostDecision, Match, Pass, PassResult, Refusal, Rewrite, module_path_of
from .rewriter import Rewriter
from .shapes import propagate_shapes

__all__ = [
    "CPU",
    "GPU",
    "TARGETS",
    "Activation",
    "AffineOp",
    "AffineValue",
    "Arithmetic",
    "AvgPool",
    "BatchNorm",
    "BorderFill",
    "Cat",
    "Conv",
    "ConvMap",
    "ConvSignature",
    "CostDecision",
    "CostModel",
    "ElementwiseSignature",
    "Identity",
    "Linear",
    "Match",
    "MaxPool",
    "NoOp",
    "NotExact",
    "Pad",
    "Pass",
    "PassResult",
    "PoolSignature",
    "Refusal",
    "Region",
    "Rewrite",
    "Rewriter",
    "Source",
    "Target",
    "affine",
    "affine_op",
    "algebra",
    "avgpool_map",
    "batchnorm_affine",
    "compose",
    "constant_value",
    "constant_nodes",
    "conv_map",
    "diagonal_map",
    "dims",
    "dtype_of",
    "example_value",
    "find_regions",
    "graph_level",
    "has_hooks",
    "identity_map",
    "is_side_effect_only",
    "linear_map",
    "module_path_of",
    "op_kind",
    "propagate_shapes",
    "rank",
    "shapes_are_guarded",
    "regroup",
    "stack_maps",
    "static_shape",
    "sum_maps",
    "tensor_constant",
]
