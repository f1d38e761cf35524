"""Breadth: one model of every torchvision classification family, optimized exactly with every foldable BN folded.

Each model is built without pretrained weights, given random weights and non-trivial BatchNorm
statistics (`fxrep.models.randomize_`), put in eval mode and optimized with the default capture
(``torch.export``, since example inputs are given) on a small input. Checks:

- `fxrep.optimize` raises nothing and its verification passed;
- independently of fxrep's verifier, the optimized module matches the model on the example input and
  on a fresh random input within 1e-4 relative (``max |a - b| / max |a|``, float32);
- the number of BatchNorms left is exactly the number that have no conv or Linear on their linear
  side, computed here from the model's own module-level graph (``torch.fx.symbolic_trace``, not
  fxrep's capture): a BatchNorm folds when its producer is a conv / Linear that feeds only it
  (``W' = a W``, always exact), or when its only consumer is a conv with zero padding or a Linear
  on an (N, C) tensor (``W'[o, i] = W[o, i] a[i]``: exact because no padded border would see the
  BN's shift). Anything else keeps its BatchNorm, e.g. DenseNet's BN -> ReLU -> conv on a
  concatenation of shared features.

Every test is slow (a torch.export of a full network each); the whole file takes a few minutes on
two cores (see ``--durations``).
"""

from __future__ import annotations

import operator

import pytest
import torch
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

import fxrep
from fxrep.models import randomize_

torchvision = pytest.importorskip("torchvision")
models = torchvision.models

pytestmark = pytest.mark.slow

FAMILIES = {
    "vgg11_bn": (lambda: models.vgg11_bn(), 64),
    "googlenet": (lambda: models.googlenet(aux_logits=False, init_weights=False), 64),
    "inception_v3": (lambda: models.inception_v3(aux_logits=False, init_weights=False), 75),
    "resnet18": (lambda: models.resnet18(), 64),
    "resnet50": (lambda: models.resnet50(), 64),
    "densenet121": (lambda: models.densenet121(), 64),
    "efficientnet_b0": (lambda: models.efficientnet_b0(), 64),
    "mobilenet_v2": (lambda: models.mobilenet_v2(), 64),
    "mobilenet_v3_small": (lambda: models.mobilenet_v3_small(), 64),
    "shufflenet_v2_x0_5": (lambda: models.shufflenet_v2_x0_5(), 64),
    "regnet_y_400mf": (lambda: models.regnet_y_400mf(), 64),
}
"""name -> (factory, input size); inception_v3 needs at least 75x75."""

# What the module-level graph of the model must show for a BatchNorm to be foldable.
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN_TARGETS = ("batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit")


def _module(gm: torch.fx.GraphModule, node: torch.fx.Node) -> nn.Module | None:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


def _is_conv_or_linear(module: nn.Module | None) -> bool:
    return type(module) in (*_CONVS, nn.Linear)


def _absorbs_batchnorm_before_it(module: nn.Module | None) -> bool:
    """A consumer that can take a preceding BN exactly: a conv reading no zero padding, or a Linear."""
    if type(module) is nn.Linear:
        return True
    if type(module) in _CONVS:
        padding = module.padding
        return padding == "valid" or (not isinstance(padding, str) and not any(padding))
    return False


def expected_batchnorms_left(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(BatchNorms in the model's graph, how many of them no conv / Linear can absorb)."""
    gm = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        ShapeProp(gm).propagate(example)  # node.meta["tensor_meta"]: the rank a Linear would read
    total = kept = 0
    for node in gm.graph.nodes:
        if type(_module(gm, node)) not in _BATCHNORMS:
            continue
        total += 1
        (producer,) = node.all_input_nodes
        if _is_conv_or_linear(_module(gm, producer)) and list(producer.users) == [node]:
            continue  # conv / Linear -> BN: scale the producer's output channels
        users = list(node.users)
        if len(users) == 1 and _absorbs_batchnorm_before_it(_module(gm, users[0])):
            if type(_module(gm, users[0])) is not nn.Linear or len(node.meta["tensor_meta"].shape) == 2:
                continue  # BN -> unpadded conv / Linear: scale the consumer's input channels
        kept += 1
    return total, kept


def batchnorms_in(gm: torch.fx.GraphModule) -> int:
    """BatchNorm ops in an optimized graph (ATen forms from torch.export, or modules)."""
    count = 0
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is not operator.getitem:
            name = getattr(node.target, "__name__", str(node.target))
            count += any(name.split(".")[0] == target for target in _BN_TARGETS)
        elif type(_module(gm, node)) in _BATCHNORMS:
            count += 1
    return count


def constant_scales_in(gm: torch.fx.GraphModule) -> int:
    """Multiplications of a value by a constant tensor (a per-channel scale) in an optimized graph."""
    return sum(
        node.op == "call_function" and node.target in (torch.ops.aten.mul.Tensor, torch.mul, operator.mul)
        and any(arg.op == "get_attr" for arg in node.all_input_nodes)
        for node in gm.graph.nodes)


def relative_error(expected: torch.Tensor, actual: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).abs().max() / expected.double().abs().max())


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_optimizes_exactly_and_folds_every_foldable_batchnorm(name):
    factory, size = FAMILIES[name]
    model = randomize_(factory(), seed=0).eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, size, size, generator=generator)
    total, kept = expected_batchnorms_left(model, x)

    gm = fxrep.optimize(model, x)

    report = gm.fxrep_report
    assert "export" in report.capture, report.notes
    assert report.verification.passed and report.verification.max_rel <= 1e-4, str(report)
    fresh = torch.randn(1, 3, size, size, generator=generator)
    with torch.no_grad():
        for inputs in (x, fresh):
            error = relative_error(model(inputs), gm(inputs))
            assert error <= 1e-4, f"{name}: relative error {error:.3g} on {'fresh' if inputs is fresh else 'example'} input"
    assert report.ops_before["batchnorm"] == total
    # A kept BatchNorm may instead be emitted as a per-channel scale (+ shift) when the planner finds
    # that cheaper (DenseNet's transition: avg-pool of a 1x1 conv becomes one strided 2x2 conv and the
    # next layer's norm1 a scale + shift of it), so a BatchNorm and a constant scale count alike.
    left = batchnorms_in(gm) + constant_scales_in(gm)
    assert left <= kept, f"{name}: {left} BatchNorms / scales left, expected at most {kept} of {total}\n{report}"
    assert report.ops_after["conv"] <= report.ops_before["conv"]


def test_densenet_keeps_exactly_its_bn_relu_conv_batchnorms():
    """The expected-count helper itself: DenseNet-121 keeps norm1 of its 58 dense layers, the 3 transition
    norms and norm5 (62); every other model in the list keeps none."""
    assert expected_batchnorms_left(models.densenet121().eval(), torch.randn(1, 3, 64, 64)) == (121, 62)
    assert expected_batchnorms_left(models.resnet18().eval(), torch.randn(1, 3, 64, 64)) == (20, 0)
