"""argparse types: numbers of the right kind pass, anything else is refused with a message."""
import argparse
import sys

import pytest

from minode import cli


@pytest.mark.parametrize("parse, text, value", [
    (cli.positive_int, "3", 3), (cli.nonnegative_int, "0", 0), (cli.positive_float, "1e-3", 1e-3)])
def test_numbers_of_the_kind_pass(parse, text, value):
    assert parse(text) == value and type(parse(text)) is type(value)


@pytest.mark.parametrize("parse, text, expected", [
    (cli.positive_int, "0", "a positive integer"), (cli.positive_int, "2.5", "a positive integer"),
    (cli.nonnegative_int, "-1", "a non-negative integer"),
    (cli.positive_float, "-0.1", "a positive number"),
    (cli.positive_float, "nan", "a positive number"),
    (cli.positive_float, "ten", "a positive number")])
def test_other_text_is_refused_naming_what_was_expected(parse, text, expected):
    with pytest.raises(argparse.ArgumentTypeError, match=f"must be {expected}, got '{text}'"):
        parse(text)


def test_argparse_names_the_option(capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=cli.positive_int)
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "0"])
    assert "argument --epochs: must be a positive integer, got '0'" in capsys.readouterr().err


def test_script_argv_uses_the_command_line_except_inside_a_jupyter_kernel(monkeypatch):
    monkeypatch.setattr("sys.argv", ["tutorials/x.py", "--quick"])
    assert cli.script_argv(["--seed", "1"]) == ["--seed", "1"]
    assert cli.script_argv() == ["--quick"]
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert cli.script_argv() == []  # the kernel's own -f argument is not the tutorial's
    assert cli.script_argv(["--quick"]) == ["--quick"]
