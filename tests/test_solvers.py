"""The Runge-Kutta solvers and the forward `odeint` (issue 2): convergence orders, accuracy
against SciPy, reverse time, dense output, batched states, dtypes and solver statistics.

Reference problems (float64 unless a test says otherwise):
    spiral          dz/dt = A z, A = [[-0.1, -1], [1, -0.1]]; exact z(t) = expm(A t) z0
    rational        dy/dt = -2 t y^2 (nonlinear, non-autonomous); exact y(t) = 1 / (1 + t^2)
    Van der Pol     mu = 1, and Lotka-Volterra: reference from SciPy's DOP853 at 1e-12
"""
import functools
import math

import numpy
import pytest
import scipy.integrate
import scipy.linalg

import minode
from minode import odeint
from minode.integrate import SolveOptions, integrate
from minode.stats import Counts
from minode.stepping import interpolate, rk_step
from minode.tableaux import TABLEAUX

FIXED_STEP = ["euler", "midpoint", "heun", "rk4"]
ADAPTIVE = ["bosh3", "dopri5", "tsit5"]
TOLERANCES = [1e-3, 1e-6, 1e-9]

SPIRAL_A = numpy.array([[-0.1, -1.0], [1.0, -0.1]])
SPIRAL_Z0 = numpy.array([2.0, 0.0])


def spiral_exact(t, z0=SPIRAL_Z0):
    """expm(A t) z0 in closed form: A = -0.1 I + J with J a quarter turn, so expm(A t) is a
    decay e^(-0.1 t) times a rotation by t (checked against scipy.linalg.expm below; the closed
    form is much cheaper than thousands of expm calls)."""
    c, s = math.cos(t), math.sin(t)
    return math.exp(-0.1 * t) * numpy.array([c * z0[0] - s * z0[1], s * z0[0] + c * z0[1]])


def spiral_exact_at(times, z0=SPIRAL_Z0):
    return numpy.stack([spiral_exact(t, z0) for t in times])


def test_spiral_closed_form_matches_matrix_exponential():
    for t in (0.0, 0.7, 10.0):
        numpy.testing.assert_allclose(spiral_exact(t), scipy.linalg.expm(SPIRAL_A * t) @ SPIRAL_Z0,
                                      rtol=1e-12, atol=1e-14)


def spiral(y, t, params):
    return y @ SPIRAL_A.T  # works for (D,) and (B, D) states


def van_der_pol(y, t, params):
    return numpy.array([y[1], (1.0 - y[0] ** 2) * y[1] - y[0]])


def lotka_volterra(y, t, params):
    prey, predator = y
    return numpy.array([1.5 * prey - prey * predator, -3.0 * predator + prey * predator])


def rational(y, t):
    return -2.0 * t * y * y


def rational_exact(t):
    return numpy.array([1.0 / (1.0 + t * t)])


# name: (func, y0, t_end)
PROBLEMS = {
    "spiral": (spiral, SPIRAL_Z0, 10.0),
    "van_der_pol": (van_der_pol, numpy.array([2.0, 0.0]), 10.0),
    "lotka_volterra": (lotka_volterra, numpy.array([1.0, 1.0]), 10.0),
}


@functools.lru_cache(maxsize=None)
def reference_solution(problem, t_start=0.0, n_times=41):
    """Times and SciPy DOP853 (rtol = atol = 1e-12) solution of a problem in PROBLEMS."""
    func, y0, t_end = PROBLEMS[problem]
    times = numpy.linspace(t_start, t_end, n_times)
    solution = scipy.integrate.solve_ivp(lambda t, y: func(y, t, None), (t_start, t_end), y0,
                                         method="DOP853", t_eval=times, rtol=1e-12, atol=1e-12)
    assert solution.success
    return times, solution.y.T


def scaled_error(ys, reference, rtol, atol):
    """max |y - y_ref| / (atol + rtol |y_ref|): the error in units of the requested tolerance.

    This is the tolerance's own meaning (the controller's weights); with rtol = atol = tol it is
    the absolute error over tol * (1 + |y|), which matters for Lotka-Volterra (|y| up to 7).
    """
    return float(numpy.max(numpy.abs(ys - reference) / (atol + rtol * numpy.abs(reference))))


def loglog_slope(step_sizes, errors):
    """The least-squares slope of log(error) against log(h): the observed order."""
    return float(numpy.polyfit(numpy.log(step_sizes), numpy.log(errors), 1)[0])


def fixed_step_error(tableau, rhs, y0, t_start, t_end, exact, n_steps):
    """Error at t_end of ``n_steps`` equal steps, run by the engine (any tableau, even adaptive)."""
    options = SolveOptions(tableau, step_size=(t_end - t_start) / n_steps)
    outputs, _ = integrate(rhs, y0, [t_start, t_end], options, Counts())
    return float(numpy.max(numpy.abs(outputs[-1] - exact)))


# ---------------------------------------------------------------------------------------------
# Convergence orders
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", FIXED_STEP + ADAPTIVE)
def test_fixed_step_convergence_order_matches_tableau_order_on_spiral(method):
    # Adaptive tableaux run their main (higher-order) solution with a fixed step here, through
    # the engine: odeint refuses step_size for them by design. Step counts sit in the
    # asymptotic range of every method: errors from ~1e-1 (euler) down to ~1e-13 (tsit5).
    tableau = TABLEAUX[method]
    t_end, n_steps = 10.0, [160, 320, 640]
    exact = spiral_exact(t_end)
    errors = [fixed_step_error(tableau, lambda y, t: SPIRAL_A @ y, SPIRAL_Z0, 0.0, t_end, exact, n)
              for n in n_steps]
    slope = loglog_slope([t_end / n for n in n_steps], errors)
    assert abs(slope - tableau.order) < 0.2, (method, slope, errors)


@pytest.mark.parametrize("method", FIXED_STEP + ADAPTIVE)
def test_fixed_step_convergence_order_on_nonlinear_nonautonomous_problem(method):
    # A linear autonomous problem only checks part of the order conditions and none of the
    # nodes c; dy/dt = -2 t y^2 checks both. Its 5th-order methods reach the asymptotic range
    # only near round-off (slopes fall from ~6 to 5 as h shrinks), so for them the slope is
    # only bounded below: a violated order condition would show as a slope near 4.
    tableau = TABLEAUX[method]
    t_end, n_steps = 2.0, [40, 80, 160]
    errors = [fixed_step_error(tableau, rational, numpy.array([1.0]), 0.0, t_end,
                               rational_exact(t_end), n) for n in n_steps]
    slope = loglog_slope([t_end / n for n in n_steps], errors)
    if tableau.order < 5:
        assert abs(slope - tableau.order) < 0.2, (method, slope, errors)
    else:
        assert slope > tableau.order - 0.2, (method, slope, errors)


@pytest.mark.parametrize("method", ADAPTIVE)
def test_embedded_error_estimate_scales_like_h_to_error_order_plus_one(method):
    # One step from the exact solution at t0 = 1.5: the estimate h * sum(b_error_i k_i) is the
    # local error of the embedded solution, O(h^(q+1)) for an embedded order q.
    tableau = TABLEAUX[method]
    t0 = 1.5
    y0 = rational_exact(t0)
    step_sizes = [0.05 / 2 ** k for k in range(4)]
    estimates = []
    for h in step_sizes:
        _, error, _ = rk_step(rational, tableau, y0, t0, h, rational(y0, t0))
        estimates.append(float(numpy.max(numpy.abs(error))))
    slope = loglog_slope(step_sizes, estimates)
    assert abs(slope - (tableau.error_order + 1)) < 0.2, (method, slope, estimates)


# ---------------------------------------------------------------------------------------------
# Adaptive solvers against SciPy's DOP853
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("method", ADAPTIVE)
def test_adaptive_global_error_shrinks_with_tolerance_and_stays_within_100x(method, problem):
    func, y0, _ = PROBLEMS[problem]
    times, reference = reference_solution(problem)
    errors = []
    for tol in TOLERANCES:
        ys = odeint(func, y0, times, method=method, rtol=tol, atol=tol, max_steps=100_000)
        assert ys.shape == reference.shape and ys.dtype == numpy.float64
        numpy.testing.assert_array_equal(ys[0], y0)
        errors.append(scaled_error(ys, reference, tol, tol) * tol)
        assert errors[-1] <= 100 * tol, (method, problem, tol, errors[-1] / tol)
    # each 1000x tighter tolerance must buy at least 10x less error
    assert errors[1] < errors[0] / 10 and errors[2] < errors[1] / 10, (method, problem, errors)


@pytest.mark.parametrize("problem", ["spiral", "lotka_volterra"])
@pytest.mark.parametrize("method", ADAPTIVE)
def test_reverse_time_integration_matches_forward_then_back(method, problem):
    # Van der Pol is left out: its limit cycle attracts forwards, so it repels backwards and
    # amplifies any error; the spiral (growing backwards by e^1) and Lotka-Volterra do not.
    func, y0, t_end = PROBLEMS[problem]
    tol = 1e-8
    y_end = odeint(func, y0, numpy.array([0.0, t_end]), method=method, rtol=tol, atol=tol,
                   max_steps=100_000)[-1]
    y_back = odeint(func, y_end, numpy.array([t_end, 0.0]), method=method, rtol=tol, atol=tol,
                    max_steps=100_000)
    numpy.testing.assert_array_equal(y_back[0], y_end)
    assert scaled_error(y_back[-1], y0, tol, tol) <= 100, (y_back[-1], y0)


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("method", ADAPTIVE)
def test_decreasing_time_grid_matches_reference_backwards(method, problem):
    func, _, _ = PROBLEMS[problem]
    times, reference = reference_solution(problem)
    if problem == "van_der_pol":  # backwards the limit cycle repels: keep the span short
        times, reference = times[:9], reference[:9]
    tol = 1e-8
    ys = odeint(func, reference[-1], times[::-1], method=method, rtol=tol, atol=tol)
    assert scaled_error(ys, reference[::-1], tol, tol) <= 100


@pytest.mark.parametrize("method", FIXED_STEP)
def test_fixed_step_methods_run_on_decreasing_time_grid(method):
    times = numpy.linspace(4.0, 0.0, 9)  # step_size 0.01 splits every interval of 0.5 evenly
    ys = odeint(spiral, spiral_exact(4.0), times, method=method, step_size=0.01)
    tolerance = {"euler": 0.2, "midpoint": 1e-3, "heun": 1e-3, "rk4": 1e-8}[method]
    assert numpy.max(numpy.abs(ys - spiral_exact_at(times))) < tolerance


@pytest.mark.parametrize("method", FIXED_STEP)
def test_fixed_step_lands_exactly_on_output_times_that_are_not_multiples_of_step(method):
    # Intervals of 0.3 and 0.25 with step_size 0.1: each is split evenly (3 steps each), so no
    # step overshoots an output time and the counts show ceil(span / step_size) steps.
    stats = minode.SolverStats()
    times = numpy.array([0.0, 0.3, 0.55])
    ys = odeint(spiral, SPIRAL_Z0, times, method=method, step_size=0.1, stats=stats)
    assert stats.forward.steps == 3 + 3
    assert numpy.max(numpy.abs(ys - spiral_exact_at(times))) < 0.05


# ---------------------------------------------------------------------------------------------
# The SciPy bridge
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scipy_method", ["RK45", "DOP853", "LSODA"])
def test_scipy_bridge_matches_exact_solution(scipy_method):
    times = numpy.linspace(0.0, 10.0, 21)
    stats = minode.SolverStats()
    ys = odeint(spiral, SPIRAL_Z0, times, method=f"scipy:{scipy_method}", rtol=1e-10,
                atol=1e-12, stats=stats)
    assert ys.shape == (21, 2) and ys.dtype == numpy.float64
    assert numpy.max(numpy.abs(ys - spiral_exact_at(times))) < 1e-7
    assert stats.forward.nfe > 0


def test_scipy_bridge_keeps_batched_shape_and_float32_dtype():
    y0 = numpy.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.5]], dtype=numpy.float32)
    matrix = SPIRAL_A.astype(numpy.float32)
    times = numpy.linspace(0.0, 3.0, 4)
    ys = odeint(lambda y, t, p: y @ matrix.T, y0, times, method="scipy:DOP853", rtol=1e-8,
                atol=1e-8)
    assert ys.shape == (4, 3, 2) and ys.dtype == numpy.float32
    exact = numpy.stack([numpy.stack([spiral_exact(t, z0) for z0 in y0.astype(numpy.float64)])
                         for t in times])
    assert numpy.max(numpy.abs(ys - exact)) < 1e-5


# ---------------------------------------------------------------------------------------------
# Dense output
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ADAPTIVE)
def test_dense_output_costs_no_extra_steps_and_matches_exact_solution(method):
    tol = 1e-6  # big steps: 40 to 260 of them for 2001 output times
    few, many = minode.SolverStats(), minode.SolverStats()
    odeint(spiral, SPIRAL_Z0, numpy.array([0.0, 10.0]), method=method, rtol=tol, atol=tol,
           stats=few)
    times = numpy.linspace(0.0, 10.0, 2001)
    ys = odeint(spiral, SPIRAL_Z0, times, method=method, rtol=tol, atol=tol, stats=many)
    assert many.forward.nfe == few.forward.nfe
    assert many.forward.steps == few.forward.steps
    assert many.forward.steps < len(times) / 5  # so most output times lie inside steps
    assert scaled_error(ys, spiral_exact_at(times), tol, tol) <= 100


# dopri5 and tsit5: their own 4th-order continuous extensions, local error O(h^5);
# bosh3: the cubic Hermite interpolant, local error O(h^4).
INTERPOLATION_LOCAL_ORDER = {"bosh3": 4, "dopri5": 5, "tsit5": 5}


@pytest.mark.parametrize("method", ADAPTIVE)
def test_interpolant_local_error_scales_with_interpolation_order(method):
    # Single steps from the exact solution at t0 = 1.5 (not near t = 0.33, where the 4th
    # derivative of 1 / (1 + t^2) vanishes and would hide the Hermite error's leading term).
    tableau = TABLEAUX[method]
    t0 = 1.5
    y0 = rational_exact(t0)
    step_sizes = [0.2 / 2 ** k for k in range(4)]
    errors = []
    for h in step_sizes:
        y1, _, stages = rk_step(rational, tableau, y0, t0, h, rational(y0, t0))
        errors.append(max(float(numpy.max(numpy.abs(
            interpolate(tableau, y0, h, stages, theta) - rational_exact(t0 + theta * h))))
            for theta in (0.25, 0.5, 0.75)))
    slope = loglog_slope(step_sizes, errors)
    assert abs(slope - INTERPOLATION_LOCAL_ORDER[method]) < 0.2, (method, slope, errors)


@pytest.mark.parametrize("method", ADAPTIVE)
def test_interpolant_is_continuous_at_both_ends_of_a_step(method):
    tableau = TABLEAUX[method]
    y0, t0, h = rational_exact(1.5), 1.5, 0.3
    y1, _, stages = rk_step(rational, tableau, y0, t0, h, rational(y0, t0))
    numpy.testing.assert_allclose(interpolate(tableau, y0, h, stages, 0.0), y0, rtol=1e-14)
    numpy.testing.assert_allclose(interpolate(tableau, y0, h, stages, 1.0), y1, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# Batched states
# ---------------------------------------------------------------------------------------------

BATCH_Y0 = numpy.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.5], [0.3, -2.0]])


@pytest.mark.parametrize("method", ["rk4"] + ADAPTIVE)
def test_batched_states_of_shape_batch_dim_match_separate_solves(method):
    times = numpy.linspace(0.0, 5.0, 11)
    options = ({"step_size": 0.02} if method == "rk4" else {"rtol": 1e-9, "atol": 1e-9})
    ys = odeint(spiral, BATCH_Y0, times, method=method, **options)
    assert ys.shape == (11, 4, 2)
    separate = numpy.stack([odeint(spiral, z0, times, method=method, **options)
                            for z0 in BATCH_Y0], axis=1)
    exact = numpy.stack([spiral_exact_at(times, z0) for z0 in BATCH_Y0], axis=1)
    if method == "rk4":  # the same steps for every sample: identical up to round-off
        numpy.testing.assert_allclose(ys, separate, rtol=0, atol=1e-13)
    else:  # the batch shares one step-size sequence, so only the accuracy is shared
        assert numpy.max(numpy.abs(ys - separate)) < 1e-7
    assert numpy.max(numpy.abs(ys - exact)) < 1e-7


def channel_mixing(y, t, params):
    """dy/dt for images (B, C, H, W): a damped rotation mixing the channels, pixel by pixel,
    plus a pointwise nonlinearity and a time-dependent forcing."""
    mixing = numpy.array([[-0.2, -1.0, 0.0], [1.0, -0.2, 0.5], [0.0, -0.5, -0.3]])
    return numpy.einsum("dc,bchw->bdhw", mixing, y) - 0.1 * numpy.tanh(y) + 0.05 * numpy.sin(t)


@pytest.mark.parametrize("method", ["rk4"] + ADAPTIVE)
def test_batched_image_states_match_separate_solves(method):
    y0 = numpy.random.default_rng(0).normal(size=(2, 3, 4, 5))
    times = numpy.array([0.0, 0.7, 2.0])
    options = ({"step_size": 0.05} if method == "rk4" else {"rtol": 1e-9, "atol": 1e-9})
    ys = odeint(channel_mixing, y0, times, method=method, **options)
    assert ys.shape == (3, 2, 3, 4, 5) and ys.dtype == numpy.float64
    separate = numpy.concatenate([odeint(channel_mixing, y0[i:i + 1], times, method=method,
                                         **options) for i in range(2)], axis=1)
    numpy.testing.assert_allclose(ys, separate, rtol=0, atol=1e-13 if method == "rk4" else 1e-7)
    reference = scipy.integrate.solve_ivp(
        lambda t, y: channel_mixing(y.reshape(y0.shape), t, None).ravel(), (0.0, 2.0),
        y0.ravel(), method="DOP853", t_eval=times, rtol=1e-12, atol=1e-12).y.T
    tolerance = 1e-6 if method == "rk4" else 1e-7
    assert numpy.max(numpy.abs(ys.reshape(3, -1) - reference)) < tolerance


# ---------------------------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["rk4"] + ADAPTIVE)
def test_float32_state_stays_float32_and_is_accurate_to_1e_5(method):
    matrix = SPIRAL_A.astype(numpy.float32)
    seen_dtypes = set()

    def func(y, t, params):
        seen_dtypes.update({y.dtype, t.dtype})
        return y @ matrix.T

    times = numpy.linspace(0.0, 10.0, 21)
    options = ({"step_size": 0.01} if method == "rk4" else {"rtol": 1e-7, "atol": 1e-7})
    ys = odeint(func, SPIRAL_Z0.astype(numpy.float32), times, method=method, **options)
    assert ys.dtype == numpy.float32
    assert seen_dtypes == {numpy.dtype(numpy.float32)}  # y and t reach func as float32
    assert numpy.max(numpy.abs(ys - spiral_exact_at(times))) < 1e-5


@pytest.mark.parametrize("method", ["euler", "rk4"] + ADAPTIVE)
def test_float64_state_stays_float64(method):
    seen_dtypes = set()

    def func(y, t, params):
        seen_dtypes.update({y.dtype, t.dtype})
        return spiral(y, t, params)

    options = {"step_size": 0.1} if method in FIXED_STEP else {}
    ys = odeint(func, SPIRAL_Z0, numpy.array([0.0, 1.0]), method=method, **options)
    assert ys.dtype == numpy.float64
    assert seen_dtypes == {numpy.dtype(numpy.float64)}


# ---------------------------------------------------------------------------------------------
# Solver statistics
# ---------------------------------------------------------------------------------------------

STAGES = {"bosh3": 4, "dopri5": 7, "tsit5": 7}


@pytest.mark.parametrize("method", ADAPTIVE)
def test_fsal_methods_use_stages_minus_one_evaluations_per_step(method):
    # Van der Pol at 1e-6 rejects some steps; a rejected step costs as much as an accepted one.
    # The 2 extra evaluations are f(y0) and the probe of Hairer's initial step selection.
    stats = minode.SolverStats()
    func, y0, _ = PROBLEMS["van_der_pol"]
    odeint(func, y0, numpy.linspace(0.0, 10.0, 5), method=method, rtol=1e-6, atol=1e-6,
           stats=stats)
    counts = stats.forward
    assert counts.steps > 0 and counts.rejected > 0
    assert counts.nfe == 2 + (STAGES[method] - 1) * (counts.steps + counts.rejected)
    assert stats.backward.nfe == 0


def test_dopri5_uses_six_evaluations_per_accepted_step_plus_initial():
    stats = minode.SolverStats()
    odeint(spiral, SPIRAL_Z0, numpy.linspace(0.0, 10.0, 11), method="dopri5", rtol=1e-6,
           atol=1e-6, stats=stats)
    assert stats.forward.rejected == 0  # the smooth spiral rejects nothing here
    assert stats.forward.nfe == 6 * stats.forward.steps + 2


def test_rejected_steps_are_counted_when_the_first_step_is_too_large():
    # Through the engine with first_step=5 on the spiral: the first trials must fail.
    counts = Counts()
    options = SolveOptions(TABLEAUX["dopri5"], rtol=1e-8, atol=1e-8, first_step=5.0)
    integrate(lambda y, t: SPIRAL_A @ y, SPIRAL_Z0, [0.0, 10.0], options, counts)
    assert counts.rejected >= 1
    assert counts.nfe == 1 + 6 * (counts.steps + counts.rejected)  # no initial-step probe


@pytest.mark.parametrize("method, stages", [("euler", 1), ("midpoint", 2), ("heun", 2),
                                            ("rk4", 4)])
def test_fixed_step_counts_steps_and_evaluations(method, stages):
    stats = minode.SolverStats()
    odeint(spiral, SPIRAL_Z0, numpy.array([0.0, 1.0, 2.5]), method=method, step_size=0.5,
           stats=stats)
    assert stats.forward.steps == 2 + 3
    assert stats.forward.rejected == 0
    assert stats.forward.nfe == stages * 5


def test_solver_stats_accumulate_over_calls_until_reset():
    stats = minode.SolverStats()
    for _ in range(2):
        odeint(spiral, SPIRAL_Z0, numpy.array([0.0, 1.0]), method="rk4", step_size=0.25,
               stats=stats)
    assert (stats.forward.steps, stats.forward.nfe) == (8, 32)
    stats.reset()
    assert (stats.forward.nfe, stats.forward.steps, stats.forward.rejected) == (0, 0, 0)


def test_output_starts_with_y0_exactly():
    times = numpy.array([0.0, math.pi])
    for method in ADAPTIVE:
        ys = odeint(spiral, SPIRAL_Z0, times, method=method)
        assert ys.shape == (2, 2)
        numpy.testing.assert_array_equal(ys[0], SPIRAL_Z0)
