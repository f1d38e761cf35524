"""Declarative rewrite patterns: write what to find as a small PyTorch function.

    from fxrep import patterns as P

    def hardswish_by_hand(x):
        return x * F.relu6(x + 3) / 6

    fuse = P.PatternPass(name="fuse_hardswish", pattern=hardswish_by_hand,
                         replacement=lambda x: F.hardswish(x))
    gm = fxrep.optimize(model, inputs, passes=[*fxrep.passes.default_pipeline(), fuse])

Unlike ``torch.fx.subgraph_rewriter.replace_pattern``, which compares call targets one by one:

- ops are matched through fxrep's op views, so ``F.conv2d(x, w)`` matches ``nn.Conv2d`` modules,
  ``F.conv2d`` calls and ``aten.conv2d`` / ``aten.convolution`` alike; the clamp family (``relu``,
  ``relu6``, ``hardtanh``, ``clamp``) is one op with bounds. Weights are wildcards bound by name;
  ``constant(gamma)`` requires (and binds) a value known without running the graph.
- sums and products are matched in any order and association: ``a + b + c`` matches ``(c + a) + b``.
- ``sum_of(branch, *shared)`` matches a sum of 1..n terms that each match ``branch``.
- a match is refused when one of its inner nodes is used outside it ("conv3 feeds 2 users ...").

`PatternPass` turns a pattern and a replacement (a function, inlined in the graph's own form, or a
``(match, rewriter) -> Node`` callback) into a pass; `Pattern` matches on its own, for imperative passes.
"""

from __future__ import annotations

from .markers import PatternError, constant, named, sum_of
from .match_result import Branch, PatternMatch
from .pattern import Pattern
from .pattern_pass import PatternPass

__all__ = [
    "Branch",
    "Pattern",
    "PatternError",
    "PatternMatch",
    "PatternPass",
    "constant",
    "named",
    "sum_of",
]
