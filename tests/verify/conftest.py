"""Helpers of the verification tests: small nets, captures with their pre-pass copy, wrong passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.fx import GraphModule

from fxrep import pass_api as api
from fxrep.pass_manager import PassManager
from fxrep.report import Report
from fxrep.verify import snapshot
from tests.helpers import captured, randomized


def conv_bn_relu(channels: int = 8) -> list[nn.Module]:
    return [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()]


def chain(layers: int = 3, channels: int = 8) -> nn.Module:
    """``layers`` conv-BN-ReLU blocks and a final conv: one foldable region per block."""
    modules = [m for _ in range(layers) for m in conv_bn_relu(channels)]
    return randomized(nn.Sequential(*modules, nn.Conv2d(channels, channels, 1)))


def rewrite(model: nn.Module, x: torch.Tensor, passes: list, level: str = "export") -> tuple[GraphModule, GraphModule]:
    """(the capture before the passes, the capture after them), as `fxrep.optimize` holds them; the
    passes' summaries are in ``SUMMARIES[id(after)]``."""
    gm = captured(model, x, level=level)
    original = snapshot(gm)
    SUMMARIES[id(gm)] = Report.summarize(PassManager(passes).run(gm), gm)
    return original, gm


SUMMARIES: dict[int, list] = {}


@dataclass(frozen=True)
class ScaleConvs(api.Pass):
    """A wrong pass: re-emits every conv that has a bias with its weight and bias scaled by ``factor``,
    once per graph."""

    name: ClassVar[str] = "scale_convs"
    factor: float = 1.5

    def __call__(self, gm: GraphModule) -> api.PassResult:
        if gm.meta.get("scaled_convs"):
            return api.PassResult(False)
        rewriter = api.Rewriter(gm)
        for node in list(gm.graph.nodes):
            conv = api.Conv.from_node(node)
            if conv is None or conv.weight is None or conv.bias is None or node.op != "call_function":
                continue
            scaled = api.conv_map(conv.weight * self.factor, conv.bias * self.factor, conv.stride, conv.padding,
                                  conv.dilation, conv.groups)
            new = rewriter.conv(conv.input, scaled, like=node, path="scaled", dtype=conv.weight.dtype,
                                device=conv.weight.device)
            rewriter.replace(node, new, "scale")
        gm.meta["scaled_convs"] = True
        rewriter.finish()
        return api.PassResult().absorb(rewriter)


@dataclass(frozen=True)
class ShiftBias(api.Pass):
    """A wrong pass: re-emits the ``index``-th conv of the graph with ``shift`` added to its bias, once."""

    name: ClassVar[str] = "shift_bias"
    index: int = 0
    shift: float = 0.5

    def __call__(self, gm: GraphModule) -> api.PassResult:
        if gm.meta.get("shifted_bias"):
            return api.PassResult(False)
        rewriter = api.Rewriter(gm)
        convs = [node for node in gm.graph.nodes if api.Conv.from_node(node) is not None]
        for node in convs[self.index:self.index + 1]:
            conv = api.Conv.from_node(node)
            bias = conv.bias if conv.bias is not None else torch.zeros(conv.weight.shape[0])
            shifted = api.conv_map(conv.weight, bias + self.shift, conv.stride, conv.padding, conv.dilation,
                                   conv.groups)
            new = rewriter.conv(conv.input, shifted, like=node, path="shifted", dtype=conv.weight.dtype,
                                device=conv.weight.device)
            rewriter.replace(node, new, "wrong_bias")
        gm.meta["shifted_bias"] = True
        rewriter.finish()
        return api.PassResult().absorb(rewriter)
