"""`fxrep.verify.outputs` directly: the error measure, tolerances, input sets, the reference run and
`compare` / `verify` with the `Verification` they return."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fxrep.errors import InvalidModelError
from fxrep.verify import (
    TOLERANCES,
    Verification,
    compare,
    input_sets,
    random_like,
    reference_outputs,
    tolerance_for,
    value_error,
    verify,
)
from fxrep.verify.outputs import OutputError

X = torch.randn(2, 3, 4, 4)


def test_value_error_is_max_abs_over_the_expected_scale():
    expected = torch.tensor([1.0, -4.0, 2.0])
    actual = torch.tensor([1.5, -4.0, 2.0])
    assert value_error(expected, actual) == (0.5, 0.125)
    assert value_error(expected, expected.clone()) == (0.0, 0.0)


def test_value_error_of_integers_nans_and_zeros():
    ints = torch.tensor([1, 2, 3])
    assert value_error(ints, ints.clone()) == (0.0, 0.0)
    assert value_error(ints, torch.tensor([1, 2, 4])) == (math.inf, math.inf)
    assert value_error(torch.tensor([1.0, math.nan]), torch.tensor([1.0, 0.0])) == (math.inf, math.inf)
    assert value_error(torch.tensor([1.0, math.nan]), torch.tensor([1.0, math.nan])) == (0.0, 0.0)
    assert value_error(torch.zeros(2), torch.tensor([0.0, 0.5])) == (0.5, math.inf)


def test_value_error_says_why_values_cannot_be_compared():
    assert value_error(torch.zeros(2, 3), torch.zeros(3, 2)) == "has shape (3, 2), expected (2, 3)"
    assert value_error(torch.zeros(2), torch.zeros(2, dtype=torch.float64)) == (
        "has dtype torch.float64, expected torch.float32")
    assert value_error(torch.zeros(2), 3) == "has shape int, expected (2,)"
    assert value_error(3, 3) is None
    assert value_error(3, 4) == "differs: 4 vs 3"


def test_tolerance_is_the_loosest_among_the_floating_dtypes():
    assert tolerance_for([torch.zeros(1, dtype=torch.float64)]) == TOLERANCES[torch.float64] == 1e-9
    assert tolerance_for([torch.zeros(1)], [torch.zeros(1, dtype=torch.float16)]) == 1e-2
    assert tolerance_for([torch.zeros(1, dtype=torch.int64)]) == TOLERANCES[torch.float32]


def test_random_inputs_keep_shape_dtype_and_layout_and_integers_stay():
    generator = torch.Generator().manual_seed(0)
    half = torch.zeros(2, 3, 4, 4, dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    index = torch.tensor([2, 0])
    fresh_half, fresh_index, flag = random_like([half, index, True], generator)
    assert fresh_half.shape == half.shape and fresh_half.dtype == torch.float16
    assert fresh_half.is_contiguous(memory_format=torch.channels_last) and not fresh_half.is_contiguous()
    assert fresh_half.abs().sum() > 0
    assert fresh_index is index and flag is True


def test_input_sets_are_the_example_then_seeded_random_sets_then_extra():
    sets = input_sets((X,), 2, seed=3, extra=[("batch 1", (X[:1],))])
    assert [label for label, _ in sets] == ["example inputs", "random inputs #1", "random inputs #2", "batch 1"]
    assert sets[0][1][0] is X and not torch.equal(sets[1][1][0], sets[2][1][0])
    again = input_sets((X,), 2, seed=3)
    assert torch.equal(sets[1][1][0], again[1][1][0])  # the same seed gives the same sets


def test_reference_outputs_run_in_eval_mode_and_leave_the_model_alone():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Dropout(0.9)).train()
    before = model[0].running_mean.clone()
    (out,) = reference_outputs(model, [("example inputs", (X,))])
    torch.testing.assert_close(out, model.eval()(X))  # running statistics, no dropout
    model.train()
    assert model.training and torch.equal(model[0].running_mean, before)


def test_a_model_that_raises_on_its_inputs_is_invalid():
    with pytest.raises(InvalidModelError, match="the model itself raised on the example inputs"):
        reference_outputs(nn.Linear(7, 2), [("example inputs", (X,))])


def test_compare_collects_one_error_per_output_and_set():
    sets = input_sets((X,), 1)
    expected = [(x.relu(), x.sum()) for _, (x,) in sets]
    verification = compare(expected, lambda x: (x.relu() * (1 + 1e-6), x.sum()), sets)
    assert [(e.inputs, e.output) for e in verification.errors] == [
        ("example inputs", 0), ("example inputs", 1), ("random inputs #1", 0), ("random inputs #1", 1)]
    assert verification.tolerance == TOLERANCES[torch.float32]
    assert verification.within_tolerance and verification.passed
    assert 0 < verification.max_rel <= 1.1e-6 and verification.worst.output == 0


@pytest.mark.parametrize(("candidate", "message"), [
    (lambda x: x[:, :1], "on example inputs output 0 has shape (2, 1, 4, 4), expected (2, 3, 4, 4)"),
    (lambda x: (x,), "on example inputs the output structure differs"),
    (lambda x: 1 / 0, "on example inputs the optimized module raised ZeroDivisionError"),
])
def test_compare_reports_a_mismatch(candidate, message):
    sets = input_sets((X,), 0)
    verification = compare([X.clone()], candidate, sets)
    assert verification.mismatch.startswith(message)
    assert not verification.within_tolerance and not verification.passed
    assert verification.describe()[0].startswith("verification: FAILED; outputs: on example inputs")


def test_verify_passes_an_exact_rewrite_and_fails_a_wrong_one():
    conv = nn.Conv2d(3, 3, 1)
    scaled = nn.Conv2d(3, 3, 1)
    scaled.load_state_dict(conv.state_dict())
    assert verify(conv, scaled, (X,)).passed
    with torch.no_grad():
        scaled.weight.mul_(1.01)
    failed = verify(conv, scaled, (X,), random_inputs=3)
    assert len(failed.errors) == 4 and not failed.passed and failed.max_rel > TOLERANCES[torch.float32]
    assert verify(conv, scaled, (X,), tolerance=0.5).passed  # a given tolerance is used as it is


def test_describe_and_to_dict():
    verification = Verification(1e-4, [OutputError("example inputs", 0, 2e-6, 1e-6),
                                       OutputError("random inputs #1", 0, 4e-6, 3e-6)])
    assert verification.describe() == [
        "verification: passed; outputs on 2 input sets: max abs error 4e-06, max rel error 3e-06 (tolerance 0.0001)"]
    data = verification.to_dict()
    assert data["passed"] and data["max_rel"] == 3e-6 and data["local"] is None and data["divergence"] is None
    assert data["errors"][1] == {"inputs": "random inputs #1", "output": 0, "max_abs": 4e-6, "max_rel": 3e-6}
    skipped = Verification(1e-4, skipped="no example inputs")
    assert not skipped.passed and skipped.describe() == ["verification: skipped (no example inputs)"]
