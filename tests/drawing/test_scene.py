"""What a picture shows: parameters, assertions and tuple plumbing hidden; one box per op with its kind."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

from fxrep.drawing.scene import build_scene, collapse_chains
from fxrep.models import RepVGGBlock
from tests.helpers import LEVELS, captured, randomized

X = torch.randn(1, 4, 8, 8)
BLOCK_KINDS = Counter({"conv": 2, "batchnorm": 3, "add": 2, "relu": 1, "input": 1, "output": 1})


@pytest.mark.parametrize("level", LEVELS)
def test_a_repvgg_block_is_one_box_per_op_at_both_capture_levels(level):
    gm = captured(randomized(RepVGGBlock(4, 4)), X, level=level)
    scene = build_scene(gm)
    assert Counter(box.kind for box in scene.boxes.values()) == BLOCK_KINDS
    assert len(scene.edges) == 11  # 3 out of the fork, 2 conv -> BN, 4 into the adds, add_1 -> relu -> output


def test_export_plumbing_is_hidden_and_maps_to_the_batchnorm_box():
    # the in-place ReLU makes capture functionalise the graph: BatchNorm becomes a tuple-returning call + getitem
    gm = captured(randomized(nn.Sequential(RepVGGBlock(4, 4), nn.ReLU(inplace=True))), X, level="export")
    scene = build_scene(gm)
    nodes = {n.name: n for n in gm.graph.nodes}
    assert "_guards_fn" in nodes and "_guards_fn" not in scene.boxes
    assert not any(nodes[key].op == "get_attr" for key in scene.boxes)
    call = next(n for n in nodes if n.startswith("_native_batch_norm_legit_no_training"))
    assert call not in scene.boxes
    assert scene.boxes[scene.box_of[call]].kind == "batchnorm"


@pytest.mark.parametrize("level", LEVELS)
def test_labels_say_kernel_stride_groups_and_shape(level):
    model = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=4), nn.ReLU())
    scene = build_scene(captured(randomized(model), X, level=level))
    assert [box.lines for box in scene.boxes.values()] == [
        ("input input_1", "4x8x8"), ("conv 3x3 s2 g4", "8x4x4"), ("relu", "8x4x4"), ("output",)]


def test_chains_collapse_but_never_across_groups():
    model = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU())
    scene = build_scene(captured(randomized(model), X, level="symbolic_trace"))
    whole, moved = collapse_chains(scene)
    assert [box.lines[:2] for box in whole.boxes.values()] == [
        ("input input_1", "4x8x8"), ("5 ops", "conv, batchnorm, relu"), ("output",)]
    assert set(moved) == set(scene.boxes) and set(moved.values()) == set(whole.boxes)
    second_conv = list(scene.boxes)[4]
    split, _ = collapse_chains(scene, {second_conv: "a region"})
    assert [box.lines[0] for box in split.boxes.values()] == ["input input_1", "3 ops", "conv 1x1", "relu", "output"]
