"""export_onnx / check_onnx on the three forms fxrep hands over, plus dynamic batch and error paths."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from fxrep.lower import LoweringError, check_onnx, export_onnx


def _capture(net: nn.Module, example: torch.Tensor, form: str, dynamic: bool = False) -> nn.Module:
    if form == "module":
        return net
    if form == "symbolic_trace":
        return torch.fx.symbolic_trace(net)
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    exported = torch.export.export(net, (example,), dynamic_shapes=shapes, strict=False)
    return exported.run_decompositions({}).module()


@pytest.mark.parametrize("form", ["module", "symbolic_trace", "torch_export"])
def test_export_matches_pytorch_in_onnxruntime(tmp_path, small_net, small_input, form):
    model = _capture(small_net, small_input, form)

    path = export_onnx(model, small_input, tmp_path / "net.onnx")

    assert path == tmp_path / "net.onnx" and path.is_file()
    assert check_onnx(path, model, small_input, rtol=1e-4, atol=1e-5) < 1e-4
    ops = [node.op_type for node in onnx.load(path).graph.node]
    assert ops.count("Conv") == 4  # the exporter folds the stem's BatchNorm into its Conv
    assert "BatchNormalization" not in ops


def test_export_uses_inference_mode_and_restores_training_flags(tmp_path, small_net, small_input):
    small_net.train()

    path = export_onnx(small_net, (small_input,), tmp_path / "net.onnx")

    assert all(m.training for m in small_net.modules())
    check_onnx(path, small_net, small_input)  # compares with the module in eval mode
    assert all(m.training for m in small_net.modules())


@pytest.mark.parametrize("form", ["module", "torch_export"])
def test_dynamic_batch_runs_at_other_batch_sizes(tmp_path, small_net, small_input, form):
    model = _capture(small_net, small_input, form, dynamic=True)

    path = export_onnx(model, small_input, tmp_path / "net.onnx", dynamic_batch=True)

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, 3, 16, 16)
        (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        torch.testing.assert_close(torch.from_numpy(out), small_net(x), rtol=1e-4, atol=1e-5)
        check_onnx(path, small_net, x)


def test_dynamic_batch_of_a_graph_captured_with_a_fixed_batch_is_refused(tmp_path, small_net, small_input):
    # torch.export without dynamic_shapes bakes the batch into the flatten's view: [2, 16].
    model = _capture(small_net, small_input, "torch_export", dynamic=False)

    with pytest.raises(LoweringError, match="fixes the batch size.*dynamic_shapes"):
        export_onnx(model, small_input, tmp_path / "net.onnx", dynamic_batch=True)


def test_check_onnx_reports_a_mismatch(small_onnx):
    path, net, example = small_onnx
    changed = type(net)()
    changed.load_state_dict(net.state_dict())
    with torch.no_grad():
        changed.head.bias.add_(0.5)

    with pytest.raises(LoweringError, match=r"disagrees with PyTorch on output 0 .*max abs error 0\.5"):
        check_onnx(path, changed.eval(), example)


def test_check_onnx_reports_a_wrong_number_of_inputs(small_onnx):
    path, net, example = small_onnx
    with pytest.raises(LoweringError, match="takes 1 inputs .* 2 example inputs"):
        check_onnx(path, net, (example, example))


def test_export_failure_names_the_stage_and_what_to_do(tmp_path):
    class DataDependent(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x - 1

    with pytest.raises(LoweringError, match="while capturing the graph with torch.export.*What to do"):
        export_onnx(DataDependent(), torch.randn(2, 3), tmp_path / "bad.onnx")


def test_example_inputs_must_be_tensors(tmp_path, small_net):
    with pytest.raises(TypeError, match="example_inputs"):
        export_onnx(small_net, [3.0], tmp_path / "net.onnx")


@pytest.mark.slow
def test_resnet18_export_matches_pytorch(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)

    path = export_onnx(model, x, tmp_path / "resnet18.onnx")

    assert check_onnx(path, model, x, rtol=1e-3, atol=1e-4) < 1e-3
