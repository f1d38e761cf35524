"""`affine_op`: each kind of node, at both capture levels, gives ``Match.ok`` of its `AffineOp` (class, rule,
inputs), ``Match.fail`` with the reason it is not affine, or ``Match.none()`` for ops that are not affine at all."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep.affine import ops as affine_ops
from fxrep.affine.ops import affine_op
from fxrep.match import Match
from tests.helpers import LEVELS, captured, randomized

X = torch.randn(2, 4, 6, 6)


class Fn(nn.Module):
    """``forward(x) = function(self, x)``, with optional submodules and buffers."""

    def __init__(self, function, **children):
        super().__init__()
        self.function = function
        for name, child in children.items():
            if isinstance(child, torch.Tensor):
                self.register_buffer(name, child)
            else:
                setattr(self, name, child)

    def forward(self, x):
        return self.function(self, x)


def last_op(gm):
    """The node the output returns (behind the output's tuple at the ATen level)."""
    output = next(n for n in gm.graph.nodes if n.op == "output")
    value = output.args[0]
    return value[0] if isinstance(value, tuple | list) else value


def placeholder(gm):
    return next(n for n in gm.graph.nodes if n.op == "placeholder" and n.users)


CASES = {
    "conv": (lambda: Fn(lambda m, x: m.conv(x), conv=nn.Conv2d(4, 4, 3, padding=1)), "ConvOp", "compose_convs"),
    "batchnorm": (lambda: Fn(lambda m, x: m.bn(x), bn=nn.BatchNorm2d(4)), "BatchNormOp", "fold_batchnorm"),
    "linear": (lambda: Fn(lambda m, x: m.fc(x), fc=nn.Linear(6, 3)), "LinearLayerOp", "compose_linears"),
    "sum": (lambda: Fn(lambda m, x: x + torch.relu(x)), "SumOp", "merge_branches"),
    "scale": (lambda: Fn(lambda m, x: x * 2.0), "PointwiseOp", "fold_scale"),
    "per-channel scale": (lambda: Fn(lambda m, x: x * m.s, s=torch.rand(1, 4, 1, 1) + 0.5), "PointwiseOp",
                          "fold_scale"),
    "divide": (lambda: Fn(lambda m, x: x / 4.0), "PointwiseOp", "fold_scale"),
    "shift": (lambda: Fn(lambda m, x: x + 1.0), "PointwiseOp", "fold_shift"),
    "zero pad": (lambda: Fn(lambda m, x: F.pad(x, (1, 1, 1, 1))), "PadOp", "fold_pad"),
    "reflect pad": (lambda: Fn(lambda m, x: F.pad(x, (1, 1, 1, 1), mode="reflect")), "ModePadOp",
                    "read_through_padding"),
    "average pool": (lambda: Fn(lambda m, x: F.avg_pool2d(x, 2)), "AvgPoolOp", "fold_avgpool"),
    "adaptive pool": (lambda: Fn(lambda m, x: F.adaptive_avg_pool2d(x, 3)), "AdaptivePoolOp", "fold_avgpool"),
    "channel concat": (lambda: Fn(lambda m, x: torch.cat([x, torch.relu(x)], 1)), "CatOp", "fold_concat"),
    "flatten": (lambda: Fn(lambda m, x: x.flatten(2)), "LayoutOp", "see_through_layout"),
}

REFUSED = {
    "transposed conv": (lambda: Fn(lambda m, x: m.conv(x), conv=nn.ConvTranspose2d(4, 4, 2)), "transposed"),
    "batch statistics": (lambda: Fn(lambda m, x: m.bn(x), bn=nn.BatchNorm2d(4, track_running_stats=False)),
                         "batch statistics"),
    "division by zero": (lambda: Fn(lambda m, x: x / m.z, z=torch.zeros(1, 4, 1, 1)), "divides by zero"),
    "batch concat": (lambda: Fn(lambda m, x: torch.cat([x, torch.relu(x)], 0)), "along the batch dimension"),
}

NOT_AFFINE = {
    "relu": lambda: Fn(lambda m, x: torch.relu(x)),
    "product of tensors": lambda: Fn(lambda m, x: x * torch.relu(x)),
    "scale that promotes the dtype": lambda: Fn(lambda m, x: x * m.s, s=torch.rand(1, 4, 1, 1, dtype=torch.float64)),
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", CASES)
def test_an_affine_node_gives_its_op(level, case):
    factory, kind, rule = CASES[case]
    gm = captured(randomized(factory()), X, level=level)
    node = last_op(gm)
    found = affine_op(node)
    assert found and found.reason == "", found
    op = found.value
    assert type(op) is getattr(affine_ops, kind), op
    assert op.node is node and op.rule == rule
    assert placeholder(gm) in op.inputs


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", REFUSED)
def test_a_recognised_op_that_is_not_affine_here_gives_the_reason(level, case):
    factory, reason = REFUSED[case]
    model = factory()
    gm = captured(model.eval(), X, level=level)
    found = affine_op(last_op(gm))
    assert not found and found.value is None and reason in found.reason, found


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", NOT_AFFINE)
def test_other_ops_give_none(level, case):
    gm = captured(NOT_AFFINE[case]().eval(), X, level=level)
    assert affine_op(last_op(gm)) == Match.none()


@pytest.mark.parametrize("level", LEVELS)
def test_placeholders_and_attributes_give_none(level):
    gm = captured(randomized(CASES["conv"][0]()), X, level=level)
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "get_attr", "output"):
            assert affine_op(node) == Match.none(), node


@pytest.mark.parametrize("level", LEVELS)
def test_a_subtraction_of_tensors_is_a_sum_with_alpha_minus_one(level):
    gm = captured(Fn(lambda m, x: x - torch.relu(x)), X, level=level)
    op = affine_op(last_op(gm)).value
    assert type(op) is affine_ops.SumOp and op.alpha == -1.0


@pytest.mark.parametrize("level", LEVELS)
def test_the_pointwise_constants_are_the_graphs(level):
    scale = torch.rand(1, 4, 1, 1) + 0.5
    gm = captured(Fn(lambda m, x: x * m.s, s=scale), X, level=level)
    op = affine_op(last_op(gm)).value
    torch.testing.assert_close(op.scale.to(scale.dtype), scale)
    assert op.shift is None
    gm = captured(Fn(lambda m, x: x / 4.0), X, level=level)
    assert float(affine_op(last_op(gm)).value.scale) == 0.25


def test_affine_op_dispatches_over_the_op_views_in_their_precedence_order():
    """One dispatch (`fxrep.ops.view_of`): a node two views recognise is classified by the first in `VIEWS`."""
    from fxrep.affine.ops import _AFFINE_VIEWS
    from fxrep.ops import VIEWS

    positions = [VIEWS.index(view) for view in _AFFINE_VIEWS]
    assert positions == sorted(positions)
