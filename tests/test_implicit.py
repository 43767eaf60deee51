"""The implicit method (issue 20): Rodas4's coefficients check themselves, its steps converge
with order 4 on a stiff problem, it matches SciPy's Radau on Van der Pol (mu = 1000) and
Robertson, and its gradients by both modes match closed forms and central differences.

Reference problems (float64):
    stiff linear    y' = A y, A = [[-500.5, 499.5], [499.5, -500.5]], eigenvalues -1 and -1000
                    (eigenvectors (1, 1) and (1, -1)); exact y(t) = expm(A t) y0
    Van der Pol     y1' = y2, y2' = mu (1 - y1^2) y2 - y1, mu = 1000, y(0) = (2, 0)
    Robertson       the chemical kinetics of HW II, sec. IV.1, y(0) = (1, 0, 0), to t = 1e5
"""
import dataclasses
import functools
from fractions import Fraction as F

import numpy
import pytest
import scipy.linalg
from autograd import grad
from autograd.tracer import getval

import minode
import strict_backend as strict
from minode import backend, odeint, ops, rosenbrock
from minode.gradcheck import check_grads
from minode.integrate import SolveOptions, integrate
from minode.jacobian import linearise
from minode.rosenbrock import RODAS4
from minode.rosenbrock_step import rosenbrock_step
from minode.stats import Counts

STIFF_A = numpy.array([[-500.5, 499.5], [499.5, -500.5]])
STIFF_Y0 = numpy.array([1.0, 0.5])
WEIGHTS = numpy.array([0.3, -0.7])


def stiff_linear(y, t, a):
    return ops.matmul(a, y)


def van_der_pol(y, t, mu):
    return ops.stack([y[1], mu * (1.0 - y[0] ** 2) * y[1] - y[0]])


def robertson(y, t, rates):
    k1, k2, k3 = rates[0], rates[1], rates[2]
    return ops.stack([-k1 * y[0] + k3 * y[1] * y[2],
                      k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] ** 2,
                      k2 * y[1] ** 2])


ROBERTSON_RATES = numpy.array([0.04, 3e7, 1e4])


def _beta(method):
    """B = (alpha_ij + gamma_ij), lower triangular with gamma on the diagonal, as floats."""
    s = method.stages
    alpha, gamma = numpy.zeros((s, s)), numpy.zeros((s, s))
    for i in range(s):
        alpha[i, :i] = [float(x) for x in method.alpha_matrix[i]]
        gamma[i, :i + 1] = [float(x) for x in method.gamma_matrix[i]]
    return alpha, gamma


# ---------------------------------------------------------------------------------------------
# The coefficients
# ---------------------------------------------------------------------------------------------

def test_rodas4_meets_the_order_conditions_of_hairer_wanner_table_7_1_written_out():
    # HW II, Table IV.7.1, with beta_ij = alpha_ij + gamma_ij below the diagonal and
    # beta_j' = sum_k beta_jk: independent of the rooted-tree machinery of the module.
    m = RODAS4
    b, g, s = m.b, m.gamma, m.stages
    a = [list(row) + [0] * (s - len(row)) for row in m.alpha_matrix]
    beta = [[a[j][k] + m.gamma_matrix[j][k] if k < j else 0 for k in range(s)] for j in range(s)]
    alpha_j = [sum(row) for row in a]
    beta_j = [sum(row) for row in beta]
    r = range(s)
    conditions = [
        (sum(b), 1),
        (sum(b[j] * beta_j[j] for j in r), F(1, 2) - g),
        (sum(b[j] * alpha_j[j] ** 2 for j in r), F(1, 3)),
        (sum(b[j] * beta[j][k] * beta_j[k] for j in r for k in r), F(1, 6) - g + g ** 2),
        (sum(b[j] * alpha_j[j] ** 3 for j in r), F(1, 4)),
        (sum(b[j] * alpha_j[j] * a[j][k] * beta_j[k] for j in r for k in r), F(1, 8) - g / 3),
        (sum(b[j] * beta[j][k] * alpha_j[k] ** 2 for j in r for k in r), F(1, 12) - g / 3),
        (sum(b[j] * beta[j][k] * beta[k][l] * beta_j[l] for j in r for k in r for l in r),
         F(1, 24) - g / 2 + F(3, 2) * g ** 2 - g ** 3),
    ]
    for value, expected in conditions:
        assert abs(value - expected) < 1e-14, (float(value), float(expected))


def test_rodas4_has_exactly_orders_4_and_3_and_dense_output_of_order_3():
    with pytest.raises(ValueError, match=r"b_j Phi_j .* \(order 5\)"):
        dataclasses.replace(RODAS4, order=5)
    with pytest.raises(ValueError, match=r"b_hat_j Phi_j .* \(order 4\)"):
        dataclasses.replace(RODAS4, error_order=4)
    with pytest.raises(ValueError, match=r"dense output 'rodas4' order condition .* \(order 4\)"):
        dataclasses.replace(RODAS4, dense=dataclasses.replace(RODAS4.dense, order=4))


def _changed(rows, i, j, delta):
    rows = [list(row) for row in rows]
    rows[i][j] += delta
    return rows


def _changed_entry(row, i, delta):
    row = list(row)
    row[i] += delta
    return row


E = F(1, 10 ** 9)  # a change in the 9th or 10th significant digit of each coefficient
CORRUPTED = [
    ("a_32", {"a": _changed(RODAS4.a, 2, 1, E)}, r"row sum of alpha_ij equals alpha_i in row 2"),
    ("c_43", {"c": _changed(RODAS4.c, 3, 2, E)}, r"row sum of alpha_ij equals alpha_i in row 4"),
    # c_65 only enters b: every sum still holds, an order condition breaks.
    ("c_65", {"c": _changed(RODAS4.c, 5, 4, E)},
     r"order condition sum_j b_j Phi_j = 1/gamma for the tree \[t, t\] \(order 3\)"),
    ("m_3", {"m": _changed_entry(RODAS4.m, 2, E)}, r"sum of b equals 1"),
    ("m_hat_2", {"m_hat": _changed_entry(RODAS4.m_hat, 1, E)}, r"sum of b_hat equals 1"),
    ("gamma_2", {"gamma_sums": _changed_entry(RODAS4.gamma_sums, 1, E)},
     r"row sum of gamma_ij equals gamma_i in row 1"),
    ("alpha_4", {"alpha": _changed_entry(RODAS4.alpha, 3, E)},
     r"row sum of alpha_ij equals alpha_i in row 3"),
    ("gamma", {"gamma": RODAS4.gamma + E}, r"row sum of alpha_ij equals alpha_i in row 1"),
    # A change of w_2 by E (theta^2 - theta^3) keeps w_2(1), so only the order conditions of
    # the dense output catch it.
    ("dense h", {"dense": dataclasses.replace(RODAS4.dense, weights=_changed(_changed(
        RODAS4.dense.weights, 1, 1, E), 1, 2, -E))},
     r"dense output 'rodas4' order condition .* tree t \(order 1\), coefficient of theta\^2"),
]


@pytest.mark.parametrize("name, change, message", CORRUPTED, ids=[c[0] for c in CORRUPTED])
def test_a_corrupted_coefficient_is_caught_and_the_error_names_the_condition(name, change,
                                                                             message):
    with pytest.raises(ValueError, match=rf"^tableau 'rodas4': {message} fails"):
        dataclasses.replace(RODAS4, **change)


def test_the_decimals_hold_the_conditions_only_up_to_their_rounding():
    with pytest.raises(ValueError, match=r"^tableau 'rodas4': .* tolerance 0\)"):
        dataclasses.replace(RODAS4, tolerance=0)


def test_weights_whose_stability_function_does_not_vanish_at_infinity_are_caught():
    beta = [tuple(a + g for a, g in zip(alpha_row + (0,), gamma_row))
            for alpha_row, gamma_row in zip(RODAS4.alpha_matrix, RODAS4.gamma_matrix)]
    rosenbrock._check_stiff_decay(RODAS4, "b", RODAS4.b, beta)
    weights = RODAS4.b[:4] + (RODAS4.b[4] - E, RODAS4.b[5] + E)  # sum b still 1
    with pytest.raises(ValueError, match=r"^tableau 'rodas4': L-stability: the stability "
                                         r"function of b vanishes at infinity fails"):
        rosenbrock._check_stiff_decay(RODAS4, "b", weights, beta)


def test_rodas4_is_a_stable_and_its_stability_function_vanishes_at_infinity():
    alpha, gamma = _beta(RODAS4)
    beta = alpha + gamma
    ones = numpy.ones(RODAS4.stages)
    for weights in (RODAS4.b, RODAS4.b_hat):
        b = numpy.array([float(x) for x in weights])

        def stability(z):
            return 1 + z * b @ numpy.linalg.solve(numpy.eye(len(b)) - z * beta, ones)

        on_imaginary_axis = [abs(stability(1j * y)) for y in numpy.logspace(-3, 8, 400)]
        assert max(on_imaginary_axis) <= 1 + 1e-12
        assert abs(stability(-1e12)) < 1e-9


def test_the_engines_form_takes_the_same_step_as_the_textbook_form():
    # One step of HW II eq. (7.4), (I - h gamma J) k_i = h f(y0 + sum alpha_ij k_j)
    # + h J sum gamma_ij k_j + gamma_i h^2 f_t, with J and f_t written out by hand, against
    # rosenbrock_step (eq. (7.25), stages scaled as derivatives).
    def f(y, t):
        return numpy.array([-1000.0 * (y[0] - numpy.cos(t)) + y[1] ** 2,
                            -y[1] + numpy.sin(t) * y[0]])

    def f_traced(y, t):
        return ops.stack([-1000.0 * (y[0] - ops.cos(t)) + y[1] ** 2, -y[1] + ops.sin(t) * y[0]])

    y0, t0, h = numpy.array([0.3, 0.8]), 0.4, 0.05
    jac = numpy.array([[-1000.0, 2 * y0[1]], [numpy.sin(t0), -1.0]])
    f_t = numpy.array([-1000.0 * numpy.sin(t0), numpy.cos(t0) * y0[0]])
    alpha, gamma = _beta(RODAS4)
    g = float(RODAS4.gamma)
    ks = []
    for i in range(RODAS4.stages):
        stage_y = y0 + sum(alpha[i, j] * ks[j] for j in range(i))
        coupling = sum((gamma[i, j] * ks[j] for j in range(i)), numpy.zeros(2))
        right = h * f(stage_y, t0 + float(RODAS4.alpha[i]) * h) + h * jac @ coupling \
            + float(RODAS4.gamma_sums[i]) * h ** 2 * f_t
        ks.append(numpy.linalg.solve(numpy.eye(2) - h * g * jac, right))
    expected = y0 + sum(float(b) * k for b, k in zip(RODAS4.b, ks))
    linearisation = linearise(f_traced, y0, t0)
    numpy.testing.assert_allclose(linearisation.jacobian, jac, rtol=1e-14)
    numpy.testing.assert_allclose(linearisation.time_derivative, f_t, rtol=1e-14)
    y1, _, _ = rosenbrock_step(f_traced, RODAS4, y0, t0, h, linearisation)
    numpy.testing.assert_allclose(y1, expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Convergence and accuracy
# ---------------------------------------------------------------------------------------------

def _fixed_steps(rhs, y0, t_end, n_steps):
    y, h = y0, t_end / n_steps
    for k in range(n_steps):
        y, _, _ = rosenbrock_step(rhs, RODAS4, y, k * h, h, linearise(rhs, y, k * h))
    return y


def _observed_order(errors, step_counts):
    return -numpy.polyfit(numpy.log(step_counts), numpy.log(errors), 1)[0]


def test_fixed_steps_converge_with_order_4_on_the_stiff_linear_problem():
    # h lambda runs from -125 to -8 for the fast mode: stiff at every step size here.
    rhs = lambda y, t: ops.matmul(STIFF_A, y)  # noqa: E731
    exact = scipy.linalg.expm(STIFF_A) @ STIFF_Y0
    counts = [8, 16, 32, 64, 128]
    errors = [numpy.abs(_fixed_steps(rhs, STIFF_Y0, 1.0, n) - exact).max() for n in counts]
    assert 3.9 <= _observed_order(errors, counts) <= 4.1, errors


def test_fixed_steps_converge_with_order_4_on_a_nonautonomous_problem():
    # y' = -2 t y^2, y = 1 / (1 + t^2): checks the f_t terms (gamma_i h^2 f_t).
    rhs = lambda y, t: -2.0 * t * y * y  # noqa: E731
    counts = [16, 32, 64, 128]
    errors = [abs(_fixed_steps(rhs, numpy.array([1.0]), 2.0, n)[0] - 0.2) for n in counts]
    assert 3.8 <= _observed_order(errors, counts) <= 4.4, errors


def _mixed_norm_error(ys, reference, rtol, atol):
    return float(numpy.sqrt(numpy.mean(((ys - reference) / (atol + rtol * numpy.abs(reference)))
                                       ** 2)))


@pytest.mark.parametrize("problem", ["van_der_pol", "robertson"])
def test_rodas4_matches_scipy_radau_on_stiff_problems(problem):
    if problem == "van_der_pol":
        func, y0, params, atol = van_der_pol, numpy.array([2.0, 0.0]), numpy.array(1000.0), 1e-6
        t = numpy.linspace(0.0, 3000.0, 7)
    else:
        func, y0, params, atol = robertson, numpy.array([1.0, 0.0, 0.0]), ROBERTSON_RATES, 1e-10
        t = numpy.concatenate([[0.0], numpy.logspace(-5, 5, 11)])
    reference = odeint(func, y0, t, params, method="scipy:Radau", rtol=1e-10, atol=atol * 1e-4)
    stats = minode.SolverStats()
    ys = odeint(func, y0, t, params, method="rodas4", rtol=1e-6, atol=atol, stats=stats)
    assert _mixed_norm_error(ys, reference, 1e-6, atol) <= 10.0
    assert stats.forward.steps < 2000  # dopri5 needs more than 10,000 on either


def test_dense_output_costs_no_extra_steps_and_is_accurate():
    sparse, dense = minode.SolverStats(), minode.SolverStats()
    odeint(stiff_linear, STIFF_Y0, numpy.array([0.0, 2.0]), STIFF_A, method="rodas4",
           rtol=1e-8, atol=1e-10, stats=sparse)
    t = numpy.linspace(0.0, 2.0, 41)
    ys = odeint(stiff_linear, STIFF_Y0, t, STIFF_A, method="rodas4", rtol=1e-8, atol=1e-10,
                stats=dense)
    assert dense.forward.steps == sparse.forward.steps
    exact = numpy.stack([scipy.linalg.expm(STIFF_A * t_i) @ STIFF_Y0 for t_i in t])
    assert numpy.abs(ys - exact).max() < 1e-7


@pytest.mark.parametrize("shape", [(3,), (2, 3), (0,), (3, 0)])
def test_states_of_any_shape_are_solved_flattened(shape):
    # The Jacobian of a state of shape (2, 3) is 6 x 6 (of the state flattened in C order).
    rates = numpy.arange(1.0, 1.0 + numpy.prod(shape)).reshape(shape) * 100.0
    ys = odeint(lambda y, t, k: -k * y, numpy.ones(shape), numpy.array([0.0, 0.01]), rates,
                method="rodas4", rtol=1e-8, atol=1e-10)
    assert ys.shape == (2,) + shape
    numpy.testing.assert_allclose(ys[-1], numpy.exp(-0.01 * rates), rtol=1e-6, atol=1e-9)


def test_a_float32_state_stays_float32_and_is_accurate_to_its_tolerance():
    def forced(y, t, a):
        return ops.matmul(a, y) + ops.sin(t) * y

    t = numpy.array([0.0, 0.5, 1.0])
    ys = odeint(forced, STIFF_Y0.astype(numpy.float32), t, STIFF_A.astype(numpy.float32),
                method="rodas4", rtol=1e-5, atol=1e-7)
    reference = odeint(forced, STIFF_Y0, t, STIFF_A, method="scipy:Radau", rtol=1e-12,
                       atol=1e-14)
    assert ys.dtype == numpy.float32
    numpy.testing.assert_allclose(ys, reference, rtol=0, atol=1e-5)


def test_a_decreasing_time_grid_is_solved_backwards_in_time():
    # y' = -A y + forcing is stiff (and stable) backwards in time; the exact solution of
    # y' = -A y + (sin t, 0) is checked against SciPy's Radau at 1e-12.
    def backward_stable(y, t, a):
        return -ops.matmul(a, y) + ops.stack([ops.sin(t), 0.0 * t])

    t = numpy.array([1.0, 0.6, 0.0])
    ys = odeint(backward_stable, STIFF_Y0, t, STIFF_A, method="rodas4", rtol=1e-8, atol=1e-10)
    reference = odeint(backward_stable, STIFF_Y0, t, STIFF_A, method="scipy:Radau",
                       rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(ys, reference, rtol=1e-6, atol=1e-9)


def _with_quadratures(y, t):
    """Two stiff entries and 12 quadratures of them (as a_theta and a_t are in the adjoint's
    augmented state: read by nothing)."""
    z = y[:2]
    ramp = backend.asarray(numpy.linspace(0.5, 2.0, 6))
    return ops.concatenate([ops.matmul(backend.asarray(STIFF_A), z), z[0] * z[1] * ramp,
                            ops.sin(t) * z[0] + z[1] ** 2 * ramp])


def test_quadratures_are_solved_without_growing_the_factorisation_and_give_the_same_steps():
    # Factorising J's 2 x 2 block and coupling the quadratures through Jacobian-vector
    # products is the same method as factorising the full 14 x 14 Jacobian.
    y0 = numpy.concatenate([STIFF_Y0, numpy.zeros(12)])
    assert linearise(_with_quadratures, y0, 0.3, quadratures=12).jacobian.shape == (2, 2)
    assert linearise(_with_quadratures, y0, 0.3, quadratures=11).jacobian.shape == (14, 14)
    options = SolveOptions(RODAS4, rtol=1e-8, atol=1e-10)
    full, partitioned = Counts(), Counts()
    expected, _ = integrate(_with_quadratures, y0, [0.0, 0.5, 2.0], options, full)
    outputs, _ = integrate(_with_quadratures, y0, [0.0, 0.5, 2.0], options, partitioned,
                           quadratures=12)
    assert (partitioned.steps, partitioned.rejected) == (full.steps, full.rejected)
    numpy.testing.assert_allclose(outputs, expected, rtol=1e-12)


def test_quadratures_that_the_vector_field_reads_are_refused():
    y0 = numpy.concatenate([STIFF_Y0, numpy.zeros(12)])
    with pytest.raises(ValueError, match=r"last 13 entries of the state were declared "
                                         r"quadratures, but the vector field depends on them"):
        linearise(_with_quadratures, y0, 0.3, quadratures=13)


# ---------------------------------------------------------------------------------------------
# Statistics and errors
# ---------------------------------------------------------------------------------------------

def test_stats_count_one_jacobian_per_step_and_one_lu_per_trial():
    stats = minode.SolverStats()
    odeint(van_der_pol, numpy.array([2.0, 0.0]), numpy.linspace(0.0, 1000.0, 3),
           numpy.array(1000.0), method="rodas4", rtol=1e-5, atol=1e-5, stats=stats)
    counts = stats.forward
    assert counts.steps > 0 and counts.rejected > 0
    assert counts.jacobians == counts.steps  # one per accepted step, reused by its retries
    assert counts.factorisations == counts.steps + counts.rejected
    # One evaluation for the first-step estimate, one per Jacobian (the trace gives f too),
    # five per trial (stages 2 to 6).
    assert counts.nfe == 1 + counts.jacobians + 5 * counts.factorisations
    assert f"{counts.jacobians} Jacobians, {counts.factorisations} LU factorisations" \
        in str(stats)


def test_explicit_solves_report_no_jacobians():
    stats = minode.SolverStats()
    odeint(stiff_linear, STIFF_Y0, numpy.array([0.0, 0.01]), STIFF_A, stats=stats)
    assert stats.forward.jacobians == stats.forward.factorisations == 0
    assert "Jacobian" not in str(stats)


def test_a_jacobian_that_is_not_finite_is_an_error_naming_the_cause():
    with pytest.raises(minode.SolverError, match=r"the Jacobian df/dy of func \(by autograd\) "
                                                 r"is not finite at t=0"):
        with numpy.errstate(divide="ignore"):
            odeint(lambda y, t, p: ops.sqrt(y), numpy.array([0.0]), numpy.array([0.0, 1.0]),
                   method="rodas4")


def test_a_solution_that_blows_up_ends_in_a_step_size_underflow():
    # y' = y^2, y(0) = 1: y = 1 / (1 - t) blows up at t = 1.
    with pytest.raises(minode.SolverError, match=r"step size underflow at t=1, .*'rodas4'"):
        with numpy.errstate(over="ignore", invalid="ignore"):
            odeint(lambda y, t, p: y * y, numpy.array([1.0]), numpy.array([0.0, 2.0]),
                   method="rodas4")


def test_rodas4_chooses_its_own_steps():
    with pytest.raises(ValueError, match=r"step_size must be None for the adaptive method "
                                         r"'rodas4'"):
        odeint(stiff_linear, STIFF_Y0, numpy.array([0.0, 1.0]), STIFF_A, method="rodas4",
               step_size=0.1)


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------

def _closed_form_gradients(t_end):
    """d/dA and d/dy0 of w . expm(A T) y0: the Frechet derivative of expm along each E_ij."""
    grad_a = numpy.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            direction = numpy.zeros((2, 2))
            direction[i, j] = t_end
            grad_a[i, j] = WEIGHTS @ scipy.linalg.expm_frechet(
                STIFF_A * t_end, direction, compute_expm=False) @ STIFF_Y0
    return grad_a, scipy.linalg.expm(STIFF_A * t_end).T @ WEIGHTS


def _gradients_of_last_output(t, mode, stats=None):
    def loss(a, y0):
        ys = odeint(stiff_linear, y0, t, a, method="rodas4", rtol=1e-8, atol=1e-10, grad=mode,
                    stats=stats)
        return ops.sum(ops.getitem(ys, -1) * WEIGHTS)
    return grad(loss, (0, 1))(STIFF_A, STIFF_Y0)


# The adjoint solves z backwards as well as a (Algorithm 1): on a stiff problem that is
# unstable (z' = A z backwards grows like e^(1000 t)), so the adjoint's grid resets z to the
# stored forward values every 0.005 (growth e^5 at most); backprop needs no such grid.
GRIDS = {"backprop": numpy.array([0.0, 1.0]), "adjoint": numpy.linspace(0.0, 1.0, 201)}


@pytest.mark.parametrize("mode", ["backprop", "adjoint"])
def test_gradients_match_the_closed_form_of_a_stiff_linear_system(mode):
    # Solves at rtol 1e-8 give gradients accurate to about 1e-8 relative (4e-9 and 1.2e-9
    # measured); a missing term or a wrong sign would be off by order 1.
    stats = minode.SolverStats()
    grad_a, grad_y0 = _gradients_of_last_output(GRIDS[mode], mode, stats)
    expected_a, expected_y0 = _closed_form_gradients(1.0)
    numpy.testing.assert_allclose(grad_a, expected_a, rtol=0, atol=1e-7 * abs(expected_a).max())
    numpy.testing.assert_allclose(grad_y0, expected_y0, rtol=1e-7)
    if mode == "adjoint":  # the backward solve is implicit too (adjoint_method defaults to it)
        assert stats.backward.jacobians > 0


# Van der Pol with mu = 50 from (2, -0.6): the fast eigenvalue is about -150, stiff over
# [0, 0.3] (h |lambda| reaches 10 and more). The loss sees every output (so the adjoint's
# intervals are 0.02 long, growth e^3 at most).
VDP_TIMES = numpy.linspace(0.0, 0.3, 16)
VDP_WEIGHTS = numpy.random.default_rng(3).normal(size=(len(VDP_TIMES), 2))
VDP_MU, VDP_Y0 = numpy.array(50.0), numpy.array([2.0, -0.6])


@functools.cache
def _radau_central_differences(eps=1e-6):
    """d loss / d(mu, y0) by central differences of SciPy's Radau at rtol 1e-12.

    Each solve is accurate to about 1e-12 relative, so the differences carry about
    1e-12 / eps = 1e-6 relative noise at worst (1.2e-7 measured for mu, 2e-9 for y0).
    """
    def loss(mu, y0):
        ys = odeint(van_der_pol, y0, VDP_TIMES, mu, method="scipy:Radau", rtol=1e-12,
                    atol=1e-14)
        return float(numpy.sum(ys * VDP_WEIGHTS))

    step_mu = eps * VDP_MU
    grad_mu = (loss(VDP_MU + step_mu, VDP_Y0) - loss(VDP_MU - step_mu, VDP_Y0)) / (2 * step_mu)
    grad_y0 = [(loss(VDP_MU, VDP_Y0 + eps * e) - loss(VDP_MU, VDP_Y0 - eps * e)) / (2 * eps)
               for e in numpy.eye(2)]
    return grad_mu, numpy.array(grad_y0)


@pytest.mark.parametrize("mode", ["backprop", "adjoint"])
def test_gradients_match_central_differences_on_a_nonlinear_stiff_problem(mode):
    # Solves at rtol 1e-9 give gradients to about 1e-8 relative, below the differences' noise.
    def loss(mu, y0):
        ys = odeint(van_der_pol, y0, VDP_TIMES, mu, method="rodas4", rtol=1e-9, atol=1e-9,
                    grad=mode)
        return ops.sum(ys * VDP_WEIGHTS)

    grad_mu, grad_y0 = grad(loss, (0, 1))(VDP_MU, VDP_Y0)
    expected_mu, expected_y0 = _radau_central_differences()
    numpy.testing.assert_allclose(grad_mu, expected_mu, rtol=1e-6)
    numpy.testing.assert_allclose(grad_y0, expected_y0, rtol=1e-6)


@pytest.mark.parametrize("n_params", [1, 13])  # 13: more quadratures than couple, see jacobian
@pytest.mark.parametrize("mode", ["adjoint", "backprop"])
def test_a_state_of_size_zero_has_zero_gradients_through_rodas4(mode, n_params):
    # The adjoint's augmented state is then all quadratures (a_theta, a_t), which the
    # linearisation refused as "the implicit part cannot be empty".
    def loss(rates, t):
        return ops.sum(odeint(lambda y, s, p: -ops.sum(p) * s * y, numpy.ones((0, 2)), t,
                              rates, method="rodas4", grad=mode))

    grad_rates, grad_t = grad(loss, (0, 1))(numpy.ones(n_params), numpy.array([0.0, 1.0]))
    numpy.testing.assert_array_equal(grad_rates, numpy.zeros(n_params))
    numpy.testing.assert_array_equal(grad_t, numpy.zeros(2))


def test_the_adjoint_with_rodas4_still_refuses_a_closure_over_a_traced_value():
    # The Jacobian's trace makes func's result traced; a value traced outside it still is
    # refused (it would be treated as a constant: a wrong gradient).
    def loss(x):
        ys = odeint(lambda y, t, p: -x * y, numpy.array([1.0]), numpy.array([0.0, 1.0]),
                    method="rodas4", grad="adjoint")
        return ops.sum(ys)

    with pytest.raises(ValueError, match=r"not passed through params"):
        grad(loss)(0.5)


@pytest.mark.parametrize("transpose", [False, True])
def test_lu_solve_has_first_and_second_derivatives_in_matrix_and_right_side(transpose):
    rng = numpy.random.default_rng(0)
    matrix, rhs = rng.normal(size=(4, 4)) + 4 * numpy.eye(4), rng.normal(size=4)
    weights = rng.normal(size=4)

    def solved(matrix, rhs):
        x = ops.lu_solve(matrix, rhs, ops.lu_factor(getval(matrix)), transpose)
        return ops.sum(weights * x * x)

    numpy.testing.assert_allclose(ops.lu_solve(matrix, rhs, ops.lu_factor(matrix), transpose),
                                  numpy.linalg.solve(matrix.T if transpose else matrix, rhs),
                                  rtol=1e-13)
    check_grads(solved, matrix, rhs, order=2)


def test_a_singular_matrix_is_reported_by_its_factors():
    assert ops.lu_factor(numpy.array([[1.0, 2.0], [2.0, 4.0]])).singular
    assert ops.lu_factor(numpy.array([[1.0, numpy.nan], [0.0, 1.0]])).singular
    with pytest.raises(ValueError, match=r"lu_solve: the matrix is singular"):
        ops.lu_solve(numpy.eye(2), numpy.ones(2), ops.lu_factor(numpy.zeros((2, 2))))


# ---------------------------------------------------------------------------------------------
# The strict (CuPy-like) backend
# ---------------------------------------------------------------------------------------------

def _nonautonomous_loss(backend_module, mode):
    a = backend_module.asarray(STIFF_A)
    y0 = backend_module.asarray(STIFF_Y0)
    t = backend_module.asarray(numpy.linspace(0.0, 0.02, 5))
    weights = backend_module.asarray(WEIGHTS)

    def func(y, t, a):
        return ops.matmul(a, y) + ops.sin(t) * y

    def loss(a):
        ys = odeint(func, y0, t, a, method="rodas4", rtol=1e-8, atol=1e-10, grad=mode)
        return ops.sum(ops.getitem(ys, -1) * weights)
    return loss, a


@pytest.mark.parametrize("mode", ["backprop", "adjoint"])
def test_rodas4_and_its_gradients_run_on_the_strict_backend(mode, strict_backend):
    loss, a = _nonautonomous_loss(strict_backend, mode)
    value, gradient = loss(a), grad(loss)(a)
    assert type(gradient) is strict.StrictArray
    backend.set_backend("numpy")
    try:
        numpy_loss, numpy_a = _nonautonomous_loss(numpy, mode)
        expected_value, expected_gradient = numpy_loss(numpy_a), grad(numpy_loss)(numpy_a)
    finally:
        backend.set_backend("strict")
    numpy.testing.assert_allclose(backend.to_numpy(value), expected_value, rtol=1e-13)
    numpy.testing.assert_allclose(backend.to_numpy(gradient), expected_gradient, rtol=1e-12)


def test_the_quadratures_coupling_runs_on_the_strict_backend(strict_backend):
    options = SolveOptions(RODAS4, rtol=1e-8, atol=1e-10)
    y0 = numpy.concatenate([STIFF_Y0, numpy.zeros(12)])
    outputs, _ = integrate(_with_quadratures, strict_backend.asarray(y0), [0.0, 2.0], options,
                           Counts(), quadratures=12)
    assert type(outputs[-1]) is strict.StrictArray
    backend.set_backend("numpy")
    try:
        expected, _ = integrate(_with_quadratures, y0, [0.0, 2.0], options, Counts(),
                                quadratures=12)
    finally:
        backend.set_backend("strict")
    numpy.testing.assert_allclose(backend.to_numpy(outputs[-1]), expected[-1], rtol=1e-13)
