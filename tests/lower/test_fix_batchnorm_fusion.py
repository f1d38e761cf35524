"""The bfloat16 repair of onnxscript's Conv+BatchNorm fusion."""

from __future__ import annotations

import onnx
import torch

from fxrep.lower import export_onnx
from fxrep.lower.fix_batchnorm_fusion import restore_fused_initializer_dtypes


def test_bfloat16_export_keeps_fused_conv_weights_in_bfloat16(tmp_path, small_net, small_input):
    model = small_net.to(torch.bfloat16)

    path = export_onnx(model, small_input.to(torch.bfloat16), tmp_path / "bf16.onnx")

    proto = onnx.load(path)
    kinds = {init.name: init.data_type for init in proto.graph.initializer}
    conv_weights = [node.input[1] for node in proto.graph.node if node.op_type == "Conv"]
    assert {kinds[name] for name in conv_weights} == {onnx.TensorProto.BFLOAT16}


def test_float32_models_are_left_alone(small_net, small_input):
    program = torch.onnx.export(small_net, (small_input,), dynamo=True, verbose=False)

    assert restore_fused_initializer_dtypes(program.model) == 0
