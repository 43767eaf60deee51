"""The shared argument checks: NumPy scalars are numbers, bools are not, messages name the argument."""
import numpy as np
import pytest

from minode.checks import (check_choice, check_fraction, check_nonnegative, check_positive,
                           check_positive_int)


@pytest.mark.parametrize("value", [1, 2.5, np.float32(1e-6), np.float64(3.0), np.int64(4)])
def test_positive_numbers_pass_including_numpy_scalars(value):
    check_positive("rtol", value)
    check_nonnegative("min_step", value)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "1", None])
def test_check_positive_rejects_non_positive_or_non_numbers(value):
    with pytest.raises(ValueError, match="rtol must be a positive finite number"):
        check_positive("rtol", value)


def test_nonnegative_fraction_int_and_choice_name_the_argument():
    check_nonnegative("min_step", 0.0)
    with pytest.raises(ValueError, match="min_step must be a non-negative"):
        check_nonnegative("min_step", -1e-9)
    check_fraction("momentum", np.float32(0.9))
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\)"):
        check_fraction("momentum", 1.0)
    check_positive_int("max_steps", np.int64(10))
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="max_steps must be a positive integer"):
            check_positive_int("max_steps", bad)
    with pytest.raises(ValueError, match=r"grad must be one of \['adjoint', 'backprop'\]"):
        check_choice("grad", "adjont", ("adjoint", "backprop"))
