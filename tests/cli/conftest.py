"""A tiny factory module written to a temporary directory, for ``fxrep optimize`` to import."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

FACTORY_SOURCE = textwrap.dedent(
    '''
    import torch
    from torch import nn

    from fxrep.models import RepVGGBlock, randomize_


    def build():
        """Two RepVGG blocks in training form with random BatchNorm statistics."""
        return randomize_(nn.Sequential(RepVGGBlock(3, 8, stride=2), RepVGGBlock(8, 8)), 0)


    def not_a_module():
        return 3


    def broken():
        raise RuntimeError("the factory needs a config file")


    def with_nan():
        model = build()
        with torch.no_grad():
            model[0].rbr_dense.bn.running_var[0] = float("nan")
        return model
    '''
)


@pytest.fixture
def factory_file(tmp_path: Path) -> Path:
    """``tiny_factory.py`` with ``build`` (a valid factory) and several broken ones."""
    path = tmp_path / "tiny_factory.py"
    path.write_text(FACTORY_SOURCE)
    return path
