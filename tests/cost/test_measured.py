"""Measured mode: ops rebuilt from signatures alone, the timing rule, and what cannot be timed."""

from __future__ import annotations

import statistics

import pytest
import torch
import torch.nn.functional as F

from fxrep.cost import (
    ConvSignature,
    CostMeasurementError,
    CostModel,
    ElementwiseSignature,
    MeasuredCostModel,
    NotRunnable,
    PoolSignature,
    TimingRule,
    median_interval,
    runnable,
    time_op,
)

from .conftest import CountingTimer, conv_signature

SIGNATURES = {
    "dense 3x3": conv_signature(),
    "strided grouped, asymmetric padding": conv_signature(stride=(2, 2), groups=2, padding=((0, 1), (1, 2))),
    "depthwise 5x5 dilated": conv_signature(out_channels=8, groups=8, kernel=(5, 5), dilation=(2, 2),
                                            padding=((4, 4), (4, 4))),
    "1-d conv": ConvSignature(4, 6, (3,), (1,), ((1, 1),), (1,), 1, (9,), 2),
    "linear": ConvSignature(8, 4, (), (), (), (), 1, (), 5),
    "avg pool": PoolSignature(8, (3, 3), (2, 2), (1, 1), (10, 10), 2),
}


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_a_conv_or_pool_is_rebuilt_with_the_signatures_geometry(name):
    signature = SIGNATURES[name]
    out = runnable(signature, dtype=torch.float32, device="cpu")()
    if isinstance(signature, ConvSignature) and signature.nd == 0:
        assert out.shape == (signature.batch, signature.out_channels)
    elif isinstance(signature, ConvSignature):
        assert out.shape == (signature.batch, signature.out_channels, *signature.out_size)
    else:
        expected = F.avg_pool2d(torch.zeros(2, 8, 10, 10), 3, 2, 1).shape
        assert out.shape == expected


@pytest.mark.parametrize(("kind", "operands"), [("add", 2), ("mul", 1), ("addcmul", 1), ("batchnorm", 1),
                                                ("pad", 1), ("relu", 1), ("elementwise", 1), ("elementwise", 2),
                                                ("sub", 2), ("div", 1)])
def test_an_elementwise_op_produces_its_element_count(kind, operands):
    out = runnable(ElementwiseSignature(kind, 8 * 36, operands, 4, 8), dtype=torch.float32, device="cpu")()
    assert out.numel() == 8 * 36 and torch.isfinite(out).all()


def test_kinds_without_a_shape_are_answered_by_the_analytic_estimate(counting_timer):
    model = MeasuredCostModel(timer=counting_timer)
    for kind in ("cat", "identity", "other"):
        signature = ElementwiseSignature(kind, 1000, 2)
        with pytest.raises(NotRunnable):
            runnable(signature, dtype=torch.float32, device="cpu")
        assert model.seconds(signature) == CostModel().seconds(signature)
    assert counting_timer.calls == 0 and len(model.cache) == 0


def test_estimate_is_the_analytic_model_and_seconds_the_measurement(counting_timer):
    model = MeasuredCostModel(timer=counting_timer)
    signature = conv_signature()
    assert model.estimate(signature) == CostModel().seconds(signature)
    out_elements = 2 * 16 * 10 * 10
    assert model.seconds(signature) == pytest.approx(out_elements * 1.05e-9)  # the fake timer's median


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is missing")
def test_a_cuda_signature_without_cuda_is_a_clear_error(counting_timer):
    model = MeasuredCostModel(timer=counting_timer)
    with pytest.raises(CostMeasurementError, match="CUDA is not available"):
        model.seconds(conv_signature(device="cuda:0"))


def test_the_timing_rule_warms_up_and_takes_between_min_and_max_rounds():
    calls = []
    rule = TimingRule(warmup_calls=4, warmup_seconds=0.0, sample_seconds=0.0005, min_rounds=5, max_rounds=9)
    entry = time_op(lambda: calls.append(1) or torch.ones(4).sum(), torch.device("cpu"), rule)
    assert 5 <= len(entry.samples) <= 9 and entry.calls_per_sample >= 1
    assert len(calls) == 4 + entry.calls_per_sample * len(entry.samples)
    assert entry.seconds == statistics.median(entry.samples)
    assert entry.seconds > 0 and entry.clock in ("process_time", "perf_counter")


def test_the_clock_is_cpu_time_at_one_thread_and_wall_time_at_several():
    rule = TimingRule(warmup_calls=1, warmup_seconds=0.0, sample_seconds=0.0, min_rounds=1, max_rounds=1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert time_op(lambda: None, torch.device("cpu"), rule).clock == "process_time"
        torch.set_num_threads(2)
        assert time_op(lambda: None, torch.device("cpu"), rule).clock == "perf_counter"
    finally:
        torch.set_num_threads(before)


def test_the_median_interval_is_the_order_statistics_around_the_median():
    samples = list(range(1, 26))  # 25 samples: the ~95% interval of the median is the 8th..18th
    assert median_interval(samples) == (8, 18)
    assert median_interval([5.0]) == (5.0, 5.0)


def test_measuring_with_threads_sets_them_only_while_timing():
    seen = []

    def timer(run, device):
        seen.append(torch.get_num_threads())
        return CountingTimer()(run, device)

    before = torch.get_num_threads()
    model = MeasuredCostModel(timer=timer, threads=2 if before != 2 else 1)
    model.seconds(conv_signature())
    assert seen == [model.threads] and torch.get_num_threads() == before
