"""`fxrep.optimize`: the public contract (returns, report, verification, errors, no mutation)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from fxrep.passes import default_pipeline
from torch import nn
from torch.fx import GraphModule

import fxrep
from fxrep import pass_api as api
from fxrep.models import DiverseBranchBlock, RepVGGBlock
from tests.helpers import ops, randomized

X = torch.randn(2, 8, 8, 8)


def fingerprint(model: nn.Module) -> str:
    """Hash of everything optimize must not change: tensors, flags, hooks."""
    digest = hashlib.sha256()
    for name, tensor in list(model.state_dict(keep_vars=True).items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        digest.update(str(tensor.requires_grad).encode())
    for name, module in model.named_modules():
        digest.update(f"{name}:{module.training}:{len(module._forward_hooks)}:{len(module._forward_pre_hooks)}".encode())
    return digest.hexdigest()


def test_returns_a_graph_module_with_a_report():
    model = randomized(RepVGGBlock(8, 8, 3, padding=1))
    gm = fxrep.optimize(model, X)
    assert isinstance(gm, GraphModule)
    report = fxrep.report_of(gm)
    assert report is gm.fxrep_report
    text = str(report)
    assert "collapse_linear_regions" in text and "verification: passed" in text
    assert report.ops_before["batchnorm"] == 3 and report.ops_after["batchnorm"] == 0
    assert report.parameters_after < report.parameters_before
    json.dumps(report.to_dict())  # plain data


def test_the_callers_model_is_unchanged_train_mode_included():
    model = randomized(RepVGGBlock(8, 8, 3, padding=1)).train()
    model.register_forward_hook(lambda module, args, output: None)
    before = fingerprint(model)
    gm = fxrep.optimize(model, X)
    assert fingerprint(model) == before and model.training
    with torch.no_grad():
        eval_output = RepVGGBlock.forward(model.eval(), X)  # inference semantics: running statistics
    torch.testing.assert_close(gm(X), eval_output, rtol=1e-5, atol=1e-5)


def test_the_callers_model_is_unchanged_when_optimize_fails():
    model = randomized(RepVGGBlock(8, 8, 3, padding=1)).train()
    before = fingerprint(model)
    with pytest.raises(fxrep.EquivalenceError):
        fxrep.optimize(model, X, passes=[*default_pipeline(), BreakFirstConv()])
    assert fingerprint(model) == before and model.training


@dataclass(frozen=True)
class BreakFirstConv(api.Pass):
    """A wrong pass: scales the first constant weight it finds."""

    name: ClassVar[str] = "break_first_conv"

    def __call__(self, gm):
        for node in gm.graph.nodes:
            conv = api.Conv.from_node(node)
            if conv is not None and conv.weight is not None and node.op == "call_function":
                rewriter = api.Rewriter(gm)
                folded = api.conv_map(conv.weight * 1.5, conv.bias, conv.stride, conv.padding, conv.dilation,
                                      conv.groups)
                new = rewriter.conv(conv.input, folded, like=node, path="broken", dtype=conv.weight.dtype,
                                    device=conv.weight.device)
                rewriter.replace(node, new, "break")
                rewriter.finish()
                return api.PassResult(True)
        return api.PassResult(False)


def test_equivalence_error_names_the_breaking_pass():
    model = randomized(RepVGGBlock(8, 8, 3, padding=1))
    with pytest.raises(fxrep.EquivalenceError) as error:
        fxrep.optimize(model, X, passes=[*default_pipeline(), BreakFirstConv()])
    assert error.value.pass_name == "break_first_conv"
    assert "break_first_conv" in str(error.value) and "collapse_linear_regions" in str(error.value)
    assert error.value.max_rel > error.value.tolerance


@dataclass(frozen=True)
class MemorizeExampleOutput(api.Pass):
    """A wrong pass that is right on the example input only: it returns a stored output."""

    name: ClassVar[str] = "memorize"
    output: torch.Tensor = None

    def __call__(self, gm):
        (out,) = [n for n in gm.graph.nodes if n.op == "output"]
        if "memorized" in [n.name for n in gm.graph.nodes]:
            return api.PassResult(False)
        rewriter = api.Rewriter(gm)
        constant = rewriter.constant(self.output, "memorized", before=out)
        out.args = (constant,)
        rewriter.count("memorize")
        rewriter.finish()
        return api.PassResult(True)


def test_random_inputs_catch_a_rewrite_that_is_right_on_the_example_only():
    model = randomized(nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU()))
    with torch.no_grad():
        output = model(X)
    with pytest.raises(fxrep.EquivalenceError, match="random inputs"):
        fxrep.optimize(model, X, capture_method="symbolic_trace", passes=[MemorizeExampleOutput(output=output)])


def test_graph_module_input_and_no_inputs():
    model = randomized(RepVGGBlock(8, 8, 3, padding=1))
    traced = torch.fx.symbolic_trace(model)
    gm = fxrep.optimize(traced, X)
    assert ops(gm)["conv"] == 1 and gm.fxrep_report.capture.startswith("GraphModule")
    gm = fxrep.optimize(model)
    assert ops(gm)["conv"] == 1
    assert gm.fxrep_report.verification.skipped
    assert "skipped" in str(gm.fxrep_report)


def test_symbolic_trace_failure_falls_back_to_export_and_says_so():
    model = randomized(DiverseBranchBlock(8, 8, 3, padding=1))
    gm = fxrep.optimize(model, X, capture_method="symbolic_trace")
    assert ops(gm)["conv"] == 1
    assert any("fell back to torch.export" in note for note in gm.fxrep_report.notes)


def test_capture_failure_explains_where_and_what_to_do():
    class DataDependent(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x
            return -x

    with pytest.raises(fxrep.CaptureError) as error:
        fxrep.optimize(DataDependent())
    message = str(error.value)
    assert "symbolic_trace failed" in message and "test_optimize.py" in message
    assert "pass example_inputs" in message


def test_nan_weights_are_rejected_before_any_rewrite():
    model = randomized(RepVGGBlock(8, 8, 3, padding=1))
    model.rbr_dense.bn.running_var[3] = float("nan")
    with pytest.raises(fxrep.InvalidModelError, match=r"rbr_dense\.bn\.running_var contains NaN"):
        fxrep.optimize(model, X)


def test_bad_arguments_get_clear_errors():
    with pytest.raises(fxrep.InvalidModelError, match="torch.nn.Module"):
        fxrep.optimize(lambda x: x, X)
    with pytest.raises(fxrep.InvalidModelError, match="example_inputs"):
        fxrep.optimize(nn.ReLU(), {"x": X})
    with pytest.raises(fxrep.InvalidModelError, match="capture"):
        fxrep.optimize(nn.ReLU(), X, capture_method="jit")


def test_a_pass_that_raises_is_named_with_the_passes_before_it():
    def exploding(gm):
        raise RuntimeError("boom")

    with pytest.raises(fxrep.PassError) as error:
        fxrep.optimize(nn.Conv2d(8, 8, 1), X, passes=[*default_pipeline(), exploding])
    assert error.value.pass_name == "exploding"
    assert error.value.previous[:4] == ["remove_no_ops", "fuse_activations", "evaluate_constant_subgraphs",
                                        "fold_batchnorm"]
    assert "boom" in str(error.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_keep_their_dtype(dtype):
    model = randomized(RepVGGBlock(8, 8, 3, padding=1)).to(dtype)
    x = X.to(dtype)
    gm = fxrep.optimize(model, x)
    assert ops(gm)["conv"] == 1
    assert {p.dtype for p in gm.parameters()} == {dtype}
    assert gm(x).dtype == dtype
    assert gm.fxrep_report.verification.tolerance >= 1e-2


def test_every_output_of_a_multi_output_model_is_compared():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = RepVGGBlock(8, 8, 3, padding=1)

        def forward(self, x):
            y = self.block(x)
            return {"features": y, "pooled": y.mean((2, 3))}

    gm = fxrep.optimize(randomized(TwoHeads()), X)
    outputs = {e.output for e in gm.fxrep_report.verification.errors}
    assert outputs == {0, 1}


class TrainModeNormOnOneValue(nn.Module):
    """A norm hard-wired to batch statistics, on a batch of one 1x1 map: the model cannot run on this input."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8)

    def forward(self, x):
        self.norm.train()
        return self.norm(self.conv(x))


def test_a_model_that_fails_on_its_own_example_inputs_gets_an_invalid_model_error():
    """Found by the fuzz sweep (seed 4171): the verifier let the model's own ValueError escape undocumented."""
    with pytest.raises(fxrep.InvalidModelError, match="the model itself raised on the example inputs") as error:
        fxrep.optimize(TrainModeNormOnOneValue(), torch.randn(1, 8, 3, 3), capture_method="symbolic_trace")
    assert "verify=False" in str(error.value)


@dataclass(frozen=True)
class BreakAtRunTime(api.Pass):
    """A wrong pass whose output fails when it runs: it reshapes the graph's output to a wrong size."""

    name: ClassVar[str] = "break_at_run_time"

    def __call__(self, gm):
        (out,) = [n for n in gm.graph.nodes if n.op == "output"]
        if any(n.target is torch.reshape for n in gm.graph.nodes):
            return api.PassResult(False)
        with gm.graph.inserting_before(out):
            broken = gm.graph.call_function(torch.reshape, (out.args[0], (7, -1)))
        out.args = (broken,)
        gm.recompile()
        return api.PassResult(True)


def test_an_optimized_module_that_raises_is_an_equivalence_error_naming_the_pass():
    model = randomized(nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU()))
    with pytest.raises(fxrep.EquivalenceError, match="raised") as error:
        fxrep.optimize(model, X, capture_method="symbolic_trace", passes=[*default_pipeline(), BreakAtRunTime()])
    assert error.value.pass_name == "break_at_run_time"


def test_optimize_settings_defaults_are_optimizes_defaults():
    import dataclasses
    import inspect

    from fxrep.optimization import OptimizeSettings, optimize

    parameters = inspect.signature(optimize).parameters
    settings = OptimizeSettings()
    for field in dataclasses.fields(OptimizeSettings):
        if field.name != "verification":
            assert getattr(settings, field.name) == parameters[field.name].default, field.name
    for name in ("tolerance", "random_inputs", "strict"):
        assert getattr(settings.verification, name) == parameters[name].default, name
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lean = False  # type: ignore[misc]
