"""``torch.compile(backend="fxrep")``: registration, folding of Dynamo's parameter inputs, frozen-weight guard.

Most tests use ``target="eager"`` (the plain graph runs as is) so they cost a Dynamo trace, not an
Inductor compile; one slow test goes through Inductor.
"""

from __future__ import annotations

import sys
import warnings

import pytest
import torch
from torch import nn

import fxrep.lower.dynamo_backend as dynamo_backend
from fxrep.lower import LoweringError
from fxrep.lower.dynamo_backend import fxrep_backend
from fxrep.models import RepVGGBlock, randomize_


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """No compiled code or report carried over between tests."""
    torch._dynamo.reset()
    dynamo_backend.last_report = None
    yield
    torch._dynamo.reset()


def _block() -> nn.Module:
    return randomize_(nn.Sequential(RepVGGBlock(8, 8), RepVGGBlock(8, 16, stride=2)), 0).eval()


def _input(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 8, 16, 16, generator=torch.Generator().manual_seed(batch))


def test_entry_point_registers_the_backend():
    import torch._dynamo
    from torch._dynamo.backends.registry import lookup_backend

    assert "fxrep" in torch._dynamo.list_backends()
    assert lookup_backend("fxrep") is fxrep_backend


def test_folds_parameters_that_dynamo_passes_as_inputs():
    model, x = _block(), _input()
    compiled = torch.compile(model, backend="fxrep", options={"target": "eager"})

    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))

    report = dynamo_backend.last_report
    assert report is not None and report.verification.passed
    assert report.ops_before["batchnorm"] == 5 and report.ops_before["conv"] == 4
    assert report.ops_after["conv"] == 2 and "batchnorm" not in report.ops_after and "add" not in report.ops_after


def test_refolds_when_a_folded_weight_changes_in_place():
    model, x = _block(), _input()
    compiled = torch.compile(model, backend="fxrep", options={"target": "eager"})
    with torch.no_grad():
        compiled(x)
        model[0].rbr_dense.bn.running_mean.add_(0.5)
        with pytest.warns(UserWarning, match="changed in place since compilation; folding and compiling again"):
            out = compiled(x)
        torch.testing.assert_close(out, model(x))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compiled(x)  # folded again once, then quiet


def test_buffers_the_graph_updates_stay_inputs():
    """A BatchNorm in training mode updates its running statistics: they must not be frozen copies."""
    model, x = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), torch.randn(2, 3, 8, 8)
    reference = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    reference.load_state_dict(model.state_dict())
    compiled = torch.compile(model, backend="fxrep", options={"target": "eager"})

    with torch.no_grad():
        torch.testing.assert_close(compiled(x), reference(x))

    torch.testing.assert_close(model[1].running_mean, reference[1].running_mean)
    assert model[1].num_batches_tracked == 1


def test_warns_that_gradients_do_not_reach_folded_weights():
    model, x = _block(), _input()
    compiled = torch.compile(model, backend="fxrep", options={"target": "eager"})
    with pytest.warns(UserWarning, match="gradients will not reach them"):
        compiled(x)


def test_direct_call_on_a_traced_graph():
    model, x = _block(), _input()
    gm = torch.fx.symbolic_trace(model)

    run = fxrep_backend(gm, [x], target="eager")

    with torch.no_grad():
        torch.testing.assert_close(run(x), model(x))
    assert dynamo_backend.last_report.ops_after["conv"] == 2


def test_graph_fxrep_cannot_optimize_is_compiled_unfolded_with_a_warning():
    model, x = _block(), _input()
    with torch.no_grad():
        model[0].rbr_1x1.bn.running_var[0] = float("nan")
    gm = torch.fx.symbolic_trace(model)

    with pytest.warns(UserWarning, match="without folding: .*contains NaN"):
        run = fxrep_backend(gm, [x], target="eager")
    assert dynamo_backend.last_report is None
    with torch.no_grad():
        torch.testing.assert_close(run(x), model(x), equal_nan=True)
    with pytest.raises(Exception, match="contains NaN"):
        fxrep_backend(gm, [x], target="eager", strict=True)


def test_options_are_checked():
    gm = torch.fx.symbolic_trace(nn.ReLU())
    with pytest.raises(ValueError, match="unknown fxrep backend option.*colour"):
        fxrep_backend(gm, [torch.randn(2)], options={"colour": "blue"})
    with pytest.raises(ValueError, match="target must be one of inductor, tensorrt, eager"):
        fxrep_backend(gm, [torch.randn(2)], target="tvm")


def test_tensorrt_target_without_torch_tensorrt_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    gm = torch.fx.symbolic_trace(nn.ReLU())
    with pytest.raises(LoweringError, match="pip install torch-tensorrt"):
        fxrep_backend(gm, [torch.randn(2)], options={"target": "tensorrt"})


@pytest.mark.slow
def test_inductor_compiles_the_folded_graph():
    model = _block()
    compiled = torch.compile(model, backend="fxrep")

    with torch.no_grad():
        for batch in (2, 3):  # the second shape recompiles with a dynamic batch
            torch.testing.assert_close(compiled(_input(batch)), model(_input(batch)))
            assert dynamo_backend.last_report.ops_after["conv"] == 2


def test_inductor_freezes_the_folded_weights_unless_told_otherwise():
    settings = dynamo_backend._settings({})
    assert dynamo_backend.inductor_patches(settings) == {"freezing": True}
    settings = dynamo_backend._settings({"options": {"inductor": {"freezing": False, "max_autotune": True}}})
    assert dynamo_backend.inductor_patches(settings) == {"freezing": False, "max_autotune": True}


def test_the_per_call_check_sees_a_replaced_or_updated_weight_and_nothing_else():
    weight, other = torch.randn(3), torch.randn(3)
    with torch.inference_mode():
        untracked = torch.randn(3)  # an inference tensor: it has no version counter to compare
    folded = dynamo_backend._FoldedInputs.of([torch.randn(2), weight, untracked], [1, 2])
    x = torch.randn(2)
    assert folded.unchanged((x, weight, untracked))
    assert not folded.unchanged((x, other, untracked))
    with torch.no_grad():
        weight.mul_(2)
    assert not folded.unchanged((x, weight, untracked))


def test_the_target_gets_the_passes_module_without_the_lean_forward():
    """Inductor traces the graph again, so fxrep hands over its passes' module (lean=False, static batch)."""
    model = _block()
    compiled = torch.compile(model, backend="fxrep", options={"target": "eager"})
    with torch.no_grad():
        compiled(_input())
    assert not any(note.startswith(("lean forward", "dynamic batch")) for note in dynamo_backend.last_report.notes)


def test_without_dynamos_module_guards_a_replaced_weight_still_refolds():
    """torch.compile's guard filter drops Dynamo's guards on module attributes; the backend's own check remains."""
    model, x = _block(), _input()
    options = {"target": "eager", "guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe}
    compiled = torch.compile(model, backend="fxrep", options=options)
    with torch.no_grad():
        compiled(x)
        conv = model[0].rbr_dense.conv
        conv.weight = nn.Parameter(conv.weight.detach() * 2)
        with pytest.warns(UserWarning, match="replaced or changed in place"):
            result = compiled(x)
        torch.testing.assert_close(result, model(x))


class _Classifier(nn.Module):
    """Flattens with x.size(0): a dynamic-batch recompile hands the backend that size as a SymInt input."""

    def __init__(self):
        super().__init__()
        self.block, self.fc = RepVGGBlock(8, 8), nn.Linear(8, 4)

    def forward(self, x):
        y = self.block(x).mean((2, 3), keepdim=True)
        return self.fc(y.view(x.size(0), -1))


def test_a_dynamic_batch_recompile_is_folded_too():
    model = randomize_(_Classifier(), 0).eval()
    compiled = torch.compile(model, backend="fxrep", options={"target": "eager"})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")  # "compiling this graph without folding" would be a warning
        for batch in (2, 3, 5):  # the second size recompiles with a dynamic batch
            torch.testing.assert_close(compiled(_input(batch)), model(_input(batch)))
            assert dynamo_backend.last_report is not None and "batchnorm" not in dynamo_backend.last_report.ops_after
