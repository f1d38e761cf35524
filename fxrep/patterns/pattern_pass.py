"""`PatternPass`: a rewrite pass made of one pattern and what to replace its matches with.

    FuseHardswish = PatternPass(name="fuse_hardswish", pattern=lambda x: x * F.relu6(x + 3) / 6,
                                replacement=lambda x: F.hardswish(x))

The pass tries the pattern at every node, from the graph's outputs backwards, so the largest match
wins: in ``(x + conv1(x)) + conv3(x)`` a sum pattern matches the whole add tree, not its inner add.
For each match it runs the optional ``check``, then either inlines ``replacement`` (a PyTorch
function of the wildcards) or calls ``rewrite(match, rewriter)``, which emits what it wants through
the `Rewriter` and returns the node that takes over the root's value. Nodes of one match are never
part of another in the same run. The result counts firings under the pass's name and records near
misses and refusals with their reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch.fx import GraphModule, Node

from ..affine import is_side_effect_only
from ..algebra import NotExact
from ..match import Match
from ..pass_base import Pass, PassResult
from ..rewriter import Rewriter
from .markers import PatternError
from .match_result import PatternMatch
from .matcher import search
from .pattern import Pattern
from .replacement import inline_function

RewriteFunction = Callable[[PatternMatch, Rewriter], "Node | Match"]
CheckFunction = Callable[[PatternMatch], "Match | bool"]


@dataclass(frozen=True)
class PatternPass(Pass):
    """Replace every match of ``pattern`` (see the module docstring).

    Give exactly one of ``replacement`` (a function of the pattern's wildcards, by name, traced and
    inlined in the graph's form) and ``rewrite`` (``(match, rewriter) -> Node``, or ``Match.fail``
    to refuse; raising `NotExact` refuses too). ``check(match)`` may refuse a match before anything
    is emitted by returning False or ``Match.fail(reason)``.
    """

    name: str = "pattern"
    pattern: Callable[..., Any] | Pattern | None = None
    replacement: Callable[..., Any] | None = None
    rewrite: RewriteFunction | None = None
    check: CheckFunction | None = None
    compiled: Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pattern is None:
            raise PatternError(f"PatternPass {self.name!r} needs a pattern function")
        if (self.replacement is None) == (self.rewrite is None):
            raise PatternError(f"PatternPass {self.name!r} needs exactly one of replacement= (a function of the "
                               "wildcards) and rewrite= (a callback (match, rewriter) -> Node)")
        compiled = self.pattern if isinstance(self.pattern, Pattern) else Pattern(self.pattern)
        object.__setattr__(self, "compiled", compiled)

    def __call__(self, gm: GraphModule) -> PassResult:
        result = PassResult()
        rewriter = Rewriter(gm)
        claimed: set[Node] = set()
        for node in reversed(list(gm.graph.nodes)):
            if node in claimed or not _is_live(node, claimed):
                continue
            match = search(self.compiled, node, claimed)
            if not match:
                if match.near_miss:
                    result.refuse(node, match.reason)
                continue
            verdict = self._apply(match.value, rewriter)
            if not verdict:
                result.refuse(node, verdict.reason)
                continue
            rewriter.replace(node, verdict.value, self.name)
            claimed.update(match.value.nodes)
        rewriter.finish()
        return result.absorb(rewriter)

    def _apply(self, match: PatternMatch, rewriter: Rewriter) -> Match:
        """Check, then emit the replacement: ``Match.ok(new_node)`` or ``Match.fail(reason)``."""
        try:
            if self.check is not None:
                verdict = self.check(match)
                if not verdict:
                    reason = getattr(verdict, "reason", "") or f"{self.name}'s check refused the match"
                    return Match.fail(reason)
            if self.rewrite is not None:
                new = self.rewrite(match, rewriter)
            else:
                new = inline_function(self.replacement, match, rewriter)  # type: ignore[arg-type]
        except NotExact as error:
            return Match.from_error(error)
        if isinstance(new, Match):
            if new.matched and isinstance(new.value, Node):
                return new
            return Match.fail(new.reason or f"{self.name}'s rewrite refused the match")
        if not isinstance(new, Node):
            raise TypeError(f"{self.name}'s rewrite must return the node that replaces {match.root.name} "
                            f"(or Match.fail(reason)), got {type(new).__name__}")
        if new is match.root:
            return Match.fail(f"{self.name}'s rewrite returned the matched node itself")
        return Match.ok(new)


def _is_live(node: Node, claimed: set[Node]) -> bool:
    """Whether ``node`` computes something still used (dead nodes are removed at the end anyway)."""
    if node.op in ("placeholder", "output", "get_attr"):
        return False
    return any(not is_side_effect_only(user) and user not in claimed for user in node.users)
