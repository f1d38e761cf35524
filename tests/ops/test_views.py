"""Op views recognise the module, functional and ATen forms of each op alike, and nothing else."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep.ops import (
    VIEWS,
    Activation,
    Arithmetic,
    AvgPool,
    BatchNorm,
    BorderFill,
    Cat,
    Conv,
    Identity,
    Linear,
    MaxPool,
    NoOp,
    Pad,
    op_kind,
    view_of,
)
from tests.helpers import captured

X = torch.randn(2, 4, 8, 8)


def views(gm, view_type):
    return [v for v in (view_type.from_node(n) for n in gm.graph.nodes) if v is not None]


class ModuleForm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
        self.bn = nn.BatchNorm2d(6)
        self.pool = nn.AvgPool2d(3, 1, 1)
        self.pad = nn.ZeroPad2d((1, 0, 2, 0))
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        y = self.pad(self.pool(self.bn(self.conv(x))))
        return self.drop(self.act(y))


class FunctionalForm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 2, 3, 3))
        self.mean, self.var = torch.zeros(6), torch.ones(6)

    def forward(self, x):
        y = F.conv2d(x, self.weight, None, 2, 1, 1, 2)
        y = F.batch_norm(y, self.mean, self.var, None, None, False, 0.1, 1e-5)
        y = F.pad(F.avg_pool2d(y, 3, 1, 1), (1, 0, 2, 0))
        return F.dropout(F.relu(y), 0.3, training=False)


@pytest.mark.parametrize(("model", "level"), [
    (ModuleForm(), "symbolic_trace"), (FunctionalForm(), "symbolic_trace"),
    (ModuleForm(), "export"), (FunctionalForm(), "export"),
], ids=["module", "functional", "aten-from-module", "aten-from-functional"])
def test_every_form_gives_the_same_views(model, level):
    gm = captured(model.eval(), X, level=level)
    (conv,) = views(gm, Conv)
    assert (conv.stride, conv.padding, conv.groups, conv.kernel_size) == ((2, 2), ((1, 1), (1, 1)), 2, (3, 3))
    assert conv.weight_is_constant and not conv.transposed
    (bn,) = views(gm, BatchNorm)
    assert not bn.uses_batch_statistics and bn.num_features == 6 and bn.input is conv.node
    (pool,) = views(gm, AvgPool)
    assert (pool.kernel_size, pool.stride, pool.padding, pool.count_include_pad) == ((3, 3), (1, 1), (1, 1), True)
    (pad,) = views(gm, Pad)
    assert pad.pads == ((2, 0), (1, 0)) and pad.mode == "constant" and pad.value == 0.0
    assert [a.kind for a in views(gm, Activation)] == ["relu"]
    if level == "symbolic_trace":
        assert len(views(gm, Identity)) == 1  # dropout in eval (export drops it itself)


@pytest.mark.parametrize("level", ["symbolic_trace", "export"])
def test_linear_arithmetic_cat_and_maxpool(level):
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(8, 3)
            self.scale = nn.Parameter(torch.ones(4, 1, 1))

        def forward(self, x):
            a = (x * self.scale - 2.0) / 4.0
            b = torch.add(x, a, alpha=0.5)
            c = torch.cat([a, -b], dim=1)
            return self.linear(F.max_pool2d(c, 2).mean((2, 3))[:, :8])

    gm = captured(Mixed().eval(), X, level=level)
    ops = sorted(v.op for v in views(gm, Arithmetic))
    assert ops == ["add", "div", "mul", "neg", "sub"]
    (add,) = [v for v in views(gm, Arithmetic) if v.op == "add"]
    assert add.alpha == 0.5
    (cat,) = views(gm, Cat)
    assert cat.dim == 1 and len(cat.inputs) == 2
    (linear,) = views(gm, Linear)
    assert linear.is_constant and tuple(linear.weight.shape) == (3, 8)
    (pool,) = views(gm, MaxPool)
    assert pool.kernel_size == (2, 2) and pool.stride == (2, 2) and pool.padding == (0, 0)


@pytest.mark.parametrize("level", ["symbolic_trace", "export"])
@pytest.mark.parametrize("form", ["module", "functional"])
def test_maxpool_padding_dilation_and_ceil_mode(level, form):
    pool = (nn.MaxPool2d(3, stride=2, padding=1, dilation=(1, 2), ceil_mode=True) if form == "module" else
            lambda x: F.max_pool2d(x, 3, 2, 1, (1, 2), True))

    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = pool

        def forward(self, x):
            return self.pool(x)

    (view,) = views(captured(Pooled().eval(), X, level=level), MaxPool)
    assert (view.kernel_size, view.stride, view.padding, view.dilation, view.ceil_mode) == (
        (3, 3), (2, 2), (1, 1), (1, 2), True)


def test_same_padding_string_becomes_asymmetric_pairs():
    class Same(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, (4, 3), padding="same")

        def forward(self, x):
            return self.conv(x)

    gm = captured(Same(), X, level="symbolic_trace")
    (conv,) = views(gm, Conv)
    assert conv.padding == ((1, 2), (1, 1))
    torch.testing.assert_close(conv.conv_map().apply(X.double()).float(), gm(X))


def test_batchnorm_with_batch_statistics_and_transposed_conv_are_recognised():
    model = nn.Sequential(nn.ConvTranspose2d(4, 4, 2, stride=2), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    gm = captured(model, X, level="export")
    (conv,) = views(gm, Conv)
    assert conv.transposed
    (bn,) = views(gm, BatchNorm)
    assert bn.uses_batch_statistics


def test_subclasses_with_their_own_forward_are_not_plain_convs():
    class Custom(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = Custom(4, 4, 1)

        def forward(self, x):
            return self.conv(x)

    tracer = torch.fx.Tracer()
    tracer.is_leaf_module = lambda module, name: isinstance(module, nn.Conv2d)
    gm = torch.fx.GraphModule(Wrapper(), tracer.trace(Wrapper()))
    assert views(gm, Conv) == []


def test_border_fill_is_recognised_in_functional_aten_graphs():
    from fxrep.passes import EvaluateConstantSubgraphs

    from fxrep.models import DiverseBranchBlock

    gm = captured(DiverseBranchBlock(4, 4, 3, padding=1).eval(), X, level="export")
    assert views(gm, BorderFill) == []  # the fill values are still computed from BN parameters
    EvaluateConstantSubgraphs()(gm)
    fills = views(gm, BorderFill)
    assert len(fills) == 8  # two BN-and-pad layers, four sides each
    assert {(f.dim, f.end - f.start) for f in fills} == {(2, 1), (3, 1)}


def test_op_kind_names():
    gm = captured(ModuleForm().eval(), X, level="export")
    kinds = {op_kind(n) for n in gm.graph.nodes} - {None}
    assert {"conv", "batchnorm", "avgpool", "pad", "relu"} <= kinds


class ClampForms(nn.Module):
    """Every form of the clamp family, with the (min, max) each one clamps to."""

    def __init__(self):
        super().__init__()
        self.relu, self.relu6, self.hardtanh = nn.ReLU(), nn.ReLU6(), nn.Hardtanh(-3.0, 3.0)

    def forward(self, x):
        return (self.relu(x), self.relu6(x), self.hardtanh(x), F.relu(x), torch.relu(x), F.relu6(x),
                F.hardtanh(x, -2.0, 2.0), torch.clamp(x, 0.0, 1.0), torch.clip(x, max=2.0), torch.clamp_min(x, 0.5),
                x.relu(), x.clamp(min=0.25), x.clip(-1.0, 1.0), x.clamp_min(0.1))


CLAMP_BOUNDS = [(0.0, None), (0.0, 6.0), (-3.0, 3.0), (0.0, None), (0.0, None), (0.0, 6.0), (-2.0, 2.0), (0.0, 1.0),
                (None, 2.0), (0.5, None), (0.0, None), (0.25, None), (-1.0, 1.0), (0.1, None)]


@pytest.mark.parametrize("level", ["symbolic_trace", "export"])
def test_the_clamp_family_carries_its_bounds_in_every_form(level):
    gm = captured(ClampForms().eval(), X, level=level)
    (output,) = [n for n in gm.graph.nodes if n.op == "output"]
    clamps = [Activation.clamp(n) for n in output.args[0]]
    assert all(c is not None for c in clamps), [n.format_node() for n in output.args[0]]
    assert [(c.min, c.max) for c in clamps] == CLAMP_BOUNDS
    for node, clamp in zip(output.args[0], clamps, strict=True):
        view = Activation.from_node(node)
        if view is not None:  # the view names relu / relu6 / hardtanh / ATen clamp, with the same bounds
            assert (view.min, view.max, view.input) == (clamp.min, clamp.max, clamp.input)


def test_activation_bounds_are_none_outside_the_clamp_family():
    gm = captured(nn.Sequential(nn.GELU(), nn.SiLU()).eval(), X, level="symbolic_trace")
    acts = views(gm, Activation)
    assert [(a.kind, a.min, a.max) for a in acts] == [("gelu", None, None), ("silu", None, None)]
    assert all(Activation.clamp(a.node) is None for a in acts)


def test_a_run_time_bound_is_a_node():
    gm = captured(_RunTimeBound(), X, level="symbolic_trace")
    clamp = next(c for c in map(Activation.clamp, gm.graph.nodes) if c is not None)
    assert isinstance(clamp.min, torch.fx.Node) and clamp.max is None


class _RunTimeBound(nn.Module):
    def forward(self, x):
        return torch.clamp(x, min=x.mean())


@pytest.mark.parametrize(("model", "level"), [
    (ModuleForm(), "symbolic_trace"), (FunctionalForm(), "symbolic_trace"), (ModuleForm(), "export"),
    (FunctionalForm(), "export"), (ClampForms(), "export"),
], ids=["module", "functional", "aten-from-module", "aten-from-functional", "clamps"])
def test_view_of_dispatches_to_the_one_view_that_recognises_a_node(model, level):
    """Views recognise disjoint sets of nodes, except `NoOp`, which comes after the ones it overlaps."""
    gm = captured(model.eval(), X, level=level)
    for node in gm.graph.nodes:
        found = [view_type for view_type in VIEWS if view_type.from_node(node) is not None]
        assert len([v for v in found if v is not NoOp]) <= 1, (node.format_node(), found)
        view = view_of(node)
        assert (view is None) == (not found) and (view is None or type(view) is found[0])
        assert view_of(node, (Conv,)) is None or isinstance(view_of(node, (Conv,)), Conv)


def test_view_of_skips_inputs_outputs_and_constants():
    gm = captured(ModuleForm().eval(), X, level="export")
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            assert view_of(node) is None and op_kind(node) is None
