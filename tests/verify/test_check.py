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


def test_local_checks_run_on_two_sets_and_on_every_set_whose_outputs_differ(monkeypatch):
    import fxrep.verify.check as check_module

    labels = []
    real = check_module.local_check

    def spy(original, final, sets, *args):
        labels.append([label for label, _ in sets])
        return real(original, final, sets, *args)

    monkeypatch.setattr(check_module, "local_check", spy)
    x, settings = torch.randn(2, 8, 8, 8), VerifySettings(random_inputs=3)
    for passes in (default_pipeline(), [*default_pipeline(), ShiftBias(index=0)]):
        original, final = rewrite(chain(layers=2), x, passes)
        check_rewrite(chain(layers=2), Rewritten(original, final, final, SUMMARIES[id(final)]), (x,), settings)
    assert labels == [["example inputs", "random inputs #1"],
                      ["example inputs", "random inputs #1", "random inputs #2", "random inputs #3"]]


def test_without_a_copy_of_the_capture_the_report_says_the_local_checks_were_skipped():
    x = torch.randn(2, 8, 8, 8)
    _, final = rewrite(chain(layers=2), x, default_pipeline())
    verification = check_rewrite(chain(layers=2), Rewritten(None, final, final), (x,), VerifySettings())
    assert verification.passed and "could not be copied" in verification.local.skipped
    assert "local checks skipped" in "\n".join(verification.describe())
