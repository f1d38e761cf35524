"""`Pad`: ``F.pad``, ``aten.pad``, ``aten.constant_pad_nd`` and the ``nn.*Pad*d`` modules as one view.

torch lists pad widths last dimension first (``(left, right, top, bottom)``); the view stores
(low, high) pairs for the padded trailing dimensions in dimension order, so ``pads[-1]`` is the
last dimension. Negative widths crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from ._binding import REQUIRED, bind_call
from ._graph import called_module

aten = torch.ops.aten

_SIGNATURES = {F.pad: (("input", REQUIRED), ("pad", REQUIRED), ("mode", "constant"), ("value", None))}
_OVERLOADS = (aten.pad.default, aten.constant_pad_nd.default)
_MODULE_MODES = (
    (nn.modules.padding._ConstantPadNd, "constant"),
    (nn.modules.padding._ReflectionPadNd, "reflect"),
    (nn.modules.padding._ReplicationPadNd, "replicate"),
    (nn.modules.padding._CircularPadNd, "circular"),
)


@dataclass(frozen=True, eq=False)
class Pad:
    """Pad the trailing ``len(pads)`` dimensions of ``input`` by ``pads`` with ``mode`` / ``value``."""

    node: Node
    input: Node
    pads: tuple[tuple[int, int], ...]
    mode: str
    value: float

    @classmethod
    def from_node(cls, node: Node) -> Pad | None:
        module = called_module(node)
        if module is not None:
            mode = next((m for base, m in _MODULE_MODES if isinstance(module, base)), None)
            if mode is None or len(node.args) != 1 or not isinstance(node.args[0], Node):
                return None
            value = float(getattr(module, "value", 0.0)) if mode == "constant" else 0.0
            return cls(node, node.args[0], _pairs(module.padding), mode, value)
        if node.op != "call_function":
            return None
        bound = bind_call(node, _SIGNATURES, overloads=_OVERLOADS)
        if bound is None or not isinstance(bound.get("input", bound.get("self")), Node):
            return None
        source = bound.get("input", bound.get("self"))
        mode = bound.get("mode", "constant")
        value = bound.get("value")
        if not isinstance(value, int | float | type(None)):
            return None
        return cls(node, source, _pairs(bound["pad"]), mode, float(value or 0.0))


def _pairs(flat) -> tuple[tuple[int, int], ...]:
    flat = [int(p) for p in flat]
    pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
    return tuple(reversed(pairs))
