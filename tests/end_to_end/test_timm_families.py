"""End to end on every timm family with a hand-written reparameterization: fxrep against timm's own.

Each family (`benchmarks/timm_families.py`, randomized BatchNorm statistics so a folding mistake
shows) is optimized, and the result must be as exact as timm's own conversion
(`timm.utils.model.reparameterize_model`) and leave no more BatchNorms. Two claims on top:

- the default pipeline (which minimises estimated time) is estimated no slower than timm's
  conversion, summed over every node of both graphs with the same `fxrep.cost.CostModel` (the
  benchmarks measure real latency);
- minimising op count instead (``CollapseLinearRegions(policy="always")``) leaves no more linear ops
  — convs, Linears, BatchNorms, adds, scales, pads, pools, layout ops, everything
  `fxrep.affine.affine_op` recognises — than timm's conversion. (The default may spend an op to save
  time, e.g. a 1x1 conv moved behind the global mean: one more mean, a conv on one pixel.)

Families whose attention biases fix the resolution run at 224x224, the rest at 96x96.
"""

from __future__ import annotations

import pathlib
import sys

import pytest
import torch

timm = pytest.importorskip("timm")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
from fxrep.passes import CollapseLinearRegions, default_pipeline  # noqa: E402
from timm_families import FAMILIES, build, example_input, hand_converted  # noqa: E402

import fxrep  # noqa: E402
from fxrep.affine import affine_op  # noqa: E402
from fxrep.cost import CostModel  # noqa: E402
from fxrep.report import count_ops  # noqa: E402

FIXED_RESOLUTION = {"levit_128s", "efficientvit_m0", "tiny_vit_5m_224", "shvit_s1", "efficientvim_m1"}


def _counts(module: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    graph = torch.export.export(module, (x,), strict=False).module()
    ops = count_ops(graph)
    linear = sum(bool(affine_op(n)) for n in graph.graph.nodes)
    seconds = sum(CostModel().node_seconds(n) for n in graph.graph.nodes)
    return {"batchnorm": ops.get("batchnorm", 0), "linear_ops": linear, "seconds": seconds}


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


def _fewest_ops_pipeline() -> list:
    return [CollapseLinearRegions(policy="always") if isinstance(p, CollapseLinearRegions) else p
            for p in default_pipeline()]


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["seconds", "ops"])
@pytest.mark.parametrize("name", [f.model for f in FAMILIES])
def test_fxrep_against_timms_own_conversion(name: str, objective: str) -> None:
    model = build(name)
    x = example_input(1, 224 if name in FIXED_RESOLUTION else 96)
    optimized = fxrep.optimize(model, x, passes=_fewest_ops_pipeline() if objective == "ops" else None)
    hand = hand_converted(model)
    with torch.no_grad():
        want, got, theirs = model(x), optimized(x), hand(x)
    # as exact as timm's own conversion is (some randomized families amplify float32 rounding a lot)
    assert _relative_error(got, want) <= max(1e-4, 4 * _relative_error(theirs, want))
    mine, baseline = _counts(optimized, x), _counts(hand, x)
    assert mine["batchnorm"] <= baseline["batchnorm"], (mine, baseline)
    if objective == "ops":
        assert mine["linear_ops"] <= baseline["linear_ops"], (mine, baseline)
    else:
        assert mine["seconds"] <= baseline["seconds"] * (1 + 1e-6), (mine, baseline)
