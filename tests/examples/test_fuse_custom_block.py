"""examples/fuse_custom_block.py: an opaque user block becomes its one exact conv."""

from __future__ import annotations

import torch
from fxrep.passes import default_pipeline

import fxrep
from fxrep import pass_api as api
from fxrep.capture import capture
from fxrep.models import randomize_
from tests.examples.conftest import load_example
from tests.helpers import ops

example = load_example("fuse_custom_block")
X = torch.randn(2, 3, 12, 12)


def captured_with_blocks(model):
    """The authors' graph, copied (a traced GraphModule shares its modules with the model) and with shapes."""
    return capture(example.trace_with_blocks(model), (X,)).graph_module


def conv_kernels(gm):
    convs = [api.Conv.from_node(node) for node in gm.graph.nodes]
    return [conv.kernel_size for conv in convs if conv is not None]


def test_each_block_becomes_one_conv_with_the_largest_kernel():
    model = example.build_model()
    gm = captured_with_blocks(model)
    assert ops(gm)["MixtureConv"] == 2
    result = example.FuseMixtureConv()(gm)
    assert result.counts == {"fuse_mixture_conv": 2} and not result.refusals
    assert ops(gm)["MixtureConv"] == 0
    assert conv_kernels(gm) == [(3, 3), (5, 5), (3, 3)]
    torch.testing.assert_close(gm(X), model(X))
    assert not example.FuseMixtureConv()(gm)


def test_the_builtins_alone_cannot_see_into_the_block():
    model = example.build_model()
    gm = fxrep.optimize(example.trace_with_blocks(model), (X,), passes=default_pipeline())
    assert fxrep.report_of(gm).ops_after["MixtureConv"] == 2


def test_branches_with_different_strides_are_refused():
    block = randomize_(example.MixtureConv(3, 4, kernel_sizes=(1, 3), stride=(1, 2)), seed=0).eval()
    gm = capture(example.trace_with_blocks(torch.nn.Sequential(block)), (X,)).graph_module
    result = example.FuseMixtureConv()(gm)
    assert not result.modified
    (refusal,) = result.refusals
    assert "cannot be merged" in refusal.reason and "stride" in refusal.reason


def test_in_optimize_before_the_default_pipeline():
    model = example.build_model()
    gm = fxrep.optimize(example.trace_with_blocks(model), (X,),
                        passes=[example.FuseMixtureConv(), *default_pipeline()])
    report = fxrep.report_of(gm)
    assert report.fired("fuse_mixture_conv") == {"fuse_mixture_conv": 2}
    assert report.ops_after["MixtureConv"] == 0 and report.ops_after["batchnorm"] == 0
    torch.testing.assert_close(gm(X), model(X))
