"""Record a fake tensor (shape, dtype) in ``node.meta["val"]`` for every node of a graph.

torch.export records these itself; symbolic tracing does not. Passes read shapes to check size
dependent exactness conditions and to estimate costs, and the rewriter refreshes them after
changing a graph. Fake tensors cost no memory or compute, and symbolic (dynamic) sizes survive.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx import GraphModule
from torch.fx.passes.fake_tensor_prop import FakeTensorProp

logger = logging.getLogger(__name__)


def propagate_shapes(gm: GraphModule, example_inputs: Sequence[torch.Tensor] | None = None) -> bool:
    """Fill ``meta["val"]`` on every node; returns False when no input shapes are known.

    Uses the placeholders' recorded fake tensors when present (keeps dynamic dimensions), else
    fake copies of ``example_inputs``.
    """
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    values = [p.meta.get("val") for p in placeholders]
    if placeholders and all(isinstance(v, torch.Tensor) for v in values):
        mode = detect_fake_mode(values)
        if mode is None:
            mode = FakeTensorMode(allow_non_fake_inputs=True)
            values = [mode.from_tensor(v) for v in values]
    elif example_inputs is not None and len(example_inputs) == len(placeholders):
        mode = FakeTensorMode(allow_non_fake_inputs=True)
        values = [mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in example_inputs]
    else:
        return False
    previous = mode.allow_non_fake_inputs
    mode.allow_non_fake_inputs = True
    try:
        FakeTensorProp(gm, mode).propagate_dont_convert_inputs(*values)
    except Exception as error:  # shapes are an optimisation aid: never fail a rewrite over them
        logger.debug("shape propagation failed, keeping the shapes recorded before: %s", error)
        return False
    finally:
        mode.allow_non_fake_inputs = previous
    return True
