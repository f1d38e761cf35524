"""`fxrep.verify.check`: the whole verification of `optimize`, its report lines and the error it leads to."""

from __future__ import annotations

import json

import torch
from fxrep.passes import default_pipeline

import fxrep
from fxrep.models import repvgg_small
from fxrep.verify import Rewritten, VerifySettings, check_rewrite, equivalence_error
from tests.helpers import randomized
from tests.verify.conftest import SUMMARIES, ShiftBias, chain, rewrite


def test_a_correct_model_passes_with_no_warning():
    model, x = randomized(repvgg_small()), torch.randn(2, 3, 32, 32)
    report = fxrep.optimize(model, x).fxrep_report
    verification = report.verification
    assert verification.passed and verification.within_tolerance
    assert verification.local.passed and not verification.warnings and verification.divergence is None
    assert "warning" not in str(report) and "rewritten regions checked locally, 0 failed" in str(report)
    assert report.seconds["verify"] > 0
    data = json.loads(json.dumps(report.to_dict()["verification"]))
    assert data["passed"] and data["local"]["passed"] and data["local"]["regions"] and data["warnings"] == []


def test_settings_without_local_checks_compare_the_outputs_alone():
    x = torch.randn(2, 8, 8, 8)
    original, final = rewrite(chain(layers=2), x, [*default_pipeline(), ShiftBias(index=0)])
    rewritten = Rewritten(original, final, final, SUMMARIES[id(final)])
    alone = check_rewrite(chain(layers=2), rewritten, (x,), VerifySettings(local=False))
    assert alone.local is None and not alone.passed
    error = equivalence_error(alone)
    assert error.pass_name is None and "not checked locally" in str(error)
    full = check_rewrite(chain(layers=2), rewritten, (x,), VerifySettings())
    assert equivalence_error(full).pass_name == "shift_bias"


def test_a_failing_region_is_an_error_whatever_the_outputs_do():
    """A wrong region whose output is multiplied by zero downstream: the outputs match, the region does not."""

    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = chain(layers=1)

        def forward(self, x):
            return x + 0 * self.block(x)

    x = torch.randn(2, 8, 8, 8)
    model = Masked().eval()
    original, final = rewrite(model, x, [*default_pipeline(), ShiftBias(index=0)])
    verification = check_rewrite(model, Rewritten(original, final, final, SUMMARIES[id(final)]), (x,),
                                 VerifySettings())
    assert verification.within_tolerance and not verification.passed
    error = equivalence_error(verification)
    assert error.pass_name == "shift_bias" and "FAILED" in "\n".join(verification.describe())
