"""What a successful match yields: `PatternMatch` (and `Branch`, one term of a `sum_of`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch.fx import Node


@dataclass(frozen=True)
class Branch:
    """One term of a `sum_of`: the graph node it matched and the branch's own wildcards."""

    node: Node
    bindings: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.bindings[name]


@dataclass(frozen=True)
class PatternMatch:
    """A successful match: the graph node the pattern's result matched (``root``), every graph node
    the pattern's ops matched (``nodes``, in graph order, root last), and what the wildcards stand for.

    ``match[name]`` is a wildcard's value: a graph `Node`, or a tensor / number for `constant` wildcards
    and weights. Per-branch wildcards of a `sum_of` are lists (one entry per branch), and the
    `sum_of`'s name gives the `Branch` list.
    """

    root: Node
    nodes: tuple[Node, ...]
    bindings: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        if name not in self.bindings:
            raise KeyError(f"the pattern binds no {name!r}; it binds {sorted(self.bindings)}")
        return self.bindings[name]

    def __contains__(self, name: object) -> bool:
        return name in self.bindings

    def get(self, name: str, default: Any = None) -> Any:
        return self.bindings.get(name, default)
