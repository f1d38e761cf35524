"""Re-inplacing (`fxrep.lean.reinplace`): safe element-wise ops run in place, every unsafe case stays out of place.

Each unsafe case breaks exactly one condition of the alias analysis, and is run twice: with the
analysis as it is (the op stays out of place and the results are right) and with that one check
switched off (the op runs in place and the hazard shows: a wrong result, a changed input or weight,
or PyTorch refusing the write). So each test fails if its safety check is removed.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxrep.lean.reinplace as reinplace
from fxrep.capture import capture
from fxrep.lean import ENTRY_POINTS, REINPLACEABLE, in_place_plan, make_lean
from fxrep.ops.inplace import in_place_overload

aten = torch.ops.aten


def _captured(model: nn.Module, *inputs: torch.Tensor):
    return capture(model.eval(), inputs, method="export").graph_module


def _in_place_targets(gm) -> list:
    return sorted(str(node.target) for node in in_place_plan(gm.graph))


def _run(module, *inputs):
    with torch.no_grad():
        return module(*inputs)


# ------------------------------------------------------------------------------------------- safe cases
class ConvActivations(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(4, 4, 3, padding=1) for _ in range(7))

    def forward(self, x):
        c = self.convs
        y = F.relu(c[0](x))
        y = F.relu6(c[1](y))
        y = F.hardswish(c[2](y))
        y = F.silu(c[3](y))
        y = torch.sigmoid(c[4](y))
        y = torch.clamp(c[5](y), -0.5, 0.5)
        return F.gelu(c[6](y))


def test_activations_whose_input_dies_run_in_place_with_identical_results():
    model, x = ConvActivations(), torch.randn(2, 4, 8, 8)
    gm = _captured(model, x)
    assert _in_place_targets(gm) == sorted(["aten.relu.default", "aten.relu6.default", "aten.hardswish.default",
                                            "aten.silu.default", "aten.sigmoid.default", "aten.clamp.default",
                                            "aten.gelu.default"])
    lean = make_lean(gm)
    for method in ("relu_", "relu6_", "hardswish_", "silu_", "sigmoid_", "clamp_", "gelu_"):
        assert method in lean.code
    assert torch.equal(_run(lean, x), _run(gm, x))


class Residual(nn.Module):
    def __init__(self, conv_first: bool):
        super().__init__()
        self.conv, self.conv_first = nn.Conv2d(4, 4, 3, padding=1), conv_first

    def forward(self, x):
        y = torch.relu(x * 2)  # not an input: x * 2 is fresh, and dies below
        return torch.relu(self.conv(y) + y if self.conv_first else y + self.conv(y))


@pytest.mark.parametrize("conv_first", [True, False])
def test_the_add_of_a_residual_writes_the_operand_that_dies(conv_first):
    model, x = Residual(conv_first), torch.randn(2, 4, 8, 8)
    gm = _captured(model, x)
    plan = in_place_plan(gm.graph)
    adds = [choice for node, choice in plan.items() if node.target is aten.add.Tensor]
    assert len(adds) == 1
    # y is read by the conv before the add, so either operand may be written; the first eligible one is
    assert adds[0].written == 0
    assert torch.equal(_run(make_lean(gm), x), _run(gm, x))


def test_add_writes_its_second_operand_when_only_that_one_dies():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = x * 2
            s = y + self.conv(y)  # y is read again below: only the conv output can be written
            return s, y.sum()

    model, x = Model(), torch.randn(2, 4, 5, 5)
    gm = _captured(model, x)
    adds = [choice for node, choice in in_place_plan(gm.graph).items() if node.target is aten.add.Tensor]
    assert [choice.written for choice in adds] == [1]
    lean = make_lean(gm)
    expected, actual = _run(gm, x), _run(lean, x)
    assert torch.equal(actual[0], expected[0]) and torch.equal(actual[1], expected[1])


def test_a_view_of_a_tensor_that_dies_with_it_runs_in_place():
    class Model(nn.Module):
        def forward(self, x):
            y = x * 2
            return torch.relu(y.view(2, -1))

    model, x = Model(), torch.randn(2, 3, 4)
    gm = _captured(model, x)
    assert _in_place_targets(gm) == ["aten.relu.default"]
    assert torch.equal(_run(make_lean(gm), x), _run(gm, x))


@pytest.mark.parametrize("overload", sorted(REINPLACEABLE, key=str))
def test_every_in_place_twin_gives_the_out_of_place_result_bit_for_bit(overload):
    g = torch.Generator().manual_seed(0)
    first = torch.randn(2, 3, 5, 5, generator=g) * 4
    extra = {aten.add.Tensor: (torch.randn(3, 1, 1, generator=g),), aten.mul.Tensor: (torch.randn(5, generator=g),),
             aten.clamp.default: (-1.0, 2.0), aten.clamp_min.default: (0.5,), aten.hardtanh.default: (0.0, 6.0),
             aten.leaky_relu.default: (0.2,)}.get(overload, ())
    twin = in_place_overload(overload)
    for layout in (torch.contiguous_format, torch.channels_last):
        value = first.contiguous(memory_format=layout)
        expected = overload(value, *extra)
        written = value.clone(memory_format=torch.preserve_format)
        result = twin(written, *extra)
        assert result is written and torch.equal(result, expected) and result.stride() == expected.stride()
    fast, out_of_place = ENTRY_POINTS[twin].target, ENTRY_POINTS[overload].target  # the same call, named with "_"
    assert getattr(fast, "__name__", fast) == f"{getattr(out_of_place, '__name__', out_of_place)}_"


# ------------------------------------------------------------------------------------------- unsafe cases
def _switched_off(monkeypatch, check: str) -> None:
    replacement = {"external": lambda self, node: False, "read_later": lambda *args: False,
                   "read_twice": lambda *args: False, "layout": lambda *args: True}[check]
    target = {"external": (reinplace._AliasClasses, "is_external")}.get(check, (reinplace, f"_{check}"))
    if check == "layout":
        target = (reinplace, "_same_tensor_layout")
    monkeypatch.setattr(*target, replacement)


class ReluOfInput(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def test_never_writes_a_model_input(monkeypatch):
    x = torch.randn(2, 4)
    gm = _captured(ReluOfInput(), x)
    assert _in_place_targets(gm) == []
    before = x.clone()
    _run(make_lean(gm), x)
    assert torch.equal(x, before)

    _switched_off(monkeypatch, "external")
    unsafe = make_lean(gm)
    _run(unsafe, x)
    assert not torch.equal(x, before)  # the caller's tensor was overwritten


class ReluOfWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4))
        self.register_buffer("scale", torch.randn(4))

    def forward(self, x):
        return x * torch.relu(self.weight) + torch.sigmoid(self.scale)


def test_never_writes_a_parameter_or_buffer(monkeypatch):
    x = torch.randn(2, 4)
    gm = _captured(ReluOfWeight(), x)
    assert _in_place_targets(gm) == ["aten.add.Tensor"]  # only the fresh product
    lean = make_lean(gm)
    first, second = _run(lean, x.clone()), _run(lean, x.clone())
    assert torch.equal(first, second)

    _switched_off(monkeypatch, "external")
    unsafe = make_lean(gm)
    first, second = _run(unsafe, x.clone()), _run(unsafe, x.clone())
    assert not torch.equal(first, second)  # the weight and the buffer changed during the first call


class ViewOfLiveTensor(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        activated = torch.relu(y.view(2, -1))
        return activated, y.sum()  # y, which the view shares memory with, is read after the ReLU


def test_never_writes_a_view_of_a_tensor_read_later(monkeypatch):
    x = torch.randn(2, 4, 3, 3)
    gm = _captured(ViewOfLiveTensor(), x)
    assert _in_place_targets(gm) == []
    expected = _run(gm, x)
    assert torch.equal(_run(make_lean(gm), x)[1], expected[1])

    _switched_off(monkeypatch, "read_later")
    assert not torch.equal(_run(make_lean(gm), x)[1], expected[1])


class ReadAgain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(y) + y  # y has another user after the ReLU


def test_never_writes_a_value_with_a_later_reader(monkeypatch):
    x = torch.randn(2, 4, 3, 3)
    gm = _captured(ReadAgain(), x)
    assert _in_place_targets(gm) == ["aten.add.Tensor"]  # the ReLU's output may be written, y may not
    expected = _run(gm, x)
    assert torch.equal(_run(make_lean(gm), x), expected)

    _switched_off(monkeypatch, "read_later")
    assert not torch.equal(_run(make_lean(gm), x), expected)


class ThroughDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.dropout = nn.Conv2d(4, 4, 1), nn.Dropout(0.5)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(self.dropout(y)), y.sum()  # dropout in eval returns y itself


def test_an_op_that_returns_its_input_is_an_alias_of_it(monkeypatch):
    x = torch.randn(2, 4, 3, 3)
    gm = _captured(ThroughDropout(), x)
    assert any(node.target is aten.dropout.default for node in gm.graph.nodes)
    assert _in_place_targets(gm) == []
    expected = _run(gm, x)
    assert torch.equal(_run(make_lean(gm), x)[1], expected[1])

    _switched_off(monkeypatch, "read_later")
    assert not torch.equal(_run(make_lean(gm), x)[1], expected[1])


class AddTransposed(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(5, 5)

    def forward(self, x):
        y = self.linear(x)
        return y + y.t()  # both operands share y's memory


def test_never_writes_a_tensor_the_op_also_reads_through_another_argument(monkeypatch):
    x = torch.randn(5, 5)
    gm = _captured(AddTransposed(), x)
    assert _in_place_targets(gm) == []
    assert torch.equal(_run(make_lean(gm), x), _run(gm, x))

    _switched_off(monkeypatch, "read_twice")
    with pytest.raises(RuntimeError, match="memory location"):
        _run(make_lean(gm), x)


class Broadcast(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(4, 1, 1))

    def forward(self, x):
        return (self.scale * 2) + x  # the fresh operand is smaller than the result; x is an input


def test_never_writes_an_operand_of_another_shape(monkeypatch):
    x = torch.randn(2, 4, 3, 3)
    gm = _captured(Broadcast(), x)
    assert _in_place_targets(gm) == []  # scale * 2 is fresh but smaller than the sum, x is an input
    assert torch.equal(_run(make_lean(gm), x), _run(gm, x))

    _switched_off(monkeypatch, "layout")
    with pytest.raises(RuntimeError):
        _run(make_lean(gm), x)
