from __future__ import annotations

import torch
from torch import nn

from fxrep.models import DiracConv2d, DOConv2d, RepMixer, randomize_, repvgg_small


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def test_same_seed_same_model_and_returns_the_model() -> None:
    torch.manual_seed(0)
    first = repvgg_small()
    torch.manual_seed(1)
    second = repvgg_small()
    assert randomize_(first, 7) is first
    randomize_(second, 7)
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value, rtol=0, atol=0)


def test_different_seeds_differ() -> None:
    model = repvgg_small()
    state_a = _state(randomize_(model, 1))
    state_b = _state(randomize_(model, 2))
    assert not torch.equal(state_a["stage0.rbr_dense.conv.weight"], state_b["stage0.rbr_dense.conv.weight"])
    assert not torch.equal(
        state_a["stage0.rbr_dense.bn.running_var"], state_b["stage0.rbr_dense.bn.running_var"]
    )


def test_batchnorm_statistics_are_redrawn_into_their_ranges() -> None:
    bn = nn.BatchNorm2d(64)
    randomize_(bn, 0)
    assert not torch.equal(bn.running_mean, torch.zeros(64))
    assert not torch.equal(bn.running_var, torch.ones(64))
    assert not torch.equal(bn.bias, torch.zeros(64))
    assert bn.weight.min() >= 0.5 and bn.weight.max() <= 1.5
    assert bn.running_var.min() >= 0.5 and bn.running_var.max() <= 2.0
    assert int(bn.num_batches_tracked) == 0


def test_global_rng_is_untouched() -> None:
    model = repvgg_small()
    before = torch.random.get_rng_state()
    randomize_(model, 3)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_other_trainable_parameters_move_and_constants_stay() -> None:
    mixer = randomize_(RepMixer(8), 0)
    assert mixer.layer_scale.abs().max() > 1e-3  # 1e-5 at init would hide the mixer branch

    doconv = DOConv2d(4, 4, 3, padding=1)
    d_diag = doconv.d_diag.clone()
    randomize_(doconv, 0)
    assert doconv.D.abs().max() > 0
    assert torch.equal(doconv.d_diag, d_diag)

    dirac = DiracConv2d(4, 4)
    delta = dirac.delta.clone()
    randomize_(dirac, 0)
    assert torch.equal(dirac.delta, delta)
    assert dirac.beta.abs().min() > 0


def test_shared_parameters_are_drawn_once() -> None:
    linear = nn.Linear(4, 4)
    model = nn.Sequential(linear, nn.ReLU(), linear)
    randomize_(model, 0)
    reference = randomize_(nn.Sequential(nn.Linear(4, 4)), 0)
    torch.testing.assert_close(linear.weight, reference[0].weight, rtol=0, atol=0)
