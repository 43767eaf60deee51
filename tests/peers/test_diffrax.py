"""diffrax's ODE tests (patrick-kidger/diffrax, test/ at 5ea5fcb) in minode's API, as far as
they translate.

Each test names the diffrax file and test it ports, with diffrax's problems and bounds
(``tree_allclose``: |x - y| <= atol + rtol |y|, rtol = 1e-5 and atol = 1e-8 unless given).
Solvers map to minode methods by name (Euler, Midpoint, Heun, Bosh3, Dopri5, Tsit5);
``PIDController(rtol, atol)`` is minode's adaptive step control with those tolerances,
``ConstantStepSize`` with ``dt0`` is ``step_size=|dt0|``, ``dt0`` for an adaptive solve is
``first_step``. Gradients: ``RecursiveCheckpointAdjoint`` / ``DirectAdjoint`` (differentiate
the solver) are ``grad="backprop"``, ``BacksolveAdjoint`` is ``grad="adjoint"``. diffrax saves
at t1 only by default, so its ``sol.ys`` is ``ys[-1:]`` here.

Known differences (not ported):
- implicit and other solvers minode lacks: ImplicitEuler, Kvaerno3/4/5, KenCarp3/4/5, Sil3,
  SemiImplicitEuler (test_semi_implicit_euler), LeapfrogMidpoint, ReversibleHeun, Ralston,
  Dopri8; implicit root-finder tolerances (test_implicit_tol_error, test_grad_implicit_solve).
- complex dtypes (complex64 / complex128 in test_basic, test_ode_order, test_reverse_time).
- pytree states (test_basic's dict treedef and its None treedef, test_grad_implicit_solve,
  test_term_compatibility*): minode states are one array.
- an adaptive solver at a constant step (Tsit5 with ConstantStepSize): minode runs adaptive
  tableaux adaptively only and refuses step_size for them
  (`test_adaptive_method_refuses_a_fixed_step_size`); test_ode_order runs their fixed-step
  order through minode's engine (`minode.integrate`) instead.
- PID coefficients (pcoeff, icoeff, dcoeff), step_ts / jump_ts, StepTo, made_jump.
- SaveAt(steps=...), SaveAt(dense=True), SaveAt(fn=...), sol.evaluate / sol.derivative
  (test_reverse_time's steps and dense cases, test_reverse_time_saveat): minode returns the
  solution at the times in t only.
- vmap, jit, filter_jit, forward mode (jacfwd, ForwardMode, test_forward_mode_runge_kutta):
  JAX transformations with no autograd counterpart in minode.
- SDEs and Brownian motion (test_sde_strong_order, test_sde_against).
- events and ImplicitAdjoint (test_vmap_backprop_with_event, test_implicit).
- jax.grad(allow_int=True) on Python ints: autograd itself refuses to differentiate w.r.t. a
  Python int; the integer parameters are NumPy int arrays here
  (`test_integer_parameters_are_constants_or_refused`).
"""
import math

import numpy
import pytest
import scipy.stats
from autograd import grad, make_vjp

import minode
from minode import ops
from minode.gradcheck import check_grads, numerical_grad, relative_error
from minode.integrate import SolveOptions, integrate
from minode.stats import Counts
from minode.tableaux import TABLEAUX
from problems import (AGAINST_FLOAT_PARAMS, AGAINST_INT_PARAMS, AGAINST_SPAN, AGAINST_Y0,
                      against_field, order_problem, relu_mlp_field, relu_mlp_params,
                      right_or_refused)

FIXED_STEP_METHODS = ("euler", "midpoint", "heun")


def decay(y, t, params):
    return -y


def growth(y, t, params):
    return y


# ---------------------------------------------------------------------------------------------
# test/test_integrate.py
# ---------------------------------------------------------------------------------------------

BASIC_SOLVES = {"euler": {"method": "euler", "step_size": 0.01},
                "tsit5": {"method": "tsit5", "rtol": 1e-5, "atol": 1e-8}}
BASIC_TIMES = {"float": [0.0, 1.0], "int": [0, 1],
               "float32": numpy.array([0, 1], dtype=numpy.float32),
               "int32": numpy.array([0, 1], dtype=numpy.int32)}
# Shapes like test_basic's random leaves (0-4 dimensions of 0-4 entries), empty ones included.
BASIC_SHAPES = ((), (0,), (3,), (2, 4), (1, 0, 3), (4, 2, 1, 3))


@pytest.mark.parametrize("shape", BASIC_SHAPES, ids=str)
@pytest.mark.parametrize("t_kind", tuple(BASIC_TIMES))
@pytest.mark.parametrize("solver", tuple(BASIC_SOLVES))
def test_decay_over_the_unit_interval_matches_exp_minus_one(solver, t_kind, shape):
    """diffrax test/test_integrate.py test_basic: dy/dt = -y from a float32 y0 over [0, 1]
    (times as float, int, float32, int32), Euler at dt0 = 0.01 or Tsit5 with
    PIDController(rtol=1e-5, atol=1e-8); y(1) within rtol = atol = 1e-2 of y0 e^-1. A 0-d or
    empty state and integer-array times may instead be refused by an error naming y0 or t."""
    y0 = numpy.random.default_rng(0).normal(size=shape).astype(numpy.float32)

    def solve():
        return minode.odeint(decay, y0, BASIC_TIMES[t_kind], **BASIC_SOLVES[solver])

    def check(ys):
        assert ys.shape == (2,) + shape and ys.dtype == numpy.float32
        numpy.testing.assert_allclose(ys[-1], y0 * math.exp(-1), rtol=1e-2, atol=1e-2)

    refusable = (("y0",) if y0.ndim == 0 or y0.size == 0 else ()) + (
        ("t",) if t_kind == "int32" else ())
    if refusable:
        right_or_refused(solve, refusable, check)
    else:
        check(solve())


def test_adaptive_method_refuses_a_fixed_step_size():
    """diffrax test/test_integrate.py test_basic, its Tsit5 + ConstantStepSize cases: minode
    refuses step_size for an adaptive method, naming it."""
    with pytest.raises(ValueError, match=r"^step_size must be None for the adaptive method"):
        minode.odeint(decay, numpy.ones(3, numpy.float32), [0.0, 1.0], method="tsit5",
                      step_size=0.01)


# diffrax's solver.order(term) for each method.
ODE_ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "bosh3": 3, "dopri5": 5, "tsit5": 5}


def fixed_step_solution_at_end(method, problem, step_size):
    """y(t_end) by ``method`` at a fixed step: through odeint for the fixed-step methods, through
    the engine for adaptive tableaux (odeint refuses a step_size for them)."""
    def rhs(y, t, params=None):
        return ops.matmul(problem.matrix, y)
    times = [0.0, problem.t_end]
    if method in FIXED_STEP_METHODS:
        return minode.odeint(rhs, problem.y0, times, method=method, step_size=step_size,
                             max_steps=2 ** 20)[-1]
    options = SolveOptions(TABLEAUX[method], step_size=step_size, max_steps=2 ** 20)
    outputs, _ = integrate(rhs, problem.y0, times, options, Counts())
    return outputs[-1]


@pytest.mark.parametrize("method", tuple(ODE_ORDERS))
def test_fixed_step_convergence_order_matches_the_method_order(method):
    """diffrax test/test_integrate.py test_ode_order: dy/dt = A y, A ~ 0.5 N(0, 1) (10 x 10),
    over [0, 4] at dt0 = 2^e for e in 0, -1, -2, -3, -4, -6, -8, -12 (stopping once the error
    sum |y(4) - expm(4A) y0| is below 2^-28); the least-squares slope of log2(error) against e
    is within 0.9 of the order."""
    problem = order_problem()
    exponents, log_errors = [], []
    for exponent in (0, -1, -2, -3, -4, -6, -8, -12):
        y_end = fixed_step_solution_at_end(method, problem, 2.0 ** exponent)
        error = float(numpy.sum(numpy.abs(y_end - problem.y_end)))
        if error < 2.0 ** -28:
            break
        exponents.append(exponent)
        log_errors.append(math.log2(error))
    order = scipy.stats.linregress(exponents, log_errors).slope
    assert -0.9 < order - ODE_ORDERS[method] < 0.9, (exponents, log_errors)


REVERSE_SOLVES = {"euler": {"method": "euler", "step_size": 0.3},
                  "tsit5": {"method": "tsit5", "rtol": 1e-3, "atol": 1e-6}}
# SaveAt(t0=True) and SaveAt(t1=True) read the ends of one solve; SaveAt(ts=[3.5, 0.7]) adds
# two interior times.
REVERSE_GRIDS = {"t0_t1": [4.0, 0.3], "ts": [4.0, 3.5, 0.7, 0.3]}


@pytest.mark.parametrize("saveat", tuple(REVERSE_GRIDS))
@pytest.mark.parametrize("solver", tuple(REVERSE_SOLVES))
def test_backwards_decay_equals_forwards_growth_in_mirrored_time(solver, saveat):
    """diffrax test/test_integrate.py test_reverse_time: dy/dt = -y from t = 4 down to 0.3
    equals dy/dt = y from -4 up to -0.3 at the mirrored times (y0 ~ N(0, 1), shape (2, 2),
    float64), Euler at |dt0| = 0.3 (which does not divide the interval) or Tsit5 with
    PIDController(rtol=1e-3, atol=1e-6); rtol 1e-5, atol 1e-8."""
    y0 = numpy.random.default_rng(0).normal(size=(2, 2))
    times = numpy.array(REVERSE_GRIDS[saveat])
    backwards = minode.odeint(decay, y0, times, **REVERSE_SOLVES[solver])
    forwards = minode.odeint(growth, y0, -times, **REVERSE_SOLVES[solver])
    numpy.testing.assert_allclose(backwards, forwards, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("error_type", (ValueError, TypeError))
def test_errors_raised_by_func_reach_the_caller_unchanged(error_type):
    """diffrax test/test_integrate.py test_nice_errors: a vector field that raises ValueError
    or TypeError("Oh no!") under Euler makes the solve raise the same type and message."""
    def broken(y, t, params):
        raise error_type("Oh no!")
    with pytest.raises(error_type, match="^Oh no!$"):
        minode.odeint(broken, numpy.zeros(1), [0.0, 1.0], method="euler", step_size=0.1)


@pytest.mark.parametrize("first_step", (1e-3, None))
def test_zero_field_over_a_short_span_returns_the_zero_state(first_step):
    """diffrax test/test_integrate.py test_no_jit and test_static: dy/dt = 0 from y0 = [0] over
    [0, 1e-2], PIDController(rtol=1e-5, atol=1e-5), dt0 = 1e-3 (and here also minode's own first
    step); the solve completes and y stays exactly 0. (test_no_jit uses Kvaerno4, implicit;
    test_static's Tsit5 is used for both.)"""
    ys = minode.odeint(lambda y, t, params: 0.0 * y, numpy.zeros(1), [0.0, 1e-2],
                       method="tsit5", rtol=1e-5, atol=1e-5, first_step=first_step)
    assert numpy.array_equal(ys, numpy.zeros((2, 1)))


def test_repeated_save_times_at_t0_equal_t1_return_y0_or_are_refused():
    """diffrax test/test_saveat_solution.py test_t0_eq_t1: t0 = t1 = 1 with ts = [1, 1, 1],
    dy/dt = y, Dopri5 at dt0 = 0.1; every saved value equals y0 = [2]. minode may instead
    refuse repeated times, naming t."""
    y0 = numpy.array([2.0])

    def check(ys):
        assert numpy.array_equal(ys, numpy.full((3, 1), 2.0))
    right_or_refused(lambda: minode.odeint(growth, y0, numpy.linspace(1.0, 1.0, 3),
                                           method="dopri5", first_step=0.1), ("t",), check)


def test_zero_length_span_returns_y0_or_is_refused():
    """diffrax test/test_saveat_solution.py test_trivial_dense: t0 = t1 = 2, dy/dt = -0.5 y,
    y0 = [2.1], Dopri5 with PIDController(rtol=atol=1e-8); the solution at 2 is y0. minode may
    instead refuse the empty span, naming t."""
    def check(ys):
        numpy.testing.assert_allclose(ys[-1], [2.1], rtol=1e-5, atol=1e-8)
    right_or_refused(lambda: minode.odeint(lambda y, t, params: -0.5 * y, numpy.array([2.1]),
                                           [2.0, 2.0], method="dopri5", rtol=1e-8, atol=1e-8),
                     ("t",), check)


# ---------------------------------------------------------------------------------------------
# test/test_adjoint.py
# ---------------------------------------------------------------------------------------------

AGAINST_SOLVE = {"method": "tsit5", "rtol": 1e-8, "atol": 1e-8}
AGAINST_TS = (None, [0.3], [2.0], [9.5], [1.0, 7.0], [0.3, 7.0, 9.5])


def against_times(ts):
    """minode's t for SaveAt(ts=ts): the sorted distinct save times, always from 0.3 to 9.5."""
    return sorted({*AGAINST_SPAN, *(ts or [])})


def against_counts(save_t0, save_t1, ts):
    """How often SaveAt(t0=save_t0, t1=save_t1, ts=ts) saves each entry of `against_times`,
    shaped to weight the solution: diffrax test_against's loss is sum(counts * ys)."""
    times = against_times(ts)
    counts = numpy.zeros((len(times), 1))
    counts[0] += save_t0
    counts[-1] += save_t1
    for t in ts or []:
        counts[times.index(t)] += 1
    return counts


def against_solve(ts, func, grad_mode):
    """``(y0, params) -> ys`` of diffrax test_against's ``_run``: the field from y0 over
    [0.3, 9.5], Tsit5 with PIDController(rtol=atol=1e-8), output at `against_times`."""
    def solve(y0, params):
        return minode.odeint(func, y0, numpy.array(against_times(ts)), params, grad=grad_mode,
                             **AGAINST_SOLVE)
    return solve


@pytest.mark.parametrize("ts", AGAINST_TS, ids=str)
def test_adjoint_backprop_and_finite_differences_agree_for_every_saveat(ts):
    """diffrax test/test_adjoint.py test_against (float arguments), for SaveAt(t0, t1, ts) with
    every t0, t1 in (True, False) (not both False without ts): the two-parameter linear field
    from y0 = [0.9, 5.4] over [0.3, 9.5], Tsit5 with PIDController(rtol=atol=1e-8), the loss
    the sum of the saved values; d/dy0 by backprop matches central differences (rtol 1e-5,
    atol 1e-8), and the adjoint's gradients w.r.t. y0 and the two float parameters match
    backprop (rtol 1e-5, atol 1e-5). The integer coefficients are closed over (diffrax's
    static partition). One traced solve per mode serves every (t0, t1): each loss's gradient
    is the solve's vector-Jacobian product with its counts."""
    func = against_field(args_nondiff=-1, field_nondiff=1)
    arguments = (AGAINST_Y0, AGAINST_FLOAT_PARAMS)
    backprop_vjp, ys = make_vjp(against_solve(ts, func, "backprop"), (0, 1))(*arguments)
    adjoint_vjp, _ = make_vjp(against_solve(ts, func, "adjoint"), (0, 1))(*arguments)
    for save_t0 in (True, False):
        for save_t1 in (True, False):
            if not (save_t0 or save_t1 or ts is not None):
                continue
            counts = against_counts(save_t0, save_t1, ts)
            cotangent = numpy.broadcast_to(counts, ys.shape)
            backprop, adjoint = backprop_vjp(cotangent), adjoint_vjp(cotangent)
            by_differences = numerical_grad(lambda y0: numpy.sum(
                counts * against_solve(ts, func, "backprop")(y0, AGAINST_FLOAT_PARAMS)),
                AGAINST_Y0)
            numpy.testing.assert_allclose(backprop[0], by_differences, rtol=1e-5, atol=1e-8)
            numpy.testing.assert_allclose(adjoint[0], backprop[0], rtol=1e-5, atol=1e-5)
            for name in AGAINST_FLOAT_PARAMS:
                numpy.testing.assert_allclose(adjoint[1][name], backprop[1][name], rtol=1e-5,
                                              atol=1e-5)


def against_loss(saveat, func, grad_mode):
    """diffrax test_against's ``_run`` for SaveAt(*saveat): ``(y0, params) -> sum(counts *
    ys)``."""
    counts = against_counts(*saveat)
    solve = against_solve(saveat[2], func, grad_mode)
    return lambda y0, params: ops.sum(counts * solve(y0, params))


@pytest.mark.parametrize("grad_mode", ("backprop", "adjoint"))
def test_integer_parameters_are_constants_or_refused(grad_mode):
    """diffrax test/test_adjoint.py test_against, its ``jax.grad(allow_int=True)`` runs: with
    the integer coefficients (-1, 1) inside params, differentiating w.r.t. y0 and params gives
    the float parameters' and y0's gradients of the closed-over run (rtol 1e-5, atol 1e-5), or
    is refused by an error naming params. One SaveAt, (t0, t1, ts=[1, 7])."""
    saveat = (True, True, [1.0, 7.0])
    reference = grad(against_loss(saveat, against_field(-1, 1), grad_mode), (0, 1))(
        AGAINST_Y0, AGAINST_FLOAT_PARAMS)
    params = {**AGAINST_FLOAT_PARAMS, **AGAINST_INT_PARAMS}

    def check(gradients):
        numpy.testing.assert_allclose(gradients[0], reference[0], rtol=1e-5, atol=1e-5)
        for name in AGAINST_FLOAT_PARAMS:
            numpy.testing.assert_allclose(gradients[1][name], reference[1][name], rtol=1e-5,
                                          atol=1e-5)
    right_or_refused(
        lambda: grad(against_loss(saveat, against_field(), grad_mode), (0, 1))(AGAINST_Y0,
                                                                               params),
        ("params",), check)


def test_adjoint_with_seminorm_gives_the_decay_gradient():
    """diffrax test/test_adjoint.py test_adjoint_seminorm: dy/dt = -y from y0 = 2 over [0, 1],
    Tsit5 with PIDController(rtol=1e-3, atol=1e-6) forward and backward, the backward error
    measured by the seminorm; d y(1) / d y0 is computed. diffrax only checks that it runs;
    here it must also be e^-1 to the solve's rtol, 1e-3 relative."""
    def y_end(y0):
        return minode.odeint(decay, y0, [0.0, 1.0], method="tsit5", rtol=1e-3, atol=1e-6,
                             grad="adjoint", seminorm=True)[-1, 0]
    assert abs(grad(y_end)(numpy.array([2.0]))[0] - math.exp(-1)) < 1e-3 * math.exp(-1)


def mlp_end_value(params, closure):
    """diffrax test_closure_*'s ``run``: the 1-8-8-1 ReLU MLP as the vector field from y0 = [1]
    over [0, 1], Euler at dt0 = 0.1, BacksolveAdjoint (grad="adjoint"); the sum of y(1). With
    ``closure`` the field reads the parameters from its enclosing scope, not from params."""
    if closure:
        def func(y, t, unused):
            return relu_mlp_field(y, t, params)
        ys = minode.odeint(func, numpy.array([1.0]), [0.0, 1.0], method="euler",
                           step_size=0.1, grad="adjoint")
    else:
        ys = minode.odeint(relu_mlp_field, numpy.array([1.0]), [0.0, 1.0], params,
                           method="euler", step_size=0.1, grad="adjoint")
    return ops.sum(ys[-1])


def test_closure_over_traced_parameters_gives_a_right_gradient_or_is_refused():
    """diffrax test/test_adjoint.py test_closure_errors: the vector field closes over the
    parameters being differentiated, under the adjoint. diffrax raises; minode must either
    refuse (an error naming params) or give a right gradient: the one it gives with the
    parameters passed as params (relative 1e-10), or the exact derivative of the Euler
    solution (central differences, check_grads' rtol 1e-5, atol 1e-8), never a silently
    dropped or partial one."""
    params = relu_mlp_params()
    through_params = grad(mlp_end_value)(params, False)

    def check(gradient):
        if relative_error(gradient, through_params) > 1e-10:
            check_grads(lambda p: mlp_end_value(p, True), params)
    right_or_refused(lambda: grad(mlp_end_value)(params, True), ("params",), check)


def test_parameters_passed_through_params_get_the_adjoint_gradient():
    """diffrax test/test_adjoint.py test_closure_fixed: the same run with the MLP given to the
    solve as part of the vector field (minode: as params) works. diffrax only checks that it
    runs; here the adjoint gradient must also match the gradient of the exact flow (dopri5
    at rtol = atol = 1e-10) to Euler's first order: within h = 0.1 relative, entry by entry
    above 1e-6 of the largest."""
    params = relu_mlp_params()

    def exact_end_value(params):
        ys = minode.odeint(relu_mlp_field, numpy.array([1.0]), [0.0, 1.0], params,
                           method="dopri5", rtol=1e-10, atol=1e-10)
        return ops.sum(ys[-1])
    exact = grad(exact_end_value)(params)
    assert relative_error(grad(mlp_end_value)(params, False), exact) < 0.1


def test_backprop_through_euler_with_output_times_off_the_step_grid():
    """diffrax test/test_adjoint.py test_backprop_ts: the 1-8-8-1 ReLU MLP from y0 = [1], Euler
    at dt0 = 0.1, saved at ts = linspace(0, 1, 5) (not multiples of 0.1), backprop; the loss is
    the sum of the saved values. diffrax only checks that it runs; here the gradient must also
    match central differences (check_grads' rtol 1e-5, atol 1e-8). minode splits each interval
    of 0.25 into 3 equal steps, where diffrax steps by 0.1 and interpolates."""
    def saved_sum(params):
        ys = minode.odeint(relu_mlp_field, numpy.array([1.0]), numpy.linspace(0.0, 1.0, 5),
                           params, method="euler", step_size=0.1, grad="backprop")
        return ops.sum(ys)
    check_grads(saved_sum, relu_mlp_params())
