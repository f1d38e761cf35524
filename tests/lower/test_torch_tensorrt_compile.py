"""compile_tensorrt: its error paths run anywhere; the compile itself needs a GPU and torch_tensorrt."""

from __future__ import annotations

import sys

import pytest
import torch

from fxrep.lower import LoweringError, compile_tensorrt


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the path taken without a GPU")
def test_without_cuda_points_to_ahead_of_time_builds(small_net, small_input):
    with pytest.raises(LoweringError, match="needs an NVIDIA GPU.*build_engine"):
        compile_tensorrt(small_net, small_input)


def test_missing_torch_tensorrt_names_the_pip_package(small_net, small_input, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    with pytest.raises(LoweringError, match="pip install torch-tensorrt"):
        compile_tensorrt(small_net, small_input)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_compiled_module_matches_pytorch(small_net, small_input):
    pytest.importorskip("torch_tensorrt")
    compiled = compile_tensorrt(small_net, small_input, min_block_size=1)

    out = compiled(small_input.cuda())

    torch.testing.assert_close(out.cpu(), small_net(small_input), rtol=1e-3, atol=1e-3)
