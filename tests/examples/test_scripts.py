"""Every script in examples/ runs as a user would run it: ``python examples/<name>.py``, and says what it did."""

from __future__ import annotations

import pytest

from tests.examples.conftest import EXAMPLES, example_names

EXPECTED_OUTPUT = {
    "fold_layerscale": ["fold_layerscale fired 2 times", "mul ops 2 -> 0", "feeds 2 users"],
    "fuse_hardswish": ["torch.export (non-strict): fuse_hardswish fired 3 times",
                       "torch.fx.symbolic_trace: fuse_hardswish fired 3 times"],
    "fuse_custom_block": ["2 MixtureConv blocks left", "conv kernels after: [(3, 3), (5, 5), (3, 3)]"],
    "repvgg_to_tensorrt": ["44 convs + 61 BatchNorms -> 22 convs", "matches PyTorch in onnxruntime"],
}


def test_every_example_is_covered():
    assert sorted(EXPECTED_OUTPUT) == example_names()


def test_scripts_say_how_to_run_them():
    for name in example_names():
        assert f"python examples/{name}.py" in (EXAMPLES / f"{name}.py").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", example_names())
def test_example_script_runs(name: str, example_runs) -> None:
    run = example_runs[name].finish()
    assert run.returncode == 0, run.output
    for expected in [*EXPECTED_OUTPUT[name], "max abs error"]:
        assert expected in run.output, run.output
