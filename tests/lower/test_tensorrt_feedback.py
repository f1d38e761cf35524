"""The log collector, the progress printer and the kernel listing parser, without building anything."""

from __future__ import annotations

import io
import logging

from fxrep.lower.tensorrt_feedback import BuildProgress, LogCollector, LogRecord, engine_kernel_summary


def test_captures_collect_only_what_is_logged_inside_them(caplog):
    collector = LogCollector()
    collector.log("INFO", "before")
    with collector.capture() as outer:
        collector.log("WARNING", "first")
        with collector.capture() as inner:
            collector.log("ERROR", "second")
    collector.log("INFO", "after")

    assert outer == [LogRecord("WARNING", "first"), LogRecord("ERROR", "second")]
    assert inner == [LogRecord("ERROR", "second")]
    assert inner[0].is_error and not outer[0].is_error


def test_captured_messages_are_logged_at_debug_and_replayed_on_request(caplog):
    collector = LogCollector()
    caplog.set_level(logging.DEBUG, logger="fxrep.lower.tensorrt_feedback")
    with collector.capture() as records:
        collector.log("ERROR", "parser said no")
    collector.log("WARNING", "uncaptured")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "TensorRT ERROR: parser said no"),
        (logging.WARNING, "TensorRT WARNING: uncaptured"),
    ]

    caplog.clear()
    LogCollector.replay([*records, LogRecord("VERBOSE", "noise")])
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "TensorRT ERROR: parser said no")
    ]


def test_build_progress_prints_nested_phases_with_elapsed_time():
    ticks = iter([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
    stream = io.StringIO()
    progress = BuildProgress(stream, max_depth=2, clock=lambda: next(ticks))

    progress.phase_start("Building engine", None, 2)
    progress.phase_start("Optimizing", "Building engine", 3)
    progress.phase_start("Too deep", "Optimizing", 1)
    assert progress.step_complete("Optimizing", 0) is True
    progress.phase_finish("Optimizing")
    progress.phase_finish("Building engine")
    progress.finish("engine built")

    assert stream.getvalue().splitlines() == [
        "[fxrep    0.50s] Building engine: started, 2 steps",
        "[fxrep    1.00s]   Optimizing: started, 3 steps",
        "[fxrep    1.50s]   Optimizing: step 1/3",
        "[fxrep    2.00s]   Optimizing: done",
        "[fxrep    2.50s] Building engine: done",
        "[fxrep    3.00s] engine built",
    ]


def test_kernel_summary_reads_both_layer_listings():
    rtx = LogRecord(
        "VERBOSE",
        "Layers:\nName: __myl_Move_0, LayerType: kgen, Inputs: []\n"
        "Name: conv_0, LayerType: correlation, Inputs: []\nName: conv_1, LayerType: correlation, Inputs: []\n\n"
        "I/O Tensors:\n Name: x, IOMode: Input",
    )
    classic = LogRecord(
        "VERBOSE",
        "Engine Layer Information:\nLayer(CaskConvolution): conv1 + relu1, Tactic: 0x1\nLayer(Reformat): r, Tactic: 0x0",
    )
    unrelated = LogRecord("VERBOSE", "Name: x, LayerType: kgen (not a layer listing)")

    assert engine_kernel_summary([rtx, unrelated]) == {"correlation": 2, "kgen": 1}
    assert engine_kernel_summary([classic]) == {"CaskConvolution": 1, "Reformat": 1}
    assert engine_kernel_summary([]) == {}
