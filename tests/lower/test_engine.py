"""Engine metadata, persistence and the no-GPU path, with made-up engine bytes (no TensorRT needed)."""

from __future__ import annotations

import json

import pytest
import torch

from fxrep.lower import Engine, LoweringError, TensorSpec


def _engine() -> Engine:
    return Engine(
        b"\x00plan bytes\xff",
        runtime="tensorrt_rtx",
        precision="fp16",
        inputs=[TensorSpec("x", (-1, 3, 8, 8), "float16", ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)))],
        outputs=[TensorSpec("y", (-1, 10), "float16")],
        layers={"CONVOLUTION": 2, "ACTIVATION": 2},
        kernels={"correlation": 2},
        runtime_version="1.7.1.116",
        build_seconds=0.25,
    )


def test_save_writes_the_plan_and_a_json_sidecar(tmp_path):
    path = _engine().save(tmp_path / "net.engine")

    assert path.read_bytes() == b"\x00plan bytes\xff"
    meta = json.loads((tmp_path / "net.engine.json").read_text())
    assert meta["runtime"] == "tensorrt_rtx" and meta["precision"] == "fp16"
    assert meta["inputs"][0] == {
        "name": "x",
        "shape": [-1, 3, 8, 8],
        "dtype": "float16",
        "profile": [[1, 3, 8, 8], [2, 3, 8, 8], [4, 3, 8, 8]],
    }
    assert meta["layers"] == {"CONVOLUTION": 2, "ACTIVATION": 2}


def test_load_restores_bytes_and_metadata(tmp_path):
    engine = _engine()
    loaded = Engine.load(engine.save(tmp_path / "net.engine"))

    assert loaded.serialized == engine.serialized
    assert loaded.metadata() == engine.metadata()
    assert loaded.inputs == engine.inputs and loaded.outputs == engine.outputs
    assert loaded.input_names == ["x"] and loaded.output_names == ["y"]
    assert loaded.layer_summary() == {"CONVOLUTION": 2, "ACTIVATION": 2}
    assert loaded.kernel_summary() == {"correlation": 2}


def test_load_without_sidecar_says_what_is_missing(tmp_path):
    (tmp_path / "net.engine").write_bytes(b"plan")
    with pytest.raises(LoweringError, match=r"net.engine.json is missing"):
        Engine.load(tmp_path / "net.engine")


def test_summaries_are_copies():
    engine = _engine()
    engine.layer_summary()["CONVOLUTION"] = 99
    assert engine.layer_summary()["CONVOLUTION"] == 2


def test_repr_shows_runtime_precision_io_and_layers():
    text = repr(_engine())
    assert text.startswith("Engine(runtime='tensorrt_rtx', precision='fp16'")
    assert "x: float16[?x3x8x8] (batch 1..4)" in text and "y: float16[?x10]" in text
    assert "CONVOLUTION=2" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the path taken without a GPU")
def test_call_without_cuda_explains_that_a_gpu_is_needed():
    with pytest.raises(LoweringError, match="needs an NVIDIA GPU with CUDA.*Engine.load"):
        _engine()(torch.randn(1, 3, 8, 8))
