"""`materialize` and `emit` on hand-built affine values of a graph's input, at both capture levels: the ops an
emission lists, and what the emitted nodes compute, against ``torch.nn.functional``.

The graph is ``relu(conv(x))``; each value is emitted before the conv and takes over its readers, so the
module then computes ``relu(value(x))``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep.affine.emission import emit, kept, materialize
from fxrep.affine.shapes import GraphShapes
from fxrep.affine.value import AffineValue
from fxrep.algebra import NotExact, conv_map, linear_map
from fxrep.cost import CostModel
from fxrep.ops import Conv
from fxrep.rewriter import Rewriter
from tests.helpers import LEVELS, captured, randomized

X = torch.randn(2, 4, 6, 6)
CPU = torch.device("cpu")


def no_size(source):
    return None


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


@pytest.fixture(params=LEVELS)
def tiny(request):
    model = randomized(Tiny())
    gm = captured(model, X, level=request.param)
    node = next(n for n in gm.graph.nodes if Conv.from_node(n) is not None)
    x = next(n for n in gm.graph.nodes if n.op == "placeholder")
    return SimpleNamespace(model=model, gm=gm, node=node, x=x, shapes=GraphShapes.of(gm))


def f64(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def emitted(tiny, emission):
    """Emit ``emission`` in place of the conv and run the module on X."""
    rewriter = Rewriter(tiny.gm)
    new = emit(rewriter, emission, resolve=lambda n: n, path="conv", dtype=torch.float32, device=CPU)
    rewriter.replace(tiny.node, new, "test")
    rewriter.finish()
    with torch.no_grad():
        return tiny.gm(X)


def check(tiny, value, kinds, expected):
    emission = materialize(tiny.node, value, False, tiny.shapes)
    assert [op.kind for op in emission.ops] == kinds
    assert emission.op_count == len(kinds) and not emission.keeps
    torch.testing.assert_close(emitted(tiny, emission), torch.relu(expected.float()), rtol=1e-5, atol=1e-5)
    return emission


def test_a_conv_of_the_input_is_one_conv_carrying_the_bias(tiny):
    weight, bias = f64(4, 4, 3, 3), f64(4)
    value = AffineValue.of_source(tiny.x, 4, 2).then(conv_map(weight, bias, padding=1), no_size)
    emission = check(tiny, value, ["conv"], F.conv2d(X.double(), weight, bias, padding=1))
    assert emission.ops[0].inputs == (tiny.x,) and emission.result == 0


def test_a_0d_map_on_the_last_dim_is_a_linear_layer(tiny):
    weight, bias = f64(6, 6), f64(6)
    value = AffineValue.of_source(tiny.x, 6, 0, channel_dim=-1).then(linear_map(weight, bias), no_size)
    check(tiny, value, ["conv"], F.linear(X.double(), weight, bias))


def test_a_per_channel_affine_map_is_a_scale_and_a_shift(tiny):
    scale, shift = f64(4) + 2.0, f64(4)
    value = AffineValue.of_source(tiny.x, 4, 2).scale(scale).shift(shift)
    emission = check(tiny, value, ["scale", "shift"], X.double() * scale[:, None, None] + shift[:, None, None])
    assert tuple(emission.ops[0].scale.shape) == (4, 1, 1)  # broadcast along the channels of an NCHW tensor


def test_a_conv_plus_the_input_is_a_conv_and_an_add(tiny):
    weight = f64(4, 4, 1, 1)
    branch = AffineValue.of_source(tiny.x, 4, 2).then(conv_map(f64(4, 4, 3, 3), padding=1), no_size)
    total = branch.add(AffineValue.of_source(tiny.x, 4, 2).then(conv_map(weight), no_size), no_size)
    (_, merged), = total.terms  # one source: the two convs are one
    value = total.add(AffineValue.of_source(tiny.x, 4, 2), no_size)
    assert len(value.terms) == 1
    check(tiny, value, ["conv"], merged.apply(X.double()) + X.double())


def test_different_sources_are_summed_by_an_add(tiny):
    weight, bias = f64(4, 4, 3, 3), f64(4)
    conv_term = AffineValue.of_source(tiny.x, 4, 2).then(conv_map(weight, bias, padding=1), no_size)
    other = AffineValue.of_source(tiny.node, 4, 2)  # the original conv's output stays a source
    relu = tiny.node.next
    emission = materialize(relu, conv_term.add(other, no_size), False, tiny.shapes)
    assert [op.kind for op in emission.ops] == ["conv", "add"]
    assert emission.ops[1].inputs == (0, tiny.node)
    rewriter = Rewriter(tiny.gm)
    new = emit(rewriter, emission, resolve=lambda n: n, path="", dtype=torch.float32, device=CPU)
    rewriter.replace(relu, new)
    rewriter.finish()
    with torch.no_grad():
        expected = F.conv2d(X, weight.float(), bias.float(), padding=1) + tiny.model.conv(X)
        torch.testing.assert_close(tiny.gm(X), expected, rtol=1e-5, atol=1e-5)


def test_asymmetric_padding_is_a_pad_then_a_conv(tiny):
    weight = f64(4, 4, 3, 3)
    value = AffineValue.of_source(tiny.x, 4, 2).then(conv_map(weight, None, 1, ((0, 2), (1, 1))), no_size)
    emission = check(tiny, value, ["pad", "conv"], F.conv2d(F.pad(X.double(), (1, 1, 0, 2)), weight))
    assert emission.ops[0].pads == ((0, 2), (0, 0)) and emission.ops[1].inputs == (0,)


def test_a_node_without_a_value_is_kept_or_refused(tiny):
    emission = materialize(tiny.node, None, True, tiny.shapes, reason="not affine")
    assert emission.keeps and emission.kept_because == "not affine"
    assert [op.kind for op in emission.ops] == ["keep"] and emission.describe() == f"{tiny.node.name} kept"
    assert emit(Rewriter(tiny.gm), emission, resolve=lambda n: n, path="", dtype=torch.float32,
                device=CPU) is None
    with pytest.raises(NotExact, match="not affine"):
        materialize(tiny.node, None, False, tiny.shapes, reason="not affine")


def test_a_value_with_nothing_folded_into_its_materialised_inputs_is_kept(tiny):
    value = AffineValue.of_source(tiny.x, 4, 2).then(conv_map(f64(4, 4, 3, 3), padding=1), no_size)
    assert not value.rules
    assert materialize(tiny.node, value, True, tiny.shapes).keeps
    assert kept(tiny.node).keeps


def test_a_constant_value_cannot_be_materialised(tiny):
    value = AffineValue.of_source(tiny.x, 4, 2)
    constant = AffineValue((), value.bias + 1.0, 2)
    with pytest.raises(NotExact, match="does not depend on any tensor"):
        materialize(tiny.node, constant, False, tiny.shapes)


def test_seconds_are_the_sum_over_the_ops(tiny):
    value = AffineValue.of_source(tiny.x, 4, 2).then(conv_map(f64(4, 4, 3, 3), f64(4), padding=1), no_size)
    value = value.add(AffineValue.of_source(tiny.node, 4, 2), no_size)
    emission = materialize(tiny.node.next, value, False, tiny.shapes)
    model = CostModel()
    assert emission.seconds(model) == pytest.approx(sum(model.seconds(op.signature) for op in emission.ops))
    assert emission.seconds(model) > 0
