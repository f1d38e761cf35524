"""`fxrep.verify.running`: running a graph node by node with a hook, in its dtype or in float64."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from torch import nn

from fxrep.verify.running import (
    NodeRaised,
    float64_copy,
    leaves,
    map_leaves,
    node_inputs,
    run_graph,
    run_node64,
    to_float64,
)
from tests.helpers import LEVELS, captured, randomized

X = torch.randn(1, 3, 5, 5)


def small():
    return randomized(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()))


@pytest.mark.parametrize("level", LEVELS)
def test_run_graph_equals_the_module_and_the_hook_sees_every_node(level):
    model = small()
    gm = captured(model, X, level=level)
    seen = []

    def hook(node, value, inputs):
        seen.append(node.name)
        assert len(inputs) == len(node_inputs(node))
        return value

    with torch.no_grad():
        torch.testing.assert_close(run_graph(gm, (X,), hook), gm(X))
    assert seen == [n.name for n in gm.graph.nodes]


@pytest.mark.parametrize("level", LEVELS)
def test_the_hooks_value_is_what_readers_get(level):
    gm = captured(small(), X, level=level)
    output = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    relu = output[0] if isinstance(output, tuple | list) else output

    def hook(node, value, inputs):
        return torch.zeros_like(value) - 1 if node is relu.all_input_nodes[0] else value

    assert bool((run_graph(gm, (X,), hook) == 0).all())  # relu of -1 everywhere


def test_a_node_that_raises_is_named():
    gm = captured(nn.Linear(5, 2), (X,)[0], level="symbolic_trace")
    with pytest.raises(NodeRaised, match=r"node .* raised RuntimeError") as error:
        run_graph(gm, (torch.randn(2, 7),))
    assert error.value.node.op in ("call_module", "call_function") and isinstance(error.value.cause, RuntimeError)


@pytest.mark.parametrize("level", LEVELS)
def test_float64_runs_every_op_in_float64(level):
    model = small()
    gm = captured(model, X, level=level)
    wide = float64_copy(gm)
    assert all(p.dtype == torch.float64 for p in wide.parameters())
    assert all(p.dtype == torch.float32 for p in gm.parameters())  # a copy
    dtypes = set()

    def hook(node, value, inputs):
        if isinstance(value, torch.Tensor):
            dtypes.add(value.dtype)
        return value

    out = run_graph(wide, (X,), hook, float64=True)
    assert out.dtype == torch.float64 and dtypes == {torch.float64}
    torch.testing.assert_close(out, model.double()(X.double()))


def test_run_node64_evaluates_one_node_from_named_inputs():
    gm = float64_copy(captured(small(), X, level="symbolic_trace"))
    conv = next(n for n in gm.graph.nodes if n.op == "call_module")
    value = run_node64(gm, conv, {conv.args[0].name: X})
    torch.testing.assert_close(value, gm.get_submodule(str(conv.target))(X.double()))


def test_leaves_and_map_leaves_keep_the_structure():
    Pair = namedtuple("Pair", "a b")
    value = {"x": [1, (2, 3)], "y": Pair(4, [5])}
    assert list(leaves(value)) == [1, 2, 3, 4, 5]
    mapped = map_leaves(value, lambda v: v * 10)
    assert mapped == {"x": [10, (20, 30)], "y": Pair(40, [50])} and type(mapped["y"]) is Pair
    cast = to_float64((torch.zeros(1), torch.zeros(1, dtype=torch.int64), "s"))
    assert [getattr(v, "dtype", v) for v in cast] == [torch.float64, torch.int64, "s"]


def test_node_inputs_are_in_argument_order_each_once():
    gm = captured(nn.Identity(), X, level="symbolic_trace")
    graph = gm.graph
    x = next(iter(graph.nodes))
    with graph.inserting_after(x):
        y = graph.call_function(torch.neg, (x,))
    with graph.inserting_after(y):
        both = graph.call_function(torch.add, (y, x), {"alpha": 1})
    with graph.inserting_after(both):
        again = graph.call_function(torch.stack, ([x, y, x],))
    assert node_inputs(both) == [y, x] and node_inputs(again) == [x, y]
