"""Derivatives of every order through odeint (the paper's Appendix D): the adjoint's backward
pass is itself an adjoint solve, so autograd differentiates it again; backprop through the
solver is differentiated step by step. Both gradient modes, fixed-step and adaptive, float64.

Closed forms: the Hessian of |y(T)|^2 for y' = A y w.r.t. y0 and w.r.t. the time grid, the
third derivative of y0 exp(-k T) in k. Otherwise central differences of the gradient (h = 1e-6:
about 1e-9 relative error where the solve itself is accurate to about 1e-10). Bounds that are
looser than that come from the method and are stated (with the measured errors) where they
are used.
"""
import numpy
import pytest
import scipy.linalg
from autograd import grad, test_util
from numpy.testing import assert_allclose

import minode
import strict_backend as strict
from minode import backend, ops
from minode.gradcheck import check_grads, hessian_vector_product
from minode.tree import flatten, tree_map

MODES = ("adjoint", "backprop")
TIGHT = dict(method="dopri5", rtol=1e-10, atol=1e-10)
RK4 = dict(method="rk4", step_size=0.1)

A = numpy.array([[-0.1, 1.3, 0.0], [-1.1, -0.3, 0.2], [0.0, 0.4, -0.5]])


def linear(y, t, params):
    """y' = A y for a state y of shape (3,)."""
    return ops.matmul(params["A"], y)


def full_hessian(loss, x):
    """The Hessian of ``loss`` at the vector ``x``, one Hessian-vector product per column."""
    columns = [hessian_vector_product(loss, [x], [unit])[0] for unit in numpy.eye(x.shape[0])]
    return numpy.stack(columns, axis=1)


def linear_final_value_problem():
    """y0 and the exact Hessian w.r.t. y0 of L = |y(T)|^2 for y' = A y, T = 1.5: with
    y(T) = e^{AT} y0 it is 2 e^{AT}^T e^{AT}."""
    propagator = scipy.linalg.expm(1.5 * A)
    return numpy.array([0.6, -1.0, 0.3]), 2 * propagator.T @ propagator


def linear_final_value_loss(grad_mode, options):
    """L(y0) = |y(1.5)|^2 for y' = A y."""
    return lambda y0: ops.sum(minode.odeint(linear, y0, numpy.array([0.0, 1.5]), {"A": A},
                                            grad=grad_mode, **options)[-1] ** 2)


def linear_ode_hessian_error(grad_mode, options):
    """The largest error of the Hessian of `linear_final_value_loss` against the closed form,
    relative to its largest entry."""
    y0, exact = linear_final_value_problem()
    hessian = full_hessian(linear_final_value_loss(grad_mode, options), y0)
    return abs(hessian - exact).max() / abs(exact).max()


@pytest.mark.parametrize("grad_mode", MODES)
def test_hessian_of_a_linear_ode_by_dopri5_equals_the_closed_form(grad_mode):
    assert linear_ode_hessian_error(grad_mode, TIGHT) < 1e-9  # measured 6e-11 and 1.2e-10


@pytest.mark.parametrize("grad_mode", MODES)
def test_hessian_of_a_linear_ode_by_rk4_converges_at_fourth_order(grad_mode):
    # Measured 3.9e-6 at h = 0.1 and 2.5e-7 at h = 0.05: the ratio 2^4 of a 4th-order method.
    coarse = linear_ode_hessian_error(grad_mode, RK4)
    fine = linear_ode_hessian_error(grad_mode, dict(method="rk4", step_size=0.05))
    assert coarse < 1e-5 and 12 < coarse / fine < 20, (coarse, fine)


def g_second_derivative(y):
    """d^2/ds^2 |e^{As} y0|^2 at y = y(s): 2 |A y|^2 + 2 y^T A^2 y."""
    return 2 * (A @ y) @ (A @ y) + 2 * y @ (A @ A @ y)


def linear_time_grid_problem():
    """y0, the time grid (t0, t1, t2) and the exact Hessian w.r.t. the grid of
    L = |y(t1)|^2 + |y(t2)|^2 = g(t1 - t0) + g(t2 - t0), where g(s) = |e^{As} y0|^2:
    d2L/dt1^2 = g''(t1 - t0), d2L/dt0^2 = g''(t1 - t0) + g''(t2 - t0), d2L/dt0 dt1 =
    -g''(t1 - t0), d2L/dt1 dt2 = 0. The spans are no multiples of the rk4 steps used here, so
    the number of fixed steps does not change under small moves of the grid."""
    y0, t = numpy.array([0.6, -1.0, 0.3]), numpy.array([0.2, 0.93, 1.64])
    g1, g2 = (g_second_derivative(scipy.linalg.expm(s * A) @ y0) for s in (t[1] - t[0],
                                                                         t[2] - t[0]))
    return y0, t, numpy.array([[g1 + g2, -g1, -g2], [-g1, g1, 0.0], [-g2, 0.0, g2]])


def linear_time_grid_loss(grad_mode, options, y0):
    """L(t) = |y(t1)|^2 + |y(t2)|^2 for y' = A y from y0 at t0."""
    return lambda t: ops.sum(minode.odeint(linear, y0, t, {"A": A}, grad=grad_mode,
                                           **options)[1:] ** 2)


# Measured errors: adjoint 1.4e-10 (dopri5) and 2.4e-6 (rk4, h = 0.1); backprop 8.5e-7 and
# 8.4e-5. Backprop differentiates the discrete solution, whose time derivatives are less
# accurate: adaptive steps are held fixed when the end times move, and the fixed step
# h = span / n moves with them.
@pytest.mark.parametrize("grad_mode, options, bound", [
    ("adjoint", TIGHT, 1e-8), ("backprop", TIGHT, 5e-6),
    ("adjoint", RK4, 1e-5), ("backprop", RK4, 5e-4)], ids=[
    "adjoint-dopri5", "backprop-dopri5", "adjoint-rk4", "backprop-rk4"])
def test_hessian_wrt_the_time_grid_of_a_linear_ode_equals_the_closed_form(grad_mode, options,
                                                                         bound):
    y0, t, exact = linear_time_grid_problem()
    hessian = full_hessian(linear_time_grid_loss(grad_mode, options, y0), t)
    assert abs(hessian - exact).max() < bound * abs(exact).max()


def mlp(y, t, params):
    """A tanh MLP vector field with an explicit time input."""
    hidden = ops.tanh(ops.matmul(y, params["W1"]) + t * params["c"] + params["b1"])
    return ops.matmul(hidden, params["W2"])


def mlp_problem():
    rng = numpy.random.default_rng(0)
    params = {"W1": rng.normal(0, 0.7, (2, 4)), "b1": rng.normal(0, 0.1, 4),
              "c": rng.normal(0, 0.5, 4), "W2": rng.normal(0, 0.7, (4, 2))}
    return rng.normal(size=(3, 2)), numpy.array([0.0, 0.4, 1.0]), params


def mlp_loss(grad_mode, options):
    """A smooth loss of every output; built on the active backend."""
    weights = backend.asarray(numpy.random.default_rng(1).normal(size=(3, 3, 2)))

    def loss(y0, t, params):
        ys = minode.odeint(mlp, y0, t, params, grad=grad_mode, **options)
        return ops.sum(weights * ys) + ops.sum(ops.tanh(ys) ** 2)
    return loss


def gradient_difference_quotient(fun, x, direction, eps=1e-6):
    """(grad fun(x + eps v) - grad fun(x - eps v)) / (2 eps): central differences of the
    gradient along v, which approximate the Hessian-vector product H v to O(eps^2)."""
    def gradient_at(sign):
        return flatten(grad(fun)(tree_map(lambda x, v: x + sign * eps * v, x, direction)))[0]
    return (gradient_at(1.0) - gradient_at(-1.0)) / (2 * eps)


@pytest.mark.parametrize("options", [TIGHT, RK4], ids=["dopri5", "rk4"])
@pytest.mark.parametrize("wrt", ["y0", "params"])
@pytest.mark.parametrize("grad_mode", MODES)
def test_hessian_vector_products_of_a_tanh_mlp_match_central_differences(grad_mode, wrt,
                                                                         options):
    y0, t, params = mlp_problem()
    loss = mlp_loss(grad_mode, options)
    x, fun = (y0, lambda y0: loss(y0, t, params)) if wrt == "y0" else (
        params, lambda params: loss(y0, t, params))
    rng = numpy.random.default_rng(5)
    direction = tree_map(lambda leaf: rng.normal(size=leaf.shape), x)
    (hvp,) = hessian_vector_product(fun, [x], [direction])
    # Backprop gives the exact derivatives of the discrete solution at every order; the
    # fixed-step adjoint's second derivative is the adjoint solve of the first one's backward
    # ODE, which differs from the derivative of the discrete first-order result by O(h^4)
    # (measured up to 9e-6 relative at h = 0.1).
    rtol = 5e-5 if grad_mode == "adjoint" and options is RK4 else 1e-6
    assert_allclose(flatten(hvp)[0], gradient_difference_quotient(fun, x, direction),
                    rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("grad_mode", MODES)
def test_second_derivatives_wrt_output_times_of_a_time_dependent_field(grad_mode):
    y0, t, params = mlp_problem()
    loss = mlp_loss(grad_mode, TIGHT)
    check_grads(lambda t: loss(y0, t, params), t, order=2, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("options, rtol", [(TIGHT, 1e-8), (RK4, 2e-6)], ids=["dopri5", "rk4"])
@pytest.mark.parametrize("grad_mode", MODES)
def test_third_derivative_of_exponential_decay_in_its_rate(grad_mode, options, rtol):
    # y' = -k y: y(T) = y0 e^{-kT}, so d^3 y(T) / dk^3 = -T^3 y0 e^{-kT}. Measured errors:
    # 1.4e-10 (adjoint) and 8e-10 (backprop) with dopri5; 4e-7 with rk4 at h = 0.1 (O(h^4)).
    y0, t, k = numpy.array([1.3]), numpy.array([0.0, 2.0]), 0.7

    def final_value(k):
        ys = minode.odeint(lambda y, t, p: -p * y, y0, t, k, grad=grad_mode, **options)
        return ops.sum(ys[-1])

    third = grad(grad(grad(final_value)))(numpy.array(k))
    assert_allclose(third, -8.0 * 1.3 * numpy.exp(-1.4), rtol=rtol)


@pytest.mark.parametrize("grad_mode", MODES)
def test_autograds_own_check_grads_order_2_passes_through_odeint(grad_mode):
    # autograd.test_util differentiates the VJP w.r.t. the cotangent too (rel. tolerance 1e-6).
    y0, t, params = mlp_problem()
    test_util.check_grads(lambda y0: minode.odeint(mlp, y0, t, params, grad=grad_mode, **TIGHT),
                          modes=["rev"], order=2)(y0)


def test_adjoint_and_backprop_hessian_vector_products_agree_wrt_y0_and_params():
    # (Not w.r.t. t: there adaptive backprop is the less accurate one, see the linear test.)
    y0, t, params = mlp_problem()
    rng = numpy.random.default_rng(2)
    vectors = (rng.normal(size=y0.shape), tree_map(lambda leaf: rng.normal(size=leaf.shape),
                                                   params))
    adjoint, backprop = (flatten(hessian_vector_product(
        lambda y0, params: mlp_loss(mode, TIGHT)(y0, t, params), (y0, params), vectors))[0]
        for mode in MODES)
    assert_allclose(adjoint, backprop, rtol=1e-7, atol=1e-9)


def test_seminorm_gives_the_same_hessian_vector_products():
    y0, t, params = mlp_problem()
    rng = numpy.random.default_rng(4)
    direction = tree_map(lambda leaf: rng.normal(size=leaf.shape), params)

    def hvp(seminorm):
        def loss(params):
            ys = minode.odeint(mlp, y0, t, params, seminorm=seminorm, **TIGHT)
            return ops.sum(ops.tanh(ys) ** 2)
        return flatten(hessian_vector_product(loss, [params], [direction]))[0]

    assert_allclose(hvp(True), hvp(False), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("grad_mode", MODES)
def test_second_derivatives_on_the_strict_backend_equal_numpy(grad_mode, strict_backend):
    y0, t, params = mlp_problem()
    rng = numpy.random.default_rng(3)
    vectors = (rng.normal(size=y0.shape), tree_map(lambda leaf: rng.normal(size=leaf.shape),
                                                   params))
    options = dict(method="dopri5", rtol=1e-8, atol=1e-8)

    def hvp():
        loss = mlp_loss(grad_mode, options)
        convert = lambda tree: tree_map(backend.asarray, tree)  # noqa: E731
        return flatten(hessian_vector_product(
            lambda y0, params: loss(y0, backend.asarray(t), params), convert((y0, params)),
            convert(vectors)))[0]

    got = hvp()
    backend.set_backend("numpy")
    expected = hvp()
    assert type(got) is strict.StrictArray
    assert_allclose(backend.to_numpy(got), expected, rtol=1e-12, atol=1e-14)


def test_scipy_methods_refuse_second_derivatives_by_name():
    y0 = numpy.array([1.0, 0.5])

    def loss(y0):
        return ops.sum(minode.odeint(lambda y, t, p: -y, y0, numpy.array([0.0, 1.0]),
                                     method="scipy:RK45") ** 2)

    with pytest.raises(ValueError, match="'scipy:RK45' is forward-only"):
        grad(lambda y0: ops.sum(grad(loss)(y0) ** 2))(y0)
