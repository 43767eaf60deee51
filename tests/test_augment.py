"""minode.augment: the augmented state starts at [x, 0] and is sliced back to x's dimensions, the
solve is odeint's on the padded state, the gradients (both modes, any pytree of parameters, a
batched state) agree with central differences, and bad input is refused naming the argument."""
import numpy
import pytest
from autograd import grad

from minode import augment, nn, ops
from minode.gradcheck import numerical_grad
from minode.odeint import odeint

SOLVER = {"method": "dopri5", "rtol": 1e-10, "atol": 1e-12}


def mlp_field(y, t, params):
    """A time-dependent MLP on the (batch, d + p) state; params a dict holding a list."""
    times = ops.multiply(numpy.ones(y.shape[:-1] + (1,)), t)
    return params["scale"] * nn.mlp(params["layers"], ops.concatenate([y, times], axis=-1))


def scaled_error(got, want):
    """The largest difference relative to the largest entry of ``want`` (central differences
    of solves at rtol 1e-10 carry errors of about 1e-10 / 1e-6 in every entry, small or not)."""
    got, want = numpy.concatenate([numpy.ravel(a) for a in nn.tree_leaves(got)]), \
        numpy.concatenate([numpy.ravel(a) for a in nn.tree_leaves(want)])
    return float(abs(got - want).max() / abs(want).max())


def make_params(width, seed=0):
    rng = numpy.random.default_rng(seed)
    return {"layers": nn.init_mlp(rng, [width + 1, 6, width]), "scale": numpy.array(0.7)}


@pytest.fixture
def problem():
    rng = numpy.random.default_rng(1)
    return rng.normal(size=(3, 2)), numpy.array([0.0, 0.4, 1.0]), make_params(2 + 2)


def test_zero_pad_appends_zeros_along_the_axis_and_keeps_the_dtype():
    x = numpy.arange(6, dtype="float32").reshape(2, 3)
    padded = augment.zero_pad(x, 2)
    assert padded.shape == (2, 5) and padded.dtype == numpy.float32
    numpy.testing.assert_array_equal(padded[:, :3], x)
    assert not padded[:, 3:].any()
    images = numpy.ones((2, 3, 4, 4))
    assert augment.zero_pad(images, 1, axis=1).shape == (2, 4, 4, 4)
    assert augment.zero_pad(x, 0) is x


def test_the_solve_is_odeints_from_x_and_zeros_and_the_output_its_first_d_entries(problem):
    x, t, params = problem
    full = augment.augmented_odeint(mlp_field, x, t, params, p=2, keep_augmented=True, **SOLVER)
    assert full.shape == (3, 3, 4)
    direct = odeint(mlp_field, numpy.concatenate([x, numpy.zeros((3, 2))], axis=1), t, params,
                    **SOLVER)
    numpy.testing.assert_array_equal(full, direct)
    data = augment.augmented_odeint(mlp_field, x, t, params, p=2, **SOLVER)
    assert data.shape == (3, 3, 2)
    numpy.testing.assert_array_equal(data, direct[:, :, :2])
    numpy.testing.assert_array_equal(data[0], x)
    assert full[-1, :, 2:].any()  # the augmented dimensions moved away from zero


def test_p_zero_is_the_plain_neural_ode(problem):
    x, t, _ = problem
    params = make_params(2)
    numpy.testing.assert_array_equal(
        augment.augmented_odeint(mlp_field, x, t, params, p=0, **SOLVER),
        odeint(mlp_field, x, t, params, **SOLVER))


def test_a_middle_axis_is_augmented_and_sliced_back():
    rng = numpy.random.default_rng(2)
    x = rng.normal(size=(2, 3, 4))  # (batch, channels, width): augment the channels

    def field(y, t, matrix):  # mixes the 3 + 2 channels
        return ops.tanh(ops.matmul(matrix, y))

    matrix = rng.normal(size=(5, 5)) * 0.3
    ys = augment.augmented_odeint(field, x, numpy.array([0.0, 1.0]), matrix, p=2, axis=1,
                                  **SOLVER)
    assert ys.shape == (2, 2, 3, 4)
    full = augment.augmented_odeint(field, x, numpy.array([0.0, 1.0]), matrix, p=2, axis=1,
                                    keep_augmented=True, **SOLVER)
    numpy.testing.assert_array_equal(ys, full[:, :, :3])


def test_a_2d_time_grid_per_sample_works(problem):
    x, _, params = problem
    grids = numpy.array([[0.0, 0.5], [0.1, 0.9], [0.2, 1.0]])
    ys = augment.augmented_odeint(mlp_field, x, grids, params, p=2, **SOLVER)
    assert ys.shape == (2, 3, 2)
    numpy.testing.assert_array_equal(ys[0], x)


@pytest.mark.parametrize("mode", ["adjoint", "backprop"])
def test_gradients_agree_with_central_differences(problem, mode):
    x, t, params = problem
    weights = numpy.random.default_rng(3).normal(size=(3, 3, 2))

    def loss(x, params):
        ys = augment.augmented_odeint(mlp_field, x, t, params, p=2, grad=mode, **SOLVER)
        return ops.sum(ys * weights)

    grad_x, grad_params = grad(loss, (0, 1))(x, params)
    expected_x = numerical_grad(lambda x: loss(x, params), x)
    expected_params = numerical_grad(lambda params: loss(x, params), params)
    assert scaled_error(grad_x, expected_x) < 1e-6
    assert scaled_error(grad_params, expected_params) < 1e-6


@pytest.mark.parametrize("mode", ["adjoint", "backprop"])
def test_the_augmented_dimensions_reach_the_loss_through_a_readout(problem, mode):
    x, t, params = problem
    readout = numpy.array([0.5, -1.0, 2.0, 1.5])

    def loss(x, readout):
        ys = augment.augmented_odeint(mlp_field, x, t, params, p=2, keep_augmented=True,
                                      grad=mode, **SOLVER)
        return ops.sum(ops.tanh(ops.matmul(ys[-1], readout)))

    grad_x, grad_readout = grad(loss, (0, 1))(x, readout)
    assert scaled_error(grad_x, numerical_grad(lambda x: loss(x, readout), x)) < 1e-6
    assert scaled_error(grad_readout, numerical_grad(lambda r: loss(x, r), readout)) < 1e-6
    assert abs(grad_readout[2:]).min() > 0


@pytest.mark.parametrize("p", [-1, 1.5, 2.0, True, "1", None])
def test_a_bad_p_is_refused_naming_it(problem, p):
    x, t, params = problem
    with pytest.raises(ValueError, match=r"^p \(the number of augmented dimensions\) must be a "
                                         r"non-negative integer"):
        augment.augmented_odeint(mlp_field, x, t, params, p=p)
    with pytest.raises(ValueError, match=r"^p \("):
        augment.zero_pad(x, p)


def test_p_must_be_given_by_name(problem):
    x, t, params = problem
    with pytest.raises(TypeError, match="p"):
        augment.augmented_odeint(mlp_field, x, t, params, 2)


@pytest.mark.parametrize("axis, error, match", [
    (2, ValueError, "axis 2 is out of range for y0 with 2 axes"),
    (-3, ValueError, "axis -3 is out of range"),
    (1.0, TypeError, "axis must be an integer"),
])
def test_a_bad_axis_is_refused_naming_it(problem, axis, error, match):
    x, t, params = problem
    with pytest.raises(error, match=match):
        augment.augmented_odeint(mlp_field, x, t, params, p=1, axis=axis)


def test_the_sample_axis_of_a_2d_time_grid_is_not_augmented(problem):
    x, _, params = problem
    grids = numpy.array([[0.0, 0.5], [0.1, 0.9], [0.2, 1.0]])
    for t in (grids, grids.tolist()):   # odeint takes a nested list as t too
        with pytest.raises(ValueError, match="axis 0 of y0 holds the samples"):
            augment.augmented_odeint(mlp_field, x, t, params, p=1, axis=0)


def test_a_scalar_state_and_a_bad_keep_augmented_are_refused(problem):
    x, t, params = problem
    with pytest.raises(ValueError, match="y0 must have at least one axis"):
        augment.zero_pad(numpy.array(1.0), 1)
    with pytest.raises(TypeError, match="keep_augmented must be True or False"):
        augment.augmented_odeint(mlp_field, x, t, params, p=1, keep_augmented="yes")


def test_a_field_that_ignores_the_augmented_dimensions_is_refused_by_odeint(problem):
    x, t, params = problem
    with pytest.raises(ValueError, match=r"func must return dy/dt with the shape of y \(3, 3\)"):
        augment.augmented_odeint(lambda y, t, params: y[:, :2], x, t, params, p=1)
