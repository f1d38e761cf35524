from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fxrep.models import RepMixer, RepMixerBlock, repmixer_small

from ._checks import (
    assert_close_scaled,
    assert_deterministic,
    assert_export_matches,
    assert_symbolic_trace_matches,
    randomized_eval,
)
from .test_mobileone import equivalent_conv


def test_structure() -> None:
    mixer = RepMixer(8)
    assert mixer.layer_scale.shape == (8, 1, 1)
    assert mixer.norm.rbr_conv is None and mixer.norm.rbr_scale is None and mixer.norm.rbr_skip is not None
    assert (
        len(mixer.mixer.rbr_conv) == 1
        and mixer.mixer.rbr_scale is not None
        and mixer.mixer.rbr_skip is not None
    )
    assert mixer.mixer.rbr_conv[0].conv.groups == 8


@pytest.mark.parametrize(("kernel_size", "use_layer_scale"), [(3, True), (5, True), (3, False)])
def test_collapses_to_one_depthwise_conv(kernel_size: int, use_layer_scale: bool) -> None:
    mixer = randomized_eval(RepMixer(6, kernel_size, use_layer_scale=use_layer_scale))
    x = torch.randn(2, 6, 9, 7)
    # Official RepMixer.reparameterize: W = I + s * (W_mixer - W_norm), b = s * (b_mixer - b_norm).
    mixer_kernel, mixer_bias = equivalent_conv(mixer.mixer)
    norm_kernel, norm_bias = equivalent_conv(mixer.norm)
    scale = mixer.layer_scale if use_layer_scale else torch.ones(6, 1, 1)
    identity = torch.zeros(6, 1, kernel_size, kernel_size)
    identity[:, 0, kernel_size // 2, kernel_size // 2] = 1
    kernel = identity + scale.unsqueeze(-1) * (mixer_kernel - norm_kernel)
    bias = scale.flatten() * (mixer_bias - norm_bias)
    with torch.no_grad():
        out = mixer(x)
        assert out.shape == x.shape
        assert_close_scaled(out, F.conv2d(x, kernel, bias, padding=kernel_size // 2, groups=6))


def test_block_shape() -> None:
    block = RepMixerBlock(8, mlp_ratio=3.0).eval()
    assert block.convffn.fc1.out_channels == 24
    assert block(torch.randn(2, 8, 7, 7)).shape == (2, 8, 7, 7)


@pytest.mark.parametrize(
    "build", [lambda: RepMixer(8), lambda: RepMixerBlock(8, mlp_ratio=2.0)], ids=["mixer", "block"]
)
def test_determinism_trace_and_export(build) -> None:
    x = torch.randn(1, 8, 8, 8)
    assert_deterministic(build, x)
    module = randomized_eval(build())
    assert_symbolic_trace_matches(module, x)
    assert_export_matches(module, x)


def test_small_net() -> None:
    x = torch.randn(1, 3, 32, 32)
    model = randomized_eval(repmixer_small())
    assert model(x).shape == (1, 10)
    assert_symbolic_trace_matches(model, x)
    assert_export_matches(model, x)
