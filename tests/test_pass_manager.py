"""PassManager: fixed point, step cap, lint, errors naming the pass and its predecessors, dumps."""

from __future__ import annotations

import pytest
import torch
from fxrep.passes import CollapseLinearRegions, FoldBatchNorm, default_pipeline
from torch import nn

import fxrep
from fxrep.capture import capture
from fxrep.pass_manager import PassManager
from tests.helpers import randomized

X = torch.randn(1, 4, 6, 6)


def captured():
    model = randomized(nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.ReLU()))
    return capture(model, (X,), method="symbolic_trace").graph_module


def test_runs_to_a_fixed_point_and_records_every_run():
    run = PassManager([FoldBatchNorm(), CollapseLinearRegions()]).run(captured())
    assert run.converged and run.iterations == 2
    assert [r.name for r in run.records] == ["fold_batchnorm", "collapse_linear_regions"] * 2
    assert run.records[0].result.counts["fold_batchnorm"] == 1 and not run.records[2].result


def test_step_cap_stops_a_pass_that_always_claims_a_change():
    def restless(gm):
        return fxrep.PassResult(modified=True)

    run = PassManager([restless], max_iterations=3).run(captured())
    assert not run.converged and run.iterations == 3


def test_a_pass_that_breaks_the_graph_is_named():
    def breaker(gm):
        node = next(n for n in gm.graph.nodes if n.op == "call_module")
        node.args = (node,)  # a node reading itself: lint fails
        return fxrep.PassResult(modified=True)

    with pytest.raises(fxrep.PassError) as error:
        PassManager([FoldBatchNorm(), breaker]).run(captured())
    assert error.value.pass_name == "breaker" and error.value.previous == ["fold_batchnorm"]


def test_dump_writes_the_graph_before_and_after_a_named_pass(tmp_path):
    pipeline = default_pipeline()
    PassManager(pipeline, dump={"fold_batchnorm"}, dump_dir=tmp_path).run(captured())
    files = {p.name for p in tmp_path.iterdir()}
    first = [p.name for p in pipeline].index("fold_batchnorm")  # its record index in the first round
    assert {f"{first:03d}_fold_batchnorm_before.py", f"{first:03d}_fold_batchnorm_after.py"} <= files
    before = (tmp_path / f"{first:03d}_fold_batchnorm_before.py").read_text()
    after = (tmp_path / f"{first:03d}_fold_batchnorm_after.py").read_text()
    assert before.count("getattr(self") == 3 and after.count("getattr(self") == 2  # conv + BN -> one conv


def test_default_pipeline_is_a_fresh_list_of_fresh_passes():
    first, second = default_pipeline(), default_pipeline()
    names = [p.name for p in first]
    assert names == ["remove_no_ops", "fuse_activations", "evaluate_constant_subgraphs", "fold_batchnorm",
                     "collapse_linear_regions", "fuse_horizontal_convs"]
    assert first is not second and [p.name for p in second] == names
    assert not {id(p) for p in first} & {id(p) for p in second}  # no pass object (and its state) is shared
    first.clear()
    assert [p.name for p in default_pipeline()] == names


def test_default_pipeline_gives_its_cost_model_to_both_cost_driven_passes():
    estimator = fxrep.cost.CostModel()
    pipeline = default_pipeline(cost_model=estimator)
    deciding = {p.name for p in pipeline if getattr(p, "cost_model", None) is estimator}
    assert deciding == {"collapse_linear_regions", "fuse_horizontal_convs"}
    assert [p.name for p in pipeline] == [p.name for p in default_pipeline()]
