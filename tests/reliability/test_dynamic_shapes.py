"""Dynamic shapes: a dynamic batch stays correct at other sizes; size-dependent merges are refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fxrep
from fxrep.models import RepVGGBlock
from tests.helpers import assert_equivalent, ops, randomized


def test_dynamic_batch_is_correct_for_other_batch_sizes():
    model = randomized(RepVGGBlock(4, 4, 3, padding=1))
    gm = fxrep.optimize(model, torch.randn(1, 4, 8, 8), dynamic_batch=True)
    assert ops(gm)["conv"] == 1
    assert "random inputs with batch + 1" in {e.inputs for e in gm.fxrep_report.verification.errors}
    for batch in (1, 3, 5):
        assert_equivalent(model, gm, torch.randn(batch, 4, 8, 8))


class EvenOnly(nn.Module):
    """2x2/stride-2 and 1x1/stride-2 branches: their output grids coincide only for even sizes."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 4, 2, stride=2)
        self.b = nn.Conv2d(4, 4, 1, stride=2)

    def forward(self, x):
        return self.a(x) + self.b(x)


def test_a_merge_exact_only_for_the_traced_size_needs_a_static_size():
    model = randomized(EvenOnly())
    x = torch.randn(2, 4, 8, 8)
    static = fxrep.optimize(model, x)
    assert ops(static)["conv"] == 1
    height = torch.export.Dim("height", min=2, max=64)
    dynamic = fxrep.optimize(model, x, dynamic_shapes=({2: 2 * height},))
    assert ops(dynamic)["conv"] == 2
    assert any("input size is not static" in r.reason for r in dynamic.fxrep_report.refusals)


def test_symbolic_trace_graphs_never_use_size_dependent_merges():
    model = randomized(EvenOnly())
    gm = fxrep.optimize(model, torch.randn(2, 4, 8, 8), capture_method="symbolic_trace")
    assert ops(gm)["conv"] == 2  # the graph would run on any size, so the merge is refused


# --------------------------------------------------------------------------- the dynamic batch is the default
def test_with_example_inputs_the_batch_is_dynamic_by_default():
    model = randomized(RepVGGBlock(4, 4, 3, padding=1))
    gm = fxrep.optimize(model, torch.randn(2, 4, 8, 8))
    assert any(note.startswith("dynamic batch: captured with a dynamic batch") for note in gm.fxrep_report.notes)
    assert "random inputs with batch + 1" in {e.inputs for e in gm.fxrep_report.verification.errors}
    for batch in (1, 7):
        assert_equivalent(model, gm, torch.randn(batch, 4, 8, 8))


def test_dynamic_batch_false_keeps_the_example_shapes():
    model = randomized(RepVGGBlock(4, 4, 3, padding=1))
    gm = fxrep.optimize(model, torch.randn(2, 4, 8, 8), dynamic_batch=False)
    assert not any(note.startswith("dynamic batch") for note in gm.fxrep_report.notes)
    assert {e.inputs for e in gm.fxrep_report.verification.errors} == {"example inputs", "random inputs #1",
                                                                        "random inputs #2"}
    with pytest.raises(fxrep.InputShapeError):
        gm(torch.randn(3, 4, 8, 8))


class FixedBatch(nn.Module):
    """Flattens with the example's batch size written into the code: no other batch size works."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(self.conv(x).view(2, -1))


class ExportsAnotherBatchRule(nn.Module):
    """torch.export records ``x + batch`` where eager adds 2: both agree only at batch 2."""

    def forward(self, x):
        if torch.compiler.is_exporting():
            return x + x.shape[0]
        return x + 2


@pytest.mark.parametrize("model, why", [(FixedBatch(), "Constraints violated"),
                                        (ExportsAnotherBatchRule(), "differs from it at another batch size")])
def test_a_model_that_specializes_on_the_batch_falls_back_to_static_shapes_with_a_note(model, why):
    gm = fxrep.optimize(model.eval(), torch.randn(2, 3, 8, 8))
    note = next(note for note in gm.fxrep_report.notes if note.startswith("dynamic batch"))
    assert "not possible, the model specializes on the batch size" in note and why in note
    assert gm.fxrep_report.capture == "torch.export (non-strict)" and gm.fxrep_report.verification.passed
    with pytest.raises(fxrep.InputShapeError, match=r"\(2, 3, 8, 8\)"):
        gm(torch.randn(3, 3, 8, 8))


@pytest.mark.parametrize("model", [FixedBatch(), ExportsAnotherBatchRule()])
def test_asking_for_a_dynamic_batch_of_such_a_model_is_an_error_naming_the_cause(model):
    with pytest.raises(fxrep.InvalidModelError, match="dynamic_batch=True, but the model specializes on the batch"):
        fxrep.optimize(model.eval(), torch.randn(2, 3, 8, 8), dynamic_batch=True)


def test_a_module_exact_only_at_the_example_batch_falls_back_to_static_shapes(monkeypatch):
    """Verification at another batch size failing alone (a batch-sensitive model) also means static shapes."""
    import fxrep.optimization

    real = fxrep.optimization.make_lean

    def off_at_other_batches(gm):
        lean = real(gm)
        forward = lean.forward
        lean.forward = lambda x: forward(x) + (x.shape[0] - 2) * 1e-2  # wrong unless the batch is 2
        return lean

    monkeypatch.setattr(fxrep.optimization, "make_lean", off_at_other_batches)
    model = randomized(RepVGGBlock(4, 4, 3, padding=1))
    gm = fxrep.optimize(model, torch.randn(2, 4, 8, 8))
    note = next(note for note in gm.fxrep_report.notes if note.startswith("dynamic batch"))
    assert "not kept" in note and "random inputs with batch + 1" in note
    assert gm.fxrep_report.verification.passed
    assert not fxrep.optimization.batch_is_dynamic(gm)


# --------------------------------------------------------------------------- sizes that merge the batch
class TokenNorm(nn.Module):
    """LeViT's LinearNorm: a token Linear, the rows flattened into (batch * tokens, C) for a BatchNorm1d."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.linear = nn.Linear(channels, channels, bias=False)
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x):
        y = self.linear(x)
        return torch.relu(self.bn(y.flatten(0, 1)).reshape_as(y))


def test_a_size_that_merges_the_dynamic_batch_keeps_its_static_factor():
    """``flatten(0, 1)`` of a (batch, 49, C) tensor has batch * 49 rows: the cost model counts 49, not 1."""
    from fxrep.capture import capture
    from fxrep.cost.signatures import numel
    from fxrep.ops import size_at_unit_batch

    batch = torch.export.Dim("batch", min=1)
    gm = capture(randomized(TokenNorm()), (torch.randn(2, 49, 8),), dynamic_shapes=({0: batch},)).graph_module
    flattened = next(n for n in gm.graph.nodes
                     if n.op == "call_function" and len(getattr(n.meta.get("val"), "shape", ())) == 2)
    rows = flattened.meta["val"].shape[0]
    assert not isinstance(rows, int)  # dynamic: s0 * 49
    assert size_at_unit_batch(rows) == 49 and size_at_unit_batch(7) == 7
    assert numel(flattened) == 49 * 8


def test_a_token_batchnorm_folds_into_its_linear_with_a_dynamic_batch():
    model = randomized(TokenNorm())
    gm = fxrep.optimize(model, torch.randn(2, 49, 8), dynamic_batch=True)
    assert ops(gm)["linear"] == 1 and ops(gm).get("batchnorm", 0) == 0, gm.fxrep_report
    for batch in (1, 3):
        assert_equivalent(model, gm, torch.randn(batch, 49, 8))


def test_a_pad_inserted_into_a_dynamic_batch_graph_keeps_the_batch_symbolic():
    """Fuzz seed 31775: ATen's pad kernel under fake tensors specialised the batch (batch == 2), so the
    nodes after an emitted pad were costed at batch 2 and the ones before at 1, and optimizing the
    returned module again planned differently."""
    from fxrep.capture import capture
    from fxrep.shapes import propagate_shapes

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv1d(2, 4, 1), nn.Conv1d(4, 4, 3)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    aten = torch.ops.aten
    batch = torch.export.Dim("batch", min=1)
    gm = capture(Block(), (torch.randn(2, 2, 9),), dynamic_shapes=({0: batch},)).graph_module
    relu = next(n for n in gm.graph.nodes if n.target is aten.relu.default)
    reader = next(iter(relu.users))
    with gm.graph.inserting_after(relu):
        pad = gm.graph.create_node("call_function", aten.constant_pad_nd.default, (relu, [2, 0], 0.0))
    reader.replace_input_with(relu, pad)
    gm.recompile()
    assert propagate_shapes(gm)
    assert not isinstance(pad.meta["val"].shape[0], int)  # still the dynamic batch
    assert not isinstance(reader.meta["val"].shape[0], int)
    assert tuple(pad.meta["val"].shape[1:]) == (4, 11)
