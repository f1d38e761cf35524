"""Timing cache persistence for classic TensorRT, against a stand-in for IBuilderConfig.

The installed TensorRT-RTX has no timing cache (see test_tensorrt_engine), so the file handling is
checked with a fake config that records what the builder would have been given.
"""

from __future__ import annotations

import pytest

from fxrep.lower import LoweringError
from fxrep.lower.timing_cache import load_timing_cache, save_timing_cache


class _FakeConfig:
    """The three IBuilderConfig timing-cache calls of classic TensorRT, recording what they get."""

    def __init__(self, timings: bytes) -> None:
        self.loaded: bytes | None = None
        self.timings = timings

    def create_timing_cache(self, data: bytes):
        self.loaded = bytes(data)
        return self

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        return cache is self

    def get_timing_cache(self):
        return self

    def serialize(self) -> bytes:
        return self.timings


def test_timing_cache_file_is_created_then_reused(tmp_path):
    path = tmp_path / "cache" / "timing.cache"
    first = _FakeConfig(b"timings of build 1")
    load_timing_cache(first, path)
    save_timing_cache(first, path)
    second = _FakeConfig(b"timings of builds 1 and 2")
    load_timing_cache(second, path)

    assert first.loaded == b""
    assert second.loaded == b"timings of build 1"
    save_timing_cache(second, path)
    assert path.read_bytes() == b"timings of builds 1 and 2"


def test_an_unusable_cache_file_says_to_delete_it(tmp_path):
    class Refusing(_FakeConfig):
        def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
            return False

    path = tmp_path / "timing.cache"
    path.write_bytes(b"from another TensorRT version")
    with pytest.raises(LoweringError, match="could not be used; delete it"):
        load_timing_cache(Refusing(b""), path)
