"""Capture through torch.export: the training IR is kept when it is already functional, else functionalised."""

from __future__ import annotations

import torch
from torch import nn

from fxrep.capture import capture
from fxrep.graph_facts import facts

aten = torch.ops.aten


def targets(model: nn.Module) -> set:
    gm = capture(model.eval(), (torch.randn(1, 3, 8, 8),), method="export").graph_module
    return {node.target for node in gm.graph.nodes if node.op == "call_function"}


def test_a_functional_graph_keeps_exports_training_ir():
    ops = targets(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()))
    assert aten.batch_norm.default in ops and aten._native_batch_norm_legit_no_training.default not in ops


def test_a_graph_with_in_place_ops_is_functionalised():
    ops = targets(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True)))
    assert aten.relu_.default not in ops and aten.relu.default in ops
    assert not any(getattr(op, "_schema", None) is not None and op._schema.is_mutable for op in ops)


def test_graph_facts_of_an_export_capture_with_a_dynamic_batch():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    batch = torch.export.Dim("batch", min=1)
    gm = capture(model, (torch.randn(2, 3, 8, 8),), method="export", dynamic_shapes=({0: batch},)).graph_module
    recorded = facts(gm)
    assert recorded.level == "aten" and recorded.shapes_guarded and recorded.dynamic_batch
    assert list(recorded.input_ranges.values()) == [(1, None)]
    assert recorded.input_guards == []


def test_graph_facts_of_a_static_export_and_of_a_symbolic_trace():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    static = facts(capture(model, (torch.randn(1, 3, 8, 8),), method="export").graph_module)
    assert static.level == "aten" and static.shapes_guarded and not static.dynamic_batch
    assert dict(static.input_ranges) == {} and static.input_guards == []
    traced = facts(capture(model, method="symbolic_trace").graph_module)
    assert traced.level == "module" and not traced.shapes_guarded and not traced.dynamic_batch
    assert dict(traced.input_ranges) == {} and traced.input_guards == []


def test_a_copied_graph_module_keeps_its_facts_and_an_unrecorded_one_is_read_from_its_nodes():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    exported = capture(model, (torch.randn(1, 3, 8, 8),), method="export").graph_module
    copied = facts(capture(exported).graph_module)
    assert copied.level == "aten" and copied.shapes_guarded
    unrecorded = torch.fx.GraphModule(exported, exported.graph)
    assert facts(unrecorded).level == "aten" and not facts(unrecorded).shapes_guarded
