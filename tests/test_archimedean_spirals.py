"""`minode.datasets.make_archimedean_spirals`: the paper's latent ODE data (sec. 5.1)."""
import math

import numpy
import pytest

from minode import datasets


@pytest.fixture(scope="module")
def spirals():
    return datasets.make_archimedean_spirals(numpy.random.default_rng(4), n_spirals=60)


def test_archimedean_spirals_have_the_documented_shapes(spirals):
    assert spirals.times.shape == (200,)
    numpy.testing.assert_allclose(numpy.diff(spirals.times), datasets.AUTHORS_ANGLE_STEP)
    assert spirals.times[0] == 0.0
    assert spirals.trajectories.shape == spirals.observations.shape == (60, 200, 2)
    assert spirals.clockwise.shape == spirals.start_angles.shape == (60,)
    assert spirals.clockwise.dtype == bool and spirals.trajectories.dtype == numpy.float64


@pytest.mark.parametrize("n_spirals", [1, 7, 60])
def test_exactly_half_the_archimedean_spirals_turn_clockwise(n_spirals):
    spirals = datasets.make_archimedean_spirals(numpy.random.default_rng(n_spirals),
                                                n_spirals=n_spirals, n_points=10)
    assert spirals.clockwise.sum() == n_spirals // 2


def test_every_point_lies_on_r_equals_b_theta_at_one_radian_per_time_unit(spirals):
    theta = spirals.start_angles[:, None] + spirals.times[None, :]
    x, y = spirals.trajectories[..., 0], spirals.trajectories[..., 1]
    numpy.testing.assert_allclose(numpy.hypot(x, y), 0.3 * theta, rtol=1e-12)
    # Mirror the clockwise ones back: then every point sits at polar angle theta.
    y_unmirrored = numpy.where(spirals.clockwise[:, None], -y, y)
    angle_error = numpy.angle(numpy.exp(1j * (numpy.arctan2(y_unmirrored, x) - theta)))
    assert numpy.abs(angle_error).max() < 1e-12


def test_clockwise_spirals_turn_clockwise_and_the_others_counter_clockwise(spirals):
    z = spirals.trajectories
    step = numpy.diff(z, axis=1)
    cross = z[:, :-1, 0] * step[..., 1] - z[:, :-1, 1] * step[..., 0]   # z x dz
    assert numpy.all(cross[spirals.clockwise] < 0)
    assert numpy.all(cross[~spirals.clockwise] > 0)


def test_each_window_starts_at_its_own_angle_and_ends_within_three_turns(spirals):
    window = (200 - 1) * datasets.AUTHORS_ANGLE_STEP
    assert spirals.start_angles.min() >= 100 * datasets.AUTHORS_ANGLE_STEP
    assert spirals.start_angles.max() + window <= 6 * math.pi
    assert len(numpy.unique(spirals.start_angles)) == 60
    # Both directions cover the range of start angles, not one half each.
    for direction in (spirals.clockwise, ~spirals.clockwise):
        assert numpy.ptp(spirals.start_angles[direction]) > 0.5 * (6 * math.pi - window)


def test_archimedean_observation_noise_has_the_requested_std():
    spirals = datasets.make_archimedean_spirals(numpy.random.default_rng(1), n_spirals=100,
                                                noise_std=0.1)
    noise = spirals.observations - spirals.trajectories
    assert abs(noise.mean()) < 0.002
    assert noise.std() == pytest.approx(0.1, rel=0.03)


def test_archimedean_spirals_are_reproducible_from_the_seed():
    first, second = (datasets.make_archimedean_spirals(numpy.random.default_rng(3),
                                                       n_spirals=4) for _ in range(2))
    numpy.testing.assert_array_equal(first.observations, second.observations)
    numpy.testing.assert_array_equal(first.clockwise, second.clockwise)


@pytest.mark.parametrize("kwargs, name", [
    ({"n_spirals": 0}, "n_spirals"), ({"n_points": 1.5}, "n_points"), ({"b": -0.3}, "b"),
    ({"time_step": 0.0}, "time_step"), ({"noise_std": -0.1}, "noise_std"),
    ({"min_start_angle": -1.0}, "min_start_angle"), ({"max_angle": math.inf}, "max_angle")])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        datasets.make_archimedean_spirals(0, **kwargs)


def test_a_window_longer_than_the_spiral_is_rejected():
    with pytest.raises(ValueError, match=r"n_points=600 .* does not fit"):
        datasets.make_archimedean_spirals(0, n_points=600)
