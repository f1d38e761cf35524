"""Graphs too large for one picture: atoms and parts along the module hierarchy, the overview and the part pictures."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch
from torch import nn

import fxrep
from fxrep.drawing import draw, draw_parts, grouping
from fxrep.drawing.scene import INPUT, OUTPUT, build_scene
from fxrep.models import DiverseBranchBlock, RepVGGBlock
from fxrep.pass_api import module_path_of
from tests.drawing.test_draw import joined, svg_texts
from tests.helpers import captured, randomized

pytest.importorskip("matplotlib")

X = torch.randn(1, 4, 8, 8)


def stack(blocks: int) -> nn.Module:
    return randomized(nn.Sequential(*[RepVGGBlock(4, 4) for _ in range(blocks)]))


def op_keys(scene) -> list[str]:
    return [key for key, box in scene.boxes.items() if box.category not in (INPUT, OUTPUT)]


def top_module(scene, key: str) -> str:
    return module_path_of(scene.boxes[key].node).split(".")[0]


def fewest_runs(sizes: list[int], cap: int) -> tuple[int, int]:
    """(fewest runs of consecutive sizes summing to at most ``cap``, smallest largest run with that many)."""
    best: dict[int, tuple[int, int]] = {0: (0, 0)}
    for end in range(1, len(sizes) + 1):
        options = [(best[start][0] + 1, max(best[start][1], sum(sizes[start:end])))
                   for start in range(end) if sum(sizes[start:end]) <= cap]
        best[end] = min(options)
    return best[len(sizes)]


@pytest.mark.parametrize("max_nodes", [3, 9, 20, 45])
def test_parts_hold_every_op_once_in_graph_order_the_fewest_and_evenest_within_the_limit(max_nodes):
    scene = build_scene(captured(stack(8), X, level="symbolic_trace"))
    plan = grouping.plan(scene, max_nodes)

    assert [key for part in plan.parts for key in part.boxes] == op_keys(scene)
    assert all(len(part.boxes) <= max_nodes for part in plan.parts)
    count, largest = fewest_runs([len(atom.boxes) for atom in plan.atoms], max_nodes)
    assert len(plan.parts) == count and max(len(part.boxes) for part in plan.parts) == largest
    part_of = {key: part.number for part in plan.parts for key in part.boxes}
    for block in map(str, range(8)):
        members = [key for key in op_keys(scene) if top_module(scene, key) == block]
        if len(members) <= max_nodes:  # a module that fits is never cut
            assert len({part_of[key] for key in members}) == 1
            assert [atom.label for atom in plan.atoms].count(block) == 1
        else:  # a module that does not fit is opened into its children
            assert block not in [atom.label for atom in plan.atoms]
            assert any(atom.label == f"{block}.rbr_dense" for atom in plan.atoms)


def test_max_nodes_must_be_positive(tmp_path):
    gm = captured(stack(1), X, level="symbolic_trace")
    with pytest.raises(ValueError, match="max_nodes must be a positive number"):
        draw(gm, tmp_path / "graph.svg", max_nodes=0)
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def stack_run():
    model = stack(6)
    return model, captured(model, X, level="symbolic_trace"), fxrep.optimize(model, (X,), capture_method="symbolic_trace")


def test_the_overview_shows_each_module_with_its_type_op_counts_and_merged_regions(tmp_path, stack_run):
    _, before, optimized = stack_run
    scene = build_scene(before)
    (overview,) = [path for path in draw_parts(before, tmp_path / "before.svg", report=optimized, max_nodes=20)
                   if path.name == "before.svg"]
    texts = svg_texts(overview)
    assert "grouped by module to fit max_nodes=20" in joined(texts)
    for block in map(str, range(6)):
        kinds = Counter(scene.boxes[key].kind for key in op_keys(scene) if top_module(scene, key) == block)
        assert block in texts and f"RepVGGBlock, {sum(kinds.values())} ops" in texts
        kind, count = kinds.most_common(1)[0]
        assert any(text.startswith(f"{count} {kind}, ") for text in texts)
    merged = [d for d in optimized.fxrep_report.decisions if d.applied]
    assert texts.count("1 merged region") == len(merged) == 6  # one per block, each on its block's box
    assert "module with merged regions" in texts  # the legend
    assert f"{len(merged)} merged regions highlighted" in joined(texts)


def test_draw_writes_the_overview_alone_and_says_how_to_get_the_parts(tmp_path, stack_run):
    _, before, optimized = stack_run
    path = draw(before, tmp_path / "before.svg", report=optimized, max_nodes=20)
    assert list(tmp_path.iterdir()) == [path]
    assert "fxrep.drawing.draw_parts draws each part" in joined(svg_texts(path))


def test_each_part_is_drawn_in_full_with_its_neighbours_outside_dashed(tmp_path, stack_run):
    _, before, optimized = stack_run
    scene = build_scene(before)
    paths = draw_parts(before, tmp_path / "before.svg", report=optimized, max_nodes=20)
    plan = grouping.plan(scene, 20)
    assert len(paths) == 1 + len(plan.parts) == 4  # 6 blocks of 8 ops, two to a picture
    assert [path.name for path in paths[1:]] == ["before-1-0--1.svg", "before-2-2--3.svg", "before-3-4--5.svg"]
    notes = {d.note for d in optimized.fxrep_report.decisions if d.applied}
    relus = 0
    for number, path in enumerate(paths[1:], start=1):
        texts = svg_texts(path)
        relus += texts.count("relu")
        assert f"part {number} of 3" in joined(texts)
        assert ("from 1" in texts) == (number == 2) and ("to 4" in texts) == (number == 2)
        assert ("input input_1" in texts) == (number == 1) and ("output" in texts) == (number == 3)
        assert sum(texts.count(note) for note in notes) == 2  # its two blocks' regions, drawn as backgrounds again
    assert relus == sum(1 for key in op_keys(scene) if scene.boxes[key].kind == "relu") == 6


@pytest.fixture(scope="module")
def refused_run():
    """Three DBB blocks whose zero padding makes the report refuse two compositions in each."""
    model = randomized(nn.Sequential(*[DiverseBranchBlock(4, 4, 3, padding=1, pad_mode="zero") for _ in range(3)]))
    optimized = fxrep.optimize(model, (X,), capture_method="symbolic_trace")
    assert len(optimized.fxrep_report.refusals) >= 3
    return captured(model, X, level="symbolic_trace"), optimized


def footnote_numbers(texts: list[str]) -> set[int]:
    return {int(found) for text in texts for found in re.findall(r"^\[(\d+)\] ", text)}


def test_refusals_mark_their_module_in_the_overview_and_keep_their_numbers_in_the_parts(tmp_path, refused_run):
    before, optimized = refused_run
    block_size = max(Counter(top_module(build_scene(before), key) for key in op_keys(build_scene(before))).values())
    paths = draw_parts(before, tmp_path / "before.svg", report=optimized, max_nodes=block_size)
    overview = svg_texts(paths[0])
    numbered = footnote_numbers(overview)
    assert numbered == set(range(1, len(numbered) + 1)) and len(numbered) >= 3
    marks = [text for text in overview if re.fullmatch(r"\[[\d,]+\]", text)]
    assert len(marks) == 3  # each block's box carries the numbers of the refusals inside it
    assert sorted(int(n) for mark in marks for n in mark.strip("[]").split(",")) == sorted(numbered)
    seen: list[int] = []
    for path, mark in zip(paths[1:], marks, strict=True):  # one part per block, in order
        texts = svg_texts(path)
        inside = footnote_numbers(texts)
        assert inside == {int(n) for n in mark.strip("[]").split(",")}
        beside = {int(n) for text in texts if re.fullmatch(r"\[[\d,]+\]", text) for n in text.strip("[]").split(",")}
        assert beside == inside  # the red marks beside the refused boxes themselves
        seen += sorted(inside)
    assert sorted(seen) == sorted(numbered)  # every refusal is explained in exactly one part


class CalledTwice(nn.Module):
    """``shared`` runs before and after ``middle``: grouped naively, the overview would have a cycle."""

    def __init__(self) -> None:
        super().__init__()
        self.shared, self.middle = RepVGGBlock(4, 4), RepVGGBlock(4, 4)

    def forward(self, x):
        return self.shared(self.middle(self.shared(x)))


def test_modules_that_feed_each_other_both_ways_share_one_overview_box(tmp_path):
    model = randomized(CalledTwice())
    before = captured(model, X, level="symbolic_trace")
    paths = draw_parts(before, tmp_path / "before.svg", max_nodes=16)
    assert "shared + middle" in svg_texts(paths[0])
    assert len(paths) == 3  # shared (both calls, 16 ops) and middle (8 ops) do not fit together
    assert "to middle" in svg_texts(paths[1]) and "from middle" in svg_texts(paths[1])


@pytest.mark.slow
def test_a_net_of_more_than_2000_nodes_is_drawn_as_an_overview_and_parts(tmp_path):
    blocks = 260
    before = captured(stack(blocks), X, level="symbolic_trace")
    assert len(before.graph.nodes) > 2000
    scene = build_scene(before)
    plan = grouping.plan(scene, fxrep.drawing.MAX_NODES)

    paths = draw_parts(before, tmp_path / "before.svg")

    assert len(paths) == 1 + len(plan.parts) and all(len(part.boxes) <= fxrep.drawing.MAX_NODES for part in plan.parts)
    overview = svg_texts(paths[0])
    assert sum(1 for text in overview if text == "RepVGGBlock, 8 ops") == blocks
    assert overview.count("1 linear region") == blocks  # the regions find_linear_regions finds, one per block
    relus = sum(svg_texts(path).count("relu") for path in paths[1:])
    assert relus == blocks  # every op is drawn in full in exactly one part
