"""A failing explicit solve says whether the problem appears stiff (issue 20, part 3).

Stiff problems (Van der Pol with mu = 1000, Robertson, Prothero-Robinson) that run out of
max_steps, or whose steps fall below min_step, are called stiff, with Hairer's h*|lambda|
evidence and the implicit methods to use; failures that are not stiff (a blow-up, a NaN, a
problem that just needs more steps) are not. The estimate itself is checked where it is exact
(a linear f), and the stability boundaries against the roots of the stability polynomials.
"""
import math
import re

import numpy
import pytest
import scipy.integrate

from minode import SolverError, backend, odeint
from minode.stepping import rk_step
from minode.stiffness import IMPLICIT_METHODS, real_stability_boundary, stiffness_probe
from minode.tableaux import TABLEAUX

ADAPTIVE = ["bosh3", "dopri5", "tsit5"]
MU = 1000.0


def van_der_pol(y, t, params):
    return numpy.stack([y[1], MU * (1.0 - y[0] ** 2) * y[1] - y[0]])


def van_der_pol_jacobian(y):
    return numpy.array([[0.0, 1.0], [-2.0 * MU * y[0] * y[1] - 1.0, MU * (1.0 - y[0] ** 2)]])


def robertson(y, t, params):
    a, b, c = y[0], y[1], y[2]
    return numpy.stack([-0.04 * a + 1e4 * b * c, 0.04 * a - 1e4 * b * c - 3e7 * b * b,
                        3e7 * b * b])


def robertson_jacobian(y):
    return numpy.array([[-0.04, 1e4 * y[2], 1e4 * y[1]],
                        [0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]],
                        [0.0, 6e7 * y[1], 0.0]])


def solve_error(func, y0, t, **options):
    with pytest.raises(SolverError) as caught:
        odeint(func, numpy.array(y0), numpy.array(t), **options)
    return str(caught.value)


def number_after(label, message):
    """The number printed right after ``label`` in ``message``."""
    return float(re.search(re.escape(label) + r"([-+0-9.e]+)", message).group(1))


def dominant_eigenvalue_at(func, jacobian, y0, t_end):
    """max |eigenvalue| of df/dy on a reference solution (SciPy's Radau) at ``t_end``."""
    reference = scipy.integrate.solve_ivp(lambda t, y: func(y, t, None), (0.0, t_end), y0,
                                          method="Radau", rtol=1e-10, atol=1e-12)
    return float(numpy.max(numpy.abs(numpy.linalg.eigvals(jacobian(reference.y[:, -1])))))


def assert_names_the_implicit_methods(message):
    advice = message[message.index("use an implicit method"):]
    for name in IMPLICIT_METHODS:
        assert f'"{name}"' in advice


# ---------------------------------------------------------------------------------------------
# Stiff failures are called stiff, with the evidence
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("problem", ["van der pol", "robertson"])
@pytest.mark.parametrize("method", ADAPTIVE)
def test_running_out_of_steps_on_a_stiff_problem_says_stiff_and_names_implicit_methods(
        problem, method):
    func, jacobian, y0 = {"van der pol": (van_der_pol, van_der_pol_jacobian, [2.0, 0.0]),
                          "robertson": (robertson, robertson_jacobian, [1.0, 0.0, 0.0])}[problem]
    message = solve_error(func, y0, [0.0, 3000.0], method=method, max_steps=2000)
    assert re.match(r"max_steps=2000 exceeded at t=[0-9.e+-]+ after \d+ function evaluations: "
                    r"the problem appears stiff: on 50 recent accepted steps \(since t=", message)
    assert "stability, not accuracy, limits the steps" in message
    assert_names_the_implicit_methods(message)
    # The evidence is right: the median h*|lambda| sits at the method's stability boundary, and
    # the |lambda| reported is the Jacobian's dominant eigenvalue where the solve stopped.
    boundary = real_stability_boundary(TABLEAUX[method])
    assert 0.8 * boundary <= number_after("had median ", message) <= 1.2 * boundary
    expected = dominant_eigenvalue_at(func, jacobian, y0, number_after("exceeded at t=", message))
    assert number_after("|lambda| ~ ", message) == pytest.approx(expected, rel=0.2)


def test_the_diagnosis_runs_on_a_cupy_like_backend(strict_backend):
    # strict_backend refuses NumPy calls on its arrays, as CuPy does: the estimate uses xp only.
    def field(y, t, params):
        return backend.xp.stack([y[1], MU * (1.0 - y[0] ** 2) * y[1] - y[0]])
    with pytest.raises(SolverError, match="the problem appears stiff"):
        odeint(field, backend.asarray([2.0, 0.0]), backend.asarray([0.0, 3000.0]),
               max_steps=500)


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_steps_held_inside_the_boundary_by_a_fast_mode_are_called_stiff(method):
    # Prothero-Robinson, y' = -1000 (y - 2 - cos t) - sin t, solved by y = 2 + cos t: at
    # rtol = 1e-8 the controller settles at about 0.4 of the boundary, held there by the fast
    # mode's error estimate while the solution changes 1000 times more slowly.
    def prothero_robinson(y, t, params):
        return -1000.0 * (y - 2.0 - numpy.cos(t)) - numpy.sin(t)
    message = solve_error(prothero_robinson, [2.5], [0.0, 10.0], method=method, rtol=1e-8,
                          atol=1e-10, max_steps=2000)
    assert "the problem appears stiff" in message
    assert "times the rate at which the solution itself changes" in message
    assert number_after("|lambda| ~ ", message) == pytest.approx(1000.0, rel=0.05)
    assert_names_the_implicit_methods(message)


def test_a_stiff_solve_backward_in_time_reports_the_callers_times():
    # y' = 1000 (y - cos t) - sin t has the solution cos t and is stiff solved from 10 to 0.
    def field(y, t, params):
        return 1000.0 * (y - numpy.cos(t)) - numpy.sin(t)
    message = solve_error(field, [math.cos(10.0)], [10.0, 0.0], max_steps=1000)
    assert "the problem appears stiff" in message
    stopped, window_start = number_after("exceeded at t=", message), number_after("(since t=",
                                                                                   message)
    assert 0.0 < stopped < window_start < 10.0


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_steps_collapsing_below_min_step_on_a_stiff_problem_say_stiff(method):
    # |lambda| = 10^t grows until the stable step falls below min_step = 1e-3 (near t = 3.5).
    def stiffening(y, t, params):
        return -10.0 ** t * (y - numpy.cos(t)) - numpy.sin(t)
    message = solve_error(stiffening, [1.0], [0.0, 6.0], method=method, min_step=1e-3,
                          first_step=0.01)
    assert message.startswith("step size underflow at t=")
    assert "the problem appears stiff" in message
    assert 3.0 < number_after("underflow at t=", message) < 4.0
    assert_names_the_implicit_methods(message)


# ---------------------------------------------------------------------------------------------
# Failures that are not stiff are not called stiff
# ---------------------------------------------------------------------------------------------

def blow_up(y, t, params):
    """dy/dt = y^2, y(0) = 1: y = 1 / (1 - t) blows up at t = 1."""
    return y * y


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_a_blow_up_is_a_step_size_underflow_without_a_word_of_stiffness(method):
    message = solve_error(blow_up, [1.0], [0.0, 2.0], method=method)
    assert message.startswith("step size underflow at t=")
    assert "singular" in message
    assert "stiff" not in message.lower()


def test_a_blow_up_that_runs_out_of_steps_is_not_called_stiff():
    message = solve_error(blow_up, [1.0], [0.0, 2.0], method="bosh3", max_steps=2000)
    assert message.startswith("max_steps=2000 exceeded")
    assert "stiff" not in message.lower()


def test_a_func_that_turns_nan_is_not_called_stiff():
    def nan_after_one(y, t, params):
        return numpy.sqrt(1.0 - t) * y  # NaN for t > 1
    with numpy.errstate(invalid="ignore"):
        message = solve_error(nan_after_one, [1.0], [0.0, 2.0])
    assert "non-finite" in message
    assert "stiff" not in message.lower()


@pytest.mark.parametrize("method", ADAPTIVE)
def test_a_non_stiff_problem_that_needs_more_steps_is_not_called_stiff(method):
    def oscillator(y, t, params):  # y'' = -100^2 y: 1600 periods on [0, 100]
        return numpy.stack([y[1], -1e4 * y[0]])
    message = solve_error(oscillator, [1.0, 0.0], [0.0, 100.0], method=method, max_steps=2000)
    assert message.endswith("raise max_steps or loosen rtol/atol")
    assert "stiff" not in message.lower()


def test_an_underflow_before_enough_steps_to_tell_claims_neither():
    # min_step = 0.01 is above Van der Pol's first steps: no step is accepted at all.
    message = solve_error(van_der_pol, [2.0, 0.0], [0.0, 3000.0], min_step=0.01)
    assert message.startswith("step size underflow at t=0, step 1 ")
    assert "too few accepted steps to tell" in message
    assert "appears stiff" not in message


# ---------------------------------------------------------------------------------------------
# The estimate and the boundaries
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ADAPTIVE)
def test_the_estimate_is_exact_for_a_linear_non_autonomous_f(method):
    # f(y, t) = lambda y + g0 + g1 t: the stage combination cancels g0 and g1 t exactly.
    tableau, h, rate = TABLEAUX[method], 0.01, -250.0

    def rhs(y, t):
        return rate * y + 3.0 + 40.0 * t
    y, t = numpy.array([0.7]), 0.3
    _, _, stages = rk_step(rhs, tableau, y, t, h, rhs(y, t))
    assert stiffness_probe(tableau).h_lambda(stages, 1.0) == pytest.approx(h * abs(rate),
                                                                           rel=1e-9)


def stability_interval_end(coefficients):
    """The smallest x > 0 with |R(-x)| = 1 for R(z) = sum_k coefficients[k] z^k."""
    r_of_minus_x = numpy.polynomial.Polynomial(coefficients)(numpy.polynomial.Polynomial([0, -1]))
    roots = (r_of_minus_x ** 2 - 1).roots()
    return min(r.real for r in roots if abs(r.imag) < 1e-9 and r.real > 1e-9)


@pytest.mark.parametrize("method, coefficients", [
    ("euler", [1, 1]),
    ("rk4", [1, 1, 1 / 2, 1 / 6, 1 / 24]),
    ("bosh3", [1, 1, 1 / 2, 1 / 6]),  # b is a 3-stage method of order 3: R is e^z to z^3
    ("dopri5", [1, 1, 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 600]),  # Hairer & Wanner II, IV.2
])
def test_stability_boundary_is_where_the_stability_polynomial_leaves_the_unit_disc(
        method, coefficients):
    assert real_stability_boundary(TABLEAUX[method]) == pytest.approx(
        stability_interval_end(coefficients), rel=1e-9)
