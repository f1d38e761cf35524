"""Shared test set-up: one warm-up of torch.export, single-threaded torch, and the gpu marker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _warm_up_torch_export() -> None:
    """torch.export's first call initializes Dynamo (about 1.5 s); pay it once, not in whichever test runs first."""
    torch.export.export(torch.nn.Linear(2, 2), (torch.randn(1, 2),), strict=False)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """The reference models are tiny: one intra-op thread is fastest, and it keeps the timings stable on a
    shared 2-core machine, where OpenMP threads spinning against another process slow convs down ~100x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA; without it they are skipped with the reason, never failed."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA (none on this machine)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
