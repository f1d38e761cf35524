"""The input-shape check at the top of the lean forward, and the error it raises.

A graph captured by ``torch.export`` is exact only for the input sizes it was captured with (static
dimensions are baked into views and into rewrites the passes proved for those sizes). ``torch.export``
checks them with a ``_guards_fn`` submodule called on every forward, which raises a bare
``AssertionError: Guard failed: x.size()[0] == 2``. The lean forward instead starts with one
comparison per input, written into its code:

    if x.shape[1:] != (3, 224, 224):
        raise fxrep_input_shape_error(x)

(about 0.2 us), and only on a mismatch builds an `InputShapeError` that names the captured shape,
the shape it got and what to pass (``dynamic_batch=True`` / ``dynamic_shapes=...``).

What it checks, from each placeholder's example value and the capture's range constraints: static
dimensions equal, a dynamic dimension that appears more than once (a batch shared by two inputs)
equal to its first appearance, bounds of a dynamic dimension other than the usual ``>= 1``, and a
Python scalar input equal to the value export specialised on. When a capture's sizes are related by
expressions (``dynamic_shapes`` with derived dimensions such as ``2 * h``, or guards the model added),
the check calls torch.export's guard function instead, still translating its failure into an
`InputShapeError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.fx import GraphModule, Node

from ..errors import InputShapeError
from ..graph_facts import facts

ERROR_FUNCTION = "fxrep_input_shape_error"
GUARDS_MODULE = "_guards_fn"
"""The submodule through which a ``torch.export`` graph checks its input sizes on every call."""

Dimension = int | str  # a static size, or the name of a dynamic one


def is_guards_call(node: Node) -> bool:
    """Whether ``node`` calls torch.export's input-guard submodule (`GUARDS_MODULE`): it computes nothing."""
    return node.op == "call_module" and str(node.target) == GUARDS_MODULE


@dataclass(frozen=True)
class InputSpec:
    """What one input of the captured graph must look like: a tensor shape, or a specialised scalar."""

    name: str
    shape: tuple[Dimension, ...] | None = None
    scalar: Any = None

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.name} = {self.scalar!r}"
        return f"{self.name} of shape ({', '.join(map(str, self.shape))}{',' if len(self.shape) == 1 else ''})"


@dataclass(frozen=True)
class InputCheck:
    """The check of every input (module docstring); ``bounds`` are the limits of dynamic sizes."""

    inputs: tuple[InputSpec, ...]
    bounds: tuple[tuple[str, int, int | None], ...] = ()
    guards_function: bool = False
    dynamic: bool = False

    def source(self, names: list[str]) -> list[str]:
        """Lines of Python (indented for a function body) that check inputs bound to ``names``."""
        if self.guards_function:
            call = ", ".join(names)
            return ["    try:", f"        self.{GUARDS_MODULE}({call})", "    except AssertionError as _guard:",
                    f"        raise {ERROR_FUNCTION}({call}, guard=_guard) from _guard"]
        conditions = self._conditions(names)
        if not conditions:
            return []
        return [f"    if {' or '.join(conditions)}:", f"        raise {ERROR_FUNCTION}({', '.join(names)})"]

    def _conditions(self, names: list[str]) -> list[str]:
        conditions: list[str] = []
        first_seen: dict[str, str] = {}
        for spec, name in zip(self.inputs, names, strict=True):
            if spec.shape is None:
                if spec.scalar is not None:
                    conditions.append(f"{name} != {spec.scalar!r}")
                continue
            conditions.extend(_shape_conditions(name, spec.shape, first_seen))
        limits = {symbol: (low, high) for symbol, low, high in self.bounds}
        for symbol, where in first_seen.items():
            low, high = limits.get(symbol, (0, None))
            if low > 1:
                conditions.append(f"{where} < {low}")
            if high is not None:
                conditions.append(f"{where} > {high}")
        return conditions

    def error(self, *values: Any, guard: BaseException | None = None) -> InputShapeError:
        """The error for a call with ``values`` (built only when the check failed)."""
        got = ", ".join(_describe_value(spec.name, value) for spec, value in zip(self.inputs, values, strict=False))
        expected = ", ".join(spec.describe() for spec in self.inputs)
        ranges = ", ".join(f"{symbol} from {max(low, 1)} to {high if high is not None else 'any size'}"
                           for symbol, low, high in self.bounds)
        guard_text = f" (torch.export's guard: {guard})" if guard is not None else ""
        if self.dynamic:
            advice = ("call it with inputs of that shape, or optimize again with dynamic_shapes=... marking every "
                      "dimension that varies, e.g. dynamic_shapes=({0: torch.export.Dim('batch'), "
                      "2: torch.export.Dim('height'), 3: torch.export.Dim('width')},)")
        else:
            advice = ("call it with inputs of that shape, or optimize again with dynamic_batch=True (the default; "
                      "any batch size) or dynamic_shapes=... marking the dimensions that vary, e.g. "
                      "dynamic_shapes=({0: torch.export.Dim('batch'), 2: torch.export.Dim('height')},)")
        message = (f"this optimized module was captured for {expected}"
                   f"{f' ({ranges})' if ranges else ''}; it was called with {got}{guard_text}. What to do: {advice}.")
        return InputShapeError(message, expected=tuple(s.shape if s.shape is not None else s.scalar
                                                       for s in self.inputs),
                               got=tuple(tuple(v.shape) if isinstance(v, torch.Tensor) else v for v in values))


def input_check_for(gm: GraphModule) -> InputCheck | None:
    """The check a captured graph needs, or None when it runs on any input size (symbolic_trace, GraphModules)."""
    recorded = facts(gm)
    if not recorded.shapes_guarded:
        return None
    placeholders = list(gm.graph.find_nodes(op="placeholder"))
    symbols: dict[Any, str] = {}
    specs, complex_sizes = [], False
    for node in placeholders:
        spec, related = _spec(node, symbols)
        specs.append(spec)
        complex_sizes = complex_sizes or related
    if not specs:
        return None
    ranges = recorded.input_ranges
    bounds = tuple((label, *ranges[str(symbol)]) for symbol, label in symbols.items() if str(symbol) in ranges)
    guards = complex_sizes or bool(recorded.input_guards)
    return InputCheck(tuple(specs), bounds, guards_function=guards and hasattr(gm, GUARDS_MODULE),
                      dynamic=bool(symbols))


def _spec(node: Node, symbols: dict[Any, str]) -> tuple[InputSpec, bool]:
    """The spec of one placeholder, and whether its sizes are expressions of others (2 * h)."""
    value = node.meta.get("val")
    if isinstance(value, torch.Tensor):
        shape: list[Dimension] = []
        related = False
        for index, size in enumerate(value.shape):
            if isinstance(size, int):
                shape.append(size)
                continue
            expression = size.node.expr
            if not expression.is_Symbol:
                related = True
                shape.append(str(expression))
                continue
            if expression not in symbols:
                symbols[expression] = "batch" if index == 0 and "batch" not in symbols.values() else \
                    f"size{len(symbols)}"
            shape.append(symbols[expression])
        return InputSpec(str(node.target), tuple(shape)), related
    if isinstance(value, bool | int | float):
        return InputSpec(str(node.target), scalar=value), False
    return InputSpec(str(node.target)), False


def _shape_conditions(name: str, shape: tuple[Dimension, ...], first_seen: dict[str, str]) -> list[str]:
    """``x.shape != (1, 3, 224, 224)`` for a static shape; runs of static sizes, then symbol equalities.

    The rank is checked first (by a slice that reaches the last dimension, else by ``dim()``), so the
    later ``x.shape[i]`` lookups cannot fail on an input of another rank.
    """
    if all(isinstance(size, int) for size in shape):
        return [f"{name}.shape != {tuple(shape)!r}"]
    runs, equalities = [], []
    run_start: int | None = None
    for index, size in enumerate((*shape, None)):
        if isinstance(size, int):
            run_start = index if run_start is None else run_start
            continue
        if run_start is not None:
            stop = "" if index == len(shape) else str(index)
            runs.append(f"{name}.shape[{run_start}:{stop}] != {tuple(shape[run_start:index])!r}")
            run_start = None
        if size is None:
            break
        where = f"{name}.shape[{index}]"
        if size in first_seen:
            equalities.append(f"{where} != {first_seen[size]}")
        else:
            first_seen[size] = where
    rank = [] if isinstance(shape[-1], int) else [f"{name}.dim() != {len(shape)}"]
    return rank + runs + equalities


def _describe_value(name: str, value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{name} of shape {tuple(value.shape)}"
    return f"{name} = {value!r}"
