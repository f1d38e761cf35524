"""Issue acceptance: a real TensorRT-RTX engine for fxrep's RepVGG-A0 has exactly 22 convolution layers
(the training form has 44), ONNX of both forms agrees with PyTorch, and the engine round-trips."""

from __future__ import annotations

import pytest
import torch

import fxrep
from fxrep.models import randomize_, repvgg_a0

pytest.importorskip("onnxruntime")

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def forms():
    training = randomize_(repvgg_a0(), 0).eval()
    return training, fxrep.optimize(training, X)


@pytest.mark.slow
def test_onnx_of_both_forms_matches_pytorch(forms, tmp_path):
    training, deploy = forms
    with torch.no_grad():
        scale = float(training(X).abs().max())  # random BN statistics make large logits
    for name, module in (("training", training), ("deploy", deploy)):
        path = fxrep.export_onnx(module, X, tmp_path / f"{name}.onnx")
        fxrep.check_onnx(path, module, X, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.slow
def test_engine_of_the_deploy_form_has_22_convolutions(forms, tmp_path):
    pytest.importorskip("tensorrt_rtx")
    training, deploy = forms
    engine = fxrep.build_engine(deploy, X, tmp_path / "deploy.engine", runtime="tensorrt_rtx")
    assert engine.layer_summary()["CONVOLUTION"] == 22
    training_engine = fxrep.build_engine(training, X, runtime="tensorrt_rtx")
    assert training_engine.layer_summary()["CONVOLUTION"] == 44
    loaded = fxrep.Engine.load(tmp_path / "deploy.engine")
    assert loaded.layer_summary() == engine.layer_summary()
