"""minode.regularisers: RNODE's integrals against a direct quadrature along known trajectories,
their adjoint gradients against central differences, STEER's end time, and bad input refused
by name."""
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from autograd import grad

from minode import cnf, odeint, ops, planar, regularisers
from minode.gradcheck import numerical_grad, relative_error

A = np.array([[-0.3, 1.2, 0.0], [-0.8, 0.1, 0.4], [0.2, -0.5, -0.6]])
T_END = 1.5
TIGHT = {"method": "dopri5", "rtol": 1e-10, "atol": 1e-12}


def linear(z, t, a):
    """f = A z per row of z (B, 3)."""
    return ops.matmul(z, ops.transpose(a))


def exact_path(z0, times):
    """z(t) = expm(A t) z0 at each time, shape (len(times), 3)."""
    return np.stack([scipy.linalg.expm(A * s) @ z0 for s in times])


def simpson(values, times):
    return scipy.integrate.simpson(values, x=times)


def test_kinetic_integral_of_a_linear_flow_matches_quadrature_of_the_closed_form():
    z0 = np.array([[1.0, -0.5, 0.3], [0.2, 0.9, -1.1]])
    t = np.array([0.0, 0.75, T_END])   # 0.75 lies on the quadrature grid
    ys, integrals = regularisers.regularised_odeint(linear, z0, t, A, regularisers=("kinetic",),
                                                    **TIGHT)
    fine = np.linspace(0.0, T_END, 2001)
    for b in range(2):
        path = exact_path(z0[b], fine)
        speed = np.sum((path @ A.T) ** 2, axis=1)          # ||A z(t)||^2
        for i, end in enumerate(t):
            upto = fine <= end + 1e-12
            expected = simpson(speed[upto], fine[upto]) if i else 0.0
            assert integrals["kinetic"][i, b] == pytest.approx(expected, rel=1e-8, abs=1e-12)
        np.testing.assert_allclose(ys[-1, b], path[-1], rtol=1e-8)


def test_jacobian_integral_with_basis_probes_sums_to_the_frobenius_norm_times_the_time():
    # row i probes with e_i: ||e_i^T A||^2 is the squared norm of row i of A, so the rows'
    # integrals add up to ||A||_F^2 T exactly (df/dz = A at every point of the path)
    z0 = np.tile([1.0, -0.5, 0.3], (3, 1))
    _, integrals = regularisers.regularised_odeint(linear, z0, np.array([0.0, T_END]), A,
                                                   regularisers=("jacobian",), noise=np.eye(3),
                                                   **TIGHT)
    np.testing.assert_allclose(integrals["jacobian"][-1], np.sum(A ** 2, axis=1) * T_END,
                               rtol=1e-10)
    assert integrals["jacobian"][-1].sum() == pytest.approx(np.sum(A ** 2) * T_END, rel=1e-10)


def tanh_field(z, t, w):
    return ops.tanh(ops.matmul(z, w))


@pytest.mark.parametrize("error_control", [False, True])
def test_both_integrals_of_a_nonlinear_flow_match_quadrature_along_its_solved_path(
        error_control):
    rng = np.random.default_rng(0)
    w, z0 = rng.normal(size=(3, 3)), rng.normal(size=(2, 3))
    noise = rng.choice([-1.0, 1.0], size=(2, 3))
    fine = np.linspace(0.0, T_END, 1501)
    ys, integrals = regularisers.regularised_odeint(tanh_field, z0, np.array([0.0, T_END]), w,
                                                    noise=noise, error_control=error_control,
                                                    **TIGHT)
    path = odeint(tanh_field, z0, fine, w, **TIGHT)
    f = np.tanh(path @ w)                                   # (time, B, 3)
    jacobians = np.einsum("tbj,ij->tbji", 1 - f ** 2, w)    # df_j/dz_i = (1 - f_j^2) w_ij
    probed = np.einsum("tbji,bj->tbi", jacobians, noise)    # eps^T J
    np.testing.assert_allclose(integrals["kinetic"][-1],
                               [simpson(np.sum(f[:, b] ** 2, axis=1), fine) for b in range(2)],
                               rtol=1e-8)
    np.testing.assert_allclose(integrals["jacobian"][-1],
                               [simpson(np.sum(probed[:, b] ** 2, axis=1), fine)
                                for b in range(2)], rtol=1e-8)
    np.testing.assert_allclose(ys[-1], path[-1], rtol=1e-9)


def test_integrals_run_over_abs_dt_backwards_in_time():
    z0 = np.array([[1.0, -0.5, 0.3]])
    forward = regularisers.regularised_odeint(linear, z0, np.array([0.0, T_END]), A,
                                              noise=np.ones((1, 3)), **TIGHT)[1]
    end = exact_path(z0[0], [T_END])
    backward = regularisers.regularised_odeint(linear, end, np.array([T_END, 0.0]), A,
                                               noise=np.ones((1, 3)), **TIGHT)[1]
    for name in regularisers.REGULARISERS:
        assert backward[name][-1, 0] > 0
        assert backward[name][-1, 0] == pytest.approx(forward[name][-1, 0], rel=1e-8)


@pytest.mark.parametrize("grad_mode, error_control", [("adjoint", False), ("adjoint", True),
                                                      ("backprop", False)])
def test_gradients_of_the_integrals_agree_with_central_differences(grad_mode, error_control):
    rng = np.random.default_rng(1)
    w, z0 = rng.normal(size=(3, 3)), rng.normal(size=(2, 3))
    noise = rng.normal(size=(2, 3))
    weights = np.array([0.7, 0.3, 1.1])   # sum over ys, kinetic, jacobian, each weighted

    def loss(w):
        ys, integrals = regularisers.regularised_odeint(
            tanh_field, z0, np.array([0.0, 1.0]), w, noise=noise, grad=grad_mode,
            error_control=error_control, **TIGHT)
        return (weights[0] * ops.sum(ops.square(ops.getitem(ys, -1)))
                + weights[1] * ops.sum(ops.getitem(integrals["kinetic"], -1))
                + weights[2] * ops.sum(ops.getitem(integrals["jacobian"], -1)))

    # float64, solves at rtol 1e-10: the adjoint is as accurate as the solver, central
    # differences (step 1e-6) to about 1e-8 relative
    assert relative_error(grad(loss)(w), numerical_grad(loss, w)) < 1e-6


def test_flow_with_regularisers_keeps_the_log_determinant_of_cnf_flow():
    params = planar.init_planar_cnf(np.random.default_rng(2), units=4, hidden=8)
    z = np.random.default_rng(3).normal(size=(5, 2))
    noise = np.random.default_rng(4).choice([-1.0, 1.0], size=(5, 2))
    t = np.array([0.0, 1.0])
    zs, log_det = cnf.flow(planar.planar_cnf_with_trace, z, t, params, trace="closed_form",
                           **TIGHT)
    for trace, field in (("closed_form", planar.planar_cnf_with_trace),
                         ("exact", planar.planar_cnf)):
        zs_r, log_det_r, integrals = regularisers.regularised_flow(
            field, z, t, params, trace=trace, noise=noise, **TIGHT)
        np.testing.assert_allclose(zs_r, zs, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(log_det_r, log_det, rtol=1e-8, atol=1e-10)
        _, plain = regularisers.regularised_odeint(planar.planar_cnf, z, t, params, noise=noise,
                                                   **TIGHT)
        for name in regularisers.REGULARISERS:
            np.testing.assert_allclose(integrals[name], plain[name], rtol=1e-8, atol=1e-12)


def test_hutchinson_flow_shares_its_probe_between_trace_and_frobenius_norm():
    params = planar.init_planar_cnf(np.random.default_rng(2), units=4, hidden=8)
    z = np.random.default_rng(3).normal(size=(5, 2))
    noise = np.random.default_rng(4).choice([-1.0, 1.0], size=(5, 2))
    t = np.array([0.0, 1.0])
    _, log_det = cnf.flow(planar.planar_cnf, z, t, params, trace="hutchinson", noise=noise,
                          **TIGHT)
    _, log_det_r, integrals = regularisers.regularised_flow(
        planar.planar_cnf, z, t, params, trace="hutchinson", noise=noise, **TIGHT)
    np.testing.assert_allclose(log_det_r, log_det, rtol=1e-8, atol=1e-10)
    assert set(integrals) == {"kinetic", "jacobian"}


def test_steer_end_time_is_uniform_on_its_interval():
    rng = np.random.default_rng(5)
    draws = np.array([regularisers.steer_end_time(1.0, 0.5, rng) for _ in range(4000)])
    assert draws.min() >= 0.5 and draws.max() <= 1.5
    assert draws.mean() == pytest.approx(1.0, abs=0.02)
    assert draws.std() == pytest.approx(1.0 / np.sqrt(12), abs=0.02)   # U[0.5, 1.5]


@pytest.mark.parametrize("kwargs, match", [
    ({"regularisers": ("kinetic", "speed")}, "each of regularisers must be one of"),
    ({"regularisers": "kinetic"}, "regularisers must be a tuple"),
    ({"regularisers": ("kinetic", "kinetic")}, "each integral once"),
    ({"regularisers": ("jacobian",)}, "noise must be an array of the state's shape"),
    ({"regularisers": ("jacobian",), "noise": np.ones((2, 2))}, "noise must be an array"),
    ({"regularisers": ("kinetic",), "noise": np.ones((2, 3))}, "noise .* is used only"),
    ({"regularisers": ("jacobian",), "noise": np.ones((2, 3), dtype="float32")},
     "noise must have the state's dtype"),
])
def test_bad_input_is_refused_naming_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        regularisers.regularised_odeint(linear, np.ones((2, 3)), np.array([0.0, 1.0]), A,
                                        **kwargs)


def test_a_state_without_a_batch_axis_is_refused():
    with pytest.raises(ValueError, match="y0 must be an array with the batch axis first"):
        regularisers.regularised_odeint(linear, np.ones(3), np.array([0.0, 1.0]), A,
                                        regularisers=("kinetic",))


@pytest.mark.parametrize("end, half_width, match", [
    (1.0, 1.0, "half_width must be below"), (1.0, 0.0, "half_width must be a positive"),
    (-1.0, 2.0, "half_width must be below")])
def test_steer_refuses_an_interval_that_reaches_the_start(end, half_width, match):
    with pytest.raises(ValueError, match=match):
        regularisers.steer_end_time(end, half_width, np.random.default_rng(0))


@pytest.mark.parametrize("names, noise", [(("kinetic",), None),
                                          (("jacobian",), np.ones((2, 3, 4)))])
def test_a_field_of_another_shape_is_refused_not_reshaped(names, noise):
    # (2, 4, 3) for a (2, 3, 4) state has as many entries: flattening it per sample would
    # silently solve another ODE, which odeint itself refuses
    def swapped(z, t, params):
        return ops.negative(ops.transpose(z, (0, 2, 1)))

    with pytest.raises(ValueError, match=r"func must return dy/dt with the shape of y "
                                         r"\(2, 3, 4\), got \(2, 4, 3\)"):
        regularisers.regularised_odeint(swapped, np.ones((2, 3, 4)), np.array([0.0, 1.0]),
                                        regularisers=names, noise=noise)


def test_a_float16_state_is_refused_by_odeint_naming_y0():
    # the integrals are carried times 1e-8, which float16 rounds to zero; odeint refuses it
    half = np.float16
    for error_control in (False, True):
        with pytest.raises(ValueError, match="y0 must be float32 or float64, got float16"):
            regularisers.regularised_odeint(linear, np.ones((2, 3), half), np.array([0.0, 1.0]),
                                            A.astype(half), noise=np.ones((2, 3), half),
                                            method="rk4", step_size=0.1,
                                            error_control=error_control)


def test_steer_keeps_the_direction_from_a_start_other_than_zero():
    # from t0 = 1 to T = 2, b = 1.5 would draw end times before the start: a backward solve
    with pytest.raises(ValueError, match=r"half_width must be below \|end - start\| = 1.0"):
        regularisers.steer_end_time(2.0, 1.5, np.random.default_rng(0), start=1.0)
    rng = np.random.default_rng(6)
    draws = [regularisers.steer_end_time(-2.0, 0.5, rng, start=-1.0) for _ in range(200)]
    assert min(draws) >= -2.5 and max(draws) <= -1.5


def test_per_sample_time_grids_are_refused_with_what_to_do_instead():
    with pytest.raises(ValueError, match=r"one time grid for the whole batch.*shape \(2, 2\).*"
                                         r"one call per grid"):
        regularisers.regularised_odeint(linear, np.ones((2, 3)),
                                        np.array([[0.0, 1.0], [0.0, 2.0]]), A,
                                        regularisers=("kinetic",))
    with pytest.raises(ValueError, match=r"at least 2 times.*shape \(1,\)"):
        regularisers.regularised_odeint(linear, np.ones((2, 3)), np.array([1.0]), A,
                                        regularisers=("kinetic",))


def test_an_empty_batch_gives_empty_integrals_as_odeint_gives_empty_states():
    ys, integrals = regularisers.regularised_odeint(linear, np.ones((0, 3)),
                                                    np.array([0.0, 0.5, 1.0]), A,
                                                    noise=np.ones((0, 3)))
    assert ys.shape == (3, 0, 3)
    assert {name: value.shape for name, value in integrals.items()} == {
        "kinetic": (3, 0), "jacobian": (3, 0)}


@pytest.mark.parametrize("names, noise, match", [
    ("kinetic", None, "regularisers must be a tuple"),
    (("kinetic", "kinetic"), None, "each integral once"),
    (("jacobian",), None, "noise must be an array of the state's shape"),
    (("jacobian",), np.ones(3), r"noise must be an array of the state's shape \(2, 3\)")])
def test_regulariser_rates_checks_its_arguments_like_regularised_odeint(names, noise, match):
    with pytest.raises((ValueError, TypeError), match=match):
        regularisers.regulariser_rates(linear, np.ones((2, 3)), 0.0, A, names, noise)


@pytest.mark.parametrize("direction", [0.0, 0.5, -2.0, np.nan])
def test_regulariser_rates_takes_only_the_sign_of_dt_as_direction(direction):
    # any other factor would scale the integrands without a word
    with pytest.raises(ValueError, match="direction must be 1.0 or -1.0"):
        regularisers.regulariser_rates(linear, np.ones((2, 3)), 0.0, A, ("kinetic",),
                                       direction=direction)
