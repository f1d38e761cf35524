"""`fxrep.verify.regions`: how a rewritten region is named."""

from __future__ import annotations

from fxrep.pass_base import CostDecision
from fxrep.verify import Region
from fxrep.verify.regions import merge, region_key


def test_a_region_names_its_passes_rule_module_nodes_and_planned_region():
    decision = CostDecision("add_1", 2.0, 1.0, True, "5 ops -> 1", "stage1.0", ("conv", "bn", "add_1"))
    region = Region(("fold_batchnorm", "collapse_linear_regions"), "merge_branches", "stage1.0", ("add_1",),
                    ("conv2d_7",), decision)
    text = region.describe()
    assert text.startswith("passes 'fold_batchnorm' then 'collapse_linear_regions' (rule 'merge_branches')")
    assert "at module 'stage1.0': original add_1 -> final conv2d_7" in text
    assert "the planner's region of 3 nodes ending at add_1 (conv, bn, add_1; 5 ops -> 1)" in text
    assert region.pass_name == "collapse_linear_regions"
    assert region.brief() == "pass 'collapse_linear_regions' at module 'stage1.0', exit add_1"


def test_a_change_without_a_recorded_pass_says_so_and_long_lists_are_cut():
    region = Region((), None, "", tuple(f"n{i}" for i in range(9)), ("out",))
    assert region.pass_name is None
    assert region.describe().startswith("a change no pass recorded (made without fxrep's Rewriter)")
    assert "n5 and 3 more" in region.describe()


def test_exits_of_one_planned_region_merge_into_one():
    decision = CostDecision("add_1", 2.0, 1.0, True, "", "", ("a", "b"))
    first = Region(("collapse",), None, "m", ("a",), ("x",), decision)
    second = Region(("collapse",), "merge", "m", ("b",), ("y",), decision)
    assert region_key(first) == region_key(second)
    merged = merge([first, second])
    assert merged.exits == ("a", "b") and merged.nodes == ("x", "y") and merged.rule == "merge"
