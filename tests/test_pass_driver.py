"""The pass driver (`Pass.rewrite_each` / `Pass.rewrite_graph`) and the `Rewriter` defaults it leans on:
`Rewriter.conv` names, casts and places the new op after the node it replaces unless told otherwise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fxrep import pass_api as api
from fxrep.capture import capture
from fxrep.pass_base import module_path_of, recorded_module_path
from fxrep.rewriter import Rewriter
from tests.helpers import LEVELS, captured, randomized

X = torch.randn(1, 4, 6, 6)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.other = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return torch.relu(self.other(self.conv(x)))


def model():
    return randomized(nn.Sequential(Block()))


def convs(gm):
    return [n for n in gm.graph.nodes if api.Conv.from_node(n) is not None]


def as_conv(node, rewriter):
    """Re-emit every conv as itself (the rule ``same``), refuse the 1x1 one."""
    conv = api.Conv.from_node(node)
    if conv is None:
        return None
    if conv.kernel_size == (1, 1):
        return api.Match.fail(f"{node.name} is 1x1")
    new = rewriter.conv(conv.input, conv.conv_map(), like=node)
    rewriter.replace(node, new, "same")
    return api.Match.ok(new)


@pytest.mark.parametrize("level", LEVELS)
def test_rewrite_each_counts_refuses_and_finishes(level):
    m = model()
    gm = captured(m, X, level=level)
    before = len(convs(gm))
    result = api.Pass.rewrite_each(gm, as_conv)
    assert result.modified and dict(result.counts) == {"same": 1}
    assert [r.rule for r in result.rewrites] == ["same"] and result.rewrites[0].module == "0.conv"
    assert len(result.refusals) == 1 and result.refusals[0].reason.endswith("is 1x1")
    assert result.refusals[0].module == "0.other"
    assert len(convs(gm)) == before  # the old conv is gone (finish removed dead code), the new one took over
    assert any("reparam" in name for name, _ in gm.named_parameters())
    torch.testing.assert_close(gm(X), m(X))


def test_rewrite_each_visits_only_the_given_nodes_and_not_what_it_emits():
    gm = captured(model(), X, level="export")
    seen = []

    def visit(node, rewriter):
        seen.append(node)
        return as_conv(node, rewriter)

    first = convs(gm)[0]
    result = api.Pass.rewrite_each(gm, visit, nodes=[first])
    assert seen == [first] and result.counts["same"] == 1
    seen.clear()
    listed = list(gm.graph.nodes)
    api.Pass.rewrite_each(gm, visit)
    assert seen == listed  # the conv it emitted in place of the first 3x3 one was not visited


def test_rewrite_graph_runs_the_body_once_and_an_unchanged_graph_stays_unmodified():
    gm = captured(model(), X, level="export")
    calls = []
    result = api.Pass.rewrite_graph(gm, lambda rewriter, result: calls.append((rewriter.gm, result)))
    assert len(calls) == 1 and calls[0][0] is gm and calls[0][1] is result
    assert not result and not result.counts and not result.refusals


@pytest.mark.parametrize("level", LEVELS)
def test_conv_defaults_to_the_module_dtype_and_device_of_the_replaced_node(level):
    m = model().double()
    gm = captured(m, X.double(), level=level)
    rewriter = Rewriter(gm)
    node = convs(gm)[0]
    conv = api.Conv.from_node(node)
    new = rewriter.conv(conv.input, conv.conv_map(), like=node)
    assert rewriter.tensor_format(node) == (torch.float64, torch.device("cpu"))
    rewriter.replace(node, new, "same")
    rewriter.finish()
    names = [name for name, _ in gm.named_parameters() if "reparam" in name]
    assert names == ["0.conv.reparam.weight", "0.conv.reparam.bias"]
    assert all(p.dtype == torch.float64 for p in gm.parameters())
    torch.testing.assert_close(gm(X.double()), m(X.double()))


def test_conv_keeps_explicit_arguments_and_falls_back_to_the_module_without_shapes():
    m = model()
    gm = capture(m, None, method="symbolic_trace").graph_module
    rewriter = Rewriter(gm)
    node = convs(gm)[0]
    assert "val" not in node.meta
    assert rewriter.tensor_format(node) == (torch.float32, torch.device("cpu"))  # the module's parameters
    conv = api.Conv.from_node(node)
    new = rewriter.conv(conv.input, conv.conv_map(), like=node, path="elsewhere", dtype=torch.float64,
                        device=torch.device("cpu"))
    assert str(new.target) == "elsewhere.reparam"
    assert gm.get_submodule("elsewhere.reparam").weight.dtype == torch.float64
    placeholder = next(iter(gm.graph.nodes))
    with pytest.raises(ValueError, match="pass dtype= and device="):
        rewriter.conv(placeholder, conv.conv_map(), like=placeholder)


def test_erase_and_set_module_count_their_rule():
    gm = capture(model(), None, method="symbolic_trace").graph_module
    rewriter = Rewriter(gm)
    node = convs(gm)[0]
    with pytest.raises(ValueError, match="still has users"):
        rewriter.erase(node)
    with gm.graph.inserting_after(node):
        unused = gm.graph.call_function(torch.relu, (node,))
    rewriter.erase(unused, "drop")
    replacement = nn.Conv2d(4, 4, 3, padding=1)
    rewriter.set_module(str(node.target), replacement, "swap")
    assert gm.get_submodule(str(node.target)) is replacement
    assert dict(rewriter.counts) == {"drop": 1, "swap": 1} and rewriter.modified and not rewriter.rewrites


@pytest.mark.parametrize("level", LEVELS)
def test_module_path_agrees_with_module_path_of(level):
    gm = captured(model(), X, level=level)
    rewriter = Rewriter(gm)
    first, second = convs(gm)
    assert module_path_of(first) == "0.conv" and module_path_of(second) == "0.other"
    assert rewriter.module_path([first, second]) == "0"
    placeholder = next(iter(gm.graph.nodes))
    assert recorded_module_path(placeholder) is None and module_path_of(placeholder) == ""
    assert rewriter.module_path([placeholder, first]) == "0.conv"  # nodes without a module do not count
