"""docs/custom_passes.md: every ```python block runs, in order, in one namespace."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "custom_passes.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_the_doc_has_code():
    assert len(python_blocks(DOC.read_text())) >= 8


@pytest.mark.slow
def test_every_python_block_runs_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    module = types.ModuleType("fxrep_docs_custom_passes")  # a real module: dataclasses look theirs up
    sys.modules[module.__name__] = module
    try:
        for index, block in enumerate(python_blocks(DOC.read_text()), start=1):
            code = compile(block, f"{DOC.name} (python block {index})", "exec")
            exec(code, module.__dict__)
    finally:
        del sys.modules[module.__name__]
    assert "fuse_hardswish" in capsys.readouterr().out
