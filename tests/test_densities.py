"""minode.densities: the target energies of Rezende & Mohamed 2015 and log Z by quadrature;
Two Circles and Two Moons, the samples and the exact densities they are drawn from."""
import numpy
import pytest
from numpy.testing import assert_allclose

from minode import densities
from minode.gradcheck import check_grads

# log Z of U1, U2c, U3c on [-7, 7]^2 from the calibration in the CNF issue (4 decimals).
CALIBRATION = {"U1": 1.8775, "U2c": 2.0221, "U3c": 2.5817}


@pytest.mark.parametrize("name", sorted(CALIBRATION))
def test_log_normalizer_matches_the_calibration_and_has_converged(name):
    energy = densities.ENERGIES[name]
    fine = densities.log_normalizer(energy)
    assert abs(fine - CALIBRATION[name]) < 1e-4
    assert abs(densities.log_normalizer(energy, limit=9.0, points=601) - fine) < 1e-8


def test_log_normalizer_of_a_gaussian_is_exact():
    log_z = densities.log_normalizer(lambda z: 0.5 * (z ** 2).sum(axis=1), points=501)
    assert_allclose(log_z, numpy.log(2 * numpy.pi), rtol=1e-10)


def test_energies_match_their_formulas_at_hand_picked_points():
    z = numpy.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # U1 at (2, 0): on the ring, at one mode; -log(1 + exp(-(4/0.6)^2/2)).
    assert_allclose(densities.u1(z[:1]), [-numpy.log1p(numpy.exp(-0.5 * (4 / 0.6) ** 2))],
                    atol=1e-15)
    # U2 at (0, 1): w1(0) = 0, so ((1 - 0)/0.4)^2/2; at (1, 0): w1(1) = 1.
    assert_allclose(densities.u2(z[1:]), [0.5 / 0.4 ** 2, 0.5 / 0.4 ** 2])
    # U3 at (1, 0): w1 = 1, w2 = 3, gaps -1 and 2.
    expected = -numpy.log(numpy.exp(-0.5 / 0.35 ** 2) + numpy.exp(-0.5 * (2 / 0.35) ** 2))
    assert_allclose(densities.u3(z[2:]), [expected])
    assert_allclose(densities.u2_confined(z) - densities.u2(z), (z[:, 0] / 4) ** 8)
    assert_allclose(densities.u3_confined(z) - densities.u3(z), (z[:, 0] / 4) ** 8)


@pytest.mark.parametrize("name", sorted(CALIBRATION))
def test_energy_gradients_match_central_differences(name):
    z = numpy.random.default_rng(0).standard_normal((5, 2)) * 2
    check_grads(lambda z: densities.ENERGIES[name](z).sum(), z)


def test_energies_refuse_points_that_are_not_2d():
    with pytest.raises(ValueError, match="z must be an array of 2-D points"):
        densities.u1(numpy.ones((4, 3)))


# ---------------------------------------------------------------------------------------------
# Two Circles and Two Moons
# ---------------------------------------------------------------------------------------------

TOYS = {"circles": (densities.make_two_circles, densities.two_circles_log_density),
        "moons": (densities.make_two_moons, densities.two_moons_log_density)}


def test_two_circles_put_half_the_points_on_each_circle_with_the_noise_asked_for():
    x = densities.make_two_circles(0, 20001, noise=0.06, factor=0.5)
    radius = numpy.hypot(x[:, 0], x[:, 1])
    outer = radius > 0.75
    assert x.shape == (20001, 2) and outer.sum() == 10000
    assert_allclose(radius[outer].mean(), 1.0, atol=0.01)
    assert_allclose(radius[~outer].mean(), 0.5, atol=0.01)
    assert_allclose(radius[outer].std(), 0.06, rtol=0.05)   # radial part of the noise


def test_two_moons_are_centred_and_split_evenly():
    x = densities.make_two_moons(1, 20000, noise=0.1)
    assert x.shape == (20000, 2)
    assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    # The upper moon's points lie within noise of the unit circle around (-0.5, -0.25).
    distance = numpy.hypot(x[:, 0] + 0.5, x[:, 1] + 0.25)
    on_upper = numpy.abs(distance - 1) < 0.3
    assert 0.45 < on_upper.mean() < 0.65


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toy_log_density_integrates_to_one(name):
    _, log_density = TOYS[name]
    axis = numpy.linspace(-2.0, 2.0, 161)
    grid = numpy.stack(numpy.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    cell = (axis[1] - axis[0]) ** 2
    assert_allclose(numpy.exp(log_density(grid)).sum() * cell, 1.0, rtol=1e-3)


@pytest.mark.parametrize("name, entropy", [("circles", 0.792), ("moons", 1.006)])
def test_mean_negative_log_density_of_toy_samples_is_the_entropy(name, entropy):
    make, log_density = TOYS[name]
    values = -log_density(make(2, 5000))
    assert abs(values.mean() - entropy) < 4 * values.std() / numpy.sqrt(len(values)) + 0.005


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toy_samples_are_reproducible_from_the_seed(name):
    make, _ = TOYS[name]
    assert_allclose(make(7, 10), make(numpy.random.default_rng(7), 10))
    assert not numpy.allclose(make(7, 10), make(8, 10))


@pytest.mark.parametrize("call, name", [
    (lambda: densities.make_two_circles(0, 0), "n"),
    (lambda: densities.make_two_moons(0, 10, noise=0.0), "noise"),
    (lambda: densities.two_moons_log_density(numpy.ones((3, 3))), "x"),
])
def test_toy_bad_input_raises_an_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=f"{name} must be"):
        call()
