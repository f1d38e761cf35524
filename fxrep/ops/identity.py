"""`Identity`: ops that return their input unchanged at inference.

``nn.Identity``, dropout in eval (module, ``F.dropout(training=False)``, ``aten.dropout(train=False)``),
``clone`` / ``contiguous`` / ``detach`` / ``alias`` in any form.

``copies`` marks the ops that return a new tensor whose memory layout may differ from the input's
(``clone`` and ``contiguous`` make a non-dense input contiguous): their *value* is the input's, but a
later ``view`` may rely on the layout they produce, so they can only be dropped where the layout is
known to be unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from ._binding import REQUIRED, bind, bind_call
from ._graph import called_module

aten = torch.ops.aten

_DROPOUT = (("input", REQUIRED), ("p", 0.5), ("training", True), ("inplace", False))
_SIGNATURES = {
    F.dropout: _DROPOUT, F.dropout1d: _DROPOUT, F.dropout2d: _DROPOUT, F.dropout3d: _DROPOUT,
    F.alpha_dropout: _DROPOUT, F.feature_alpha_dropout: _DROPOUT,
    torch.clone: (("input", REQUIRED), ("memory_format", None)),
    torch.detach: (("input", REQUIRED),),
}
_METHODS = {"contiguous": (("self", REQUIRED), ("memory_format", None)),
            "clone": (("self", REQUIRED), ("memory_format", None)),
            "detach": (("self", REQUIRED),)}
_OVERLOADS = (aten.clone.default, aten.contiguous.default, aten.alias.default, aten.detach.default, aten.dropout.default,
              aten.alpha_dropout.default, aten.feature_dropout.default, aten.feature_alpha_dropout.default)
_SAME_FORMATS = (None, torch.preserve_format, torch.contiguous_format, 0, 1)
"""Memory formats a value-preserving copy may ask for (ATen schemas default to the enum values 0 and 1)."""
_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
            nn.FeatureAlphaDropout)


@dataclass(frozen=True, eq=False)
class Identity:
    """A node whose value equals ``input`` at inference."""

    node: Node
    input: Node
    copies: bool = False
    """``clone`` / ``contiguous``: a new tensor, possibly laid out differently from ``input``."""

    @classmethod
    def from_node(cls, node: Node) -> Identity | None:
        module = called_module(node)
        if module is not None:
            if type(module) not in _MODULES or len(node.args) != 1 or not isinstance(node.args[0], Node):
                return None
            if module.training and type(module) is not nn.Identity:
                return None
            return cls(node, node.args[0])
        if node.op == "call_method":
            bound = bind(node.args, node.kwargs, _METHODS[node.target]) if node.target in _METHODS else None
            source = None if bound is None else bound["self"]
            copies = node.target in ("contiguous", "clone")
        elif node.op == "call_function":
            bound = bind_call(node, _SIGNATURES, overloads=_OVERLOADS)
            if bound is None or bound.get("training", bound.get("train", False)):
                return None
            if bound.get("memory_format") not in _SAME_FORMATS:
                return None
            source = bound.get("input", bound.get("self"))
            copies = node.target in (torch.clone, aten.clone.default, aten.contiguous.default)
        else:
            return None
        return cls(node, source, copies) if isinstance(source, Node) else None
