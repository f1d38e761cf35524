"""`fxrep.optimize`: capture, rewrite, write the lean forward, verify, report.

    model --capture--> GraphModule --passes (fixed point)--> plain GraphModule --lean--> module --verify--> Report

With example inputs the capture has a dynamic batch dimension unless the model specializes on the
batch size (then it is static, and the report says why). The final stage (`fxrep.lean`) writes the
returned module's forward with fast entry points, in-place activations and one input-shape check;
verification runs on that module, the one returned.

The returned GraphModule has inference semantics (BatchNorm uses running statistics) and carries
its `Report` as ``gm.fxrep_report``. The caller's model is never changed: capture works on a deep
copy and verification runs the model with its own train/eval flags restored afterwards.
Verification (`fxrep.verify`) checks every rewritten region on its own against a copy of the
capture taken before the passes, and the outputs end to end; a failing region is an
`EquivalenceError` naming it and the pass that wrote it, and an output difference every region
explains (a flip at a discrete op such as ``topk``, rounding the model amplifies) is a warning in
the report (an error with ``strict=True``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.fx import GraphModule

from .capture import Capture, CaptureMethod, capture, normalize_inputs
from .errors import CaptureError, FxrepError, InvalidModelError
from .graph_facts import facts
from .lean import make_lean, summarize
from .pass_manager import PassManager
from .progress import step
from .report import Report, count_ops, count_parameters
from .verify import (
    Rewritten,
    Verification,
    VerifySettings,
    check_rewrite,
    compare,
    equivalence_error,
    random_like,
    reference_outputs,
    snapshot,
)


def optimize(
    model: nn.Module,
    example_inputs: Any = None,
    *,
    passes: Sequence[Any] | None = None,
    cost: str | Any = None,
    timing_cache: str | Path | None = None,
    verify: bool = True,
    capture_method: CaptureMethod = "auto",
    dynamic_batch: bool | None = None,
    dynamic_shapes: Any = None,
    lean: bool = True,
    tolerance: float | None = None,
    random_inputs: int = 2,
    strict: bool = False,
    max_iterations: int = 8,
    dump: Iterable[str] = (),
    dump_dir: str | Path | None = None,
    progress: bool = False,
) -> GraphModule:
    """Rewrite ``model`` into a plain inference graph with the same outputs.

    Args:
        model: any ``nn.Module`` (or an already traced ``GraphModule``); it is not modified.
        example_inputs: a tensor or tuple of inputs. With them fxrep captures through
            ``torch.export`` and verifies the result; without them it uses ``torch.fx.symbolic_trace``
            and cannot verify.
        passes: the pipeline (default ``fxrep.passes.default_pipeline()``); mix built-in and custom passes.
        cost: what the default pipeline's decisions are costed with: "analytic" (the default,
            ``fxrep.cost.CostModel()``), "measure" (``fxrep.cost.MeasuredCostModel``: every op a
            decision compares is timed on the model's device at the captured shapes, once per
            timing cache) or any cost model object with ``seconds(signature)`` and
            ``node_seconds(node)``. Not combinable with ``passes=``: give your passes their
            ``cost_model`` instead (an error says so).
        timing_cache: with ``cost="measure"``, the JSON timing cache file to reuse and extend
            (created if missing); the same file gives the same decisions.
        verify: check every rewritten region on its own and the outputs end to end, on the example
            inputs and on random inputs of the same shape (`fxrep.verify`).
        capture_method: "auto", "export" or "symbolic_trace" (the other method is tried if one fails).
        dynamic_batch: export with a dynamic batch dimension (and verify at another batch size too).
            The default (None) does so whenever example inputs are given to torch.export, and falls
            back to the example's static shapes, with a note in the report, when the model
            specializes on the batch size; True insists (no fallback), False captures static shapes.
        dynamic_shapes: ``torch.export`` dynamic shapes, for other dynamic dimensions (advanced;
            rewrites whose exactness depends on a dynamic size are then refused).
        lean: write the returned module's forward for speed (`fxrep.lean`: fast entry points
            instead of ``torch.ops.aten`` calls, in-place element-wise ops where alias analysis
            allows, flat attributes, one input-shape check raising `fxrep.InputShapeError`);
            False returns the passes' module with torch.fx's own code.
        tolerance: override the dtype's relative tolerance.
        random_inputs: how many random input sets verification uses besides the examples.
        strict: make verification warnings errors: outputs that differ only through a discrete op
            (a ``topk`` pick flipped by rounding) or by rounding the model amplifies, and regions
            accepted as ill-conditioned by their float64 reference.
        max_iterations: rounds of the pass pipeline before giving up on a fixed point.
        dump, dump_dir: names of passes whose graph before/after is written to ``dump_dir``.
        progress: print progress lines on stderr.

    Returns:
        A ``torch.fx.GraphModule`` with ``.fxrep_report`` (`fxrep.Report`).
    """
    timings: dict[str, float] = {}
    inputs = normalize_inputs(example_inputs)
    check_finite(model)
    check_inputs_have_values(inputs)
    if dynamic_batch and dynamic_shapes is not None:
        raise InvalidModelError("pass either dynamic_batch=True or dynamic_shapes, not both")
    settings = OptimizeSettings(
        capture_method=capture_method, dynamic_batch=dynamic_batch, dynamic_shapes=dynamic_shapes, lean=lean,
        verify=verify, verification=VerifySettings(tolerance=tolerance, random_inputs=random_inputs, strict=strict),
        max_iterations=max_iterations, dump=tuple(dump), dump_dir=dump_dir, progress=progress)
    cost_model = _cost_model(cost, timing_cache, passes, model, inputs)
    pipeline = _pipeline(passes, cost_model)

    start = time.perf_counter()
    with step("capturing the model", progress):
        batch = _capture(model, inputs, settings)
    timings["capture"] = time.perf_counter() - start

    def rewrite() -> tuple[Rewritten, Report]:
        # the local checks compare against the capture as it was before the passes rewrote it in place
        start = time.perf_counter()
        original = snapshot(batch.captured.graph_module) if verify and inputs is not None else None
        if verify:
            timings["verify"] = time.perf_counter() - start  # keeping that copy is part of verifying
        gm, final, report = _rewrite(batch.captured, pipeline, cost_model, settings, timings)
        return Rewritten(original, gm, final, report.passes), report

    rewritten, report = rewrite()
    if verify:
        start = time.perf_counter()
        with step("verifying against the original model", progress):
            report.verification = _verify(model, rewritten, inputs, settings.verification, batch.dynamic)
            if (_failed(report.verification) and batch.dynamic and batch.by_default
                    and _verify(model, rewritten, inputs, settings.verification, False).passed):
                batch = _static_after_all(model, inputs, settings, report.verification)
                rewritten, report = rewrite()
                report.verification = _verify(model, rewritten, inputs, settings.verification, False)
        timings["verify"] += time.perf_counter() - start
        error = equivalence_error(report.verification, strict=settings.verification.strict)
        if error is not None:
            raise error
    report.seconds = timings
    rewritten.final.fxrep_report = report
    return rewritten.final


@dataclass(frozen=True)
class OptimizeSettings:
    """The options of `optimize` that steer capture, the passes, the final stage and verification, in one
    object: the helpers take ``(model or capture, ..., settings)`` rather than each option on its own
    (as Torch-TensorRT's passes take ``(gm, settings)``). The fields mean what `optimize`'s arguments of
    the same names do; ``verification`` holds ``tolerance``, ``random_inputs`` and ``strict``."""

    capture_method: CaptureMethod = "auto"
    dynamic_batch: bool | None = None
    dynamic_shapes: Any = None
    lean: bool = True
    verify: bool = True
    verification: VerifySettings = field(default_factory=VerifySettings)
    max_iterations: int = 8
    dump: tuple[str, ...] = ()
    dump_dir: str | Path | None = None
    progress: bool = False


def _rewrite(captured: Capture, pipeline: list[Any], cost_model: Any, settings: OptimizeSettings,
             timings: dict[str, float]) -> tuple[GraphModule, GraphModule, Report]:
    """Passes and the final stage on a capture: (the passes' module, the module to return, its report)."""
    gm = captured.graph_module
    manager = PassManager(pipeline, max_iterations=settings.max_iterations, dump=settings.dump,
                          dump_dir=settings.dump_dir)
    report = Report(capture=captured.method, notes=list(captured.notes), ops_before=count_ops(gm),
                    parameters_before=count_parameters(gm))
    start = time.perf_counter()
    with step(f"running {len(pipeline)} passes", settings.progress):
        run = manager.run(gm)
    timings["passes"] = time.perf_counter() - start
    report.passes = Report.summarize(run, gm)
    if _is_measured(cost_model):
        report.notes.append(cost_model.describe())
    report.converged, report.iterations = run.converged, run.iterations
    report.ops_after, report.parameters_after = count_ops(gm), count_parameters(gm)
    if not settings.lean:
        return gm, gm, report
    start = time.perf_counter()
    final = make_lean(gm)
    report.notes.append(summarize(final).describe())
    timings["lean"] = time.perf_counter() - start
    return gm, final, report


def _failed(verification: Verification) -> bool:
    return not verification.passed and verification.skipped is None


def report_of(gm: GraphModule) -> Report:
    """The `Report` of a module returned by `optimize`."""
    report = getattr(gm, "fxrep_report", None)
    if report is None:
        raise ValueError("this module was not produced by fxrep.optimize (it has no fxrep_report)")
    return report


def batch_is_dynamic(gm: GraphModule) -> bool:
    """Whether a module returned by `optimize` was captured with a dynamic batch (it takes any batch size).

    False for static captures, and for graphs captured without torch.export, whose sizes fxrep does
    not know (re-export them with the batch size they will run at).
    """
    return facts(gm).dynamic_batch


def check_finite(model: nn.Module) -> None:
    """Raise `InvalidModelError` naming the first parameter or buffer that has no values (the meta
    device) or holds NaN or Inf."""
    if not isinstance(model, nn.Module):
        raise InvalidModelError(f"fxrep optimizes torch.nn.Module instances, got {type(model).__name__}")
    named = list(model.named_parameters()) + list(model.named_buffers())
    for name, tensor in named:
        if tensor.is_meta:
            raise InvalidModelError(
                f"{name} is on the meta device: it has a shape but no values, and fxrep computes the merged "
                "weights from the values and checks the outputs numerically. Materialise the model first: "
                "model.to_empty(device='cpu') then model.load_state_dict(checkpoint), or build it without "
                "device='meta'."
            )
    for name, tensor in named:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
            bad = "NaN" if bool(torch.isnan(tensor.detach()).any()) else "Inf"
            raise InvalidModelError(
                f"{name} contains {bad}; folding it would spread {bad} into every merged weight. "
                "Fix or re-load the checkpoint (e.g. re-estimate BatchNorm statistics) before optimizing."
            )


def check_inputs_have_values(inputs: tuple[Any, ...] | None) -> None:
    """Raise `InvalidModelError` naming the first example input (tensors nested in tuples, lists and
    dicts included) that is on the meta device: the outputs cannot be compared without values."""

    def meta_tensors(value: Any, where: str) -> Iterable[str]:
        if isinstance(value, torch.Tensor):
            if value.is_meta:
                yield where
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                yield from meta_tensors(item, f"{where}[{index}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from meta_tensors(item, f"{where}[{key!r}]")

    where = next(iter(meta_tensors(inputs or (), "example_inputs")), None)
    if where is not None:
        raise InvalidModelError(
            f"{where} is on the meta device: it has a shape but no values, so fxrep cannot capture the model on "
            "it or check the optimized outputs. Pass real tensors of the same shape, e.g. "
            "torch.randn(1, 3, 224, 224), on the model's device."
        )


def _cost_model(cost: Any, timing_cache: str | Path | None, passes: Sequence[Any] | None, model: nn.Module,
                inputs: tuple[Any, ...] | None) -> Any:
    """The cost model of the default pipeline (None: the passes' own default), or a clear error."""
    if cost is None and timing_cache is None:
        return None
    if passes is not None:
        raise InvalidModelError(
            "cost= and timing_cache= choose the cost model of the default pipeline, so they cannot be combined "
            "with passes=; give your passes the cost model instead, e.g. "
            "CollapseLinearRegions(cost_model=fxrep.cost.MeasuredCostModel('timings.json')), or build them with "
            "fxrep.passes.default_pipeline(cost_model=...)")
    from .cost import cost_model_for

    device, dtype = _device_and_dtype(model, inputs)
    try:
        return cost_model_for(cost, timing_cache, device=device, dtype=dtype)
    except ValueError as error:
        if isinstance(error, FxrepError):
            raise
        raise InvalidModelError(str(error)) from error


def _is_measured(cost_model: Any) -> bool:
    from .cost import MeasuredCostModel

    return isinstance(cost_model, MeasuredCostModel)


def _device_and_dtype(model: nn.Module, inputs: tuple[Any, ...] | None) -> tuple[torch.device, torch.dtype]:
    """Where the model's activations live and their dtype: the first floating input, else parameter."""
    tensors = [t for t in inputs or () if isinstance(t, torch.Tensor)]
    tensors += [t for t in model.parameters()] + [t for t in model.buffers()]
    for tensor in tensors:
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _pipeline(passes: Sequence[Any] | None, cost_model: Any = None) -> list[Any]:
    if passes is None:
        from .passes import default_pipeline  # passes import fxrep's public API, so import lazily

        return default_pipeline(cost_model=cost_model)
    if isinstance(passes, str | bytes) or not isinstance(passes, Sequence | Iterable):
        raise InvalidModelError("passes must be a list of passes, e.g. fxrep.passes.default_pipeline()")
    return list(passes)


def _dynamic_batch_shapes(inputs: tuple[Any, ...] | None) -> Any:
    if inputs is None:
        raise InvalidModelError("dynamic_batch=True needs example_inputs to export with")
    batch = torch.export.Dim("batch", min=1)
    return tuple({0: batch} if isinstance(t, torch.Tensor) and t.dim() > 0 else None for t in inputs)


@dataclass(frozen=True)
class _BatchCapture:
    """A capture, whether its batch is dynamic, the dynamic shapes it was exported with, and whether
    the dynamic batch was fxrep's default choice (so it may still fall back to static shapes)."""

    captured: Capture
    dynamic: bool
    shapes: Any
    by_default: bool


def _capture(model: nn.Module, inputs: tuple[Any, ...] | None, settings: OptimizeSettings) -> _BatchCapture:
    """Capture with a dynamic batch when asked, or by default (`optimize`'s ``dynamic_batch``).

    By default, a model that torch.export cannot capture with a dynamic batch (a constraint
    violation: the code specializes on the batch size) or whose capture differs from it at another
    batch size is captured with the example's static shapes, and a note says why; with
    ``dynamic_batch=True`` that is an `InvalidModelError`. (`optimize` also falls back when only
    the optimized module's check at another batch size fails: `_static_after_all`.)
    """
    method, dynamic_batch, dynamic_shapes = settings.capture_method, settings.dynamic_batch, settings.dynamic_shapes
    verify = settings.verify
    by_default = dynamic_batch is None
    if by_default:
        dynamic_batch = (inputs is not None and dynamic_shapes is None and method != "symbolic_trace"
                         and not (isinstance(model, GraphModule) and method == "auto"))
    if not dynamic_batch:
        captured = capture(model, inputs, method=method, dynamic_shapes=dynamic_shapes)
        return _BatchCapture(captured, False, dynamic_shapes, False)
    batch_shapes = _dynamic_batch_shapes(inputs)
    if not by_default:
        captured = capture(model, inputs, method=method, dynamic_shapes=batch_shapes)
        reason = _batch_mismatch(model, captured.graph_module, inputs) if verify else None
        if reason is not None:
            raise InvalidModelError(
                f"dynamic_batch=True, but the model specializes on the batch size: {reason}. What to do: leave "
                "dynamic_batch at its default (fxrep then captures the example's static shapes) or pass "
                "dynamic_batch=False, or remove the batch-size constants from the model (view/reshape with -1 or "
                "x.shape[0]).")
        captured.notes.append("dynamic batch: captured with a dynamic batch dimension (dynamic_batch=True)")
        return _BatchCapture(captured, True, batch_shapes, False)
    try:  # torch.export alone: a failure here is about the dynamic batch only if a static export works
        captured = capture(model, inputs, method="export" if method == "auto" else method, dynamic_shapes=batch_shapes)
        reason = _batch_mismatch(model, captured.graph_module, inputs) if verify else None
    except CaptureError as error:
        reason = "; ".join(why for _, why in error.attempts)
    if reason is None:
        captured.notes.append("dynamic batch: captured with a dynamic batch dimension (the default with example "
                              "inputs; dynamic_batch=False captures the example's static shapes)")
        return _BatchCapture(captured, True, batch_shapes, True)
    static = capture(model, inputs, method=method, dynamic_shapes=None)
    if not facts(static.graph_module).shapes_guarded:  # torch.export fails at any batch: not about the batch
        return _BatchCapture(static, False, None, True)
    static.notes.append(
        f"dynamic batch: not possible, the model specializes on the batch size ({reason}); captured with the "
        f"example's static shapes (batch {_batch_of(inputs)}). Pass dynamic_batch=False to skip the attempt, or "
        "remove the batch-size constants from the model (view/reshape with -1 or x.shape[0]) to get a dynamic batch")
    return _BatchCapture(static, False, None, True)


def _static_after_all(model: nn.Module, inputs: tuple[Any, ...], settings: OptimizeSettings,
                      failed: Verification) -> _BatchCapture:
    """A static capture for a model whose optimized module is exact at the example's batch size only."""
    static = capture(model, inputs, method=settings.capture_method, dynamic_shapes=None)
    worst = failed.worst
    where = f"max rel error {failed.max_rel:.3g} on {worst.inputs}" if worst is not None else failed.mismatch
    static.notes.append(
        f"dynamic batch: not kept: with a dynamic batch the optimized module matched the model at the example's "
        f"batch size but not at another ({where}; the model is numerically sensitive to the batch size or "
        f"specializes on it); captured with the example's static shapes (batch {_batch_of(inputs)}). Pass "
        "dynamic_batch=False to skip the attempt")
    return _BatchCapture(static, False, None, True)


def _batch_mismatch(model: nn.Module, gm: GraphModule, inputs: tuple[Any, ...]) -> str | None:
    """Why a dynamic-batch capture is wrong at another batch size (it raises or differs), or None."""
    sets = _extra_batch_inputs(inputs)
    try:
        check = compare(reference_outputs(model, sets), gm, sets)
    except InvalidModelError as error:
        cause = error.__cause__ or error
        return f"the model itself raises at batch {_batch_of(sets[0][1])} ({type(cause).__name__}: {cause})"
    if check.passed:
        return None
    return check.mismatch or f"its capture differs from it at another batch size (max rel error {check.max_rel:.3g})"


def _batch_of(inputs: tuple[Any, ...]) -> int | None:
    return next((t.shape[0] for t in inputs if isinstance(t, torch.Tensor) and t.dim()), None)


def _extra_batch_inputs(inputs: tuple[Any, ...]) -> list[tuple[str, tuple[Any, ...]]]:
    """A random input set with the batch dimension one larger (for dynamic-batch captures)."""
    grown = tuple(torch.cat([t, t[:1]]) if isinstance(t, torch.Tensor) and t.dim() > 0 else t for t in inputs)
    return [("random inputs with batch + 1", random_like(grown, torch.Generator().manual_seed(7)))]


def _verify(model: nn.Module, rewritten: Rewritten, inputs: tuple[Any, ...] | None, settings: VerifySettings,
            dynamic_batch: bool) -> Verification:
    if inputs is None:
        return Verification(settings.tolerance or 0.0, skipped="no example_inputs; pass them to verify the result")
    extra = _extra_batch_inputs(inputs) if dynamic_batch else ()
    return check_rewrite(model, rewritten, inputs, settings, extra)
