"""minode.gradcheck: central differences on pytrees, check_grads at first and higher order
(including that it can fail), Hessian-vector products and the three-way comparison table."""
import numpy
import pytest
from autograd import test_util
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

import minode
from minode import nn, ops
from minode.gradcheck import (check_grads, compare_gradients, hessian_vector_product,
                              numerical_grad, relative_error)


def test_numerical_grad_of_a_quadratic_is_exact_to_rounding():
    # Central differences are exact for quadratics (the O(h^2) term has a zero coefficient).
    matrix = numpy.array([[2.0, 1.0], [1.0, 3.0]])
    x = numpy.array([0.5, -1.5])
    gradient = numerical_grad(lambda x: ops.sum(x * ops.matmul(matrix, x)), x)
    numpy.testing.assert_allclose(gradient, 2 * matrix @ x, rtol=1e-9)


def test_numerical_grad_keeps_the_pytree_structure():
    tree = {"b": [numpy.array([1.0, 2.0]), (numpy.array(3.0),)], "a": numpy.ones((2, 2))}

    def fun(tree):
        return ops.sum(tree["a"] ** 2) + ops.sum(tree["b"][0] ** 3) + tree["b"][1][0] ** 2

    gradient = numerical_grad(fun, tree)
    assert set(gradient) == {"a", "b"} and isinstance(gradient["b"], list)
    assert isinstance(gradient["b"][1], tuple) and gradient["b"][1][0].shape == ()
    numpy.testing.assert_allclose(gradient["a"], 2 * numpy.ones((2, 2)), rtol=1e-8)
    numpy.testing.assert_allclose(gradient["b"][0], [3.0, 12.0], rtol=1e-8)
    numpy.testing.assert_allclose(gradient["b"][1][0], 6.0, rtol=1e-8)


def test_numerical_grad_steps_relative_to_large_entries():
    # At x = 1e4 an absolute step of 1e-6 would lose about 7 digits to rounding.
    x = numpy.array([1e4, 0.5])
    gradient = numerical_grad(lambda x: ops.sum(ops.log(x)), x)
    numpy.testing.assert_allclose(gradient, 1 / x, rtol=1e-7)


def test_check_grads_passes_for_correct_gradients_of_several_pytree_arguments():
    def fun(x, params, scale):
        hidden = ops.tanh(ops.matmul(x, params["W"]) + params["b"][0])
        return ops.sum(hidden ** 2) * scale[0]

    rng = numpy.random.default_rng(0)
    params = {"W": rng.normal(size=(3, 2)), "b": [rng.normal(size=2)]}
    assert check_grads(fun, rng.normal(size=(4, 3)), params, (numpy.array(1.5),)) is None


@primitive
def _cube_with_a_wrong_vjp(x):
    return x ** 3


# Deliberately wrong: d(x^3)/dx is 3 x^2, not 3 x. Correct only where x = 0 or x = 1.
defvjp(_cube_with_a_wrong_vjp, lambda result, x: lambda grad_out: grad_out * 3 * x)


def test_check_grads_fails_on_a_deliberately_wrong_vjp_and_names_the_worst_entry():
    # The wrong VJP gives 3x where 3x^2 is right: relative error |x - 1|, largest at x[1].
    x = numpy.array([1.0, 0.5, 1.5])
    weights = {"w": numpy.array([0.1, 0.2])}
    with pytest.raises(AssertionError) as failure:
        check_grads(lambda w, x: ops.sum(_cube_with_a_wrong_vjp(x)) * ops.sum(w["w"]),
                    weights, x)
    message = str(failure.value)
    assert "argument 1[1]" in message
    # Times sum(w) = 0.3: autograd 0.3 * 1.5 = 0.45, central differences 0.3 * 0.75 = 0.225.
    assert "autograd gives 0.45" in message and "central differences give 0.225" in message
    assert "relative error 1" in message
    assert "2 of 5 entries fail" in message  # x[1] = 0.5 is wrong too; x[0] = 1 and w are right


def test_check_grads_catches_a_wrong_vjp_inside_the_ode_in_both_gradient_modes():
    def func(y, t, params):
        return -params["k"] * _cube_with_a_wrong_vjp(y)

    y0, t = numpy.array([0.8, -1.3]), numpy.array([0.0, 0.5])
    params = {"k": numpy.array(0.7)}
    for grad_mode in ("adjoint", "backprop"):
        with pytest.raises(AssertionError, match="gradient check failed at argument"):
            check_grads(lambda y0, p: ops.sum(minode.odeint(func, y0, t, p, grad=grad_mode,
                                                            rtol=1e-10, atol=1e-10) ** 2),
                        y0, params)


@primitive
def _cube_with_a_constant_vjp(x):
    return x ** 3


# The first derivative 3 x^2 is right, but computed from the untraced value of x: the VJP is not
# differentiable, so the second derivative autograd finds is 0 instead of 6 x.
defvjp(_cube_with_a_constant_vjp, lambda result, x: lambda grad_out: grad_out * 3 * getval(x) ** 2)


@pytest.mark.filterwarnings("ignore:Output seems independent of input")  # the constant VJP's
def test_check_grads_order_2_catches_a_vjp_that_is_right_but_not_differentiable():
    x = numpy.array([0.5, -1.5, 2.0])
    loss = lambda x: ops.sum(_cube_with_a_constant_vjp(x))  # noqa: E731
    check_grads(loss, x, order=1)
    with pytest.raises(AssertionError, match="order-2 derivative check failed at argument 0"):
        check_grads(loss, x, order=2)


def test_check_grads_to_third_order_of_a_tanh_mlp_in_params_and_input():
    rng = numpy.random.default_rng(3)
    params, x = nn.init_mlp(rng, [3, 4, 2]), rng.normal(size=(5, 3))
    check_grads(lambda p, x: ops.sum(ops.square(nn.mlp(p, x))), params, x, order=3)


def test_check_grads_rejects_an_order_below_1():
    with pytest.raises(ValueError, match="order must be a positive integer"):
        check_grads(lambda x: ops.sum(x), numpy.ones(2), order=0)


def test_hessian_vector_product_of_a_quartic_equals_the_closed_form():
    # f(x) = (x^T A x)^2 with A symmetric: H = 8 A x x^T A + 4 (x^T A x) A.
    matrix = numpy.array([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]])
    x, v = numpy.array([0.3, -1.2, 0.7]), numpy.array([1.0, 0.4, -2.0])
    quadratic = x @ matrix @ x
    exact = 8 * matrix @ x * (x @ matrix @ v) + 4 * quadratic * matrix @ v
    (hvp,) = hessian_vector_product(lambda x: ops.sum(x * ops.matmul(matrix, x)) ** 2, [x], [v])
    numpy.testing.assert_allclose(hvp, exact, rtol=1e-13)


def test_hessian_vector_product_needs_one_vector_per_argument():
    with pytest.raises(ValueError, match="vectors must hold one entry per argument: got 1 for 2"):
        hessian_vector_product(lambda x, y: ops.sum(x * y), [numpy.ones(2), numpy.ones(2)],
                               [numpy.ones(2)])


def test_autograds_own_check_grads_to_order_2_works_on_minode_functions():
    rng = numpy.random.default_rng(4)
    params = nn.init_mlp(rng, [2, 3, 2])
    test_util.check_grads(lambda x: ops.tanh(nn.mlp(params, x)), modes=["rev"], order=2)(
        rng.normal(size=(4, 2)))


def test_check_grads_needs_a_scalar_function():
    with pytest.raises(ValueError, match="scalar"):
        check_grads(lambda x: x * 2, numpy.ones(3))


def test_relative_error_measures_tiny_entries_against_the_largest_one():
    assert relative_error(numpy.array([1.0, 2.0]), numpy.array([1.0, 2.0])) == 0.0
    assert relative_error(numpy.array([1.0, 0.0]), numpy.array([1.1, 0.0])) == pytest.approx(
        0.1 / 1.1)
    # 1e-12 vs 0 next to an entry of 1: measured against 1e-6 * 1, not against 1e-12.
    assert relative_error(numpy.array([1.0, 1e-12]), numpy.array([1.0, 0.0])) == pytest.approx(
        1e-6)
    # floor=1 gives the max-norm relative error.
    assert relative_error({"a": numpy.array([2.0, 0.1])}, {"a": numpy.array([2.0, 0.2])},
                          floor=1.0) == pytest.approx(0.05)


def test_compare_gradients_without_params_and_its_table():
    comparison = compare_gradients(lambda ys: ops.sum(ys ** 2), lambda y, t, p: -0.5 * y,
                                   numpy.array([1.0, 2.0]), numpy.array([0.0, 1.0]),
                                   rtol=1e-10, atol=1e-10)
    assert set(comparison.gradients["finite differences"]) == {"y0", "t"}
    # L = |y0|^2 (1 + e^{-1}): dL/dy0 = 2 y0 (1 + e^{-1}).
    exact = 2 * numpy.array([1.0, 2.0]) * (1 + numpy.exp(-1.0))
    for mode in ("adjoint", "backprop", "finite differences"):
        assert relative_error(comparison.gradients[mode]["y0"], exact) < 1e-8
    assert comparison.max_relative_error() < 1e-6
    assert len(comparison.format_table().splitlines()) == 4
    with pytest.raises(ValueError, match="grad"):
        compare_gradients(lambda ys: ops.sum(ys), lambda y, t, p: y, numpy.ones(1),
                          numpy.array([0.0, 1.0]), grad="adjoint")


@pytest.mark.parametrize("args, vectors, name", [
    (numpy.ones(3), [numpy.ones(3)], "args"),
    ([numpy.ones(3)], numpy.ones(3), "vectors"),
    (numpy.ones((1, 3)), numpy.ones((1, 3)), "args"),  # one row would pass for one argument
])
def test_hessian_vector_product_refuses_a_bare_array_and_says_to_pass_a_list(args, vectors, name):
    with pytest.raises(TypeError, match=rf"{name} must be a list with one entry per argument of "
                                        rf"fun, e.g. hessian_vector_product\(f, \[x\], \[v\]\)"):
        hessian_vector_product(lambda x: ops.sum(x ** 3), args, vectors)


def test_check_grads_refuses_float32_inputs_naming_the_argument():
    # In float32, rounding over the 1e-6 step gives ~1e-2 relative errors: a spurious failure.
    float32 = numpy.full(3, 0.3, dtype="float32")
    with pytest.raises(ValueError, match=r"needs float64 .* got float32 for argument 1\['w'\]"):
        check_grads(lambda x, p: ops.sum(ops.tanh(x * p["w"])), numpy.ones(3), {"w": float32})
