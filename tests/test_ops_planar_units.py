"""minode.ops.planar_hidden and planar_field_and_trace: the planar CNF's units in two primitives,
against the same arithmetic written one primitive per operation (values and gradients to the
last bit), their second derivatives against central differences, and bad input."""
import numpy
import pytest
from autograd import grad

from minode import ops
from minode.gradcheck import check_grads

UNITS, DIM = 5, 2


def one_operation_per_primitive(z, hyper):
    """[dz/dt, trace] of the module docstring's lines, each line one primitive or operator."""
    m, d = UNITS, DIM
    w, u = ops.window(hyper, 0, (m, d)), ops.window(hyper, m * d, (m, d))
    b, logits = ops.window(hyper, 2 * m * d, (m,)), ops.window(hyper, 2 * m * d + m, (m,))
    weight = ops.sigmoid(logits) / m
    h = ops.tanh(ops.linear(z, w, b))
    dz_dt = (h * weight) @ u
    trace = (1.0 - ops.square(h)) @ (weight * ops.sum(w * u, axis=1))
    return ops.concatenate([dz_dt, ops.reshape(trace, (-1, 1))], axis=1)


def two_primitives(z, hyper):
    return ops.planar_field_and_trace(ops.planar_hidden(z, hyper, UNITS), hyper, UNITS)


def inputs(seed=0, batch=7):
    rng = numpy.random.default_rng(seed)
    return (rng.standard_normal((batch, DIM)), rng.standard_normal(UNITS * (2 * DIM + 2)),
            rng.standard_normal((batch, DIM + 1)))


def weighted(fun, cotangent):
    return lambda z, hyper: ops.sum(fun(z, hyper) * cotangent)


def test_values_and_gradients_equal_one_primitive_per_operation_bit_for_bit():
    z, hyper, cotangent = inputs()
    assert numpy.array_equal(two_primitives(z, hyper), one_operation_per_primitive(z, hyper))
    for argnum in (0, 1):
        fused = grad(weighted(two_primitives, cotangent), argnum)(z, hyper)
        reference = grad(weighted(one_operation_per_primitive, cotangent), argnum)(z, hyper)
        assert numpy.abs(reference).min() > 0  # every entry is reached
        assert numpy.array_equal(fused, reference)


def test_second_derivatives_match_central_differences():
    z, hyper, cotangent = inputs(1, batch=3)
    check_grads(weighted(two_primitives, cotangent), z, hyper, order=2)


def test_second_derivatives_equal_one_primitive_per_operation():
    z, hyper, cotangent = inputs(2, batch=3)

    def hessian_row(fun):
        return grad(lambda hyper: ops.sum(grad(weighted(fun, cotangent), 0)(z, hyper)))(hyper)
    numpy.testing.assert_allclose(hessian_row(two_primitives),
                                  hessian_row(one_operation_per_primitive),
                                  rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("call, message", [
    (lambda z, hyper: ops.planar_hidden(z, hyper[:-1], UNITS), "hyper must be a vector"),
    (lambda z, hyper: ops.planar_hidden(z[:, :1], hyper, UNITS),
     r"z must be an array \(batch, 2\)"),
    (lambda z, hyper: ops.planar_field_and_trace(z, hyper, UNITS),
     r"h must be an array \(batch, 5\)"),
    (lambda z, hyper: ops.planar_hidden(z, hyper.reshape(2, -1), UNITS), "hyper must be a vector"),
])
def test_bad_shapes_raise_an_error_naming_the_argument(call, message):
    z, hyper, _ = inputs()
    with pytest.raises(ValueError, match=message):
        call(z, hyper)
