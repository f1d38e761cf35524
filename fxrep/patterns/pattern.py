"""`Pattern`: a PyTorch function compiled into something that matches graph nodes.

The function is traced once with one wildcard per parameter. Each call in it becomes an `OpShape`
(so ``F.conv2d`` matches every form of a 2-d conv); add/sub/neg chains become one *sum* of signed
terms and mul/div chains one *product*, matched in any order and association; the markers
`constant`, `named` and `sum_of` keep their meaning for the matcher. Matching is in `matcher.py`;
what a match yields is a `PatternMatch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from torch.fx import GraphModule, Node

from ..match import Match
from ..ops import Arithmetic
from .markers import PatternError, SumOf, constant, named
from .match_result import PatternMatch
from .matcher import search
from .op_shape import OpShape
from .pattern_shapes import describe_pattern_node
from .terms import PRODUCT_OPS, SUM_OPS, Terms, flatten
from .tracing import parameter_names, trace_function


class Pattern:
    """A pattern function compiled for matching; see the module docstring.

    ``Pattern(fn).match(node)`` answers ``Match.ok(PatternMatch)`` or ``Match.fail(reason)``;
    ``find(gm)`` lists the non-overlapping matches of a graph.
    """

    def __init__(self, function: Callable[..., Any], *, shared: int = 0) -> None:
        self.function = function
        self.name = getattr(function, "__name__", "pattern")
        self.parameters = parameter_names(function)
        self.graph = trace_function(function, {name: name for name in self.parameters})
        output = next(node for node in self.graph.nodes if node.op == "output")
        self.root = output.args[0]
        if not isinstance(self.root, Node) or self.root.op == "placeholder":
            raise PatternError(f"pattern {self.name} must compute something from its parameters, "
                               "not return one of them")
        self.shapes: dict[Node, OpShape] = {}
        self.terms: dict[Node, Terms] = {}
        self.branch_patterns: dict[Node, Pattern] = {}
        for node in self.graph.nodes:
            self._compile(node)
        self.bound_names = self._bound_names(shared)

    def __repr__(self) -> str:
        return f"Pattern({self.name})"

    # ------------------------------------------------------------------ matching
    def match(self, node: Node) -> Match[PatternMatch]:
        """Match the pattern's result at ``node``: ``Match.ok(PatternMatch)`` or ``Match.fail(reason)``
        (``near_miss`` when the ops matched but a condition failed)."""
        return search(self, node, frozenset())

    def find(self, gm: GraphModule) -> list[PatternMatch]:
        """Every match in ``gm``, in graph order; a node belongs to at most one match.

        Nodes are tried from the outputs backwards (as `PatternPass` does), so the largest match wins.
        """
        claimed: set[Node] = set()
        found = []
        for node in reversed(list(gm.graph.nodes)):
            if node in claimed:
                continue
            match = search(self, node, claimed)
            if match:
                found.append(match.value)
                claimed.update(match.value.nodes)
        return found[::-1]

    # ------------------------------------------------------------------ roles of pattern nodes
    def role(self, node: Node) -> str:
        """"wildcard", "constant", "named", "terms" (a sum, a product or a `sum_of`) or "op"."""
        if node.op == "placeholder":
            return "wildcard"
        if node.target is constant:
            return "constant"
        if node.target is named:
            return "named"
        if node in self.terms:
            return "terms"
        return "op"

    def sum_of_nodes(self) -> Iterator[Node]:
        yield from (node for node in self.graph.nodes if isinstance(node.target, SumOf))

    def _compile(self, node: Node) -> None:
        if node.op in ("placeholder", "output"):
            return
        if node.op == "get_attr":
            raise PatternError(f"pattern {self.name} uses a tensor it did not get as a parameter; "
                               "pass weights and constants in as parameters")
        if node.target is constant:
            if not (isinstance(node.args[0], Node) and node.args[0].op == "placeholder"):
                raise PatternError(f"pattern {self.name}: constant() takes one of the pattern's parameters")
            return
        if node.target is named:
            if node.args[0] in self.parameters:
                raise PatternError(f"pattern {self.name}: named({node.args[0]!r}, ...) reuses a parameter's name")
            return
        if isinstance(node.target, SumOf):
            marker = node.target
            branch = Pattern(marker.branch, shared=marker.shared)
            if len(branch.parameters) < marker.shared:
                raise PatternError(f"pattern {self.name}: the sum_of branch takes {len(branch.parameters)} "
                                   f"parameters but is given {marker.shared} shared values")
            if any(True for _ in branch.sum_of_nodes()):
                raise PatternError(f"pattern {self.name}: sum_of cannot be nested")
            self.branch_patterns[node] = branch
            self.terms[node] = Terms("sum", (), node)
            return
        shape = describe_pattern_node(node, self.name)
        if shape.kind in SUM_OPS:
            self.terms[node] = self._flatten(node, "sum")
        elif shape.kind in PRODUCT_OPS:
            self.terms[node] = self._flatten(node, "product")
        else:
            self.shapes[node] = shape

    def _flatten(self, node: Node, group: Literal["sum", "product"]) -> Terms:
        terms = flatten(node, group, self._describe_arithmetic, lambda n: len(n.users) == 1)
        fixed, branches = [], None
        for weight, value in terms:
            if isinstance(value, Node) and isinstance(value.target, SumOf):
                if group == "product" or weight != 1 or branches is not None:
                    raise PatternError(f"pattern {self.name}: a sum_of must be added (once) to a sum, "
                                       "not multiplied, scaled or subtracted")
                branches = value
            else:
                fixed.append((weight, value))
        fixed.sort(key=lambda term: self._selectivity(term[1]))
        return Terms(group, tuple(fixed), branches)

    def _describe_arithmetic(self, node: Node) -> OpShape | None:
        if node.op != "call_function" and node.op != "call_method":
            return None
        if node.target in (constant, named) or isinstance(node.target, SumOf):
            return None
        view = Arithmetic.from_node(node)
        return None if view is None else OpShape(view.op, view.op, view.operands, {"alpha": view.alpha})

    def _selectivity(self, value: Any) -> int:
        """Order for matching terms: ops first (they pin their inputs), then constants, then wildcards."""
        if not isinstance(value, Node):
            return 1
        return {"wildcard": 3, "constant": 2}.get(self.role(value), 0)

    def _bound_names(self, shared: int) -> tuple[str, ...]:
        names = list(self.parameters[shared:])
        names += [str(node.args[0]) for node in self.graph.nodes if node.target is named]
        for marker_node, branch in self.branch_patterns.items():
            clash = set(branch.bound_names) & (set(self.parameters) | {marker_node.target.name})
            if clash:
                raise PatternError(f"pattern {self.name}: sum_of branch names {sorted(clash)} are also used "
                                   "outside the branch; rename them")
            names += [*branch.bound_names, marker_node.target.name]
        return tuple(names)
