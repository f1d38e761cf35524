"""Record a fake tensor (shape, dtype) in ``node.meta["val"]`` for every node of a graph.

torch.export records these itself; symbolic tracing does not. Passes read shapes to check size
dependent exactness conditions and to estimate costs, and the rewriter refreshes them after
changing a graph. Fake tensors cost no memory or compute, and symbolic (dynamic) sizes survive.

Pads are the exception `_SymbolicPads` handles: under a plain `FakeTensorMode`, ATen's pad kernels
(``constant_pad_nd``, ``pad``) read the input's sizes as ints, which adds the guard ``batch == 2``
to a dynamic-batch graph's shape environment; every node after the pad would then record a
concrete batch while the nodes before it keep the symbol, and the cost model would price one region
at two batch sizes. A pad's output shape is the input's with each padded dimension grown by its two
widths, so it is computed from the symbolic sizes instead.
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

aten = torch.ops.aten
_PADS = frozenset({aten.constant_pad_nd.default, aten.pad.default})


class _SymbolicPads(FakeTensorProp):
    """`FakeTensorProp` that computes a pad's output from the symbolic input sizes (module docstring)."""

    def call_function(self, target, args, kwargs):
        if target in _PADS and isinstance(args[0], torch.Tensor):
            x, widths = args[0], list(args[1])
            shape = list(x.shape)
            for i in range(len(widths) // 2):
                shape[-1 - i] = shape[-1 - i] + widths[2 * i] + widths[2 * i + 1]
            return x.new_empty(shape)
        return super().call_function(target, args, kwargs)


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
        _SymbolicPads(gm, mode).propagate_dont_convert_inputs(*values)
    except Exception as error:  # shapes are an optimisation aid: never fail a rewrite over them
        logger.debug("shape propagation failed, keeping the shapes recorded before: %s", error)
        return False
    finally:
        mode.allow_non_fake_inputs = previous
    return True
