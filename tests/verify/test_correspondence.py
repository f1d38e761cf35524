"""`fxrep.verify.correspondence`: what each rewritten node stands for, and the few values to record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from fxrep.passes import FoldBatchNorm, default_pipeline
from torch.fx import GraphModule

from fxrep import pass_api as api
from fxrep.verify import correspond
from tests.verify.conftest import chain, rewrite

X = torch.randn(2, 8, 8, 8)


def names(gm: GraphModule, kind: str) -> set[str]:
    return {n.name for n in gm.graph.nodes if kind in str(n.target)}


@pytest.mark.parametrize("level", ["export", "symbolic_trace"])
def test_a_folded_batchnorm_is_an_exit_and_the_relu_it_feeds_an_entry(level):
    original, final = rewrite(chain(layers=2), X, [FoldBatchNorm()], level=level)
    correspondence = correspond(original, final)
    batch_norms = {n.name for n in original.graph.nodes
                   if api.BatchNorm.from_node(n) is not None}
    assert len(batch_norms) == 2
    assert correspondence.exits == batch_norms  # each replaced BN is compared with the conv that took it over
    relus = [n for n in original.graph.nodes if api.Activation.from_node(n) is not None]
    # the second block's new conv reads the first block's ReLU: the only value a new node reads
    assert correspondence.entries == {relus[0].name}
    assert correspondence.recorded == batch_norms | {relus[0].name}


def test_survivors_that_no_pass_changed_are_neither_recorded_nor_checked():
    original, final = rewrite(chain(layers=3), X, default_pipeline())
    correspondence = correspond(original, final)
    survivors = {n.name for n in final.graph.nodes} & {n.name for n in original.graph.nodes}
    relus = {n.name for n in original.graph.nodes if api.Activation.from_node(n) is not None}
    assert relus <= survivors
    assert not relus & set(correspondence.checks)  # an unchanged ReLU computes the original's value exactly
    assert correspondence.recorded <= correspondence.exits | relus


@dataclass(frozen=True)
class RewireRelu(api.Pass):
    """Makes the second ReLU read the first conv's output (a change made without `Rewriter.replace`)."""

    name: ClassVar[str] = "rewire"

    def __call__(self, gm):
        if gm.meta.get("rewired"):
            return api.PassResult(False)
        relus = [n for n in gm.graph.nodes if api.Activation.from_node(n) is not None]
        relus[1].args = (relus[0].all_input_nodes[0], *relus[1].args[1:])
        gm.meta["rewired"] = True
        gm.graph.eliminate_dead_code()
        gm.recompile()
        return api.PassResult(True)


def test_a_rewired_survivor_is_an_exit_of_its_own():
    original, final = rewrite(chain(layers=2), X, [RewireRelu()])
    correspondence = correspond(original, final)
    second = [n for n in original.graph.nodes if api.Activation.from_node(n) is not None][1].name
    assert correspondence.checks[second] == (second,)


@dataclass(frozen=True)
class ScaleWeightInPlace(api.Pass):
    """Doubles the first conv's weight tensor in place: the graph is unchanged, a constant is not."""

    name: ClassVar[str] = "scale_in_place"

    def __call__(self, gm):
        if gm.meta.get("scaled"):
            return api.PassResult(False)
        conv = next(n for n in gm.graph.nodes if api.Conv.from_node(n) is not None)
        api.Conv.from_node(conv).weight.mul_(2)
        gm.meta["scaled"] = True
        return api.PassResult(True)


def test_a_constant_changed_in_place_makes_its_readers_exits():
    original, final = rewrite(chain(layers=2), X, [ScaleWeightInPlace()])
    correspondence = correspond(original, final)
    conv = next(n.name for n in final.graph.nodes if api.Conv.from_node(n) is not None)
    assert correspondence.checks[conv] == (conv,)


def test_the_original_is_a_copy_the_passes_cannot_reach():
    original, final = rewrite(chain(layers=2), X, [ScaleWeightInPlace()])
    with torch.no_grad():
        assert not torch.allclose(original(X), final(X))
