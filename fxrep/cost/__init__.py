"""Cost: how long an op takes, so a rewrite is applied only where it pays.

- `signatures`: what one op computes at which shapes (`ConvSignature`, `PoolSignature`,
  `ElementwiseSignature`), hashable, the key of every cost question.
- `model`: the analytic `CostModel` (MACs, bytes, per-op overhead) and the constants of each
  `Target` (`CPU`, `GPU`).

Everything that decides by cost asks ``cost_model.seconds(signature)`` (and ``node_seconds(node)``
for an op left as it is).
"""

from .model import CPU, GPU, GROUPED_DENSE_THRESHOLD, TARGETS, CostModel, Target
from .signatures import (
    NOMINAL_SPATIAL,
    ConvSignature,
    ElementwiseSignature,
    OpSignature,
    PoolSignature,
    batch_and_itemsize,
    channels_of,
    node_signature,
    numel,
    spatial_size,
)

__all__ = [
    "CPU",
    "GPU",
    "GROUPED_DENSE_THRESHOLD",
    "NOMINAL_SPATIAL",
    "TARGETS",
    "ConvSignature",
    "CostModel",
    "ElementwiseSignature",
    "OpSignature",
    "PoolSignature",
    "Target",
    "batch_and_itemsize",
    "channels_of",
    "node_signature",
    "numel",
    "spatial_size",
]
