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


def tutorial_parser():
    parser = cli.tutorial_parser("a tutorial")
    cli.add_run_options(parser, "spiral")
    cli.add_solver_options(parser, rtol=1e-5)
    return parser


def test_quick_runs_write_to_a_folder_of_their_own_unless_out_is_given():
    parser = tutorial_parser()
    assert str(cli.parse_tutorial_args(parser, [], "spiral").out) == "results/spiral"
    assert str(cli.parse_tutorial_args(parser, ["--quick"], "spiral").out) == \
        "results/quick/spiral"
    assert str(cli.parse_tutorial_args(parser, ["--quick", "--out", "x"], "spiral").out) == "x"


def test_help_shows_every_options_default(capsys):
    with pytest.raises(SystemExit):
        tutorial_parser().parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for text in ("--rtol RTOL relative tolerance of an adaptive --method (default: 1e-05)",
                 "--seed SEED seed of every random draw (default: 0)",
                 "--method METHOD", "(default: dopri5)", "results/quick/spiral"):
        assert text in shown
    assert "(default: None)" not in shown  # such an option's help says what happens instead


def test_solver_settings_are_odeints_keywords_and_refuse_what_odeint_refuses(capsys):
    parser = tutorial_parser()
    args = parser.parse_args(["--method", "rk4", "--step-size", "0.1", "--grad", "backprop"])
    assert cli.solver_settings(parser, args) == {"method": "rk4", "rtol": 1e-5, "atol": 1e-9,
                                                 "grad": "backprop", "step_size": 0.1}
    for argv, message in [(["--method", "rk4"], "step_size is required for the fixed-step"),
                          (["--method", "dopri5", "--step-size", "0.1"], "must be None for "
                           "the adaptive method"),
                          (["--method", "dopri"], "method must be one of")]:
        with pytest.raises(SystemExit):
            cli.solver_settings(parser, parser.parse_args(argv))
        assert message in capsys.readouterr().err


def test_notebook_cells_run_only_in_the_notebook_itself(monkeypatch):
    assert not cli.notebook_cells_run("__main__")  # a script: main() runs the steps
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert cli.notebook_cells_run("__main__")
    assert not cli.notebook_cells_run("spiral")  # imported
    assert cli.notebook_argv(quick=True) == ["--quick"]
    assert cli.notebook_argv(False, True, "--seed", 1) == ["--resume", "--seed", "1"]
