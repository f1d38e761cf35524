"""Matching a compiled `Pattern` at one graph node: a small backtracking search.

- An op matches a node whose `OpShape` has the same kind; operands match recursively, params
  match literals or bind wildcards. A weight computed at run time does not match.
- A sum (product) matches a node's add (mul) tree opened up through nodes used only there, in any
  order: each pattern term is tried against each graph term, undoing bindings on failure.
- A `sum_of` takes the graph terms the other pattern terms left, each matched by its branch.
- A wildcard used twice must stand for the same node (or an equal constant) both times.
- Finally every matched node but the root must be used only inside the match, since the rewrite
  replaces the root and the others disappear with it.

The search answers a `Match` (`fxrep.match`): ``Match.ok(PatternMatch)``, or ``Match.fail`` with the
reason found deepest in the search, marked ``near_miss`` when the ops matched but a condition failed
(extra users, a non-constant weight, a different setting), which `PatternPass` records as a refusal;
plain structural mismatches are not worth reporting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch.fx import Node

from ..affine import is_side_effect_only
from ..match import Match
from ..ops import constant_value
from .match_result import Branch, PatternMatch
from .node_shapes import describe_node
from .op_shape import RUNTIME, OpShape, literal_matches, same_value
from .terms import PRODUCT_OPS, SUM_OPS, Terms, flatten


class CompiledPattern(Protocol):
    """What the search reads of a compiled pattern; `fxrep.patterns.Pattern` is one.

    Declared here so the matcher does not depend on `pattern.py`, which calls `search`.
    """

    parameters: Sequence[str]
    root: Node
    shapes: Mapping[Node, OpShape]
    terms: Mapping[Node, Terms]
    branch_patterns: Mapping[Node, CompiledPattern]

    def role(self, node: Node) -> str:
        """"wildcard", "constant", "named", "terms" or "op"."""
        ...


@dataclass
class _Scope:
    """Wildcard bindings of one pattern: the whole pattern, or one `sum_of` branch (``parent`` set)."""

    pattern: CompiledPattern
    bindings: dict[str, Any] = field(default_factory=dict)
    matched: dict[Node, Any] = field(default_factory=dict)
    parent: _Scope | None = None
    shared: dict[str, Any] = field(default_factory=dict)
    """A branch's shared parameters: the pattern value in ``parent`` each one stands for."""


def search(pattern: CompiledPattern, root: Node, claimed: set[Node] | frozenset[Node]) -> Match[PatternMatch]:
    """Match ``pattern`` with its result at ``root``; nodes in ``claimed`` belong to earlier rewrites.

    ``Match.ok(PatternMatch)``, or ``Match.fail(reason, near_miss)`` (see the module docstring).
    """
    return _Search(pattern, claimed).run(root)


class _Search:
    def __init__(self, pattern: CompiledPattern, claimed: set[Node] | frozenset[Node]) -> None:
        self.pattern = pattern
        self.claimed = claimed
        self.trail: list[Callable[[], None]] = []
        self.nodes: list[Node] = []
        self.branches: dict[str, list[Branch]] = {}
        self.failure: tuple[int, str, bool] | None = None
        self._shapes: dict[Node, OpShape | None] = {}

    # ------------------------------------------------------------------ entry point
    def run(self, root: Node) -> Match[PatternMatch]:
        scope = _Scope(self.pattern)
        if root.op in ("placeholder", "output", "get_attr") or not self.value(scope, self.pattern.root, root):
            _, reason, near = self.failure or (0, f"{root.name} is not an op", False)
            return Match.fail(reason, near_miss=near)
        nodes = list(dict.fromkeys(self.nodes))
        if root not in nodes:
            nodes.append(root)
        problem = self._outside_users(nodes, root)
        if problem is not None:
            return Match.fail(problem, near_miss=True)
        order = {node: index for index, node in enumerate(root.graph.nodes)}
        nodes.sort(key=lambda node: order.get(node, len(order)))
        return Match.ok(PatternMatch(root, tuple(nodes), self._bindings(scope, order)))

    def _bindings(self, scope: _Scope, order: dict[Node, int]) -> dict[str, Any]:
        """The wildcards; each `sum_of`'s branches in graph order, and their wildcards as lists in that order."""
        bindings = dict(scope.bindings)
        for name, branches in self.branches.items():
            branches = sorted(branches, key=lambda branch: order.get(branch.node, len(order)))
            bindings[name] = branches
            for branch in branches:
                for key, value in branch.bindings.items():
                    bindings.setdefault(key, []).append(value)
        return bindings

    def _outside_users(self, nodes: list[Node], root: Node) -> str | None:
        inside = set(nodes)
        for node in nodes:
            if node is root:
                continue
            users = [u for u in node.users if not is_side_effect_only(u) and u not in self.claimed]
            outside = [u.name for u in users if u not in inside]
            if outside:
                verb = "is" if len(outside) == 1 else "are"
                return (f"{node.name} feeds {len(users)} users ({', '.join(u.name for u in users)}); "
                        f"{', '.join(outside)} {verb} outside the match, so replacing it would change them")
        return None

    # ------------------------------------------------------------------ undo trail and failures
    def mark(self) -> int:
        return len(self.trail)

    def undo(self, mark: int) -> None:
        while len(self.trail) > mark:
            self.trail.pop()()

    def set(self, mapping: dict, key: Any, value: Any) -> None:
        if key in mapping:
            previous = mapping[key]
            self.trail.append(lambda: mapping.__setitem__(key, previous))
        else:
            self.trail.append(lambda: mapping.pop(key, None))
        mapping[key] = value

    def append(self, items: list, item: Any) -> None:
        items.append(item)
        self.trail.append(items.pop)

    def fail(self, reason: str, *, near: bool) -> bool:
        progress = len(self.trail)
        best = self.failure
        if best is None or progress > best[0] or (progress == best[0] and near and not best[2]):
            self.failure = (progress, reason, near)
        return False

    def shape(self, node: Node) -> OpShape | None:
        if node not in self._shapes:
            self._shapes[node] = describe_node(node)
        return self._shapes[node]

    # ------------------------------------------------------------------ values
    def value(self, scope: _Scope, pattern_value: Any, target: Any) -> bool:
        """Match one pattern value (a node, a literal or a list of them) against a graph value."""
        mark = self.mark()
        if self._value(scope, pattern_value, target):
            self.trail.append(_step)  # every matched value counts as progress, for choosing the failure to report
            return True
        self.undo(mark)
        return False

    def _value(self, scope: _Scope, p: Any, t: Any) -> bool:
        if isinstance(p, list | tuple) and any(isinstance(item, Node) for item in p):
            if not isinstance(t, list | tuple) or len(t) != len(p):
                return self.fail(f"found {_show(t)} where the pattern has {len(p)} values", near=False)
            return all(self.value(scope, a, b) for a, b in zip(p, t, strict=True))
        if not isinstance(p, Node):
            return self.literal(p, t)
        if p.op == "placeholder":
            return self.wildcard(scope, str(p.target), t)
        if p in scope.matched:
            earlier = scope.matched[p]
            if earlier is t or (not isinstance(t, Node) and same_value(earlier, t)):
                return True
            return self.fail(f"one pattern value matched both {_show(earlier)} and {_show(t)}", near=True)
        role = scope.pattern.role(p)
        if role == "constant":
            ok = self.constant(scope, str(p.args[0].target), t)
        elif role == "named":
            ok = self.value(scope, p.args[1], t) and self.bind(scope, str(p.args[0]), t)
        elif role == "terms":
            ok = self.terms(scope, p, t)
        else:
            ok = self.op(scope, p, t)
        if ok:
            self.set(scope.matched, p, t)
        return ok

    def literal(self, p: Any, t: Any) -> bool:
        value = t
        if isinstance(t, Node):
            value = constant_value(t)
            if value is None:
                return self.fail(f"{t.name} is computed, where the pattern has the constant {_show(p)}", near=False)
        if same_value(p, value):
            return True
        return self.fail(f"found {_show(value)} where the pattern has {_show(p)}", near=True)

    def wildcard(self, scope: _Scope, name: str, t: Any) -> bool:
        if name in scope.shared:
            return self.value(scope.parent, scope.shared[name], t)  # type: ignore[arg-type]
        return self.bind(scope, name, t)

    def bind(self, scope: _Scope, name: str, t: Any) -> bool:
        if name in scope.bindings:
            earlier = scope.bindings[name]
            same = earlier is t if isinstance(earlier, Node) or isinstance(t, Node) else same_value(earlier, t)
            if same:
                return True
            return self.fail(f"{name} would stand for both {_show(earlier)} and {_show(t)}", near=True)
        self.set(scope.bindings, name, t)
        return True

    def constant(self, scope: _Scope, name: str, t: Any) -> bool:
        value = t
        if isinstance(t, Node):
            value = constant_value(t)
            if value is None:
                return self.fail(f"{t.name} is computed from a graph input at run time, but the pattern needs "
                                 f"a constant {name}", near=True)
        if value is RUNTIME:
            return self.fail(f"{name} is computed from a graph input at run time, not a constant", near=True)
        return self.bind(scope, name, value)

    # ------------------------------------------------------------------ ops
    def op(self, scope: _Scope, p: Node, t: Any) -> bool:
        expected = scope.pattern.shapes[p]
        if not isinstance(t, Node):
            return self.fail(f"found {_show(t)} where the pattern has {_a(expected.label)}", near=False)
        if t in self.claimed:
            return self.fail(f"{t.name} is part of an earlier rewrite", near=False)
        found = self.shape(t)
        if found is None or not expected.same_kind(found):
            kind = found.label if found is not None else t.op
            return self.fail(f"{t.name} is {_a(kind)}, not {_a(expected.label)}", near=False)
        if found.problem is not None:
            return self.fail(found.problem, near=True)
        if len(found.operands) != len(expected.operands):
            return self.fail(f"{t.name} has {len(found.operands)} inputs, the pattern's {expected.label} "
                             f"{len(expected.operands)}", near=False)
        for pattern_operand, operand in zip(expected.operands, found.operands, strict=True):
            if not self.value(scope, pattern_operand, operand):
                return False
        for name, pattern_param in expected.params.items():
            if not self.param(scope, t, found, name, pattern_param):
                return False
        for part in found.parts:
            self.append(self.nodes, part)
        self.append(self.nodes, t)
        return True

    def param(self, scope: _Scope, t: Node, found: OpShape, name: str, p: Any) -> bool:
        if name not in found.params:
            return self.fail(f"{t.name} has no setting {name!r} to compare with the pattern's", near=False)
        value = found.params[name]
        if value is RUNTIME:
            return self.fail(f"{t.name}'s {name} is computed from a graph input at run time, not a constant",
                             near=True)
        if isinstance(p, Node):
            return self.value(scope, p, value)
        if literal_matches(name, p, value, found.params):
            return True
        return self.fail(f"{t.name} has {name}={_show(value)}, the pattern {_show(p)}", near=True)

    # ------------------------------------------------------------------ sums and products
    def terms(self, scope: _Scope, p: Node, t: Any) -> bool:
        spec = scope.pattern.terms[p]
        ops = SUM_OPS if spec.group == "sum" else PRODUCT_OPS
        shape = self.shape(t) if isinstance(t, Node) and t not in self.claimed else None
        if shape is not None and shape.kind in ops:
            found = flatten(t, spec.group, self._arithmetic_shape, self._absorbable)
            interior = self._interior(t, spec.group)
        else:
            found, interior = [(1.0, t)], []
        wanted = len(spec.fixed)
        if spec.branches is None and len(found) != wanted:
            what = "adds" if spec.group == "sum" else "multiplies"
            return self.fail(f"{_show(t)} {what} {len(found)} terms, the pattern {wanted}", near=False)
        if spec.branches is not None:
            marker = spec.branches.target
            spare = len(found) - wanted
            if spare < marker.min_branches or (marker.max_branches is not None and spare > marker.max_branches):
                return self.fail(f"{_show(t)} adds {len(found)} terms, the pattern {wanted} plus "
                                 f"{marker.min_branches}..{marker.max_branches or 'n'} branches", near=False)
        if not self.assign(scope, spec.fixed, 0, found, [False] * len(found), spec.branches):
            return False
        for node in interior:
            self.append(self.nodes, node)
        return True

    def assign(self, scope: _Scope, fixed: Sequence[tuple[float, Any]], index: int, found: list[tuple[float, Any]],
               used: list[bool], branches: Node | None) -> bool:
        if index == len(fixed):
            rest = [term for term, taken in zip(found, used, strict=True) if not taken]
            return branches is None or self.match_branches(scope, branches, rest)
        weight, pattern_term = fixed[index]
        tried = False
        for position, (found_weight, term) in enumerate(found):
            if used[position] or not same_value(weight, found_weight):
                continue
            tried = True
            mark = self.mark()
            used[position] = True
            if self.value(scope, pattern_term, term) and self.assign(scope, fixed, index + 1, found, used, branches):
                return True
            used[position] = False
            self.undo(mark)
        if not tried:
            return self.fail(f"no term has the pattern's coefficient {weight:g}", near=False)
        return False

    def match_branches(self, scope: _Scope, marker_node: Node, terms: list[tuple[float, Any]]) -> bool:
        marker = marker_node.target
        branch = scope.pattern.branch_patterns[marker_node]
        shared = dict(zip(branch.parameters[:marker.shared], marker_node.args, strict=True))
        if marker.name not in self.branches:
            self.set(self.branches, marker.name, [])
        for weight, term in terms:
            if not same_value(weight, 1.0):
                return self.fail(f"{_show(term)} enters the sum with factor {weight:g}; sum_of branches are "
                                 "added", near=True)
            child = _Scope(branch, parent=scope, shared=shared)
            if not self.value(child, branch.root, term):
                return False
            self.append(self.branches[marker.name], Branch(term, dict(child.bindings)))
        return True

    def _arithmetic_shape(self, node: Node) -> OpShape | None:
        shape = self.shape(node)
        return shape if shape is not None and shape.kind in SUM_OPS + PRODUCT_OPS else None

    def _absorbable(self, node: Node) -> bool:
        if node in self.claimed:
            return False
        users = [u for u in node.users if not is_side_effect_only(u) and u not in self.claimed]
        return len(users) == 1

    def _interior(self, root: Node, group: str) -> list[Node]:
        """The add (mul) nodes `flatten` opened up below and including ``root``."""
        ops = SUM_OPS if group == "sum" else PRODUCT_OPS
        interior, stack = [], [root]
        while stack:
            node = stack.pop()
            interior.append(node)
            shape = self.shape(node)
            for operand in shape.operands if shape is not None else ():
                if not isinstance(operand, Node) or not self._absorbable(operand):
                    continue
                inner = self.shape(operand)
                if inner is not None and inner.kind in ops:
                    stack.append(operand)
        return interior


def _step() -> None:
    """Undoing a plain step of progress changes nothing."""


def _a(label: str) -> str:
    return f"an {label}" if label[:1] in "aeiou" else f"a {label}"


def _show(value: Any) -> str:
    if isinstance(value, Node):
        return value.name
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"a {tuple(value.shape)} tensor"
    if isinstance(value, list | tuple) and len(value) > 8:
        return f"{len(value)} values"
    return repr(value)
