"""``--pictures`` and the demo's pictures: large graphs get an overview and parts, and a picture problem only warns."""

from __future__ import annotations

import pytest
import torch

import fxrep.demo
import fxrep.drawing
from fxrep.cli import main
from fxrep.models import RepVGGBlock, randomize_


def _optimize(spec: str, *extra: str) -> int:
    return main(["optimize", spec, "--input", "1x3x32x32", *extra])


def test_a_drawing_error_warns_and_the_run_succeeds_with_its_other_outputs(factory_file, tmp_path, capsys,
                                                                            monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the layout went wrong")

    monkeypatch.setattr(fxrep.demo, "draw_pictures", broken)
    report = tmp_path / "r.json"
    assert _optimize(f"{factory_file}:build", "--pictures", str(tmp_path / "pictures"), "--report", str(report)) == 0
    err = capsys.readouterr().err
    assert "warning: no pictures drawn (RuntimeError: the layout went wrong)" in err
    assert report.is_file()


def test_missing_matplotlib_warns_naming_the_extra_and_the_run_succeeds(factory_file, tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(fxrep.demo, "pictures_unavailable", lambda: 'matplotlib not installed (pip install "fxrep[draw]")')
    assert _optimize(f"{factory_file}:build", "--pictures", str(tmp_path / "pictures")) == 0
    assert 'no pictures drawn (matplotlib not installed (pip install "fxrep[draw]"))' in capsys.readouterr().err
    assert not (tmp_path / "pictures").exists()


def test_a_graph_too_large_for_one_picture_gets_an_overview_and_its_parts(factory_file, tmp_path, capsys,
                                                                           monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(fxrep.drawing, "MAX_NODES", 10)  # the factory's 2 blocks have 16 ops before, 4 after
    assert _optimize(f"{factory_file}:build", "--pictures", str(tmp_path / "pictures")) == 0
    out = capsys.readouterr().out
    names = sorted(path.name for path in (tmp_path / "pictures").iterdir())
    assert names == ["after.png", "before-1-0.png", "before-2-1.png", "before.png"]
    assert "before.png (overview grouped by module) + 2 pictures of its parts, after.png" in out


def test_the_demo_skips_pictures_with_the_reason_when_drawing_fails(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise MemoryError("no room for the figure")

    monkeypatch.setattr(fxrep.demo, "draw_pictures", broken)
    monkeypatch.setattr(fxrep.demo, "onnx_unavailable", lambda: "not needed here")
    model = randomize_(RepVGGBlock(3, 4), 0).eval()
    example = (torch.randn(1, 3, 16, 16),)
    optimized = fxrep.optimize(model, example, dynamic_batch=True)
    files, skipped = fxrep.demo._write_artifacts(model, optimized, example, tmp_path)
    assert skipped["pictures"] == "MemoryError: no room for the figure"
    assert "skipped pictures: MemoryError: no room for the figure" in capsys.readouterr().out
    assert files["deploy module"].is_file() and files["report"].is_file()
