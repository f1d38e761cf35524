"""examples/repvgg_to_tensorrt.py: 22 blocks become 22 convs, then an ONNX file and a TensorRT engine.

The script itself is run once (by the ``example_runs`` fixture, with ``--size 32 --out <folder>``);
these tests check what it printed and the files it left.
"""

from __future__ import annotations

import sys
import types
from importlib.machinery import ModuleSpec

import pytest

import fxrep
from fxrep.lower.errors import LoweringError
from fxrep.lower.tensorrt_runtime import RUNTIMES, import_runtime
from tests.examples.conftest import load_example

example = load_example("repvgg_to_tensorrt")


@pytest.fixture(scope="module")
def run(example_runs):
    finished = example_runs["repvgg_to_tensorrt"].finish()
    assert finished.returncode == 0, finished.output
    return finished


@pytest.mark.slow
def test_every_block_becomes_one_plain_conv(run):
    assert "44 convs + 61 BatchNorms -> 22 convs" in run.output
    assert "verification: passed" in run.output


@pytest.mark.slow
def test_onnx_file_has_22_convs(run):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(run.folder / "repvgg_a0.onnx"))
    kinds = [node.op_type for node in model.graph.node]
    assert kinds.count("Conv") == 22 and "BatchNormalization" not in kinds
    assert "matches PyTorch in onnxruntime" in run.output


@pytest.mark.slow
def test_engine_has_22_convolution_layers(run):
    if example.tensorrt_runtime() is None:
        assert "no runtime installed" in run.output
        pytest.skip("no TensorRT runtime (tensorrt or tensorrt_rtx) is installed")
    engine = fxrep.Engine.load(run.folder / "repvgg_a0.engine")
    assert engine.layer_summary()["CONVOLUTION"] == 22
    assert "22 convolution layers" in run.output


@pytest.mark.parametrize("installed", [(), ("tensorrt",), ("tensorrt_rtx",), ("tensorrt", "tensorrt_rtx")])
def test_runtime_detection_agrees_with_build_engine(monkeypatch, installed):
    """With each set of runtimes importable, the example names the one ``build_engine(runtime="auto")`` uses."""
    for name in RUNTIMES:
        if name in installed:
            fake = types.ModuleType(name)
            fake.__spec__ = ModuleSpec(name, None)
            monkeypatch.setitem(sys.modules, name, fake)
        else:
            monkeypatch.setitem(sys.modules, name, None)  # find_spec gives None, import raises ImportError
    try:
        chosen = import_runtime("auto")[0]
    except LoweringError:
        chosen = None
    assert example.tensorrt_runtime() == chosen
    assert chosen == (installed[0] if installed else None)
