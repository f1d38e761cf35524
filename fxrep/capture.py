"""Capture: turn the caller's ``nn.Module`` into a self-contained ``torch.fx.GraphModule``.

- With example inputs: ``torch.export.export(strict=False)``, unlifted so parameters are ``get_attr``
  nodes. Export's training IR is kept when it is already functional (no op mutates its inputs, no
  buffer or input is written): it is the same graph with ``aten.batch_norm`` instead of
  ``_native_batch_norm_legit_no_training`` + ``getitem``, and skipping the functionalisation makes
  capture 2-3x faster. Otherwise it is functionalised with ``run_decompositions({})`` (in-place
  ops such as ``relu_`` become functional; high-level ATen ops such as ``aten.conv2d`` and
  ``aten.linear`` are kept either way).
- Without: ``torch.fx.symbolic_trace`` (module-level graph: ``call_module`` nodes for ``nn`` layers).
- A ``GraphModule`` is copied as it is.

Module-level graphs are made functional (`fxrep.functionalize`): in-place ops such as
``nn.ReLU(inplace=True)`` become out-of-place ops whose later readers read their result.

Capture happens in inference mode (every submodule in ``eval()``), and the result is deep-copied
before the caller's modules get their train/eval flags back, so nothing the caller owns is shared
with or changed by the optimized module. When one method fails, the next one is tried and the
fallback is noted; when all fail, `CaptureError` says where each failed and what to do.

What capture learns about the graph (its level, whether its shapes are guarded, the ranges of and
guards on its dynamic sizes) is recorded on the module: read it with `fxrep.graph_facts.facts`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.fx import GraphModule

from .errors import CaptureError, InvalidModelError
from .functionalize import UnsafeMutation, functionalize_inplace
from .graph_facts import facts, record_export_constraints, record_level
from .shapes import propagate_shapes

CaptureMethod = Literal["auto", "export", "symbolic_trace"]

@dataclass
class Capture:
    """The captured graph, how it was captured, and what went wrong on the way."""

    graph_module: GraphModule
    method: str
    notes: list[str] = field(default_factory=list)


def normalize_inputs(example_inputs: Any) -> tuple[Any, ...] | None:
    """``None``, a tensor, or a tuple/list of inputs as a tuple (or None)."""
    if example_inputs is None:
        return None
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, list | tuple):
        return tuple(example_inputs)
    raise InvalidModelError(
        f"example_inputs must be a tensor or a tuple of inputs, got {type(example_inputs).__name__}; "
        "pass e.g. (torch.randn(1, 3, 224, 224),)"
    )


@contextlib.contextmanager
def inference_mode_of(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, restoring each module's own flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for module, training in flags:
            module.training = training


def capture(model: nn.Module, example_inputs: tuple[Any, ...] | None = None, *,
            method: CaptureMethod = "auto", dynamic_shapes: Any = None) -> Capture:
    """Capture ``model`` as a GraphModule in inference semantics (see the module docstring)."""
    if not isinstance(model, nn.Module):
        raise InvalidModelError(f"fxrep optimizes torch.nn.Module instances, got {type(model).__name__}")
    if method not in ("auto", "export", "symbolic_trace"):
        raise InvalidModelError(f"capture must be 'auto', 'export' or 'symbolic_trace', got {method!r}")
    if method == "export" and example_inputs is None:
        raise InvalidModelError("capture='export' needs example_inputs, e.g. (torch.randn(1, 3, 224, 224),)")

    if isinstance(model, GraphModule) and method == "auto":
        with inference_mode_of(model):
            gm = copy.deepcopy(model)
        try:
            functionalize_inplace(gm)
        except UnsafeMutation as error:
            raise CaptureError([("the given GraphModule", str(error))],
                               "What to do: pass the original nn.Module with example_inputs, so torch.export can "
                               "functionalise the in-place ops.") from error
        record_level(gm, facts(gm).level)  # a copy keeps the shape guards it was recorded with
        if example_inputs is not None:
            propagate_shapes(gm, example_inputs)
        return Capture(gm, "GraphModule (copied as given)")

    order = _method_order(method, example_inputs is not None)
    attempts: list[tuple[str, str]] = []
    for name in order:
        try:
            with inference_mode_of(model):
                if name == "export":
                    gm = _export(model, example_inputs, dynamic_shapes)
                else:
                    gm = _symbolic_trace(model)
                gm = copy.deepcopy(gm)
        except Exception as error:  # each capture method fails in its own way; report them all
            attempts.append((_describe(name), _failure_summary(error)))
            continue
        gm.eval()
        record_level(gm, "aten" if name == "export" else "module", shapes_guarded=name == "export")
        if name == "symbolic_trace" and example_inputs is not None:
            propagate_shapes(gm, example_inputs)
        notes = [f"{failed} failed ({reason}); fell back to {_describe(name)}" for failed, reason in attempts]
        return Capture(gm, _describe(name), notes)
    raise CaptureError(attempts, _advice(example_inputs is not None, order))


def _method_order(method: CaptureMethod, have_inputs: bool) -> Sequence[str]:
    if method == "export":
        return ("export",)
    if method == "symbolic_trace":
        return ("symbolic_trace", "export") if have_inputs else ("symbolic_trace",)
    return ("export", "symbolic_trace") if have_inputs else ("symbolic_trace",)


def _export(model: nn.Module, example_inputs: tuple[Any, ...] | None, dynamic_shapes: Any) -> GraphModule:
    if dynamic_shapes is not None and example_inputs is not None:
        # export specialises a dimension of size 1 to 1, so trace a dynamic batch with two samples
        example_inputs = tuple(torch.cat([t, t]) if isinstance(t, torch.Tensor) and t.dim() and t.shape[0] == 1
                               else t for t in example_inputs)
    program = torch.export.export(model, example_inputs, strict=False, dynamic_shapes=dynamic_shapes)
    if not _is_functional(program):
        program = program.run_decompositions({})
    gm = program.module()
    record_export_constraints(gm, {str(symbol): (_bound(limits.lower) or 0, _bound(limits.upper))
                                   for symbol, limits in program.range_constraints.items()}, _size_guards(gm))
    return gm


def _size_guards(gm: GraphModule) -> list[str]:
    for node in gm.graph.find_nodes(op="placeholder"):
        shape_env = getattr(getattr(node.meta.get("val"), "fake_mode", None), "shape_env", None)
        if shape_env is not None:
            return [str(guard.expr) for guard in shape_env.guards]
    return []


def _bound(limit: Any) -> int | None:
    """A range limit as an int, None when it is unbounded (sympy's infinities)."""
    return int(limit) if getattr(limit, "is_Integer", False) else None


def _is_functional(program: torch.export.ExportedProgram) -> bool:
    """No op of the graph mutates an argument, and the program writes no buffer or user input."""
    signature = program.graph_signature
    if signature.buffers_to_mutate or signature.user_inputs_to_mutate:
        return False
    for node in program.graph.nodes:
        schema = getattr(node.target, "_schema", None) if node.op == "call_function" else None
        if schema is not None and schema.is_mutable:
            return False
    return True


def _symbolic_trace(model: nn.Module) -> GraphModule:
    # deep-copied first: making ops out of place flips flags on the (shared) submodules
    gm = copy.deepcopy(torch.fx.symbolic_trace(model))
    functionalize_inplace(gm)  # raises UnsafeMutation: then torch.export (which functionalises) is tried
    return gm


def _describe(name: str) -> str:
    return {"export": "torch.export (non-strict)", "symbolic_trace": "torch.fx.symbolic_trace"}[name]


def _failure_summary(error: BaseException) -> str:
    """The error's first line plus the innermost frame of user code (outside torch and fxrep) that raised it."""
    message = str(error).strip().splitlines()
    head = f"{type(error).__name__}: {message[0] if message else ''}"
    frames = traceback.extract_tb(error.__traceback__)
    user = [f for f in frames if not _in_library(f.filename)]
    if user:
        frame = user[-1]
        head += f" (at {frame.filename}:{frame.lineno}: {frame.line})"
    return head


def _in_library(filename: str) -> bool:
    """Whether a traceback frame's file lies inside torch's or fxrep's own package folders.

    Decided by folder containment of the resolved paths, never by a name in the path: a user's
    model under ``~/code/fxrep/`` or ``~/torch/`` is still the user's code.
    """
    path = Path(filename).resolve()
    return any(path.is_relative_to(folder) for folder in _library_folders())


@functools.cache
def _library_folders() -> tuple[Path, ...]:
    """The folders of the torch package and of fxrep's packages (``fxrep`` and ``fxrep.passes``), resolved."""
    folders = [Path(torch.__file__).parent, Path(__file__).parent]  # this file is in the fxrep package
    passes = importlib.util.find_spec("fxrep.passes")  # its own folder (passes/ in a checkout)
    folders += [Path(location) for location in (passes.submodule_search_locations or ())] if passes else []
    return tuple(dict.fromkeys(folder.resolve() for folder in folders))


def _advice(have_inputs: bool, order: Sequence[str]) -> str:
    if not have_inputs:
        return ("What to do: pass example_inputs (e.g. fxrep.optimize(model, (torch.randn(1, 3, 224, 224),))) so "
                "fxrep can capture with torch.export, which follows Python control flow that symbolic tracing "
                "cannot; or make the failing code traceable (avoid tensor-dependent `if`, in-place assignment to "
                "proxies), or wrap it in a module and mark it a leaf.")
    return ("What to do: torch.export needs code without data-dependent Python control flow on tensor values "
            "(use torch.where / torch.cond), outputs made of tensors (and tuples/lists/dicts of them), and inputs "
            "that match example_inputs. The messages above point at the failing line.")
