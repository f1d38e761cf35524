"""Argument parsing of the ``fxrep`` command: shapes, MODULE:FACTORY, --version, usage errors (all in-process)."""

from __future__ import annotations

import pytest

from fxrep.cli import UsageError, main, parse_shape, split_factory


@pytest.mark.parametrize(("text", "shape"), [("1x3x224x224", (1, 3, 224, 224)), ("8", (8,)), ("2X16", (2, 16))])
def test_parse_shape_reads_sizes_separated_by_x(text, shape):
    assert parse_shape(text) == shape


@pytest.mark.parametrize("text", ["", "1x3xfoo", "1,3,224,224", "1x0x4", "1x-3x4", "1xx4"])
def test_parse_shape_rejects_anything_else_with_an_example(text):
    with pytest.raises(UsageError, match=r"not a shape.*e\.g\. --input 1x3x224x224"):
        parse_shape(text)


@pytest.mark.parametrize(("spec", "parts"), [("pkg.models:build", ("pkg.models", "build")),
                                              ("./net.py:make", ("./net.py", "make")),
                                              ("C:\\nets\\net.py:make", ("C:\\nets\\net.py", "make"))])
def test_split_factory_splits_at_the_last_colon(spec, parts):
    assert split_factory(spec) == parts


@pytest.mark.parametrize("spec", ["pkg.models", "pkg.models:", ":build", "net.py:build()"])
def test_split_factory_rejects_specs_without_a_factory_name(spec):
    with pytest.raises(UsageError, match="is not MODULE:FACTORY"):
        split_factory(spec)


def test_version_prints_the_package_version(capsys):
    import fxrep

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fxrep {fxrep.__version__}"


def test_help_exits_zero_and_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "optimize" in out


def test_no_command_prints_usage_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: fxrep" in capsys.readouterr().err


def test_optimize_without_input_is_a_usage_error(capsys):
    assert main(["optimize", "pkg:build"]) == 2
    assert "--input" in capsys.readouterr().err


def test_unknown_choice_is_a_usage_error(capsys):
    assert main(["optimize", "pkg:build", "--input", "1x3x8x8", "--precision", "int4"]) == 2
    assert "invalid choice: 'int4'" in capsys.readouterr().err


def test_malformed_input_is_reported_before_anything_runs(capsys):
    assert main(["optimize", "pkg:build", "--input", "1x3xfoo"]) == 2
    assert "--input '1x3xfoo' is not a shape" in capsys.readouterr().err


def test_demo_refuses_inputs_smaller_than_the_network_stride(capsys):
    assert main(["demo", "--size", "16"]) == 2
    assert "too small" in capsys.readouterr().err
