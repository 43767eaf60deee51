"""SciPy's stiff solvers differentiated by the adjoint (`minode.scipy_adjoint`): method
"scipy:Radau", "scipy:BDF" and "scipy:LSODA" with grad="adjoint".

Tolerances: the solves run at rtol = atol = 1e-10 (Robertson: atol = 1e-14, below rtol times
its intermediate's scale, about 3.6e-5, so that it is resolved), where the adjoint's gradient
is accurate to about 1e-8 relative (measured: at most 1.5e-8 against the closed form, from BDF
and LSODA; Radau's 1e-11; on Robertson at most 1.1e-8 against Radau at rtol 1e-13). Against
central differences the bound is 1e-5 relative (`minode.gradcheck.relative_error`, entrywise):
the differences (h = 1e-6 relative) of solves accurate to about 1e-10 carry up to
1e-10 / 1e-6 = 1e-4 noise, measured up to 1.4e-6 here (LSODA's on Robertson, whose adjoint is
within 2.1e-9 of that reference). Against the closed form and against minode's own dopri5
adjoint, which carry no such noise, the bound is 1e-6 entrywise: BDF's and LSODA's global error
is about 100 times their rtol, 1e-8 of the gradient's largest entry, and entries 20 times
smaller than it carry that error relative to themselves (measured: 1.0e-7, BDF against dopri5
on `tanh_layer`; 1.5e-8 against the closed form).
"""
import numpy
import pytest
import scipy.integrate
import scipy.linalg
from autograd import grad

import minode
from minode import ops, scipy_bridge
from minode.adjoint import AugmentedState
from minode.gradcheck import numerical_grad, relative_error
from minode.scipy_adjoint import ScipyAdjointProblem, adjoint_jacobian, adjoint_rates, \
    odeint_scipy_adjoint
from minode.solve import ScipyOptions
from minode.tree import flatten

STIFF_METHODS = ("scipy:Radau", "scipy:BDF", "scipy:LSODA")
TIGHT = dict(rtol=1e-10, atol=1e-10)
DIFFERENCES_BOUND = 1e-5  # the noise of central differences, see the module docstring
ACCURACY_BOUND = 1e-6  # the solvers' global error at rtol 1e-10, see the module docstring
# eigenvalues -1 and -1000 (eigenvectors (1, 1) and (1, -1)): stiff over any span longer
# than a few thousandths
STIFF_A = numpy.array([[-500.5, 499.5], [499.5, -500.5]])
Y0 = numpy.array([1.0, 2.0])


def linear(y, t, matrix):
    return ops.matmul(matrix, y)


def weighted_outputs(weights, method, **options):
    """The loss sum(weights * odeint(...)) of (y0, t, params), for func ``options["func"]``."""
    func = options.pop("func")

    def loss(y0, t, params):
        return ops.sum(weights * minode.odeint(func, y0, t, params, method=method, **options))
    return loss


def gradient_and_differences(loss, args):
    """autograd's gradient of ``loss`` w.r.t. every argument, and central differences."""
    analytic = grad(lambda args: loss(*args))(args)
    return analytic, numerical_grad(lambda args: loss(*args), args)


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_gradients_match_central_differences_on_a_stiff_linear_system(method):
    t = numpy.array([0.0, 0.5, 1.0])
    weights = numpy.array([[0.0, 0.0], [0.3, -0.7], [1.0, 0.5]])
    loss = weighted_outputs(weights, method, func=linear, **TIGHT)
    analytic, numerical = gradient_and_differences(loss, (Y0, t, STIFF_A))
    for name, a, n in zip(("y0", "t", "A"), analytic, numerical):
        assert relative_error(a, n) < DIFFERENCES_BOUND, name


def robertson(y, t, log_rates):
    """Robertson's chemical kinetics (Hairer & Wanner II, sec. IV.1) with log rate constants."""
    k = ops.exp(log_rates)
    a, b, c = y[0], y[1], y[2]
    return ops.stack([-k[0] * a + k[1] * b * c,
                      k[0] * a - k[1] * b * c - k[2] * b * b,
                      k[2] * b * b])


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_gradients_match_central_differences_on_robertson_kinetics(method):
    t = numpy.array([0.0, 0.1, 0.4])
    weights = numpy.array([[0.0, 0.0, 0.0], [0.5, 1e4, -1.0], [1.0, 0.0, 2.0]])
    log_rates = numpy.log([0.04, 1e4, 3e7])
    loss = weighted_outputs(weights, method, func=robertson, rtol=1e-10, atol=1e-14)
    analytic, numerical = gradient_and_differences(
        loss, (numpy.array([1.0, 0.0, 0.0]), t, log_rates))
    for name, a, n in zip(("y0", "t", "log_rates"), analytic, numerical):
        assert relative_error(a, n) < DIFFERENCES_BOUND, name


def test_lsoda_solves_back_over_an_interval_after_a_stiff_one():
    # Each backward interval is a fresh LSODA, which starts in its non-stiff (Adams) mode: the
    # step of ~1e3 that the stiff mode reached over [1e3, 2e3], carried into [1, 1e3], failed
    # its functional iteration ("Unexpected istate in LSODA", istate -5). Against central
    # differences in t and the rates, relative to each gradient's largest entry, to 1e-3: over
    # this span their noise (the solve's 1e-10 of the loss over h) is up to 8.4e-5 (the rates;
    # the adjoint agrees with Radau's to 1e-8), and y0's differences, which move y2 by 1e-6
    # against its scale of 3.6e-5, are off by 7e-4 and left out.
    t = numpy.array([0.0, 1.0, 1e3, 2e3])
    weights = numpy.array([[0.0, 0.0, 0.0], [0.5, 1e4, -1.0], [1.0, 2e4, 0.0], [0.0, 1e4, 2.0]])
    loss = weighted_outputs(weights, "scipy:LSODA", func=robertson, rtol=1e-10, atol=1e-14)
    y0 = numpy.array([1.0, 0.0, 0.0])
    analytic, numerical = gradient_and_differences(
        lambda t, log_rates: loss(y0, t, log_rates), (t, numpy.log([0.04, 1e4, 3e7])))
    for name, a, n in zip(("t", "log_rates"), analytic, numerical):
        assert numpy.abs(a - n).max() < 1e-3 * numpy.abs(n).max(), name


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_gradients_match_the_closed_form_of_a_stiff_linear_system(method):
    """L = w . expm(A T) y0: dL/dy0 = expm(A T)^T w, dL/dT = -dL/dt0 = w . A expm(A T) y0, and
    dL/dA = T * Frechet derivative of expm at A^T T in the direction w y0^T (<X, L(M, E)> =
    <L(M^T, X), E> for the Frechet derivative L of expm)."""
    span, w = 0.5, numpy.array([1.0, 0.5])
    loss = weighted_outputs(numpy.array([[0.0, 0.0], w]), method, func=linear, **TIGHT)
    g_y0, g_t, g_matrix = grad(lambda args: loss(*args))((Y0, numpy.array([0.0, span]),
                                                         STIFF_A))
    propagator = scipy.linalg.expm(STIFF_A * span)
    rate = w @ STIFF_A @ propagator @ Y0
    frechet = span * scipy.linalg.expm_frechet(STIFF_A.T * span, numpy.outer(w, Y0),
                                               compute_expm=False)
    assert relative_error(g_y0, propagator.T @ w) < ACCURACY_BOUND
    assert relative_error(g_t, numpy.array([-rate, rate])) < ACCURACY_BOUND
    assert relative_error(g_matrix, frechet) < ACCURACY_BOUND


def test_per_sample_time_grids_are_differentiable_through_radau():
    """A 2-D t (`minode.time_grids`): one solve per interval in s, t's entries among the
    parameters of each."""
    t = numpy.array([[0.0, 0.3, 1.0], [0.1, 0.5, 0.8]])

    def loss(y0, t, matrix):
        return ops.sum(minode.odeint(lambda y, s, p: ops.matmul(y, p), y0, t, matrix,
                                     method="scipy:Radau", **TIGHT) ** 2)
    analytic, numerical = gradient_and_differences(
        loss, (numpy.array([[1.0, 2.0], [0.5, -1.0]]), t, STIFF_A))
    for name, a, n in zip(("y0", "t", "A"), analytic, numerical):
        assert relative_error(a, n) < DIFFERENCES_BOUND, name


@pytest.mark.parametrize("method", ["scipy:Radau", "scipy:BDF"])
def test_a_state_larger_than_its_quadratures_solves_with_a_dense_jacobian(method):
    """y_i' = -c r_i y_i with rates r = (1, 10, 100, 1000): 4 entries of a against 2 of a_theta
    and a_t, so the backward Jacobian goes to SciPy dense. L = w . y(T), y_i(T) =
    y0_i exp(-c r_i T): dL/dy0 = w exp(-c r T), dL/dc = -T sum w y(T) r, dL/dT = -c sum w y(T) r.
    T = 0.002 keeps every entry of dL/dy0 above 0.1, far above atol (the bound is relative)."""
    rates, span = numpy.array([1.0, 10.0, 100.0, 1000.0]), 0.002
    y0, w = numpy.array([1.0, -2.0, 0.5, 3.0]), numpy.array([0.2, 1.0, -0.5, 2.0])

    def loss(y0, t, c):
        ys = minode.odeint(lambda y, s, c: -c * rates * y, y0, t, c, method=method, **TIGHT)
        return ops.sum(w * ys[-1])
    g_y0, g_t, g_c = grad(lambda args: loss(*args))((y0, numpy.array([0.0, span]),
                                                      numpy.array(1.0)))
    decay = numpy.exp(-rates * span)
    rate_of_loss = -numpy.sum(w * y0 * decay * rates)
    assert relative_error(g_y0, w * decay) < ACCURACY_BOUND
    assert relative_error(g_c, span * rate_of_loss) < ACCURACY_BOUND
    assert relative_error(g_t, numpy.array([-rate_of_loss, rate_of_loss])) < ACCURACY_BOUND


def tanh_layer(y, t, params):
    """A non-stiff nonlinear field on a (batch, 2) state, with a time input."""
    return ops.tanh(ops.matmul(y, params["W"]) + params["b"] * ops.sin(t))


TANH_PARAMS = {"W": numpy.array([[-0.5, 1.2], [-0.9, -0.3]]), "b": numpy.array([0.2, -0.4])}


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_gradients_agree_with_the_dopri5_adjoint_on_a_non_stiff_problem(method):
    y0 = numpy.array([[1.0, -0.5], [0.3, 0.8]])
    t = numpy.array([0.0, 0.7, 2.0])
    weights = numpy.array([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.5, -1.0]],
                           [[0.3, 2.0], [-0.7, 0.1]]])

    def gradient(method):
        loss = weighted_outputs(weights, method, func=tanh_layer, **TIGHT)
        return grad(lambda args: loss(*args))((y0, t, TANH_PARAMS))

    assert relative_error(gradient(method), gradient("dopri5")) < ACCURACY_BOUND


def _backward_pieces():
    """The backward dynamics and their Jacobian after a forward solve of `tanh_layer`, at
    t = 0.4, with time gradients (7 adjoint entries after the 4 of a)."""
    theta, unflatten = flatten(TANH_PARAMS)
    options = ScipyOptions("Radau", 1e-10, 1e-10)
    problem = ScipyAdjointProblem(tanh_layer, unflatten, options, options, minode.SolverStats())
    odeint_scipy_adjoint(numpy.array([[1.0, -0.5], [0.3, 0.8]]), numpy.array([0.0, 1.0]),
                         theta, problem)
    layout = AugmentedState((2, 2), theta.shape[0], True)
    size = 4 + theta.shape[0] + 1
    rates = adjoint_rates(problem, layout, theta, minode.SolverStats().backward)
    return rates, lambda matrix_format: adjoint_jacobian(problem, (2, 2), theta, size,
                                                         matrix_format)


def test_the_backward_jacobian_is_the_derivative_of_the_backward_dynamics_in_a():
    rates, jacobian = _backward_pieces()
    adjoints = numpy.linspace(-1.0, 1.5, 11)
    columns = [numerical_grad(lambda x: ops.sum(rates(0.4, x) * unit), adjoints)
               for unit in numpy.eye(11)]
    derivative = numpy.stack(columns)
    assert relative_error(jacobian("dense")(0.4, adjoints)[:4, :4], derivative[:4, :4]) < 1e-8
    assert not jacobian("dense")(0.4, adjoints)[4:].any()  # the quadratures' rows: zero
    assert not derivative[:, 4:].any()  # nothing depends on the quadratures


def test_sparse_and_banded_jacobians_hold_the_dense_one():
    _, jacobian = _backward_pieces()
    adjoints = numpy.linspace(-1.0, 1.5, 11)
    dense = jacobian("dense")(0.4, adjoints)
    numpy.testing.assert_array_equal(jacobian("sparse")(0.4, adjoints).toarray(), dense)
    banded = jacobian("banded")(0.4, adjoints)
    unpacked = numpy.zeros_like(dense)
    for i, j in numpy.ndindex(4, 4):  # LSODA's packed form, bandwidth 3 both ways
        unpacked[i, j] = banded[3 + i - j, j]
    numpy.testing.assert_array_equal(unpacked, dense)


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_stats_count_scipys_evaluations_jacobians_and_factorisations(method):
    stats = minode.SolverStats()
    t = numpy.array([0.0, 1.0])
    grad(lambda y0: ops.sum(minode.odeint(linear, y0, t, STIFF_A, method=method, stats=stats,
                                          **TIGHT)))(Y0)
    reference = scipy.integrate.solve_ivp(lambda s, y: STIFF_A @ y, (0.0, 1.0), Y0,
                                          method=method[len("scipy:"):], t_eval=t, **TIGHT)
    forward, backward = stats.forward, stats.backward
    assert (forward.jacobians, forward.factorisations) == (reference.njev, reference.nlu)
    # minode counts every call of func, SciPy's nfev not those of its finite differences
    assert forward.nfe >= reference.nfev
    assert forward.steps == 0  # solve_ivp does not report its steps
    assert backward.nfe > 0 and backward.steps > 0 and backward.jacobians > 0
    assert backward.factorisations > 0


def test_a_float32_state_gets_float32_gradients_of_the_float64_solve():
    def loss(y0):
        return ops.sum(minode.odeint(linear, y0, numpy.array([0.0, 1.0]),
                                     STIFF_A.astype(numpy.float32), method="scipy:BDF", **TIGHT))
    gradient = grad(loss)(Y0.astype(numpy.float32))
    expected = numpy.ones(2) + scipy.linalg.expm(STIFF_A).T @ numpy.ones(2)  # ys[0] is y0
    assert gradient.dtype == numpy.float32
    assert relative_error(gradient, expected) < 1e-6


def test_backprop_through_a_scipy_method_is_refused_naming_what_works():
    def loss(y0):
        return ops.sum(minode.odeint(linear, y0, numpy.array([0.0, 1.0]), STIFF_A,
                                     method="scipy:Radau", grad="backprop"))
    with pytest.raises(ValueError, match=r"^method 'scipy:Radau' is forward-only under "
                                         r"grad='backprop'.*grad='adjoint' with 'scipy:Radau', "
                                         r"'scipy:BDF', 'scipy:LSODA'"):
        grad(loss)(Y0)


@pytest.mark.parametrize("method", ["scipy:RK45", "scipy:RK23", "scipy:DOP853"])
def test_an_explicit_scipy_method_refuses_to_be_differentiated_naming_what_works(method):
    def loss(matrix):
        return ops.sum(minode.odeint(linear, Y0, numpy.array([0.0, 1.0]), matrix,
                                     method=method))
    with pytest.raises(ValueError, match=rf"^method '{method}' is forward-only and cannot be "
                                         r"differentiated; use 'scipy:Radau', 'scipy:BDF', "
                                         r"'scipy:LSODA' with grad='adjoint'"):
        grad(loss)(-numpy.eye(2))


def test_a_second_derivative_is_refused_by_name():
    def loss(y0):
        return ops.sum(minode.odeint(linear, y0, numpy.array([0.0, 1.0]), STIFF_A,
                                     method="scipy:LSODA") ** 2)
    with pytest.raises(ValueError, match=r"^method 'scipy:LSODA' is differentiable once only"):
        grad(lambda y0: ops.sum(grad(loss)(y0) ** 2))(Y0)


def test_a_closure_over_a_traced_value_is_refused_beside_traced_inputs():
    def loss(x):
        return ops.sum(minode.odeint(lambda y, s, p: -x * y, x * Y0, numpy.array([0.0, 1.0]),
                                     method="scipy:Radau"))
    with pytest.raises(ValueError, match=r"not passed through params.*A scipy method"):
        grad(loss)(0.5)


@pytest.mark.parametrize("options, message", [
    (dict(adjoint_method="dopri5"), r"^adjoint_method must be None or one of \['scipy:Radau', "
                                    r"'scipy:BDF', 'scipy:LSODA'\] with method 'scipy:Radau'"),
    (dict(adjoint_step_size=0.1), r"^adjoint_step_size must be None with method 'scipy:Radau'"),
    (dict(adjoint_rtol=0.0), r"^adjoint_rtol must be a positive"),
    (dict(seminorm=True), r"^seminorm=True applies to minode's own backward solve"),
])
def test_the_backward_options_of_a_scipy_method_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        minode.odeint(linear, Y0, numpy.array([0.0, 1.0]), STIFF_A, method="scipy:Radau",
                      **options)


def test_adjoint_method_chooses_another_scipy_method_for_the_backward_solve():
    stats = minode.SolverStats()

    def loss(matrix):
        return ops.sum(minode.odeint(linear, Y0, numpy.array([0.0, 0.5]), matrix,
                                     method="scipy:Radau", adjoint_method="scipy:LSODA",
                                     stats=stats, **TIGHT))
    gradient = grad(loss)(STIFF_A)
    expected = 0.5 * scipy.linalg.expm_frechet(STIFF_A.T * 0.5, numpy.outer(numpy.ones(2), Y0),
                                               compute_expm=False)
    assert relative_error(gradient, expected) < ACCURACY_BOUND
    assert stats.backward.factorisations == stats.backward.jacobians  # LSODA factorises once per Jacobian


@pytest.mark.parametrize("n, band", [(7, None), (7, 6), (40, 2)])
def test_the_lsoda_work_array_estimate_is_what_scipy_allocates(n, band):
    jac = {} if band is None else {"jac": lambda t, y: numpy.zeros((2 * band + 1, n)),
                                   "lband": band, "uband": band}
    solver = scipy.integrate.LSODA(lambda t, y: -y, 0.0, numpy.ones(n), 1.0, **jac)
    rwork = solver._lsoda_solver._integrator.rwork
    assert scipy_bridge.lsoda_work_bytes(n, band) == rwork.nbytes


def test_an_lsoda_solve_larger_than_memory_is_refused_naming_the_state(monkeypatch):
    # LSODA's work arrays here: 416 bytes forward (n = 2), 800 backward (n = 6, band 1)
    monkeypatch.setattr(scipy_bridge, "_physical_memory_bytes", lambda: 500)
    times = numpy.array([0.0, 0.5])
    with pytest.raises(ValueError, match=r"^method 'scipy:LSODA' cannot solve the adjoint's "
                                         r"backward state \[a, a_theta, a_t\] \(6 entries\)"):
        grad(lambda m: ops.sum(minode.odeint(linear, Y0, times, m, method="scipy:LSODA")))(
            STIFF_A)
    monkeypatch.setattr(scipy_bridge, "_physical_memory_bytes", lambda: 300)
    with pytest.raises(ValueError, match=r"^method 'scipy:LSODA' cannot solve y0 \(2 entries\) "
                                         r"here: .* 0\.0 GiB for this state.*fewer samples"):
        minode.odeint(linear, Y0, times, STIFF_A, method="scipy:LSODA")
