"""fxrep: collapse over-parameterized training-time blocks into plain, exact inference convolutions.

    gm = fxrep.optimize(model, (torch.randn(1, 3, 224, 224),))
    print(gm.fxrep_report)

Lowering (`export_onnx`, `build_engine`, `Engine`, `compile_tensorrt`) is imported on first use so
``import fxrep`` stays light.
"""

from __future__ import annotations

from typing import Any

from .errors import CaptureError, EquivalenceError, FxrepError, InvalidModelError, PassError
from .draw import draw
from .explain import Explanation, explain
from .optimize import optimize, report_of
from .pass_base import CostDecision, Match, Pass, PassResult, Refusal
from .pass_manager import PassManager
from .report import Report

__version__ = "0.1.0"

_LAZY = {
    "export_onnx": "fxrep.lower",
    "check_onnx": "fxrep.lower",
    "build_engine": "fxrep.lower",
    "Engine": "fxrep.lower",
    "compile_tensorrt": "fxrep.lower",
    "LoweringError": "fxrep.lower",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fxrep' has no attribute {name!r}")


__all__ = [
    "CaptureError",
    "CostDecision",
    "EquivalenceError",
    "Explanation",
    "FxrepError",
    "InvalidModelError",
    "Match",
    "Pass",
    "PassError",
    "PassManager",
    "PassResult",
    "Refusal",
    "Report",
    "draw",
    "explain",
    "optimize",
    "report_of",
    *_LAZY,
]
