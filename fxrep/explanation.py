"""`fxrep.explain`: what the passes did to every candidate and why, as a table and as data.

It runs the same pipeline as `fxrep.optimize` (verification off: explaining is for reading, not
for deploying) and lists, per pass, every region or pattern it looked at: what fired (with the ops
before and after and the rules that folded), what was left alone and the reason ("conv3 feeds 2
users", "the border is padded with 0 but the branch produces 0.86 there", "collapsing would cost
1.8x the estimated time"), grouped by the module the node came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from .capture import CaptureMethod
from .optimization import optimize
from .report import Report, format_table


@dataclass(frozen=True)
class Explained:
    """One candidate: which pass looked at it, where it is, what happened and why."""

    pass_name: str
    node: str
    module: str
    outcome: str  # "fired", "not applied" or "refused"
    detail: str


@dataclass
class Explanation:
    """All candidates of one model, with the report of the run that produced them."""

    rows: list[Explained] = field(default_factory=list)
    report: Report | None = None

    def for_module(self, prefix: str) -> list[Explained]:
        """Rows whose module path starts with ``prefix`` (``"stage1.0"``)."""
        return [row for row in self.rows if row.module.startswith(prefix)]

    def refused(self) -> list[Explained]:
        return [row for row in self.rows if row.outcome == "refused"]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(row) for row in self.rows],
                "report": None if self.report is None else self.report.to_dict()}

    def __str__(self) -> str:
        if not self.rows:
            return "fxrep explain: no candidates (nothing linear to fold)"
        rows = sorted(self.rows, key=lambda r: (r.module, r.outcome != "fired", r.pass_name))
        table = format_table(["module", "node", "pass", "outcome", "detail"],
                             [[r.module or "-", r.node, r.pass_name, r.outcome, r.detail] for r in rows])
        fired = sum(r.outcome == "fired" for r in rows)
        refused = sum(r.outcome == "refused" for r in rows)
        return "\n".join([f"fxrep explain: {fired} rewrites fired, {refused} candidates refused", "", *table])


def explain(model: nn.Module, example_inputs: Any = None, *, passes: Sequence[Any] | None = None,
            capture_method: CaptureMethod = "auto") -> Explanation:
    """Run the pipeline on ``model`` and explain every decision (see the module docstring)."""
    gm = optimize(model, example_inputs, passes=passes, verify=False, capture_method=capture_method)
    return explanation_of(gm.fxrep_report)


def explanation_of(report: Report) -> Explanation:
    """The `Explanation` of an existing report (e.g. ``gm.fxrep_report``)."""
    explanation = Explanation(report=report)
    for summary in report.passes:
        for rewrite in summary.rewrites:
            explanation.rows.append(Explained(summary.name, rewrite.node, rewrite.module, "fired", rewrite.rule))
        for decision in summary.decisions:
            outcome = "fired" if decision.applied else "not applied"
            explanation.rows.append(Explained(summary.name, decision.node, decision.module, outcome, decision.note))
        for refusal in summary.refusals:
            explanation.rows.append(Explained(summary.name, refusal.node, refusal.module, "refused", refusal.reason))
    return explanation
