"""``fxrep optimize MODULE:FACTORY``: error paths (exit 2 or 1, with the cause) and real runs on a tiny factory."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

from fxrep.cli import main
from fxrep.demo import load_optimized


def _optimize(spec: str, *extra: str) -> int:
    return main(["optimize", spec, "--input", "1x3x32x32", *extra])


@pytest.fixture
def restore_sys_path(monkeypatch):
    """Dotted imports put the working directory on sys.path; undo it after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.mark.parametrize(("factory", "message"), [
    ("missing", "has no attribute 'missing'; its callables: broken, build, not_a_module, with_nan"),
    ("not_a_module", "returned int (3), not a torch.nn.Module"),
    ("broken", "raised RuntimeError: the factory needs a config file"),
])
def test_factory_problems_exit_2_naming_the_cause(factory_file, capsys, factory, message):
    assert _optimize(f"{factory_file}:{factory}") == 2
    assert message in capsys.readouterr().err


def test_dotted_module_is_imported_from_the_working_directory(factory_file, monkeypatch, capsys, restore_sys_path):
    monkeypatch.chdir(factory_file.parent)
    monkeypatch.delitem(sys.modules, "tiny_factory", raising=False)
    assert _optimize("tiny_factory:not_a_module") == 2
    assert "tiny_factory:not_a_module() returned int" in capsys.readouterr().err


def test_missing_module_and_file_exit_2(tmp_path, capsys, restore_sys_path):
    assert _optimize("no_such_module_anywhere:build") == 2
    assert "cannot import 'no_such_module_anywhere'" in capsys.readouterr().err
    assert _optimize(f"{tmp_path / 'absent.py'}:build") == 2
    assert "absent.py: no such file" in capsys.readouterr().err


def test_missing_onnx_names_the_pip_extra(factory_file, capsys, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "onnxscript" else real_find_spec(name, *args))
    assert _optimize(f"{factory_file}:build", "--onnx", "out.onnx") == 2
    assert 'onnxscript not installed (pip install "fxrep[onnx]")' in capsys.readouterr().err


def test_missing_tensorrt_names_the_pip_extra(factory_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    assert _optimize(f"{factory_file}:build", "--engine", "out.engine") == 2
    assert 'pip install "fxrep[tensorrt-rtx]"' in capsys.readouterr().err


def test_fxrep_errors_exit_1_with_their_message(factory_file, capsys):
    assert _optimize(f"{factory_file}:with_nan") == 1
    err = capsys.readouterr().err
    assert "InvalidModelError" in err and "contains NaN" in err


def test_writes_report_and_a_loadable_module(factory_file, tmp_path, capsys):
    report_path, saved_path = tmp_path / "r.json", tmp_path / "optimized.pt2"

    assert _optimize(f"{factory_file}:build", "--report", str(report_path), "--save", str(saved_path)) == 0

    out = capsys.readouterr().out
    assert "fxrep report" in out and "verification: passed" in out
    report = json.loads(report_path.read_text())
    assert report["ops_after"]["conv"] == 2 and "batchnorm" not in report["ops_after"]
    spec = importlib.util.spec_from_file_location("tiny_factory", factory_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_optimized(saved_path)(x), module.build().eval()(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_full_run_writes_onnx_engine_and_pictures(factory_file, tmp_path, capsys):
    pytest.importorskip("onnxscript")
    out_dir = tmp_path / "out"
    args = ["--report", str(out_dir / "r.json"), "--onnx", str(out_dir / "o.onnx"), "--dynamic-batch"]
    have_engine = importlib.util.find_spec("tensorrt_rtx") or importlib.util.find_spec("tensorrt")
    have_pictures = importlib.util.find_spec("matplotlib") and importlib.util.find_spec("fxrep.drawing")
    if have_engine:
        args += ["--engine", str(out_dir / "e.engine")]
    if have_pictures:
        args += ["--pictures", str(out_dir / "pictures")]

    assert _optimize(f"{factory_file}:build", *args) == 0

    out = capsys.readouterr().out
    assert (out_dir / "r.json").is_file() and (out_dir / "o.onnx").is_file()
    if importlib.util.find_spec("onnxruntime"):
        assert "checked with onnxruntime" in out
    if have_engine:
        metadata = json.loads((out_dir / "e.engine.json").read_text())
        assert metadata["layers"]["CONVOLUTION"] == 2
        assert "CONVOLUTION 2" in out
    if have_pictures:
        assert (out_dir / "pictures" / "before.png").is_file() and (out_dir / "pictures" / "after.png").is_file()
