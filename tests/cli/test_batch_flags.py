"""``fxrep optimize``: a dynamic batch by default, ``--static-batch`` to keep the given shape, ``--dynamic-batch`` to insist."""

from __future__ import annotations

import pytest
import torch

from fxrep.cli import main
from fxrep.demo import load_optimized


def _optimize(spec: str, *extra: str) -> int:
    return main(["optimize", spec, "--input", "2x3x32x32", *extra])


@pytest.mark.parametrize("flags", [(), ("--dynamic-batch",)])
def test_the_saved_module_takes_any_batch_by_default_and_with_dynamic_batch(factory_file, tmp_path, capsys, flags):
    saved = tmp_path / "optimized.pt2"
    assert _optimize(f"{factory_file}:build", "--save", str(saved), *flags) == 0
    assert "dynamic batch: captured with a dynamic batch dimension" in capsys.readouterr().out
    loaded = load_optimized(saved)
    with torch.no_grad():
        for batch in (1, 5):
            assert loaded(torch.randn(batch, 3, 32, 32)).shape[0] == batch


def test_static_batch_keeps_the_given_shape(factory_file, tmp_path, capsys):
    saved = tmp_path / "optimized.pt2"
    assert _optimize(f"{factory_file}:build", "--save", str(saved), "--static-batch") == 0
    assert "dynamic batch" not in capsys.readouterr().out
    loaded = load_optimized(saved)
    with torch.no_grad():
        loaded(torch.randn(2, 3, 32, 32))
        with pytest.raises(AssertionError, match="Guard failed"):  # torch.export's own check in the saved program
            loaded(torch.randn(5, 3, 32, 32))


def test_static_and_dynamic_batch_exclude_each_other(factory_file, capsys):
    assert _optimize(f"{factory_file}:build", "--static-batch", "--dynamic-batch") == 2
    assert "not allowed with argument" in capsys.readouterr().err
