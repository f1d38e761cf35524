"""`Rewriter`, method by method, on a tiny graph at both capture levels: the nodes each method adds (op,
target, names of new parameters), the metadata they copy, and what the rewritten module computes.

The graph is ``relu(block.1(block.0(x)))``. Each test emits ops reading ``x`` before ``block.1`` and
routes ``block.1``'s readers to the result, so the module then computes ``relu(op(x))``.
"""

from __future__ import annotations

import operator
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep.algebra import conv_map, linear_map
from fxrep.ops import Conv
from fxrep.pass_base import Rewrite
from fxrep.rewriter import RENAMES_KEY, Rewriter, final_name, remove_unused_attributes
from tests.helpers import LEVELS, captured, randomized

aten = torch.ops.aten
X = torch.randn(1, 4, 6, 6)
CPU = torch.device("cpu")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1))

    def forward(self, x):
        return torch.relu(self.block(x))


@pytest.fixture(params=LEVELS)
def tiny(request):
    model = randomized(Tiny())
    gm = captured(model, X, level=request.param)
    convs = [n for n in gm.graph.nodes if Conv.from_node(n) is not None]
    x = next(n for n in gm.graph.nodes if n.op == "placeholder")
    return SimpleNamespace(model=model, gm=gm, rewriter=Rewriter(gm), x=x, first=convs[0], like=convs[1],
                           module=request.param == "symbolic_trace")


def f64(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def result(tiny, new, rule="test_rule"):
    """Route ``block.1``'s readers to ``new``, finish, and run the module on X."""
    tiny.rewriter.replace(tiny.like, new, rule)
    tiny.rewriter.finish()
    with torch.no_grad():
        return tiny.gm(X)


def assert_computes(tiny, new, expected):
    torch.testing.assert_close(result(tiny, new), torch.relu(expected), rtol=1e-5, atol=1e-5)


def assert_copies_meta(tiny, node):
    keys = [k for k in ("nn_module_stack", "stack_trace") if k in tiny.like.meta]
    assert keys  # the captured node has some to copy
    for key in keys:
        assert node.meta[key] == tiny.like.meta[key], key


def attribute(gm, name):
    value = gm
    for part in name.split("."):
        value = getattr(value, part)
    return value


# ---------------------------------------------------------------------- names and constants
def test_level_follows_the_capture(tiny):
    assert tiny.rewriter.level == ("module" if tiny.module else "aten")
    assert not tiny.rewriter.modified


def test_module_path_is_the_innermost_shared_module(tiny):
    rewriter = tiny.rewriter
    assert rewriter.module_path([tiny.like]) == "block.1"
    assert rewriter.module_path([tiny.first, tiny.like]) == "block"
    assert rewriter.module_path([tiny.x]) == ""  # a placeholder belongs to no module


def test_fresh_name_skips_names_in_use(tiny):
    rewriter = tiny.rewriter
    assert rewriter.fresh_name("block", "reparam") == "block.reparam"
    rewriter.constant(f64(3), "block.reparam", before=tiny.like)
    assert rewriter.fresh_name("block", "reparam") == "block.reparam_1"
    assert rewriter.fresh_name("", "top") == "top"
    assert rewriter.fresh_name("block", "0") == "block.0_1"  # the existing submodule block.0


def test_constant_registers_a_frozen_copy_and_returns_its_get_attr(tiny):
    value = f64(4, 1, 1)
    node = tiny.rewriter.constant(value, "block.extra.scale", before=tiny.like)
    assert node.op == "get_attr" and node.target == "block.extra.scale"
    assert node.next is tiny.like and node.meta["val"] is value
    stored = attribute(tiny.gm, "block.extra.scale")
    assert isinstance(stored, nn.Parameter) and not stored.requires_grad
    value.add_(1.0)  # a copy: the caller's tensor can change afterwards
    assert not torch.equal(stored, value)


# ---------------------------------------------------------------------- emitting ops
def test_conv_emits_the_graphs_own_form_named_after_the_path(tiny):
    weight, bias = f64(5, 4, 3, 3), f64(5)
    new = tiny.rewriter.conv(tiny.x, conv_map(weight, bias, padding=1), like=tiny.like, path="block",
                             dtype=torch.float32, device=CPU)
    assert new.next is tiny.like
    assert_copies_meta(tiny, new)
    if tiny.module:
        assert new.op == "call_module" and new.target == "block.reparam"
        module = tiny.gm.get_submodule("block.reparam")
        assert isinstance(module, nn.Conv2d) and module.padding == (1, 1)
        assert module.weight.dtype == torch.float32 and not module.weight.requires_grad
    else:
        assert new.target is aten.conv2d.default
        assert [a.target for a in new.args[1:3]] == ["block.reparam.weight", "block.reparam.bias"]
        assert new.args[4] == [1, 1]
    assert_computes(tiny, new, F.conv2d(X, weight.float(), bias.float(), padding=1))


def test_conv_pads_the_difference_of_asymmetric_padding_first(tiny):
    weight = f64(4, 4, 3, 3)
    new = tiny.rewriter.conv(tiny.x, conv_map(weight, None, 1, ((0, 1), (2, 1))), like=tiny.like, path="",
                             dtype=torch.float32, device=CPU)
    pad = new.args[0]
    assert pad.target in (F.pad, aten.constant_pad_nd.default) and pad.args[0] is tiny.x
    assert_computes(tiny, new, F.conv2d(F.pad(X, (2, 1, 0, 1)), weight.float()))


def test_a_second_conv_on_the_same_path_gets_a_fresh_name(tiny):
    make = tiny.rewriter.conv
    first = make(tiny.x, conv_map(f64(4, 4, 1, 1)), like=tiny.like, path="block", dtype=torch.float32, device=CPU)
    second = make(first, conv_map(f64(4, 4, 1, 1)), like=tiny.like, path="block", dtype=torch.float32, device=CPU)
    names = [first.target, second.target] if tiny.module else [first.args[1].target, second.args[1].target]
    assert names == (["block.reparam", "block.reparam_1"] if tiny.module else
                     ["block.reparam.weight", "block.reparam_1.weight"])


def test_a_0d_conv_map_is_a_linear_layer(tiny):
    weight, bias = f64(3, 6), f64(3)
    new = tiny.rewriter.conv(tiny.x, linear_map(weight, bias), like=tiny.like, path="block", dtype=torch.float32,
                             device=CPU)
    if tiny.module:
        assert isinstance(tiny.gm.get_submodule(str(new.target)), nn.Linear)
    else:
        assert new.target is aten.linear.default
    assert_computes(tiny, new, F.linear(X, weight.float(), bias.float()))


def test_linear(tiny):
    weight = torch.randn(5, 6)
    new = tiny.rewriter.linear(tiny.x, weight, None, like=tiny.like, path="block", device=CPU)
    if tiny.module:
        module = tiny.gm.get_submodule("block.reparam")
        assert isinstance(module, nn.Linear) and module.bias is None
    else:
        assert new.target is aten.linear.default and new.args[2] is None
    assert_copies_meta(tiny, new)
    assert_computes(tiny, new, F.linear(X, weight))


def test_conv_transpose(tiny):
    weight, bias = torch.randn(4, 3, 2, 2), torch.randn(3)
    new = tiny.rewriter.conv_transpose(tiny.x, weight, bias, stride=[2, 2], padding=[0, 0], output_padding=[0, 0],
                                       groups=1, dilation=[1, 1], like=tiny.like, path="block")
    if tiny.module:
        assert isinstance(tiny.gm.get_submodule(str(new.target)), nn.ConvTranspose2d)
    else:
        assert new.target is aten.conv_transpose2d.input
    assert_computes(tiny, new, F.conv_transpose2d(X, weight, bias, stride=2))


@pytest.mark.parametrize("value", [0.0, 1.5])
def test_pad(tiny, value):
    new = tiny.rewriter.pad(tiny.x, [(0, 1), (1, 2)], like=tiny.like, value=value)
    assert new.target is (F.pad if tiny.module else aten.constant_pad_nd.default)
    assert_copies_meta(tiny, new)
    assert_computes(tiny, new, F.pad(X, (1, 2, 0, 1), value=value))


def test_reshape(tiny):
    new = tiny.rewriter.reshape(tiny.x, [1, 4, -1], like=tiny.like)
    assert new.target is (torch.reshape if tiny.module else aten.reshape.default)
    assert_computes(tiny, new, X.reshape(1, 4, 36))


@pytest.mark.parametrize(("replay", "expected"), [
    (("flatten", 2, 3), X.flatten(2, 3)),
    (("unsqueeze", 1), X.unsqueeze(1)),
    (("squeeze", [0]), X.squeeze(0)),
])
def test_reshape_by_axes(tiny, replay, expected):
    new = tiny.rewriter.reshape_by_axes(tiny.x, replay, like=tiny.like)
    assert_computes(tiny, new, expected)


def test_reshape_by_axes_refuses_another_kind(tiny):
    with pytest.raises(ValueError, match="no axes-only reshape 'transpose'"):
        tiny.rewriter.reshape_by_axes(tiny.x, ("transpose", 0, 1), like=tiny.like)


def test_permute(tiny):
    new = tiny.rewriter.permute(tiny.x, [0, 2, 3, 1], like=tiny.like)
    assert new.target is (torch.permute if tiny.module else aten.permute.default)
    assert_computes(tiny, new, X.permute(0, 2, 3, 1))


def test_avg_pool(tiny):
    new = tiny.rewriter.avg_pool(tiny.x, [3, 3], [2, 2], [1, 1], like=tiny.like)
    assert new.target is (F.avg_pool2d if tiny.module else aten.avg_pool2d.default)
    assert_computes(tiny, new, F.avg_pool2d(X, 3, 2, 1, count_include_pad=True))


@pytest.mark.parametrize("keepdim", [True, False])
def test_mean(tiny, keepdim):
    new = tiny.rewriter.mean(tiny.x, [2, 3], keepdim, like=tiny.like)
    assert_computes(tiny, new, X.mean((2, 3), keepdim=keepdim))


@pytest.mark.parametrize(("op", "name", "apply"), [("add", "reparam_shift", operator.add),
                                                   ("mul", "reparam_scale", operator.mul)])
def test_add_and_mul_by_a_constant_register_it(tiny, op, name, apply):
    constant = torch.randn(4, 1, 1)
    new = getattr(tiny.rewriter, op)(tiny.x, constant, like=tiny.like, path="block")
    target = {"add": (operator.add, aten.add.Tensor), "mul": (operator.mul, aten.mul.Tensor)}[op]
    assert new.target is target[0 if tiny.module else 1]
    assert new.args[0] is tiny.x and new.args[1].op == "get_attr" and new.args[1].target == f"block.{name}"
    assert_computes(tiny, new, apply(X, constant))


def test_add_of_two_nodes(tiny):
    double = tiny.rewriter.add(tiny.x, tiny.x, like=tiny.like)
    assert double.args == (tiny.x, tiny.x)
    assert_computes(tiny, double, X + X)


def test_addcmul_is_shift_plus_source_times_scale(tiny):
    shift, scale = torch.randn(4, 1, 1), torch.randn(4, 1, 1)
    new = tiny.rewriter.addcmul(shift, tiny.x, scale, like=tiny.like, path="block")
    assert new.target is (torch.addcmul if tiny.module else aten.addcmul.default)
    assert [new.args[0].target, new.args[2].target] == ["block.reparam_shift", "block.reparam_scale"]
    assert_computes(tiny, new, shift + X * scale)


def test_split_and_cat(tiny):
    low, high = tiny.rewriter.split(tiny.x, [1, 3], 1, like=tiny.like)
    assert low.target is operator.getitem and (low.args[1], high.args[1]) == (0, 1)
    assert low.args[0] is high.args[0]  # one split, two getitems
    swapped = tiny.rewriter.cat([high, low], 1, like=tiny.like)
    assert swapped.target is (torch.cat if tiny.module else aten.cat.default)
    assert_computes(tiny, swapped, torch.cat([X[:, 1:], X[:, :1]], 1))


def test_call_emits_any_node_with_likes_meta(tiny):
    new = tiny.rewriter.call("call_function", torch.neg if tiny.module else aten.neg.default, (tiny.x,),
                             like=tiny.like)
    assert new.op == "call_function" and new.args == (tiny.x,)
    assert_copies_meta(tiny, new)
    assert_computes(tiny, new, -X)


# ---------------------------------------------------------------------- replacing and finishing
def test_replace_reroutes_records_and_counts(tiny):
    rewriter, like = tiny.rewriter, tiny.like
    new = rewriter.call("call_function", torch.neg if tiny.module else aten.neg.default, (tiny.x,), like=like)
    old_name, old_val = like.name, like.meta["val"]
    readers = list(like.users)
    rewriter.replace(like, new, "negate")
    assert not like.users and all(new in r.all_input_nodes for r in readers)
    assert new.meta["val"] is old_val  # the value's recorded shape carries over until finish refreshes it
    assert rewriter.counts["negate"] == 1 and rewriter.modified
    assert rewriter.rewrites == [Rewrite(old_name, "negate", "block.1")]
    assert rewriter.replaced == {like: new} and rewriter.current(like) is new
    assert tiny.gm.meta[RENAMES_KEY][old_name] == new.name
    rewriter.finish()
    assert final_name(tiny.gm, old_name) == new.name
    assert final_name(tiny.gm, "no_such_node") is None


def test_replace_without_a_rule_changes_but_counts_nothing(tiny):
    new = tiny.rewriter.call("call_function", torch.neg if tiny.module else aten.neg.default, (tiny.x,),
                             like=tiny.like)
    tiny.rewriter.replace(tiny.like, new)
    assert tiny.rewriter.modified and not tiny.rewriter.counts and not tiny.rewriter.rewrites


def test_current_follows_a_chain_of_replacements(tiny):
    rewriter = tiny.rewriter
    neg = torch.neg if tiny.module else aten.neg.default
    a = rewriter.call("call_function", neg, (tiny.x,), like=tiny.like)
    b = rewriter.call("call_function", neg, (tiny.x,), like=tiny.like)
    rewriter.replace(tiny.like, a)
    rewriter.replace(a, b)
    assert rewriter.current(tiny.like) is b and rewriter.current(tiny.x) is tiny.x
    rewriter.finish()
    assert final_name(tiny.gm, tiny.like.name) == b.name


def test_bypass_erases_the_old_node_now(tiny):
    tiny.rewriter.bypass(tiny.like, tiny.first, "drop")
    assert tiny.like not in tiny.gm.graph.nodes
    assert tiny.rewriter.counts["drop"] == 1
    tiny.rewriter.finish()
    with torch.no_grad():
        expected = torch.relu(tiny.model.block[0](X))
        torch.testing.assert_close(tiny.gm(X), expected)


def test_count(tiny):
    tiny.rewriter.count("seen", 3)
    tiny.rewriter.count("seen")
    assert tiny.rewriter.counts["seen"] == 4 and tiny.rewriter.modified


def test_finish_does_nothing_when_nothing_changed(tiny):
    code = tiny.gm.code
    names = [n.name for n in tiny.gm.graph.nodes]
    tiny.rewriter.finish()
    assert tiny.gm.code == code and [n.name for n in tiny.gm.graph.nodes] == names


def test_finish_removes_dead_code_and_parameters_and_refreshes_shapes(tiny):
    new = tiny.rewriter.conv(tiny.x, conv_map(f64(2, 4, 1, 1)), like=tiny.like, path="block", dtype=torch.float32,
                             device=CPU)
    tiny.rewriter.replace(tiny.like, new, "shrink")
    assert tuple(new.meta["val"].shape) == (1, 4, 6, 6)  # taken over from block.1 until the shapes are refreshed
    tiny.rewriter.finish()
    assert tiny.first not in tiny.gm.graph.nodes  # block.0 read nothing but block.1
    parameters = {name for name, _ in tiny.gm.named_parameters()}
    assert parameters == ({"block.reparam.weight"})
    assert tuple(new.meta["val"].shape) == (1, 2, 6, 6)
    assert tiny.gm(X).shape == (1, 2, 6, 6)


def test_remove_unused_attributes_hollows_a_module_no_longer_called():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return F.conv2d(x, self.conv.weight)  # reads the weight, never calls the module

    gm = captured(Holder(), X, level="symbolic_trace")
    remove_unused_attributes(gm)
    conv = gm.get_submodule("conv")
    assert type(conv) is nn.Module  # not an nn.Conv2d without its bias
    assert set(dict(conv.named_parameters())) == {"weight"}
    torch.testing.assert_close(gm(X), F.conv2d(X, conv.weight))
