"""rodas4's fast paths compute what the plain ones do (issue 20, part 4).

- `minode.rosenbrock_step` takes untraced inputs through one (s, n) array of stages and traced
  ones through sums of traced products: the two give the same step, also for a state of two
  axes, a non-autonomous f and quadratures, and a stage whose f turns out traced is redone
  traced (its gradient matches central differences).
- `minode.jacobian` skips the nodes of a row's backward pass that receive exact zeros: the
  Jacobian is still exact where the state has zeros, and so is its derivative in backprop, which
  the zeros must not cut (Robertson's Jacobian and its derivative in closed form).
- An f that never reads t is marked autonomous; one that does is not.
"""
import numpy
import pytest
from autograd import grad
from autograd.tracer import getval, isbox

from minode import ops
from minode import rosenbrock_step as rosenbrock_step_module
from minode.gradcheck import check_grads
from minode.jacobian import linearise
from minode.rosenbrock import RODAS4
from minode.rosenbrock_step import _traced_step, _untraced_step, rosenbrock_step

RATES = (0.04, 3e7, 1e4)


def robertson(y, t):
    k1, k2, k3 = RATES
    return ops.stack([-k1 * y[0] + k3 * y[1] * y[2],
                      k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] ** 2,
                      k2 * y[1] ** 2])


def robertson_jacobian(y):
    k1, k2, k3 = RATES
    return numpy.array([[-k1, k3 * y[2], k3 * y[1]],
                        [k1, -k3 * y[2] - 2 * k2 * y[1], -k3 * y[1]],
                        [0.0, 2 * k2 * y[1], 0.0]])


def forced_matrix_field(y, t):
    """y of shape (2, 2), stiff and non-autonomous."""
    a = numpy.array([[-300.0, 1.0], [2.0, -0.5]])
    return ops.matmul(a, y) + ops.sin(3.0 * t) * y ** 2


def with_quadratures(y, t):
    """Two stiff entries and 12 quadratures of them (read by nothing)."""
    z = y[:2]
    ramp = numpy.linspace(0.5, 2.0, 6)
    return ops.concatenate([ops.stack([-400.0 * z[0] + z[1], ops.cos(t) * z[0] - z[1]]),
                            z[0] * z[1] * ramp, ops.sin(t) * z[0] + z[1] ** 2 * ramp])


@pytest.mark.parametrize("field, y0, quadratures", [
    (robertson, numpy.array([0.9, 2e-5, 0.1]), 0),
    (forced_matrix_field, numpy.array([[1.0, 0.5], [-0.3, 0.2]]), 0),
    (with_quadratures, numpy.concatenate([[1.0, 0.5], numpy.zeros(12)]), 12),
])
def test_untraced_and_traced_steps_agree(field, y0, quadratures):
    linearisation = linearise(field, y0, 0.3, quadratures)
    untraced = _untraced_step(field, RODAS4, y0, 0.3, 0.01, linearisation)
    traced = _traced_step(field, RODAS4, y0, 0.3, 0.01, linearisation)
    for fast, plain in zip(untraced[:2], traced[:2]):
        assert fast.shape == plain.shape == y0.shape
        numpy.testing.assert_allclose(fast, plain, rtol=1e-13, atol=1e-15)
    for fast, plain in zip(untraced[2], traced[2]):
        numpy.testing.assert_allclose(fast, plain, rtol=1e-13, atol=1e-12)


def test_a_stage_that_turns_out_traced_is_redone_traced(monkeypatch):
    # f reads p only from t = 0.05 on: at the step's start its value and Jacobian are
    # untraced, a later stage's value is traced, so the step must be redone in traced form.
    y0, h = numpy.array([1.0, -0.5]), 0.1
    traced_steps = []

    def counted(*args):
        traced_steps.append(args)
        return _traced_step(*args)
    monkeypatch.setattr(rosenbrock_step_module, "_traced_step", counted)

    def step_value(p):
        def field(y, t):
            decay = ops.stack([-50.0 * y[0], -y[1]])
            return decay + p * y if float(getval(t)) > 0.05 else decay
        linearisation = linearise(field, y0, 0.0)
        assert not isbox(linearisation.value) and not isbox(linearisation.jacobian)
        y1, _, _ = rosenbrock_step(field, RODAS4, y0, 0.0, h, linearisation)
        return ops.sum(y1 * numpy.array([0.3, 0.7]))

    p = numpy.array(0.8)
    assert grad(step_value)(p) != 0.0 and len(traced_steps) == 1
    check_grads(step_value, p, rtol=1e-7, atol=1e-10)


def test_the_jacobian_is_exact_where_the_state_has_zeros_and_so_is_its_derivative():
    y0 = numpy.array([1.0, 0.0, 0.0])  # Robertson's start: every product of y1 and y2 is 0
    numpy.testing.assert_allclose(linearise(robertson, y0, 0.0).jacobian,
                                  robertson_jacobian(y0), rtol=1e-15)
    weights = numpy.arange(1.0, 10.0).reshape(3, 3)
    k1, k2, k3 = RATES

    def weighted_jacobian(y):
        return ops.sum(linearise(robertson, y, 0.0).jacobian * weights)
    # d/dy of sum W * J, from the closed form of J above.
    expected = numpy.array([0.0,
                            k3 * weights[0, 2] - 2 * k2 * weights[1, 1] - k3 * weights[1, 2]
                            + 2 * k2 * weights[2, 1],
                            k3 * weights[0, 1] - k3 * weights[1, 1]])
    numpy.testing.assert_allclose(grad(weighted_jacobian)(y0), expected, rtol=1e-14)


def test_an_f_that_never_reads_t_is_autonomous():
    y0 = numpy.array([0.9, 2e-5, 0.1])
    assert linearise(robertson, y0, 0.3).autonomous
    assert not linearise(forced_matrix_field, numpy.ones((2, 2)), 0.3).autonomous
    numpy.testing.assert_array_equal(linearise(robertson, y0, 0.3).time_derivative,
                                     numpy.zeros(3))
