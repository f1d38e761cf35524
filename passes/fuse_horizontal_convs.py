"""Fuse convs that read the same tensor into one conv whose output is split.

Inception-style blocks start several branches with a 1x1 conv of the same input. Stacking their
kernels along the output channels (`fxrep.algebra.stack_maps`) gives one conv computing all of them:
the input is read once and one op replaces several; ``split`` views give each branch its part.
This is TVM's CombineParallelConv2D and TensorRT's horizontal fusion, applied before lowering so every
runtime benefits.

Only dense convs (groups 1) with the same stride, dilation and kernel geometry are combined (other
kernels would need zero taps and cost more); the cost model must agree. Branches whose outputs are
concatenated anyway are already one conv (`CollapseLinearRegions` stacks them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch.fx import GraphModule, Node

from fxrep import pass_api as api

RELATIVE_SLACK = 1e-9


@dataclass(frozen=True)
class FuseHorizontalConvs(api.Pass):
    """Combine same-geometry convs of one input (see the module docstring)."""

    name: ClassVar[str] = "fuse_horizontal_convs"

    cost_model: api.CostModel = field(default_factory=api.CostModel)
    min_convs: int = 2

    def __call__(self, gm: GraphModule) -> api.PassResult:
        result = api.PassResult()
        rewriter = api.Rewriter(gm)
        for source in list(gm.graph.nodes):
            groups: dict[tuple, list[tuple[Node, api.ConvMap]]] = {}
            for user in list(source.users):
                conv = api.Conv.from_node(user)
                if conv is None or conv.input is not source or conv.transposed or conv.groups != 1:
                    continue
                found = api.attempt(conv.conv_map)
                if not found:
                    continue
                conv_map = found.value
                key = (conv_map.kernel_size, conv_map.stride, conv_map.padding, conv_map.dilation,
                       conv.weight.dtype, conv.weight.device)
                groups.setdefault(key, []).append((user, conv_map))
            for members in groups.values():
                if len(members) >= self.min_convs:
                    self._fuse(source, members, rewriter, result)
        rewriter.finish()
        return result.absorb(rewriter)

    def _fuse(self, source: Node, members: list[tuple[Node, api.ConvMap]], rewriter: api.Rewriter,
              result: api.PassResult) -> None:
        members = sorted(members, key=lambda member: _position(member[0]))
        nodes = [node for node, _ in members]
        maps = [conv_map for _, conv_map in members]
        stacked = api.stack_maps(maps)
        in_size = api.static_shape(source)
        in_size = in_size[2:] if in_size is not None else None
        batch = api.static_shape(source)[0] if api.static_shape(source) else 1
        before = sum(self.cost_model.conv_seconds(m, in_size, batch) for m in maps)
        after = self.cost_model.conv_seconds(stacked, in_size, batch)
        applied = after <= before * (1 + RELATIVE_SLACK)
        names = ", ".join(n.name for n in nodes)
        result.decisions.append(api.CostDecision(nodes[0].name, before, after, applied,
                                                 f"fuse {len(nodes)} convs of {source.name} ({names})",
                                                 api.module_path_of(nodes[0]), tuple(n.name for n in nodes)))
        if not applied:
            result.refuse(nodes[0], f"fusing {names} would cost {after / before:.2f}x the estimated time")
            return
        first = nodes[0]
        weight = api.Conv.from_node(first).weight
        path = rewriter.module_path(nodes)
        fused = rewriter.conv(source, stacked, like=first, path=path, dtype=weight.dtype, device=weight.device)
        parts = rewriter.split(fused, [m.out_channels for m in maps], 1, like=first)
        for node, part in zip(nodes, parts, strict=True):
            rewriter.replace(node, part)
        rewriter.count("fuse_convs", len(nodes))


def _position(node: Node) -> int:
    return next(i for i, n in enumerate(node.graph.nodes) if n is node)
