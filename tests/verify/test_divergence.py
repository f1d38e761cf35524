"""`fxrep.verify.divergence`: output differences that every region explains, and those none does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from fxrep.passes import default_pipeline
from torch import nn

import fxrep
from fxrep import pass_api as api
from fxrep.ops import target_name
from fxrep.verify import is_discrete
from fxrep.verify.outputs import ROUNDING_FACTOR
from fxrep.verify.running import run_graph
from tests.helpers import captured, randomized
from tests.verify.conftest import ScaleConvs, chain


class ManyOps(nn.Module):
    def forward(self, x):
        return (torch.topk(x, 2).indices, x.argmax(1), x > 0, torch.floor(x), x.long(), torch.sort(x, 1).values,
                torch.relu(x), x.amax(1), torch.nonzero(x > 1))


def test_discrete_ops_are_those_that_turn_floats_into_integers_booleans_or_steps():
    gm = captured(ManyOps(), torch.randn(3, 5), level="export")
    found = {}

    def classify(node, value, read):
        if node.op == "call_function":
            found[target_name(node)] = is_discrete(node, value, read)
        return value

    run_graph(gm, (torch.randn(3, 5),), classify)
    discrete = {name for name, yes in found.items() if yes}
    assert {"topk", "argmax", "gt", "floor", "sort"} <= discrete
    assert any("to" in name for name in discrete)  # x.long()
    assert not discrete & {"relu", "amax", "nonzero"}  # nonzero reads the comparison's booleans, not floats


class PickTop(nn.Module):
    """Scores per candidate, the top 4 picked, a table read at the picks (indexing with computed indices)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(16))
        self.register_buffer("table", torch.randn(16, 4, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return self.table[torch.topk(x * self.scale, 4).indices]


@dataclass(frozen=True)
class Jitter(api.Pass):
    """A pass that is right up to rounding: re-emits the scaling with its scale changed by +-2e-7."""

    name: ClassVar[str] = "jitter"

    def __call__(self, gm):
        if gm.meta.get("jittered"):
            return api.PassResult(False)
        node = next(n for n in gm.graph.nodes if n.op == "call_function" and "mul" in str(n.target))
        rewriter = api.Rewriter(gm)
        jitter = torch.tensor([2e-7, -2e-7] * 8)
        rewriter.replace(node, rewriter.mul(node.args[0], torch.ones(16) + jitter, like=node), "jitter")
        gm.meta["jittered"] = True
        rewriter.finish()
        return api.PassResult().absorb(rewriter)


def near_tie() -> torch.Tensor:
    x = 0.1 * torch.randn(1, 16, generator=torch.Generator().manual_seed(1))
    x[0, 0] = 5.0
    x[0, 1] = torch.nextafter(torch.tensor(5.0), torch.tensor(6.0))  # one float32 step above candidate 0
    return x


def test_a_topk_flip_by_rounding_is_a_warning_naming_the_op():
    report = fxrep.optimize(PickTop(), near_tie(), passes=[Jitter()]).fxrep_report
    verification = report.verification
    assert not verification.within_tolerance and verification.max_rel > 0.1  # the end-to-end check alone fails
    assert verification.passed and verification.local.passed
    divergence = verification.divergence
    assert divergence.cause == "discrete" and divergence.flips[0].op == "topk"
    assert divergence.before_error < 1e-6 and divergence.pinned_error < 1e-6
    (warning,) = verification.warnings
    assert "`topk`" in warning and "exact up to that op" in warning
    assert "warning:" in str(report) and "topk" in str(report)


def test_strict_makes_the_flip_an_error():
    with pytest.raises(fxrep.EquivalenceError, match="topk") as error:
        fxrep.optimize(PickTop(), near_tie(), passes=[Jitter()], strict=True)
    assert error.value.pass_name is None and "strict=True" in str(error.value)


class Quantizing(nn.Module):
    """conv + BN, then ``relu(y + 1e7) - 1e7``: float32 keeps no fraction of y near 1e7 (a step of 1)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)) + 1e7) - 1e7


def test_rounding_the_model_amplifies_is_a_warning_with_the_float64_evidence():
    x = torch.randn(2, 8, 8, 8)
    verification = fxrep.optimize(randomized(Quantizing()), x).fxrep_report.verification
    assert not verification.within_tolerance and verification.passed
    divergence = verification.divergence
    assert divergence.cause == "rounding" and not divergence.flips
    exact = divergence.float64
    assert exact.original_error > 1e-2  # the original model itself is that far from its exact value
    assert exact.optimized_error <= ROUNDING_FACTOR * exact.original_error and exact.amplification > 1e5
    assert "amplifies" in verification.warnings[0]


def test_a_difference_that_neither_a_flip_nor_rounding_explains_is_an_error():
    """Each conv off by 6e-5 passes its local check (tolerance 1e-4); five in a row are off by 3e-4."""
    with pytest.raises(fxrep.EquivalenceError, match="rounding does not explain it") as error:
        fxrep.optimize(chain(layers=4), torch.randn(2, 8, 8, 8),
                       passes=[*default_pipeline(), ScaleConvs(factor=1 + 6e-5)])
    assert error.value.pass_name is None and error.value.region is None
    assert "every rewritten region passed its local check" in str(error.value)
