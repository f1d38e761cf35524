"""``--weights``: the checkpoint layouts ``fxrep optimize`` accepts, and what it says when one does not fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fxrep.cli import UsageError, load_weights


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def _trained() -> nn.Module:
    net = _net()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    return net


@pytest.mark.parametrize("wrap", [lambda sd: sd, lambda sd: {"state_dict": sd, "epoch": 3},
                                  lambda sd: {"model": sd, "optimizer": {}},
                                  lambda sd: {f"module.{k}": v for k, v in sd.items()}],
                         ids=["state_dict", "under state_dict", "under model", "DataParallel prefix"])
def test_loads_the_usual_checkpoint_layouts(tmp_path, wrap):
    trained = _trained()
    torch.save(wrap(trained.state_dict()), tmp_path / "ckpt.pt")
    model = _net()

    load_weights(model, tmp_path / "ckpt.pt")

    for name, tensor in trained.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor)


def test_mismatch_lists_missing_and_unexpected_keys(tmp_path):
    state = _trained().state_dict()
    state["2.weight"] = state.pop("1.weight")
    torch.save(state, tmp_path / "ckpt.pt")

    with pytest.raises(UsageError) as error:
        load_weights(_net(), tmp_path / "ckpt.pt")

    message = str(error.value)
    assert "missing keys (in the model, not in the checkpoint): 1.weight" in message
    assert "unexpected keys (in the checkpoint, not in the model): 2.weight" in message


def test_shape_mismatch_names_the_parameter(tmp_path):
    torch.save(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).state_dict(), tmp_path / "ckpt.pt")
    with pytest.raises(UsageError, match=r"does not fit the model.*0\.weight"):
        load_weights(_net(), tmp_path / "ckpt.pt")


def test_missing_file_and_non_state_dicts_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_weights(_net(), tmp_path / "missing.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(UsageError, match="expected a state_dict"):
        load_weights(_net(), tmp_path / "list.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match=r"torch\.load\(weights_only=True\) failed"):
        load_weights(_net(), tmp_path / "garbage.pt")
