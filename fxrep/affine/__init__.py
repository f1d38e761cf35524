"""Affine regions: find them, evaluate them into affine values, plan them, emit the plan.

    regions = find_regions(gm)                                  # connected affine ops, entries, exits
    values = evaluate_region(region, materialized, shapes)      # every member as sum_k M_k(source_k) + b
    choice = plan_region(region, cost_model, shapes)            # the cheapest materialisation set
    emit_plan(rewriter, choice.plan)                            # its ops, into the graph

- `regions`: `find_regions`, `Region` (members in order, entries, exits, the op of each member).
- `ops`: `affine_op(node)`, a `Match` of what a node does to an `AffineValue` (`AffineOp`), or why it is not affine.
- `value`: `AffineValue`, a tensor written as ``sum_k M_k(source_k) + bias`` with `ConvMap`s.
- `evaluate`: `evaluate_region`, `RegionEvaluator` (one step), `InfeasiblePlan`.
- `emission`: `materialize` (what one materialised value emits, as an `Emission`), `emit`.
- `planner`: `plan_region` (dynamic programming over the topological order), `RegionPlanner`.
- `plan`: `RegionPlan`, `PlanChoice`, `PlanSummary`, `emit_plan`.

`fxrep.passes.CollapseLinearRegions` is policy on top of these (cost target, force / forbid).
"""

from .emission import Emission, EmittedOp, emit, kept, materialize
from .evaluate import Evaluation, InfeasiblePlan, RegionEvaluator, evaluate_region
from .ops import AffineOp, LayoutOp, affine_op
from .plan import PlanChoice, PlanSummary, RegionPlan, emit_plan
from .planner import DEFAULT_MAX_STATES, RegionPlanner, plan_region, separate_borders
from .regions import (
    Region,
    RegionAnalysis,
    constant_nodes,
    dataflow_graph,
    find_regions,
    is_side_effect_only,
)
from .shapes import GraphShapes
from .value import AffineValue, Source

__all__ = [
    "DEFAULT_MAX_STATES",
    "AffineOp",
    "AffineValue",
    "Emission",
    "EmittedOp",
    "Evaluation",
    "GraphShapes",
    "InfeasiblePlan",
    "LayoutOp",
    "PlanChoice",
    "PlanSummary",
    "Region",
    "RegionAnalysis",
    "RegionEvaluator",
    "RegionPlan",
    "RegionPlanner",
    "Source",
    "affine_op",
    "constant_nodes",
    "dataflow_graph",
    "emit",
    "emit_plan",
    "evaluate_region",
    "find_regions",
    "is_side_effect_only",
    "kept",
    "materialize",
    "plan_region",
    "separate_borders",
]
