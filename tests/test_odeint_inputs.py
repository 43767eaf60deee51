"""Bad input to `odeint` (issue 2): each mistake is its own test, and its error names the argument
(or, for a solve that cannot go on, the time, the step and the work done so far)."""
import re

import autograd
import autograd.numpy as anp
import numpy
import pytest

import minode
from minode import SolverError, odeint
from minode.solve import _adjoint_options, _solve_options

Y0 = numpy.array([1.0, 0.5])
T = numpy.array([0.0, 0.5, 1.0])


def decay(y, t, params):
    return -y


def reported_time(message):
    """The t=... that a SolverError message names."""
    return float(re.search(r"at t=([-+0-9.e]+)", message).group(1))


# ---------------------------------------------------------------------------------------------
# t
# ---------------------------------------------------------------------------------------------

def test_non_monotonic_t_is_rejected():
    with pytest.raises(ValueError, match=r"^t must be strictly increasing or strictly decreasing"):
        odeint(decay, Y0, numpy.array([0.0, 2.0, 1.0]))


def test_repeated_t_is_rejected():
    with pytest.raises(ValueError, match=r"^t must be strictly .*no repeated times"):
        odeint(decay, Y0, numpy.array([0.0, 1.0, 1.0, 2.0]))


def test_t_of_length_one_is_rejected():
    with pytest.raises(ValueError, match=r"^t must be a 1-D array of at least 2 times .*"
                                         r"got shape \(1,\)"):
        odeint(decay, Y0, numpy.array([0.0]))


def test_t_of_length_zero_is_rejected():
    with pytest.raises(ValueError, match=r"^t must be a 1-D array of at least 2 times"):
        odeint(decay, Y0, numpy.array([]))


def test_three_dimensional_t_is_rejected():
    # (A 2-D t is one time grid per sample: tests/test_time_grids.py.)
    with pytest.raises(ValueError, match=r"^t must be a 1-D array .* got shape \(2, 2, 1\)"):
        odeint(decay, Y0, numpy.array([[[0.0], [1.0]], [[2.0], [3.0]]]))


def test_integer_t_array_is_rejected():
    with pytest.raises(ValueError, match=r"^t must be a floating-point array, got dtype int"):
        odeint(decay, Y0, numpy.array([0, 1, 2]))


def test_nan_in_t_is_rejected():
    with pytest.raises(ValueError, match=r"^t must be finite"):
        odeint(decay, Y0, numpy.array([0.0, numpy.nan, 1.0]))


def test_infinite_t_is_rejected():
    with pytest.raises(ValueError, match=r"^t must be finite"):
        odeint(decay, Y0, numpy.array([0.0, numpy.inf]))


# ---------------------------------------------------------------------------------------------
# y0
# ---------------------------------------------------------------------------------------------

def test_integer_y0_is_rejected():
    with pytest.raises(ValueError, match=r"^y0 must be a floating-point array .* got dtype int"):
        odeint(decay, numpy.array([1, 2]), T)


@pytest.mark.parametrize("dtype", ["float16", "longdouble"])
def test_half_and_extended_precision_y0_is_rejected_naming_the_conversion(dtype):
    # float16 at the default atol made the error norm divide by zero, reported as a step size
    # underflow ("the solution may be singular"), not as the state's precision
    with pytest.raises(ValueError, match=r"^y0 must be float32 or float64, got .*astype"):
        odeint(decay, numpy.ones(2, dtype=dtype), T)


def test_zero_dimensional_y0_is_rejected():
    with pytest.raises(ValueError, match=r"^y0 must have at least one dimension"):
        odeint(decay, numpy.array(1.0), T)


def test_complex_y0_is_rejected():
    with pytest.raises(ValueError, match=r"^y0 must be a floating-point array .* got dtype "
                                         r"complex"):
        odeint(decay, numpy.array([1.0 + 1.0j]), T)


# ---------------------------------------------------------------------------------------------
# func
# ---------------------------------------------------------------------------------------------

def test_func_that_is_not_callable_is_rejected():
    with pytest.raises(TypeError, match=r"^func must be callable"):
        odeint("decay", Y0, T)


def test_func_returning_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"^func must return dy/dt with the shape of y \(2,\), "
                                         r"got \(3,\) at t=0"):
        odeint(lambda y, t, params: numpy.zeros(3), Y0, T)


def test_func_returning_a_list_is_rejected():
    with pytest.raises(ValueError, match=r"^func must return dy/dt with the shape of y \(2,\), "
                                         r"got list"):
        odeint(lambda y, t, params: [0.0, 0.0], Y0, T)


def test_func_returning_float64_for_a_float32_state_is_rejected():
    with pytest.raises(ValueError, match=r"^func must return dy/dt with the dtype of y "
                                         r"\(float32\), got float64"):
        odeint(lambda y, t, params: -y.astype(numpy.float64), Y0.astype(numpy.float32), T)


# ---------------------------------------------------------------------------------------------
# Solves that cannot go on
# ---------------------------------------------------------------------------------------------

def negative_sqrt(y, t, params):
    """dy/dt = -sqrt(y), y(0) = 1: y = (1 - t/2)^2 reaches 0 at t = 2, then sqrt gives NaN."""
    with numpy.errstate(invalid="ignore"):
        return -numpy.sqrt(y)


def test_nan_in_state_names_time_and_step_for_adaptive_method():
    with pytest.raises(SolverError, match=r"non-finite \(NaN or inf\) at t=[0-9.e+-]+, "
                                          r"step \d+") as caught:
        odeint(negative_sqrt, numpy.array([1.0]), numpy.array([0.0, 4.0]))
    assert abs(reported_time(str(caught.value)) - 2.0) < 0.01
    assert "function evaluations" in str(caught.value)


def test_nan_in_state_names_time_and_step_for_fixed_step_method():
    with pytest.raises(SolverError, match=r"non-finite \(NaN or inf\) at t=[0-9.e+-]+, "
                                          r"step \d+") as caught:
        odeint(negative_sqrt, numpy.array([1.0]), numpy.array([0.0, 4.0]), method="rk4",
               step_size=0.1)
    assert 1.9 <= reported_time(str(caught.value)) <= 2.2


def test_nan_derivative_at_initial_state_is_reported():
    with pytest.raises(SolverError, match=r"non-finite .* at t=0, step 0"):
        odeint(lambda y, t, params: y * numpy.nan, Y0, T)


def blow_up(y, t, params):
    """dy/dt = y^2, y(0) = 1: y = 1 / (1 - t) blows up at t = 1."""
    return y * y


def test_step_size_underflow_below_min_step_names_time_step_and_nfe():
    with pytest.raises(SolverError, match=r"step size underflow at t=[0-9.e+-]+, step \d+ "
                                          r"\(h=.*, min_step=1e-06, \d+ function evaluations, "
                                          r"\d+ rejected steps\)") as caught:
        odeint(blow_up, numpy.array([1.0]), numpy.array([0.0, 2.0]), min_step=1e-6)
    assert 0.99 < reported_time(str(caught.value)) <= 1.0


def test_step_size_underflow_without_min_step_stops_at_the_singularity():
    with pytest.raises(SolverError, match=r"step size underflow at t=[0-9.e+-]+, step \d+ "
                                          r"\(h=.*\d+ function evaluations") as caught:
        odeint(blow_up, numpy.array([1.0]), numpy.array([0.0, 2.0]))
    assert abs(reported_time(str(caught.value)) - 1.0) < 1e-3


def test_max_steps_exceeded_by_adaptive_method():
    with pytest.raises(SolverError, match=r"^max_steps=5 exceeded at t=[0-9.e+-]+ after \d+ "
                                          r"function evaluations"):
        odeint(decay, Y0, numpy.array([0.0, 100.0]), max_steps=5)


def test_max_steps_exceeded_by_fixed_step_method():
    with pytest.raises(SolverError, match=r"^max_steps=5 exceeded: step_size=0.1 needs 1000 "
                                          r"steps"):
        odeint(decay, Y0, numpy.array([0.0, 100.0]), method="euler", step_size=0.1, max_steps=5)


def test_solver_error_is_a_runtime_error():
    assert issubclass(SolverError, RuntimeError)


# ---------------------------------------------------------------------------------------------
# Solver options
# ---------------------------------------------------------------------------------------------

def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match=r"^method must be one of \[.*'dopri5'.*\], got 'rk45'"):
        odeint(decay, Y0, T, method="rk45")


def test_unknown_scipy_method_is_rejected():
    with pytest.raises(ValueError, match=r"^method must be one of \[.*'scipy:RK45'.*\], got "
                                         r"'scipy:Euler'"):
        odeint(decay, Y0, T, method="scipy:Euler")


def test_non_string_method_is_rejected():
    with pytest.raises(ValueError, match=r"^method must be a string"):
        odeint(decay, Y0, T, method=None)


def test_fixed_step_method_without_step_size_is_rejected():
    with pytest.raises(ValueError, match=r"^step_size is required for the fixed-step method "
                                         r"'rk4'"):
        odeint(decay, Y0, T, method="rk4")


def test_adaptive_method_given_step_size_is_rejected():
    with pytest.raises(ValueError, match=r"^step_size must be None for the adaptive method "
                                         r"'dopri5'"):
        odeint(decay, Y0, T, method="dopri5", step_size=0.1)


@pytest.mark.parametrize("value", [0.0, -1e-6, float("nan"), float("inf"), "1e-6", None])
def test_bad_rtol_is_rejected(value):
    with pytest.raises(ValueError, match=r"^rtol must be a positive finite number"):
        odeint(decay, Y0, T, rtol=value)


@pytest.mark.parametrize("value", [0.0, -1e-6, float("nan"), float("inf")])
def test_bad_atol_is_rejected(value):
    with pytest.raises(ValueError, match=r"^atol must be a positive finite number"):
        odeint(decay, Y0, T, atol=value)


@pytest.mark.parametrize("value", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_step_size_is_rejected(value):
    with pytest.raises(ValueError, match=r"^step_size must be a positive finite number"):
        odeint(decay, Y0, T, method="rk4", step_size=value)


def test_numpy_scalar_options_are_accepted():
    # e.g. tolerances read from a float32 config array
    ys = odeint(decay, Y0, T, rtol=numpy.float32(1e-6), atol=numpy.float32(1e-8),
                max_steps=numpy.int64(1000))
    numpy.testing.assert_allclose(ys[-1], Y0 * numpy.exp(-1.0), rtol=1e-5)


@pytest.mark.parametrize("value", [0, -1, 10.5, True])
def test_bad_max_steps_is_rejected(value):
    with pytest.raises(ValueError, match=r"^max_steps must be a positive integer"):
        odeint(decay, Y0, T, max_steps=value)


@pytest.mark.parametrize("value", [-1e-3, float("nan")])
def test_bad_min_step_is_rejected(value):
    with pytest.raises(ValueError, match=r"^min_step must be a non-negative finite number"):
        odeint(decay, Y0, T, min_step=value)


def test_unknown_grad_mode_is_rejected():
    with pytest.raises(ValueError, match=r"^grad must be one of \['adjoint', 'backprop'\], got "
                                         r"'reverse'"):
        odeint(decay, Y0, T, grad="reverse")


def test_bad_stats_object_is_rejected():
    with pytest.raises(TypeError, match=r"^stats must be a minode.SolverStats or None, got dict"):
        odeint(decay, Y0, T, stats={})


def test_counts_object_is_not_accepted_as_stats():
    with pytest.raises(TypeError, match=r"^stats must be a minode.SolverStats"):
        odeint(decay, Y0, T, stats=minode.SolverStats().forward)


# ---------------------------------------------------------------------------------------------
# The SciPy bridge's explicit methods are forward-only (Radau, BDF and LSODA are differentiable
# with grad="adjoint": tests/test_scipy_adjoint.py)
# ---------------------------------------------------------------------------------------------

def test_gradient_through_scipy_method_raises_value_error():
    def loss(y0):
        return anp.sum(odeint(decay, y0, T, method="scipy:RK45"))

    with pytest.raises(ValueError, match=r"method 'scipy:RK45' is forward-only"):
        autograd.grad(loss)(Y0)


def test_gradient_through_scipy_method_wrt_params_raises_value_error():
    def loss(rate):
        return anp.sum(odeint(lambda y, t, p: -p * y, Y0, T, rate, method="scipy:DOP853"))

    with pytest.raises(ValueError, match=r"method 'scipy:DOP853' is forward-only"):
        autograd.grad(loss)(1.0)


def test_scipy_method_as_adjoint_method_is_rejected():
    with pytest.raises(ValueError, match=r"^adjoint_method must be a minode tableau"):
        odeint(decay, Y0, T, adjoint_method="scipy:RK45")


@pytest.mark.parametrize("option, message", [({"max_steps": 0}, r"^max_steps must be a positive"),
                                             ({"min_step": -1.0}, r"^min_step must be a non-neg"),
                                             ({"rtol": 0.0}, r"^rtol must be a positive"),
                                             ({"atol": -1.0}, r"^atol must be a positive")])
def test_scipy_methods_check_the_solver_options_too(option, message):
    with pytest.raises(ValueError, match=message):
        odeint(decay, Y0, T, method="scipy:RK45", **option)


# ---------------------------------------------------------------------------------------------
# The adjoint's backward-solve options
# ---------------------------------------------------------------------------------------------

def test_adjoint_options_default_to_the_forward_solve():
    fixed = _solve_options("rk4", 1e-5, 1e-6, 0.05, 100, 0.01, None, "")
    assert _adjoint_options(fixed, None, None, None, None) == fixed
    adaptive = _adjoint_options(fixed, "dopri5", None, 1e-8, None)
    assert adaptive.tableau.name == "dopri5" and adaptive.step_size is None  # its own steps
    assert (adaptive.rtol, adaptive.atol, adaptive.max_steps, adaptive.min_step) == (
        1e-5, 1e-8, 100, 0.01)


def test_a_fixed_step_adjoint_method_after_an_adaptive_forward_needs_a_step_size():
    with pytest.raises(ValueError, match=r"^adjoint_step_size is required for the fixed-step "
                                         r"method 'rk4'"):
        odeint(decay, Y0, T, adjoint_method="rk4")
