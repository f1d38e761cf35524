"""`fxrep.verify.local`: every rewritten region checked alone, on the original graph's own values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from fxrep.passes import default_pipeline
from torch import nn

import fxrep
import fxrep.verify.local as local_module
from fxrep import pass_api as api
from fxrep.models import repvgg_small
from fxrep.pass_manager import pass_changes
from fxrep.verify import correspond, input_sets, local_check
from tests.helpers import randomized
from tests.verify.conftest import SUMMARIES, ShiftBias, chain, rewrite

X = torch.randn(2, 8, 8, 8)


def check(original, final, x, random_inputs=1):
    return local_check(original, final, input_sets((x,), random_inputs), pass_changes(final), SUMMARIES[id(final)])


def test_a_correct_rewrite_passes_and_records_only_entries_and_exits(monkeypatch):
    model, x = randomized(repvgg_small()), torch.randn(2, 3, 32, 32)
    original, final = rewrite(model, x, default_pipeline())
    kept = []
    real = local_module._record

    def spy(*args, **kwargs):
        kept.append(real(*args, **kwargs))
        return kept[-1]

    monkeypatch.setattr(local_module, "_record", spy)
    result = check(original, final, x)
    assert result.passed and result.regions and not result.warnings
    assert result.worst.max_rel < 1e-5
    recorded = correspond(original, final).recorded
    assert len(kept) == 2 and all(set(values) == recorded for values in kept)  # one recording per input set
    assert result.recorded == len(recorded) < result.graph_nodes / 4


@pytest.mark.parametrize("level", ["export", "symbolic_trace"])
def test_a_wrong_region_is_the_only_failure_its_readers_still_pass(level):
    """The broken first block feeds every later block, but each later block is fed the original's values."""
    model = chain(layers=3)
    original, final = rewrite(model, X, [*default_pipeline(), ShiftBias(index=0)], level=level)
    result = check(original, final, X)
    assert [r.region.pass_name for r in result.failures] == ["shift_bias"]
    (failure,) = result.failures
    assert failure.region.module == "1" and failure.max_rel > 1e-2  # the BatchNorm whose value it took over
    assert failure.region.rule == "wrong_bias"
    assert len(result.regions) >= 3 and all(r.max_rel < 1e-5 for r in result.regions if not r.failed)


def test_two_passes_rewriting_one_value_are_both_named_the_last_one_blamed():
    original, final = rewrite(chain(layers=1), X, [*default_pipeline(), ShiftBias(index=0)])
    (failure,) = check(original, final, X).failures
    assert failure.region.passes == ("fold_batchnorm", "shift_bias")
    assert "passes 'fold_batchnorm' then 'shift_bias' (rule 'wrong_bias')" in failure.region.describe()


class Cancelling(nn.Module):
    """conv with a 1e5 bias that its BatchNorm subtracts again: float32 loses 3 digits in the original."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        with torch.no_grad():
            self.conv.bias.fill_(1e5)
            self.bn.running_mean.fill_(1e5)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


def test_an_ill_conditioned_region_is_accepted_by_its_float64_reference_with_a_warning():
    model = Cancelling().eval()
    original, final = rewrite(model, X, default_pipeline())
    result = check(original, final, X)
    (region,) = result.regions
    assert region.max_rel > 1e-4  # the float32 comparison alone would fail it
    assert result.passed and "ill-conditioned" in result.warnings[0]
    assert "off by" in result.warnings[0]


def test_a_wrong_rewrite_of_an_ill_conditioned_region_still_fails():
    model = Cancelling().eval()
    original, final = rewrite(model, X, [*default_pipeline(), ShiftBias(index=0, shift=0.2)])
    result = check(original, final, X)
    assert not result.passed and result.failures[0].region.pass_name == "shift_bias"
    assert not result.warnings


def test_optimize_reports_the_ill_conditioned_region_as_a_warning_and_strict_refuses_it():
    model = Cancelling().eval()
    report = fxrep.optimize(model, X).fxrep_report
    assert report.verification.passed and any("ill-conditioned" in w for w in report.verification.warnings)
    assert "warning:" in str(report)
    with pytest.raises(fxrep.EquivalenceError, match="strict=True"):
        fxrep.optimize(model, X, strict=True)


@dataclass(frozen=True)
class BadWeight(api.Pass):
    """A wrong pass: gives the first conv a weight of the wrong shape, so the graph raises when it runs."""

    name: ClassVar[str] = "bad_weight"

    def __call__(self, gm):
        if gm.meta.get("bad_weight"):
            return api.PassResult(False)
        conv = next(n for n in gm.graph.nodes if api.Conv.from_node(n) is not None)
        bad = api.Rewriter(gm).constant(torch.zeros(3, 3), "bad_weight", before=conv)
        conv.args = (conv.args[0], bad, *conv.args[2:])
        gm.meta["bad_weight"] = True
        gm.recompile()
        return api.PassResult(True)


def test_a_node_that_raises_fails_its_region_naming_the_pass_that_broke_it():
    original, final = rewrite(chain(layers=2), X, [BadWeight()])
    (failure,) = check(original, final, X).failures
    assert "raised RuntimeError" in failure.problem and failure.region.pass_name == "bad_weight"
