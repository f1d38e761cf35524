"""`BatchNorm`: one view of a batch normalisation in any captured form.

Forms: ``nn.BatchNorm{1,2,3}d`` and ``nn.SyncBatchNorm`` modules, ``F.batch_norm``,
``aten.batch_norm`` (training IR), and the tuple-returning ``aten._native_batch_norm_legit_no_training``,
``aten._native_batch_norm_legit`` and ``aten.native_batch_norm`` seen through their ``getitem(.., 0)``
(the view is anchored on the getitem node, whose value is the normalised tensor).

Only a BatchNorm that normalises with running statistics is affine in its input. One that uses
batch statistics (``track_running_stats=False``, or a module left in training mode) is recognised
so the report can say why it stays.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from ..algebra import NotExact, batchnorm_affine
from ._binding import REQUIRED, bind_call, bind_schema
from ._graph import called_module, constant_value, has_hooks

aten = torch.ops.aten

_SIGNATURES = {
    F.batch_norm: (("input", REQUIRED), ("running_mean", REQUIRED), ("running_var", REQUIRED), ("weight", None),
                   ("bias", None), ("training", False), ("momentum", 0.1), ("eps", 1e-5)),
}
_TUPLE_OVERLOADS = (aten._native_batch_norm_legit_no_training.default, aten._native_batch_norm_legit.default,
                    aten._native_batch_norm_legit.no_stats, aten.native_batch_norm.default)
_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass(frozen=True, eq=False)
class BatchNorm:
    """A batch-norm node. Statistics and affine parameters are None when absent or not constant."""

    node: Node
    input: Node
    call: Node
    running_mean: torch.Tensor | None
    running_var: torch.Tensor | None
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float
    uses_batch_statistics: bool
    parameters_are_constant: bool
    module: nn.Module | None

    @classmethod
    def from_node(cls, node: Node) -> BatchNorm | None:
        module = called_module(node)
        if module is not None:
            return _from_module(node, module)
        if node.op != "call_function":
            return None
        call = node
        if node.target is operator.getitem:
            source, index = node.args
            if index != 0 or not isinstance(source, Node) or source.target not in _TUPLE_OVERLOADS:
                return None
            bound = bind_schema(source)
            call = source
            if bound is None:
                return None
            if source.target is aten._native_batch_norm_legit_no_training.default:
                bound["training"] = False
            elif source.target is aten._native_batch_norm_legit.no_stats:
                bound["running_mean"] = bound["running_var"] = None
        else:
            bound = bind_call(node, _SIGNATURES, overloads=(aten.batch_norm.default,))
        if bound is None or not isinstance(bound["input"], Node):
            return None
        values = {key: constant_value(bound[key]) if bound[key] is not None else None
                  for key in ("running_mean", "running_var", "weight", "bias")}
        constant = all(bound[key] is None or isinstance(values[key], torch.Tensor) for key in values)
        no_stats = bound["running_mean"] is None or bound["running_var"] is None
        return cls(
            node=node,
            input=bound["input"],
            call=call,
            running_mean=values["running_mean"],
            running_var=values["running_var"],
            weight=values["weight"],
            bias=values["bias"],
            eps=float(bound["eps"]),
            uses_batch_statistics=bool(bound["training"]) or no_stats,
            parameters_are_constant=constant,
            module=None,
        )

    @property
    def num_features(self) -> int | None:
        for tensor in (self.running_mean, self.weight, self.bias):
            if tensor is not None:
                return tensor.numel()
        return None

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, c)`` with ``bn(x) = a * x + c`` per channel; raises `NotExact` when not affine."""
        if self.uses_batch_statistics:
            raise NotExact(
                f"{self.node.name} normalises with batch statistics (no running stats or training mode), "
                "so it is not a fixed affine map"
            )
        if not self.parameters_are_constant or self.running_mean is None or self.running_var is None:
            raise NotExact(f"{self.node.name}'s statistics or affine parameters are computed at run time")
        if self.module is not None and has_hooks(self.module):
            raise NotExact(f"{self.node.name}'s module has hooks that may change what it computes")
        return batchnorm_affine(self.running_mean, self.running_var, self.weight, self.bias, self.eps)


def _from_module(node: Node, module: nn.Module) -> BatchNorm | None:
    base = next((m for m in _MODULES if isinstance(module, m)), None)
    if base is None or type(module).forward is not base.forward or len(node.args) != 1 or node.kwargs:
        return None
    if not isinstance(node.args[0], Node):
        return None
    no_stats = module.running_mean is None or module.running_var is None
    return BatchNorm(
        node=node,
        input=node.args[0],
        call=node,
        running_mean=None if module.running_mean is None else module.running_mean.detach(),
        running_var=None if module.running_var is None else module.running_var.detach(),
        weight=None if module.weight is None else module.weight.detach(),
        bias=None if module.bias is None else module.bias.detach(),
        eps=float(module.eps),
        uses_batch_statistics=module.training or no_stats,
        parameters_are_constant=True,
        module=module,
    )
