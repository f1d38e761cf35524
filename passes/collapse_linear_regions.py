"""Collapse every linear region into the cheapest exact set of convs.

Each affine region (`fxrep.affine.find_regions`: the connected ops between non-linearities, with
any number of exits) is planned as a whole (`fxrep.affine.plan_region`): the planner chooses which
values to materialise so that every exit is computed and the region's total estimated time is
least. BatchNorms and scales fold into their convs, parallel branches of one input merge into one
kernel (RepVGG, ACNet, MobileOne, residuals), sequential convs compose (ExpandNet, DBB's
1x1 -> kxk), pads and average pools become conv padding and kernels, concatenations stack, and a
value read by several ops (FastViT's RepMixer output feeding a residual and a ConvMlp) is computed
once or folded into each reader, whichever is cheaper. Every exactness rule of the kernel algebra
applies to each materialised value.

This pass is policy on top of the planner:

- ``cost_model``: the target whose estimates are minimised (any object with ``seconds(signature)``
  and ``node_seconds(node)``);
- ``policy="always"`` (or a region matching ``force``, glob patterns over node names and module
  paths such as ``"layer1.*"``) minimises the op count instead of the estimated time;
- ``forbid``: ops matching these patterns are never touched;
- a region is rewritten only if its plan changes something and does not cost more than the region
  as it is (or, when forced, has fewer ops). Each decision is recorded as a `CostDecision` with the
  chosen plan, its estimate and the best rejected alternative; each value kept apart from its
  readers is recorded with the reason.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from torch.fx import GraphModule, Node

from fxrep import pass_api as api

RELATIVE_SLACK = 1e-9
MIN_GAIN = 1e-3
"""Relative estimated gain below which a plan with as many ops as the region is not worth rewriting."""


@dataclass(frozen=True)
class CollapseLinearRegions(api.Pass):
    """Rewrite linear regions into the cheapest exact convs (see the module docstring)."""

    name: ClassVar[str] = "collapse_linear_regions"

    cost_model: api.CostModel = field(default_factory=api.CostModel)
    policy: Literal["cost", "always"] = "cost"
    force: frozenset[str] = frozenset()
    forbid: frozenset[str] = frozenset()
    max_states: int = api.affine.DEFAULT_MAX_STATES

    def __call__(self, gm: GraphModule) -> api.PassResult:
        result = api.PassResult()
        analysis = api.affine.find_regions(gm, allow=self._allows)
        for node, reason in analysis.not_affine.items():
            result.refuse(node, reason)
        shapes = api.affine.GraphShapes.of(gm)
        chosen = []
        for region in analysis.regions:
            plan = self._decide(region, shapes, result)
            if plan is not None:
                chosen.append(plan)
        rewriter = api.Rewriter(gm)
        for plan in chosen:
            api.affine.emit_plan(rewriter, plan)
        rewriter.finish()
        return result.absorb(rewriter)

    def _allows(self, op: api.affine.AffineOp) -> bool:
        return not _matches(op.node, self.forbid)

    def _decide(self, region: api.affine.Region, shapes: api.affine.GraphShapes,
                result: api.PassResult) -> api.affine.RegionPlan | None:
        """Plan ``region`` and record the decision; the plan to emit, or None to leave it as it is."""
        forced = self.policy == "always" or any(_matches(n, self.force) for n in region.nodes)
        choice = api.affine.plan_region(region, self.cost_model, shapes, objective="ops" if forced else "seconds",
                                        max_states=self.max_states)
        plan = choice.plan
        for node, reason in choice.cuts.items():
            result.refuse(node, reason)
        for emission in plan.emissions:
            if emission.kept_because and emission.node not in choice.cuts:
                result.refuse(emission.node, emission.kept_because)
            _explain_borders(emission, result)
        if not plan.changes:
            return None
        before, after = choice.as_is_seconds, plan.seconds
        fewer_ops = plan.op_count < choice.as_is_ops
        if forced:
            applied = fewer_ops or (plan.op_count == choice.as_is_ops and after < before * (1 - MIN_GAIN))
        else:
            applied = after <= before * (1 + RELATIVE_SLACK) and (after < before * (1 - MIN_GAIN) or fewer_ops)
        runner_up = choice.runner_up
        result.decisions.append(api.CostDecision(
            region.exit.name, before, after, applied, _note(choice, forced), api.module_path_of(region.exit),
            tuple(n.name for n in region.nodes), plan.describe(),
            runner_up.describe() if runner_up is not None else "",
            runner_up.seconds if runner_up is not None else None))
        if not applied and fewer_ops:
            result.refuse(region.exit, f"collapsing would cost {after / before:.2f}x the estimated time")
        return plan if applied else None


def _note(choice: api.affine.PlanChoice, forced: bool) -> str:
    plan = choice.plan
    rules = ", ".join(f"{rule} x{count}" for rule, count in sorted(plan.rules.items()))
    note = (f"{choice.as_is_ops} ops -> {plan.op_count}; estimated {choice.as_is_seconds * 1e6:.1f} us -> "
            f"{plan.seconds * 1e6:.1f} us" + (" (forced: fewest ops)" if forced else ""))
    if rules:
        note += f"; {rules}"
    if choice.runner_up is not None:
        note += f"; best rejected: {choice.runner_up.describe()}"
    if not choice.exact:
        note += f"; bounded search ({choice.largest_frontier} states kept)"
    return note


def _explain_borders(emission: api.affine.Emission, result: api.PassResult) -> None:
    """A tensor read through different paddings (zeros, reflect, ...) by several branches stays split."""
    reason = api.affine.separate_borders(emission)
    if reason is not None:
        result.refuse(emission.node, reason)


def _matches(node: Node, patterns: frozenset[str]) -> bool:
    if not patterns:
        return False
    names = (node.name, api.module_path_of(node))
    return any(fnmatch.fnmatchcase(name, pattern) for name in names if name for pattern in patterns)
