"""Command-line helpers shared by the tutorials and benchmarks: argparse ``type`` functions.

Each turns the option's text into a number and refuses, with argparse's usual message
(``argument --epochs: must be a positive integer, got '0'``), text that is not one of the kind.
"""
import argparse

from minode.checks import check_nonnegative, check_positive, check_positive_int

__all__ = ["positive_int", "nonnegative_int", "positive_float"]


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
