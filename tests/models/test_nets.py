from __future__ import annotations

import pytest
import torch
from torch import nn

from fxrep.models import (
    acnet_small,
    dbb_small,
    diracnet_small,
    doconv_small,
    expandnet_small,
    inception_small,
    mobileone_small,
    repmixer_small,
    repvgg_small,
)

from ._checks import assert_deterministic, count_modules, randomized_eval

NETS = {  # builder: nn.Conv2d modules in the training form
    acnet_small: 12,
    dbb_small: 18,
    diracnet_small: 5,  # stem + 4 DiracConv2d (an nn.Conv2d subclass)
    doconv_small: 0,  # DOConv2d composes its kernel functionally
    expandnet_small: 8,
    inception_small: 13,
    mobileone_small: 20,
    repmixer_small: 2 + 2 * (2 + 3),  # stem conv + scale; per block: mixer conv + scale, FFN dw7x7 + 2 x 1x1
    repvgg_small: 14,
}


@pytest.mark.parametrize("build", list(NETS), ids=lambda build: build.__name__)
def test_shapes_and_conv_counts(build) -> None:
    model = randomized_eval(build())
    assert count_modules(model, nn.Conv2d) == NETS[build]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
        out = model(torch.randn(2, 3, 64, 48))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    assert build(num_classes=3).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3)


@pytest.mark.parametrize("build", list(NETS), ids=lambda build: build.__name__)
def test_deterministic(build) -> None:
    assert_deterministic(build, torch.randn(1, 3, 32, 32))
