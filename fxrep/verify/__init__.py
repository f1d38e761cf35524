"""Verification: is the optimized module the model, and if a value differs, which rewrite made it?

Two checks run on every `fxrep.optimize` with example inputs (on them, on ``random_inputs``
random sets of the same shapes, and at another batch size for a dynamic batch):

- **Local translation validation** (`fxrep.verify.local`): every rewritten region of the passes'
  graph is checked on its own. The captured graph from before the passes runs once per input set
  and records only the values at the regions' entries and exits (`fxrep.verify.correspondence`);
  the rewritten graph then runs with each node that stands for an original node overwritten by the
  original's value, so each region computes its exits from exactly the original values at its
  entries and is compared there within the dtype tolerance (float64 reference for a region that
  fails: rounding of an ill-conditioned region is a warning, not an error). A failing region is an
  `EquivalenceError` naming it: nodes, module path, the pass and rule that wrote it
  (`fxrep.verify.regions`), never a pass whose regions all passed.
- **End to end** (`fxrep.verify.outputs`): the returned module's outputs against the model's.

The rule when every region passed but the outputs differ beyond the tolerance
(`fxrep.verify.divergence`, `fxrep.verify.check`):

1. the returned (lean) module differs from the passes' module: an error blaming the final stage;
2. the captured graph differs from the model: an error blaming the capture;
3. the difference flows through a discrete op (``topk``, ``sort``, ``argmax``, comparisons,
   ``nonzero``, casts to integers, ...) whose inputs still match within the tolerance, and with the
   original's choices pinned the outputs match: a **warning** in the report naming the first op that
   chose differently, the difference before it, and that the optimized model is exact up to it;
4. evaluated in float64 (discrete choices pinned), the optimized module is no farther from the exact
   result than `outputs.ROUNDING_FACTOR` times the original model itself: the model amplifies
   rounding, a **warning** with the amplification;
5. anything else: an error that blames no pass (a real mismatch is never passed silently).

``optimize(..., strict=True)`` makes every warning an error.
"""

from __future__ import annotations

from .check import Rewritten, VerifySettings, check_rewrite, equivalence_error, snapshot
from .correspondence import Correspondence, correspond
from .divergence import Divergence, Flip, Float64Comparison, is_discrete
from .local import LocalCheck, local_check
from .outputs import (
    TOLERANCES,
    OutputError,
    Verification,
    compare,
    input_sets,
    random_like,
    reference_outputs,
    tolerance_for,
    value_error,
    verify,
)
from .regions import Region, RegionResult

__all__ = [
    "TOLERANCES",
    "Correspondence",
    "Divergence",
    "Flip",
    "Float64Comparison",
    "LocalCheck",
    "OutputError",
    "Region",
    "RegionResult",
    "Rewritten",
    "Verification",
    "VerifySettings",
    "check_rewrite",
    "compare",
    "correspond",
    "equivalence_error",
    "input_sets",
    "is_discrete",
    "local_check",
    "random_like",
    "reference_outputs",
    "snapshot",
    "tolerance_for",
    "value_error",
    "verify",
]
