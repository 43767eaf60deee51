"""Command-line helpers shared by the tutorials and benchmarks: argparse ``type`` functions, and
the arguments a tutorial parses when it runs as a script or inside a notebook.

Each ``type`` function turns the option's text into a number and refuses, with argparse's usual message
(``argument --epochs: must be a positive integer, got '0'``), text that is not one of the kind.
"""
import argparse
import sys

from minode.checks import check_nonnegative, check_positive, check_positive_int

__all__ = ["positive_int", "nonnegative_int", "positive_float", "script_argv"]


def _parse(text, kind, check, expected):
    """``kind(text)`` when it passes ``check``, else ``argparse.ArgumentTypeError``."""
    try:
        value = kind(text)
        check("value", value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
    return value


def positive_int(text):
    """An integer > 0."""
    return _parse(text, int, check_positive_int, "a positive integer")


def nonnegative_int(text):
    """An integer >= 0."""
    return _parse(text, int, check_nonnegative, "a non-negative integer")


def positive_float(text):
    """A finite number > 0."""
    return _parse(text, float, check_positive, "a positive number")


def script_argv(argv=None):
    """The options a tutorial's ``main(argv)`` parses.

    ``argv`` when given; else the command line's (``sys.argv[1:]``), except inside a Jupyter
    kernel, whose own arguments (``-f kernel-....json``) are not the tutorial's: there the
    last cell's ``main()`` runs with the defaults.
    """
    if argv is not None:
        return list(argv)
    if "ipykernel" in sys.modules:
        return []
    return sys.argv[1:]
