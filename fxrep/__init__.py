"""fxrep: collapse over-parameterized training-time blocks into plain, exact inference convolutions.

    gm = fxrep.optimize(model, (torch.randn(1, 3, 224, 224),))
    print(gm.fxrep_report)

The public names below are imported on first use (PEP 562), so ``import fxrep`` and the ``fxrep``
command's ``--help`` do not pay for importing torch; the errors are plain Python and load eagerly.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import CaptureError, EquivalenceError, FxrepError, InputShapeError, InvalidModelError, PassError

__version__ = "0.1.0"

_LAZY = {
    "optimize": "fxrep.optimization",
    "report_of": "fxrep.optimization",
    "explain": "fxrep.explanation",
    "Explanation": "fxrep.explanation",
    "draw": "fxrep.drawing",
    "Report": "fxrep.report",
    "PassManager": "fxrep.pass_manager",
    "Pass": "fxrep.pass_base",
    "PassResult": "fxrep.pass_base",
    "Refusal": "fxrep.pass_base",
    "CostDecision": "fxrep.pass_base",
    "Match": "fxrep.match",
    "export_onnx": "fxrep.lower",
    "check_onnx": "fxrep.lower",
    "build_engine": "fxrep.lower",
    "Engine": "fxrep.lower",
    "compile_tensorrt": "fxrep.lower",
    "LoweringError": "fxrep.lower",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'fxrep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["CaptureError", "EquivalenceError", "FxrepError", "InputShapeError", "InvalidModelError", "PassError",
           *_LAZY]
