"""The in-place / out-of-place table (`fxrep.ops.inplace`): pairs, detection in every form, what a node writes."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from fxrep.ops.inplace import (
    OPERATORS,
    in_place_call,
    in_place_overload,
    out_of_place_overload,
    written_arguments,
)

aten = torch.ops.aten


@pytest.mark.parametrize("out_of_place, in_place", [
    (aten.relu.default, aten.relu_.default), (aten.add.Tensor, aten.add_.Tensor),
    (aten.hardtanh.default, aten.hardtanh_.default), (aten.clamp.default, aten.clamp_.default),
    (aten.gelu.default, aten.gelu_.default), (aten.mul.Tensor, aten.mul_.Tensor),
])
def test_aten_pairs_in_both_directions(out_of_place, in_place):
    assert in_place_overload(out_of_place) is in_place
    assert out_of_place_overload(in_place) is out_of_place


def test_ops_without_a_twin_or_writing_other_arguments_have_no_pair():
    assert in_place_overload(aten.conv2d.default) is None  # no conv2d_
    assert in_place_overload(aten.relu_.default) is None  # already in place
    assert out_of_place_overload(aten.relu.default) is None
    # writes its running statistics (arguments 3 and 4), not its first argument
    assert out_of_place_overload(aten._native_batch_norm_legit.default) is None


def test_every_augmented_assignment_operator_pairs_with_its_operator():
    assert OPERATORS[operator.iadd] is operator.add and OPERATORS[operator.ifloordiv] is operator.floordiv
    assert OPERATORS[operator.setitem] is None
    for in_place, out_of_place in OPERATORS.items():
        if out_of_place is not None:
            assert in_place.__name__ == "i" + out_of_place.__name__.rstrip("_")


class _Forms(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        a = x * 2
        a.relu_()                 # method
        b = torch.sigmoid_(a * 3)  # torch function
        c = F.relu(b + 1, inplace=True)  # keyword
        return self.act(c * 2)    # module flag


def test_every_form_is_recognised_with_its_out_of_place_form():
    gm = fx.symbolic_trace(_Forms())
    calls = {node.name: in_place_call(node, gm) for node in gm.graph.nodes}
    found = {name: call for name, call in calls.items() if call is not None}
    assert sorted(found) == ["act", "relu", "relu_", "sigmoid_"]
    assert found["relu_"].out_of_place.target == "relu"
    assert found["sigmoid_"].out_of_place.target is torch.sigmoid
    assert found["relu"].out_of_place.kwargs == {} and found["relu"].out_of_place.args[-1] is False
    assert found["act"].out_of_place.module is gm.act
    for call in found.values():
        assert call.mutated is call.node.args[0]


def test_applying_the_out_of_place_forms_gives_the_same_outputs():
    model = _Forms()
    x = torch.randn(4)
    expected = model(x.clone())
    gm = fx.symbolic_trace(_Forms())
    for node in list(gm.graph.nodes):
        call = in_place_call(node, gm)
        if call is not None:
            call.out_of_place.apply(node)
            # readers after the node must read its result now that it no longer writes
            for user in list(call.mutated.users):
                if user is not node and list(gm.graph.nodes).index(user) > list(gm.graph.nodes).index(node):
                    user.replace_input_with(call.mutated, node)
    gm.recompile()
    assert not gm.act.inplace
    torch.testing.assert_close(gm(x), expected)


def test_operators_setitem_and_methods_without_an_out_of_place_form():
    graph = fx.Graph()
    x = graph.placeholder("x")
    iadd = graph.call_function(operator.iadd, (x, 1))
    setitem = graph.call_function(operator.setitem, (x, 0, 1.0))
    clamp = graph.call_method("clamp_", (x, 0.0))  # Tensor.clamp exists
    uniform = graph.call_method("uniform_", (x,))  # Tensor.uniform does not
    graph.output(x)
    assert in_place_call(iadd).out_of_place.target is operator.add
    assert in_place_call(setitem).out_of_place is None
    assert in_place_call(clamp).out_of_place.target == "clamp"
    assert in_place_call(uniform).out_of_place is None


def test_written_arguments_include_out_batch_norm_statistics_and_in_place_named_calls():
    graph = fx.Graph()
    x, mean, var, out = (graph.placeholder(name) for name in ("x", "mean", "var", "out"))
    bn = graph.call_function(F.batch_norm, (x, mean, var, None, None, True))
    bn_eval = graph.call_function(F.batch_norm, (x, mean, var, None, None, False))
    add_out = graph.call_function(torch.add, (x, x), {"out": out})
    method_like = graph.call_function(torch.Tensor.add_, (x, 1))
    aten_writes = graph.call_function(aten._native_batch_norm_legit.default, (x, None, None, mean, var, True, 0.1, 1e-5))
    graph.output((bn, bn_eval, add_out, method_like, aten_writes))
    assert written_arguments(bn) == [mean, var]
    assert written_arguments(bn_eval) == []
    assert written_arguments(add_out) == [out]
    assert written_arguments(method_like) == [x]
    assert written_arguments(aten_writes) == [mean, var]


def test_written_arguments_bind_batch_norm_by_name():
    graph = fx.Graph()
    x, mean, var = (graph.placeholder(name) for name in ("x", "mean", "var"))
    by_keyword = graph.call_function(F.batch_norm, (x,), {"running_mean": mean, "running_var": var, "training": True})
    eval_by_keyword = graph.call_function(F.batch_norm, (x, mean, var), {"training": False})
    default_eval = graph.call_function(F.batch_norm, (x, mean, var))
    graph.output((by_keyword, eval_by_keyword, default_eval))
    assert written_arguments(by_keyword) == [mean, var]
    assert written_arguments(eval_by_keyword) == []
    assert written_arguments(default_eval) == []
