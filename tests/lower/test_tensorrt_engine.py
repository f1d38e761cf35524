"""build_engine with TensorRT-RTX, whose builder runs on this CPU-only machine.

Layer counting, as established here with TensorRT-RTX 1.7: ``Engine.layer_summary()`` comes from
the INetworkDefinition the ONNX parser fills, one layer per ONNX node before any fusion, so each
Conv is one CONVOLUTION layer and each Relu a separate ACTIVATION layer (the parser adds
CONSTANT/SHUFFLE helpers for Gemm). The builder then compiles the whole graph into one Myelin
layer; its kernel list (``kernel_summary()``) has one "correlation" kernel per convolution and no
activation kernel: the ReLUs are fused into the convolutions there.
"""

from __future__ import annotations

import sys
import warnings

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from fxrep.lower import Engine, LoweringError, build_engine

trt = pytest.importorskip("tensorrt_rtx")


def test_fp32_engine_from_a_module_has_one_convolution_layer_per_conv(small_net, small_input, conv_count):
    engine = build_engine(small_net, small_input, runtime="tensorrt_rtx")

    layers = engine.layer_summary()
    assert layers["CONVOLUTION"] == conv_count(small_net) == 4  # BatchNorm was folded, not a layer
    assert layers["ACTIVATION"] == 3  # not fused at the network level
    kernels = engine.kernel_summary()
    assert kernels["correlation"] == 4  # one compiled convolution kernel per conv ...
    assert not any(
        "activation" in kind.lower() or "relu" in kind.lower() for kind in kernels
    )  # ... ReLU fused in
    assert (engine.runtime, engine.precision) == ("tensorrt_rtx", "fp32")
    assert [(s.name, s.shape, s.dtype, s.profile) for s in engine.inputs] == [
        ("x", (2, 3, 16, 16), "float32", None)
    ]
    assert [(s.shape, s.dtype) for s in engine.outputs] == [((2, 10), "float32")]
    assert engine.build_seconds > 0 and len(engine.serialized) > 10_000


@pytest.mark.parametrize("form", ["symbolic_trace", "torch_export"])
def test_engine_from_fx_graph_modules(small_net, small_input, conv_count, form):
    if form == "symbolic_trace":
        graph_module = torch.fx.symbolic_trace(small_net)
    else:
        graph_module = (
            torch.export.export(small_net, (small_input,), strict=False).run_decompositions({}).module()
        )

    engine = build_engine(graph_module, small_input, runtime="tensorrt_rtx")

    assert engine.layer_summary()["CONVOLUTION"] == conv_count(small_net)


@pytest.mark.parametrize(("precision", "dtype"), [("fp16", "float16"), ("bf16", "bfloat16")])
def test_reduced_precision_exports_the_module_in_that_dtype(small_net, small_input, precision, dtype):
    # TensorRT-RTX networks are strongly typed: the ONNX model's types are the engine's types.
    engine = build_engine(small_net, small_input, runtime="tensorrt_rtx", precision=precision)

    assert engine.precision == precision
    assert [s.dtype for s in engine.inputs + engine.outputs] == [dtype, dtype]
    assert engine.layer_summary()["CONVOLUTION"] == 4
    assert all(p.dtype == torch.float32 for p in small_net.parameters())  # the caller's model is untouched


def test_weights_stored_as_external_data_are_read(tmp_path, small_net, small_input, monkeypatch):
    from fxrep.lower import check_onnx, export_onnx, onnx_export

    monkeypatch.setattr(onnx_export, "_EXTERNAL_DATA_BYTES", 0)  # as for a model over 1 GiB
    path = export_onnx(small_net, small_input, tmp_path / "net.onnx")
    assert [p.name for p in tmp_path.iterdir() if p.name != "net.onnx"]  # the weights file beside it
    check_onnx(path, small_net, small_input)

    engine = build_engine(path, small_input, runtime="tensorrt_rtx")

    assert engine.layer_summary()["CONVOLUTION"] == 4


def test_reduced_precision_of_an_fp32_onnx_file_is_refused(small_onnx):
    path, _, example = small_onnx
    with pytest.raises(LoweringError, match="precision='fp16'.*computes in float32.*strongly typed"):
        build_engine(path, example, runtime="tensorrt_rtx", precision="fp16")


def test_dynamic_batch_builds_one_profile_over_dimension_0(small_net, small_input):
    engine = build_engine(small_net, small_input, runtime="tensorrt_rtx", dynamic_batch=(1, 4, 8))

    (spec,) = engine.inputs
    assert spec.shape == (-1, 3, 16, 16)
    assert spec.profile == ((1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))
    assert engine.outputs[0].shape == (-1, 10)


def test_dynamic_batch_needs_a_dynamic_onnx_file(small_onnx):
    path, _, example = small_onnx
    with pytest.raises(LoweringError, match="input 'x' .* has a fixed batch size"):
        build_engine(path, example, runtime="tensorrt_rtx", dynamic_batch=(1, 2, 4))


def test_save_and_load_round_trip(tmp_path, small_engine):
    path = small_engine.save(tmp_path / "engines" / "small.engine")

    loaded = Engine.load(path)

    assert (tmp_path / "engines" / "small.engine.json").is_file()
    assert loaded.serialized == small_engine.serialized
    assert loaded.metadata() == small_engine.metadata()
    assert loaded.inputs == small_engine.inputs and loaded.layer_summary() == small_engine.layer_summary()


def test_path_argument_saves_the_engine(tmp_path, small_onnx):
    onnx_path, _, example = small_onnx

    engine = build_engine(onnx_path, example, tmp_path / "small.engine", runtime="tensorrt_rtx")

    assert Engine.load(tmp_path / "small.engine").serialized == engine.serialized


def test_auto_picks_tensorrt_rtx_when_tensorrt_is_absent(small_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on this machine: import tensorrt fails
    path, _, example = small_onnx

    assert build_engine(path, example, runtime="auto").runtime == "tensorrt_rtx"


def test_missing_runtime_names_the_pip_package(small_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    path, _, example = small_onnx
    with pytest.raises(LoweringError, match="pip install tensorrt-rtx-cu13"):
        build_engine(path, example, runtime="tensorrt_rtx")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"runtime": "onnxruntime"}, r"runtime must be one of \('auto', 'tensorrt', 'tensorrt_rtx'\)"),
        ({"precision": "int8"}, r"precision must be one of \('fp32', 'fp16', 'bf16'\)"),
        ({"dynamic_batch": (4, 2, 8)}, r"1 <= min <= opt <= max"),
        ({"dynamic_batch": 8}, r"\(min, opt, max\)"),
    ],
)
def test_bad_options_raise_value_error_naming_the_allowed_values(small_onnx, options, message):
    path, _, example = small_onnx
    with pytest.raises(ValueError, match=message):
        build_engine(path, example, **options)


def test_unparseable_file_names_the_cause(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"this is not an ONNX model")

    with pytest.raises(LoweringError, match="garbage.onnx is not a valid ONNX model"):
        build_engine(path, runtime="tensorrt_rtx")


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(LoweringError, match="does not exist"):
        build_engine(tmp_path / "missing.onnx", runtime="tensorrt_rtx")


def test_unsupported_op_names_the_node_and_the_op(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["h"], name="relu0"),
            helper.make_node("FancyOp", ["h"], ["y"], name="my_fancy", domain="com.example"),
        ],
        "custom",
        [x],
        [y],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    onnx.save(model, tmp_path / "custom.onnx")

    with pytest.raises(
        LoweringError, match=r"node 1 'my_fancy' \(op FancyOp\): INVALID_NODE: .*Plugin not found"
    ):
        build_engine(tmp_path / "custom.onnx", runtime="tensorrt_rtx")


def test_builder_failure_quotes_the_builder_errors(small_onnx):
    path, _, example = small_onnx
    with pytest.raises(LoweringError, match="could not build an engine .*workspace limit"):
        build_engine(path, example, runtime="tensorrt_rtx", workspace=1)


def test_workspace_limit_is_applied(small_onnx):
    path, _, example = small_onnx
    assert build_engine(path, example, runtime="tensorrt_rtx", workspace=1 << 30).layer_summary()


def test_timing_cache_is_ignored_by_tensorrt_rtx_with_a_warning(tmp_path, small_onnx):
    path, _, example = small_onnx
    with pytest.warns(UserWarning, match="is ignored: tensorrt_rtx has no timing cache"):
        build_engine(path, example, runtime="tensorrt_rtx", timing_cache=tmp_path / "timing.cache")
    assert not (tmp_path / "timing.cache").exists()


def test_progress_goes_to_stderr_only_when_asked(small_onnx, capsys):
    path, _, example = small_onnx
    build_engine(path, example, runtime="tensorrt_rtx")
    assert capsys.readouterr().err == ""

    build_engine(path, example, runtime="tensorrt_rtx", progress=True)

    err = capsys.readouterr().err
    assert "Building engine: started" in err and "engine built in" in err


def test_engine_call_without_cuda_says_a_gpu_is_needed(small_engine, small_onnx):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(LoweringError, match="needs an NVIDIA GPU.*engine.save"):
        small_engine(small_onnx[2])


def test_repr_shows_runtime_precision_io_and_layers(small_engine):
    text = repr(small_engine)
    assert "runtime='tensorrt_rtx'" in text and "precision='fp32'" in text
    assert "x: float32[2x3x16x16]" in text and "CONVOLUTION=4" in text


def test_a_plain_build_emits_no_python_warnings(small_onnx):
    path, _, example = small_onnx
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_engine(path, example, runtime="tensorrt_rtx")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-3), ("fp16", 2e-2)])
def test_engine_runs_and_matches_pytorch(small_net, precision, tolerance):
    engine = build_engine(
        small_net, torch.randn(2, 3, 16, 16), runtime="auto", precision=precision, dynamic_batch=(1, 2, 4)
    )
    x = torch.randn(3, 3, 16, 16)

    out = engine(x.cuda())

    torch.testing.assert_close(out.float().cpu(), small_net(x), rtol=tolerance, atol=tolerance)
