"""`fxrep.drawing`: files written in every format, labels and highlights present, nothing of the caller changed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from torch import nn

import fxrep
from fxrep.drawing import before_and_after, draw
from fxrep.models import DiverseBranchBlock, RepVGGBlock, repvgg_a0
from tests.helpers import LEVELS, captured, randomized

pytest.importorskip("matplotlib")  # fxrep.drawing imports it when it draws

X = torch.randn(1, 4, 8, 8)


def svg_texts(path: Path) -> list[str]:
    """The text elements of an SVG, in drawing order."""
    return ["".join(element.itertext()) for element in ET.parse(path).iter() if element.tag.endswith("}text")]


def joined(texts: list[str]) -> str:
    return " ".join(" ".join(texts).split())


@pytest.fixture(scope="module")
def repvgg() -> nn.Module:
    return randomized(nn.Sequential(RepVGGBlock(4, 4), RepVGGBlock(4, 8, stride=2)))


@pytest.fixture(scope="module", params=LEVELS)
def repvgg_run(request, repvgg):
    """(captured before graph, optimized module) at one capture level."""
    optimized = fxrep.optimize(repvgg, (X,), capture_method=request.param, dynamic_batch=False)
    return captured(repvgg, X, level=request.param), optimized


@pytest.fixture(scope="module", params=LEVELS)
def dbb_zero_run(request):
    """A DBB whose zero padding makes the 1x1 -> kxk compositions inexact, so its report has refusals."""
    model = randomized(DiverseBranchBlock(4, 4, 3, padding=1, pad_mode="zero"))
    optimized = fxrep.optimize(model, (X,), capture_method=request.param, dynamic_batch=False)
    assert optimized.fxrep_report.refusals
    return captured(model, X, level=request.param), optimized


@pytest.mark.parametrize("suffix", [".svg", ".png", ".pdf"])
def test_each_format_is_written_and_parses(tmp_path, repvgg_run, suffix):
    before, _ = repvgg_run
    path = draw(before, tmp_path / f"graph{suffix}")
    assert path == tmp_path / f"graph{suffix}"
    data = path.read_bytes()
    if suffix == ".svg":
        assert ET.parse(path).getroot().tag.endswith("svg")
    elif suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        image = pytest.importorskip("PIL.Image").open(path)
        assert image.size[1] > image.size[0] > 300  # a tall picture: two blocks stacked
    else:
        assert data.startswith(b"%PDF") and b"CreationDate" not in data


def test_boxes_are_labelled_with_kind_kernel_stride_and_shape(tmp_path, repvgg_run):
    before, _ = repvgg_run
    texts = svg_texts(draw(before, tmp_path / "before.svg", highlight=None))
    for label in ("conv 3x3", "conv 1x1", "conv 3x3 s2", "conv 1x1 s2", "batchnorm", "add", "relu", "output",
                  "4x8x8", "8x4x4"):
        assert label in texts
    assert any(text.startswith("input ") for text in texts)
    assert "conv / linear" in texts and "activation" in texts  # the legend


def test_merged_regions_are_labelled_on_the_before_and_after_graphs(tmp_path, repvgg_run):
    before, optimized = repvgg_run
    notes = [d.note for d in optimized.fxrep_report.decisions if d.applied]
    assert len(notes) == 2
    for graph, name in ((before, "before.svg"), (optimized, "after.svg")):
        texts = svg_texts(draw(graph, tmp_path / name, report=optimized))
        assert all(note in texts for note in notes), name
        assert "merged region" in texts and "2 merged regions" in joined(texts)


def test_a_bare_report_places_regions_through_surviving_names(tmp_path, repvgg_run):
    before, optimized = repvgg_run
    texts = svg_texts(draw(before, tmp_path / "before.svg", report=optimized.fxrep_report))
    assert all(d.note in texts for d in optimized.fxrep_report.decisions if d.applied)


def test_refusals_get_a_red_mark_and_a_numbered_note(tmp_path, dbb_zero_run):
    before, optimized = dbb_zero_run
    texts = svg_texts(draw(before, tmp_path / "before.svg", report=optimized))
    refusals = optimized.fxrep_report.refusals
    assert "Notes (candidates left alone):" in texts
    for number, refusal in enumerate(refusals, start=1):
        assert f"[{number}]" in texts  # the mark beside the refused box
        assert " ".join(refusal.reason.split()) in joined(texts)
    assert "not in this graph" not in joined(texts)  # every refusal found its box in the captured graph


def test_without_a_report_linear_regions_are_highlighted_unless_turned_off(tmp_path, repvgg_run):
    before, _ = repvgg_run
    texts = joined(svg_texts(draw(before, tmp_path / "regions.svg")))
    assert "linear region, 7 ops" in texts and "linear region, 5 ops" in texts
    plain = joined(svg_texts(draw(before, tmp_path / "plain.svg", highlight=None)))
    assert "linear region" not in plain


def test_the_callers_graph_module_is_not_modified(tmp_path, dbb_zero_run):
    before, optimized = dbb_zero_run
    code, names = before.code, [(n.name, n.op, n.target) for n in before.graph.nodes]
    draw(before, tmp_path / "before.svg", report=optimized)
    draw(before, tmp_path / "regions.png", max_nodes=12)
    assert before.code == code and [(n.name, n.op, n.target) for n in before.graph.nodes] == names


def test_bad_arguments_are_refused_with_the_allowed_values(tmp_path, repvgg_run):
    before, _ = repvgg_run
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.pdf"):
        draw(before, tmp_path / "graph.jpg")
    with pytest.raises(ValueError, match="highlight"):
        draw(before, tmp_path / "graph.svg", highlight="everything")
    with pytest.raises(TypeError, match="GraphModule"):
        draw(nn.ReLU(), tmp_path / "graph.svg")
    assert not list(tmp_path.iterdir())


def test_large_graphs_collapse_chains_then_group_by_module(tmp_path, dbb_zero_run):
    before, optimized = dbb_zero_run
    texts = joined(svg_texts(draw(before, tmp_path / "small.svg", report=optimized, max_nodes=15)))
    assert "2 ops" in texts and "chains of ops collapsed to fit max_nodes=15" in texts
    texts = joined(svg_texts(draw(before, tmp_path / "tiny.svg", report=optimized, max_nodes=3)))
    assert "grouped by part to fit max_nodes=3" in texts and "part 1: dbb_origin" in texts  # too many modules
    assert re.search(r"[1-9]\d* refusals? \(see notes\)", texts)  # still explained, on the module boxes that hold them


def test_output_is_byte_for_byte_repeatable(tmp_path, repvgg):
    optimized = fxrep.optimize(repvgg, (X,), capture_method="symbolic_trace")
    before = captured(repvgg, X, level="symbolic_trace")
    for suffix in (".svg", ".pdf", ".png"):
        first = draw(before, tmp_path / f"a{suffix}", report=optimized).read_bytes()
        assert draw(before, tmp_path / f"b{suffix}", report=optimized).read_bytes() == first


def test_before_and_after_writes_both_pictures(tmp_path, repvgg):
    before, after = before_and_after(repvgg, (X,), tmp_path / "pictures", suffix=".svg",
                                     capture_method="symbolic_trace")
    assert (before.name, after.name) == ("before.svg", "after.svg")
    before_texts, after_texts = joined(svg_texts(before)), joined(svg_texts(after))
    assert "Sequential before fxrep" in before_texts and "Sequential after fxrep" in after_texts
    assert "batchnorm" in before_texts and "batchnorm" not in after_texts


def test_before_and_after_reuses_an_optimized_module(tmp_path, dbb_zero_run):
    before_graph, optimized = dbb_zero_run
    model = randomized(DiverseBranchBlock(4, 4, 3, padding=1, pad_mode="zero"))
    before, after = before_and_after(model, (X,), tmp_path, suffix=".svg", optimized=optimized)
    texts = joined(svg_texts(before))
    assert "1 merged region highlighted" in texts and re.search(r"[1-9]\d* refusals? \(see notes\)", texts)
    assert "not in this graph" not in texts and "not in this graph" not in joined(svg_texts(after))
    with pytest.raises(ValueError, match="fxrep.optimize"):
        before_and_after(model, (X,), tmp_path, optimized=before_graph)


@pytest.mark.slow
def test_svg_is_the_same_whatever_the_hash_seed(tmp_path):
    script = ("import sys, torch; from fxrep.drawing import draw; from fxrep.models import DiverseBranchBlock, randomize_;"
              "import fxrep; m = randomize_(DiverseBranchBlock(4, 4, 3, padding=1, pad_mode='zero'), 0).eval();"
              "x = torch.randn(1, 4, 8, 8); o = fxrep.optimize(m, (x,), capture_method='symbolic_trace');"
              "draw(torch.fx.symbolic_trace(m), sys.argv[1], report=o)")
    outputs = []
    for seed in ("1", "2"):
        path = tmp_path / f"seed{seed}.svg"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env, cwd=Path(__file__).parents[2])
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.slow
def test_repvgg_a0_before_and_after_render_legibly(tmp_path):
    image = pytest.importorskip("PIL.Image")
    model = randomized(repvgg_a0())
    before, after = before_and_after(model, (torch.randn(1, 3, 64, 64),), tmp_path)
    before_size, after_size = image.open(before).size, image.open(after).size
    assert 500 < before_size[0] < 1200 and after_size[0] < 1200  # a column, not a sprawl: fonts stay readable
    assert before_size[1] > 2 * after_size[1]
    texts = joined(svg_texts(draw(captured(model, torch.randn(1, 3, 64, 64), level="export"),
                                  tmp_path / "before.svg")))
    assert texts.count("linear region, ") == 23  # 22 blocks and the head (pool -> view -> Linear)
