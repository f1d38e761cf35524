"""The one cost interface: both models implement it, and every question goes through ``seconds(signature)``."""

from __future__ import annotations

import pytest
import torch

from fxrep.algebra import ConvMap
from fxrep.cost import (
    GPU,
    ConvSignature,
    CostEstimator,
    CostModel,
    ElementwiseSignature,
    MeasuredCostModel,
    PoolSignature,
    SignatureCosts,
    cost_model_for,
    node_signature,
    signature_fields,
    signature_from_fields,
)

from .conftest import conv_signature, small_block


def models(timer):
    return {"analytic cpu": CostModel(), "analytic gpu": CostModel(GPU), "measured": MeasuredCostModel(timer=timer)}


@pytest.mark.parametrize("level", ["export", "symbolic_trace"])
def test_node_seconds_is_seconds_of_the_node_signature_for_both_models(level, counting_timer):
    gm = small_block(level)
    for name, model in models(counting_timer).items():
        assert isinstance(model, CostEstimator), name
        costed = 0
        for node in gm.graph.nodes:
            signature = node_signature(node)
            expected = 0.0 if signature is None else model.seconds(signature)
            assert model.node_seconds(node) == expected, (name, node.name)
            costed += signature is not None
        assert costed >= 4, "the block's convs, BatchNorms and add are all costed"


def test_equal_signatures_get_the_same_answer_and_measure_once(counting_timer):
    measured = MeasuredCostModel(timer=counting_timer)
    analytic = CostModel()
    first, second = conv_signature(), conv_signature()  # equal, not the same object
    assert first == second and hash(first) == hash(second)
    assert measured.seconds(first) == measured.seconds(second)
    assert analytic.seconds(first) == analytic.seconds(second)
    assert counting_timer.calls == 1


def test_the_conveniences_ask_seconds_of_the_signature_they_describe(counting_timer):
    conv = ConvMap(torch.randn(16, 8, 3, 3), None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    for name, model in models(counting_timer).items():
        assert model.conv_seconds(conv, (10, 10), 2) == model.seconds(conv_signature()), name
        assert model.elementwise_seconds(800, 2) == model.seconds(ElementwiseSignature("elementwise", 800, 2)), name


def test_a_users_estimator_with_the_two_methods_is_accepted_and_asked():
    asked = []

    class Constant:
        def seconds(self, signature):
            asked.append(signature)
            return 1.0

        def node_seconds(self, node):
            return 2.0

    wrapped = cost_model_for(Constant())
    assert isinstance(Constant(), CostEstimator) and isinstance(wrapped, SignatureCosts)
    assert wrapped.seconds(conv_signature()) == 1.0 and asked == [conv_signature()]
    assert wrapped.conv_seconds(ConvMap(torch.randn(4, 4, 1, 1), None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
                                (5, 5)) == 1.0
    assert wrapped.node_seconds(next(iter(small_block().graph.nodes))) == 2.0


@pytest.mark.parametrize("cost", ["fast", 3, object()])
def test_anything_else_is_refused_naming_the_choices(cost):
    with pytest.raises(ValueError, match="'analytic'.*'measure'"):
        cost_model_for(cost)


def test_a_timing_cache_only_goes_with_measure(tmp_path):
    with pytest.raises(ValueError, match="only used with cost='measure'"):
        cost_model_for("analytic", tmp_path / "t.json")


@pytest.mark.parametrize("signature", [
    conv_signature(padding=((0, 1), (1, 1)), groups=2, stride=(2, 2)),
    ConvSignature(8, 4, (), (), (), (), 1, (), 5),
    PoolSignature(8, (3, 3), (1, 1), (1, 1), (10, 10), 2),
    ElementwiseSignature("addcmul", 800, 1, 4, 8),
])
def test_signature_fields_round_trip_without_dtype_and_device(signature):
    fields = signature_fields(signature)
    assert "dtype" not in fields and "device" not in fields
    assert signature_from_fields(fields) == signature
    assert signature_from_fields(fields, dtype="float16").dtype == "float16"


def test_node_signatures_record_the_dtype_and_device():
    signature = next(s for s in map(node_signature, small_block().graph.nodes) if isinstance(s, ConvSignature))
    assert (signature.dtype, signature.device) == ("float32", "cpu")
