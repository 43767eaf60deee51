"""Edge cases of the stepping engine (issue 18, items 4, 5 and 8): ``func`` is only evaluated
inside the solve's interval, a size-0 state solves and differentiates, and a solve that runs
backwards in time reports the caller's own t in its errors.

The interval tests include SciPy's regressions for a solver "evaluated outside interval"
(scipy/integrate/_ivp/tests/test_ivp.py: test_tbound_respected_small_interval, gh-17341;
test_tbound_respected_larger_interval, gh-8848; test_tbound_respected_oscillator, gh-9198),
with their problems and tolerances and a stricter guard: SciPy's oscillator test allows t up to
205 on [100, 200], these allow nothing outside [t0, t1]. Known difference: gh-8848 passes
``max_step=0.03``, which minode does not have; without it the first step is the one at stake.

Solves here are float64. Closed-form checks use rtol = atol = 1e-10 and compare to 1e-7
relative (the solver's error is about 1e-9 of the solution); SciPy's problems keep SciPy's
tolerances and are held to 100 times them, the bound of tests/test_solvers.py.
"""
import math
import re

import autograd
import numpy
import pytest
import scipy.integrate
from autograd.tracer import getval

from minode import SolverError, backend, ops, odeint
from minode.stepping import rms_error_ratio
from minode.tableaux import TABLEAUX

ADAPTIVE = ["bosh3", "dopri5", "tsit5"]
FIXED_STEP = ["euler", "midpoint", "heun", "rk4"]
GRAD_MODES = ["adjoint", "backprop"]
TIGHT = dict(rtol=1e-10, atol=1e-10)
Y0 = numpy.array([1.0, 2.0])
RATE = numpy.array(0.7)

# A step from -0.5056... straight to 5.56e-05 computes its end as t + (t_end - t), which rounds
# one unit in the last place past t_end; a first step longer than the span takes that step.
CROSSING_ZERO = (-0.5056378869683275, 5.5624314536942304e-05)

INTERVALS = {
    "1e-4, increasing": (0.0, 1e-4),
    "1e-4, decreasing": (1e-4, 0.0),
    "1e-10 relative, increasing": (1.0, 1.0 + 1e-10),
    "1e-10 relative, decreasing": (1.0 + 1e-10, 1.0),
    "crossing zero, increasing": CROSSING_ZERO,
    "crossing zero, decreasing": (-CROSSING_ZERO[0], -CROSSING_ZERO[1]),
}


class IntervalGuard:
    """Wraps ``func`` to record every time it is called at and to raise at any time outside the
    closed interval spanned by ``t_span`` (the guard of SciPy's regression tests)."""

    def __init__(self, func, t_span):
        self.func, self.low, self.high = func, min(t_span), max(t_span)
        self.times = []

    def __call__(self, y, t, params):
        value = float(getval(t))
        self.times.append(value)
        if not self.low <= value <= self.high:
            raise AssertionError(f"func evaluated at t={value!r}, outside "
                                 f"[{self.low!r}, {self.high!r}]")
        return self.func(y, t, params)


def decay(y, t, params):
    return -params * y


def decay_loss_and_gradients(t0, t1):
    """L = sum(y0) + sum(y(t1)) for y' = -RATE y and its gradients w.r.t. (RATE, t0, t1)."""
    span = t1 - t0
    end_sum = float(Y0.sum()) * math.exp(-float(RATE) * span)
    return (float(Y0.sum()) + end_sum,
            (-span * end_sum, float(RATE) * end_sum, -float(RATE) * end_sum))


def solve_guarded(t_span, mode, **options):
    """Solve y' = -RATE y over ``t_span`` through `odeint` (mode "forward", or the gradient of
    the sum of the outputs w.r.t. RATE and t in ``mode``) under an `IntervalGuard`; returns the
    loss, the gradients (None forward) and the guard."""
    guard = IntervalGuard(decay, t_span)
    t = numpy.array(t_span)

    def loss(rate, times):
        return ops.sum(odeint(guard, Y0, times, rate,
                              grad="adjoint" if mode == "forward" else mode, **options))
    if mode == "forward":
        return float(loss(RATE, t)), None, guard
    value_and_grads = autograd.value_and_grad(loss, (0, 1))(RATE, t)
    return float(value_and_grads[0]), value_and_grads[1], guard


# ---------------------------------------------------------------------------------------------
# func is never evaluated outside [t0, t1]
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TABLEAUX)
def test_every_tableau_has_its_stage_times_inside_the_step(name):
    # What the interval guarantee rests on: stage i runs at t + c_i h with 0 <= c_i <= 1.
    assert all(0.0 <= c <= 1.0 for c in TABLEAUX[name].floats.c)


def test_the_crossing_interval_makes_rounding_pass_the_end():
    # Without this the crossing-zero cases below would not test the clamp of stage times.
    start, end = CROSSING_ZERO
    assert start + (end - start) > end


@pytest.mark.parametrize("mode", ["forward"] + GRAD_MODES)
@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("method", ADAPTIVE)
def test_func_is_never_evaluated_outside_the_interval(method, interval, mode):
    t0, t1 = INTERVALS[interval]
    # The crossing cases take the whole span as their first trial step (see CROSSING_ZERO).
    first_step = 1.0 if interval.startswith("crossing") else None
    loss, grads, guard = solve_guarded((t0, t1), mode, method=method, first_step=first_step,
                                       **TIGHT)
    expected_loss, expected_grads = decay_loss_and_gradients(t0, t1)
    assert guard.times[0] == t0
    numpy.testing.assert_allclose(loss, expected_loss, rtol=1e-7)
    if grads is not None:
        numpy.testing.assert_allclose(grads[0], expected_grads[0], rtol=1e-7)
        numpy.testing.assert_allclose(grads[1], expected_grads[1:], rtol=1e-7)


@pytest.mark.parametrize("mode", ["forward"] + GRAD_MODES)
@pytest.mark.parametrize("interval", INTERVALS)
def test_a_first_step_longer_than_the_interval_stays_inside_it(interval, mode):
    t0, t1 = INTERVALS[interval]
    loss, _, guard = solve_guarded((t0, t1), mode, first_step=1e3, **TIGHT)
    assert guard.times[0] == t0
    numpy.testing.assert_allclose(loss, decay_loss_and_gradients(t0, t1)[0], rtol=1e-7)


@pytest.mark.parametrize("mode", ["forward"] + GRAD_MODES)
@pytest.mark.parametrize("method", FIXED_STEP)
def test_a_fixed_step_longer_than_the_interval_stays_inside_it(method, mode):
    t0, t1 = CROSSING_ZERO  # one step of the whole span: its end rounds past t1 unclamped
    _, _, guard = solve_guarded((t0, t1), mode, method=method, step_size=1.0)
    assert guard.times[0] == t0


def test_the_first_step_estimate_stays_inside_a_short_interval():
    # The estimate is capped at the span, not just clipped when the step is taken: on [0, 1e-4]
    # Hairer's probe alone would go to t = 0.02 (0.01 |y0| / |f0|, and |f0| = 0.7 |y0|).
    guard = IntervalGuard(decay, (0.0, 1e-4))
    odeint(guard, Y0, numpy.array([0.0, 1e-4]), RATE)
    assert max(guard.times) == 1e-4


def test_time_gradients_over_many_tiny_intervals_stay_inside_each_one():
    # The adjoint solves each interval [t_(i-1), t_i] on its own, starting from the step size
    # the interval before handed on; every one of them must stay inside the whole grid.
    t = 1.0 + numpy.array([0.0, 1e-10, 3e-10, 1e-4, 2e-4])
    guard = IntervalGuard(decay, (t[0], t[-1]))
    grads = autograd.grad(lambda rate, times: ops.sum(odeint(guard, Y0, times, rate)[-1]),
                          (0, 1))(RATE, t)
    end_sum = float(Y0.sum()) * math.exp(-float(RATE) * (t[-1] - t[0]))
    numpy.testing.assert_allclose(grads[0], -(t[-1] - t[0]) * end_sum, rtol=1e-6)
    numpy.testing.assert_allclose(grads[1], [float(RATE) * end_sum, 0.0, 0.0, 0.0,
                                             -float(RATE) * end_sum], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("mode", ["forward"] + GRAD_MODES)
@pytest.mark.parametrize("method", ["dopri5", "rodas4"])
def test_an_output_interval_shorter_than_min_step_is_not_a_step_size_underflow(method, mode):
    # A step cut short to land on an output time is shorter than the controller asked for by
    # choice; min_step bounds what the controller asks. The adjoint solves back over each
    # interval alone, so [0.5, 0.5001] was a "step size underflow" with min_step = 0.01, and so
    # was the forward solve's last step (0.5001 rounded the step before it to end at 1).
    # first_step = 1 (cut to the span) keeps Hairer's estimate, which may itself be below
    # min_step, out of it.
    t = numpy.array([0.0, 0.5, 0.5001, 1.0])

    def loss(rate, t):
        return ops.sum(odeint(decay, Y0, t, rate, method=method, min_step=0.01, first_step=1.0,
                              grad="adjoint" if mode == "forward" else mode, **TIGHT))
    sums = float(Y0.sum()) * numpy.exp(-float(RATE) * t)
    if mode == "forward":
        numpy.testing.assert_allclose(loss(RATE, t), sums.sum(), rtol=1e-7)
        return
    grad_rate, grad_t = autograd.grad(loss, (0, 1))(RATE, t)
    numpy.testing.assert_allclose(grad_rate, -(t * sums).sum(), rtol=1e-7)
    expected_t = -float(RATE) * sums
    expected_t[0] = -expected_t[1:].sum()
    numpy.testing.assert_allclose(grad_t, expected_t, rtol=1e-7)


def _radial_field(y, t, params):
    """SciPy gh-8848: P' = r Q, Q' = -2 r ((-0.2 - V(r)) P + Q / r), r = e^t."""
    r = ops.exp(t)
    potential = -11.0 / r + 10.0 * r / (0.05 + r * r)
    return ops.stack([r * y[1], -2.0 * r * ((-0.2 - potential) * y[0] + y[1] / r)])


def _constant_field(y, t, params):
    """SciPy gh-9198: a constant derivative, so y(t1) = y0 + (t1 - t0) y' exactly."""
    return y * 0.0 + numpy.array([1.73307544e-02, 6.49376470e-06, 0.0, 0.0])


def _growth_field(y, t, params):
    """SciPy gh-17341: y' = 2 y."""
    return 2.0 * y


# name: (func, y0, (t0, t1), rtol, atol); SciPy's defaults are rtol=1e-3, atol=1e-6
SCIPY_REGRESSIONS = {
    "gh-17341 small interval": (_growth_field, numpy.array([1.0]), (0.0, 1e-4), 1e-3, 1e-6),
    "gh-8848 larger interval": (_radial_field, numpy.array([1.0, -11.0]), (-17.0, 2.0), 1e-5,
                                1e-8),
    "gh-9198 oscillator": (_constant_field, numpy.array([134.08298555, 138.82348612, 100.0, 0.0]),
                           (100.0, 200.0), 1e-3, 1e-6),
}


def _scipy_reference(func, y0, t_span):
    solution = scipy.integrate.solve_ivp(lambda t, y: func(y, numpy.array(t), None), t_span, y0,
                                         method="DOP853", rtol=1e-12, atol=1e-12)
    return solution.y[:, -1]


@pytest.mark.parametrize("mode", ["forward"] + GRAD_MODES)
@pytest.mark.parametrize("method", ADAPTIVE)
@pytest.mark.parametrize("name", SCIPY_REGRESSIONS)
def test_scipy_regressions_stay_inside_the_interval(name, method, mode):
    func, y0, t_span, rtol, atol = SCIPY_REGRESSIONS[name]
    guard = IntervalGuard(func, t_span)

    def end_state(state, times):
        return odeint(guard, state, times, method=method, rtol=rtol, atol=atol,
                      grad="adjoint" if mode == "forward" else mode)[-1]
    t = numpy.array(t_span)
    y_end = end_state(y0, t)
    error = numpy.abs(y_end - _scipy_reference(func, y0, t_span))
    assert (error / (atol + rtol * numpy.abs(y_end))).max() <= 100
    if mode != "forward":
        gradients = autograd.grad(lambda state, times: ops.sum(end_state(state, times)),
                                  (0, 1))(y0, t)
        assert all(numpy.isfinite(g).all() for g in gradients)


# ---------------------------------------------------------------------------------------------
# A size-0 state
# ---------------------------------------------------------------------------------------------

def test_the_error_ratio_of_an_empty_state_is_zero():
    empty = numpy.zeros((3, 0))
    assert rms_error_ratio(empty, empty, empty, 1e-6, 1e-9) == 0.0


def _method_options(method):
    return {"method": method, "step_size": 0.1} if method in FIXED_STEP else {"method": method}


@pytest.mark.parametrize("t", [numpy.array([0.0, 0.5, 1.0]), numpy.array([1.0, 0.5, 0.0])])
@pytest.mark.parametrize("shape", [(0,), (3, 0)])
@pytest.mark.parametrize("method", ADAPTIVE + FIXED_STEP)
def test_an_empty_state_solves_to_an_empty_trajectory(method, shape, t):
    ys = odeint(decay, numpy.ones(shape), t, RATE, **_method_options(method))
    assert ys.shape == (len(t),) + shape and ys.dtype == numpy.float64


@pytest.mark.parametrize("grad_mode, seminorm", [("adjoint", False), ("adjoint", True),
                                                  ("backprop", False)])
@pytest.mark.parametrize("shape", [(0,), (3, 0)])
@pytest.mark.parametrize("method", ADAPTIVE + ["rk4"])
def test_an_empty_state_has_exact_gradients(method, shape, grad_mode, seminorm):
    # L = sum(ys) + sum(p^2): ys is empty, so dL/dp = 2 p exactly, and nothing depends on t
    # or on the (empty) y0.
    def field(y, t, params):
        return -params * y * t

    def loss(params, t, y0):
        ys = odeint(field, y0, t, params, grad=grad_mode, seminorm=seminorm,
                    **_method_options(method))
        return ops.sum(ys) + ops.sum(params * params)
    params, t = numpy.array([0.7]), numpy.array([0.0, 0.5, 1.0])
    grad_params, grad_t, grad_y0 = autograd.grad(loss, (0, 1, 2))(params, t, numpy.ones(shape))
    numpy.testing.assert_array_equal(grad_params, 2.0 * params)
    numpy.testing.assert_array_equal(grad_t, numpy.zeros(3))
    assert grad_y0.shape == shape


def test_an_empty_state_solves_on_the_strict_backend(strict_backend):
    ys = odeint(lambda y, t, params: -y, backend.asarray(numpy.ones((3, 0))),
                backend.asarray(numpy.array([0.0, 1.0])))
    assert ys.shape == (2, 3, 0)


# ---------------------------------------------------------------------------------------------
# Errors name the caller's t, also when time runs backwards
# ---------------------------------------------------------------------------------------------

def reported_time(error):
    """The t=... that a SolverError message names."""
    return float(re.search(r"(?:at|reach) t=([-+0-9.e]+)", str(error.value)).group(1))


def test_max_steps_of_a_decreasing_solve_reports_the_callers_t():
    with pytest.raises(SolverError, match=r"^max_steps=3 exceeded at t=") as error:
        odeint(decay, Y0, numpy.array([5.0, 3.0]), RATE, max_steps=3, **TIGHT)
    assert 3.0 <= reported_time(error) <= 5.0


def test_max_steps_of_a_decreasing_fixed_step_solve_reports_the_callers_t():
    with pytest.raises(SolverError, match=r"needs 200 steps to reach t=") as error:
        odeint(decay, Y0, numpy.array([5.0, 3.0]), RATE, method="rk4", step_size=0.01,
               max_steps=5)
    assert reported_time(error) == 3.0


def test_step_size_underflow_of_a_decreasing_solve_reports_the_callers_t():
    # y' = -y^2, y(2) = 1 is y = 1 / (t - 1): solved from t = 2 towards 0 it blows up at t = 1.
    with pytest.raises(SolverError, match=r"^step size underflow at t=") as error:
        odeint(lambda y, t, params: -y * y, numpy.array([1.0]), numpy.array([2.0, 0.0]))
    assert 1.0 <= reported_time(error) < 1.01


def test_a_non_finite_fixed_step_state_of_a_decreasing_solve_reports_the_callers_t():
    # func is NaN below t = 3.5: Euler from 5 by steps of 1 first evaluates it at t = 3, so the
    # state at t = 2 is the first one that is not finite.
    def field(y, t, params):
        return -y * (math.nan if float(getval(t)) < 3.5 else 1.0)
    with pytest.raises(SolverError, match=r"non-finite \(NaN or inf\) at t=") as error:
        odeint(field, Y0, numpy.array([5.0, 2.0]), method="euler", step_size=1.0)
    assert reported_time(error) == 2.0


def test_a_failing_adjoint_backward_solve_reports_the_callers_t():
    # The forward solve at rtol 1e-3 takes a few steps; the backward one, asked for 1e-13,
    # needs many more than max_steps = 30.
    def end_state(y0):
        return odeint(decay, y0, numpy.array([2.0, 3.0]), RATE, rtol=1e-3, atol=1e-6,
                      max_steps=30, adjoint_rtol=1e-13, adjoint_atol=1e-13)[-1]
    vjp, _ = autograd.make_vjp(end_state)(Y0)  # the forward solve succeeds
    with pytest.raises(SolverError, match=r"^the adjoint's backward solve \(grad='adjoint'\) "
                                          r"failed between t=3 and t=2: max_steps=30 exceeded "
                                          r"at t=.* adjoint_rtol") as error:
        vjp(numpy.ones(2))
    assert 2.0 <= reported_time(error) <= 3.0
