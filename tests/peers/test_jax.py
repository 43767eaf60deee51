"""JAX's odeint tests (jax-ml/jax, tests/ode_test.py) re-expressed in minode's API.

Each test names the JAX test it ports. JAX's problems, inputs and bounds are kept: its odeint
defaults (dopri5, rtol = atol = 1.4e-8) as the solve, its comparison with
``scipy.integrate.odeint`` at tol, and its ``check_grads(..., modes=["rev"], order=2,
atol=tol, rtol=tol)`` as `minode.gradcheck.check_grads` to order 2 in both gradient modes.
JAX runs these tests in float64 (tol = 1e-3) and, by default, in float32 (tol = 1e-1, central
differences with JAX's step 1e-4); so do these, float32 derivatives compared with float64
central differences (minode's check_grads refuses float32 inputs). JAX checks a
vector-valued odeint by contracting it with a random cotangent; here the scalar is that
contraction, sum(w * ys) with a fixed random w, and every entry of the gradient (and of the
Hessian-vector product) is compared with central differences, not only a random projection.
JAX's closure tests expect the right gradient; minode's adjoint refuses a closure over a
differentiated value (it cannot see it) with an error naming params, and backprop gives the
right gradient: these ports check that.

Known differences (not ported):
- test_pytree_state: y0 a tuple of arrays; minode's state is one array.
- test_odeint_vmap_grad, test_disable_jit_odeint_with_vmap, test_grad_closure_with_vmap:
  jax.vmap / jax.jit / jax.disable_jit; their problems are ported here with a batch of states
  (minode's analogue of vmap) in place of vmap.
- test_forward_mode_error: forward mode (jax.jacfwd); minode defines reverse-mode VJPs only.
- test_complex_odeint: complex states; minode states are real floating point.
- test_hmax: the hmax option (a largest step); minode's odeint has no maximum step size.
"""
import numpy
import pytest
import scipy.integrate
from autograd import grad
from numpy.testing import assert_allclose

import minode
from minode import ops
from minode.gradcheck import check_grads, numerical_grad
from minode.tree import flatten, tree_leaves, tree_map

MODES = ("adjoint", "backprop")
JAX_DEFAULTS = dict(method="dopri5", rtol=1.4e-8, atol=1.4e-8)  # jax.experimental.ode.odeint
DTYPES = ("float64", "float32")
TOL = {"float64": 1e-3, "float32": 1e-1}  # ode_test.py's tol
EPS = 1e-6  # minode's central-difference step in float64 (JAX's is 1e-4)
# JAX's default gradient tolerance (jax._src.public_test_util.default_gradient_tolerance)
GRADIENT_TOL = {"float64": 1e-5, "float32": 2e-3}


def solve(func, y0, ts, params, grad_mode="adjoint"):
    return minode.odeint(func, y0, ts, params, grad=grad_mode, **JAX_DEFAULTS)


def as_dtype(dtype, *arrays):
    """The arrays (or tuples of arrays, or None) converted to ``dtype``."""
    def convert(x):
        if x is None:
            return None
        if isinstance(x, tuple):
            return tuple(convert(item) for item in x)
        return numpy.asarray(x, dtype=dtype)
    return tuple(convert(x) for x in arrays)


def check_against_scipy(func, y0, ts, params):
    """ode_test.py's check_against_scipy: minode's solution matches scipy.integrate.odeint
    (LSODA at its default tolerances, in float64) to atol = rtol = tol."""
    reference = scipy.integrate.odeint(lambda y, t: func(y, t, params), y0, ts)
    tol = TOL[y0.dtype.name]
    assert_allclose(solve(func, y0, ts, params), reference, atol=tol, rtol=tol)


def check_odeint_grads(func, y0, ts, params, grad_mode):
    """ode_test.py's jtu.check_grads(integrate, (y0, ts, *args), modes=["rev"], order=2,
    atol=tol, rtol=tol): first and second derivatives w.r.t. y0, every time and params."""
    dtype = y0.dtype.name
    cotangent = numpy.random.default_rng(0).standard_normal((len(ts),) + y0.shape).astype(dtype)

    def contracted(y0, ts, *maybe_params):
        params = maybe_params[0] if maybe_params else None
        return ops.sum(cotangent * solve(func, y0, ts, params, grad_mode))
    arguments = (y0, ts) if params is None else (y0, ts, params)
    check_grads_of_dtype(contracted, arguments, order=2, tol=TOL[dtype])


def check_grads_of_dtype(fun, arguments, order, tol):
    """`minode.gradcheck.check_grads` at ``tol`` for float64 ``arguments``. minode's
    check_grads refuses float32 (its rounding, divided by the step, swamps a central
    difference), so float32 derivatives by autograd, up to ``order``, are compared with central
    differences of the same function in float64, to the same ``tol``: stricter than JAX's
    float32 differences with h = 1e-4."""
    if tree_leaves(arguments)[0].dtype == numpy.float64:
        check_grads(fun, *arguments, order=order, atol=tol, rtol=tol, eps=EPS)
        return
    as_float64 = tree_map(lambda leaf: leaf.astype(numpy.float64), arguments)
    argnums = tuple(range(len(arguments)))
    rng = numpy.random.default_rng(0)
    for level in range(1, order + 1):
        analytic = grad(fun, argnums)(*arguments)
        numerical = numerical_grad(lambda packed, fun=fun: fun(*packed), as_float64)
        assert_allclose(flatten(tuple(analytic))[0], flatten(numerical)[0], atol=tol,
                        rtol=tol, err_msg=f"order {level}")
        direction = tree_map(lambda leaf: rng.standard_normal(leaf.shape), arguments)
        fun = directional_derivative(fun, argnums, direction)


def directional_derivative(fun, argnums, direction):
    """``(*args) -> <grad fun(*args), direction>``, a scalar autograd differentiates again."""
    def along(*args):
        return ops.sum(flatten(tuple(grad(fun, argnums)(*args)))[0] * flatten(direction)[0])
    return along


def pend(y, t, params):
    """The damped pendulum theta'' = -m theta' - g sin(theta), params (m, g)."""
    m, g = params
    theta, omega = y[0], y[1]
    return ops.stack([omega, -m * omega - g * ops.sin(theta)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad_mode", MODES)
def test_pendulum_solution_and_second_order_gradients(grad_mode, dtype):
    """Port of ode_test.py::ODETest::test_pend_grads."""
    y0, ts, params = as_dtype(dtype, [numpy.pi - 0.1, 0.0], numpy.linspace(0.0, 1.0, 11),
                              (0.25, 9.8))
    check_against_scipy(pend, y0, ts, params)
    check_odeint_grads(pend, y0, ts, params, grad_mode)


def weird_time_pendulum(y, t, params):
    """A pendulum whose first component's rate is scaled by -t: the dynamics depend on t."""
    return ops.stack([y[1] * -t, -1 * y[1] - 9.8 * ops.sin(y[0])])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad_mode", MODES)
def test_time_dependent_pendulum_second_order_gradients(grad_mode, dtype):
    """Port of ode_test.py::ODETest::test_weird_time_pendulum_grads (gradients are right
    when the dynamics depend on t)."""
    y0, ts = as_dtype(dtype, [numpy.pi - 0.1, 0.0], numpy.linspace(0.0, 1.0, 11))
    check_against_scipy(weird_time_pendulum, y0, ts, None)
    check_odeint_grads(weird_time_pendulum, y0, ts, None, grad_mode)


def decay(y, t, params):
    """-sqrt(t) - y + arg1 - mean((y + arg2)^2), params (arg1, arg2)."""
    arg1, arg2 = params
    return -ops.sqrt(t) - y + arg1 - ops.mean((y + arg2) ** 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad_mode", MODES)
def test_decay_second_order_gradients(grad_mode, dtype):
    """Port of ode_test.py::ODETest::test_decay."""
    rng = numpy.random.default_rng(1)
    params, y0, ts = as_dtype(dtype, (rng.standard_normal(3), rng.standard_normal(3)),
                              rng.standard_normal(3), numpy.linspace(0.1, 0.2, 4))
    check_against_scipy(decay, y0, ts, params)
    check_odeint_grads(decay, y0, ts, params, grad_mode)


def swoop(y, t, params):
    """y - sin(t) - cos(t) arg1 + arg2, params (arg1, arg2)."""
    arg1, arg2 = params
    return y - ops.sin(t) - ops.cos(t) * arg1 + arg2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad_mode", MODES)
@pytest.mark.parametrize("y0, params", [
    (numpy.linspace(0.1, 0.9, 10), (0.1, 0.2)),  # test_swoop
    (numpy.linspace(1.1, 10.9, 10), (0.1, 0.3)),  # test_swoop_bigger
], ids=["swoop", "swoop_bigger"])
def test_swoop_second_order_gradients(y0, params, grad_mode, dtype):
    """Port of ode_test.py::ODETest::test_swoop and test_swoop_bigger."""
    y0, ts, params = as_dtype(dtype, y0, [0.1, 0.2], params)
    check_against_scipy(swoop, y0, ts, params)
    check_odeint_grads(swoop, y0, ts, params, grad_mode)


def closure_experiment(grad_mode, x_in_y0=False):
    """ode_test.py's experiment(x): y(9.9) of y' = -x y, y(0) = 1, on t = 0, 0.1, ..., 9.9,
    where the dynamics close over x instead of receiving it as params. With ``x_in_y0`` the
    initial state is x instead of 1, so that x reaches the solve both ways."""
    def experiment(x):
        def model(y, t, params):
            return -x * y
        y0 = ops.stack([x]) if x_in_y0 else numpy.ones(1, dtype=x.dtype)
        ts = numpy.arange(0.0, 10.0, 0.1).astype(x.dtype)
        return minode.odeint(model, y0, ts, grad=grad_mode, **JAX_DEFAULTS)[-1, 0]
    return experiment


REFUSED_CLOSURE = r"not passed through params .*grad='adjoint'"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad_mode", MODES)
def test_gradient_through_a_value_the_dynamics_close_over(grad_mode, dtype):
    """Port of ode_test.py::ODETest::test_grad_closure (jax issue 2718): ``model`` closes over
    the differentiated x instead of receiving it as params. Right or refused: backprop traces
    the closure and the gradient must be right (JAX's check_grads order 1 at JAX's default
    gradient tolerance of the dtype); the adjoint cannot see x and must refuse, naming params."""
    experiment, x = closure_experiment(grad_mode), numpy.array(0.01, dtype=dtype)
    if grad_mode == "adjoint":
        with pytest.raises(ValueError, match=REFUSED_CLOSURE):
            grad(experiment)(x)
        return
    check_grads_of_dtype(experiment, (x,), order=1, tol=GRADIENT_TOL[dtype])


@pytest.mark.parametrize("grad_mode", MODES)
def test_gradient_through_a_value_both_closed_over_and_in_y0(grad_mode):
    """ode_test.py::ODETest::test_grad_closure with x also as the initial state: x reaches
    the solve through y0 (an argument the adjoint differentiates) and through the closure
    (one it cannot see). Backprop must match central differences to 1e-5; the adjoint must
    refuse rather than return the y0 part alone."""
    experiment, x = closure_experiment(grad_mode, x_in_y0=True), numpy.array(0.01)
    if grad_mode == "adjoint":
        with pytest.raises(ValueError, match=REFUSED_CLOSURE):
            grad(experiment)(x)
        return
    check_grads(experiment, x, atol=GRADIENT_TOL["float64"], rtol=GRADIENT_TOL["float64"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad_mode", MODES)
def test_value_and_gradient_through_a_closure_match_finite_differences(grad_mode, dtype):
    """Port of ode_test.py::ODETest::test_grad_closure_with_vmap (jax issue 2718) without
    jit/vmap: at x = 0.11 (the batch entry JAX inspects) the value of the closure experiment
    matches exp(-9.9 x) (JAX: the un-vmapped value) and its gradient a central difference with
    h = 5e-6, both to 1e-2; the adjoint refuses the closure, naming params."""
    experiment = closure_experiment(grad_mode)
    x = numpy.arange(0.0, 1.0, 0.01, dtype=dtype)[11]
    h = numpy.asarray(5e-6, dtype=dtype)
    assert_allclose(experiment(x), numpy.exp(-9.9 * x), atol=1e-2, rtol=1e-2)
    if grad_mode == "adjoint":
        with pytest.raises(ValueError, match=REFUSED_CLOSURE):
            grad(experiment)(x)
        return
    expected_gradient = (experiment(x + h) - experiment(x - h)) / 1e-5
    assert_allclose(grad(experiment)(x), expected_gradient, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("grad_mode", MODES)
def test_gradient_of_a_field_that_rebuilds_its_state(grad_mode):
    """Port of ode_test.py::ODETest::test_closure_nondiff (jax issue 3584), which only checks
    that the gradient does not crash. Here it is checked against central differences at
    JAX's float64 default gradient tolerance 1e-5: y' = stack([y[0], y[1]]) = y."""
    def field(z, t, params):
        return ops.stack([z[0], z[1]])

    def total(z):
        return ops.sum(minode.odeint(field, z, numpy.arange(10.0), grad=grad_mode,
                                     **JAX_DEFAULTS))
    z = numpy.ones(2)
    assert_allclose(grad(total)(z), numerical_grad(total, z), atol=1e-5, rtol=1e-5)


def exponential_growth(x, t, params):
    return 0.1 * x


# test_odeint_vmap_grad's bounds: {float32: 1e-5, float64: 5e-15} (atol), 2e-15 (rtol)
VMAP_ATOL = {"float64": 5e-15, "float32": 1e-5}
VMAP_RTOL = {"float64": 2e-15, "float32": 1e-5}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad_mode", MODES)
def test_gradient_through_a_batch_is_the_sum_of_per_row_gradients(grad_mode, dtype):
    """Port of ode_test.py::ODETest::test_odeint_vmap_grad (jax issue 2531) with a batch of
    rows for vmap, at JAX's bounds. The rows are solved together, so an adaptive method would
    choose other steps than per-row solves; RK4 with a fixed step makes the batched solve the
    same arithmetic as the per-row ones."""
    options = dict(method="rk4", step_size=0.25, grad=grad_mode)
    t = numpy.array([0.0, 5.0], dtype=dtype)
    x, first, second = as_dtype(dtype, 2.0, 0.1, 0.2)

    def f(x, y):
        return ops.sum(minode.odeint(exponential_growth, ops.stack([x, y]), t, **options)[-1])

    def g(x):
        rows = ops.stack([ops.stack([x, first]), ops.stack([x, second])])
        return ops.sum(minode.odeint(exponential_growth, rows, t, **options)[-1])
    expected = grad(f)(x, first) + grad(f)(x, second)
    assert_allclose(grad(g)(x), expected, atol=VMAP_ATOL[dtype], rtol=VMAP_RTOL[dtype])


def test_a_batch_of_zero_states_of_a_linear_field_stays_zero():
    """Port of ode_test.py::ODETest::test_disable_jit_odeint_with_vmap (jax issue 2598), which
    checks that vmap over zero initial states of y' = y does not crash; the batch of five
    zero states is solved together and its exact solution is zero."""
    ys = solve(lambda y, t, params: y, numpy.zeros((5, 2)), numpy.array([0.0, 1.0]), None)
    assert ys.shape == (2, 5, 2) and not ys.any()
