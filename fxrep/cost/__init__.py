"""Cost: how long an op takes, so a rewrite is applied only where it pays.

- `estimator`: the one interface, `CostEstimator` (``seconds(signature)``, ``node_seconds(node)``),
  and `SignatureCosts`, the base that derives every other question from ``seconds``.
- `signatures`: what one op computes at which shapes (`ConvSignature`, `PoolSignature`,
  `ElementwiseSignature`), hashable, the key of every cost question.
- `targets`: the constants of each `Target` (`CPU`, `GPU`), each saying where it came from.
- `model`: the analytic `CostModel` (the formula).
- `measured`: `MeasuredCostModel`, which times each op on the device (`op_builder` rebuilds it from
  its signature) and keeps the times in a `TimingCache` file (`timing_cache`).

Everything that decides by cost asks ``cost_model.seconds(signature)`` (and ``node_seconds(node)``
for an op left as it is); a plan's cost is the sum over its ops.
"""

from .estimator import CostEstimator, SignatureCosts
from .measured import (
    COST_CHOICES,
    CostMeasurementError,
    MeasuredCostModel,
    TimingRule,
    cost_model_for,
    median_interval,
    time_op,
)
from .model import CostModel
from .op_builder import NotRunnable, runnable
from .signatures import (
    NOMINAL_SPATIAL,
    ConvSignature,
    ElementwiseSignature,
    OpSignature,
    PoolSignature,
    batch_and_itemsize,
    channels_of,
    dtype_and_device,
    node_signature,
    numel,
    signature_fields,
    signature_from_fields,
    spatial_size,
)
from .targets import CPU, FRESH_ALLOCATION_BYTES, GPU, GROUPED_DENSE_THRESHOLD, TARGETS, Target, uses_onednn
from .timing_cache import TimingCache, TimingCacheError, TimingEntry, TimingKey, device_key

__all__ = [
    "COST_CHOICES",
    "CPU",
    "FRESH_ALLOCATION_BYTES",
    "GPU",
    "GROUPED_DENSE_THRESHOLD",
    "NOMINAL_SPATIAL",
    "TARGETS",
    "ConvSignature",
    "CostEstimator",
    "CostMeasurementError",
    "CostModel",
    "ElementwiseSignature",
    "MeasuredCostModel",
    "NotRunnable",
    "OpSignature",
    "PoolSignature",
    "SignatureCosts",
    "Target",
    "TimingCache",
    "TimingCacheError",
    "TimingEntry",
    "TimingKey",
    "TimingRule",
    "batch_and_itemsize",
    "channels_of",
    "cost_model_for",
    "device_key",
    "dtype_and_device",
    "median_interval",
    "node_signature",
    "numel",
    "runnable",
    "signature_fields",
    "signature_from_fields",
    "spatial_size",
    "time_op",
    "uses_onednn",
]
