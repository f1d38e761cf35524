"""Sums and products as flat lists of terms, so that order and association do not matter.

``a + b - c`` and ``(-c + a) + b`` both become the terms ``(1, a), (1, b), (-1, c)``; ``x * r / 6``
and ``x / 6 * r`` both become the factors ``(1, x), (1, r), (1, 1/6)``. Patterns and graphs are
flattened the same way; the matcher then pairs terms up in any order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch.fx import Node

from .op_shape import OpShape

SUM_OPS = ("add", "sub", "neg")
PRODUCT_OPS = ("mul", "div")


@dataclass(frozen=True)
class Terms:
    """A pattern sum (coefficients) or product (exponents) flattened into terms, most selective first."""

    group: Literal["sum", "product"]
    fixed: tuple[tuple[float, Any], ...]
    branches: Node | None = None
    """The `sum_of` marker among the terms, which takes the terms left over."""


def flatten(node: Node, group: Literal["sum", "product"], describe: Callable[[Node], OpShape | None],
            absorbable: Callable[[Node], bool]) -> list[tuple[float, Any]]:
    """``node``'s sum as (coefficient, term) pairs, or its product as (exponent, factor) pairs.

    Nested add/sub/neg (or mul/div) nodes for which ``absorbable`` holds are opened up, so any
    association gives the same terms. Number terms carry their sign or exponent in the value:
    ``x - 3`` has the terms ``(1, x), (1, -3)`` and ``x / 6`` the factors ``(1, x), (1, 1/6)``.
    """
    ops = SUM_OPS if group == "sum" else PRODUCT_OPS
    terms: list[tuple[float, Any]] = []

    def visit(value: Any, weight: float, top: bool) -> None:
        shape = describe(value) if isinstance(value, Node) else None
        if shape is not None and shape.kind in ops and (top or absorbable(value)):
            lhs, *rest = shape.operands
            alpha = shape.params.get("alpha", 1)
            if shape.kind == "neg":
                visit(lhs, -weight, False)
            elif shape.kind == "add":
                visit(lhs, weight, False)
                visit(rest[0], weight * alpha, False)
            elif shape.kind == "sub":
                visit(lhs, weight, False)
                visit(rest[0], -weight * alpha, False)
            elif shape.kind == "mul":
                visit(lhs, weight, False)
                visit(rest[0], weight, False)
            else:
                visit(lhs, weight, False)
                visit(rest[0], -weight, False)
            return
        if isinstance(value, int | float) and not isinstance(value, bool):
            if group == "sum":
                terms.append((1.0, weight * value))
            else:
                terms.append((1.0, value ** weight if value != 0 else value))
            return
        terms.append((weight, value))

    visit(node, 1.0, True)
    return terms
