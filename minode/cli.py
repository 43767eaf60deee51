"""Command-line helpers shared by the tutorials and benchmarks."""
import argparse


def positive_int(text):
    """An argparse ``type`` accepting only integers > 0, with a clear message otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
