"""`Report`: what `fxrep.optimize` did, as data (`to_dict`) and as a readable table (`str`).

Per pass: how often each rule fired, which candidates it refused and why, and the cost-model
estimates behind its decisions; for the whole graph: op counts and parameter counts before and
after, and the verification (`fxrep.verify.Verification`: local checks, output errors, warnings).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.fx import GraphModule

from .lean.input_check import is_guards_call
from .ops import op_kind, target_name
from .pass_base import CostDecision, Refusal, Rewrite
from .pass_manager import PipelineRun
from .rewriter import final_name
from .verify import Verification

MAX_LISTED = 40
"""Rows per section of the printed report (`Report.to_dict` has everything)."""


@dataclass
class PassSummary:
    """Everything one pass did across all fixed-point rounds."""

    name: str
    runs: int = 0
    fired: Counter = field(default_factory=Counter)
    refusals: list[Refusal] = field(default_factory=list)
    decisions: list[CostDecision] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Report:
    """The report attached to an optimized module as ``gm.fxrep_report``."""

    capture: str
    notes: list[str] = field(default_factory=list)
    passes: list[PassSummary] = field(default_factory=list)
    ops_before: Counter = field(default_factory=Counter)
    ops_after: Counter = field(default_factory=Counter)
    parameters_before: int = 0
    parameters_after: int = 0
    verification: Verification | None = None
    converged: bool = True
    iterations: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ building
    @staticmethod
    def summarize(run: PipelineRun, final: GraphModule | None = None) -> list[PassSummary]:
        """Aggregate per pass.

        With ``final``, each refusal is re-attached to the node that holds its value in the final
        graph (a later pass may have re-expressed it), and refusals of nodes that a later rewrite
        absorbed (they no longer exist) are dropped: what they refused happened after all. A pass's
        reasons for a node in a later fixed-point round replace its earlier ones.
        """
        summaries: dict[str, PassSummary] = {}
        for record in run.records:
            summary = summaries.setdefault(record.name, PassSummary(record.name))
            summary.runs += 1
            summary.fired.update(record.result.counts)
            summary.seconds += record.seconds
            latest: dict[str, list[Refusal]] = {}
            for refusal in record.result.refusals:
                if final is not None:
                    name = final_name(final, refusal.node)
                    if name is None:
                        continue
                    refusal = Refusal(name, refusal.reason, refusal.module)
                if refusal not in latest.setdefault(refusal.node, []):
                    latest[refusal.node].append(refusal)
            # a later round's reasons for a node replace the same pass's earlier ones (the graph changed since)
            summary.refusals = [r for r in summary.refusals if r.node not in latest]
            summary.refusals.extend(r for found in latest.values() for r in found)
            summary.decisions.extend(record.result.decisions)
            summary.rewrites.extend(record.result.rewrites)
        return list(summaries.values())

    # ------------------------------------------------------------------ queries
    def fired(self, pass_name: str) -> Counter:
        return next((p.fired for p in self.passes if p.name == pass_name), Counter())

    @property
    def refusals(self) -> list[Refusal]:
        return [r for p in self.passes for r in p.refusals]

    @property
    def decisions(self) -> list[CostDecision]:
        return [d for p in self.passes for d in p.decisions]

    def to_dict(self) -> dict[str, Any]:
        verification = None if self.verification is None else self.verification.to_dict()
        return {
            "capture": self.capture,
            "notes": list(self.notes),
            "converged": self.converged,
            "iterations": self.iterations,
            "passes": [
                {
                    "name": p.name,
                    "runs": p.runs,
                    "fired": dict(p.fired),
                    "seconds": p.seconds,
                    "refusals": [_plain(vars(r)) for r in p.refusals],
                    "decisions": [_plain(vars(d) | {"ratio": d.ratio}) for d in p.decisions],
                    "rewrites": [_plain(vars(r)) for r in p.rewrites],
                }
                for p in self.passes
            ],
            "ops_before": dict(self.ops_before),
            "ops_after": dict(self.ops_after),
            "parameters_before": self.parameters_before,
            "parameters_after": self.parameters_after,
            "verification": verification,
            "seconds": dict(self.seconds),
        }

    # ------------------------------------------------------------------ printing
    def __str__(self) -> str:
        lines = [f"fxrep report (captured with {self.capture})"]
        lines += [f"  note: {note}" for note in self.notes]
        if not self.converged:
            lines.append(f"  note: passes still changed the graph after {self.iterations} rounds (step cap)")
        lines.append("")
        rows = []
        for summary in self.passes:
            fired = ", ".join(f"{rule} x{count}" for rule, count in sorted(summary.fired.items())) or "-"
            rows.append([summary.name, str(summary.runs), fired, str(len(summary.refusals)),
                         f"{summary.seconds:.2f}s"])
        lines += format_table(["pass", "runs", "fired", "refused", "time"], rows)
        lines.append("")
        kinds = sorted(set(self.ops_before) | set(self.ops_after),
                       key=lambda k: (-self.ops_before.get(k, 0), k))
        rows = [[kind, str(self.ops_before.get(kind, 0)), str(self.ops_after.get(kind, 0))] for kind in kinds]
        rows.append(["parameters", f"{self.parameters_before:,}", f"{self.parameters_after:,}"])
        lines += format_table(["ops", "before", "after"], rows)
        planned = [d for d in self.decisions if d.applied and d.plan]
        if planned:
            lines.append("")
            lines.append(f"regions rewritten ({len(planned)}): the chosen plan, its estimate, the best rejected one")
            rows = [[d.module or d.node, f"{d.before * 1e6:.1f} -> {d.after * 1e6:.1f} us", d.plan,
                     d.rejected or "-"] for d in planned[:MAX_LISTED]]
            lines += format_table(["region", "estimate", "plan", "best rejected"], rows, indent="  ")
            if len(planned) > MAX_LISTED:
                lines.append(f"  ... and {len(planned) - MAX_LISTED} more (report.to_dict() has them all)")
        refusals = self.refusals
        if refusals:
            lines.append("")
            lines.append(f"left alone ({len(refusals)}):")
            rows = [[r.node, r.module or "-", r.reason] for r in refusals[:MAX_LISTED]]
            lines += format_table(["node", "module", "reason"], rows, indent="  ")
            if len(refusals) > MAX_LISTED:
                lines.append(f"  ... and {len(refusals) - MAX_LISTED} more (report.to_dict() has them all)")
        lines.append("")
        lines += ["verification: off (verify=False)"] if self.verification is None else self.verification.describe()
        return "\n".join(lines)


def count_ops(gm: GraphModule) -> Counter:
    """Ops in a graph by kind (``conv``, ``batchnorm``, ``add``, ``relu``, ...; unknown ops by target)."""
    counts: Counter = Counter()
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr") or _counted_by_getitem(node):
            continue
        kind = op_kind(node)
        if kind is None:
            if is_guards_call(node):
                continue
            kind = target_name(node)
        counts[kind] += 1
    return counts


def count_parameters(module: nn.Module) -> int:
    """Numbers stored by a module: parameters plus buffers (BatchNorm statistics)."""
    return sum(t.numel() for t in module.parameters()) + sum(t.numel() for t in module.buffers())


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "") -> list[str]:
    rows = [list(map(str, row)) for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    widths[-1] = min(widths[-1], 100)

    def line(cells: Sequence[str]) -> str:
        return indent + "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()

    return [line(header), indent + "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def _counted_by_getitem(node) -> bool:
    """A tuple-returning op (ATen batch norm) whose getitem users carry its kind."""
    users = list(node.users)
    return bool(users) and all(u.target is operator.getitem and op_kind(u) is not None for u in users)


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with tuples as lists, so ``to_dict()`` equals its own JSON round trip."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in record.items()}
