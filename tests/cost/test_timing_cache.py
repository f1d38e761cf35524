"""The timing cache: round trip, keys, never re-timing a hit, shareable files, and clear errors on bad files."""

from __future__ import annotations

import json
import os

import pytest
import torch

from fxrep.cost import (
    ElementwiseSignature,
    MeasuredCostModel,
    TimingCache,
    TimingCacheError,
    TimingEntry,
    TimingKey,
    device_key,
)

from .conftest import CountingTimer, conv_signature


def key(**changes):
    values = dict(dtype="float32", device="cpu:test machine (AVX2)", threads=1, torch_version="2.14.1")
    signature = changes.pop("signature", conv_signature())
    values.update(changes)
    return TimingKey.of(signature, **values)


def test_a_cache_round_trips_through_its_file_with_identical_values(tmp_path):
    path = tmp_path / "timings.json"
    cache = TimingCache.load(path)
    assert len(cache) == 0 and not path.exists()
    entries = {key(): TimingEntry.from_samples([1.25e-5, 1.0e-5, 1.1e-5, 0.1 + 0.2], 7, "process_time"),
               key(threads=2): TimingEntry.from_samples([3.3e-6], 1, "perf_counter"),
               key(signature=ElementwiseSignature("add", 1000, 2)): TimingEntry(2e-6)}
    for k, entry in entries.items():
        cache.put(k, entry)
    cache.save()
    loaded = TimingCache.load(path)
    assert dict(loaded.items()) == entries  # floats compared exactly
    text = path.read_text()
    loaded.save()
    assert path.read_text() == text, "saving the same entries writes the same text"


@pytest.mark.parametrize("change", [dict(threads=2), dict(dtype="float16"), dict(torch_version="2.15.0"),
                                    dict(device="cpu:another machine (AVX512)"),
                                    dict(signature=conv_signature(in_size=(12, 12))),
                                    dict(signature=conv_signature(batch=1)),
                                    dict(signature=conv_signature(stride=(2, 2)))])
def test_a_key_differing_in_one_part_is_a_miss(change):
    cache = TimingCache()
    cache.put(key(), TimingEntry(1e-5))
    assert key() in cache
    assert cache.get(key(**change)) is None


def test_the_signatures_own_dtype_and_device_do_not_split_keys():
    """dtype/device are recorded as resolved, not as the signature spelled them (None or "float32")."""
    assert key(signature=conv_signature(dtype="float32", device="cpu")) == key()


def measured(path, timer, **options):
    return MeasuredCostModel(path, timer=timer, **options)


def test_a_hit_is_never_re_timed_and_a_miss_is_timed_once(tmp_path):
    path = tmp_path / "timings.json"
    first = CountingTimer()
    model = measured(path, first)
    a, b = conv_signature(), conv_signature(out_channels=8)
    seconds = model.seconds(a), model.seconds(b), model.seconds(a)
    assert first.calls == 2 and path.exists()  # written after each new timing

    second = CountingTimer()
    again = measured(path, second)
    assert (again.seconds(a), again.seconds(b)) == seconds[:2]
    assert second.calls == 0 and again.reused == {again.key(a), again.key(b)} and again.timed == []
    again.seconds(conv_signature(in_size=(12, 12)))  # a new shape is a miss
    assert second.calls == 1


def test_another_thread_count_is_a_miss(tmp_path):
    path = tmp_path / "timings.json"
    timer = CountingTimer()
    measured(path, timer, threads=1).seconds(conv_signature())
    measured(path, timer, threads=1).seconds(conv_signature())
    assert timer.calls == 1
    measured(path, timer, threads=2).seconds(conv_signature())
    assert timer.calls == 2
    threads = sorted(k.threads for k in TimingCache.load(path))
    assert threads == [1, 2]


def test_the_default_thread_count_is_torchs_at_the_time_of_asking(tmp_path):
    model = measured(None, CountingTimer())
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert model.key(conv_signature()).threads == 2
    finally:
        torch.set_num_threads(before)
    assert model.key(conv_signature()).threads == before


def test_a_dtype_is_a_miss_and_is_timed_in_that_dtype(tmp_path):
    dtypes = []

    def timer(run, device):
        dtypes.append(run().dtype)
        return TimingEntry(1e-6)

    model = measured(tmp_path / "t.json", timer)
    model.seconds(conv_signature())
    model.seconds(conv_signature(dtype="float64", itemsize=8))
    model.seconds(conv_signature(dtype="float64", itemsize=8))
    assert dtypes == [torch.float32, torch.float64]


def test_save_merges_what_another_process_wrote_meanwhile(tmp_path):
    path = tmp_path / "shared.json"
    mine, theirs = TimingCache.load(path), TimingCache.load(path)
    mine.put(key(), TimingEntry(1e-5))
    theirs.put(key(threads=2), TimingEntry(2e-5))
    theirs.save()
    mine.save()
    assert set(TimingCache.load(path)) == {key(), key(threads=2)}


def test_the_device_names_the_hardware():
    name = device_key("cpu")
    assert name.startswith("cpu:") and torch.backends.cpu.get_cpu_capability() in name


BAD_FILES = {
    "not json": ("{not json", "is not valid JSON"),
    "another format": (json.dumps({"format": "trt", "version": 1, "entries": []}), "is not an fxrep timing cache"),
    "another version": (json.dumps({"format": "fxrep timing cache", "version": 99, "entries": []}),
                        "has version 99, this fxrep reads version 1"),
    "no entries": (json.dumps({"format": "fxrep timing cache", "version": 1}), 'no list of "entries"'),
    "bad entry": (json.dumps({"format": "fxrep timing cache", "version": 1,
                              "entries": [{"signature": {"op": "conv"}, "dtype": "float32"}]}), "entry 0"),
    "negative time": (json.dumps({"format": "fxrep timing cache", "version": 1, "entries": [
        {"signature": {"op": "elementwise", "kind": "add", "numel": 4}, "dtype": "float32", "device": "cpu",
         "threads": 1, "torch": "x", "seconds": -1}]}), "not a finite non-negative number"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_a_clear_error_naming_it_and_the_fix(tmp_path, case):
    text, message = BAD_FILES[case]
    path = tmp_path / "timings.json"
    path.write_text(text)
    with pytest.raises(TimingCacheError, match=message) as raised:
        TimingCache.load(path)
    assert str(path) in str(raised.value) and "delete it" in str(raised.value)
    with pytest.raises(TimingCacheError):
        MeasuredCostModel(path)


def test_an_unreadable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "timings.json"
    path.mkdir()  # a directory where the file should be
    with pytest.raises(TimingCacheError, match="cannot read the timing cache"):
        TimingCache.load(path)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.json"
        locked.write_text("{}")
        locked.chmod(0)
        with pytest.raises(TimingCacheError, match="permissions"):
            TimingCache.load(locked)


def test_a_cache_without_a_file_says_how_to_save_it():
    with pytest.raises(TimingCacheError, match="save\\(path\\)"):
        TimingCache().save()
