"""Which node of the original captured graph each node of the rewritten graph stands for.

The passes rewrite the captured graph in place; `fxrep.verify.check` keeps a copy of it from
before they ran (the *original* graph). A node of the rewritten (*final*) graph then stands for an
original node in one of two ways:

- it *survives*: it has the original node's name and op (the passes left it where it was);
- it *replaced* original nodes: `Rewriter.replace` recorded ``old name -> new name`` in
  ``gm.meta[RENAMES_KEY]``, and following that chain from an original node ends at it.

Every other final node is *new* (part of a rewritten region). From that follow the two sets the
local checks record on the original graph, and nothing else:

- the **exits**: the original nodes whose value a final node must reproduce: every replaced node
  (compared with the node that took over its value) and every surviving node that the passes
  changed (its inputs, once mapped to what they stand for, are not the original's, or a constant
  or submodule it reads holds other values, or it is the output and now returns something else);
- the **entries**: the original nodes whose values the new and the changed nodes read.

A surviving node that nobody changed computes the same op on the same inputs, so it needs neither
recording nor comparing: the local run gives it exactly the original's value. Constants
(``get_attr`` nodes) are part of a region's definition, never an entry: a pass may legitimately
have re-registered a weight under the same name.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.fx import GraphModule, Node
from torch.fx.node import map_arg

from ..rewriter import RENAMES_KEY


@dataclass(frozen=True)
class Correspondence:
    """The final graph's nodes in terms of the original graph's (module docstring)."""

    origin: dict[str, str]
    """Final node name -> the original node whose value it holds (survivors and replacements)."""
    checks: dict[str, tuple[str, ...]]
    """Final node name -> the original nodes (exits) its value must match."""
    entries: frozenset[str]
    """Original nodes whose values the new and changed final nodes read."""
    chains: dict[str, tuple[str, ...]]
    """Replaced original node -> the names its value went through before its final node (itself first)."""
    original_nodes: int
    """How many nodes the original graph has (for the report: how little is recorded)."""

    @property
    def exits(self) -> frozenset[str]:
        return frozenset(name for names in self.checks.values() for name in names)

    @property
    def recorded(self) -> frozenset[str]:
        """Every original value a local check keeps: the entries and the exits."""
        return self.entries | self.exits


def correspond(original: GraphModule, final: GraphModule) -> Correspondence:
    """Map ``final`` (the rewritten graph, with its ``RENAMES_KEY``) onto ``original`` (its graph before the passes)."""
    originals = {node.name: node for node in original.graph.nodes}
    position = {name: index for index, name in enumerate(originals)}
    finals = {node.name: node for node in final.graph.nodes}
    renames: dict[str, str] = final.meta.get(RENAMES_KEY, {})

    survivors: set[str] = set()
    replaced: dict[str, list[str]] = defaultdict(list)
    chains: dict[str, tuple[str, ...]] = {}
    for name, node in originals.items():
        if name in renames:
            chain = _follow(name, renames)
            if chain is not None and chain[-1] in finals:
                replaced[chain[-1]].append(name)
                chains[name] = chain[:-1]
        elif name in finals and _same_op(node, finals[name]):
            survivors.add(name)

    origin = {name: max(replaced[name], key=position.__getitem__) for name in replaced}
    origin.update({name: name for name in survivors if name not in origin})
    constants = _Constants(original, final)

    def stands_for(node: Node) -> Any:
        found = origin.get(node.name)
        if found is None:
            return ("new", node.name)
        if node.op == "get_attr" and node.name in survivors and not constants.same_attribute(str(node.target)):
            return ("changed", node.name)
        return found

    checks = {name: tuple(sorted(replaced[name], key=position.__getitem__)) for name in replaced}
    for name in survivors - set(replaced):
        node, before = finals[name], originals[name]
        if node.op in ("placeholder", "get_attr"):
            continue
        same_inputs = (_same(map_arg(node.args, stands_for), map_arg(before.args, _name))
                       and _same(map_arg(node.kwargs, stands_for), map_arg(before.kwargs, _name)))
        if not same_inputs or (node.op == "call_module" and not constants.same_module(str(node.target))):
            checks[name] = (name,)

    entries: set[str] = set()
    for node in final.graph.nodes:
        if node.name in origin and node.name not in checks:
            continue  # an unchanged survivor reads exactly the original values anyway
        for source in node.all_input_nodes:
            found = origin.get(source.name)
            if found is not None and source.op not in ("placeholder", "get_attr"):
                entries.add(found)
    return Correspondence(origin, checks, frozenset(entries), chains, len(originals))


def _follow(name: str, renames: dict[str, str]) -> tuple[str, ...] | None:
    chain = [name]
    while chain[-1] in renames:
        following = renames[chain[-1]]
        if following in chain:
            return None
        chain.append(following)
    return tuple(chain)


def _same_op(original: Node, final: Node) -> bool:
    return original.op == final.op and original.target == final.target


def _name(node: Node) -> str:
    return node.name


def _same(a: Any, b: Any) -> bool:
    """Structural equality of node arguments (tensors by value, lists and tuples alike, NaN equal to NaN)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return _same_tensor(a, b)
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # objects without a truth-valued ==
        return a is b


def _same_tensor(a: Any, b: Any) -> bool:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return False
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    return bool(torch.equal(a, b))


class _Constants:
    """Whether an attribute or a submodule holds the same values in both modules (cached)."""

    def __init__(self, original: GraphModule, final: GraphModule) -> None:
        self.original, self.final = original, final
        self.known: dict[tuple[str, str], bool] = {}

    def same_attribute(self, target: str) -> bool:
        key = ("attribute", target)
        if key not in self.known:
            before, after = _attribute(self.original, target), _attribute(self.final, target)
            if isinstance(before, torch.Tensor) or isinstance(after, torch.Tensor):
                self.known[key] = _same_tensor(before, after)
            else:  # a submodule or script object read as a value: compared through its readers' checks
                self.known[key] = type(before) is type(after)
        return self.known[key]

    def same_module(self, target: str) -> bool:
        key = ("module", target)
        if key not in self.known:
            before, after = _attribute(self.original, target), _attribute(self.final, target)
            self.known[key] = _same_state(before, after)
        return self.known[key]


def _attribute(module: nn.Module, target: str) -> Any:
    value: Any = module
    for part in target.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _same_state(before: Any, after: Any) -> bool:
    if not (isinstance(before, nn.Module) and isinstance(after, nn.Module)) or type(before) is not type(after):
        return False
    state_before, state_after = before.state_dict(keep_vars=True), after.state_dict(keep_vars=True)
    return state_before.keys() == state_after.keys() and all(
        _same_tensor(state_before[key], state_after[key]) for key in state_before)
