"""The final stage of `fxrep.optimize`: the returned module's forward, written for speed ("lean forward").

After the passes and before verification (which checks the module actually returned), the
optimized graph becomes a plain ``torch.fx.GraphModule`` whose generated ``forward``

- calls each op through its fastest equivalent entry point instead of the ``torch.ops.aten``
  OpOverload wrapper (`entry_points`: ``torch.conv2d``, ``x.view(1, 128)``, ...; each entry is
  tested to dispatch the same ATen ops and return identical tensors);
- writes element-wise ops whose input dies at them in place when alias analysis proves nothing can
  observe it (`reinplace`: never a model input, parameter, buffer, a view of a live tensor, or a
  value read again);
- reads each parameter and buffer once through a flat attribute, and checks the input shapes with
  one comparison instead of calling torch.export's ``_guards_fn`` (`input_check`: a mismatch is an
  `fxrep.InputShapeError` naming the captured shape and what to pass).

The graph itself is not changed: it stays the functional ATen graph of the passes, so reports,
pictures, ``torch.export`` (``.pt2``), ONNX and TensorRT see exactly what verification saw; only its
code is written differently (`codegen.LeanCodeGen`), and again after any ``recompile()``.
"""

from __future__ import annotations

from .codegen import LeanCodeGen, lean_graph
from .entry_points import ENTRY_POINTS, EntryPoint, entry_point
from .input_check import InputCheck, InputSpec, input_check_for
from .reinplace import REINPLACEABLE, in_place_plan
from .stage import LeanSummary, make_lean, summarize

__all__ = [
    "ENTRY_POINTS",
    "REINPLACEABLE",
    "EntryPoint",
    "InputCheck",
    "InputSpec",
    "LeanCodeGen",
    "LeanSummary",
    "entry_point",
    "in_place_plan",
    "input_check_for",
    "lean_graph",
    "make_lean",
    "summarize",
]
