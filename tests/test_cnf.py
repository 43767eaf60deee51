"""minode.cnf: Theorem 1 (eq. (8)) against brute-force Jacobian determinants, the trace
estimators, and gradients of the density-matching KL and the maximum-likelihood NLL by the
adjoint, by backprop and by central differences (all float64)."""
import functools

import numpy
import pytest
from autograd import grad, jacobian
from numpy.testing import assert_allclose
from scipy.stats import multivariate_normal

import strict_backend as strict
from minode import backend, cnf, densities, nn, odeint, ops, planar, tree
from minode.gradcheck import numerical_grad, relative_error

TOL = {"rtol": 1e-10, "atol": 1e-10}


def mlp_field(z, t, params):
    """A time-dependent MLP field whose rows do not interact: a non-trivial Jacobian."""
    hidden = ops.tanh(ops.add(nn.linear(params[0], z), ops.multiply(t, params[2])))
    return nn.linear(params[1], hidden)


def init_mlp_field(rng, dim, hidden=5):
    layers = nn.init_mlp(rng, [dim, hidden, dim])
    return [layers[0], {"w": 3 * layers[1]["w"], "b": layers[1]["b"]},
            rng.standard_normal(hidden)]


def flow_map_log_det(func, z, t, params):
    """log|det dz(t[-1])/dz(t[0])| for one state z (D,), by autograd's Jacobian of the solve."""
    def end_state(z0):
        return odeint(func, ops.reshape(z0, (1, -1)), t, params, grad="backprop", **TOL)[-1, 0]
    return numpy.linalg.slogdet(jacobian(end_state)(z))[1]


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("times", [(0.0, 0.4, 1.0), (1.0, 0.3, -0.5)], ids=["forward", "backward"])
def test_log_det_equals_the_flow_maps_jacobian_log_determinant(dim, times):
    rng = numpy.random.default_rng(dim)
    params = init_mlp_field(rng, dim)
    z, t = rng.standard_normal((3, dim)), numpy.array(times)
    zs, log_det = cnf.flow(mlp_field, z, t, params, **TOL)
    assert zs.shape == (3, 3, dim) and log_det.shape == (3, 3)
    assert_allclose(zs[0], z)
    assert_allclose(log_det[0], 0.0)
    for i in (1, 2):
        brute_force = [flow_map_log_det(mlp_field, row, t[:i + 1], params) for row in z]
        assert max(numpy.abs(brute_force)) > 0.1  # the field really changes volume
        assert_allclose(log_det[i], brute_force, rtol=1e-7, atol=1e-8)


def hamiltonian_field(z, t, params):
    """[dq/dt; dp/dt] = [f(p); g(q)]: a partitioned field with a zero Jacobian diagonal."""
    q, p = ops.getitem(z, (slice(None), slice(0, 2))), ops.getitem(z, (slice(None), slice(2, 4)))
    return ops.concatenate([ops.tanh(ops.matmul(p, params["a"])),
                            ops.sin(ops.matmul(q, params["b"]))], axis=1)


def test_a_hamiltonian_field_preserves_volume():
    rng = numpy.random.default_rng(5)
    params = {"a": 2 * rng.standard_normal((2, 2)), "b": 2 * rng.standard_normal((2, 2))}
    z, t = rng.standard_normal((4, 4)), numpy.array([0.0, 1.5])
    zs, log_det = cnf.flow(hamiltonian_field, z, t, params, **TOL)
    assert numpy.abs(zs[-1] - z).max() > 0.5  # it moves the states
    assert_allclose(log_det, 0.0, atol=1e-14)
    assert_allclose(flow_map_log_det(hamiltonian_field, z[0], t, params), 0.0, atol=1e-7)


def test_time_derivative_of_log_det_is_the_trace_at_the_end_time():
    rng = numpy.random.default_rng(8)
    params = init_mlp_field(rng, 2)
    z = rng.standard_normal((1, 2))
    for mode in ("adjoint", "backprop"):
        def final_log_det(t1):
            times = ops.stack([numpy.array(0.0), t1])
            return ops.sum(cnf.flow(mlp_field, z, times, params, grad=mode, **TOL)[1][-1])
        t1 = numpy.array(0.7)
        z1 = cnf.flow(mlp_field, z, numpy.array([0.0, 0.7]), params, **TOL)[0][-1]
        trace = numpy.trace(jacobian(lambda x: mlp_field(x[None], t1, params)[0])(z1[0]))
        assert_allclose(grad(final_log_det)(t1), trace, rtol=1e-7)


# ------------------------------------------------------------------------- Hutchinson's estimator

def test_hutchinson_estimate_of_log_det_converges_to_the_exact_one():
    rng = numpy.random.default_rng(3)
    params = init_mlp_field(rng, 3)
    t, n = numpy.array([0.0, 1.0]), 4000
    z = numpy.tile(rng.standard_normal((1, 3)), (n, 1))   # one state, n independent probes
    exact = cnf.flow(mlp_field, z[:1], t, params, rtol=1e-8, atol=1e-8)[1][-1, 0]
    for noise in (rng.choice([-1.0, 1.0], size=(n, 3)), rng.standard_normal((n, 3))):
        estimates = cnf.flow(mlp_field, z, t, params, trace="hutchinson", noise=noise,
                             rtol=1e-8, atol=1e-8)[1][-1]
        standard_error = estimates.std() / numpy.sqrt(n)
        assert standard_error > 0  # the estimates do vary
        assert abs(estimates.mean() - exact) < 4 * standard_error


def test_hutchinson_rademacher_variance_in_2d_is_the_squared_off_diagonal_sum():
    rng = numpy.random.default_rng(4)
    params = planar.init_planar_cnf(rng, dim=2, units=3)
    z, t = rng.standard_normal((1, 2)), numpy.array(0.4)
    jac = jacobian(lambda x: planar.planar_cnf(x[None], t, params)[0])(z[0])
    signs = numpy.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # all 4 probes
    estimates = cnf.hutchinson_trace(planar.planar_cnf, numpy.repeat(z, 4, axis=0), t, params,
                                     signs)[1]
    assert_allclose(estimates.mean(), numpy.trace(jac), rtol=1e-12)
    assert_allclose(estimates.var(), (jac[0, 1] + jac[1, 0]) ** 2, rtol=1e-10)


def test_exact_trace_equals_the_jacobian_trace_per_row():
    rng = numpy.random.default_rng(6)
    params = init_mlp_field(rng, 3)
    z, t = rng.standard_normal((4, 3)), numpy.array(0.2)
    dz_dt, trace = cnf.exact_trace(mlp_field, z, t, params)
    assert_allclose(dz_dt, mlp_field(z, t, params))
    for row, value in zip(z, trace):
        assert_allclose(value, numpy.trace(jacobian(lambda x: mlp_field(x[None], t, params)[0])(
            row)), rtol=1e-12)


# ------------------------------------------------------------------------- densities

def test_normal_log_prob_matches_scipy():
    z = numpy.random.default_rng(0).standard_normal((5, 3))
    for std in (1.0, 0.3):
        assert_allclose(cnf.normal_log_prob(z, std),
                        multivariate_normal(numpy.zeros(3), std ** 2 * numpy.eye(3)).logpdf(z))


def test_log_prob_of_samples_is_the_density_sample_reports():
    rng = numpy.random.default_rng(2)
    params = planar.init_planar_cnf(rng, dim=2, units=4)
    t = numpy.array([0.0, 0.5, 2.0])
    options = {"trace": "closed_form", **TOL}
    xs, log_q = cnf.sample(planar.planar_cnf_with_trace, 6, t, params,
                           rng=numpy.random.default_rng(9), base_std=0.5, **options)
    assert xs.shape == (3, 6, 2) and log_q.shape == (3, 6)
    assert_allclose(cnf.log_prob(planar.planar_cnf_with_trace, xs[-1], t, params,
                                 base_std=0.5, **options), log_q[-1], rtol=1e-8)


# ------------------------------------------------------------------------- gradients

def kl_loss(params, mode, trace, func):
    """KL(q || p) for the target U1 from 8 fixed base samples (the tutorial's Figure 4 loss)."""
    z = numpy.random.default_rng(11).standard_normal((8, 2))
    zs, log_det = cnf.flow(func, z, numpy.array([0.0, 1.0]), params, trace=trace, grad=mode,
                           **TOL)
    log_q = ops.subtract(cnf.normal_log_prob(z), ops.getitem(log_det, -1))
    return ops.mean(ops.add(log_q, densities.u1(ops.getitem(zs, -1))))


def nll_loss(params, mode, trace, func):
    """-mean log p(x) of 8 fixed data points, solved data -> base (Figure 5's loss)."""
    x = numpy.random.default_rng(12).standard_normal((8, 2))
    return ops.negative(ops.mean(cnf.log_prob(func, x, numpy.array([0.0, 1.0]), params,
                                              trace=trace, grad=mode, **TOL)))


@pytest.mark.parametrize("loss", [kl_loss, nll_loss], ids=["KL", "NLL"])
@pytest.mark.parametrize("trace", ["closed_form", "exact"])
def test_adjoint_backprop_and_central_differences_agree(loss, trace):
    params = planar.init_planar_cnf(numpy.random.default_rng(1), dim=2, units=2, hidden=2)
    func = planar.planar_cnf_with_trace if trace == "closed_form" else planar.planar_cnf
    adjoint = grad(loss)(params, "adjoint", trace, func)
    backprop = grad(loss)(params, "backprop", trace, func)
    differences = numerical_grad(lambda p: loss(p, "backprop", trace, func), params)
    assert relative_error(adjoint, differences) < 1e-5
    assert relative_error(backprop, differences) < 1e-5
    assert relative_error(adjoint, backprop) < 1e-5


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_gradients_on_the_strict_backend_equal_numpy(trace, strict_backend):
    """Every array of the flow, its trace's VJPs and their adjoint stays on the active backend."""
    rng = numpy.random.default_rng(13)
    z, noise = rng.standard_normal((4, 2)), rng.choice([-1.0, 1.0], size=(4, 2))

    def loss(params, z, noise):
        zs, log_det = cnf.flow(mlp_field, z, backend.asarray(numpy.array([0.0, 0.8])), params,
                               trace=trace, noise=noise if trace == "hutchinson" else None,
                               rtol=1e-9, atol=1e-9)
        return ops.add(ops.sum(ops.square(ops.getitem(zs, -1))), ops.sum(log_det))

    backend.set_backend("numpy")
    expected = nn.flatten(grad(loss, (0, 1))(init_mlp_field(numpy.random.default_rng(0), 2), z,
                                             noise))[0]
    backend.set_backend("strict")
    params = nn.tree_map(backend.asarray, init_mlp_field(numpy.random.default_rng(0), 2))
    got = grad(loss, (0, 1))(params, backend.asarray(z), backend.asarray(noise))
    assert all(type(leaf) is strict.StrictArray for leaf in nn.tree_leaves(got))
    assert_allclose(backend.to_numpy(nn.flatten(got)[0]), expected, rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, message", [
    (lambda f, z, t: cnf.flow(f, z[0], t), "z must be a 2-D array"),
    (lambda f, z, t: cnf.flow(f, z[None], t), "z must be a 2-D array"),
    (lambda f, z, t: cnf.flow(f, z.astype(int), t), "z must be a floating-point"),
    (lambda f, z, t: cnf.flow(f, z, t, trace="hutchinson", noise=z[:, :1]), "noise must be"),
    (lambda f, z, t: cnf.flow(f, z, t, trace="hutchinson"), "noise must be"),
    (lambda f, z, t: cnf.flow(f, z, t, trace="exact", noise=z), "noise is used only"),
    (lambda f, z, t: cnf.flow(f, z, t, trace="brute"), "trace must be one of"),
    (lambda f, z, t: cnf.flow(f, z, t[:1]), "t must be a 1-D array of at least 2"),
    (lambda f, z, t: cnf.log_prob(f, z, t[:1]), "t must be a 1-D array of at least 2"),
    (lambda f, z, t: cnf.log_prob(f, z[0], t), "x must be a 2-D array"),
    (lambda f, z, t: cnf.sample(f, 0, t, rng=numpy.random.default_rng()), "n must be"),
    (lambda f, z, t: cnf.normal_log_prob(z, std=0.0), "std must be"),
])
def test_bad_input_raises_an_error_naming_the_argument(call, message):
    z, t = numpy.ones((3, 2)), numpy.array([0.0, 1.0])
    with pytest.raises(ValueError, match=message):
        call(lambda z, t, params: -z, z, t)


@pytest.mark.parametrize("func, got", [
    (lambda z, t, params: -z, r"one value of shape \(3, 2\)"),
    (lambda z, t, params: (-z, -2.0), r"a tuple of shapes \[\(3, 2\), None\]"),
    (lambda z, t, params: (-z, ops.sum(-z, axis=1, keepdims=True)),
     r"a tuple of shapes \[\(3, 2\), \(3, 1\)\]"),
])
def test_log_prob_with_a_closed_form_trace_says_what_func_must_return(func, got):
    x, t = numpy.ones((3, 2)), numpy.array([0.0, 1.0])
    with pytest.raises(ValueError, match=r"trace='closed_form' needs func\(z, t, params\) to "
                                         r"return the pair \(dz/dt, tr\(df/dz\)\) of shapes "
                                         r"\(3, 2\) and \(3,\), got " + got):
        cnf.log_prob(func, x, t, trace="closed_form")


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
@pytest.mark.parametrize("func, got", [
    (lambda z, t, params: -z[:, :1], r"\(3, 1\)"),
    (lambda z, t, params: ops.concatenate([-z, -z], axis=1), r"\(3, 4\)"),
    (lambda z, t, params: -ops.sum(z, axis=1), r"\(3,\)"),
])
def test_a_field_of_another_shape_is_refused_naming_the_shapes(trace, func, got):
    # without the check: an IndexError from the trace's basis vectors, or a broadcast
    z, t = numpy.ones((3, 2)), numpy.array([0.0, 1.0])
    noise = numpy.ones((3, 2)) if trace == "hutchinson" else None
    with pytest.raises(ValueError, match=r"func must return dy/dt with the shape of y "
                                         r"\(3, 2\), got " + got):
        cnf.flow(func, z, t, trace=trace, noise=noise)


def test_a_closed_form_field_with_its_joined_form_gives_the_pairs_results():
    """`flow` solves planar_cnf_with_trace's joined [dz/dt, trace] when the function carries it:
    states, log_det and gradients equal those of the pair it returns otherwise."""
    rng = numpy.random.default_rng(7)
    params = planar.init_planar_cnf(rng, dim=2, units=6, hidden=5)
    z, t = rng.standard_normal((9, 2)), numpy.array([0.0, 0.8, 2.0])

    def pair_only(z, t, params):
        return planar.planar_cnf_with_trace(z, t, params)

    def loss(func):
        return lambda p: ops.sum(ops.square(cnf.flow(func, z, t, p, trace="closed_form",
                                                     rtol=1e-6, atol=1e-6)[1]))
    assert hasattr(planar.planar_cnf_with_trace, "joined_field_and_trace")
    assert not hasattr(pair_only, "joined_field_and_trace")
    assert float(loss(pair_only)(params)) > 1e-3
    assert float(loss(planar.planar_cnf_with_trace)(params)) == float(loss(pair_only)(params))
    joined, pair = (tree.tree_leaves(grad(loss(f))(params))
                    for f in (planar.planar_cnf_with_trace, pair_only))
    for a, b in zip(joined, pair):
        assert numpy.array_equal(a, b)


def test_a_wrapper_made_with_functools_wraps_is_solved_as_written_not_as_the_joined_field():
    """functools.wraps copies planar_cnf_with_trace's ``joined_field_and_trace`` attribute onto
    a wrapper that changes the field: `flow` must solve the wrapper's own pair, not the joined
    form of the function it wraps (that would silently solve the unwrapped field)."""
    rng = numpy.random.default_rng(3)
    params = planar.init_planar_cnf(rng, dim=2, units=3, hidden=4)
    z, t = rng.standard_normal((2, 2)), numpy.array([0.0, 1.0])

    @functools.wraps(planar.planar_cnf_with_trace)
    def doubled(z, t, params):
        dz_dt, trace = planar.planar_cnf_with_trace(z, t, params)
        return 2 * dz_dt, 2 * trace

    def doubled_unwrapped(z, t, params):
        dz_dt, trace = planar.planar_cnf_with_trace(z, t, params)
        return 2 * dz_dt, 2 * trace

    assert hasattr(doubled, "joined_field_and_trace")
    wrapped, written = (cnf.flow(f, z, t, params, trace="closed_form")
                        for f in (doubled, doubled_unwrapped))
    single = cnf.flow(planar.planar_cnf_with_trace, z, t, params, trace="closed_form")
    assert numpy.max(numpy.abs(written[1] - single[1])) > 1e-2  # doubling changes log_det
    for a, b in zip(wrapped, written):
        assert numpy.array_equal(a, b)
