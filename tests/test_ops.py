"""Every primitive's VJP, and the VJP of its VJP, against autograd.numpy's derivatives and
against central differences."""
import numpy
import pytest
from autograd import grad
from numpy.testing import assert_allclose

from minode import ops
from minode.gradcheck import check_grads
from op_cases import (CASES, cotangent_for, im2col_reference, loss_of, loss_with_cotangent,
                      minode_result, minode_second_order, reference_result,
                      reference_second_order)


@pytest.mark.parametrize("c", CASES, ids=str)
def test_forward_and_vjp_match_autograd_numpy_reference(c):
    output, grads = minode_result(c)
    reference_output, reference_grads = reference_result(c)
    assert_allclose(output, reference_output, rtol=1e-12, atol=1e-12)
    for argnum, g, reference in zip(c.argnums, grads, reference_grads):
        assert g.shape == numpy.shape(c.inputs[argnum]) and g.dtype == numpy.float64
        assert_allclose(g, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("c", CASES, ids=str)
def test_second_derivatives_match_autograd_numpy_reference(c):
    # Hessian-vector products w.r.t. the inputs and the cotangent: every VJP is differentiated.
    for hvp, reference in zip(minode_second_order(c), reference_second_order(c)):
        assert_allclose(hvp, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("c", CASES, ids=str)
def test_first_and_second_derivatives_match_central_differences(c):
    # Order 2: the gradient of <grad loss, v> against central differences of the gradient.
    output = c.function(*c.inputs)
    loss = loss_with_cotangent(c.function, ops, c.inputs, c.argnums)
    check_grads(loss, *[c.inputs[i] for i in c.argnums], cotangent_for(output.shape), order=2)


def test_astype_vjp_returns_the_gradient_in_the_input_dtype():
    x = numpy.linspace(-1.0, 1.0, 5)
    g = grad(lambda x: ops.sum(ops.square(ops.astype(x, "float32"))))(x)
    assert g.dtype == numpy.float64
    assert_allclose(g, 2 * x, rtol=1e-6)


def test_conv_and_group_norm_keep_float32():
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 5)).astype("float32")
    w = rng.standard_normal((4, 4, 3, 3)).astype("float32")

    def loss(x, w):
        return ops.sum(ops.group_norm(ops.conv2d(x, w, 1, 1), 2))

    assert ops.group_norm(ops.conv2d(x, w, 1, 1), 2).dtype == numpy.float32
    grad_x, grad_w = grad(loss, (0, 1))(x, w)
    assert grad_x.dtype == numpy.float32 and grad_w.dtype == numpy.float32


@pytest.mark.parametrize("call, name", [
    (lambda: ops.conv2d(numpy.ones((1, 3, 5, 5)), numpy.ones((2, 4, 3, 3))), "input channels"),
    (lambda: ops.conv2d(numpy.ones((3, 5, 5)), numpy.ones((2, 3, 3, 3))), "x must be"),
    (lambda: ops.conv2d(numpy.ones((1, 3, 5, 5)), numpy.ones((2, 3, 3))), "w must be"),
    (lambda: ops.conv2d(numpy.ones((1, 3, 5, 5)), numpy.ones((2, 3, 3, 3)), 0), "stride"),
    (lambda: ops.conv2d(numpy.ones((1, 3, 2, 2)), numpy.ones((2, 3, 3, 3))), "kernel height"),
    (lambda: ops.avg_pool2d(numpy.ones((1, 3, 4, 4)), 5), "size"),
    (lambda: ops.group_norm(numpy.ones((2, 6, 3, 3)), 4), "groups"),
    (lambda: ops.group_norm(numpy.ones(6), 1), "x must have"),
    (lambda: ops.cross_entropy(numpy.ones((3, 4)), numpy.array([0, 1])), "labels"),
    (lambda: ops.cross_entropy(numpy.ones((3, 4)), numpy.array([0, 1, 4])), "labels must lie"),
    (lambda: ops.cross_entropy(numpy.ones((3, 4)), numpy.array([0.0, 1.0, 2.0])), "labels"),
    (lambda: ops.mean_squared_error(numpy.ones((3, 4)), numpy.ones((4, 3))), "target"),
    (lambda: ops.mean_absolute_error(numpy.ones(3), numpy.ones((3, 1))), "target"),
    (lambda: ops.gaussian_log_likelihood(numpy.ones(4), numpy.ones(5), 0.0), "mean"),
    (lambda: ops.gaussian_log_likelihood(numpy.ones(4), 0.0, numpy.ones((2, 4))), "log_var"),
    (lambda: ops.kl_diag_gaussian_to_standard(numpy.ones(4), numpy.ones(3)), "log_var"),
])
def test_invalid_arguments_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_group_norm_output_has_zero_mean_and_unit_variance_per_group():
    x = numpy.random.default_rng(1).standard_normal((3, 6, 4, 4)) * 5 + 2
    groups = ops.group_norm(x, 3).reshape(3, 3, -1)
    assert_allclose(groups.mean(axis=-1), 0, atol=1e-12)
    assert_allclose(groups.var(axis=-1), 1, rtol=1e-4)


def test_conv2d_gradient_wrt_one_argument_alone_equals_the_joint_one():
    rng = numpy.random.default_rng(4)
    x, w = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    cotangent = rng.standard_normal((2, 4, 3, 3))

    def loss(x, w):
        return ops.sum(ops.multiply(ops.conv2d(x, w, 2, 1), cotangent))

    grad_x, grad_w = grad(loss, (0, 1))(x, w)
    assert_allclose(grad(loss, 0)(x, w), grad_x, rtol=1e-14)
    assert_allclose(grad(loss, 1)(x, w), grad_w, rtol=1e-14)


@pytest.mark.parametrize("function, second_derivative", [
    (ops.sin, lambda x: -numpy.sin(x)), (ops.cos, lambda x: -numpy.cos(x))])
def test_sin_and_cos_vjps_are_differentiable_again(function, second_derivative):
    x = numpy.linspace(-3.0, 3.0, 7)
    first = lambda x: ops.sum(grad(lambda y: ops.sum(function(y)))(x))  # noqa: E731
    assert_allclose(grad(first)(x), second_derivative(x), rtol=1e-12, atol=1e-14)


def test_as_dtype_casts_only_when_the_dtype_differs():
    x = numpy.linspace(-1.0, 1.0, 5)
    assert ops.as_dtype(x, x.dtype) is x
    assert ops.as_dtype(x, numpy.float32).dtype == numpy.float32
    gradient = grad(lambda y: ops.sum(ops.square(ops.as_dtype(y, numpy.float32))))(x)
    assert gradient.dtype == numpy.float64
    assert_allclose(gradient, 2 * x, rtol=1e-6)


@pytest.mark.parametrize("shapes", [((5, 4), (3, 5), (3,)), ((5, 4), (3, 4), (4,)),
                                    ((5, 4), (4,), (4,))])
def test_linear_names_the_shapes_it_needs(shapes):
    x, w, b = (numpy.ones(shape) for shape in shapes)
    with pytest.raises(ValueError, match=r"^linear needs x \(\.\.\., n_in\), w \(n_out, n_in\)"):
        ops.linear(x, w, b)


def test_conv2d_gradients_to_third_order_match_central_differences():
    # conv2d's VJPs are conv2d_input_grad and conv2d_weight_grad, whose VJPs are the three
    # primitives again: order 3 differentiates each of them.
    rng = numpy.random.default_rng(5)
    x, w = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2))
    cotangent = rng.standard_normal((2, 3, 3, 3))

    def loss(x, w):
        out = ops.conv2d(x, w, 2, 1)
        return ops.sum(ops.multiply(ops.square(out), cotangent))

    check_grads(loss, x, w, order=3)


def test_conv2d_results_are_not_views_of_its_reused_workspace():
    # A batch of one makes the transposed col2im result contiguous: it must still be a copy.
    rng = numpy.random.default_rng(6)
    x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 2, 3, 3))
    grad_out = rng.standard_normal((1, 3, 4, 4))

    def results(scale):
        return [ops.conv2d(scale * x, w, 1, 1),
                ops.conv2d_input_grad(scale * grad_out, w, x.shape, 1, 1),
                ops.conv2d_weight_grad(scale * x, grad_out, (3, 3), 1, 1),
                ops.im2col(scale * x, (3, 3), 1, 1)]

    first = results(1.0)
    copies = [out.copy() for out in first]
    results(-3.0)  # the same shapes again, other values
    for out, copy in zip(first, copies):
        assert_allclose(out, copy, rtol=0, atol=0)


def test_im2col_after_another_padding_with_the_same_padded_shape_is_right():
    # (1, 2, 4, 4) padded by 1 and (1, 2, 6, 6) unpadded share the padded shape (2, 6, 6, 1):
    # the second must not see the first's zero border as its own pixels, nor the reverse.
    rng = numpy.random.default_rng(7)
    small, large = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((1, 2, 6, 6))
    for _ in range(2):
        assert_allclose(ops.im2col(small, (3, 3), 1, 1), im2col_reference(small, (3, 3), 1, 1))
        assert_allclose(ops.im2col(large, (3, 3), 1, 0), im2col_reference(large, (3, 3), 1, 0))


@pytest.mark.parametrize("which", ["input_grad", "weight_grad"])
def test_conv2d_grads_refuse_a_cotangent_not_of_conv2ds_output_shape(which):
    # conv2d(x, w) of x (1, 1, 3, 4) and w (1, 1, 2, 2) is (1, 1, 2, 3); a cotangent of shape
    # (1, 1, 3, 2) has as many entries and was taken as if it were laid out that way.
    rng = numpy.random.default_rng(8)
    x, w = rng.standard_normal((1, 1, 3, 4)), rng.standard_normal((1, 1, 2, 2))
    for bad in [(1, 1, 3, 2), (2, 1, 1, 3), (1, 2, 2, 3), (1, 1, 6)]:
        grad_out = rng.standard_normal(bad)
        if which == "weight_grad" and bad[1:2] == (2,):
            continue  # any number of output channels is conv2d's output for some w
        with pytest.raises(ValueError, match=r"grad_out must have conv2d's output shape "
                                             r"\(1, (1|C_out), 2, 3\)"):
            if which == "input_grad":
                ops.conv2d_input_grad(grad_out, w, x.shape, 1, 0)
            else:
                ops.conv2d_weight_grad(x, grad_out, (2, 2), 1, 0)


def test_conv2d_input_grad_refuses_weights_with_other_input_channels_than_x_shape():
    w, grad_out = numpy.ones((1, 1, 2, 2)), numpy.ones((1, 1, 2, 3))
    with pytest.raises(ValueError, match=r"w has 1 input channels but x_shape \(1, 2, 3, 4\)"):
        ops.conv2d_input_grad(grad_out, w, (1, 2, 3, 4), 1, 0)
