"""Undo a dtype slip of the ONNX exporter's Conv+BatchNorm fusion for bfloat16 models.

``torch.onnx.export(..., dynamo=True)`` optimizes the graph with onnxscript's rewriter, whose
``FuseBatchNormIntoConv`` / ``...IntoGemm`` rules recompute the weights in numpy. numpy has no
bfloat16, so (in onnxscript 0.7) a bfloat16 model comes out as ``Conv(x: bfloat16, W: float32)``:
an invalid model that TensorRT rejects ("input and kernel must be of same type") and onnxruntime
refuses to load. This pass casts the fused initializers back to the dtype of the node's data
input. It only touches nodes that carry that rule's name in their metadata, and does nothing when
the dtypes already agree (fp32, fp16, or a fixed onnxscript).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["restore_fused_initializer_dtypes"]

logger = logging.getLogger(__name__)

_RULE_NAME_KEY = "pkg.onnxscript.rewriter.rule_name"


def restore_fused_initializer_dtypes(model: Any) -> int:
    """Cast initializers of BatchNorm-fused nodes in an ``onnx_ir.Model`` to the data input's dtype.

    Returns how many initializers were cast (0 for every model the exporter got right).
    """
    import onnx_ir as ir

    repaired = 0
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        if "FuseBatchNorm" not in node.metadata_props.get(_RULE_NAME_KEY, ""):
            continue
        data = node.inputs[0] if node.inputs else None
        if data is None or data.dtype is None or not data.dtype.is_floating_point():
            continue
        for value in node.inputs[1:]:
            tensor = None if value is None else value.const_value
            if tensor is None or value.dtype == data.dtype or not value.dtype.is_floating_point():
                continue
            logger.info(
                "casting %s of %s from %s to %s (onnxscript's BatchNorm fusion computed it in numpy)",
                value.name,
                node.name,
                value.dtype,
                data.dtype,
            )
            value.const_value = ir.tensor(tensor.numpy().astype(data.dtype.numpy()), name=value.name)
            value.dtype = data.dtype
            repaired += 1
    return repaired
