"""Runtime selection and precision handling facts of the installed TensorRT-RTX."""

from __future__ import annotations

import sys

import pytest

from fxrep.lower import LoweringError
from fxrep.lower.tensorrt_runtime import (
    import_runtime,
    network_creation_flags,
    precision_builder_flag,
    torch_dtype_name,
    uses_precision_flags,
)


def test_unknown_runtime_names_the_choices():
    with pytest.raises(ValueError, match=r"\('auto', 'tensorrt', 'tensorrt_rtx'\)"):
        import_runtime("tvm")


def test_no_runtime_at_all_names_both_pip_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    with pytest.raises(LoweringError, match="pip install tensorrt or pip install tensorrt-rtx-cu13"):
        import_runtime("auto")


def test_tensorrt_rtx_networks_are_strongly_typed_without_precision_flags():
    trt = pytest.importorskip("tensorrt_rtx")
    assert not uses_precision_flags(trt)  # no BuilderFlag.FP16 / BF16 in TensorRT-RTX
    flags = network_creation_flags(trt, strongly_typed=True)
    assert flags == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    # Even without asking, a TensorRT-RTX network is strongly typed.
    network = trt.Builder(trt.Logger(trt.Logger.ERROR)).create_network(0)
    assert network.get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def test_precision_flag_of_a_weakly_typed_tensorrt():
    class FakeTensorRT:
        class BuilderFlag:
            FP16 = "fp16 flag"

        __version__ = "10.0"

    assert precision_builder_flag(FakeTensorRT, "fp32") is None
    assert precision_builder_flag(FakeTensorRT, "fp16") == "fp16 flag"
    with pytest.raises(LoweringError, match="no BuilderFlag.BF16"):
        precision_builder_flag(FakeTensorRT, "bf16")


def test_tensorrt_data_types_map_to_torch_dtype_names():
    trt = pytest.importorskip("tensorrt_rtx")
    assert [torch_dtype_name(t) for t in (trt.float32, trt.float16, trt.bfloat16, trt.int64)] == [
        "float32",
        "float16",
        "bfloat16",
        "int64",
    ]
