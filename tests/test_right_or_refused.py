"""Inputs a new user tries first: each gets the right gradient or an error naming the cause.

Right means equal to a closed form or to central differences (`minode.gradcheck.numerical_grad`,
h = 1e-6) in float64, to 1e-6 relative: the solves run at rtol = atol = 1e-10, so solver and
difference errors are both far below that, and a dropped term (a zero, a truncated integer)
is off by order 1. float32 runs are compared to float64 closed forms to float32's 1e-4.
"""
import math

import numpy
import pytest
from autograd import grad

from minode import SolverError, cnf, odeint, ops
from minode.gradcheck import numerical_grad

T = numpy.array([0.0, 1.0])
T_ROWS = numpy.array([[0.0, 1.0], [0.0, 2.0]])
TIGHT = dict(rtol=1e-10, atol=1e-10)
MODES = ("adjoint", "backprop")


# ---------------------------------------------------------------------------------------------
# 1. func closing over a differentiated value (jax's closure_convert case)
# ---------------------------------------------------------------------------------------------

def _closure_loss(t, mode):
    """sum(y(t_last)) for y' = -x y, y(0) = 1, with x reaching func by closure only."""
    def loss(x):
        y0 = numpy.ones((t.shape[0], 1)) if t.ndim == 2 else numpy.ones(1)
        return ops.sum(odeint(lambda y, s, p: -x * y, y0, t, grad=mode, **TIGHT)[-1])
    return loss


def test_backprop_differentiates_a_closure_over_a_traced_value():
    # d/dx exp(-x) = -exp(-x) at x = 0.5: -0.6065...
    assert grad(_closure_loss(T, "backprop"))(0.5) == pytest.approx(-math.exp(-0.5), rel=1e-6)


def test_backprop_differentiates_a_closure_with_one_time_grid_per_sample():
    expected = -math.exp(-0.5) - 2 * math.exp(-1.0)  # rows end at t = 1 and t = 2
    assert grad(_closure_loss(T_ROWS, "backprop"))(0.5) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("t", [T, T_ROWS], ids=["1-D t", "2-D t"])
def test_adjoint_refuses_a_closure_over_a_traced_value_and_says_pass_it_as_params(t):
    with pytest.raises(ValueError, match=r"not passed through params .*grad='adjoint'.* "
                                         r"Pass it through params"):
        grad(_closure_loss(t, "adjoint"))(0.5)


def test_the_same_value_passed_through_params_gets_the_adjoint_gradient():
    def loss(x):
        return ops.sum(odeint(lambda y, s, p: -p * y, numpy.ones(1), T, x, **TIGHT)[-1])
    assert grad(loss)(numpy.array(0.5)) == pytest.approx(-math.exp(-0.5), rel=1e-6)


def test_a_closure_over_an_untraced_constant_is_fine_under_the_adjoint():
    rate = numpy.array(0.5)  # not differentiated: a constant, as any other
    def loss(y0):
        return ops.sum(odeint(lambda y, s, p: -rate * y, y0, T, **TIGHT)[-1])
    assert grad(loss)(numpy.ones(2)) == pytest.approx(numpy.full(2, math.exp(-0.5)), rel=1e-6)


def _cnf_closure_loss(mode):
    """log_det of dz/dt = -x z (2-D): tr(df/dz) = -2x, so log_det(1) = -2x."""
    def loss(x):
        _, log_det = cnf.flow(lambda z, s, p: -x * z, numpy.ones((1, 2)), T, grad=mode,
                              **TIGHT)
        return ops.sum(log_det[-1])
    return loss


def test_cnf_flow_differentiates_a_closure_with_backprop():
    assert grad(_cnf_closure_loss("backprop"))(0.5) == pytest.approx(-2.0, rel=1e-6)


def test_cnf_flow_refuses_a_closure_under_the_adjoint():
    with pytest.raises(ValueError, match=r"not passed through params"):
        grad(_cnf_closure_loss("adjoint"))(0.5)


def test_a_scipy_method_refuses_a_closure_over_a_traced_value():
    def loss(x):
        return ops.sum(odeint(lambda y, s, p: -x * y, numpy.ones(1), T, method="scipy:RK45"))
    with pytest.raises(ValueError, match=r"A scipy method .* cannot differentiate it"):
        grad(loss)(0.5)


# ---------------------------------------------------------------------------------------------
# 2. Parameters that are not floating-point arrays
# ---------------------------------------------------------------------------------------------

def _rotation(y, s, p):
    return ops.matmul(y, p)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("params, dtype", [(numpy.array([[0, 1], [-1, 0]]), "int64"),
                                           (numpy.array([[False, True], [True, False]]), "bool")])
def test_integer_and_boolean_parameters_are_refused_with_the_leaf_named(mode, params, dtype):
    with pytest.raises(ValueError, match=rf"^params must be floating-point, got dtype {dtype}"):
        grad(lambda p: ops.sum(odeint(_rotation, numpy.array([1.0, 0.0]), T, p, grad=mode)))(
            params)


def test_an_integer_leaf_deep_in_a_pytree_is_named_by_its_path():
    params = {"layers": [numpy.ones((2, 2)), numpy.array([1, 2])]}
    with pytest.raises(ValueError, match=r"^params\['layers'\]\[1\] must be floating-point"):
        odeint(lambda y, s, p: -y, numpy.ones(2), T, params)


@pytest.mark.parametrize("leaf", [True, numpy.int64(3), "0.5", None])
def test_booleans_numpy_integers_and_other_leaves_are_refused(leaf):
    with pytest.raises((ValueError, TypeError), match=r"^params\[0\] must be"):
        odeint(lambda y, s, p: -y, numpy.ones(2), T, (leaf,))


@pytest.mark.parametrize("mode", MODES)
def test_a_python_float_parameter_is_differentiated(mode):
    def loss(rate):
        return ops.sum(odeint(lambda y, s, p: -p[0] * y, numpy.ones(2), T, (rate,), grad=mode,
                              **TIGHT)[-1])
    assert grad(loss)(0.5) == pytest.approx(-2 * math.exp(-0.5), rel=1e-6)


@pytest.mark.parametrize("number", [0.5, -1])
def test_a_python_number_parameter_reaches_func_as_a_0d_float64_array(number):
    seen = []
    odeint(lambda y, s, p: seen.append(p) or -p * y, numpy.ones(2), T, number)
    assert isinstance(seen[0], numpy.ndarray) and seen[0].dtype == numpy.float64
    assert seen[0].shape == () and seen[0] == number


@pytest.mark.parametrize("mode", MODES)
def test_float_rotation_parameters_get_the_finite_difference_gradient(mode):
    params = numpy.array([[0.0, 1.0], [-1.0, 0.0]])
    def loss(p):
        return ops.sum(odeint(_rotation, numpy.array([1.0, 0.0]), T, p, grad=mode,
                              **TIGHT)[-1])
    numpy.testing.assert_allclose(grad(loss)(params), numerical_grad(loss, params), rtol=1e-6,
                                  atol=1e-9)


# ---------------------------------------------------------------------------------------------
# 3. float32 states under the adjoint
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_a_float32_state_without_parameters_has_a_float32_gradient(mode):
    def loss(y0):
        return ops.sum(odeint(lambda y, s, p: -y, y0, T, grad=mode)[-1])
    gradient = grad(loss)(numpy.ones(3, numpy.float32))
    assert gradient.dtype == numpy.float32
    numpy.testing.assert_allclose(gradient, numpy.full(3, math.exp(-1.0)), rtol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_a_float32_state_with_float64_parameters_cast_in_func(mode):
    def field(y, s, p):
        return -ops.as_dtype(p, numpy.float32) * y
    def loss(rate):
        return ops.sum(odeint(field, numpy.ones(3, numpy.float32), T, rate, grad=mode)[-1])
    gradient = grad(loss)(numpy.array(0.5))
    assert gradient.dtype == numpy.float64
    assert gradient == pytest.approx(-3 * math.exp(-0.5), rel=1e-4)


def test_a_float32_state_gets_float64_time_gradients_for_float64_times():
    def loss(t):
        return ops.sum(odeint(lambda y, s, p: -y, numpy.ones(2, numpy.float32), t)[-1])
    gradient = grad(loss)(T)
    assert gradient.dtype == numpy.float64
    # dL/dt_1 = dL/dy . f(y(t_1)) = -2 e^-1; dL/dt_0 is its opposite (autonomous f)
    numpy.testing.assert_allclose(gradient, [2 * math.exp(-1.0), -2 * math.exp(-1.0)],
                                  rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# 6. Non-finite y0; 7. NumPy functions autograd cannot trace; func's argument order
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [numpy.nan, numpy.inf, -numpy.inf])
def test_a_non_finite_y0_is_a_value_error_naming_y0_before_any_evaluation(bad):
    calls = []
    y0 = numpy.array([[1.0, 2.0], [3.0, bad]])
    with pytest.raises(ValueError, match=r"^y0 must be finite, got NaN or inf at index \(1, 1\)"):
        odeint(lambda y, s, p: calls.append(s) or -y, y0, T)
    assert calls == []


@pytest.mark.parametrize("mode", MODES)
def test_np_dot_on_a_traced_value_is_named_as_the_cause(mode):
    def loss(p):
        return ops.sum(odeint(lambda y, s, p: numpy.dot(y, p), numpy.array([1.0, 0.0]), T, p,
                              grad=mode))
    with pytest.raises(TypeError, match=r"^func called a NumPy function that autograd cannot "
                                        r"trace .* minode.ops"):
        grad(loss)(numpy.eye(2))


def test_a_numpy_ufunc_of_an_untraceable_result_is_named_as_the_cause_too():
    def loss(p):
        return ops.sum(odeint(lambda y, s, p: -numpy.exp(numpy.dot(y, p)),
                              numpy.array([1.0, 0.0]), T, p, grad="backprop"))
    with pytest.raises(TypeError, match=r"^func called a NumPy function"):
        grad(loss)(numpy.eye(2))


@pytest.mark.parametrize("mode", MODES)
def test_numpy_ufuncs_and_matmul_keep_working_through_autograd(mode):
    def loss(p):
        field = lambda y, s, p: numpy.tanh(numpy.matmul(y, p))  # noqa: E731
        return ops.sum(odeint(field, numpy.array([1.0, 0.5]), T, p, grad=mode, **TIGHT)[-1])
    params = numpy.array([[0.3, -1.0], [1.0, 0.2]])
    numpy.testing.assert_allclose(grad(loss)(params), numerical_grad(loss, params), rtol=1e-6,
                                  atol=1e-9)


def test_torchdiffeq_argument_order_gets_a_hint_about_minodes_order():
    with pytest.raises(ValueError, match=r"shape of y \(2,\), got \(\) .* minode calls "
                                         r"func\(y, t, params\)"):
        odeint(lambda t, y, p: -y, numpy.ones(2), T)


def test_a_func_whose_first_parameter_is_named_t_gets_the_hint_for_any_wrong_shape():
    with pytest.raises(ValueError, match=r"got \(3,\) .* minode calls func\(y, t, params\)"):
        odeint(lambda t, y, p: -y * numpy.ones(3), numpy.ones(2), T)


def test_a_two_argument_func_is_refused_before_any_solve():
    with pytest.raises(TypeError, match=r"^func must accept three arguments, func\(y, t, "
                                        r"params\) .* got func\(t, y\)"):
        odeint(lambda t, y: -y, numpy.ones(2), T)


# ---------------------------------------------------------------------------------------------
# Options a SciPy method would otherwise drop
# ---------------------------------------------------------------------------------------------

def test_a_scipy_method_refuses_a_step_size():
    with pytest.raises(ValueError, match=r"^step_size must be None for method 'scipy:RK45'"):
        odeint(lambda y, s, p: -y, numpy.ones(2), T, method="scipy:RK45", step_size=0.1)


def test_a_scipy_method_starts_with_the_given_first_step():
    calls = []
    odeint(lambda y, s, p: calls.append(float(s)) or -y, numpy.ones(2), T,
           method="scipy:RK45", first_step=1e-3)
    # RK45's first step's stages sit at t0 + c_i * first_step, c = (0, 1/5, 3/10, ...)
    assert calls[1] == pytest.approx(0.2e-3)


@pytest.mark.parametrize("mode", ("forward", "adjoint"))
def test_a_scipy_first_step_longer_than_the_interval_is_cut_to_it(mode):
    # minode's own methods cut such a step to the span; SciPy raised "`first_step` exceeds
    # bounds" before. y' = -x y, y(0) = 1 on [0, 1]: sum(y) = 1 + exp(-x), d/dx = -exp(-x).
    def loss(x):
        return ops.sum(odeint(lambda y, s, p: -p * y, numpy.ones(1), T, x,
                              method="scipy:Radau", first_step=5.0, **TIGHT))
    if mode == "forward":
        assert loss(0.5) == pytest.approx(1.0 + math.exp(-0.5), rel=1e-8)
    else:
        assert grad(loss)(0.5) == pytest.approx(-math.exp(-0.5), rel=1e-6)


def test_a_scipy_first_step_is_converted_to_each_intervals_time_unit():
    # With a 2-D t each interval is solved in s from 0 to 1 (t = start + s * span): a first
    # step of 2 in t is 2 / 20 in s here, not 2 (past the end of s = 1).
    t_rows = numpy.array([[0.0, 10.0], [0.0, 20.0]])
    calls = []
    ys = odeint(lambda y, s, p: calls.append(float(numpy.max(s))) or -0.1 * y,
                numpy.ones((2, 1)), t_rows, method="scipy:RK45", first_step=2.0, **TIGHT)
    numpy.testing.assert_allclose(ys[-1, :, 0], numpy.exp(-0.1 * t_rows[:, -1]), rtol=1e-7)
    # RK45's first step's second stage sits at 0.2 * first_step: 0.4 in t for the longest row
    assert calls[1] == pytest.approx(0.4)


# ---------------------------------------------------------------------------------------------
# A stiff problem whose z cannot be recomputed backwards (Algorithm 1's weak spot)
# ---------------------------------------------------------------------------------------------

STIFF_A = numpy.array([[-1.0, 999.0], [0.0, -1000.0]])  # eigenvalues -1 and -1000


def _stiff_gradient(span, method):
    """d/dA sum(y(span)) for y' = A y, y(0) = (1, 1), by the adjoint, and the closed form
    (the Fréchet derivative of expm, applied to y0)."""
    from scipy.linalg import expm_frechet
    y0 = numpy.ones(2)
    def loss(a):
        return ops.sum(odeint(lambda y, s, p: ops.matmul(p, y), y0, numpy.array([0.0, span]),
                              a, method=method, rtol=1e-8, atol=1e-10)[-1])
    expected = numpy.zeros((2, 2))
    for index in numpy.ndindex(2, 2):
        direction = numpy.zeros((2, 2))
        direction[index] = span
        expected[index] = expm_frechet(STIFF_A * span, direction, compute_expm=False).dot(y0).sum()
    return loss, expected


@pytest.mark.parametrize("method", ["dopri5", "rodas4"])
def test_a_short_stiff_interval_gets_the_closed_form_gradient(method):
    loss, expected = _stiff_gradient(0.005, method)
    numpy.testing.assert_allclose(grad(loss)(STIFF_A), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("span", [0.04, 0.5])
@pytest.mark.parametrize("method", ["dopri5", "rodas4"])
def test_the_adjoint_checkpoints_a_stiff_interval_whose_backward_z_would_be_lost(method, span):
    # Over 0.04 the mode e^{-1000 t} grows by e^40 backwards: recomputed backwards, z (and
    # with it the gradient) would be off by orders of magnitude with every step accepted. The
    # adjoint notices the drift at t = 0 and halves the interval at forward-solved checkpoints.
    loss, expected = _stiff_gradient(span, method)
    numpy.testing.assert_allclose(grad(loss)(STIFF_A), expected, rtol=1e-5, atol=1e-9)


DAMPED_ROTATION = numpy.array([[-0.1, -1.0], [1.0, -0.1]])  # eigenvalues -0.1 +- i: not stiff


@pytest.mark.parametrize("forward", [dict(method="dopri5", rtol=1e-5, atol=1e-5),
                                     dict(method="rodas4", rtol=1e-5, atol=1e-5),
                                     dict(method="rk4", step_size=0.1, adjoint_method="dopri5")])
def test_a_forward_solve_looser_than_the_backward_one_is_not_lost_z(forward):
    # The stored z(t_i) is only as accurate as the forward solve; held to a backward tolerance
    # of 1e-10 it looked lost (by 1e5 times that tolerance) on this stable problem, and every
    # halving found the same, until the refusal blamed an instability that is not there. The
    # gradient is then as accurate as the forward solve: measured 3.6e-5 relative (dopri5),
    # 3.3e-5 (rodas4) and 1.0e-5 (rk4 at h = 0.1), entrywise, against the closed form; held
    # to 1e-4 (an interval treated as lost z is refused, not off by a little).
    from scipy.linalg import expm_frechet
    y0, span = numpy.array([1.0, 0.0]), 5.0

    def loss(a):
        return ops.sum(odeint(lambda y, s, p: ops.matmul(p, y), y0, numpy.array([0.0, span]),
                              a, adjoint_rtol=1e-10, adjoint_atol=1e-10, **forward)[-1])
    expected = numpy.zeros((2, 2))
    for index in numpy.ndindex(2, 2):
        direction = numpy.zeros((2, 2))
        direction[index] = span
        expected[index] = expm_frechet(DAMPED_ROTATION * span, direction,
                                       compute_expm=False).dot(y0).sum()
    numpy.testing.assert_allclose(grad(loss)(DAMPED_ROTATION), expected, rtol=1e-4)


def test_the_adjoint_refuses_when_checkpoints_cannot_keep_z(monkeypatch):
    import minode.adjoint
    monkeypatch.setattr(minode.adjoint, "_MOST_HALVINGS", 0)
    loss, _ = _stiff_gradient(0.04, "dopri5")
    with pytest.raises(SolverError, match=r"lost z between t=0.04 and t=0: .* times the "
                                          r"tolerance.* grad='backprop'"):
        grad(loss)(STIFF_A)


def test_backprop_gets_the_stiff_gradient_too():
    loss, expected = _stiff_gradient(0.04, "rodas4")
    def backprop_loss(a):
        return ops.sum(odeint(lambda y, s, p: ops.matmul(p, y), numpy.ones(2),
                              numpy.array([0.0, 0.04]), a, method="rodas4", rtol=1e-8,
                              atol=1e-10, grad="backprop")[-1])
    numpy.testing.assert_allclose(grad(backprop_loss)(STIFF_A), expected, rtol=1e-5, atol=1e-9)
