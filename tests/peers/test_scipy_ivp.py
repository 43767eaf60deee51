"""SciPy's solve_ivp tests (scipy/scipy, scipy/integrate/_ivp/tests/test_ivp.py) re-expressed
in minode's API.

Each test names the SciPy test it ports. SciPy's problems, tolerances and bounds are kept:
``compute_error`` (the RMS over components of (y - y_exact) / (atol + rtol |y_exact|)) below 5
at rtol = 1e-3, atol = 1e-6, evaluation counts below SciPy's, and solve_ivp's default
tolerances (rtol = 1e-3, atol = 1e-6) where SciPy passes none. SciPy's methods map to minode's
tableaux of the same kind: RK23 -> "bosh3", RK45 -> "dopri5" (and minode's other 5(4) pair,
"tsit5", alongside); every SciPy method also runs through minode as ``method="scipy:NAME"``.
minode returns y at the times in ``t`` (by dense output, at no extra evaluations), which is
where SciPy's dense-output and t_eval checks are made here.

Known differences (not ported):
- vectorized=True, jac=, jac_sparsity= (test_integration's variants, test_integration_const_jac's
  njev/nlu, test_integration_sparse_difference, test_num_jac*): minode solvers are explicit and
  call func on one state.
- complex states (test_integration_complex, test_integration_complex_sparse): minode states are
  real floating point.
- events (test_events, test_event_terminal_*, test_duplicate_timestamps, test_t_eval_early_event,
  test_event_dense_output_LSODA, test_args' events): minode has no event detection.
- max_step (test_max_step, test_initial_maxstep; the max_step of gh-8848 and gh-9198 is dropped
  below): minode's odeint has no largest step.
- dense_output objects, OdeSolution, ConstantDenseOutput, solver classes (test_classes,
  test_OdeSolution, test_ConstantDenseOutput, test_t_eval_dense_output, the sol(res.t) == res.y
  checks): minode returns arrays at the requested times only, and not the solver's step times
  (so SciPy's error bounds at its own step points, and test_first_step's check that the first
  step is 0.1, have no equivalent).
- a zero-length interval (test_zero_interval, test_no_integration, test_no_integration_class):
  minode's t must be strictly monotone and rejects a repeated time with a ValueError.
- an infinite end time (test_empty's [0, inf]): minode's t must be finite.
- t_eval outside t_span (test_t_eval's last case): minode's t is itself the output grid.
- first_step larger than the interval (test_first_step's first_step=5): SciPy raises; minode's
  first trial step is cut to the interval.
- evaluation counts of scipy:Radau and scipy:BDF: minode counts every call of func, SciPy's
  nfev leaves out the calls of its finite-difference Jacobian (counted as njev).
- array-valued rtol (test_array_rtol): minode's rtol and atol are scalars.
- integer y0 ([1] in gh-17341, [1, -11] in gh-8848): minode rejects integer states (a
  ValueError naming y0), so those ports start from the same values as floats.
- args= that cannot be unpacked (test_args_single_value's TypeError): minode's params is a
  single pytree passed as one argument, never unpacked.
"""
import warnings

import numpy
import pytest
from autograd import grad
from numpy.testing import assert_allclose

import minode
from minode import ops
from minode.scipy_bridge import SCIPY_METHODS
from minode.tableaux import TABLEAUX

RTOL, ATOL = 1e-3, 1e-6  # test_ivp.py's tolerances, and solve_ivp's defaults
MINODE_ADAPTIVE = tuple(name for name, tableau in TABLEAUX.items() if tableau.adaptive)
MINODE_FIXED = tuple(name for name, tableau in TABLEAUX.items() if not tableau.adaptive)
ADAPTIVE = MINODE_ADAPTIVE + tuple(f"scipy:{name}" for name in SCIPY_METHODS)
# The methods of SciPy's "t bound respected" regressions: all but LSODA.
BOUNDED = tuple(method for method in ADAPTIVE if method != "scipy:LSODA")


def fun_rational(y, t, params):
    return ops.stack([y[1] / t, y[1] * (y[0] + 2 * y[1] - 1) / (t * (y[0] - 1))])


def sol_rational(t):
    """The exact solution of `fun_rational` from y(5) = (1/3, 2/9), one row per time."""
    t = numpy.asarray(t)
    return numpy.stack([t / (t + 10), 10 * t / (t + 10) ** 2], axis=-1)


def fun_linear(y, t, params):
    return ops.stack([-y[0] - 5 * y[1], y[0] + y[1]])


def sol_linear(t):
    """The exact solution of `fun_linear` from y(0) = (0, 2), one row per time."""
    t = numpy.asarray(t)
    return numpy.stack([-5 * numpy.sin(2 * t), 2 * numpy.cos(2 * t) + numpy.sin(2 * t)],
                       axis=-1)


def fun_zero(y, t, params):
    return y * 0.0


Y0_RATIONAL = numpy.array([1 / 3, 2 / 9])
T_SPANS = ([5.0, 9.0], [5.0, 1.0])


def compute_error(ys, exact, rtol, atol):
    """test_ivp.py's compute_error: for each time, the RMS over the state's components of
    (y - y_exact) / (atol + rtol |y_exact|)."""
    scaled = (numpy.asarray(ys) - exact) / (atol + rtol * abs(exact))
    return numpy.sqrt(numpy.mean(scaled ** 2, axis=-1))


def step_options(method):
    """A fixed-step method's step_size; nothing for an adaptive one."""
    return dict(step_size=1.0) if method in MINODE_FIXED else {}


@pytest.mark.parametrize("t_span", T_SPANS, ids=["forward", "backward"])
@pytest.mark.parametrize("method", ADAPTIVE)
def test_rational_problem_is_solved_within_tolerance_in_few_evaluations(method, t_span):
    """Port of test_ivp.py::test_integration (non-vectorized, no jac): the error at 50 times
    across the interval and at its midpoint stays below 5 in SciPy's scaled norm, with fewer
    than 40 evaluations (50 for DOP853; Radau and BDF see the module's known differences)."""
    stats = minode.SolverStats()
    times = numpy.linspace(*t_span)
    ys = minode.odeint(fun_rational, Y0_RATIONAL, times, method=method, rtol=RTOL, atol=ATOL,
                       stats=stats)
    assert (compute_error(ys, sol_rational(times), RTOL, ATOL) < 5).all()
    if method not in ("scipy:Radau", "scipy:BDF"):
        assert stats.forward.nfe < (50 if method == "scipy:DOP853" else 40), stats.forward.nfe
    middle = numpy.array([t_span[0], sum(t_span) / 2, t_span[1]])
    ys = minode.odeint(fun_rational, Y0_RATIONAL, middle, method=method, rtol=RTOL, atol=ATOL)
    assert (compute_error(ys, sol_rational(middle), RTOL, ATOL) < 5).all()


@pytest.mark.parametrize("method", ["scipy:Radau", "scipy:BDF"])
def test_linear_problem_by_implicit_methods_is_solved_within_tolerance(method):
    """Port of test_ivp.py::test_integration_const_jac without its constant jac (SciPy's
    methods estimate the Jacobian): the error at 50 times stays below SciPy's 15."""
    times = numpy.linspace(0.0, 2.0)
    ys = minode.odeint(fun_linear, numpy.array([0.0, 2.0]), times, method=method, rtol=RTOL,
                       atol=ATOL)
    assert (compute_error(ys, sol_linear(times), RTOL, ATOL) < 15).all()


@pytest.mark.parametrize("method", ["scipy:Radau", "scipy:BDF", "scipy:LSODA"])
def test_stiff_robertson_problem_takes_few_evaluations(method):
    """Port of test_ivp.py::test_integration_stiff: Robertson's chemical kinetics over
    [0, 1e8] takes fewer than 5000 evaluations when the stiff solver works as one."""
    def robertson(state, t, params):
        x, y, z = state[0], state[1], state[2]
        return ops.stack([-0.04 * x + 1e4 * y * z,
                          0.04 * x - 1e4 * y * z - 3e7 * y * y,
                          3e7 * y * y])
    stats = minode.SolverStats()
    minode.odeint(robertson, numpy.array([1e4, 0.0, 0.0]), numpy.array([0.0, 1e8]),
                  method=method, rtol=1e-6, atol=1e-6, stats=stats)
    assert stats.forward.nfe < 5000, stats.forward.nfe


@pytest.mark.parametrize("t_span", T_SPANS, ids=["forward", "backward"])
@pytest.mark.parametrize("method", MINODE_ADAPTIVE)
def test_rational_problem_from_a_given_first_step_is_solved_within_tolerance(method, t_span):
    """Port of test_ivp.py::test_first_step (first_step=0.1; without max_step): the error at
    50 times stays below 5, and a negative first_step is a ValueError."""
    times = numpy.linspace(*t_span)
    ys = minode.odeint(fun_rational, Y0_RATIONAL, times, method=method, rtol=RTOL, atol=ATOL,
                       first_step=0.1)
    assert (compute_error(ys, sol_rational(times), RTOL, ATOL) < 5).all()
    with pytest.raises(ValueError, match="first_step"):
        minode.odeint(fun_rational, Y0_RATIONAL, times, method=method, rtol=RTOL, atol=ATOL,
                      first_step=-1.0)


# test_t_eval's grids, all from y(5) = (1/3, 2/9). SciPy's t_eval may omit t_span[0] = 5;
# minode's t starts at y0's time, so those grids get 5 in front.
T_EVAL_GRIDS = [
    numpy.linspace(5.0, 9.0, 10),
    numpy.linspace(5.0, 1.0, 10),
    numpy.array([5.0, 5.01, 7.0, 8.0, 8.01, 9.0]),
    numpy.array([5.0, 4.99, 3.0, 1.5, 1.1, 1.01, 1.0]),
    numpy.array([5.01, 7.0, 8.0, 8.01]),
    numpy.array([4.99, 3.0, 1.5, 1.1, 1.01]),
]


@pytest.mark.parametrize("t_eval", T_EVAL_GRIDS)
@pytest.mark.parametrize("method", ["dopri5", "scipy:RK45"])
def test_solution_at_requested_times_is_within_tolerance(method, t_eval):
    """Port of test_ivp.py::test_t_eval (RK45, SciPy's default method): one output per
    requested time, each within error 5 of the exact solution."""
    times = t_eval if t_eval[0] == 5.0 else numpy.concatenate([[5.0], t_eval])
    ys = minode.odeint(fun_rational, Y0_RATIONAL, times, method=method, rtol=RTOL, atol=ATOL)
    assert ys.shape == (len(times), 2)
    assert (compute_error(ys, sol_rational(times), RTOL, ATOL) < 5).all()


@pytest.mark.parametrize("method", ADAPTIVE + MINODE_FIXED)
def test_zero_right_hand_side_keeps_the_state(method):
    """Port of test_ivp.py::test_integration_zero_rhs: y' = 0 from ones(3) over [0, 10] stays
    at 1 to rtol 1e-15."""
    ys = minode.odeint(fun_zero, numpy.ones(3), numpy.array([0.0, 10.0]), method=method,
                       **step_options(method))
    assert_allclose(ys, 1.0, rtol=1e-15)


@pytest.mark.parametrize("method", ADAPTIVE + MINODE_FIXED)
def test_empty_state_is_solved_without_warnings(method):
    """Port of test_ivp.py::test_empty ([0, 10]; minode's t must be finite): a state of size 0
    gives outputs of size 0 at every requested time, with no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ys = minode.odeint(fun_zero, numpy.zeros((0,)), numpy.array([0.0, 1.0, 2.0, 3.0, 10.0]),
                           method=method, **step_options(method))
    assert ys.shape == (5, 0)


@pytest.mark.parametrize("method", ["dopri5", "rk4", "scipy:RK45"])
@pytest.mark.parametrize("fill", [numpy.nan, numpy.inf])
def test_non_finite_initial_state_is_a_value_error_naming_y0(fill, method):
    """Port of test_ivp.py::test_initial_state_finiteness (SciPy gh-17846): NaN or inf in y0
    is a ValueError that names y0, before any solve."""
    with pytest.raises(ValueError, match="y0"):
        minode.odeint(fun_zero, numpy.full(3, fill), numpy.array([0.0, 10.0]), method=method,
                      **step_options(method))


def test_parameters_reach_the_right_hand_side():
    """Port of test_ivp.py::test_args_single_value: y' = a y with params (a,) = (-1,) gives
    exp(-0.1) at t = 0.1 (solve_ivp's default tolerances; assert_allclose's rtol 1e-7)."""
    ys = minode.odeint(lambda y, t, params: params[0] * y, numpy.array([1.0]),
                       numpy.array([0.0, 0.1]), (-1,), rtol=RTOL, atol=ATOL)
    assert_allclose(ys[-1, 0], numpy.exp(-0.1))


def inside(t, t0, t1):
    """Raise unless t0 <= t <= t1: func must never be evaluated outside the interval."""
    if not t0 <= float(t) <= t1:
        raise ValueError(f"func was evaluated at t={float(t)!r}, outside [{t0}, {t1}]")


SMALL = 1e-4


def double_inside_small_interval(y, t, params):
    inside(t, 0.0, SMALL)
    return 2 * y


@pytest.mark.parametrize("method", BOUNDED)
def test_first_step_never_leaves_a_small_interval(method):
    """Port of test_ivp.py::test_tbound_respected_small_interval (SciPy gh-17341): y' = 2 y on
    [0, 1e-4], with func raising outside the interval (SciPy's raises above 1e-4 only)."""
    ys = minode.odeint(double_inside_small_interval, numpy.array([1.0]),
                       numpy.array([0.0, SMALL]), method=method, rtol=RTOL, atol=ATOL)
    assert_allclose(ys[-1, 0], numpy.exp(2 * SMALL), rtol=RTOL)


@pytest.mark.parametrize("grad_mode", ["adjoint", "backprop"])
@pytest.mark.parametrize("method", MINODE_ADAPTIVE)
def test_gradient_solve_never_leaves_a_small_interval(method, grad_mode):
    """gh-17341's problem (test_ivp.py::test_tbound_respected_small_interval) differentiated:
    the adjoint's backward solve starts at 1e-4 and must not step below 0 either.
    d y(1e-4) / d y0 = exp(2e-4), to the solve's rtol."""
    def final_value(y0):
        return minode.odeint(double_inside_small_interval, y0, numpy.array([0.0, SMALL]),
                             method=method, rtol=RTOL, atol=ATOL, grad=grad_mode)[-1, 0]
    assert_allclose(grad(final_value)(numpy.array([1.0])), [numpy.exp(2 * SMALL)], rtol=RTOL)


def radial_equation(t, p):
    """gh-8848's system in r = exp(t), evaluated only inside [-17, 2]."""
    inside(t, -17.0, 2.0)
    r = ops.exp(t)
    potential = -11 / r + 10 * r / (0.05 + r ** 2)
    return ops.stack([r * p[1], -2.0 * r * ((-0.2 - potential) * p[0] + 1 / r * p[1])])


@pytest.mark.parametrize("method", BOUNDED)
def test_steps_never_leave_a_long_interval(method):
    """Port of test_ivp.py::test_tbound_respected_larger_interval (SciPy gh-8848), without
    max_step=0.03: the solve over [-17, 2] (atol 1e-8, rtol 1e-5) never evaluates func
    outside it."""
    ys = minode.odeint(lambda p, t, params: radial_equation(t, p), numpy.array([1.0, -11.0]),
                       numpy.array([-17.0, 2.0]), method=method, rtol=1e-5, atol=1e-8)
    assert numpy.isfinite(ys).all()


REACTION_RATES = numpy.array([1.73307544e-02, 6.49376470e-06, 0.0, 0.0])


@pytest.mark.parametrize("method", BOUNDED)
def test_constant_field_is_never_evaluated_past_the_end(method):
    """Port of test_ivp.py::test_tbound_respected_oscillator (SciPy gh-9198), without
    max_step=100: a constant field over [100, 200], func raising outside it (SciPy's raises
    above 205 only). The exact solution is y0 + 100 * rates."""
    def reactions(y, t, params):
        inside(t, 100.0, 200.0)
        return y * 0.0 + REACTION_RATES
    y0 = numpy.array([134.08298555, 138.82348612, 100.0, 0.0])
    ys = minode.odeint(reactions, y0, numpy.array([100.0, 200.0]), method=method, rtol=RTOL,
                       atol=ATOL)
    assert (compute_error(ys[-1:], y0 + 100 * REACTION_RATES, RTOL, ATOL) < 5).all()
