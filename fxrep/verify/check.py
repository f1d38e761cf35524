"""`check_rewrite`: the whole verification of one optimized module, and the error it leads to.

1. The end-to-end comparison of the returned module with the model on every input set
   (`fxrep.verify.outputs`), as always.
2. The local check of every rewritten region of the passes' graph against the captured graph
   from before the passes (`fxrep.verify.local`), on the example inputs and the first random set
   (``VerifySettings.local_sets``) and on every other set whose outputs differ: a region that is
   wrong shows on two independent inputs, and a difference anywhere is still attributed, at half
   the cost of checking every set. A failing region is an `EquivalenceError` naming it, whatever
   the outputs do.
3. When every region passed but the outputs differ beyond the tolerance:
   - the returned module against the passes' module: the final stage (`fxrep.lean`) writes the
     same ATen graph with other entry points and in-place ops, which must not change a value, so
     any difference there is the final stage's (an error naming "lean"; it is checked end to end
     rather than locally because it changes how ops are called, not which ops run);
   - the captured graph against the model (a difference there is the capture's, an error);
   - otherwise `fxrep.verify.divergence.explain` on each input set that differs: a flip at a
     discrete op or rounding the model amplifies is a warning in the report (an error with
     ``strict=True``); anything else is an error that blames no pass.

Settings come in one `VerifySettings`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.fx import GraphModule

from ..errors import EquivalenceError
from ..pass_manager import pass_changes
from .correspondence import correspond
from .divergence import Divergence, explain
from .local import LocalCheck, local_check
from .outputs import Verification, compare, input_sets, reference_outputs
from .running import NodeRaised, run_graph

if TYPE_CHECKING:
    from ..report import PassSummary


@dataclass(frozen=True)
class VerifySettings:
    """What `fxrep.optimize` verifies with (its verification arguments, in one object)."""

    tolerance: float | None = None
    """Relative tolerance; None: the dtype's (`fxrep.verify.outputs.TOLERANCES`)."""
    random_inputs: int = 2
    """Random input sets besides the example inputs."""
    strict: bool = False
    """Make every verification warning (an explained output difference, an ill-conditioned region) an error."""
    local: bool = True
    """Check every rewritten region on its own (False: compare the outputs alone)."""
    local_sets: int = 2
    """The input sets the local checks always run on (the example inputs and the first random set); each
    other set is checked locally too where the outputs differ on it, so every difference is attributed."""
    seed: int = 0


@dataclass(frozen=True)
class Rewritten:
    """The modules one optimization produced, as verification needs them."""

    original: GraphModule | None
    """The captured graph before any pass (`snapshot`), or None when it could not be kept."""
    passes: GraphModule
    """The passes' module (its graph is the one the local checks validate)."""
    final: GraphModule
    """The module returned to the user (the lean forward of ``passes``, or ``passes`` itself)."""
    summaries: Sequence[PassSummary] = ()
    """The report's per-pass summaries (rules and planned regions, to name a failing region)."""


def snapshot(gm: GraphModule) -> GraphModule | None:
    """A copy of the captured graph taken before the passes rewrite it in place (None if it cannot be copied)."""
    try:
        return copy.deepcopy(gm)
    except Exception:  # a module holding uncopyable state: only the outputs can be compared
        return None


def check_rewrite(model: nn.Module, rewritten: Rewritten, inputs: tuple[Any, ...], settings: VerifySettings,
                  extra: Sequence[tuple[str, tuple[Any, ...]]] = ()) -> Verification:
    """Verify ``rewritten`` against ``model`` on the example inputs, random ones and ``extra`` (module docstring)."""
    sets = input_sets(inputs, settings.random_inputs, settings.seed, extra)
    expected = reference_outputs(model, sets)
    verification = compare(expected, rewritten.final, sets, settings.tolerance)
    original = rewritten.original
    if not settings.local:
        return verification
    if original is None:
        verification.local = LocalCheck(verification.tolerance, skipped=(
            "the captured graph could not be copied before the passes ran (it holds state deepcopy refuses), so "
            "only the outputs are compared"))
        return verification
    correspondence = correspond(original, rewritten.passes)
    verification.local = local_check(original, rewritten.passes, _local_sets(sets, verification, settings),
                                     pass_changes(rewritten.passes), rewritten.summaries, verification.tolerance,
                                     correspondence)
    if not verification.local.passed or verification.within_tolerance or verification.local.skipped is not None:
        return verification
    verification.divergence = _divergence(rewritten, sets, expected, verification, correspondence)
    return verification


def equivalence_error(verification: Verification, strict: bool = False) -> EquivalenceError | None:
    """The `EquivalenceError` a verification leads to (None when it passed, and with ``strict`` had no warning)."""
    if verification.skipped is not None:
        return None
    local, divergence = verification.local, verification.divergence
    if local is not None and local.failures:
        return _region_error(verification)
    if not verification.passed:
        if divergence is not None:
            cause = divergence.message
            if divergence.cause == "lean":
                return EquivalenceError(cause, pass_name="lean", max_abs=verification.max_abs,
                                        max_rel=verification.max_rel, tolerance=verification.tolerance)
            what = ("This is a bug in fxrep's capture: please report it with the model; meanwhile try "
                    "optimize(..., capture_method='symbolic_trace')." if divergence.cause == "capture" else
                    "Each rewritten region alone is within the tolerance, so no pass can be named: small errors of "
                    "several regions add up beyond what rounding gives. Please report it with the model; meanwhile "
                    "run with fewer passes (optimize(..., passes=[...])) to find the one that is slightly off.")
            return EquivalenceError(f"{cause}. {what}", pass_name=None, max_abs=verification.max_abs,
                                    max_rel=verification.max_rel, tolerance=verification.tolerance)
        worst = verification.worst
        where = f"on the {worst.inputs}, output {worst.output}" if worst is not None else verification.mismatch
        why = local.skipped if local is not None and local.skipped else "the rewritten regions were not checked locally"
        return EquivalenceError(
            f"the optimized module's outputs differ from the model's: max rel error {verification.max_rel:.3g} (max "
            f"abs {verification.max_abs:.3g}) {where}, tolerance {verification.tolerance:g}; no pass can be named "
            f"({why}). Please report it with the model; meanwhile run with fewer passes via optimize(..., passes=[...]).",
            pass_name=None, max_abs=verification.max_abs, max_rel=verification.max_rel,
            tolerance=verification.tolerance)
    if strict and verification.warnings:
        return EquivalenceError(
            "verification passed with warnings, and strict=True makes them errors:\n- "
            + "\n- ".join(verification.warnings), pass_name=None, max_abs=verification.max_abs,
            max_rel=verification.max_rel, tolerance=verification.tolerance)
    return None


def _local_sets(sets: Sequence[tuple[str, tuple[Any, ...]]], verification: Verification,
                settings: VerifySettings) -> list[tuple[str, tuple[Any, ...]]]:
    """The first ``settings.local_sets`` input sets, and every other one on which the outputs differ."""
    if verification.mismatch is not None:
        return list(sets)
    differing = {error.inputs for error in verification.errors if error.max_rel > verification.tolerance}
    return [item for index, item in enumerate(sets) if index < settings.local_sets or item[0] in differing]


def _region_error(verification: Verification) -> EquivalenceError:
    failures = verification.local.failures
    first = failures[0]
    region = first.region
    error = first.problem or (f"max rel error {first.max_rel:.3g} (max abs {first.max_abs:.3g}) at {first.exit} on "
                              f"the {first.inputs}, tolerance {verification.local.tolerance:g}")
    blame = (f"This is a bug in pass {region.pass_name!r}: please report it with the model; meanwhile run without it "
             "via optimize(..., passes=[...])." if region.pass_name else
             "Please report it with the model and the passes you ran.")
    lines = [f"a rewritten region is wrong: fed the original graph's own values at its entries, it does not "
             f"reproduce the original's values at its exits: {region.describe()}: {error}. Every other rewritten "
             f"region matched. {blame}"]
    if len(failures) > 1:
        lines[0] = lines[0].replace("Every other rewritten region matched. ", "")
        lines.append(f"{len(failures) - 1} more region(s) failed:")
        lines += [f"- {r.region.describe()}: " + (r.problem or f"max rel error {r.max_rel:.3g} on the {r.inputs}")
                  for r in failures[1:6]]
    return EquivalenceError("\n".join(lines), pass_name=region.pass_name, max_abs=first.max_abs,
                            max_rel=first.max_rel, tolerance=verification.local.tolerance,
                            regions=[r.region for r in failures])


def _divergence(rewritten: Rewritten, sets: Sequence[tuple[str, tuple[Any, ...]]], expected: Sequence[Any],
                verification: Verification, correspondence: Any) -> Divergence:
    tolerance = verification.tolerance
    if rewritten.final is not rewritten.passes:
        with torch.no_grad():
            reference = [rewritten.passes(*inputs) for _, inputs in sets]
        lean = compare(reference, rewritten.final, sets, tolerance)
        if not lean.within_tolerance:
            worst = lean.worst
            where = lean.mismatch or f"max rel error {lean.max_rel:.3g} on the {worst.inputs}, output {worst.output}"
            return Divergence(worst.inputs if worst else "", "lean", (
                f"the lean forward of the optimized module differs from the passes' module ({where}) although every "
                "rewritten region of the passes' graph passed its local check: this is a bug in fxrep's final stage "
                "(fxrep.lean): please report it with the model; meanwhile pass optimize(..., lean=False)"))
    if verification.mismatch is not None:
        return Divergence("", "unexplained", f"{verification.mismatch}, although every rewritten region passed its "
                                             "local check")
    original = rewritten.original
    capture = compare(expected, lambda *inputs: run_graph(original, inputs), sets, tolerance)
    if not capture.within_tolerance:
        return Divergence("", "capture", (
            f"the captured graph itself differs from the model ({capture.mismatch or f'max rel error {capture.max_rel:.3g}'}"
            ") before any pass ran"))
    found = []
    for label, inputs in sets:
        errors = [e.max_rel for e in verification.errors if e.inputs == label]
        if max(errors, default=0.0) <= tolerance:
            continue
        try:
            found.append(explain(original, rewritten.passes, correspondence, label, inputs, max(errors), tolerance))
        except NodeRaised as raised:
            found.append(Divergence(label, "unexplained", f"the divergence analysis could not run on the {label}: "
                                                          f"{raised}"))
    if not found:
        return Divergence("", "unexplained", "the outputs differ, but no input set could be analysed")
    unexplained = [d for d in found if not d.explained]
    chosen = unexplained[0] if unexplained else max(found, key=lambda d: d.output_error)
    if len(found) > 1 and not unexplained:
        others = sorted({d.cause for d in found})
        chosen.message += f" (the outputs differ on {len(found)} input sets, each explained: {', '.join(others)})"
    return chosen
