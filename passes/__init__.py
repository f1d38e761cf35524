"""fxrep's built-in rewrite passes, importable as ``fxrep.passes``.

Every pass here is written against the public API in `fxrep.pass_api` only, the same API custom
passes use. `default_pipeline()` returns a fresh list each call.
"""

from __future__ import annotations

from .collapse_linear_regions import CollapseLinearRegions
from .evaluate_constant_subgraphs import EvaluateConstantSubgraphs
from .fold_batchnorm import FoldBatchNorm
from .fuse_activations import FuseActivations
from .fuse_horizontal_convs import FuseHorizontalConvs
from .remove_no_ops import RemoveNoOps


def default_pipeline(cost_model: object | None = None) -> list:
    """A new list of the passes `fxrep.optimize` runs by default, in order.

    Inference no-ops (dropout, identities, whole-tensor slices) go first, hand-written activations
    become the one op they compute (before their affine parts are folded away), parameter-only weights
    are evaluated (so convs see constant weights), BatchNorms fold
    into their neighbours, linear regions collapse into the cheapest convs, and convs left reading
    the same tensor are fused horizontally. ``cost_model`` (any `fxrep.cost.CostEstimator`, e.g.
    a `fxrep.cost.MeasuredCostModel`; default: each pass's own analytic `fxrep.cost.CostModel()`)
    is what both cost-driven passes decide with.
    """
    if cost_model is None:
        return [RemoveNoOps(), FuseActivations(), EvaluateConstantSubgraphs(), FoldBatchNorm(),
                CollapseLinearRegions(), FuseHorizontalConvs()]
    return [RemoveNoOps(), FuseActivations(), EvaluateConstantSubgraphs(), FoldBatchNorm(),
            CollapseLinearRegions(cost_model=cost_model), FuseHorizontalConvs(cost_model=cost_model)]


__all__ = [
    "CollapseLinearRegions",
    "EvaluateConstantSubgraphs",
    "FoldBatchNorm",
    "FuseActivations",
    "FuseHorizontalConvs",
    "RemoveNoOps",
    "default_pipeline",
]
