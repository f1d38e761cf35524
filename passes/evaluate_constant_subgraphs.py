"""Evaluate parameter-only computations once and store the results as constants.

Over-parameterised layers compute their weight from parameters on every call: DiracNet's
``diag(a) I + diag(b) W_norm``, DO-Conv's ``einsum(D, W)``, weight standardisation,
``torch.nn.utils.parametrize`` and weight norm. No graph input reaches those nodes, so their value
is fixed at inference: each such node whose value is used by the rest of the graph is evaluated
once (in the model's own dtype, so the result is bit-identical) and replaced by a ``get_attr``.

In a symbolically traced graph a parametrised layer is one ``call_module`` node; its module is
replaced by a plain copy holding the evaluated tensors (``remove_parametrizations`` with
``leave_parametrized=True``, ``remove_weight_norm``, ``remove_spectral_norm``).

Random ops (``torch.randn``, dropout in training, any ATen op tagged ``nondeterministic_seeded``)
are never evaluated: their value changes on every call.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.fx import GraphModule, Interpreter, Node
from torch.nn.utils import parametrize

from fxrep import pass_api as api

_RANDOM_FUNCTIONS = frozenset({
    torch.rand, torch.randn, torch.randint, torch.rand_like, torch.randn_like, torch.randint_like,
    torch.normal, torch.bernoulli, torch.multinomial, torch.poisson, torch.randperm,
    torch.nn.functional.dropout, torch.nn.functional.dropout1d, torch.nn.functional.dropout2d,
    torch.nn.functional.dropout3d, torch.nn.functional.alpha_dropout,
})


@dataclass(frozen=True)
class EvaluateConstantSubgraphs(api.Pass):
    """Replace parameter-only subgraphs by their value (see the module docstring)."""

    name: ClassVar[str] = "evaluate_constant_subgraphs"

    def __call__(self, gm: GraphModule) -> api.PassResult:
        return self.rewrite_graph(gm, _evaluate_constants)


def _evaluate_constants(rewriter: api.Rewriter, result: api.PassResult) -> None:
    gm = rewriter.gm
    for node in list(gm.graph.nodes):
        if node.op == "call_module":
            _plain_module(gm, node, rewriter)
    for node in list(gm.graph.nodes):
        if api.is_side_effect_only(node) and node.op == "call_function" and all(
                i.op == "get_attr" for i in node.all_input_nodes):
            rewriter.erase(node, "drop_constant_assertions")  # a metadata assertion on a constant always holds
    constants = api.constant_nodes(gm)
    foldable: set[Node] = set()
    for node in gm.graph.nodes:  # graph order: inputs are decided before their users
        if node in constants and node.op != "get_attr" and not _is_random(gm, node) and all(
                i in foldable or i.op == "get_attr" for i in node.all_input_nodes):
            foldable.add(node)
    frontier = [n for n in gm.graph.nodes if n in foldable and any(u not in foldable for u in n.users)]
    if not frontier:
        return
    values = _evaluate(gm, foldable)
    for node in frontier:
        value = values[node]
        if not isinstance(value, torch.Tensor):
            continue
        name = rewriter.fresh_name(api.module_path_of(node), f"{node.name}_folded")
        constant = rewriter.constant(value, name, before=node)
        rewriter.replace(node, constant, "evaluate_constants")


def _is_random(gm: GraphModule, node: Node) -> bool:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return torch.Tag.nondeterministic_seeded in target.tags
    if node.op == "call_module":
        module = gm.get_submodule(str(target))
        return module.training and isinstance(module, nn.modules.dropout._DropoutNd)
    try:
        return target in _RANDOM_FUNCTIONS
    except TypeError:
        return False


def _evaluate(gm: GraphModule, nodes: set[Node]) -> dict[Node, object]:
    """Run just ``nodes`` (and the parameters they read) in graph order."""
    interpreter = Interpreter(gm, garbage_collect_values=False)
    with torch.no_grad():
        for node in gm.graph.nodes:
            if node in nodes or (node.op == "get_attr" and any(u in nodes for u in node.users)):
                interpreter.env[node] = interpreter.run_node(node)
    return {node: interpreter.env[node] for node in nodes}


def _plain_module(gm: GraphModule, node: Node, rewriter: api.Rewriter) -> None:
    """Swap a parametrised / weight-normed leaf module for a plain copy with the evaluated tensors."""
    module = gm.get_submodule(str(node.target))
    hooks = [h for h in module._forward_pre_hooks.values() if _is_norm_hook(h)]
    if not parametrize.is_parametrized(module) and not hooks:
        return
    plain = _without_parametrizations(module) if parametrize.is_parametrized(module) else copy.deepcopy(module)
    with torch.no_grad():
        for hook in [h for h in plain._forward_pre_hooks.values() if _is_norm_hook(h)]:
            if type(hook).__name__ == "WeightNorm":
                torch.nn.utils.remove_weight_norm(plain, hook.name)
            else:
                torch.nn.utils.remove_spectral_norm(plain, hook.name)
    for tensor in plain.parameters(recurse=False):
        tensor.requires_grad_(False)
    rewriter.set_module(str(node.target), plain, "remove_parametrization")


def _without_parametrizations(module: nn.Module) -> nn.Module:
    """A new module of the class ``module`` had before it was parametrised, holding the evaluated tensors.

    It is built from a deep copy of ``module``'s state (the copy protocol: ``__new__``, then
    ``__setstate__``), without the parametrizations. ``parametrize.remove_parametrizations`` must not
    be used on a copy: the copy shares its dynamically created class with the original, and removal
    deletes the property from that class, breaking the caller's module.
    """
    with torch.no_grad():
        values = {name: getattr(module, name).detach().clone() for name in module.parametrizations.keys()}
    plain_class = parametrize.type_before_parametrizations(module)
    plain = plain_class.__new__(plain_class)
    plain.__setstate__(copy.deepcopy(vars(module), {id(module): plain}))
    del plain.parametrizations
    for name, value in values.items():
        plain.register_parameter(name, nn.Parameter(value, requires_grad=False))
    return plain


def _is_norm_hook(hook: object) -> bool:
    return type(hook).__name__ in ("WeightNorm", "SpectralNorm")
