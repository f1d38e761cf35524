"""Collapse every linear region into the cheapest exact set of convs.

For each region (see `find_linear_regions`) the ops are evaluated in topological order into
`AffineValue`s: BatchNorms and scales fold into the conv before them, parallel branches of one
input merge into one kernel (RepVGG, ACNet, MobileOne, residuals), sequential convs compose
(ExpandNet, DBB's 1x1 -> kxk), pads and average pools become conv padding and kernels, channel
concatenations stack. Where the algebra says a step is not exact, the step's inputs are
materialised ("cut") and the reason is recorded; an op that cannot be expressed even then stays as
it is. Where a step is exact but the cost model says composing costs more than keeping the inputs
separate (a low-rank 3x3 -> 3x3 becoming a 5x5, a depthwise 3x3 merged into a dense 1x1), the
inputs are cut too. Finally the whole region is rewritten only if its estimated time does not grow
and something improves (fewer ops or less time); every estimate is recorded as a `CostDecision`.

Options: ``cost_model`` (target constants), ``policy="always"`` ignores the cost model, ``force`` /
``forbid`` are glob patterns over node names and module paths (``"layer1.*"``) whose regions are
collapsed regardless of cost / whose ops are never touched.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch.fx import GraphModule, Node

from fxrep import pass_api as api

RELATIVE_SLACK = 1e-9


@dataclass(frozen=True)
class CollapseLinearRegions(api.Pass):
    """Rewrite linear regions into the cheapest exact convs (see the module docstring)."""

    name: ClassVar[str] = "collapse_linear_regions"

    cost_model: api.CostModel = field(default_factory=api.CostModel)
    policy: Literal["cost", "always"] = "cost"
    force: frozenset[str] = frozenset()
    forbid: frozenset[str] = frozenset()

    def __call__(self, gm: GraphModule) -> api.PassResult:
        result = api.PassResult()
        analysis = api.find_linear_regions(gm, allow=self._allows)
        for node, reason in analysis.not_linear.items():
            result.refuse(node, reason)
        for node, reason in analysis.shared.items():
            result.refuse(node, reason)
        rewriter = api.Rewriter(gm)
        replaced: dict[Node, Node] = {}  # nodes earlier regions replaced; later regions read the new ones
        for region in analysis.regions:
            replaced.update(_RegionCollapse(self, region, analysis, rewriter, result, replaced).run())
        rewriter.finish()
        return result.absorb(rewriter)

    def _allows(self, op: api.LinearOp) -> bool:
        return not _matches(op.node, self.forbid)


class _RegionCollapse:
    """Evaluate one region, decide its cuts, and emit it if that pays."""

    def __init__(self, options: CollapseLinearRegions, region: api.Region, analysis: api.RegionAnalysis,
                 rewriter: api.Rewriter, result: api.PassResult, replaced: dict[Node, Node]) -> None:
        self.options = options
        self.region = region
        self.ops = analysis.ops
        self.members = set(region.nodes)
        self.rewriter = rewriter
        self.result = result
        self.cost = options.cost_model
        self.always = options.policy == "always" or any(_matches(n, options.force) for n in region.nodes)
        self.guarded = api.shapes_are_guarded(rewriter.gm)
        self.replaced = replaced
        self.forced_cuts: dict[Node, str] = {}  # node -> why it must stay a tensor of its own
        self._reset()

    def _reset(self) -> None:
        self.values: dict[Node, api.AffineValue] = {}
        self.materialized: dict[Node, api.AffineValue] = {}
        self.kept: list[Node] = []
        self.reasons: list[tuple[Node, str]] = list(self.forced_cuts.items())  # keyed by final names later

    # -------------------------------------------------------------- evaluation
    def run(self) -> dict[Node, Node]:
        """Evaluate, decide, emit; returns the nodes this region replaced (old -> new)."""
        while True:
            try:
                for node in self.region.nodes:
                    self._evaluate(node)
                break
            except _CutEarlier:
                self._reset()
        exit_ = self.region.exit
        if exit_ in self.values:
            self.materialized[exit_] = self.values[exit_]
        changed = any(v.rules for v in self.materialized.values())
        renamed = self._decide_and_emit() if changed else {}
        for node, reason in self.reasons:
            target = renamed.get(node, node)
            self.result.refusals.append(api.Refusal(target.name, reason, api.module_path_of(node)))
        return renamed

    def _evaluate(self, node: Node) -> None:
        op = self.ops[node]
        try:
            inputs = [self._value_of(op, i) for i in range(len(op.inputs))]
            candidate = op.apply(inputs, self._size_of)
        except api.NotExact as reason:
            self._cut_before_unresolved_pads(node, op, str(reason))
            candidate = self._retry_on_materialized_inputs(node, op, str(reason))
            if candidate is None:
                return
        if not self.always and self._virtual_inputs(op):
            candidate = self._cut_if_cheaper(node, op, candidate)
        self.values[node] = candidate
        if node in self.forced_cuts:
            self._cut(node)

    def _cut_before_unresolved_pads(self, node: Node, op: api.LinearOp, reason: str) -> None:
        """A pad whose border never became conv padding: restart with the padded tensor kept whole."""
        for input_node in self._virtual_inputs(op):
            ring = self.values[input_node].ring
            if ring is not None and ring.origin in self.members and ring.origin not in self.forced_cuts:
                self.forced_cuts[ring.origin] = f"kept apart from {node.name}: {reason}"
                raise _CutEarlier

    def _retry_on_materialized_inputs(self, node: Node, op: api.LinearOp, reason: str) -> api.AffineValue | None:
        """The op cannot absorb its inputs: cut them and apply it alone, or keep the op as it is."""
        cut = self._virtual_inputs(op)
        for input_node in cut:
            self._cut(input_node)
            self.reasons.append((input_node, f"kept apart from {node.name}: {reason}"))
        try:
            inputs = [self._value_of(op, i) for i in range(len(op.inputs))]
            return op.apply(inputs, self._size_of)
        except api.NotExact as second:
            self.kept.append(node)
            self.reasons.append((node, reason if cut else str(second)))
            return None

    def _cut_if_cheaper(self, node: Node, op: api.LinearOp, candidate: api.AffineValue) -> api.AffineValue:
        """Keep ``candidate`` (op folded into its inputs) unless keeping the inputs separate is cheaper."""
        folded = self._seconds(candidate, node)
        separate = self.cost.node_seconds(node) + sum(self._seconds(self.values[i], i)
                                                      for i in self._virtual_inputs(op))
        if folded <= separate * (1 + RELATIVE_SLACK):
            return candidate
        self.result.decisions.append(api.CostDecision(
            node.name, separate, folded, False,
            f"kept the inputs of {node.name} separate: folding them in would cost {folded / separate:.2f}x",
            api.module_path_of(node)))
        for input_node in self._virtual_inputs(op):
            self._cut(input_node)
            self.reasons.append((input_node, f"kept apart from {node.name}: folding it in would cost "
                                             f"{folded / separate:.2f}x the estimated time"))
        inputs = [self._value_of(op, i) for i in range(len(op.inputs))]
        return op.apply(inputs, self._size_of)

    def _virtual_inputs(self, op: api.LinearOp) -> list[Node]:
        """Inputs whose value is still being folded (inside the region, not yet materialised)."""
        seen = []
        for node in op.inputs:
            value = self.values.get(node)
            if node in self.members and value is not None and node not in self.materialized \
                    and not value.is_bare_source and node not in seen:
                seen.append(node)
        return seen

    def _cut(self, node: Node) -> None:
        value = self.values[node]
        self.materialized[node] = value
        self.values[node] = api.AffineValue.of_source(node, value.channels, value.nd, value.channel_dim)

    def _value_of(self, op: api.LinearOp, index: int) -> api.AffineValue:
        node = op.inputs[index]
        if node in self.values:
            return self.values[node]
        node = self.replaced.get(node, node)  # an entry an earlier region rewrote
        siblings = [self.values[i] for i in op.inputs if i is not node and i in self.values]
        channels, nd, channel_dim = op.input_layout(index, siblings)
        if channels is None or nd is None:
            raise api.NotExact(f"the shape of {node.name} is unknown; pass example inputs")
        return api.AffineValue.of_source(node, channels, nd, channel_dim)

    def _size_of(self, source: api.Source) -> tuple[int, ...] | None:
        """Static spatial size for size-dependent exactness checks; None unless the graph guards shapes."""
        return self._recorded_size(source) if self.guarded else None

    def _recorded_size(self, source: api.Source) -> tuple[int, ...] | None:
        """The spatial size recorded at capture (for cost estimates, whether or not it is guarded)."""
        shape = api.dims(source.node)
        if shape is None or len(shape) < 3 or any(d is None for d in shape[2:]):
            return None
        size = tuple(shape[2:])
        if source.padding:
            size = tuple(n + lo + hi for n, (lo, hi) in zip(size, source.padding, strict=True))
        return size  # type: ignore[return-value]

    def _seconds(self, value: api.AffineValue, node: Node) -> float:
        batch, itemsize = _batch_and_itemsize(node)
        example = api.example_value(node)
        numel = example.numel() if example is not None and all(isinstance(d, int) for d in example.shape) else None
        return api.value_seconds(self.cost, value, self._recorded_size, batch, itemsize, numel)

    # -------------------------------------------------------------- decision and emission
    def _decide_and_emit(self) -> dict[Node, Node]:
        exit_ = self.region.exit
        before = sum(self.cost.node_seconds(n) for n in self.region.nodes)
        after = sum(self._seconds(v, n) for n, v in self.materialized.items())
        after += sum(self.cost.node_seconds(n) for n in self.kept)
        ops_before = len(self.region.nodes)
        ops_after = sum(_op_count(v) for v in self.materialized.values()) + len(self.kept)
        improved = after < before * (1 - RELATIVE_SLACK) or ops_after < ops_before
        applied = self.always or (after <= before * (1 + RELATIVE_SLACK) and improved)
        rules = sum((v.rules for v in self.materialized.values()), Counter())
        folded = ", ".join(f"{rule} x{count}" for rule, count in sorted(rules.items()))
        note = (f"{ops_before} ops -> {ops_after}; estimated {before * 1e6:.1f} us -> {after * 1e6:.1f} us"
                + (" (forced)" if self.always and not improved else "") + (f"; {folded}" if folded else ""))
        self._explain_separate_borders()
        self.result.decisions.append(api.CostDecision(exit_.name, before, after, applied, note,
                                                      api.module_path_of(exit_),
                                                      tuple(n.name for n in self.region.nodes)))
        if not applied:
            if improved:
                self.reasons.append((exit_, f"collapsing would cost {after / before:.2f}x the estimated time"))
            return {}
        return self._emit()

    def _explain_separate_borders(self) -> None:
        """A tensor read through different paddings (zeros, reflect, ...) by several branches stays split."""
        for node, value in self.materialized.items():
            by_node: dict[Node, list[str]] = {}
            for source in value.sources:
                by_node.setdefault(source.node, []).append(source.describe())
            for readers in by_node.values():
                if len(readers) > 1:
                    self.reasons.append((node, f"branches see different borders ({'; '.join(readers)}), so "
                                               "they cannot share one kernel"))

    def _emit(self) -> dict[Node, Node]:
        dtype, device = _dtype_and_device(self.region.nodes)
        path = self.rewriter.module_path(self.region.nodes)
        renamed: dict[Node, Node] = {}
        emitted: list[tuple[Node, Node, api.AffineValue]] = []
        for node in self.region.nodes:
            if node not in self.materialized:
                continue
            value = self.materialized[node].rename_sources(renamed)
            if not value.rules:
                continue
            try:
                new = api.emit_value(self.rewriter, value, like=node, path=path, dtype=dtype, device=device)
            except api.NotExact as reason:
                self.reasons.append((node, str(reason)))
                continue
            renamed[node] = new
            emitted.append((node, new, value))
        for node, new, value in emitted:
            self.rewriter.replace(node, new)
            for rule, times in value.rules.items():
                self.rewriter.count(rule, times)
        if emitted:
            self.rewriter.count("regions")
        return renamed


class _CutEarlier(Exception):
    """Restart a region's evaluation with one more forced cut."""


def _op_count(value: api.AffineValue) -> int:
    """Ops `emit_value` emits: one per non-identity term, the adds between terms, a lone bias add."""
    nontrivial = [m for _, m in value.terms if not m.is_identity]
    adds = len(value.terms) - 1
    bias_add = 1 if not nontrivial and bool(value.bias.ne(0).any()) else 0
    return len(nontrivial) + adds + bias_add


def _matches(node: Node, patterns: frozenset[str]) -> bool:
    if not patterns:
        return False
    names = (node.name, api.module_path_of(node))
    return any(fnmatch.fnmatchcase(name, pattern) for name in names if name for pattern in patterns)


def _batch_and_itemsize(node: Node) -> tuple[int, int]:
    example = api.example_value(node)
    if example is None:
        return 1, 4
    batch = example.shape[0] if example.dim() > 0 and isinstance(example.shape[0], int) else 1
    return batch, example.element_size()


def _dtype_and_device(nodes) -> tuple[torch.dtype, torch.device]:
    for node in nodes:
        for view_type in (api.Conv, api.Linear, api.BatchNorm):
            view = view_type.from_node(node)
            weight = getattr(view, "weight", None) if view is not None else None
            if weight is None and view is not None:
                weight = getattr(view, "running_mean", None)
            if weight is not None:
                return weight.dtype, weight.device
    for node in nodes:
        example = api.example_value(node)
        if example is not None and example.dtype.is_floating_point:
            return example.dtype, torch.device("cpu")
    return torch.float32, torch.device("cpu")
