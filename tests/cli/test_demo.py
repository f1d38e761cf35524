"""``fxrep demo --quick``: report, latency table and the files it writes (slow: it optimizes RepVGG-A0)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from fxrep.cli import main
from fxrep.demo import load_optimized


@pytest.mark.slow
def test_quick_demo_prints_report_and_latency_and_writes_files(tmp_path, capsys):
    assert main(["demo", "--quick", "--output", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    assert "fxrep report" in out and "verification: passed" in out
    latency_rows = {line.split("  ")[0]: line for line in out.splitlines()
                    if line.startswith(("training form", "fxrep  ", "official deploy conversion"))}
    assert set(latency_rows) == {"training form", "fxrep", "official deploy conversion"}
    assert latency_rows["training form"].split()[2] == "44"
    assert latency_rows["fxrep"].split()[1] == "22"
    assert " ms" in latency_rows["fxrep"]

    deploy = load_optimized(tmp_path / "repvgg_a0_fxrep.pt2")
    assert sum(1 for node in deploy.graph.nodes if "conv" in str(node.target)) == 22
    assert deploy(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
    assert (tmp_path / "report.json").is_file()
    if importlib.util.find_spec("onnxscript"):
        assert (tmp_path / "repvgg_a0_fxrep.onnx").is_file()
    else:
        assert "skipped ONNX export" in out
    if importlib.util.find_spec("tensorrt_rtx") or importlib.util.find_spec("tensorrt"):
        assert (tmp_path / "repvgg_a0_fxrep.engine").is_file()
        assert "CONVOLUTION 22" in out
    else:
        assert "skipped TensorRT engine" in out
