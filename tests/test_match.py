"""`fxrep.match`: the one result type for "yes, this" / "no, because", and where `NotExact` becomes one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn

import fxrep
from fxrep import pass_api as api
from fxrep.algebra import NotExact, compose, conv_map
from fxrep.capture import capture
from fxrep.match import Match, attempt
from fxrep.pass_base import Pass


def test_ok_is_the_only_truthy_kind_and_carries_its_value():
    found = Match.ok(3)
    assert found and found.value == 3 and found.reason == "" and not found.near_miss
    refused = Match.fail("conv3 feeds 2 users")
    assert not refused and refused.value is None and refused.reason == "conv3 feeds 2 users"
    assert not refused.near_miss and Match.fail("ops matched", near_miss=True).near_miss
    nothing = Match.none()
    assert not nothing and nothing.reason == "" and nothing.value is None and nothing == Match.none()


def test_the_public_names_are_the_same_object():
    assert api.Match is Match and fxrep.Match is Match and api.attempt is attempt


def test_not_exact_carries_its_reason():
    error = NotExact("stride (2, 2) does not match (1, 1)")
    assert error.reason == str(error) == "stride (2, 2) does not match (1, 1)"
    assert Match.from_error(error) == Match.fail("stride (2, 2) does not match (1, 1)")


def test_attempt_turns_not_exact_into_a_failure_with_its_reason():
    inner = conv_map(torch.randn(4, 3, 3, 3), torch.randn(4), 1, 0, 1, 1)
    outer = conv_map(torch.randn(5, 4, 3, 3), None, 1, 1, 1, 1)  # zero padding around a biased conv
    with pytest.raises(NotExact) as raised:
        compose(outer, inner)
    refused = attempt(compose, outer, inner)
    assert not refused and refused.reason == str(raised.value)
    composed = attempt(compose, conv_map(torch.randn(5, 4, 1, 1), None, 1, 0, 1, 1), inner)
    assert composed and composed.value.weight.shape == (5, 3, 3, 3)


def test_attempt_lets_other_errors_through():
    def broken():
        raise RuntimeError("a bug, not a refusal")

    with pytest.raises(RuntimeError, match="a bug"):
        attempt(broken)


@dataclass(frozen=True)
class _Answers(Pass):
    """Answers each ReLU with the given result."""

    name: ClassVar[str] = "answers"
    answer: Match | None = None

    def __call__(self, gm):
        def rewrite(node, rewriter):
            return self.answer if node.op == "call_module" else None

        return self.rewrite_each(gm, rewrite)


@pytest.mark.parametrize(("answer", "refusals"), [
    (None, []),
    (Match.none(), []),
    (Match.fail("not today"), ["not today"]),
])
def test_rewrite_each_refuses_only_a_failure_with_a_reason(answer, refusals):
    gm = capture(nn.Sequential(nn.ReLU()), method="symbolic_trace").graph_module
    result = _Answers(answer)(gm)
    assert [refusal.reason for refusal in result.refusals] == refusals and not result
