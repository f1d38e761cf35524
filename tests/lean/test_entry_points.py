"""Every entry of the fast entry-point table is exact: same dispatched ATen ops, identical tensors.

For each ATen overload in `fxrep.lean.ENTRY_POINTS` a one-node graph is run twice: as torch.fx
writes it (the ``torch.ops.aten`` call) and as the lean forward writes it. The two must dispatch
the same sequence of ATen ops (seen by a ``TorchDispatchMode``) and return tensors equal in value,
dtype, shape, strides and in whether they share memory with an input. The sample arguments cover
defaults left out, keyword-only arguments, scalars, channels-last inputs and broadcasting.
"""

from __future__ import annotations

import pytest
import torch
from torch.fx import CodeGen, Graph, GraphModule

# TorchDispatchMode lives in a private module; it is the only way to see which ATen ops a call dispatches.
from torch.utils._python_dispatch import TorchDispatchMode

from fxrep.lean import ENTRY_POINTS, LeanCodeGen
from fxrep.lean.reinplace import FRESH

aten = torch.ops.aten
g = torch.Generator().manual_seed(0)


def t(*shape: int, channels_last: bool = False) -> torch.Tensor:
    value = torch.randn(*shape, generator=g)
    return value.contiguous(memory_format=torch.channels_last) if channels_last else value


x4, w4, b4 = t(2, 4, 6, 6), t(4, 4, 3, 3), t(4)
cl4 = t(2, 4, 6, 6, channels_last=True)
m2, w2 = t(5, 4), t(3, 4)
mean, var = t(4), t(4).abs() + 0.5

#: overload -> list of (args, kwargs) samples
SAMPLES: dict[object, list[tuple[tuple, dict]]] = {
    aten.conv1d.default: [((t(2, 4, 9), t(4, 4, 3), b4), {}), ((t(2, 4, 9), t(4, 4, 3), None, [2], [1]), {})],
    aten.conv2d.default: [((x4, w4, b4, [1, 1], [1, 1], [1, 1], 1), {}), ((cl4, w4), {}),
                          ((x4, t(4, 2, 3, 3), None, [2, 2], [0, 0], [1, 1], 2), {})],
    aten.conv3d.default: [((t(1, 4, 5, 5, 5), t(4, 4, 3, 3, 3), b4), {})],
    aten.conv1d.padding: [((t(2, 4, 9), t(4, 4, 3), b4, [1], "same"), {})],
    aten.conv2d.padding: [((x4, w4, b4, [1, 1], "same"), {})],
    aten.conv3d.padding: [((t(1, 4, 5, 5, 5), t(4, 4, 3, 3, 3), None, [1, 1, 1], "valid"), {})],
    aten.convolution.default: [((x4, w4, b4, [1, 1], [1, 1], [1, 1], False, [0, 0], 1), {})],
    aten.conv_transpose1d.default: [((t(2, 4, 9), t(4, 4, 3), b4, [2]), {})],
    aten.conv_transpose2d.input: [((x4, w4, b4, [2, 2], [1, 1]), {})],
    aten.conv_transpose3d.input: [((t(1, 4, 3, 3, 3), t(4, 4, 3, 3, 3)), {})],
    aten.linear.default: [((m2, w2, t(3)), {}), ((t(2, 5, 4), w2), {})],
    aten.matmul.default: [((t(2, 5, 4), t(4, 3)), {}), ((t(4), t(4)), {})],
    aten.mm.default: [((m2, t(4, 3)), {})],
    aten.bmm.default: [((t(2, 5, 4), t(2, 4, 3)), {})],
    aten.addmm.default: [((t(3), m2, t(4, 3)), {"beta": 0.5, "alpha": 2.0}), ((t(5, 3), m2, t(4, 3)), {})],
    aten.batch_norm.default: [((x4, b4, t(4), mean, var, False, 0.1, 1e-5, True), {}),
                              ((cl4, None, None, mean, var, False, 0.1, 1e-3, False), {})],
    aten._native_batch_norm_legit_no_training.default: [((x4, b4, t(4), mean, var, 0.1, 1e-5), {}),
                                                        ((cl4, None, None, mean, var, 0.1, 1e-3), {})],
    aten.layer_norm.default: [((t(2, 5, 4), [4], t(4), t(4)), {}), ((t(2, 5, 4), [5, 4]), {})],
    aten.group_norm.default: [((x4, 2, b4, t(4), 1e-5, True), {}), ((x4, 4), {})],
    aten.hardtanh.default: [((x4, 0.0, 6.0), {}), ((x4,), {})],
    aten.hardtanh_.default: [((t(2, 4, 6, 6), 0.0, 6.0), {})],
    aten.relu6.default: [((x4 * 4,), {})],
    aten.relu6_.default: [((t(2, 4, 6, 6) * 4,), {})],
    aten.hardswish.default: [((x4 * 4,), {}), ((cl4,), {})],
    aten.hardswish_.default: [((t(2, 4, 6, 6) * 4,), {})],
    aten.hardsigmoid.default: [((x4 * 4,), {})],
    aten.hardsigmoid_.default: [((t(2, 4, 6, 6) * 4,), {})],
    aten.silu.default: [((x4,), {})],
    aten.silu_.default: [((t(2, 4, 6, 6),), {})],
    aten.gelu.default: [((x4,), {}), ((x4,), {"approximate": "tanh"})],
    aten.gelu_.default: [((t(2, 4, 6, 6),), {"approximate": "tanh"})],
    aten.leaky_relu.default: [((x4,), {}), ((x4, 0.2), {})],
    aten.leaky_relu_.default: [((t(2, 4, 6, 6), 0.2), {})],
    aten.adaptive_avg_pool2d.default: [((x4, [1, 1]), {}), ((cl4, [3, 2]), {})],
    aten.avg_pool2d.default: [((x4, [3, 3], [2, 2], [1, 1], False, False), {}), ((x4, [2, 2]), {})],
    aten.max_pool2d.default: [((x4, [3, 3], [2, 2], [1, 1]), {}), ((cl4, [2, 2]), {})],
    aten.upsample_nearest2d.vec: [((x4, [12, 12], None), {}), ((x4, None, [2.0, 2.0]), {})],
    aten.scaled_dot_product_attention.default: [((t(2, 3, 5, 4), t(2, 3, 5, 4), t(2, 3, 5, 4)), {}),
                                                ((t(2, 3, 5, 4), t(2, 3, 5, 4), t(2, 3, 5, 4)), {"scale": 0.5})],
    aten.cat.default: [(([x4, cl4], 1), {}), (([m2, m2],), {})],
    aten.stack.default: [(([m2, m2], 1), {})],
    aten.constant_pad_nd.default: [((x4, [1, 1, 2, 0]), {}), ((x4, [1, 1], 0.5), {})],
    aten.pad.default: [((x4, [1, 1, 2, 0]), {}), ((x4, [1, 1, 2, 0], "reflect"), {}), ((x4, [1, 1], "constant", 0.5), {})],
    aten.pixel_shuffle.default: [((t(2, 8, 3, 3), 2), {})],
    aten.dropout.default: [((x4, 0.5, False), {})],
    aten.where.self: [((x4 > 0, x4, cl4), {})],
    aten.add.Tensor: [((x4, cl4), {}), ((x4, b4.view(4, 1, 1)), {"alpha": 2}), ((x4, 2.0), {})],
    aten.sub.Tensor: [((x4, cl4), {}), ((x4, 1.5), {"alpha": 3})],
    aten.mul.Tensor: [((x4, cl4), {}), ((x4, 0.5), {})],
    aten.div.Tensor: [((x4, cl4), {}), ((x4, 4.0), {})],
    aten.div.Tensor_mode: [((x4, cl4), {"rounding_mode": "floor"}), ((x4, cl4), {"rounding_mode": None})],
    aten.neg.default: [((x4,), {})],
    aten.pow.Tensor_Scalar: [((x4, 2), {}), ((x4.abs(), 0.5), {})],
    aten.exp.default: [((x4,), {})],
    aten.sqrt.default: [((x4.abs(),), {})],
    aten.rsqrt.default: [((x4.abs() + 0.1,), {})],
    aten.add_.Tensor: [((t(2, 4, 6, 6), x4), {}), ((t(2, 4, 6, 6), 1.0), {"alpha": 2})],
    aten.mul_.Tensor: [((t(2, 4, 6, 6), x4), {})],
    aten.relu.default: [((x4,), {}), ((cl4,), {})],
    aten.relu_.default: [((t(2, 4, 6, 6),), {})],
    aten.sigmoid.default: [((x4,), {})],
    aten.sigmoid_.default: [((t(2, 4, 6, 6),), {})],
    aten.tanh.default: [((x4,), {})],
    aten.tanh_.default: [((t(2, 4, 6, 6),), {})],
    aten.clamp.default: [((x4, -0.5, 0.5), {}), ((x4, None, 0.5), {}), ((x4,), {"min": 0.0})],
    aten.clamp_.default: [((t(2, 4, 6, 6), -0.5, 0.5), {})],
    aten.clamp_min.default: [((x4, 0.0), {})],
    aten.clamp_min_.default: [((t(2, 4, 6, 6), 0.0), {})],
    aten.mean.dim: [((x4, [2, 3], True), {}), ((x4, [-1]), {}), ((x4, None), {"dtype": torch.float64})],
    aten.sum.dim_IntList: [((x4, [1]), {}), ((x4, [2, 3], True), {})],
    aten.amax.default: [((x4, [1]), {}), ((x4, [2, 3], True), {})],
    aten.softmax.int: [((x4, -1), {}), ((x4, 1, torch.float64), {})],
    aten.log_softmax.int: [((x4, -1), {})],
    aten.flatten.using_ints: [((x4, 1), {}), ((x4, 0, 1), {}), ((x4,), {})],
    aten.transpose.int: [((x4, 1, 2), {})],
    aten.t.default: [((m2,), {})],
    aten.unsqueeze.default: [((x4, 0), {})],
    aten.squeeze.dim: [((t(2, 1, 3), 1), {})],
    aten.select.int: [((x4, 1, 2), {})],
    aten.split_with_sizes.default: [((x4, [1, 3], 1), {})],
    aten.chunk.default: [((x4, 2, 1), {})],
    aten.unbind.int: [((x4, 1), {})],
    aten.contiguous.default: [((cl4,), {}), ((cl4,), {"memory_format": torch.channels_last})],
    aten.clone.default: [((cl4,), {}), ((cl4,), {"memory_format": torch.contiguous_format})],
    aten.reshape_as.default: [((x4, t(2, 144)), {})],
    aten.view_as.default: [((x4, t(2, 144)), {})],
    aten.expand_as.default: [((b4.view(4, 1, 1), x4), {})],
    aten.to.dtype: [((x4, torch.float64), {}), ((x4, torch.float32), {}), ((x4, torch.float16, False, True), {})],
    aten.sym_size.int: [((x4, 1), {})],
    aten.view.default: [((x4, [2, -1]), {}), ((x4, [-1]), {})],
    aten._unsafe_view.default: [((x4, [2, -1]), {})],
    aten.split.Tensor: [((x4, 2, 1), {}), ((x4, 4, -1), {}), ((x4, 3), {})],
    aten.reshape.default: [((cl4, [2, -1]), {}), ((x4, [8, 36]), {})],
    aten.permute.default: [((x4, [0, 2, 3, 1]), {})],
    aten.expand.default: [((b4.view(4, 1, 1), [2, 4, 6, 6]), {}), ((b4.view(4, 1, 1), [2, -1, 6, 6]), {})],
    aten.repeat.default: [((b4, [2, 3]), {})],
    aten.slice.Tensor: [((x4, 1, 1, 3), {}), ((x4, 3, 0, 9223372036854775807, 2), {}), ((x4,), {}),
                        ((x4, -1, 2), {}), ((x4, 2, None, -1), {})],
}


def _graphs(overload, args, kwargs):
    """The one-node graph as (plain module, lean module, tensor inputs)."""
    inputs: list[torch.Tensor] = []

    def build() -> Graph:
        graph = Graph()
        placeholders: list = []

        def lift(value):
            if isinstance(value, torch.Tensor):
                node = graph.placeholder(f"in{len(placeholders)}")
                node.meta["val"] = value  # what capture records (as a fake tensor) and some entries read
                placeholders.append(node)
                if len(inputs) < len(placeholders):
                    inputs.append(value)
                return node
            if isinstance(value, list):
                return [lift(v) for v in value]
            return value

        node = graph.call_function(overload, tuple(lift(a) for a in args), {k: lift(v) for k, v in kwargs.items()})
        graph.output(node)
        return graph

    plain = GraphModule(torch.nn.Module(), build())
    lean_graph = build()
    lean_graph.set_codegen(LeanCodeGen(CodeGen(), None))
    return plain, GraphModule(torch.nn.Module(), lean_graph), inputs


class _Dispatched(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def _run(module, inputs):
    fresh = [value.clone(memory_format=torch.preserve_format) for value in inputs]  # in-place ops write them
    with torch.no_grad(), _Dispatched() as mode:
        result = module(*fresh)
    return result, fresh, mode.ops


def _leaves(value):
    return list(value) if isinstance(value, list | tuple) else [value]


def _shares_memory(output, inputs) -> list[bool]:
    return [any(output.untyped_storage().data_ptr() == i.untyped_storage().data_ptr() for i in inputs)]


#: Where the fast call dispatches another op that ATen defines the overload to be, so the sequences
#: differ in name only: legit_no_training is native_batch_norm(training=False) (ATen's
#: Normalization.cpp), a slice of a whole dimension is an alias in basic indexing, split is
#: split_with_sizes with the sizes it computes, _unsafe_view is view without autograd's view tracking.
SAME_AS = {aten._native_batch_norm_legit_no_training.default: aten.native_batch_norm.default,
           aten.slice.Tensor: aten.alias.default, aten.split.Tensor: aten.split_with_sizes.default,
           aten._unsafe_view.default: aten.view.default}


CASES = [pytest.param(op, args, kwargs, id=f"{op}-{i}") for op, samples in SAMPLES.items()
         for i, (args, kwargs) in enumerate(samples)]


def test_every_entry_has_samples():
    assert set(SAMPLES) == set(ENTRY_POINTS)


@pytest.mark.parametrize("overload, args, kwargs", CASES)
def test_the_fast_call_is_exactly_the_overload(overload, args, kwargs):
    plain, lean, inputs = _graphs(overload, args, kwargs)
    assert "torch.ops.aten" in plain.code and "torch.ops.aten" not in lean.code  # the entry was used
    expected, expected_inputs, expected_ops = _run(plain, inputs)
    actual, actual_inputs, actual_ops = _run(lean, inputs)
    if overload in SAME_AS and actual_ops == [SAME_AS[overload]]:
        expected_ops = [SAME_AS[overload] if op is overload else op for op in expected_ops]
    assert actual_ops == expected_ops
    for want, got in zip(_leaves(expected), _leaves(actual), strict=True):
        if not isinstance(want, torch.Tensor):
            assert got == want
            continue
        assert got.dtype == want.dtype and got.shape == want.shape and got.stride() == want.stride()
        assert torch.equal(got, want)
        assert _shares_memory(got, actual_inputs) == _shares_memory(want, expected_inputs)
    for want, got in zip(expected_inputs, actual_inputs, strict=True):  # in-place entries write the same
        assert torch.equal(got, want)


@pytest.mark.parametrize("overload, args, kwargs", [case for case in CASES if case.values[0] in FRESH])
def test_fresh_ops_never_return_memory_of_their_inputs(overload, args, kwargs):
    """What `fxrep.lean.reinplace` assumes of `FRESH` (a view or an input returned as is would break it)."""
    plain, _, inputs = _graphs(overload, args, kwargs)
    output, fresh_inputs, _ = _run(plain, inputs)
    for leaf in _leaves(output):
        assert _shares_memory(leaf, fresh_inputs) == [False]


def test_the_fresh_set_has_an_entry_for_every_op():
    assert set(FRESH) <= set(ENTRY_POINTS)
