"""The reference detector (`fxrep.models.detector`): a top-k flip by rounding is a warning, a wrong rewrite an error."""

from __future__ import annotations

import pytest
import torch
from fxrep.passes import default_pipeline

import fxrep
from fxrep.models import TinyDetector, randomize_, street_scene, tiny_detector_convert
from fxrep.verify import equivalence_error, verify
from tests.verify.conftest import ShiftBias


@pytest.fixture(scope="module")
def detector() -> TinyDetector:
    return randomize_(TinyDetector(), seed=0).eval()


@pytest.fixture(scope="module")
def scene() -> torch.Tensor:
    return street_scene(1, 256, seed=0)


@pytest.fixture(scope="module")
def optimized(detector, scene):
    return fxrep.optimize(detector, scene)


def test_outputs_are_rt_detr_shaped_and_export_reproduces_them(detector, scene):
    with torch.no_grad():
        outputs = detector(scene)
    assert outputs["pred_logits"].shape == (1, 300, 80) and outputs["pred_boxes"].shape == (1, 300, 4)
    assert bool(((outputs["pred_boxes"] > 0) & (outputs["pred_boxes"] < 1)).all())
    program = torch.export.export(detector, (scene,), strict=False)
    with torch.no_grad():
        exported = program.module()(scene)
    for key, value in outputs.items():
        torch.testing.assert_close(exported[key], value, rtol=1e-5, atol=1e-5)


def test_the_hand_conversion_is_exact_up_to_rounding_yet_changes_the_detections(detector, scene):
    """PyTorch's own conv + BN fusion: the backbone matches to rounding, the outputs by far more than 1e-4."""
    converted = tiny_detector_convert(detector)
    with torch.no_grad():
        features, fused = detector.backbone(scene), converted.backbone(scene)
    assert float((fused - features).abs().max() / features.abs().max()) < 1e-5
    assert verify(detector, converted, (scene,), random_inputs=0).max_rel > 1e-2


def test_the_end_to_end_check_alone_rejects_the_optimized_detector(detector, scene, optimized):
    """What `verify=True` did before local checks: compare the outputs only. It would blame a correct pass."""
    alone = verify(detector, optimized, (scene,), random_inputs=0)
    assert not alone.passed and alone.max_rel > 1e-2


def test_optimize_passes_with_a_warning_naming_the_topk(optimized):
    verification = optimized.fxrep_report.verification
    assert verification.passed and verification.local.passed and len(verification.local.regions) >= 5
    divergence = verification.divergence
    assert divergence.cause == "discrete"
    first = divergence.flips[0]
    assert first.op == "topk" and first.input_error <= verification.tolerance
    assert divergence.pinned_error <= verification.tolerance
    assert any("`topk`" in warning and "exact up to that op" in warning for warning in verification.warnings)
    text = str(optimized.fxrep_report)
    assert "verification: passed with 1 warning" in text and "topk" in text


def test_the_local_checks_record_a_small_part_of_the_graph(optimized):
    local = optimized.fxrep_report.verification.local
    assert 0 < local.recorded < local.graph_nodes / 5


def test_strict_makes_the_topk_flip_an_error(optimized):
    """What `optimize(..., strict=True)` raises for this verification (the end-to-end form is in tests/verify)."""
    error = equivalence_error(optimized.fxrep_report.verification, strict=True)
    assert isinstance(error, fxrep.EquivalenceError) and "topk" in str(error) and "strict=True" in str(error)
    assert error.pass_name is None and error.region is None
    assert equivalence_error(optimized.fxrep_report.verification) is None


def test_a_wrong_bias_is_caught_and_named_on_the_same_detector(detector, scene):
    """A custom pass that shifts the bias of one folded conv (the backbone's third stage)."""
    with pytest.raises(fxrep.EquivalenceError) as error:
        fxrep.optimize(detector, scene, passes=[*default_pipeline(), ShiftBias(index=2, shift=0.1)])
    assert error.value.pass_name == "shift_bias"
    region = error.value.region
    assert region.passes[-1] == "shift_bias" and region.rule == "wrong_bias"
    assert region.module.startswith("backbone.") and region.exits and region.nodes
    assert len(error.value.regions) == 1  # the regions after it are checked on the original's values: they pass
    message = str(error.value)
    assert "shift_bias" in message and region.module in message and region.exits[0] in message
