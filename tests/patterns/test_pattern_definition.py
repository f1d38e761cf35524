"""Writing patterns: tracing, markers used wrongly, and PatternPass arguments, each with a clear error."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fxrep import patterns as P


def test_pattern_lists_its_wildcards():
    def pattern(x, weight, gamma):
        return F.conv2d(x, weight) * P.constant(gamma)

    compiled = P.Pattern(pattern)
    assert compiled.parameters == ("x", "weight", "gamma")
    assert compiled.name == "pattern"


def test_markers_only_work_inside_patterns():
    with pytest.raises(P.PatternError, match="only meaningful inside a pattern"):
        P.constant(torch.ones(1))
    with pytest.raises(P.PatternError, match="only meaningful inside a pattern"):
        P.sum_of(lambda x: x, torch.ones(1))


@pytest.mark.parametrize("function, message", [
    (lambda x: x, "must compute something"),
    (lambda *xs: xs[0] + 1, r"takes \*xs"),
    (lambda x: F.relu(x) if x.sum() > 0 else x, "tracing"),
    (lambda x, w: F.conv2d(x, w) * P.constant(w + 1), "constant\\(\\) takes one of the pattern's parameters"),
    (lambda x: P.named("not a name", x + 1), "named\\(\\) takes a name"),
    (lambda x: P.named("x", x + 1), "reuses a parameter's name"),
    (lambda x: x * P.sum_of(lambda x, w: F.conv2d(x, w), x), "must be added"),
    (lambda x, w: x + P.sum_of(lambda x, w: F.conv2d(x, w), x), "also used outside the branch"),
    (lambda x: x + P.sum_of(lambda x: x + P.sum_of(lambda x, w: F.conv2d(x, w), x), x), "cannot be nested"),
    (lambda x: P.sum_of(lambda x, w: F.conv2d(x, w), x, min_branches=0), "min_branches"),
], ids=["returns-parameter", "varargs", "control-flow", "constant-of-expression", "bad-name", "named-clash",
        "sum_of-product", "name-clash", "nested-sum_of", "min-branches"])
def test_bad_patterns_are_refused_with_the_reason(function, message):
    with pytest.raises(P.PatternError, match=message):
        P.Pattern(function)


def test_pattern_pass_needs_a_pattern_and_exactly_one_replacement():
    with pytest.raises(P.PatternError, match="needs a pattern"):
        P.PatternPass(name="p", replacement=lambda x: x)
    with pytest.raises(P.PatternError, match="exactly one of replacement"):
        P.PatternPass(name="p", pattern=lambda x: x + 1)
    with pytest.raises(P.PatternError, match="exactly one of replacement"):
        P.PatternPass(name="p", pattern=lambda x: x + 1, replacement=lambda x: x, rewrite=lambda m, r: m.root)


def test_pattern_pass_is_a_frozen_value_compiled_once():
    def pattern(x):
        return F.relu(x + 1)

    first = P.PatternPass(name="p", pattern=pattern, replacement=F.relu)
    assert first == P.PatternPass(name="p", pattern=pattern, replacement=F.relu)
    assert isinstance(first.compiled, P.Pattern)
    with pytest.raises(AttributeError):
        first.name = "q"  # type: ignore[misc]
