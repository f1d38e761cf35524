"""Fuse a block type of your own, which fxrep's built-in passes cannot see into, into one conv.

``MixtureConv`` is a (made-up but typical) over-parameterized block: K convs of different kernel
sizes read the same input and are mixed by learned weights,

    y = sum_i softmax(alpha / temperature)_i * conv_i(x)

At inference the mixing weights are constants, so by the kernel algebra the block is exactly one
conv: scale each branch's kernel and bias by its weight, centre the smaller kernels in the largest
one, and add (`api.sum_maps`). A 1x1, a 3x3 and a 5x5 branch become one 5x5 conv.

The model's authors trace it with their own ``torch.fx.Tracer`` that keeps ``MixtureConv`` as a leaf
(as one does for blocks whose forward cannot be traced, or to keep feature-extraction graphs
readable), so the graph fxrep gets holds one opaque ``call_module`` per block. This imperative pass
knows the block: it reads the module's parameters, builds the exact kernel with ``fxrep.algebra``
and emits it through the `Rewriter`. Branches that do not line up (different strides) are refused
with the algebra's reason.

Run: python examples/fuse_custom_block.py
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from fxrep.passes import default_pipeline
from torch import nn
from torch.fx import GraphModule, Node

import fxrep
from fxrep import pass_api as api
from fxrep.models import randomize_


class MixtureConv(nn.Module):
    """``sum_i softmax(alpha / temperature)_i * conv_i(x)`` over convs with "same" padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...] = (1, 3, 5),
                 stride: int | tuple[int, ...] = 1, temperature: float = 1.0) -> None:
        super().__init__()
        strides = stride if isinstance(stride, tuple) else (stride,) * len(kernel_sizes)
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, k, stride=s, padding=k // 2)
            for k, s in zip(kernel_sizes, strides, strict=True)
        )
        self.alpha = nn.Parameter(torch.zeros(len(kernel_sizes)))
        self.temperature = temperature

    def mixing_weights(self) -> torch.Tensor:
        return torch.softmax(self.alpha / self.temperature, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.mixing_weights()
        return sum(w * branch(x) for w, branch in zip(weights, self.branches, strict=True))


class BlockTracer(torch.fx.Tracer):
    """The authors' tracer: ``MixtureConv`` blocks stay single ``call_module`` nodes."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, MixtureConv) or super().is_leaf_module(module, qualified_name)


def trace_with_blocks(model: nn.Module) -> GraphModule:
    return GraphModule(model, BlockTracer().trace(model))


@dataclass(frozen=True)
class FuseMixtureConv(api.Pass):
    """Replace every ``MixtureConv`` call by the one conv it equals (see the module docstring)."""

    name: ClassVar[str] = "fuse_mixture_conv"

    def __call__(self, gm: GraphModule) -> api.PassResult:
        return self.rewrite_each(gm, _fuse)


def _fuse(node: Node, rewriter: api.Rewriter) -> api.Match | None:
    """The one conv a ``MixtureConv`` call equals, in its place (None for other nodes)."""
    block = _mixture_block(rewriter.gm, node)
    if block is None:
        return None
    merged = merged_kernel(block, node)
    if not merged:
        return merged  # refused, with the algebra's reason
    (source,) = node.args
    new = rewriter.conv(source, merged.value, like=node)  # named after the block, in its dtype and device
    rewriter.replace(node, new, "fuse_mixture_conv")
    return api.Match.ok(new)


def _mixture_block(gm: GraphModule, node: Node) -> MixtureConv | None:
    """The ``MixtureConv`` a node calls with one tensor, else None."""
    if node.op != "call_module" or len(node.args) != 1 or node.kwargs or not isinstance(node.args[0], Node):
        return None
    module = gm.get_submodule(str(node.target))
    return module if isinstance(module, MixtureConv) else None


def merged_kernel(block: MixtureConv, node: Node) -> api.Match:
    """``Match.ok(ConvMap)`` equal to the block, or ``Match.fail(reason)``.

    Each branch ``W_i, b_i`` is scaled by its mixing weight ``m_i`` (``W_i' = m_i W_i``,
    ``b_i' = m_i b_i``); `api.sum_maps` places the kernels in the union kernel and adds them.
    """
    if api.has_hooks(block) or any(api.has_hooks(branch) for branch in block.branches):
        return api.Match.fail(f"{node.name} has hooks that may change what it computes")
    with torch.no_grad():
        mixing = block.mixing_weights().to(torch.float64)
    maps = []
    for m, branch in zip(mixing, block.branches, strict=True):
        if branch.padding_mode != "zeros":
            return api.Match.fail(f"{node.name}'s branch pads with mode {branch.padding_mode!r}")
        conv = api.conv_map(branch.weight, branch.bias, branch.stride, branch.padding, branch.dilation,
                            branch.groups)
        maps.append(api.compose(api.diagonal_map(m.expand(conv.out_channels), None, 2), conv))
    shape = api.static_shape(node.args[0])
    merged = api.attempt(api.sum_maps, maps, shape[2:] if shape is not None else None)
    if not merged:
        return api.Match.fail(f"{node.name}'s branches cannot be merged: {merged.reason}")
    return merged


class MixtureNet(nn.Module):
    """A stem conv, two ``MixtureConv`` blocks with ReLUs, global pooling and a linear head."""

    def __init__(self, channels: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())
        self.mix1 = MixtureConv(channels, channels, temperature=0.5)
        self.mix2 = MixtureConv(channels, 2 * channels, kernel_sizes=(3, 1), temperature=2.0)
        self.head = nn.Linear(2 * channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(self.mix1(x))
        x = torch.relu(self.mix2(x))
        return self.head(x.mean(dim=(2, 3)))


def build_model() -> nn.Module:
    return randomize_(MixtureNet(), seed=0).eval()


def main() -> None:
    torch.manual_seed(0)
    model = build_model()
    inputs = (torch.randn(2, 3, 16, 16),)
    traced = trace_with_blocks(model)

    plain = fxrep.optimize(traced, inputs)
    print(f"default pipeline alone: {fxrep.report_of(plain).ops_after['MixtureConv']} MixtureConv blocks left "
          "(the built-ins cannot see into them)")

    gm = fxrep.optimize(traced, inputs, passes=[FuseMixtureConv(), *default_pipeline()])
    report = fxrep.report_of(gm)
    print(report)
    convs = [api.Conv.from_node(node) for node in gm.graph.nodes]
    kernels = [conv.kernel_size for conv in convs if conv is not None]
    print(f"\nconv kernels after: {kernels}")
    error = (gm(*inputs) - model(*inputs)).abs().max().item()
    print(f"max abs error against the original model: {error:.3g}")


if __name__ == "__main__":
    main()
