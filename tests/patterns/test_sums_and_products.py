"""Sums and products match in any order and association; sum_of matches any number of branches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep import patterns as P
from tests.helpers import LEVELS, captured

X = torch.randn(1, 4, 8, 8)


def output_node(model, level):
    gm = captured(model.eval(), X, level=level)
    return next(n for n in gm.graph.nodes if n.op == "output").all_input_nodes[0]


def output_match(pattern, model, level):
    return P.Pattern(pattern).match(output_node(model, level))


class Lambda(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function
        self.a, self.b, self.c = (nn.Conv2d(4, 4, k, padding=k // 2) for k in (1, 3, 5))

    def forward(self, x):
        return self.function(self, x)


def three_convs(x, wa, wb, wc):
    return F.conv2d(x, wa) + F.conv2d(x, wb) + F.conv2d(x, wc)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("order", [
    lambda m, x: m.a(x) + m.b(x) + m.c(x),
    lambda m, x: (m.c(x) + m.a(x)) + m.b(x),
    lambda m, x: m.b(x) + (m.c(x) + m.a(x)),
    lambda m, x: torch.add(m.c(x), m.b(x)).add(m.a(x)),
], ids=["a+b+c", "(c+a)+b", "b+(c+a)", "methods"])
def test_sum_matches_any_order_and_association(level, order):
    match = output_match(three_convs, Lambda(order), level)
    assert match, match.reason
    kernels = sorted(match.value[name].shape[-1] for name in ("wa", "wb", "wc"))
    assert kernels == [1, 3, 5]
    assert len(match.value.nodes) == 5  # three convs and two adds


@pytest.mark.parametrize("level", LEVELS)
def test_subtraction_keeps_its_sign(level):
    pattern = lambda x, w: x - F.conv2d(x, w)  # noqa: E731
    assert output_match(pattern, Lambda(lambda m, x: x - m.b(x)), level)
    assert output_match(pattern, Lambda(lambda m, x: -m.b(x) + x), level)
    assert not output_match(pattern, Lambda(lambda m, x: m.b(x) - x), level)


@pytest.mark.parametrize("level", LEVELS)
def test_an_inner_sum_used_elsewhere_is_not_opened(level):
    def shared_inner_sum(m, x):
        inner = m.a(x) + m.b(x)
        return inner + m.c(x) + inner.mean()

    match = output_match(lambda x, wa, wb, wc, s: three_convs(x, wa, wb, wc) + s, Lambda(shared_inner_sum), level)
    assert not match and "terms" in match.reason


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("spelling", [
    lambda m, x: x * F.relu6(x + 3) / 6,
    lambda m, x: x / 6 * F.relu6(3 + x),
    lambda m, x: x * (F.relu6(x + 3) * (1 / 6)),
], ids=["x*r/6", "x/6*r", "x*(r*(1/6))"])
def test_products_match_any_order_and_normalise_division(level, spelling):
    match = output_match(lambda x: x * F.relu6(x + 3) / 6, Lambda(spelling), level)
    assert match, match.reason


@pytest.mark.parametrize("level", LEVELS)
def test_a_wildcard_used_twice_must_stand_for_one_node(level):
    match = output_match(lambda x: x * F.relu6(x + 3) / 6, Lambda(lambda m, x: m.a(x) * F.relu6(x + 3) / 6), level)
    assert not match and "x would stand for both" in match.reason


def repvgg_like(x):
    return x + P.sum_of(lambda x, w, b: F.conv2d(x, w, b), x)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("branches", [1, 2, 3])
def test_sum_of_matches_any_number_of_branches(level, branches):
    def forward(m, x):
        total = x
        for conv in (m.c, m.a, m.b)[:branches]:
            total = conv(x) + total
        return total

    match = output_match(repvgg_like, Lambda(forward), level)
    assert match, match.reason
    assert len(match.value["branches"]) == branches == len(match.value["w"]) == len(match.value["b"])
    assert [b.node for b in match.value["branches"]] == [n for n in match.value.nodes if n in
                                                         {b.node for b in match.value["branches"]}]
    assert match.value["x"].op == "placeholder"


@pytest.mark.parametrize("level", LEVELS)
def test_sum_of_branches_share_their_input(level):
    def forward(m, x):
        return x + m.a(x) + m.b(torch.relu(x))

    match = output_match(repvgg_like, Lambda(forward), level)
    assert not match and "x would stand for both" in match.reason


@pytest.mark.parametrize("level", LEVELS)
def test_sum_of_respects_branch_counts(level):
    three = output_node(Lambda(lambda m, x: m.a(x) + m.b(x) + m.c(x)), level)
    single = output_node(Lambda(lambda m, x: m.a(x)), level)
    any_number = P.Pattern(lambda x: P.sum_of(lambda x, w: F.conv2d(x, w), x))
    at_least_two = P.Pattern(lambda x: P.sum_of(lambda x, w: F.conv2d(x, w), x, min_branches=2))
    at_most_two = P.Pattern(lambda x: P.sum_of(lambda x, w: F.conv2d(x, w), x, max_branches=2))
    assert at_least_two.match(three) and any_number.match(three) and any_number.match(single)
    refused = at_most_two.match(three)
    assert not refused and "branches" in refused.reason
    assert not at_least_two.match(single)
