"""Capture through torch.export: the training IR is kept when it is already functional, else functionalised."""

from __future__ import annotations

import torch
from torch import nn

from fxrep.capture import capture

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
