"""``fxrep optimize --measure-cost [--timing-cache PATH]``: decides by timing, keeps the timings, refuses bad files."""

from __future__ import annotations

import json

from fxrep.cli import main
from fxrep.cost import TimingCache


def _optimize(factory_file, *extra: str) -> int:
    return main(["optimize", f"{factory_file}:build", "--input", "1x3x16x16", *extra])


def test_measure_cost_writes_a_timing_cache_and_reuses_it(factory_file, tmp_path, capsys):
    cache, report = tmp_path / "timings.json", tmp_path / "report.json"
    assert _optimize(factory_file, "--measure-cost", "--timing-cache", str(cache), "--report", str(report)) == 0
    entries = dict(TimingCache.load(cache).items())
    assert entries
    first = json.loads(report.read_text())
    assert any("measured cost" in note and "reused" in note for note in first["notes"])
    assert _optimize(factory_file, "--measure-cost", "--timing-cache", str(cache), "--report", str(report)) == 0
    second = json.loads(report.read_text())
    assert dict(TimingCache.load(cache).items()) == entries, "the second run timed nothing new"
    assert second["ops_after"] == first["ops_after"]
    assert any("0 ops timed" in note for note in second["notes"])


def test_a_timing_cache_without_measure_cost_is_a_usage_error(factory_file, tmp_path, capsys):
    assert _optimize(factory_file, "--timing-cache", str(tmp_path / "t.json")) == 2
    assert "--timing-cache only goes with --measure-cost" in capsys.readouterr().err


def test_a_bad_timing_cache_file_is_a_usage_error_naming_it(factory_file, tmp_path, capsys):
    cache = tmp_path / "timings.json"
    cache.write_text(json.dumps({"format": "fxrep timing cache", "version": 0, "entries": []}))
    assert _optimize(factory_file, "--measure-cost", "--timing-cache", str(cache)) == 2
    err = capsys.readouterr().err
    assert str(cache) in err and "has version 0" in err
