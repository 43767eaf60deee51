"""minode.spirals: the spiral data of the latent ODE (sec. 5.1), random linear ODE spirals
(`make_spirals`) and the paper's Archimedean spirals (`make_archimedean_spirals`)."""
import math

import numpy
import pytest

from minode import spirals as spiral_data


# ---------------------------------------------------------------------------------------------
# Random linear ODE spirals (make_spirals)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def linear():
    return spiral_data.make_spirals(numpy.random.default_rng(5), n_spirals=64, n_points=120)


def test_spirals_have_the_documented_shapes(linear):
    assert linear.times.shape == (120,)
    assert linear.times[0] == 0.0 and linear.times[-1] == pytest.approx(6.29 * 5)
    assert linear.trajectories.shape == linear.observations.shape == (64, 120, 2)
    assert linear.clockwise.shape == (64,) and linear.clockwise.dtype == bool
    assert linear.matrices.shape == (64, 2, 2)


@pytest.mark.parametrize("n_spirals", [1, 7, 64])
def test_exactly_half_the_spirals_turn_clockwise(n_spirals):
    spirals = spiral_data.make_spirals(numpy.random.default_rng(n_spirals), n_spirals=n_spirals,
                                       n_points=10, t_max=1.0)
    assert spirals.clockwise.sum() == n_spirals // 2


def test_spiral_observation_noise_has_the_requested_std():
    spirals = spiral_data.make_spirals(numpy.random.default_rng(1), n_spirals=100, n_points=200,
                                       noise_std=0.05)
    noise = spirals.observations - spirals.trajectories
    assert abs(noise.mean()) < 0.002
    assert noise.std() == pytest.approx(0.05, rel=0.03)


def test_spirals_decay_towards_the_origin(linear):
    start = numpy.linalg.norm(linear.trajectories[:, 0], axis=-1)
    end = numpy.linalg.norm(linear.trajectories[:, -1], axis=-1)
    assert numpy.all(end < start)


def test_clockwise_spirals_have_negative_signed_angular_velocity(linear):
    z = linear.trajectories
    velocity = numpy.einsum("sij,stj->sti", linear.matrices, z)
    cross = z[..., 0] * velocity[..., 1] - z[..., 1] * velocity[..., 0]   # z x dz/dt
    assert numpy.all(cross[linear.clockwise] < 0)
    assert numpy.all(cross[~linear.clockwise] > 0)


def test_clockwise_spirals_turn_clockwise_in_the_data_itself(linear):
    # Independent of W: the unwrapped polar angle of the clean trajectory falls over time.
    angle = numpy.unwrap(numpy.arctan2(linear.trajectories[..., 1],
                                       linear.trajectories[..., 0]), axis=1)
    total_turn = angle[:, -1] - angle[:, 0]
    assert numpy.all(total_turn[linear.clockwise] < 0)
    assert numpy.all(total_turn[~linear.clockwise] > 0)


def test_spiral_trajectories_match_the_exact_solution_of_the_linear_ode(linear):
    # z(t) = exp(W t) z0 = V exp(diag(lambda) t) V^-1 z0, W = V diag(lambda) V^-1 (complex).
    eigenvalues, vectors = numpy.linalg.eig(linear.matrices)
    coefficients = numpy.linalg.solve(vectors, linear.trajectories[:, 0, :, None])[..., 0]
    growth = numpy.exp(eigenvalues[:, None, :] * linear.times[None, :, None])
    exact = numpy.einsum("sij,stj->sti", vectors, growth * coefficients[:, None, :]).real
    numpy.testing.assert_allclose(linear.trajectories, exact, rtol=1e-5, atol=1e-6)


def test_spirals_are_reproducible_from_the_seed():
    first, second = (spiral_data.make_spirals(numpy.random.default_rng(3), n_spirals=4,
                                              n_points=5) for _ in range(2))
    numpy.testing.assert_array_equal(first.observations, second.observations)
    numpy.testing.assert_array_equal(first.clockwise, second.clockwise)


# ---------------------------------------------------------------------------------------------
# Archimedean spirals (make_archimedean_spirals)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def archimedean():
    return spiral_data.make_archimedean_spirals(numpy.random.default_rng(4), n_spirals=60)


def test_archimedean_spirals_have_the_documented_shapes(archimedean):
    assert archimedean.times.shape == (200,)
    numpy.testing.assert_allclose(numpy.diff(archimedean.times), spiral_data.AUTHORS_ANGLE_STEP)
    assert archimedean.times[0] == 0.0
    assert archimedean.trajectories.shape == archimedean.observations.shape == (60, 200, 2)
    assert archimedean.clockwise.shape == archimedean.start_angles.shape == (60,)
    assert archimedean.clockwise.dtype == bool and archimedean.trajectories.dtype == numpy.float64


@pytest.mark.parametrize("n_spirals", [1, 7, 60])
def test_exactly_half_the_archimedean_spirals_turn_clockwise(n_spirals):
    spirals = spiral_data.make_archimedean_spirals(numpy.random.default_rng(n_spirals),
                                                   n_spirals=n_spirals, n_points=10)
    assert spirals.clockwise.sum() == n_spirals // 2


def test_every_point_lies_on_r_equals_b_theta_at_one_radian_per_time_unit(archimedean):
    theta = archimedean.start_angles[:, None] + archimedean.times[None, :]
    x, y = archimedean.trajectories[..., 0], archimedean.trajectories[..., 1]
    numpy.testing.assert_allclose(numpy.hypot(x, y), 0.3 * theta, rtol=1e-12)
    # Mirror the clockwise ones back: then every point sits at polar angle theta.
    y_unmirrored = numpy.where(archimedean.clockwise[:, None], -y, y)
    angle_error = numpy.angle(numpy.exp(1j * (numpy.arctan2(y_unmirrored, x) - theta)))
    assert numpy.abs(angle_error).max() < 1e-12


def test_clockwise_spirals_turn_clockwise_and_the_others_counter_clockwise(archimedean):
    z = archimedean.trajectories
    step = numpy.diff(z, axis=1)
    cross = z[:, :-1, 0] * step[..., 1] - z[:, :-1, 1] * step[..., 0]   # z x dz
    assert numpy.all(cross[archimedean.clockwise] < 0)
    assert numpy.all(cross[~archimedean.clockwise] > 0)


def test_each_window_starts_at_its_own_angle_and_ends_within_three_turns(archimedean):
    window = (200 - 1) * spiral_data.AUTHORS_ANGLE_STEP
    assert archimedean.start_angles.min() >= 100 * spiral_data.AUTHORS_ANGLE_STEP
    assert archimedean.start_angles.max() + window <= 6 * math.pi
    assert len(numpy.unique(archimedean.start_angles)) == 60
    # Both directions cover the range of start angles, not one half each.
    for direction in (archimedean.clockwise, ~archimedean.clockwise):
        assert numpy.ptp(archimedean.start_angles[direction]) > 0.5 * (6 * math.pi - window)


def test_archimedean_observation_noise_has_the_requested_std():
    spirals = spiral_data.make_archimedean_spirals(numpy.random.default_rng(1), n_spirals=100,
                                                   noise_std=0.1)
    noise = spirals.observations - spirals.trajectories
    assert abs(noise.mean()) < 0.002
    assert noise.std() == pytest.approx(0.1, rel=0.03)


def test_archimedean_spirals_are_reproducible_from_the_seed():
    first, second = (spiral_data.make_archimedean_spirals(numpy.random.default_rng(3),
                                                          n_spirals=4) for _ in range(2))
    numpy.testing.assert_array_equal(first.observations, second.observations)
    numpy.testing.assert_array_equal(first.clockwise, second.clockwise)


@pytest.mark.parametrize("kwargs, name", [
    ({"n_spirals": 0}, "n_spirals"), ({"n_points": 1.5}, "n_points"), ({"b": -0.3}, "b"),
    ({"time_step": 0.0}, "time_step"), ({"noise_std": -0.1}, "noise_std"),
    ({"min_start_angle": -1.0}, "min_start_angle"), ({"max_angle": math.inf}, "max_angle")])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        spiral_data.make_archimedean_spirals(0, **kwargs)


def test_a_window_longer_than_the_spiral_is_rejected():
    with pytest.raises(ValueError, match=r"n_points=600 .* does not fit"):
        spiral_data.make_archimedean_spirals(0, n_points=600)


def test_on_curve_points_lets_windows_start_anywhere_their_first_points_fit():
    """With on_curve_points=k only the first k points must lie within three turns: the windows
    then start up to max_angle - (k - 1) steps, their later points on the continued spiral."""
    step = spiral_data.AUTHORS_ANGLE_STEP
    spirals = spiral_data.make_archimedean_spirals(numpy.random.default_rng(5), n_spirals=400,
                                                   on_curve_points=100)
    assert spirals.start_angles.max() + 99 * step <= 6 * math.pi
    assert spirals.start_angles.max() + 199 * step > 6 * math.pi       # past the three turns
    assert spirals.start_angles.max() > 6 * math.pi - 99 * step - 5 * step
    theta = spirals.start_angles[:, None] + spirals.times[None, :]
    numpy.testing.assert_allclose(numpy.hypot(*numpy.moveaxis(spirals.trajectories, -1, 0)),
                                  0.3 * theta, rtol=1e-12)


def test_on_curve_points_beyond_the_window_is_refused():
    with pytest.raises(ValueError, match=r"on_curve_points=201 is more than .* n_points=200"):
        spiral_data.make_archimedean_spirals(0, on_curve_points=201)
    with pytest.raises(ValueError, match=r"^on_curve_points must be"):
        spiral_data.make_archimedean_spirals(0, on_curve_points=0)


def test_concatenate_spirals_keeps_the_parts_in_order():
    first = spiral_data.make_archimedean_spirals(1, n_spirals=3, n_points=20)
    second = spiral_data.make_archimedean_spirals(2, n_spirals=2, n_points=20, on_curve_points=5)
    both = spiral_data.concatenate_spirals([first, second])
    numpy.testing.assert_array_equal(both.times, first.times)
    for name in ("trajectories", "observations", "clockwise", "start_angles"):
        numpy.testing.assert_array_equal(getattr(both, name)[:3], getattr(first, name))
        numpy.testing.assert_array_equal(getattr(both, name)[3:], getattr(second, name))


def test_concatenate_spirals_refuses_parts_on_other_times_or_none():
    short = spiral_data.make_archimedean_spirals(1, n_spirals=2, n_points=20)
    long = spiral_data.make_archimedean_spirals(1, n_spirals=2, n_points=30)
    with pytest.raises(ValueError, match=r"parts\[1\]\.times differ"):
        spiral_data.concatenate_spirals([short, long])
    with pytest.raises(ValueError, match="parts is empty"):
        spiral_data.concatenate_spirals([])
