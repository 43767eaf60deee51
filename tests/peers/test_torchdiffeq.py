"""torchdiffeq's test suite (rtqichen/torchdiffeq, tests/ at 657943a) in minode's API.

Each test names the torchdiffeq file and test it ports; the problems are torchdiffeq's
(`problems.torchdiffeq_problem`), the bounds are torchdiffeq's. Method names map one to one
(euler, midpoint, rk4, bosh3, dopri5, tsit5; torchdiffeq's heun2 is minode's heun);
``torchdiffeq.odeint`` is ``grad="backprop"``, ``odeint_adjoint`` is ``grad="adjoint"``, and
``scipy_solver`` with ``options={"solver": S}`` is ``method="scipy:S"``. torchdiffeq's
fixed-grid solvers step on the output grid when given no step size; here
``step_size = t[1] - t[0]``, which minode turns into one step per interval.

Known differences (not ported):
- methods minode lacks: heun3, explicit_adams, implicit_adams, the implicit methods
  (implicit_euler, implicit_midpoint, trapezoid, radauIIA3/5, gl4/6, sdirk2, trbdf2),
  adaptive_heun, fehlberg2, dopri8.
- complex dtypes (DTYPES' complex64 entries): minode states are real floating point.
- devices (DEVICES, cuda): minode's backend is chosen globally, not per call.
- tuple states (api_tests.py TestCollectionState): minode states are one array.
- events (event_tests.py): minode has no event handling.
- jump_t and perturb options (odeint_tests.py TestDiscontinuities): no such options.
- grid_constructor (TestGridConstructor): no user step grids; its Euler case is ported with
  step_size=0.1 (`test_euler_ten_steps_of_a_tenth_match_closed_form`).
- min_step clamping and max_step (TestMinMaxStep): minode's min_step is an underflow error
  threshold, not a clamp, and there is no max_step.
- callbacks (TestCallbacks.test_wrong_callback, callback_* in test_steps): minode reports
  counts through SolverStats instead (`test_step_counts_of_forward_and_adjoint_solves`).
- custom error norms (norm_tests.py test_norm, test_adjoint_norm, test_large_norm): minode has
  the RMS norm and the seminorm only.
- differentiating a scipy solve (gradient_tests.py test_adjoint with scipy_solver, the
  scipy_solver row of test_against_dopri5): minode's explicit scipy methods are forward-only
  and say so (`test_scipy_reference_refuses_to_be_differentiated`); scipy:Radau, scipy:BDF and
  scipy:LSODA are differentiable with grad="adjoint" (tests/test_scipy_adjoint.py).
- the gradient w.r.t. parameters that torch reads from ``f.parameters()``: here the same
  parameters are passed as ``params``.
"""
import numpy
import pytest
from autograd import grad

import minode
from minode import ops
from minode.gradcheck import check_grads
from minode.tree import tree_leaves
from problems import (TORCHDIFFEQ_PROBLEMS, cubic_rotation_problem, neural_field,
                      torchdiffeq_problem)

FIXED_METHODS = ("euler", "midpoint", "heun", "rk4")
ADAPTIVE_METHODS = ("bosh3", "dopri5", "tsit5")
SCIPY_SOLVERS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")
DTYPES = ("float32", "float64")


def rel_error(true, estimate):
    """torchdiffeq's ``rel_error``: the largest |(true - estimate) / true|."""
    return float(numpy.max(numpy.abs((true - estimate) / true)))


def method_options(method, t):
    """minode's options for a torchdiffeq method run with its defaults (fixed-grid methods step
    on the output grid; adaptive ones use rtol=1e-7, atol=1e-9, minode's defaults too)."""
    if method in FIXED_METHODS:
        return {"method": method, "step_size": abs(float(t[1] - t[0]))}
    return {"method": method}


def _solver_error_cases():
    for method in FIXED_METHODS + ADAPTIVE_METHODS:
        problems = TORCHDIFFEQ_PROBLEMS if method in ADAPTIVE_METHODS else ("constant",)
        for ode in problems:
            for dtype in DTYPES:
                for reverse in (False, True):
                    yield method, ode, dtype, reverse


def _solver_error_bound(method, ode):
    if method == "bosh3":
        return 4e-3
    return {"linear": 2e-3, "exp": 5e-2}.get(ode, 3e-4)


@pytest.mark.parametrize("method,ode,dtype,reverse", list(_solver_error_cases()))
def test_solution_matches_exact_solution_within_torchdiffeq_bound(method, ode, dtype, reverse):
    """torchdiffeq tests/odeint_tests.py TestSolverError.test_odeint: every method on every
    problem it is run on there (fixed-grid methods on 'constant' only), both dtypes, forward
    and reversed time; relative error below 4e-3 (bosh3), 2e-3 (linear), 5e-2 (exp), else
    3e-4."""
    problem = torchdiffeq_problem(ode, dtype, reverse)
    ys = minode.odeint(problem.func, problem.y0, problem.t, problem.params, grad="backprop",
                       **method_options(method, problem.t))
    assert ys.dtype == numpy.dtype(dtype)
    assert rel_error(problem.ys, ys) < _solver_error_bound(method, ode)


@pytest.mark.parametrize("reverse", (False, True))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ode", TORCHDIFFEQ_PROBLEMS)
def test_adjoint_mode_solution_matches_exact_solution(ode, dtype, reverse):
    """torchdiffeq tests/odeint_tests.py TestSolverError.test_adjoint: ``odeint_adjoint`` with
    its defaults (dopri5) on every problem, both dtypes and directions; relative error below
    2e-3 (linear), else 1e-4."""
    problem = torchdiffeq_problem(ode, dtype, reverse)
    ys = minode.odeint(problem.func, problem.y0, problem.t, problem.params, grad="adjoint")
    assert rel_error(problem.ys, ys) < (2e-3 if ode == "linear" else 1e-4)


@pytest.mark.parametrize("reverse", (False, True))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ode", TORCHDIFFEQ_PROBLEMS)
@pytest.mark.parametrize("solver", SCIPY_SOLVERS)
def test_scipy_reference_matches_exact_solution(solver, ode, dtype, reverse):
    """torchdiffeq tests/odeint_tests.py TestScipySolvers.test_odeint: each SciPy solver on
    every problem, both dtypes and directions; the shape is kept and the relative error is
    below 1e-3."""
    problem = torchdiffeq_problem(ode, dtype, reverse)
    ys = minode.odeint(problem.func, problem.y0, problem.t, problem.params,
                       method=f"scipy:{solver}")
    assert ys.shape == problem.ys.shape
    assert rel_error(problem.ys, ys) < 1e-3


@pytest.mark.parametrize("method", FIXED_METHODS + ADAPTIVE_METHODS + ("scipy:RK45",))
def test_single_output_time_is_refused_naming_t(method):
    """torchdiffeq tests/odeint_tests.py TestNoIntegration.test_odeint: torchdiffeq returns y0
    for ``t = t_points[0:1]``; minode needs at least two times and says so, naming t."""
    problem = torchdiffeq_problem("constant")
    with pytest.raises(ValueError, match=r"^t must .*at least 2 times"):
        minode.odeint(problem.func, problem.y0, problem.t[0:1], problem.params,
                      **method_options(method, problem.t))


@pytest.mark.parametrize("grad_mode", ("backprop", "adjoint"))
def test_euler_ten_steps_of_a_tenth_match_closed_form(grad_mode):
    """torchdiffeq tests/odeint_tests.py TestGridConstructor.test_grid_constructor: dx/dt = x
    by Euler on the grid 0, 0.1, ..., 1 gives x1 = 1.1^10 x0, and (adjoint) dx1/dx0 = 1.1^10,
    both within 1e-6. The grid is minode's step_size=0.1 (no grid_constructor option)."""
    def x1(x0):
        xs = minode.odeint(lambda x, t, params: x, x0, numpy.array([0.0, 1.0]),
                           method="euler", step_size=0.1, grad=grad_mode)
        return xs[1, 0]
    x0 = numpy.array([1.0])
    assert abs(x1(x0) - 1.1 ** 10) < 1e-6
    assert abs(grad(x1)(x0)[0] - 1.1 ** 10) < 1e-6


@pytest.mark.parametrize("method", FIXED_METHODS + ADAPTIVE_METHODS)
def test_step_counts_of_forward_and_adjoint_solves(method):
    """torchdiffeq tests/odeint_tests.py TestCallbacks.test_steps: on the width-10 ``_NeuralF``
    from x0 = [1, 2] over [0, 1], a fixed step of 0.1 takes exactly 10 steps forward and 10
    backward (the adjoint); an adaptive solve takes at least one step each way. The step
    callbacks are minode's SolverStats counts."""
    func, params = neural_field(width=10)
    stats = minode.SolverStats()
    options = {"method": method}
    if method in FIXED_METHODS:
        options["step_size"] = 0.1

    def loss(x0):
        return ops.sum(minode.odeint(func, x0, numpy.array([0.0, 1.0]), params, stats=stats,
                                     grad="adjoint", **options))
    grad(loss)(numpy.array([1.0, 2.0]))
    if method in FIXED_METHODS:
        assert (stats.forward.steps, stats.backward.steps) == (10, 10)
    else:
        assert stats.forward.steps > 0 and stats.backward.steps > 0


def check_jacobian_of_solution(method, grad_mode):
    """torch.autograd.gradcheck of ``odeint(f, y0, t)`` w.r.t. (y0, t) on torchdiffeq's default
    problem ('constant', float64): every entry of the Jacobian of the solution against central
    differences (eps 1e-6), passing when |autograd - numerical| <= 1e-5 + 1e-3 |numerical|
    (gradcheck's defaults)."""
    problem = torchdiffeq_problem("constant")
    options = method_options(method, problem.t)
    for index in range(len(problem.t)):
        def solution_entry(y0, t):
            ys = minode.odeint(problem.func, y0, t, problem.params, grad=grad_mode, **options)
            return ys[index, 0]
        check_grads(solution_entry, problem.y0, problem.t, rtol=1e-3, atol=1e-5, eps=1e-6)


@pytest.mark.parametrize("method", FIXED_METHODS + ADAPTIVE_METHODS)
def test_backprop_jacobian_matches_central_differences(method):
    """torchdiffeq tests/gradient_tests.py TestGradient.test_odeint (see
    `check_jacobian_of_solution`)."""
    check_jacobian_of_solution(method, "backprop")


@pytest.mark.parametrize("method", FIXED_METHODS + ADAPTIVE_METHODS)
def test_adjoint_jacobian_matches_central_differences(method):
    """torchdiffeq tests/gradient_tests.py TestGradient.test_adjoint (see
    `check_jacobian_of_solution`)."""
    check_jacobian_of_solution(method, "adjoint")


def test_scipy_reference_refuses_to_be_differentiated():
    """torchdiffeq tests/gradient_tests.py TestGradient.test_adjoint, its scipy_solver case:
    torchdiffeq differentiates through a SciPy solve; minode's explicit scipy methods are
    forward-only and refuse, naming the method."""
    problem = torchdiffeq_problem("constant")

    def final_value(y0):
        return minode.odeint(problem.func, y0, problem.t, problem.params,
                             method="scipy:RK45", grad="adjoint")[-1, 0]
    with pytest.raises(ValueError, match=r"'scipy:RK45' is forward-only"):
        grad(final_value)(problem.y0)


ADJOINT_AGAINST_ODEINT_BOUND = {"constant": 1e-12, "linear": 1e-5, "sine": 5e-3, "exp": 1e-2}


@pytest.mark.parametrize("t_grad", (True, False))
@pytest.mark.parametrize("ode", TORCHDIFFEQ_PROBLEMS)
def test_adjoint_gradient_matches_backprop_at_tight_tolerance(ode, t_grad):
    """torchdiffeq tests/gradient_tests.py TestGradient.test_adjoint_against_odeint: dopri5 at
    rtol=1e-9, atol=1e-12, the loss sum(g * ys) for g ~ U[0, 1); the gradients w.r.t. y0, the
    parameters and (t_grad) t from the adjoint and from backprop differ by at most 1e-12
    (constant), 1e-5 (linear), 5e-3 (sine), 1e-2 (exp), entry by entry."""
    problem = torchdiffeq_problem(ode)
    weights = numpy.random.default_rng(0).uniform(size=problem.ys.shape)
    argnums = (0, 1) if t_grad else (0,)
    if problem.params is not None:
        argnums += (2,)

    def gradients(grad_mode):
        def loss(y0, t, params):
            ys = minode.odeint(problem.func, y0, t, params, rtol=1e-9, atol=1e-12,
                               grad=grad_mode)
            return ops.sum(weights * ys)
        return grad(loss, argnums)(problem.y0, problem.t, problem.params)

    bound = ADJOINT_AGAINST_ODEINT_BOUND[ode]
    for backprop, adjoint in zip(gradients("backprop"), gradients("adjoint")):
        backprop_leaves = tree_leaves(backprop)
        for b, a in zip(backprop_leaves, tree_leaves(adjoint)):
            assert numpy.max(numpy.abs(b - a)) < bound


@pytest.mark.parametrize("t_grad", (True, False))
def test_adjoint_gradient_matches_backprop_on_cubic_rotation(t_grad):
    """torchdiffeq tests/gradient_tests.py TestCompareAdjointGradient.test_against_dopri5
    (dopri5 row): dy/dt = y^3 A over [0, 25] at the default tolerances, the loss sum(g * ys)
    for g ~ 0.1 U[0, 1); adjoint and backprop gradients differ by less than 3e-4 (y0), 1e-4 (t)
    and 2e-3 (A), and the adjoint gives exactly zero for the parameters func never reads."""
    func, y0, t, params = cubic_rotation_problem()
    weights = 0.1 * numpy.random.default_rng(0).uniform(size=(len(t),) + y0.shape)
    argnums = (0, 1, 2) if t_grad else (0, 2)

    def gradients(grad_mode):
        def loss(y0, t, params):
            return ops.sum(weights * minode.odeint(func, y0, t, params, grad=grad_mode))
        return dict(zip(argnums, grad(loss, argnums)(y0, t, params)))

    adjoint, backprop = gradients("adjoint"), gradients("backprop")
    for leaf in tree_leaves(adjoint[2]["unused"]):
        assert numpy.max(numpy.abs(leaf)) == 0
    assert numpy.max(numpy.abs(backprop[0] - adjoint[0])) < 3e-4
    if t_grad:
        assert numpy.max(numpy.abs(backprop[1] - adjoint[1])) < 1e-4
    assert numpy.max(numpy.abs(backprop[2]["A"] - adjoint[2]["A"])) < 2e-3


def _seminorm_cases():
    for method in ADAPTIVE_METHODS:
        for dtype in DTYPES:
            if (method, dtype) != ("tsit5", "float32"):  # skipped in torchdiffeq too
                yield method, dtype


@pytest.mark.parametrize("method,dtype", list(_seminorm_cases()))
def test_seminorm_backward_solve_takes_no_more_evaluations(method, dtype):
    """torchdiffeq tests/norm_tests.py TestNorms.test_seminorm: the width-1024 ``_NeuralF``
    oscillating as sin(2t), x0 = [1, 2] over [0, 1], rtol = atol = 1e-8 (float64) or 1e-6
    (float32); the adjoint's backward solve with the seminorm makes at most as many function
    evaluations as with the full norm."""
    func, params = neural_field(width=1024, oscillate=True, frequency=2.0, dtype=dtype)
    tol = 1e-8 if dtype == "float64" else 1e-6

    def backward_evaluations(seminorm):
        stats = minode.SolverStats()

        def loss(params):
            xs = minode.odeint(func, numpy.array([1.0, 2.0], dtype), numpy.array([0.0, 1.0]),
                               params, method=method, rtol=tol, atol=tol, stats=stats,
                               seminorm=seminorm)
            return ops.sum(xs)
        grad(loss)(params)
        return stats.backward.nfe

    assert backward_evaluations(True) <= backward_evaluations(False)
