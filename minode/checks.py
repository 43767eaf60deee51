"""Argument checks shared by every public function: each raises ``ValueError`` naming the argument.

Numbers are accepted as ``numbers.Real`` / ``numbers.Integral``, so NumPy scalars such as
``np.float32(1e-6)`` or ``np.int64(100)`` pass like Python numbers; ``bool`` is not a number here.
"""
import math
import numbers

__all__ = ["check_positive", "check_nonnegative", "check_fraction", "check_positive_int",
           "check_choice"]


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive(name, value):
    """``value`` must be a finite real number > 0."""
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def check_nonnegative(name, value):
    """``value`` must be a finite real number >= 0."""
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")


def check_fraction(name, value):
    """``value`` must be a real number in [0, 1)."""
    if not _is_real(value) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def check_positive_int(name, value):
    """``value`` must be an integer > 0 (``True`` is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_choice(name, value, choices, prefix=""):
    """``value`` must be one of ``choices``; ``prefix`` is prepended to each in the message."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {[prefix + c for c in choices]}, "
                         f"got {prefix + str(value)!r}")
