"""What a pass is and what it reports.

A pass is a frozen dataclass: its options are fields, ``name`` is a class variable, and calling it
on a GraphModule rewrites the graph in place and returns a `PassResult` that is truthy when the
graph changed. Results say how often each rule fired, which candidates were refused and why
(`Refusal`), and the cost estimates behind each decision (`CostDecision`).

A pass says "no, because" with a `Match` (`fxrep.match`, re-exported here): a success carrying what
was matched, or a failure carrying the reason, so refusals are recorded where they are found
(``Match.fail("conv3 feeds 2 users")``).

Every pass that rewrites runs the same skeleton (a `PassResult`, one `Rewriter`, ``finish``, then
``absorb``): `Pass.rewrite_each` runs it around a function called on each node, `Pass.rewrite_graph`
around a function of the whole graph::

    def __call__(self, gm):
        return self.rewrite_each(gm, self.fold)    # fold(node, rewriter) -> None | Match
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from torch.fx import GraphModule, Node

from .match import Match

if TYPE_CHECKING:
    from .rewriter import Rewriter


@dataclass(frozen=True)
class Refusal:
    """A candidate a pass looked at and left alone, with the reason."""

    node: str
    reason: str
    module: str = ""

    @classmethod
    def at(cls, node: Node, reason: str) -> Refusal:
        return cls(node.name, reason, module_path_of(node))


@dataclass(frozen=True)
class Rewrite:
    """One rewrite a pass made: the node whose value is now computed differently, and the rule."""

    node: str
    rule: str
    module: str = ""


@dataclass(frozen=True)
class CostDecision:
    """One cost-model decision: estimated seconds before/after a rewrite, and what was done."""

    node: str
    before: float
    after: float
    applied: bool
    note: str = ""
    module: str = ""
    members: tuple[str, ...] = ()
    """Names of the nodes the decision covers (a region's nodes), in graph order."""
    plan: str = ""
    """What the chosen alternative computes (a region's plan: each materialised value and its ops)."""
    rejected: str = ""
    """The best alternative not chosen, with its estimate ("" when there was none)."""
    rejected_seconds: float | None = None

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before > 0 else float("inf")


@dataclass
class PassResult:
    """What one run of a pass did. ``bool(result)`` is True when the graph changed."""

    modified: bool = False
    counts: Counter = field(default_factory=Counter)
    refusals: list[Refusal] = field(default_factory=list)
    decisions: list[CostDecision] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.modified

    def absorb(self, rewriter: Rewriter) -> PassResult:
        """Take over what a `Rewriter` did (changed or not, rule counts, rewrites); returns self."""
        self.modified = self.modified or rewriter.modified
        self.counts.update(rewriter.counts)
        self.rewrites.extend(rewriter.rewrites)
        return self

    def refuse(self, node: Node, reason: str) -> None:
        self.refusals.append(Refusal.at(node, reason))


class Pass:
    """Base class of every pass; subclass it as a ``@dataclass(frozen=True)`` with options as fields."""

    name: ClassVar[str] = "pass"

    def __call__(self, gm: GraphModule) -> PassResult:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(gm) -> PassResult")

    @staticmethod
    def rewrite_graph(gm: GraphModule, body: Callable[[Rewriter, PassResult], None]) -> PassResult:
        """Run ``body(rewriter, result)`` with a fresh `Rewriter` on ``gm``, then finish it.

        ``body`` edits the graph through ``rewriter`` and records refusals and decisions in
        ``result``; afterwards the rewriter cleans up (`Rewriter.finish`) and ``result`` takes over
        what it did (changed or not, rule counts, rewrites).
        """
        from .rewriter import Rewriter  # the rewriter builds on this module

        result = PassResult()
        rewriter = Rewriter(gm)
        body(rewriter, result)
        rewriter.finish()
        return result.absorb(rewriter)

    @staticmethod
    def rewrite_each(gm: GraphModule, rewrite: Callable[[Node, Rewriter], Match | None],
                     nodes: Iterable[Node] | None = None) -> PassResult:
        """`rewrite_graph` calling ``rewrite(node, rewriter)`` on each node (default: all, in graph order).

        ``rewrite`` returns None (or ``Match.none()``) for a node that is no candidate, ``Match.ok(...)``
        when it rewrote it, and ``Match.fail(reason)`` to leave a candidate alone: that becomes a
        `Refusal` at the node.
        The nodes are listed before the first call, so nodes it emits are not visited.
        """
        def body(rewriter: Rewriter, result: PassResult) -> None:
            for node in list(gm.graph.nodes if nodes is None else nodes):
                outcome = rewrite(node, rewriter)
                if outcome is not None and not outcome and outcome.reason:
                    result.refuse(node, outcome.reason)

        return Pass.rewrite_graph(gm, body)


def module_path_of(node: Node) -> str:
    """The module a node came from (``layer1.0.conv1``), from its recorded module stack ("" if none)."""
    path = recorded_module_path(node)
    return "" if path is None else path


def recorded_module_path(node: Node) -> str | None:
    """`module_path_of`, or None when ``node`` records no module (not even the root's ``""``)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    if stack:
        return str(list(stack.values())[-1][0])
    return None
