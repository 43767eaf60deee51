"""Two Circles and Two Moons (minode.datasets): the samples and the exact densities they are
drawn from."""
import numpy
import pytest
from numpy.testing import assert_allclose

from minode import datasets

TOYS = {"circles": (datasets.make_two_circles, datasets.two_circles_log_density),
        "moons": (datasets.make_two_moons, datasets.two_moons_log_density)}


def test_two_circles_put_half_the_points_on_each_circle_with_the_noise_asked_for():
    x = datasets.make_two_circles(0, 20001, noise=0.06, factor=0.5)
    radius = numpy.hypot(x[:, 0], x[:, 1])
    outer = radius > 0.75
    assert x.shape == (20001, 2) and outer.sum() == 10000
    assert_allclose(radius[outer].mean(), 1.0, atol=0.01)
    assert_allclose(radius[~outer].mean(), 0.5, atol=0.01)
    assert_allclose(radius[outer].std(), 0.06, rtol=0.05)   # radial part of the noise


def test_two_moons_are_centred_and_split_evenly():
    x = datasets.make_two_moons(1, 20000, noise=0.1)
    assert x.shape == (20000, 2)
    assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    # The upper moon's points lie within noise of the unit circle around (-0.5, -0.25).
    distance = numpy.hypot(x[:, 0] + 0.5, x[:, 1] + 0.25)
    on_upper = numpy.abs(distance - 1) < 0.3
    assert 0.45 < on_upper.mean() < 0.65


@pytest.mark.parametrize("name", sorted(TOYS))
def test_log_density_integrates_to_one(name):
    _, log_density = TOYS[name]
    axis = numpy.linspace(-2.0, 2.0, 161)
    grid = numpy.stack(numpy.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    cell = (axis[1] - axis[0]) ** 2
    assert_allclose(numpy.exp(log_density(grid)).sum() * cell, 1.0, rtol=1e-3)


@pytest.mark.parametrize("name, entropy", [("circles", 0.792), ("moons", 1.006)])
def test_mean_negative_log_density_of_samples_is_the_entropy(name, entropy):
    make, log_density = TOYS[name]
    values = -log_density(make(2, 5000))
    assert abs(values.mean() - entropy) < 4 * values.std() / numpy.sqrt(len(values)) + 0.005


@pytest.mark.parametrize("name", sorted(TOYS))
def test_samples_are_reproducible_from_the_seed(name):
    make, _ = TOYS[name]
    assert_allclose(make(7, 10), make(numpy.random.default_rng(7), 10))
    assert not numpy.allclose(make(7, 10), make(8, 10))


@pytest.mark.parametrize("call, name", [
    (lambda: datasets.make_two_circles(0, 0), "n"),
    (lambda: datasets.make_two_moons(0, 10, noise=0.0), "noise"),
    (lambda: datasets.two_moons_log_density(numpy.ones((3, 3))), "x"),
])
def test_bad_input_raises_an_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=f"{name} must be"):
        call()
