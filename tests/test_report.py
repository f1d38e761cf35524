"""`Report` built from a hand-made pipeline run: per-pass aggregation (counts, refusals, decisions, rewrites),
the printed tables, and `to_dict` as plain data that survives a JSON round trip."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from torch import nn

from fxrep.pass_base import CostDecision, PassResult, Refusal, Rewrite
from fxrep.pass_manager import PassRecord, PipelineRun
from fxrep.report import MAX_LISTED, Report, count_ops, count_parameters, format_table
from fxrep.rewriter import Rewriter
from fxrep.verify import verify
from tests.helpers import captured, randomized

X = torch.randn(1, 3, 8, 8)


def result(counts=(), refusals=(), decisions=(), rewrites=()):
    return PassResult(modified=bool(counts), counts=Counter(dict(counts)), refusals=list(refusals),
                      decisions=list(decisions), rewrites=list(rewrites))


def two_rounds() -> PipelineRun:
    fold_1 = result({"fold_batchnorm": 2}, [Refusal("bn3", "uses batch statistics", "stage.bn3")],
                    rewrites=[Rewrite("bn1", "fold_batchnorm", "stage.bn1"), Rewrite("bn2", "fold_batchnorm")])
    collapse_1 = result({"regions": 1, "merge_branches": 2},
                        [Refusal("add", "sizes differ", "stage"), Refusal("add", "sizes differ", "stage")],
                        [CostDecision("conv", 2e-6, 1e-6, True, module="stage", plan="one conv", rejected="two")])
    fold_2 = result({}, [Refusal("bn3", "still batch statistics", "stage.bn3")])
    collapse_2 = result({}, [], [CostDecision("conv2", 1e-6, 3e-6, False, module="head")])
    records = [PassRecord("fold_batchnorm", 0, fold_1, 0.25), PassRecord("collapse", 0, collapse_1, 0.5),
               PassRecord("fold_batchnorm", 1, fold_2, 0.125), PassRecord("collapse", 1, collapse_2, 0.125)]
    return PipelineRun(records, converged=True, iterations=2)


def report(run=None, **fields) -> Report:
    run = run or two_rounds()
    return Report("symbolic_trace", passes=Report.summarize(run), converged=run.converged,
                  iterations=run.iterations, **fields)


def test_summarize_aggregates_each_pass_over_its_rounds():
    fold, collapse = Report.summarize(two_rounds())
    assert (fold.name, fold.runs, fold.seconds) == ("fold_batchnorm", 2, 0.375)
    assert fold.fired == Counter({"fold_batchnorm": 2})
    assert [r.node for r in fold.rewrites] == ["bn1", "bn2"]
    # a later round's reasons for a node replace the earlier ones
    assert fold.refusals == [Refusal("bn3", "still batch statistics", "stage.bn3")]
    assert collapse.fired == Counter({"regions": 1, "merge_branches": 2})
    assert collapse.refusals == [Refusal("add", "sizes differ", "stage")]  # the same refusal once
    assert [d.node for d in collapse.decisions] == ["conv", "conv2"]


def test_queries_over_all_passes():
    made = report()
    assert made.fired("collapse") == Counter({"regions": 1, "merge_branches": 2})
    assert made.fired("no_such_pass") == Counter()
    assert [r.node for r in made.refusals] == ["bn3", "add"]
    assert [d.node for d in made.decisions] == ["conv", "conv2"]


def test_summarize_with_the_final_graph_follows_renames_and_drops_absorbed_nodes():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return torch.relu(self.conv(x))

    gm = captured(randomized(Net()), X, level="symbolic_trace")
    conv = next(n for n in gm.graph.nodes if n.op == "call_module")
    x = next(n for n in gm.graph.nodes if n.op == "placeholder")
    rewriter = Rewriter(gm)
    rewriter.replace(conv, x, "drop")
    rewriter.finish()
    refused = result({}, [Refusal(conv.name, "was left alone", "conv"), Refusal("relu", "not affine"),
                          Refusal("gone_node", "absorbed later")])
    run = PipelineRun([PassRecord("p", 0, refused, 0.0)])
    (summary,) = Report.summarize(run, final=gm)
    assert summary.refusals == [Refusal(x.name, "was left alone", "conv"), Refusal("relu", "not affine")]


def test_to_dict_is_plain_data_that_survives_json():
    verification = verify(nn.Identity(), nn.Identity(), (X,))
    made = report(ops_before=Counter(conv=3, batchnorm=2), ops_after=Counter(conv=1), parameters_before=120,
                  parameters_after=40, verification=verification, notes=["a note"], seconds={"capture": 0.5})
    data = made.to_dict()
    assert json.loads(json.dumps(data)) == as_json_types(data)
    assert data["capture"] == "symbolic_trace" and data["notes"] == ["a note"] and data["iterations"] == 2
    assert [p["name"] for p in data["passes"]] == ["fold_batchnorm", "collapse"]
    collapse = data["passes"][1]
    assert collapse["fired"] == {"regions": 1, "merge_branches": 2} and collapse["runs"] == 2
    assert collapse["refusals"] == [{"node": "add", "reason": "sizes differ", "module": "stage"}]
    assert collapse["decisions"][0]["ratio"] == pytest.approx(0.5) and collapse["decisions"][0]["plan"] == "one conv"
    assert data["passes"][0]["fired"] == {"fold_batchnorm": 2}
    assert data["passes"][0]["rewrites"][0] == {"node": "bn1", "rule": "fold_batchnorm", "module": "stage.bn1"}
    assert data["ops_before"] == {"conv": 3, "batchnorm": 2} and data["ops_after"] == {"conv": 1}
    assert (data["parameters_before"], data["parameters_after"]) == (120, 40)
    assert data["verification"] == verification.to_dict() and data["verification"]["passed"]
    assert data["seconds"] == {"capture": 0.5}
    assert report().to_dict()["verification"] is None


def as_json_types(value):
    """``value`` with tuples as lists (what JSON gives back)."""
    if isinstance(value, dict):
        return {key: as_json_types(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_json_types(item) for item in value]
    return value


def test_to_dict_round_trips_through_json_exactly():
    data = report().to_dict()
    assert json.loads(json.dumps(data)) == data


def test_str_has_the_pass_table_the_op_table_the_regions_and_the_refusals():
    made = report(ops_before=Counter(conv=3, batchnorm=2), ops_after=Counter(conv=1), parameters_before=1200,
                  parameters_after=400, notes=["captured twice"])
    text = str(made)
    lines = text.splitlines()
    assert lines[0] == "fxrep report (captured with symbolic_trace)" and lines[1] == "  note: captured twice"
    row = next(line for line in lines if line.startswith("collapse "))
    assert row.split() == ["collapse", "2", "merge_branches", "x2,", "regions", "x1", "1", "0.62s"]
    assert next(line for line in lines if line.startswith("batchnorm")).split() == ["batchnorm", "2", "0"]
    assert next(line for line in lines if line.startswith("parameters")).split() == ["parameters", "1,200", "400"]
    assert "regions rewritten (1): the chosen plan, its estimate, the best rejected one" in text
    assert next(line for line in lines if line.strip().startswith("stage ")).split() == [
        "stage", "2.0", "->", "1.0", "us", "one", "conv", "two"]
    assert "left alone (2):" in text
    assert next(line for line in lines if line.strip().startswith("bn3")).split()[:2] == ["bn3", "stage.bn3"]
    assert lines[-1] == "verification: off (verify=False)"


def test_str_notes_a_run_that_did_not_converge_and_truncates_long_lists():
    refusals = [Refusal(f"node{i}", "no") for i in range(MAX_LISTED + 5)]
    run = PipelineRun([PassRecord("p", 0, result({}, refusals), 0.0)], converged=False, iterations=8)
    text = str(report(run))
    assert "  note: passes still changed the graph after 8 rounds (step cap)" in text
    assert f"left alone ({MAX_LISTED + 5}):" in text
    assert "  ... and 5 more (report.to_dict() has them all)" in text
    assert f"node{MAX_LISTED - 1} " in text and f"node{MAX_LISTED} " not in text


def test_count_ops_and_parameters():
    model = randomized(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1)))
    for level in ("symbolic_trace", "export"):
        gm = captured(model, X, level=level)
        assert count_ops(gm) == Counter(conv=2, batchnorm=1, relu=1), level
    assert count_parameters(model) == (4 * 3 * 9 + 4) + (4 + 4 + 4 + 4 + 1) + (4 * 4 + 4)  # BN: 4 tensors + count


def test_format_table_pads_columns_to_their_widest_cell():
    assert format_table(["a", "bb"], [["xxx", "y"], ["z", "w"]], indent="  ") == [
        "  a    bb", "  ---  --", "  xxx  y", "  z    w"]
