"""examples/repvgg_to_tensorrt.py: 22 blocks become 22 convs, then an ONNX file and a TensorRT engine.

The script itself is run once (by the ``example_runs`` fixture, with ``--size 32 --out <folder>``);
these tests check what it printed and the files it left.
"""

from __future__ import annotations

import importlib.util

import pytest

import fxrep
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


def test_runtime_detection_follows_build_engines_order():
    expected = next((name for name in ("tensorrt", "tensorrt_rtx") if importlib.util.find_spec(name)), None)
    assert example.tensorrt_runtime() == expected
