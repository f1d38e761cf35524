"""End-to-end check: the optimized module's outputs against the original model's.

Both run (inference mode, no grad) on the example inputs and on ``random_inputs`` fresh random
inputs of the same shapes and dtypes (integer and bool inputs keep their example values, which are
often indices), so a rewrite that happens to be right on one input cannot pass. Every tensor of a
multi-output model is compared. The error of one output is

    max_abs = max |optimized - original|,   max_rel = max_abs / max |original|

(normalised by the output's scale, so it is meaningful for logits and for feature maps alike), and
the check passes when every ``max_rel`` is within a dtype-aware tolerance: float64 1e-9, float32
1e-4, float16 1e-2, bfloat16 5e-2 (folding in float64 and rounding once is at least as accurate
as the original chain of ops, so these bounds are rounding noise, not slack for mistakes).

A model that raises on its own inputs cannot be checked: that is an `InvalidModelError` saying so.
An optimized module that raises where the model did not is a mismatch, like a wrong output.

`Verification` also carries what `fxrep.verify.check` adds around this comparison: the local check
of every rewritten region (`LocalCheck`) and, when the outputs differ although every region
passed, the explanation of the difference (`Divergence`); see the package docstring for the rule.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ..capture import inference_mode_of
from ..errors import InvalidModelError

if TYPE_CHECKING:
    from .divergence import Divergence
    from .local import LocalCheck

TOLERANCES = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}

ROUNDING_FACTOR = 8.0
"""How much farther from the exact (float64) value than the original's own evaluation a rewrite may be,
where the original is itself beyond the tolerance from it (an ill-conditioned region or model; see
`fxrep.verify.local` and `fxrep.verify.divergence`). Rounding differs between two orders of the same
operations by a small factor (the rewrite also rounds its folded weights once, which the model
amplifies like its own rounding; timm's efficientvit_m0 at batch 2 shows 3.7x), a wrong rewrite by the
size of its mistake: every region is already within the tolerance locally, and regions that are each
off by 6e-5 add up to hundreds of times the original's own error (tests/verify/test_divergence.py)."""


@dataclass(frozen=True)
class OutputError:
    """Error of one output tensor on one input set."""

    inputs: str
    output: int
    max_abs: float
    max_rel: float


@dataclass
class Verification:
    """Outcome of comparing optimized and original on several input sets.

    ``errors`` and ``mismatch`` are the end-to-end comparison; ``local`` the local check of every
    rewritten region (None when only the outputs were compared); ``divergence`` why the outputs
    differ beyond the tolerance although every region passed (None when they do not differ, or
    when a region failed).
    """

    tolerance: float
    errors: list[OutputError] = field(default_factory=list)
    skipped: str | None = None
    mismatch: str | None = None
    local: LocalCheck | None = None
    divergence: Divergence | None = None

    @property
    def within_tolerance(self) -> bool:
        """Whether the end-to-end comparison alone passed (every output within the tolerance)."""
        return self.skipped is None and self.mismatch is None and all(
            e.max_rel <= self.tolerance for e in self.errors)

    @property
    def passed(self) -> bool:
        """Every local check passed and the outputs match, or differ only for a reason `divergence` explains."""
        if self.skipped is not None or (self.local is not None and not self.local.passed):
            return False
        return self.within_tolerance or (self.divergence is not None and self.divergence.explained)

    @property
    def warnings(self) -> list[str]:
        """What a user should know although the check passed (`optimize(..., strict=True)` makes them errors)."""
        found = list(self.local.warnings) if self.local is not None else []
        if self.divergence is not None and self.divergence.explained:
            found.append(self.divergence.message)
        return found

    def describe(self) -> list[str]:
        """The report's verification lines: the verdict, the local checks, the output errors, each warning."""
        if self.skipped:
            return [f"verification: skipped ({self.skipped})"]
        warnings = self.warnings
        status = "passed" if self.passed else "FAILED"
        if self.passed and warnings:
            status += f" with {len(warnings)} warning{'s' if len(warnings) > 1 else ''}"
        sets = len({e.inputs for e in self.errors})
        outputs = (f"outputs: {self.mismatch}" if self.mismatch else
                   f"outputs on {sets} input sets: max abs error {self.max_abs:.3g}, max rel error {self.max_rel:.3g} "
                   f"(tolerance {self.tolerance:g})")
        lines = [f"verification: {status}; {outputs}"]
        if self.local is not None:
            lines.append(f"  {self.local.describe()}")
            lines += [f"  FAILED: {r.region.describe()}: {r.problem or f'max rel error {r.max_rel:.3g} on the {r.inputs}'}"
                      for r in self.local.failures]
        if self.divergence is not None and not self.divergence.explained:
            lines.append(f"  FAILED: {self.divergence.message}")
        lines += [f"  warning: {warning}" for warning in warnings]
        if warnings and self.passed:
            lines.append("  (optimize(..., strict=True) makes these warnings errors)")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `Report.to_dict`."""
        local = None
        if self.local is not None:
            local = {
                "passed": self.local.passed,
                "skipped": self.local.skipped,
                "tolerance": self.local.tolerance,
                "recorded": self.local.recorded,
                "graph_nodes": self.local.graph_nodes,
                "regions": [{"passes": list(r.region.passes), "rule": r.region.rule, "module": r.region.module,
                             "exits": list(r.region.exits), "nodes": list(r.region.nodes), "max_abs": r.max_abs,
                             "max_rel": r.max_rel, "inputs": r.inputs, "failed": r.failed, "problem": r.problem}
                            for r in self.local.regions],
            }
        divergence = None
        if self.divergence is not None:
            d = self.divergence
            divergence = {"inputs": d.inputs, "cause": d.cause, "explained": d.explained, "message": d.message,
                          "flips": [vars(f) for f in d.flips], "before_error": d.before_error,
                          "pinned_error": d.pinned_error, "float64": None if d.float64 is None else vars(d.float64)}
        return {
            "passed": self.passed,
            "skipped": self.skipped,
            "mismatch": self.mismatch,
            "tolerance": self.tolerance,
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "errors": [vars(e) for e in self.errors],
            "local": local,
            "divergence": divergence,
            "warnings": self.warnings,
        }

    @property
    def worst(self) -> OutputError | None:
        return max(self.errors, key=lambda e: e.max_rel, default=None)

    @property
    def max_abs(self) -> float:
        return max((e.max_abs for e in self.errors), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((e.max_rel for e in self.errors), default=0.0)


def tolerance_for(inputs: Sequence[Any], outputs: Sequence[Any] = ()) -> float:
    """The loosest tolerance among the floating dtypes involved (half precision dominates)."""
    dtypes = [t.dtype for t in (*inputs, *outputs) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    return max((TOLERANCES.get(d, 1e-4) for d in dtypes), default=TOLERANCES[torch.float32])


def random_like(inputs: Sequence[Any], generator: torch.Generator) -> tuple[Any, ...]:
    """Fresh random tensors shaped like ``inputs`` (non-floating inputs are kept as they are)."""
    fresh = []
    for value in inputs:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            sample = torch.randn(value.shape, generator=generator, dtype=torch.float32)
            fresh.append(sample.to(dtype=value.dtype, device=value.device).contiguous(
                memory_format=_memory_format(value)))
        else:
            fresh.append(value)
    return tuple(fresh)


def input_sets(example_inputs: Sequence[Any], random_inputs: int, seed: int = 0,
               extra: Sequence[tuple[str, tuple[Any, ...]]] = ()) -> list[tuple[str, tuple[Any, ...]]]:
    """The example inputs plus ``random_inputs`` random sets (and any ``extra`` named sets)."""
    generator = torch.Generator().manual_seed(seed)
    sets = [("example inputs", tuple(example_inputs))]
    sets += [(f"random inputs #{i + 1}", random_like(example_inputs, generator)) for i in range(random_inputs)]
    return sets + list(extra)


def reference_outputs(model: nn.Module, sets: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    """The model's outputs on every input set, in inference mode, computed once per check.

    The reference is a deep copy of the caller's model, so even a forward that updates buffers
    (a norm hard-wired to training mode) leaves the caller's model as it was. A model that cannot
    be copied runs itself, in eval mode, with its flags and tensors restored afterwards.
    """
    with torch.no_grad():
        try:
            reference = copy.deepcopy(model)
        except Exception:  # some models hold uncopyable state; fall back to restoring the original
            reference = None
        if reference is not None:
            with inference_mode_of(reference):
                return _run_reference(reference, sets)
        saved = {name: tensor.detach().clone() for name, tensor in model.state_dict(keep_vars=True).items()}
        try:
            with inference_mode_of(model):
                return _run_reference(model, sets)
        finally:
            for name, tensor in model.state_dict(keep_vars=True).items():
                tensor.detach().copy_(saved[name])


def _run_reference(reference: Callable[..., Any], sets: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    outputs = []
    for label, inputs in sets:
        try:
            outputs.append(reference(*inputs))
        except Exception as error:
            raise InvalidModelError(
                f"the model itself raised on the {label} ({type(error).__name__}: {error}), so the optimized "
                "module cannot be checked against it. What to do: pass example inputs the model runs on in "
                "eval mode (e.g. a batch larger than 1 for a norm that uses batch statistics), or "
                "verify=False to skip the check.") from error
    return outputs


def compare(expected_outputs: Sequence[Any], candidate: Callable[..., Any],
            sets: Sequence[tuple[str, tuple[Any, ...]]], tolerance: float | None = None) -> Verification:
    """Run ``candidate`` on every input set and collect per-output errors against ``expected_outputs``."""
    verification = Verification(tolerance if tolerance is not None else tolerance_for(sets[0][1]))
    with torch.no_grad():
        for (label, inputs), expected in zip(sets, expected_outputs, strict=True):
            try:
                actual = candidate(*inputs)
            except Exception as error:  # the model ran, its rewrite does not: a broken rewrite
                verification.mismatch = f"on {label} the optimized module raised {type(error).__name__}: {error}"
                return verification
            expected_leaves, expected_spec = tree_flatten(expected)
            actual_leaves, actual_spec = tree_flatten(actual)
            if expected_spec != actual_spec:
                verification.mismatch = f"on {label} the output structure differs: {actual_spec} vs {expected_spec}"
                return verification
            for index, (expected_leaf, actual_leaf) in enumerate(zip(expected_leaves, actual_leaves, strict=True)):
                error = _output_error(label, index, expected_leaf, actual_leaf)
                if isinstance(error, str):
                    verification.mismatch = error
                    return verification
                if error is not None:
                    verification.errors.append(error)
            if tolerance is None:
                verification.tolerance = max(verification.tolerance, tolerance_for(inputs, expected_leaves))
    return verification


def verify(model: nn.Module, optimized: nn.Module, example_inputs: Sequence[Any], *, random_inputs: int = 2,
           tolerance: float | None = None, seed: int = 0,
           extra: Sequence[tuple[str, tuple[Any, ...]]] = ()) -> Verification:
    """Compare ``optimized`` with ``model`` in inference mode (see the module docstring and `reference_outputs`)."""
    sets = input_sets(example_inputs, random_inputs, seed, extra)
    return compare(reference_outputs(model, sets), optimized, sets, tolerance)


def _output_error(label: str, index: int, expected: Any, actual: Any) -> OutputError | str | None:
    error = value_error(expected, actual)
    if isinstance(error, str):
        return f"on {label} output {index} {error}"
    return None if error is None else OutputError(label, index, *error)


def value_error(expected: Any, actual: Any) -> tuple[float, float] | str | None:
    """``(max_abs, max_rel)`` of one value against the value it should have (the module docstring's
    measure; a non-floating tensor is exact or infinitely wrong), None for equal non-tensors, or why
    the two cannot be compared (different type, shape or dtype) as a phrase."""
    if not isinstance(expected, torch.Tensor):
        if isinstance(actual, torch.Tensor) or not _equal(expected, actual):
            return f"differs: {actual!r} vs {expected!r}"
        return None
    if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape:
        got = tuple(actual.shape) if isinstance(actual, torch.Tensor) else type(actual).__name__
        return f"has shape {got}, expected {tuple(expected.shape)}"
    if actual.dtype != expected.dtype:
        return f"has dtype {actual.dtype}, expected {expected.dtype}"
    if not expected.is_floating_point():
        equal = bool(torch.equal(actual, expected))
        return (0.0, 0.0) if equal else (float("inf"), float("inf"))
    # in float32 at least (half precision would round the difference itself); float64 stays float64
    wide = torch.promote_types(expected.dtype, torch.float32)
    expected, actual = expected.to(wide), actual.to(wide)
    if bool(torch.isnan(expected).any() != torch.isnan(actual).any()):
        return float("inf"), float("inf")
    difference = (actual - expected).nan_to_num(nan=0.0).abs()
    max_abs = float(difference.max()) if difference.numel() else 0.0
    scale = float(expected.nan_to_num(nan=0.0).abs().max()) if expected.numel() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    return max_abs, max_rel


def _equal(expected: Any, actual: Any) -> bool:
    try:
        return bool(expected == actual)
    except Exception:  # objects whose == is not a truth value
        return expected is actual


def _memory_format(tensor: torch.Tensor) -> torch.memory_format:
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous():
        return torch.channels_last
    if tensor.dim() == 5 and tensor.is_contiguous(memory_format=torch.channels_last_3d) and not tensor.is_contiguous():
        return torch.channels_last_3d
    return torch.contiguous_format
