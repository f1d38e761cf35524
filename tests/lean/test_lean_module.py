"""The module `fxrep.optimize` returns: lean code, same numerics, same graph, and every way out still works.

Lean code: no ``torch.ops.aten`` lookups, no ``_guards_fn`` call, no pytree (un)flattening and no
nested ``getattr`` chains in the generated forward. Same numerics: bit-identical to the passes'
module (``lean=False``). Every way out: torch.export save / load, ONNX, deepcopy, printing, op
counts and the report, a graph edit followed by ``recompile()``.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from torch import nn

import fxrep
import fxrep.optimization
from fxrep.demo import load_optimized, save_optimized
from fxrep.lean import in_place_plan
from fxrep.models import mobileone_small, randomize_, repvgg_a0, repvgg_small
from fxrep.models.mobileone import mobileone_s0
from fxrep.report import count_ops

NETS = {"repvgg_a0": repvgg_a0, "mobileone_s0": mobileone_s0}


@pytest.fixture(scope="module", params=sorted(NETS))
def optimized(request):
    model = randomize_(NETS[request.param](), 0).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.set_num_threads(1)
    lean = fxrep.optimize(model, x)
    plain = fxrep.optimize(model, x, lean=False)
    return model, x, lean, plain


def _no_grad(module, *inputs):
    with torch.no_grad():
        return module(*inputs)


def test_the_generated_forward_has_no_slow_calls(optimized):
    _, _, lean, plain = optimized
    assert "torch.ops.aten" in plain.code and "_guards_fn" in plain.code  # what it replaces
    for slow in ("torch.ops.aten", "_guards_fn", "tree_flatten_spec", "tree_unflatten", "getattr(self"):
        assert slow not in lean.code, slow
    assert ".relu_()" in lean.code and "torch.conv2d(" in lean.code
    assert lean.code.count("torch.conv2d(") == count_ops(lean)["conv"]


def test_a_plain_graph_module_with_flat_attributes(optimized):
    _, _, lean, _ = optimized
    assert type(lean) is not torch.fx.GraphModule and type(lean).__mro__[1] is torch.fx.GraphModule
    assert not lean._forward_pre_hooks and not lean._forward_hooks
    assert all("." not in name for name in lean.state_dict())
    targets = [node.target for node in lean.graph.nodes if node.op == "get_attr"]
    assert targets and all("." not in target for target in targets)


def test_numerics_are_those_of_the_passes_module_bit_for_bit(optimized):
    model, x, lean, plain = optimized
    for batch in (1, 2, 5):
        inputs = torch.randn(batch, 3, 64, 64)
        assert torch.equal(_no_grad(lean, inputs), _no_grad(plain, inputs))
    assert lean.fxrep_report.verification.passed
    assert {e.inputs for e in lean.fxrep_report.verification.errors} >= {"example inputs", "random inputs with batch + 1"}


def test_the_graph_and_the_report_are_those_of_the_passes(optimized):
    _, _, lean, plain = optimized
    assert count_ops(lean) == count_ops(plain) == lean.fxrep_report.ops_after
    assert [(n.name, n.op, str(n.target).replace(".", "_")) for n in lean.graph.nodes if n.op != "call_module"] == \
        [(n.name, n.op, str(n.target).replace(".", "_")) for n in plain.graph.nodes if n.op != "call_module"]
    assert any(note.startswith("lean forward:") for note in lean.fxrep_report.notes)


def test_round_trips_through_torch_export_save_and_load(optimized, tmp_path):
    _, x, lean, _ = optimized
    path = save_optimized(lean, (x,), tmp_path / "net.pt2", dynamic_batch=True)
    loaded = load_optimized(path)
    for batch in (1, 3):
        inputs = torch.randn(batch, 3, 64, 64)
        assert torch.equal(_no_grad(loaded, inputs), _no_grad(lean, inputs))


def test_deepcopy_and_printing_keep_the_lean_code(optimized):
    _, x, lean, _ = optimized
    twin = copy.deepcopy(lean)
    assert twin.code == lean.code
    assert torch.equal(_no_grad(twin, x), _no_grad(lean, x))
    assert "torch.conv2d(" in str(lean) and "torch.conv2d(" in lean.print_readable(print_output=False)


def test_parameters_and_buffers_keep_their_kind():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Module()
            self.inner.floor = nn.Parameter(torch.randn(4))
            self.inner.register_buffer("ceiling", torch.randn(4) + 2)
            self.inner.register_buffer("order", torch.tensor([3, 1, 0, 2]), persistent=False)

        def forward(self, x):  # nothing here folds: every tensor stays what it is
            return torch.minimum(torch.maximum(x, self.inner.floor), self.inner.ceiling)[:, self.inner.order]

    model, x = Net().eval(), torch.randn(2, 4)
    lean = fxrep.optimize(model, x)
    assert dict(lean.named_parameters()).keys() == {"inner_floor"}
    assert dict(lean.named_buffers()).keys() == {"inner_ceiling", "inner_order"}
    assert set(lean.state_dict()) == {"inner_floor", "inner_ceiling"}  # the non-persistent buffer stays so
    torch.testing.assert_close(_no_grad(lean, x), _no_grad(model, x))


def test_a_graph_edit_and_recompile_are_analysed_again():
    model = randomize_(repvgg_small(), 0).eval()
    x = torch.randn(2, 3, 32, 32)
    lean = fxrep.optimize(model, x)
    first_relu = next(node for node in lean.graph.nodes if node.target is torch.ops.aten.relu.default)
    conv = first_relu.args[0]
    assert first_relu in in_place_plan(lean.graph)
    output = lean.graph.output_node()
    with lean.graph.inserting_before(output):
        extra = lean.graph.call_function(torch.ops.aten.sum.default, (conv,))  # the conv output is read later now
    output.args = ((output.args[0][0], extra),) if isinstance(output.args[0], tuple) else ((output.args[0], extra),)
    lean.recompile()
    assert first_relu not in in_place_plan(lean.graph)
    assert f"{first_relu.name} = {conv.name}.relu()" in lean.code


def test_dict_outputs_are_returned_directly_and_nested_inputs_keep_their_flattening():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, inputs):
            y = self.conv(inputs["image"]) * inputs["scale"]
            return {"features": torch.relu(y), "pooled": y.mean((2, 3))}

    model = Net().eval()
    example = ({"image": torch.randn(2, 3, 8, 8), "scale": torch.randn(2, 4, 1, 1)},)
    lean = fxrep.optimize(model, example)
    assert "tree_flatten_spec" in lean.code and "tree_unflatten" not in lean.code
    assert "return {'features':" in lean.code
    result, expected = _no_grad(lean, *example), _no_grad(model, *example)
    assert result.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(result[key], expected[key])


def test_verification_checks_the_module_returned(monkeypatch):
    model, x = randomize_(repvgg_small(), 0).eval(), torch.randn(2, 3, 32, 32)
    real = fxrep.optimization.make_lean

    def broken(gm):
        lean = real(gm)
        name, bias = next((name, p) for name, p in lean.named_parameters() if name.endswith("bias"))
        setattr(lean, name, nn.Parameter(bias.detach() + 1.0))  # only the final module is wrong
        return lean

    monkeypatch.setattr(fxrep.optimization, "make_lean", broken)
    with pytest.raises(fxrep.EquivalenceError, match="lean forward") as error:
        fxrep.optimize(model, x)
    assert error.value.pass_name == "lean"


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs fxrep[onnx]")
def test_exports_to_onnx(tmp_path):
    from fxrep.lower import check_onnx, export_onnx

    model, x = randomize_(mobileone_small(), 0).eval(), torch.randn(2, 3, 32, 32)
    lean = fxrep.optimize(model, x)
    path = export_onnx(lean, (x,), tmp_path / "net.onnx", dynamic_batch=True)
    for batch in (1, 3):
        assert check_onnx(path, lean, (torch.randn(batch, 3, 32, 32),), rtol=1e-4, atol=1e-4) < 1e-3


def test_optimizing_the_returned_module_again_gives_an_equal_lean_module():
    model, x = randomize_(repvgg_small(), 0).eval(), torch.randn(2, 3, 32, 32)
    once = fxrep.optimize(model, x)
    twice = fxrep.optimize(once, x)
    assert count_ops(twice) == count_ops(once)
    assert not isinstance(twice.graph._codegen.capture_codegen, type(once.graph._codegen))  # not nested
    result = _no_grad(twice, x)
    assert isinstance(result, torch.Tensor) and torch.equal(result, _no_grad(once, x))
    with pytest.raises(fxrep.InputShapeError):
        twice(torch.randn(2, 3, 31, 32))
