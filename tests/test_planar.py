"""minode.planar: the planar CNF's closed-form trace (eq. (28)) and the discrete planar flow
(Rezende & Mohamed 2015): log-determinants against autograd's Jacobians, u_hat, the inverse."""
import numpy
import pytest
from autograd import jacobian
from numpy.testing import assert_allclose

from minode import cnf, planar
from minode.gradcheck import check_grads


@pytest.mark.parametrize("dim, units", [(2, 5), (3, 2)])
def test_closed_form_trace_equals_the_jacobian_trace(dim, units):
    rng = numpy.random.default_rng(units)
    params = planar.init_planar_cnf(rng, dim=dim, units=units, hidden=4)
    z = 2 * rng.standard_normal((4, dim))
    for t in (0.0, 0.7, 3.0):
        t = numpy.array(t)
        dz_dt, trace = planar.planar_cnf_with_trace(z, t, params)
        assert_allclose(dz_dt, planar.planar_cnf(z, t, params))
        for row, value in zip(z, trace):
            jac = jacobian(lambda x: planar.planar_cnf(x[None], t, params)[0])(row)
            assert abs(jac[0, 1]) > 1e-4  # a full Jacobian, not only its diagonal
            assert_allclose(value, numpy.trace(jac), rtol=1e-12, atol=1e-15)


def test_closed_form_and_exact_traces_give_the_same_log_det():
    rng = numpy.random.default_rng(0)
    params = planar.init_planar_cnf(rng, dim=2, units=8)
    z, t = rng.standard_normal((5, 2)), numpy.array([0.0, 10.0])
    tol = {"rtol": 1e-10, "atol": 1e-10}
    closed = cnf.flow(planar.planar_cnf_with_trace, z, t, params, trace="closed_form", **tol)
    exact = cnf.flow(planar.planar_cnf, z, t, params, trace="exact", **tol)
    assert numpy.abs(closed[1][-1]).max() > 1e-3
    assert_allclose(closed[0], exact[0], rtol=1e-9, atol=1e-12)
    assert_allclose(closed[1], exact[1], rtol=1e-8, atol=1e-12)


def strongly_curved_flow(rng, layers=6, dim=2):
    """A planar flow far from the identity, with some layers pushed towards w^T u_hat = -1."""
    params = planar.init_planar_flow(rng, dim=dim, layers=layers)
    params["u"] = 3 * rng.standard_normal((layers, dim))
    params["u"][0] = -20 * params["w"][0]
    return params


def test_planar_flow_log_det_equals_the_jacobian_log_determinant():
    rng = numpy.random.default_rng(2)
    params = strongly_curved_flow(rng)
    z = rng.standard_normal((5, 2))
    x, log_det = planar.planar_flow(params, z)
    for row, value in zip(z, log_det):
        jac = jacobian(lambda v: planar.planar_flow(params, v[None])[0][0])(row)
        assert_allclose(value, numpy.log(abs(numpy.linalg.det(jac))), rtol=1e-12, atol=1e-13)
    assert numpy.abs(log_det).min() > 1e-3


@pytest.mark.parametrize("scale", [1e-3, 1.0, 10.0])
def test_u_hat_keeps_every_layer_invertible(scale):
    rng = numpy.random.default_rng(3)
    w = rng.standard_normal((50, 3))
    u = scale * rng.standard_normal((50, 3))
    u[:10] = -scale * w[:10]                        # w^T u as negative as it gets
    w_dot_u_hat = numpy.sum(w * planar.u_hat(u, w), axis=1)
    assert (w_dot_u_hat > -1).all()
    assert_allclose(w_dot_u_hat, numpy.logaddexp(0, numpy.sum(w * u, axis=1)) - 1)


def test_planar_flow_inverse_inverts_it():
    rng = numpy.random.default_rng(4)
    params = strongly_curved_flow(rng, layers=10, dim=3)
    z = 2 * rng.standard_normal((200, 3))
    x, _ = planar.planar_flow(params, z)
    assert numpy.abs(x - z).max() > 1.0
    assert_allclose(planar.planar_flow_inverse(params, x), z, atol=1e-11)


def test_planar_flow_gradient_matches_central_differences():
    rng = numpy.random.default_rng(5)
    params = planar.init_planar_flow(rng, dim=2, layers=3)
    z = rng.standard_normal((6, 2))

    def loss(params):
        x, log_det = planar.planar_flow(params, z)
        return (x ** 2).sum() + log_det.sum()
    check_grads(loss, params)


@pytest.mark.parametrize("call, name", [
    (lambda rng: planar.init_planar_cnf(rng, units=0), "units"),
    (lambda rng: planar.init_planar_cnf(rng, dim=1.5), "dim"),
    (lambda rng: planar.init_planar_flow(rng, layers=0), "layers"),
    (lambda rng: planar.planar_flow_inverse(planar.init_planar_flow(rng), numpy.ones((2, 2)),
                                            iterations=0), "iterations"),
])
def test_bad_sizes_raise_an_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call(numpy.random.default_rng(0))


@pytest.mark.parametrize("shape", [(2,), (1, 1, 2), (4, 3)])
def test_planar_flow_refuses_states_that_are_not_rows_of_the_layers_dimension(shape):
    # A single state (2,) went through the stacked log-determinant of the K layers as (K, 1)
    # times (K, 1, 1) and came back as K wrong numbers instead of one.
    params = planar.init_planar_flow(numpy.random.default_rng(0), dim=2, layers=3)
    with pytest.raises(ValueError, match=r"z must be an array \(batch, 2\) of states"):
        planar.planar_flow(params, numpy.ones(shape))
