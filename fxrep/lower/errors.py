"""The one error type the lowering layer raises for failures of the model, not of the caller.

Wrong arguments (an unknown runtime name, a malformed batch range) raise ``ValueError`` or
``TypeError``. Everything that goes wrong while turning a model into ONNX or a TensorRT engine, or
while running an engine, raises :class:`LoweringError` with a message that names the cause (the
failing ONNX node, the builder's own log, the missing package) and what to do about it.
"""

from __future__ import annotations

__all__ = ["LoweringError"]


class LoweringError(RuntimeError):
    """Export, parsing, engine building or engine execution failed; the message says why."""
