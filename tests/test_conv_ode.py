"""The paper's convolutional ODE block inside odeint: adjoint gradients against finite differences.

The block (`minode.nn.conv_ode_func`): GroupNorm -> ReLU -> 3x3 conv with a time channel ->
GroupNorm -> ReLU -> 3x3 conv with a time channel -> GroupNorm, on a tiny float64 problem.

Finite differences need dynamics that are smooth along the whole trajectory: when a ReLU input
crosses zero mid-solve, the adaptive solver's error control misjudges the kink and the computed
solution jumps by far more than the tolerance under tiny perturbations. So the two normalisations
before a ReLU get shifts +3 and -3: with one channel per group of 9 pixels, |xhat| <= sqrt(8) < 3,
so channel 0 always passes the ReLU and channel 1 never does (both branches of its VJP are used),
and no input ever sits on the kink.
"""
import numpy
from autograd import grad
from numpy.testing import assert_allclose

from minode import SolverStats, backend, nn, odeint, ops
from minode.gradcheck import check_grads

T = numpy.array([0.0, 0.5, 1.0])


def make_problem():
    rng = numpy.random.default_rng(0)
    params = nn.init_conv_ode_func(rng, 2)  # two channels, two groups: 124 parameters
    for name in ("norm1", "norm2"):
        params[name] = {"scale": rng.uniform(0.8, 1.0, 2), "shift": numpy.array([3.0, -3.0])}
    params["norm3"]["shift"] = rng.uniform(-0.5, 0.5, 2)
    return rng.standard_normal((1, 2, 3, 3)), params


def loss(y0, params, grad_mode="adjoint", stats=None):
    """A scalar of the solution at both output times (arrays of the active backend)."""
    ys = odeint(nn.conv_ode_func, y0, backend.asarray(T), params, method="dopri5", rtol=1e-9,
                atol=1e-9, grad=grad_mode, stats=stats)
    weights = backend.asarray(numpy.random.default_rng(3).standard_normal(y0.shape))
    return ops.sum(ops.multiply(ops.getitem(ys, -1), weights)) + ops.sum(ops.getitem(ys, 1))


def test_conv_ode_adjoint_gradients_wrt_y0_and_params_match_finite_differences():
    y0, params = make_problem()
    stats = SolverStats()
    check_grads(lambda y0, params: loss(y0, params, stats=stats), y0, params,
                rtol=1e-5, atol=1e-7)
    assert stats.backward.nfe > 0  # the gradient came from the adjoint's backward solve


def test_conv_ode_adjoint_and_backprop_gradients_agree():
    y0, params = make_problem()
    adjoint = nn.flatten(grad(loss, (0, 1))(y0, params, "adjoint"))[0]
    backprop = nn.flatten(grad(loss, (0, 1))(y0, params, "backprop"))[0]
    assert_allclose(adjoint, backprop, rtol=1e-6, atol=1e-8)
